// The data plane (DESIGN.md "router/"): clients POST to an endpoint's scoring URI; the router
// authenticates, selects a deployment (header pin or weighted split), picks the least-busy ready
// instance and forwards over the framed instance protocol. It serves from a snapshot compiled from the
// RoutingTable once per table: nothing per request is looked up, parsed or rebuilt that could be
// done at swap time.
//
// Scoring URI shape: http://<host>:<router-port>/endpoints/<endpoint-name>/score
// (Azure: https://<endpoint-name>.<region>.inference.ml.azure.com/score — a host per endpoint needs DNS;
// a path per endpoint works on loopback with no setup.)

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { DeploymentRoute, EndpointRoute, RoutingTable } from '../ir/types.js';
import { verifyToken } from '../util/token.js';
import { InstanceConnection, type Exchange } from './connection.js';

export const SCORE_PREFIX = '/endpoints/';

export interface RouterOptions {
  /** Largest request body accepted (bytes); larger gets 413. */
  maxBodyBytes?: number;
}

/** Counters per deployment that outlive routing-table swaps (metrics read them). */
export interface DeploymentStats {
  /** Mirror copies sent, answered (any status), answered non-200, failed (timeout/dropped connection), dropped (queue full or no instance). */
  mirrorSent: number;
  mirrorAnswered: number;
  mirrorErrors: number;
  mirrorFailed: number;
  mirrorDropped: number;
  mirrorInflight: number;
  /** Sum of mirror answer latencies (ms), for a mean. */
  mirrorLatencyMs: number;
}

interface DeploymentState {
  route: DeploymentRoute;
  stats: DeploymentStats;
  connections: InstanceConnection[];
  /** Round-robin start among equally busy instances, so ties spread. */
  next: number;
}

interface EndpointState {
  route: EndpointRoute;
  keyHashes: Buffer[];
  /** Deployments by lower-cased name, for the azureml-model-deployment header. */
  byName: Map<string, DeploymentState>;
  /** Live traffic: cumulative weights (sum 100) and the deployment each range selects. */
  cumulative: number[];
  targets: DeploymentState[];
  /** Mirror traffic: the shadow deployment and the percent of unpinned requests copied to it. */
  mirror: DeploymentState | null;
  mirrorPercent: number;
}

/** Mirror copies in flight per deployment beyond which new copies are dropped (and counted), never queued. */
export const MIRROR_MAX_INFLIGHT = 256;

