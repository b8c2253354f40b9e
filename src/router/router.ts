// The data plane (DESIGN.md "router/"): clients POST to an endpoint's scoring URI; the router runs each
// request through one ordered list of stages, from a snapshot built once per RoutingTable. Nothing per
// request is looked up, parsed or rebuilt that could be done at swap time, and nothing is logged
// synchronously. HTTP/1.1 itself is served by ./http1.ts.
//
// The stages, in order (./stages/, one file each), and why each sits where it does:
//   1. auth       (auth.ts)      first: nothing about deployments is told to a client without a credential;
//                                the endpoint (select's URL half) is found before it, as keys are per endpoint.
//   2. select     (select.ts)    header pin, else the weighted split; the mirror roll. Before admission,
//                                which is per deployment.
//   3. admission  (admission.ts) concurrency, queue, deadline: 503/429 before anything is sent (and, in the
//                                head hook, before the body is read).
//   4. proxy      (proxy.ts)     the Flight over its instance's channel; the body buffered or streamed.
//   5. mirror     (mirror.ts)    after the live request went out, so a copy never delays it; never queued.
//   6. answer     (answer.ts)    the model's answer as Azure passes it on (424 wrapping), the router's own
//                                error answers (one header set), and the record of the request.
// The early-rejection head hook (headers complete, body not read yet) runs the same stages 1-3.
//
// Scoring URI shape: http://<host>:<router-port>/endpoints/<endpoint-name>/score
// (Azure: https://<endpoint-name>.<region>.inference.ml.azure.com/score — a host per endpoint needs DNS;
// a path per endpoint works on loopback with no setup.) `GET .../swagger.json` reaches an instance's
// generated OpenAPI document (Azure's openapi_uri).
//
// Instances are reached over the framed instance protocol, except custom containers (BYOC, an `http`
// InstanceAddress), which only speak HTTP: their requests go over protocol/http-client.ts, which answers
// in RESPONSE frames too, so no stage branches on the transport. Only scoring reaches a custom container
// (at its scoring_route, with the client's query), as Azure's front end forwards only the scoring URI; its
// swagger.json is a 404.

import type { AddressInfo } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { DeploymentRoute, InstanceAddress, RoutingTable } from '../ir/types.js';
import { connectionMeters, deploymentMeters, type ConnectionMeters } from '../telemetry/metrics.js';
import { encodeLimits } from '../protocol/frame.js';
import { NO_TRAFFIC_LOG, type TrafficSink } from '../telemetry/traffic-log.js';
import { TokenVerifier } from '../util/token.js';
import { FailedAuthLimiter, type FailedAuthOptions } from './auth-limit.js';
import { InstanceConnection, type InstanceChannel, type InstanceConnectionOptions } from '../protocol/client.js';
import { HttpInstanceConnection } from '../protocol/http-client.js';
import { Http1Server, type BodySink, type Http1Request } from './http1.js';
import type { DeploymentState, EndpointState } from './state.js';
import { Admission, pickFree } from './stages/admission.js';
import { Auth } from './stages/auth.js';
import { sendMirror } from './stages/mirror.js';
import { EMPTY, newFlight } from './stages/proxy.js';
import { healthy, SCORE_PREFIX, selectDeployment, selectEndpoint, Selection } from './stages/select.js';

export { SCORE_PREFIX };

