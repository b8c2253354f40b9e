// The data plane (DESIGN.md "router/"): clients POST to an endpoint's scoring URI; the router runs one
// ordered list of stages — auth → select (header pin or weighted split) → admission (concurrency, queue,
// deadline) → proxy (framed instance protocol) → mirror (fire-and-forget copy) — from a snapshot built
// once per RoutingTable. Nothing per request is looked up, parsed or rebuilt that could be done at swap
// time, and nothing is logged synchronously. HTTP/1.1 itself is served by ./http1.ts.
//
// Scoring URI shape: http://<host>:<router-port>/endpoints/<endpoint-name>/score
// (Azure: https://<endpoint-name>.<region>.inference.ml.azure.com/score — a host per endpoint needs DNS;
// a path per endpoint works on loopback with no setup.) `GET .../swagger.json` reaches an instance's
// generated OpenAPI document (Azure's openapi_uri).

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { SecureContextOptions } from 'node:tls';
import type { DeploymentRoute, EndpointRoute, RoutingTable } from '../ir/types.js';
import { connectionMeters, deploymentMeters, type ConnectionMeters, type DeploymentMeters } from '../telemetry/metrics.js';
import { NO_TRAFFIC_LOG, type TrafficSink } from '../telemetry/traffic-log.js';
import { TokenVerifier } from '../util/token.js';
import { FRAME_INSTANCE_ERROR, readResponseHeadersFlat, responseStatus } from '../util/frame.js';
import { FailedAuthLimiter, type FailedAuthOptions } from './auth-limit.js';
import { InstanceConnection, type Exchange } from './connection.js';
import { Http1Server, type BodySink, type Http1Connection, type Http1Request } from './http1.js';

export const SCORE_PREFIX = '/endpoints/';