const JSON_TYPE = 'application/json';
const NO_DEPLOYMENT = JSON.stringify({ message: "The endpoint doesn't have any valid deployment with positive weight" });
const HOP_BY_HOP = new Set(['authorization', 'host', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade', 'proxy-connection', 'te', 'trailer']);

export class Router {
  private endpoints = new Map<string, EndpointState>();
  private readonly connections = new Map<string, InstanceConnection>();
  private readonly stats = new Map<string, DeploymentStats>();
  private readonly server: Server;
  private readonly maxBodyBytes: number;
  version = 0;

  constructor(options: RouterOptions = {}) {
    this.maxBodyBytes = options.maxBodyBytes ?? 100 * 1024 * 1024;
    this.server = createServer({ keepAliveTimeout: 65_000 }, (req, res) => this.handle(req, res));
  }

  async listen(port: number, host: string): Promise<AddressInfo> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    return this.server.address() as AddressInfo;
  }

  async close(): Promise<void> {
    for (const c of this.connections.values()) c.close();
    this.server.closeIdleConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Swaps in a new table. Connections to instances that stay are kept; others drain and close. */
  setTable(table: RoutingTable): void {
    const endpoints = new Map<string, EndpointState>();
    const live = new Set<string>();
    for (const route of table.endpoints) {
      const byName = new Map<string, DeploymentState>();
      for (const d of route.deployments) {
        const connections = d.instances.map((a) => {
          live.add(a.instanceId);
          let c = this.connections.get(a.instanceId);
          if (c === undefined || !c.isOpen || c.address.socketPath !== a.socketPath) {
            c = new InstanceConnection(a);
            this.connections.set(a.instanceId, c);
          }
          return c;
        });
        byName.set(d.name.toLowerCase(), { route: d, stats: this.statsOf(route.name, d.name), connections, next: 0 });
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
        byName,
        cumulative,
        targets,
        mirror,
        mirrorPercent: mirror ? route.mirror!.percent : 0,
      });
    }
    for (const [id, c] of this.connections) {
      if (!live.has(id)) {
        c.close();
        this.connections.delete(id);
      }
    }
    this.endpoints = endpoints;
    this.version = table.version;
  }

  /** Counters of one deployment (zeros if it never served). */
  statsOf(endpoint: string, deployment: string): DeploymentStats {
    const key = `${endpoint}/${deployment}`;
    let s = this.stats.get(key);
    if (s === undefined) {
      s = { mirrorSent: 0, mirrorAnswered: 0, mirrorErrors: 0, mirrorFailed: 0, mirrorDropped: 0, mirrorInflight: 0, mirrorLatencyMs: 0 };
      this.stats.set(key, s);
    }
    return s;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const url = req.url ?? '/';
    if (!url.startsWith(SCORE_PREFIX)) {
      if (url === '/healthz' || url === '/') return reply(res, 200, '{"status":"Healthy"}');
      return reply(res, 404, JSON.stringify({ message: 'Not found. Scoring URIs look like /endpoints/<endpoint-name>/score' }));
    }
    const slash = url.indexOf('/', SCORE_PREFIX.length);
    const name = slash < 0 ? url.slice(SCORE_PREFIX.length) : url.slice(SCORE_PREFIX.length, slash);
    const rest = slash < 0 ? '' : url.slice(slash);
    const endpoint = this.endpoints.get(name);
    if (endpoint === undefined) return reply(res, 404, JSON.stringify({ message: `Endpoint '${name}' not found` }));
    if (!(rest === '/score' || rest.startsWith('/score?'))) {
      return reply(res, 404, JSON.stringify({ message: `Not found: ${rest || '/'}. The scoring URI is ${SCORE_PREFIX}${name}/score` }));
    }
    if (!this.authorized(endpoint, req.headers.authorization)) {
      return reply(res, 401, JSON.stringify({ message: 'Unauthorized: a valid key or token is required in the Authorization header (Bearer <key>)' }));
    }

    let deployment: DeploymentState | undefined;
    let mirror: DeploymentState | null = null;
    const pinned = req.headers['azureml-model-deployment'];
    if (typeof pinned === 'string' && pinned !== '') {
      // Any deployment may be pinned, whatever its weight; a pinned request is never mirrored (contract §3).
      deployment = endpoint.byName.get(pinned.toLowerCase());
      if (deployment === undefined) return reply(res, 404, JSON.stringify({ message: `Deployment '${pinned}' not found in endpoint '${name}'` }));
    } else {
      deployment = pickWeighted(endpoint);
      if (deployment === undefined) return reply(res, 404, NO_DEPLOYMENT);
      if (endpoint.mirror !== null && Math.random() * 100 < endpoint.mirrorPercent) mirror = endpoint.mirror;
    }

    const declared = Number(req.headers['content-length']);
    if (declared > this.maxBodyBytes) {
      res.setHeader('connection', 'close');
      return reply(res, 413, JSON.stringify({ message: `Request body larger than ${this.maxBodyBytes} bytes` }));
    }
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > this.maxBodyBytes) {
        tooLarge = true;
        chunks.length = 0;
        return;
      }
      if (!tooLarge) chunks.push(c);
    });
    req.on('end', () => {
      if (tooLarge) {
        res.setHeader('connection', 'close');
        return reply(res, 413, JSON.stringify({ message: `Request body larger than ${this.maxBodyBytes} bytes` }));
      }
      const body = chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, size);
      this.forward(req, res, deployment!, body, rest, mirror);
    });
  }

  private forward(req: IncomingMessage, res: ServerResponse, deployment: DeploymentState, body: Buffer, path: string, mirror: DeploymentState | null): void {
    const requestId = randomUUID();
    const headers: [string, string][] = [];
    const raw = req.rawHeaders;
    let clientRequestId: string | undefined;
    for (let i = 0; i < raw.length; i += 2) {
      const k = raw[i].toLowerCase();
      if (HOP_BY_HOP.has(k) || k === 'x-request-id') continue;
      if (k === 'x-ms-client-request-id') clientRequestId = sanitizeClientRequestId(raw[i + 1]);
      headers.push([k, raw[i + 1]]);
    }
    // AML overrides x-request-id so it is always a GUID of its own (contract §4.3).
    headers.push(['x-request-id', requestId]);
    const deploymentName = deployment.route.name;
    const timeoutMs = deployment.route.requestTimeoutMs;
    const conn = pickInstance(deployment);
    if (conn === undefined) {
      return reply(res, 503, JSON.stringify({ message: `Deployment '${deploymentName}' has no ready instance` }), requestId, deploymentName);
    }
    const ex: Exchange = {
      deadline: performance.now() + timeoutMs,
      onResponse(status, modelHeaders, responseBody) {
        if (res.destroyed) return;
        const out: [string, string][] = [];
        let contentType = JSON_TYPE;
        for (const [k, v] of modelHeaders) {
          if (k === 'content-type') contentType = v;
          else if (k !== 'content-length' && k !== 'x-request-id' && k !== 'connection' && k !== 'transfer-encoding') out.push([k, v]);
        }
        out.push(['content-type', contentType], ['x-request-id', requestId], ['azureml-model-deployment', deploymentName]);
        if (clientRequestId !== undefined) out.push(['x-ms-client-request-id', clientRequestId]);
        let code = status;
        if (status !== 200) {
          // The managed front end turns any non-200 from the model into 424 and passes the model's
          // code and reason in headers (contract §4.2).
          out.push(['ms-azureml-model-error-statuscode', String(status)], ['ms-azureml-model-error-reason', reasonPhrase(status)]);
          code = 424;
        }
        out.push(['content-length', String(responseBody.length)]);
        res.writeHead(code, out.flat() as unknown as string[]);
        res.end(responseBody);
      },
      onFailure(reason) {
        if (res.destroyed) return;
        if (reason === 'timeout') {
          reply(res, 408, JSON.stringify({ message: `Request timed out after ${timeoutMs} ms (request_timeout_ms of deployment '${deploymentName}')` }), requestId, deploymentName);
        } else {
          reply(res, 502, JSON.stringify({ message: `The instance of deployment '${deploymentName}' closed the connection before answering` }), requestId, deploymentName);
        }
      },
    };
    conn.send(req.method ?? 'POST', path, headers, body, ex);
    // After the live request, in the same turn: its frame is queued first, and the copy shares the body
    // and headers (no copies made).
    if (mirror !== null) sendMirror(mirror, req.method ?? 'POST', path, headers, body);
  }

  private authorized(endpoint: EndpointState, header: string | undefined): boolean {
    if (header === undefined || header.length < 8 || !header.startsWith('Bearer ')) return false;
    const credential = header.slice(7);
    if (endpoint.route.authMode === 'key') {
      const digest = createHash('sha256').update(credential).digest();
      let ok = false;
      // Compare against every key, always, so timing tells nothing about which matched.
      for (const h of endpoint.keyHashes) ok = timingSafeEqual(digest, h) || ok;
      return ok;
    }
    return endpoint.route.tokenSecret !== undefined && verifyToken(credential, endpoint.route.name, endpoint.route.tokenSecret);
  }
}