export interface RouterOptions {
  /** Largest request body accepted (bytes); larger gets 413. Default 100 MiB (Azure's image nginx). */
  maxBodyBytes?: number;
  /**
   * Largest answer body accepted from an instance (bytes; default maxBodyBytes). A larger RESPONSE frame
   * ends that instance's connection and its requests get 502 (a custom container's larger answer: that
   * request gets 502): instance code is untrusted.
   */
  maxResponseBytes?: number;
  /** Longest request line URL accepted; longer gets 414. */
  maxUrlLength?: number;
  /** Time a client may take to send its headers (slow-client protection). */
  headersTimeoutMs?: number;
  /** Time a client may take to send the whole request. */
  requestTimeoutMs?: number;
  /** Open client connections (default 8192; one more gets 503) and per client address (default 1024; 429). */
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  /**
   * Request-body bytes held at once across all connections (default 256 MiB). A request whose declared
   * body would pass it gets 503 + Retry-After before its body is read; a chunked one when it passes it.
   */
  maxBufferedBodyBytes?: number;
  /**
   * Bodies declared larger than this (default 1 MiB), and chunked ones, are streamed to the instance in
   * BODY frames when an instance slot is free at once, instead of being buffered whole (util/frame.ts).
   */
  streamBodyThresholdBytes?: number;
  /** Slowest request-body upload, bytes/s after a 5 s grace (default 240, Kestrel's); slower gets 408. 0: none. */
  minBodyBytesPerSecond?: number;
  /** Where connection and body counters go (default: the process's, telemetry/metrics.ts). */
  connectionMeters?: ConnectionMeters;
  trafficLog?: TrafficSink;
  /**
   * Failed-auth limit per client address (./auth-limit.ts; default 50 failures in 10 s → 429 for 10 s).
   * false: none (a router behind a proxy sees one address for every client).
   */
  failedAuth?: FailedAuthOptions | false;
  /**
   * Local mode: each endpoint also gets a listener of its own on this host, where its scoring URI is
   * `http://localhost:<port>/score`, as Azure's local endpoints (contract §2.4).
   */
  endpointListeners?: { host: string };
  /**
   * Serve scoring URIs over TLS (HTTP/1.1), this certificate and key (PEM); endpoint listeners too.
   * setSecureContext() replaces them for new connections without dropping open ones.
   */
  tls?: SecureContextOptions;
  /**
   * The random source of the weighted pick and the mirror roll, uniform in [0, 1) (default Math.random).
   * Tests pass exact sequences.
   */
  random?: () => number;
  /**
   * Scale from zero (DeploymentRoute.scaleFromZero): called once per cold start, when a request (or a
   * mirror copy) comes for such a deployment while it has no ready instance. The request waits (queued,
   * until request_timeout_ms) for a routing table in which the deployment has one. main/ connects it to
   * the controller's wake(). Called synchronously on the request path: it must not block.
   */
  onDemand?: (endpoint: string, deployment: string) => unknown;
  /** A cold start asked for and not come within this long is asked for again (default 5000 ms; tests shorten it). */
  demandAgainMs?: number;
  /**
   * More than one router serves these deployments (router workers, the router role): admission happens
   * at the instances (docs/router-scale.md), which get the limits in a LIMITS frame and answer BUSY beyond
   * them. Default false: one router admits on its own, as it always did.
   */
  instanceAdmission?: boolean;
}

/** Counters per deployment that outlive routing-table swaps. */
export interface DeploymentStats {
  mirrorSent: number;
  mirrorAnswered: number;
  mirrorErrors: number;
  mirrorFailed: number;
  mirrorDropped: number;
  mirrorInflight: number;
  /** Sum of mirror answer latencies (ms), for a mean. */
  mirrorLatencyMs: number;
}

export class Router {
  private endpoints = new Map<string, EndpointState>();
  private readonly deployments = new Map<string, DeploymentState>();
  /** By instance id: its channel, and the address it was opened for (a changed one replaces it). */
  private readonly connections = new Map<string, { channel: InstanceChannel; target: string }>();
  private readonly server: Http1Server;
  private readonly maxUrlLength: number;
  private readonly trafficLog: TrafficSink;
  private readonly listeners = new Map<string, { server: Http1Server; port: Promise<number> }>();
  private readonly httpOptions: ConstructorParameters<typeof Http1Server>[0];
  private readonly endpointHost: string | undefined;
  private readonly streamThreshold: number;
  private readonly random: () => number;
  /** The stages that keep state of their own (./stages/). */
  private readonly auth: Auth;
  private readonly admission: Admission;
  /** What select found for the request being handled: one object per router, not one per request. */
  private readonly sel = new Selection();
  version = 0;
  private readonly connectionOptions: InstanceConnectionOptions;
  private readonly maxResponseBytes: number;
  private readonly instanceAdmission: boolean;