export interface RouterOptions {
  /** Largest request body accepted (bytes); larger gets 413. Default 100 MiB (Azure's image nginx). */
  maxBodyBytes?: number;
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

/**
 * One deployment as the router serves it. Kept across routing-table swaps (keyed by endpoint/deployment)
 * so its queue and counters survive a traffic change; only `route` and `connections` are replaced.
 */
interface DeploymentState {
  readonly endpoint: string;
  readonly name: string;
  route: DeploymentRoute;
  connections: InstanceConnection[];
  /** Per-instance concurrency limit; Infinity when max_concurrent_requests_per_instance is 0. */
  perInstance: number;
  /** Azure's bound on pending requests: 2 × max_concurrent × instances (contract §4.2). */
  admitLimit: number;
  /** Requests admitted and not yet answered: in flight at instances plus queued. */
  admitted: number;
  queue: Flight[];
  queueHead: number;
  /** Round-robin start among equally busy instances, so ties spread. */
  next: number;
  /** Counters and gauges for /metrics (telemetry/metrics.ts), plain fields bumped here. */
  m: DeploymentMeters;
}

interface EndpointState {
  route: EndpointRoute;
  keyHashes: Buffer[];
  /** aml_token endpoints: the key and audience, prepared once per snapshot. */
  tokens: TokenVerifier | null;
  /** Deployments by lower-cased name, for the azureml-model-deployment header. */
  byName: Map<string, DeploymentState>;
  /** Live traffic: cumulative weights and the deployment each range selects. */
  cumulative: number[];
  targets: DeploymentState[];
  mirror: DeploymentState | null;
  mirrorPercent: number;
  authType: 'Key' | 'AMLToken' | 'AADToken' | '';
}

const JSON_TYPE = 'application/json';
const NO_DEPLOYMENT = JSON.stringify({ message: "The endpoint doesn't have any valid deployment with positive weight" });
const TWO_AUTHORIZATIONS = JSON.stringify({ message: 'Bad request: more than one Authorization header' });
const EMPTY = Buffer.alloc(0);
const UNAUTHORIZED = JSON.stringify({ message: 'Unauthorized: a valid key or token is required in the Authorization header (Bearer <key>)' });
/** router.authorized() verdicts. */
const AUTH_OK = 0;
const AUTH_FAILED = 1;
const AUTH_THROTTLED = 2;
const HOP_BY_HOP = new Set(['authorization', 'host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'proxy-connection', 'te', 'trailer', 'expect', 'x-request-id']);
const SWEEP_MS = 10;
/** Response headers the router sets itself; an instance's own values are not passed on. */
const ROUTER_OWNED = new Set(['content-length', 'x-request-id', 'x-ms-client-request-id', 'connection', 'transfer-encoding', 'keep-alive', 'azureml-model-deployment']);

/**
 * One scoring request from admission to answer. A class rather than closures: one allocation per
 * request, and it is the Exchange the instance connection calls back.
 */
class Flight implements Exchange {
  deadline: number;
  /** When it entered the queue (performance.now()), for max_queue_wait_ms. */
  queuedAt = 0;
  sentAt = 0;
  retried = false;
  conn: InstanceConnection | null = null;
  modelStatus = 0;
  /** Body bytes sent (a streamed body's grow as its parts go). */
  bodyBytes: number;

  constructor(
    readonly router: Router,
    readonly req: Http1Request,
    readonly d: DeploymentState,
    readonly method: string,
    readonly path: string,
    /** Forwarded request headers, name, value pairs (x-request-id is added when sent). */
    readonly headers: string[],
    readonly body: Buffer,
    readonly requestId: string,
    readonly clientRequestId: string,
    readonly startedAt: number,
    public bodyDoneAt: number,
    readonly userAgent: string,
    readonly authType: EndpointState['authType'],
  ) {
    this.deadline = startedAt + d.route.requestTimeoutMs;
    this.bodyBytes = body.length;
  }

  /** A request for the OpenAPI document (Azure's openapi_uri) rather than a scoring request. */
  get isSwagger(): boolean {
    return this.path.startsWith('/swagger.json');
  }

  onResponse(frame: Buffer): void {
    const status = responseStatus(frame);
    this.modelStatus = status;
    const d = this.d;
    d.m.modelDuration.observe((performance.now() - this.sentAt) / 1000);
    this.router.release(this);
    const req = this.req;
    if (req.destroyed) return;
    const out: string[] = [];
    const bodyStart = readResponseHeadersFlat(frame, ROUTER_OWNED, out);
    // A view: respond() copies it into the answer it writes, so nothing keeps the instance's read alive.
    const responseBody = frame.subarray(bodyStart);
    let typed = false;
    for (let i = 0; i < out.length; i += 2) if (out[i] === 'content-type') typed = true;
    if (!typed) out.push('content-type', JSON_TYPE);
    out.push('x-request-id', this.requestId, 'azureml-model-deployment', d.name);
    if (this.clientRequestId !== '') out.push('x-ms-client-request-id', this.clientRequestId);
    let code = status;
    if (frame[8] === FRAME_INSTANCE_ERROR) {
      // The instance host answered because the instance failed (a worker died, it is shutting down): an
      // infrastructure error, passed on as one (502/503), not as the model's answer (424).
      this.router.finish(this, status, 0);
      this.instanceFailed(status, responseBody);
      return;
    }
    // Only scoring answers are wrapped; the OpenAPI document's status is passed on as it is.
    if (status !== 200 && !this.isSwagger) {
      // The managed front end turns any non-200 from the model into 424 and passes the model's code and
      // reason in headers (contract §4.2).
      out.push('ms-azureml-model-error-statuscode', String(status), 'ms-azureml-model-error-reason', reasonPhrase(status));
      code = 424;
    }
    // Headers that cannot be sent (a name that is not a token, a value with CR/LF or beyond latin1, from
    // the scoring script) are left out by respond(): no response splitting, and the router stays up.
    req.respond(code, out, responseBody);
    this.router.finish(this, code, responseBody.length);
  }

  onFailure(reason: 'timeout' | 'unavailable' | 'dropped'): void {
    const router = this.router;
    if (reason === 'unavailable' && !this.retried) {
      // Never written: the instance cannot have run it, so one more try on another ready instance.
      this.retried = true;
      const failed = this.conn;
      this.conn = null;
      router.retry(this, failed);
      return;
    }
    router.release(this);
    if (reason === 'timeout') this.fail(408, `Request timed out after ${this.d.route.requestTimeoutMs} ms (request_timeout_ms of deployment '${this.d.name}')`);
    else this.fail(502, `The instance of deployment '${this.d.name}' closed the connection before answering`);
  }

  /** Not admitted: no ready instance (503), or the deployment's pending bound is full (429). */
  refuse(): void {
    const d = this.d;
    if (d.connections.length === 0) return this.fail(503, `Deployment '${d.name}' has no ready instance`);
    // Azure: more than 2 × max_concurrent_requests_per_instance × instance_count pending → 429, fast.
    this.fail(429, `Too many pending requests for deployment '${d.name}': at most ${d.admitLimit} (2 × max_concurrent_requests_per_instance × instances)`, '1');
  }

  /** Answers with an error of the router's own (not the model's). */
  fail(status: number, message: string, retryAfter?: string): void {
    this.answerError(status, message, retryAfter);
    this.router.finish(this, status, 0);
  }

  private answerError(status: number, message: string, retryAfter?: string): void {
    const req = this.req;
    if (req.destroyed || req.responded) return;
    const headers = ['content-type', JSON_TYPE, 'x-request-id', this.requestId, 'azureml-model-deployment', this.d.name];
    if (retryAfter !== undefined) headers.push('retry-after', retryAfter);
    req.respond(status, headers, `{"message":${JSON.stringify(message)}}`);
  }

  private instanceFailed(status: number, body: Buffer): void {
    let detail = '';
    try {
      const m = (JSON.parse(body.toString('utf8')) as { message?: unknown }).message;
      if (typeof m === 'string') detail = ` ${m}`;
    } catch {
      // not JSON: the status says enough
    }
    const code = status === 503 ? 503 : 502;
    this.answerError(code, `The instance of deployment '${this.d.name}' failed while serving the request (an infrastructure error, not the model's answer).${detail}`, code === 503 ? '1' : undefined);
  }
}

export class Router {
  private endpoints = new Map<string, EndpointState>();
  private readonly deployments = new Map<string, DeploymentState>();
  private readonly connections = new Map<string, InstanceConnection>();
  private readonly queued = new Set<DeploymentState>();
  private readonly server: Http1Server;
  private readonly maxUrlLength: number;
  private readonly trafficLog: TrafficSink;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly listeners = new Map<string, { server: Http1Server; port: Promise<number> }>();
  private readonly httpOptions: ConstructorParameters<typeof Http1Server>[0];
  private readonly endpointHost: string | undefined;
  private readonly streamThreshold: number;
  /** What select() found besides the deployment: fields rather than an object per request. */
  private selEndpoint: EndpointState | null = null;
  private selRest = '';
  private selMirror: DeploymentState | null = null;
  /** Failed-auth limit per client address; null when disabled. */
  readonly authLimiter: FailedAuthLimiter | null;
  /** Set with AUTH_THROTTLED: how long the client is still refused (ms). */
  private throttledFor = 0;
  version = 0;

  constructor(options: RouterOptions = {}) {
    this.maxUrlLength = options.maxUrlLength ?? 8192;
    this.trafficLog = options.trafficLog ?? NO_TRAFFIC_LOG;
    this.endpointHost = options.endpointListeners?.host;
    this.streamThreshold = options.streamBodyThresholdBytes ?? 1024 * 1024;
    this.authLimiter = options.failedAuth === false ? null : new FailedAuthLimiter(options.failedAuth ?? {});
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
          if (req.url === '/' || req.url === '') return reply(req, 200, '{"status":"Healthy"}');
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
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    for (const name of [...this.listeners.keys()]) this.closeListener(name);
    for (const c of this.connections.values()) c.close();
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
        const connections = d.instances.map((a) => {
          live.add(a.instanceId);
          let c = this.connections.get(a.instanceId);
          if (c === undefined || !c.isOpen || c.broken || c.address.socketPath !== a.socketPath) {
            c = new InstanceConnection(a);
            this.connections.set(a.instanceId, c);
          }
          return c;
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
        c.close();
        this.connections.delete(id);
      }
    }
    for (const [key, d] of this.deployments) {
      if (liveDeployments.has(key)) continue;
      // The deployment is gone: whatever still waits for it cannot be served.
      for (let i = d.queueHead; i < d.queue.length; i++) d.queue[i].fail(503, `Deployment '${d.name}' was removed`);
      d.queue = [];
      d.queueHead = 0;
      this.queued.delete(d);
      d.m.live = false;
      this.deployments.delete(key);
    }
    this.endpoints = endpoints;
    this.version = table.version;
    for (const name of this.listeners.keys()) if (!endpoints.has(name)) this.closeListener(name);
    // New capacity (more instances, a higher limit) may serve queued requests now.
    for (const d of this.deployments.values()) this.dispatchQueued(d);
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

  private deploymentState(endpoint: string, route: DeploymentRoute, connections: InstanceConnection[]): DeploymentState {
    const key = `${endpoint}/${route.name}`;
    let d = this.deployments.get(key);
    if (d === undefined) {
      d = {
        endpoint,
        name: route.name,
        route,
        connections,
        perInstance: Infinity,
        admitLimit: 0,
        admitted: 0,
        queue: [],
        queueHead: 0,
        next: 0,
        m: deploymentMeters(endpoint, route.name),
      };
      this.deployments.set(key, d);
    }
    d.route = route;
    d.connections = connections;
    const mc = route.maxConcurrentRequestsPerInstance;
    // 0 means unlimited (a real Azure show prints max_concurrent_requests_per_instance: 0, contract §1.7).
    d.perInstance = mc > 0 ? mc : Infinity;
    d.admitLimit = mc > 0 ? 2 * mc * connections.length : Infinity;
    d.m.readyInstances = connections.length;
    return d;
  }

  /**
   * Auth and selection: the deployment that serves `req` (endpoint, path and mirror in the sel* fields),
   * or undefined once `req` has been answered (414, 404, 400, 401).
   */
  private select(req: Http1Request): DeploymentState | undefined {
    const url = req.url;
    if (url.length > this.maxUrlLength) return void reply(req, 414, JSON.stringify({ message: `URL longer than ${this.maxUrlLength} characters` }));
    if (!url.startsWith(SCORE_PREFIX)) {
      if (url === '/healthz' || url === '/') return void reply(req, 200, '{"status":"Healthy"}');
      return void reply(req, 404, JSON.stringify({ message: 'Not found. Scoring URIs look like /endpoints/<endpoint-name>/score' }));
    }
    const slash = url.indexOf('/', SCORE_PREFIX.length);
    const name = slash < 0 ? url.slice(SCORE_PREFIX.length) : url.slice(SCORE_PREFIX.length, slash);
    const rest = slash < 0 ? '' : url.slice(slash);
    const endpoint = this.endpoints.get(name);
    if (endpoint === undefined) return void reply(req, 404, JSON.stringify({ message: `Endpoint '${name}' not found` }));
    const isScore = rest === '/score' || rest.startsWith('/score?');
    const isSwagger = !isScore && (req.method === 'GET' || req.method === 'HEAD') && (rest === '/swagger.json' || rest.startsWith('/swagger.json?'));
    if (!isScore && !isSwagger) {
      return void reply(req, 404, JSON.stringify({ message: `Not found: ${rest || '/'}. The scoring URI is ${SCORE_PREFIX}${name}/score` }));
    }
    // Azure serves the OpenAPI document without auth; scoring always needs it.
    if (isScore && endpoint.route.authMode !== 'none') {
      const auth = onlyValue(req.headers, 'authorization');
      // Two credentials: which one counts is ambiguous (a proxy may check one, we another), so neither does.
      if (auth === null) return void reply(req, 400, TWO_AUTHORIZATIONS);
      const verdict = this.authorized(endpoint, auth, req.conn);
      if (verdict === AUTH_FAILED) return void reply(req, 401, UNAUTHORIZED);
      if (verdict === AUTH_THROTTLED) {
        this.server.meters.failedAuthRefused++;
        return void throttled(req, this.throttledFor);
      }
    }

    // Select: a pinned deployment (any, whatever its weight; never mirrored), else the weighted split.
    let d: DeploymentState | undefined;
    let mirror: DeploymentState | null = null;
    const pinned = req.header('azureml-model-deployment');
    if (pinned !== undefined && pinned !== '') {
      d = endpoint.byName.get(pinned.toLowerCase());
      if (d === undefined) return void reply(req, 404, JSON.stringify({ message: `Deployment '${pinned}' not found in endpoint '${name}'` }));
    } else {
      d = pickWeighted(endpoint);
      if (d === undefined) return void reply(req, 404, NO_DEPLOYMENT);
      if (isScore && endpoint.mirror !== null && Math.random() * 100 < endpoint.mirrorPercent) mirror = endpoint.mirror;
    }
    this.selEndpoint = endpoint;
    this.selRest = rest;
    this.selMirror = mirror;
    return d;
  }

  private handle(req: Http1Request): void {
    if (req.onAbort !== null) {
      // The place the head hook held for this body is given back; admission runs again, now.
      const release = req.onAbort;
      req.onAbort = null;
      release();
    }
    const d = this.select(req);
    if (d !== undefined) this.admit(req, this.selEndpoint!, d, this.selRest, this.selMirror);
  }

  /**
   * Early rejection (http1.ts HeadHook): at headers-complete of a request with a large or chunked body,
   * before the body is read, the same auth, selection and admission checks as at completion answer what
   * they can (401, 404, 413 before this, 503 no ready instance, 429 pending bound full) so that a body
   * that will be refused is never received. A body over streamBodyThresholdBytes (or chunked) is streamed
   * to an instance when one has a free slot now; otherwise it is buffered (within maxBufferedBodyBytes) and
   * the full handling runs when it is complete, as the state may have changed by then.
   */
  private readonly head = (req: Http1Request, late: boolean): BodySink | undefined => {
    const d = this.select(req);
    if (d === undefined) return undefined;
    if (d.connections.length === 0 || d.admitted >= d.admitLimit) {
      this.flight(req, this.selEndpoint!, d, this.selRest, EMPTY).refuse();
      return undefined;
    }
    if (late && req.onAbort !== null) {
      // Offered again (a chunked body grew past the threshold): its place is the one held at its head.
      const release = req.onAbort;
      req.onAbort = null;
      release();
    }
    const length = req.header('content-length');
    const conn = pickFree(d, null);
    // A chunked body's size is unknown at its head: it is buffered until it passes the threshold (late).
    const stream = conn !== null && (length === undefined ? late : Number(length) > this.streamThreshold) && (this.selRest === '/score' || this.selRest.startsWith('/score?'));
    if (!stream) {
      // Buffered: it holds a place among the deployment's pending requests from now on, so that bodies
      // beyond the pending bound are refused (429) before they are received, not after.
      d.admitted++;
      req.onAbort = () => d.admitted--;
      return undefined;
    }
    d.admitted++;
    const f = this.flight(req, this.selEndpoint!, d, this.selRest, EMPTY);
    // Its body is not kept: it cannot be sent again elsewhere, nor copied to a mirror deployment.
    f.retried = true;
    if (this.selMirror !== null) this.selMirror.m.mirror.dropped++;
    return new StreamedBody(this, f, conn);
  };

  /** One Flight for `req` (forwarded headers, request ids). */
  private flight(req: Http1Request, endpoint: EndpointState, d: DeploymentState, path: string, body: Buffer): Flight {
    // AML overrides x-request-id so it is always a GUID of its own (contract §4.3).
    const requestId = randomUUID();
    const headers: string[] = [];
    const h = req.headers;
    let clientRequestId = '';
    let userAgent = '';
    for (let i = 0; i < h.length; i += 2) {
      const k = h[i];
      if (HOP_BY_HOP.has(k)) continue;
      if (k === 'x-ms-client-request-id') {
        clientRequestId = sanitizeClientRequestId(h[i + 1]);
        headers.push(k, clientRequestId);
        continue;
      }
      if (k === 'user-agent') userAgent = h[i + 1];
      headers.push(k, h[i + 1]);
    }
    return new Flight(this, req, d, req.method, path, headers, body, requestId, clientRequestId, req.startedAt, performance.now(), userAgent, endpoint.authType);
  }

  /** A streamed request's flight goes out: its REQUEST_STREAM frame now, its body as it arrives. */
  sendStream(f: Flight, conn: InstanceConnection): number {
    f.conn = conn;
    f.sentAt = performance.now();
    f.d.m.inFlight++;
    return conn.sendStream(f.method, f.path, f.headers, f.requestId, f);
  }

  private admit(req: Http1Request, endpoint: EndpointState, d: DeploymentState, path: string, mirror: DeploymentState | null): void {
    const body = req.body;
    const f = this.flight(req, endpoint, d, path, body);
    if (d.connections.length === 0 || d.admitted >= d.admitLimit) return f.refuse();
    d.admitted++;
    const conn = pickFree(d, null);
    if (conn !== null) this.send(f, conn);
    else this.enqueue(f);
    if (mirror !== null) sendMirror(mirror, f.method, path, f.headers, f.requestId, body);
  }

  private send(f: Flight, conn: InstanceConnection): void {
    f.conn = conn;
    f.sentAt = performance.now();
    f.d.m.inFlight++;
    conn.send(f.method, f.path, f.headers, f.requestId, f.body, f);
  }

  private enqueue(f: Flight): void {
    const d = f.d;
    f.queuedAt = performance.now();
    d.queue.push(f);
    d.m.queued++;
    this.queued.add(d);
    if (this.sweepTimer === null) this.sweepTimer = setInterval(() => this.sweepQueues(), SWEEP_MS).unref();
  }

  /** A flight left its instance (answered, failed, timed out): free its slot and serve the queue. */
  release(f: Flight): void {
    const d = f.d;
    if (f.conn !== null) {
      d.m.inFlight--;
      f.conn = null;
    }
    d.admitted--;
    this.dispatchQueued(d);
  }

  retry(f: Flight, failed: InstanceConnection | null): void {
    f.d.m.inFlight--;
    const conn = pickFree(f.d, failed);
    if (conn !== null) this.send(f, conn);
    else {
      this.release(f);
      f.fail(502, `No instance of deployment '${f.d.name}' could take the request`);
    }
  }

  /** Final accounting: metrics and the traffic log, once per request. */
  finish(f: Flight, status: number, responseBytes: number): void {
    const d = f.d;
    const now = performance.now();
    d.m.requestDuration.observe((now - f.startedAt) / 1000);
    if (status < d.m.byStatus.length) d.m.byStatus[status]++;
    this.trafficLog.record({
      method: f.method,
      path: f.path,
      endpoint: d.endpoint,
      deployment: d.name,
      responseCode: status,
      modelStatusCode: f.modelStatus,
      requestPayloadSize: f.bodyBytes,
      responsePayloadSize: responseBytes,
      userAgent: f.userAgent,
      xRequestId: f.requestId,
      xMsClientRequestId: f.clientRequestId,
      totalDurationMs: now - f.startedAt,
      requestDurationMs: f.bodyDoneAt - f.startedAt,
      responseDurationMs: f.sentAt > 0 && f.modelStatus > 0 ? now - f.startedAt : 0,
      authType: f.authType,
    });
  }

  private dispatchQueued(d: DeploymentState): void {
    while (d.queueHead < d.queue.length) {
      const conn = pickFree(d, null);
      if (conn === null) return;
      const f = d.queue[d.queueHead];
      d.queue[d.queueHead++] = undefined as unknown as Flight;
      d.m.queued--;
      this.send(f, conn);
    }
    this.compact(d);
  }

  private compact(d: DeploymentState): void {
    if (d.queueHead === d.queue.length) {
      d.queue = [];
      d.queueHead = 0;
      this.queued.delete(d);
    } else if (d.queueHead > 1024 && d.queueHead * 2 > d.queue.length) {
      d.queue = d.queue.slice(d.queueHead);
      d.queueHead = 0;
    }
  }

  /** Queued requests past their deadline (408) or past max_queue_wait_ms (429) leave the queue. */
  private sweepQueues(): void {
    if (this.queued.size === 0) {
      if (this.sweepTimer) clearInterval(this.sweepTimer);
      this.sweepTimer = null;
      return;
    }
    const now = performance.now();
    for (const d of this.queued) {
      const maxWait = d.route.maxQueueWaitMs;
      while (d.queueHead < d.queue.length) {
        const f = d.queue[d.queueHead];
        const timedOut = f.deadline <= now;
        const waitedTooLong = maxWait > 0 && now - f.queuedAt >= maxWait;
        if (!timedOut && !waitedTooLong) break;
        d.queue[d.queueHead++] = undefined as unknown as Flight;
        d.m.queued--;
        d.admitted--;
        if (timedOut) f.fail(408, `Request timed out after ${d.route.requestTimeoutMs} ms waiting for a free instance of deployment '${d.name}'`);
        else f.fail(429, `Request waited ${maxWait} ms (max_queue_wait_ms) for a free instance of deployment '${d.name}'`, '1');
      }
      this.compact(d);
    }
  }

  /**
   * AUTH_OK, AUTH_FAILED (401) or AUTH_THROTTLED (429: the client address failed too often, ./auth-limit.ts).
   * A keep-alive connection that presented this very header to this endpoint state (same keys, same token
   * key) was verified then, and stays verified until the credential expires (keys: never; tokens: their
   * exp). Comparing with what the same client sent before reveals nothing it does not know, so a plain
   * comparison is safe; anything else goes through the constant-time checks. A new table (rotated keys)
   * is a new endpoint state: what was verified against the old one is checked again.
   */
  private authorized(endpoint: EndpointState, header: string | undefined, conn: Http1Connection): number {
    if (endpoint.route.authMode === 'none') return AUTH_OK;
    const known = conn.handlerState as Verified | undefined;
    const same = header !== undefined && known !== undefined && known.endpoint === endpoint && known.header === header;
    if (same && (known.until === Infinity || known.until > Date.now())) return AUTH_OK;
    const limiter = this.authLimiter;
    if (limiter !== null) {
      // Nothing is looked up (and nothing allocated) unless some address is blocked now.
      const left = limiter.blockedFor(clientAddress(conn), performance.now());
      if (left > 0) {
        this.throttledFor = left;
        return AUTH_THROTTLED;
      }
    }
    const start = header === undefined ? -1 : credentialStart(header);
    const until = start < 0 ? 0 : this.verify(endpoint, header!.slice(start));
    if (until === 0) {
      limiter?.failed(clientAddress(conn), performance.now());
      return AUTH_FAILED;
    }
    if (same) known.until = until;
    else conn.handlerState = { endpoint, header: header!, until } satisfies Verified;
    return AUTH_OK;
  }

  /** Until when (ms since the epoch) the credential is valid: Infinity for a key, 0 when it is not valid. */
  private verify(endpoint: EndpointState, credential: string): number {
    if (endpoint.route.authMode === 'key') {
      const digest = createHash('sha256').update(credential).digest();
      let ok = false;
      // Compare against every key, always, so timing tells nothing about which matched.
      for (const h of endpoint.keyHashes) ok = timingSafeEqual(digest, h) || ok;
      return ok ? Infinity : 0;
    }
    return endpoint.tokens === null ? 0 : endpoint.tokens.verify(credential);
  }
}

/** The address a failed-auth limit applies to. */
function clientAddress(conn: Http1Connection): string {
  return conn.client !== '' ? conn.client : (conn.socket.remoteAddress ?? '');
}

/** 429 to a client address over its failed-auth limit; the connection closes, so what it pipelined is not read. */
function throttled(req: Http1Request, ms: number): void {
  const seconds = String(Math.max(1, Math.ceil(ms / 1000)));
  req.respond(
    429,
    ['content-type', JSON_TYPE, 'x-request-id', randomUUID(), 'retry-after', seconds],
    `{"message":"Too many failed authentication attempts from this address: retry after ${seconds} s"}`,
    true,
  );
}

/**
 * Where the credential starts in an Authorization value of the Bearer scheme, or -1. The scheme is
 * case-insensitive (RFC 9110 §11.1, RFC 6750 §2.1: "bearer", "BEARER" are the same) and is followed by
 * one or more spaces.
 */
function credentialStart(header: string): number {
  if (header.length < 8) return -1;
  for (let i = 0; i < 6; i++) if ((header.charCodeAt(i) | 0x20) !== BEARER[i]) return -1;
  let i = 6;
  while (i < header.length && header.charCodeAt(i) === 0x20) i++;
  return i === 6 || i === header.length ? -1 : i;
}
const BEARER = [...'bearer'].map((c) => c.charCodeAt(0));

/** The value of a header that must appear at most once: undefined if absent, null if repeated. */
function onlyValue(headers: readonly string[], name: string): string | undefined | null {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    if (value !== undefined) return null;
    value = headers[i + 1];
  }
  return value;
}

/**
 * A request body streamed to its instance as it arrives (http1.ts BodySink): the REQUEST_STREAM frame is
 * out already; each part becomes a BODY frame, the last one flagged. When the instance connection's
 * writes back up, the client's socket stops being read until they drain, so the router holds at most
 * about one read per streamed request. A stream that fails after its first frame is not retried.
 */
class StreamedBody implements BodySink {
  private readonly id: number;
  private readonly resume = (): void => this.f.req.conn.releaseReading();

  constructor(
    private readonly router: Router,
    private readonly f: Flight,
    private readonly conn: InstanceConnection,
  ) {
    this.id = router.sendStream(f, conn);
  }

  data(part: Buffer): void {
    const f = this.f;
    if (f.conn === null) return; // already answered or failed: the rest goes nowhere
    f.bodyBytes += part.length;
    this.conn.sendBody(this.id, part, false);
    if (this.conn.congested) {
      f.req.conn.holdReading();
      this.conn.whenDrained(this.resume);
    }
  }

  end(): void {
    this.f.bodyDoneAt = performance.now();
    if (this.f.conn !== null) this.conn.sendBody(this.id, EMPTY, true);
  }

  abort(status: number): void {
    const f = this.f;
    if (f.conn === null) return;
    // The client went away or was cut mid-body: the instance drops what it reassembled (CANCEL).
    this.conn.cancel(this.id);
    this.router.release(f);
    this.router.finish(f, status, 0);
  }
}

/** What a client connection last proved (router.authorized), kept in its handlerState. */
interface Verified {
  endpoint: EndpointState;
  header: string;
  /** Valid until (ms since the epoch): Infinity for a key, the token's exp for a token. */
  until: number;
}

/**
 * Fire and forget: the client never waits for, or sees, the mirror's answer. A copy goes only to an
 * instance with a free slot (max_concurrent_requests_per_instance holds for mirrors too) and is never
 * queued: no free slot means the copy is dropped and counted.
 */
function sendMirror(d: DeploymentState, method: string, path: string, headers: string[], requestId: string, body: Buffer): void {
  const m = d.m;
  const conn = pickFree(d, null);
  if (conn === null) {
    m.mirror.dropped++;
    return;
  }
  m.mirror.sent++;
  m.mirrorInFlight++;
  const started = performance.now();
  conn.send(method, path, headers, requestId, body, {
    deadline: started + d.route.requestTimeoutMs,
    onResponse(frame) {
      const status = responseStatus(frame);
      m.mirrorInFlight--;
      m.mirrorLatencyMs += performance.now() - started;
      if (status === 200) m.mirror.answered++;
      else m.mirror.error++;
    },
    onFailure() {
      m.mirrorInFlight--;
      m.mirror.failed++;
    },
  });
}

function pickWeighted(endpoint: EndpointState): DeploymentState | undefined {
  const n = endpoint.cumulative.length;
  if (n === 0) return undefined;
  if (n === 1) return endpoint.targets[0];
  const r = Math.random() * endpoint.cumulative[n - 1];
  for (let i = 0; i < n; i++) if (r < endpoint.cumulative[i]) return endpoint.targets[i];
  return endpoint.targets[n - 1];
}

/**
 * The least busy instance with a free slot (least outstanding requests; ties round-robin), skipping
 * `avoid` and connections that failed on their own. null when every slot is taken.
 */
function pickFree(d: DeploymentState, avoid: InstanceConnection | null): InstanceConnection | null {
  const list = d.connections;
  const n = list.length;
  const start = d.next;
  d.next = n > 0 ? (start + 1) % n : 0;
  let best: InstanceConnection | null = null;
  for (let i = 0; i < n; i++) {
    const c = list[(start + i) % n];
    if (c === avoid || c.broken || c.outstanding >= d.perInstance) continue;
    if (best === null || c.outstanding < best.outstanding) best = c;
  }
  return best;
}

/** Azure keeps only alphanumerics, hyphens and underscores, truncated to 40 characters (contract §4.3). */
function sanitizeClientRequestId(value: string): string {
  return value.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
}

function reply(req: Http1Request, status: number, body: string): void {
  req.respond(status, ['content-type', JSON_TYPE, 'x-request-id', randomUUID()], body);
}

function reasonPhrase(status: number): string {
  return STATUS_CODES[status] ?? 'Error';
}