/** Fire and forget: the client never waits for, or sees, the mirror's answer; failures are only counted. */
function sendMirror(d: DeploymentState, method: string, path: string, headers: [string, string][], body: Buffer): void {
  const stats = d.stats;
  const conn = pickInstance(d);
  if (conn === undefined || stats.mirrorInflight >= MIRROR_MAX_INFLIGHT) {
    stats.mirrorDropped++;
    return;
  }
  stats.mirrorSent++;
  stats.mirrorInflight++;
  const started = performance.now();
  conn.send(method, path, headers, body, {
    deadline: started + d.route.requestTimeoutMs,
    onResponse(status) {
      stats.mirrorInflight--;
      stats.mirrorAnswered++;
      if (status !== 200) stats.mirrorErrors++;
      stats.mirrorLatencyMs += performance.now() - started;
    },
    onFailure() {
      stats.mirrorInflight--;
      stats.mirrorFailed++;
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

/** Least outstanding requests; ties go round-robin. */
function pickInstance(d: DeploymentState): InstanceConnection | undefined {
  const list = d.connections;
  const n = list.length;
  if (n === 0) return undefined;
  if (n === 1) return list[0];
  const start = d.next;
  d.next = (start + 1) % n;
  let best = list[start % n];
  for (let i = 1; i < n; i++) {
    const c = list[(start + i) % n];
    if (c.outstanding < best.outstanding) best = c;
  }
  return best;
}

/** Azure keeps only alphanumerics, hyphens and underscores, truncated to 40 characters (contract §4.3). */
function sanitizeClientRequestId(value: string): string {
  return value.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
}

function reply(res: ServerResponse, status: number, body: string, requestId?: string, deployment?: string): void {
  if (res.headersSent) return;
  res.statusCode = status;
  res.setHeader('content-type', JSON_TYPE);
  res.setHeader('x-request-id', requestId ?? randomUUID());
  if (deployment !== undefined) res.setHeader('azureml-model-deployment', deployment);
  res.end(body);
}

const REASONS: Record<number, string> = {
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Method Not Allowed', 408: 'Request Timeout',
  413: 'Payload Too Large', 415: 'Unsupported Media Type', 422: 'Unprocessable Entity', 429: 'Too Many Requests',
  431: 'Request Header Fields Too Large', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable', 504: 'Gateway Timeout',
};

function reasonPhrase(status: number): string {
  return REASONS[status] ?? 'Error';
}