  constructor(options: RouterOptions = {}) {
    this.maxUrlLength = options.maxUrlLength ?? 8192;
    this.trafficLog = options.trafficLog ?? NO_TRAFFIC_LOG;
    this.endpointHost = options.endpointListeners?.host;
    this.streamThreshold = options.streamBodyThresholdBytes ?? 1024 * 1024;
    this.random = options.random ?? Math.random;
    this.instanceAdmission = options.instanceAdmission === true;
    this.admission = new Admission(this.trafficLog, options.onDemand ?? null, options.demandAgainMs);
    // An instance's answer is bounded like a client's body, plus room for its status and headers: a
    // larger frame ends that instance's connection (client.ts) instead of growing the router's memory.
    this.maxResponseBytes = options.maxResponseBytes ?? options.maxBodyBytes ?? 100 * 1024 * 1024;
    this.connectionOptions = {
      maxFrameBytes: this.maxResponseBytes + 1024 * 1024,
      // A connection usable again after its back-off serves what queued while it was avoided.
      onUsable: () => {
        for (const d of this.deployments.values()) this.admission.dispatchQueued(d);
      },
    };
    this.httpOptions = {
      maxBodyBytes: options.maxBodyBytes ?? 100 * 1024 * 1024,
      keepAliveTimeoutMs: 65_000,
      headersTimeoutMs: options.headersTimeoutMs ?? 15_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 300_000,
      maxConnections: options.maxConnections ?? 8192,
      maxConnectionsPerClient: options.maxConnectionsPerClient ?? 1024,
      maxBufferedBodyBytes: options.maxBufferedBodyBytes ?? 256 * 1024 * 1024,
      minBodyBytesPerSecond: options.minBodyBytesPerSecond ?? 240,
      streamThresholdBytes: this.streamThreshold,
      meters: options.connectionMeters ?? connectionMeters,
      ...(options.tls !== undefined ? { tls: options.tls } : {}),
    };
    this.server = new Http1Server(this.httpOptions, (req) => this.handle(req), this.head);
    this.auth = new Auth(options.failedAuth === false ? null : new FailedAuthLimiter(options.failedAuth ?? {}), this.server.meters);
  }

  /** Failed-auth limit per client address (./auth-limit.ts); null when disabled. */
  get authLimiter(): FailedAuthLimiter | null {
    return this.auth.limiter;
  }

  /** The client connections' and buffered bodies' counters (tests, /metrics). */
  get connectionMeters(): ConnectionMeters {
    return this.server.meters;
  }

  /** Local mode: the port of the endpoint's own listener (started on first use). */
  endpointPort(name: string): Promise<number> {
    let l = this.listeners.get(name);
    if (l === undefined) {
      const prefix = SCORE_PREFIX + name;
      // The endpoint's own port serves its paths at the root: /score, /swagger.json, / (health).
      const server = new Http1Server(
        this.httpOptions,
        (req) => {
          if (req.url === '/' || req.url === '') return healthy(req);
          if (!req.rewritten) req.url = prefix + req.url;
          this.handle(req);
        },
        (req, late) => {
          if (!req.rewritten) req.url = prefix + req.url;
          req.rewritten = true;
          return this.head(req, late);
        },
      );
      l = { server, port: server.listen(0, this.endpointHost ?? '127.0.0.1').then((a) => a.port) };
      this.listeners.set(name, l);
    }
    return l.port;
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return this.server.listen(port, host);
  }

  /** Scoring URIs are https:// (RouterOptions.tls). */
  get secure(): boolean {
    return this.server.secure;
  }

  /** A new certificate and key (SIGHUP) for new connections, here and on every endpoint listener. */
  setSecureContext(tls: SecureContextOptions): void {
    this.server.setSecureContext(tls);
    this.httpOptions.tls = tls; // endpoint listeners started from now on
    for (const l of this.listeners.values()) l.server.setSecureContext(tls);
  }

  async close(): Promise<void> {
    this.admission.close();
    for (const name of [...this.listeners.keys()]) this.closeListener(name);
    for (const c of this.connections.values()) c.channel.close();
    await this.server.close();
    await this.trafficLog.close();
  }

  /** Swaps in a new table. Connections to instances that stay are kept; others drain and close. */
  setTable(table: RoutingTable): void {
    const endpoints = new Map<string, EndpointState>();
    const live = new Set<string>();
    const liveDeployments = new Set<string>();
    for (const route of table.endpoints) {
      const byName = new Map<string, DeploymentState>();
      for (const d of route.deployments) {
        // A custom container's connections: as many as its instance may serve at once (16 when unlimited).
        const maxSockets = d.maxConcurrentRequestsPerInstance > 0 ? d.maxConcurrentRequestsPerInstance : 16;
        const connections = d.instances.map((a) => {
          live.add(a.instanceId);
          const target = targetOf(a);
          let c = this.connections.get(a.instanceId);
          if (c === undefined || !c.channel.isOpen || c.channel.broken || c.target !== target) {
            c?.channel.close(); // what it still has in flight finishes; its back-off timer ends with it
            const channel: InstanceChannel =
              a.transport === 'http'
                ? new HttpInstanceConnection(a, { maxSockets, maxBodyBytes: this.maxResponseBytes, onUsable: this.connectionOptions.onUsable })
                : new InstanceConnection(a, undefined, this.connectionOptions);
            c = { channel, target };
            this.connections.set(a.instanceId, c);
          } else if (c.channel instanceof HttpInstanceConnection) c.channel.maxSockets = maxSockets;
          return c.channel;
        });
        const state = this.deploymentState(route.name, d, connections);
        liveDeployments.add(`${route.name}/${d.name}`);
        byName.set(d.name.toLowerCase(), state);
      }
      const cumulative: number[] = [];
      const targets: DeploymentState[] = [];
      let sum = 0;
      for (const t of route.traffic) {
        const d = byName.get(t.deployment.toLowerCase());
        if (d === undefined) continue;
        sum += t.weight;
        cumulative.push(sum);
        targets.push(d);
      }
      const mirror = route.mirror ? (byName.get(route.mirror.deployment.toLowerCase()) ?? null) : null;
      endpoints.set(route.name, {
        route,
        keyHashes: route.keyHashes.map((h) => Buffer.from(h, 'hex')),
        tokens: route.authMode !== 'key' && route.authMode !== 'none' && route.tokenSecret !== undefined ? new TokenVerifier(route.name, route.tokenSecret) : null,
        byName,
        cumulative,
        targets,
        mirror,
        mirrorPercent: mirror ? route.mirror!.percent : 0,
        authType: route.authMode === 'key' ? 'Key' : route.authMode === 'aml_token' ? 'AMLToken' : route.authMode === 'aad_token' ? 'AADToken' : '',
      });
    }
    for (const [id, c] of this.connections) {
      if (!live.has(id)) {
        c.channel.close();
        this.connections.delete(id);
      }
    }
    for (const [key, d] of this.deployments) {
      if (liveDeployments.has(key)) continue;
      this.admission.removed(d);
      d.m.live = false;
      this.deployments.delete(key);
    }
    this.endpoints = endpoints;
    this.version = table.version;
    for (const name of this.listeners.keys()) if (!endpoints.has(name)) this.closeListener(name);
    // New capacity (more instances, a higher limit) may serve queued requests now.
    for (const d of this.deployments.values()) this.admission.dispatchQueued(d);
  }

  private closeListener(name: string): void {
    const l = this.listeners.get(name);
    if (!l) return;
    this.listeners.delete(name);
    void l.server.close();
  }

  /** Mirror counters of one deployment (zeros if unknown). */
  statsOf(endpoint: string, deployment: string): DeploymentStats {
    const m = this.deployments.get(`${endpoint}/${deployment}`)?.m;
    if (m === undefined) return { mirrorSent: 0, mirrorAnswered: 0, mirrorErrors: 0, mirrorFailed: 0, mirrorDropped: 0, mirrorInflight: 0, mirrorLatencyMs: 0 };
    const o = m.mirror;
    return { mirrorSent: o.sent, mirrorAnswered: o.answered + o.error, mirrorErrors: o.error, mirrorFailed: o.failed, mirrorDropped: o.dropped, mirrorInflight: m.mirrorInFlight, mirrorLatencyMs: m.mirrorLatencyMs };
  }

  private deploymentState(endpoint: string, route: DeploymentRoute, connections: InstanceChannel[]): DeploymentState {
    const key = `${endpoint}/${route.name}`;
    let d = this.deployments.get(key);
    if (d === undefined) {
      d = {
        endpoint,
        name: route.name,
        route,
        connections,
        perInstance: Infinity,
        hostAdmission: false,
        admitLimit: 0,
        admitted: 0,
        queue: [],
        queueHead: 0,
        next: 0,
        demandedAt: 0,
        m: deploymentMeters(endpoint, route.name),
      };
      this.deployments.set(key, d);
    }
    d.route = route;
    d.connections = connections;
    const mc = route.maxConcurrentRequestsPerInstance;
    // Custom containers (HTTP) cannot hold limits: each router enforces them on its own share.
    d.hostAdmission = this.instanceAdmission && mc > 0 && route.instances.every((a) => a.transport !== 'http');
    if (this.instanceAdmission) {
      // Sent even when unlimited (0): a host that had limits drops them.
      const limits = encodeLimits({ maxConcurrent: d.hostAdmission ? mc : 0, maxQueued: mc, maxQueueWaitMs: route.maxQueueWaitMs });
      for (const c of connections) c.setLimits?.(limits);
    }
    // 0 means unlimited (a real Azure show prints max_concurrent_requests_per_instance: 0, contract §1.7).
    // With instance admission this router may have up to the host's whole bound there: mc running + mc queued.
    d.perInstance = mc > 0 ? (d.hostAdmission ? 2 * mc : mc) : Infinity;
    // No instance: nothing is admitted (503), unless the deployment scales from zero, whose requests wait
    // for its first instance within the bound that instance will have.
    const n = connections.length > 0 ? connections.length : route.scaleFromZero ? 1 : 0;
    d.admitLimit = n === 0 ? 0 : mc > 0 ? 2 * mc * n : Infinity;
    if (connections.length > 0) d.demandedAt = 0;
    else this.admission.instancesGone(d);
    d.m.readyInstances = connections.length;
    return d;
  }

  /** A complete request, through the stages in order (the head comment says why this order). */
  private handle(req: Http1Request): void {
    const sel = this.sel;
    const endpoint = selectEndpoint(req, this.endpoints, this.maxUrlLength, sel);
    if (endpoint === null) return;
    // 1. auth
    if (sel.isScore && !this.auth.check(req, endpoint)) return;
    // 2. select
    const d = selectDeployment(req, sel, this.random);
    if (d === undefined) return;
    const mirror = sel.mirror;
    const body = req.body;
    const f = newFlight(this.admission, req, d, sel.rest, body, endpoint.authType);
    // 3. admission, 4. proxy (sent now, or queued and sent when a slot frees)
    if (!this.admission.admit(f)) return;
    // 5. mirror
    if (mirror !== null) sendMirror(mirror, f.method, f.path, f.headers, f.requestId, body, this.admission);
    // 6. answer: when the instance answers or fails (Flight → ./stages/answer.ts)
  }

  /**
   * Early rejection (http1.ts HeadHook): at headers-complete of a request with a large or chunked body,
   * before the body is read, stages 1-3 answer what they can (401, 404, 413 before this, 503 no ready
   * instance, 429 pending bound full) so that a body that will be refused is never received. A body over
   * streamBodyThresholdBytes (or chunked) is streamed to an instance when one has a free slot now;
   * otherwise it is buffered (within maxBufferedBodyBytes) and handle() runs every stage again when it is
   * complete, as the state may have changed by then.
   */
  private readonly head = (req: Http1Request, late: boolean): BodySink | undefined => {
    const sel = this.sel;
    const endpoint = selectEndpoint(req, this.endpoints, this.maxUrlLength, sel);
    if (endpoint === null) return undefined;
    // 1. auth
    if (sel.isScore && !this.auth.check(req, endpoint)) return undefined;
    // 2. select
    const d = selectDeployment(req, sel, this.random);
    if (d === undefined) return undefined;
    // 3. admission
    const admission = this.admission;
    if (admission.full(d)) {
      admission.refuse(newFlight(admission, req, d, sel.rest, EMPTY, endpoint.authType));
      return undefined;
    }
    const length = req.header('content-length');
    const conn = pickFree(d, null);
    // A chunked body's size is unknown at its head: it is buffered until it passes the threshold (late).
    const stream = conn !== null && (length === undefined ? late : Number(length) > this.streamThreshold) && sel.isScore;
    // Buffered: no place is held while the body arrives. A place held from headers-complete let a few
    // slow uploads keep a deployment's pending bound full while its instances sat idle (the bound is about
    // work waiting for an instance, which a body still arriving is not); what a body costs while it arrives
    // is bounded by maxBufferedBodyBytes and the minimum body rate instead. handle() admits it, or refuses
    // it with 429, once it is complete.
    if (!stream) return undefined;
    // 4. proxy, streamed. 5. mirror: a streamed body is not kept, so it cannot be copied.
    if (sel.mirror !== null) sel.mirror.m.mirror.dropped++;
    return admission.stream(newFlight(admission, req, d, sel.rest, EMPTY, endpoint.authType), conn);
  };
}

/** What a channel was opened for: a connection is replaced when its instance's address changes (a new port). */
function targetOf(a: InstanceAddress): string {
  return a.transport === 'http' ? `http ${a.host} ${a.port} ${a.path}` : a.transport === 'framed-tcp' ? `framed-tcp ${a.host}:${a.port}` : `framed ${a.socketPath}`;
}
