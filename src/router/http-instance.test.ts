// Custom containers (BYOC) behind the router: real node:http servers on 127.0.0.1 stand in for a
// container's scoring route, a real Router serves routing tables with `http` instance addresses, and a
// framed fake instance (Unix socket) shares an endpoint with them. Also the HTTP probes
// (backend/process/probe.ts httpProbeOnce, startProbesWith) against the same kind of servers.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, createServer as createHttpServer, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../compile/routing.js';
import type { DeploymentRoute, EndpointRoute, InstanceAddress, RoutingTable } from '../ir/types.js';
import { decodeRequest, encodeResponseHead, FRAME_REQUEST, FrameReader, type RequestFrame } from '../protocol/frame.js';
import { httpProbeOnce, startProbesWith } from '../backend/process/probe.js';
import { Router } from './router.js';

// ---------------------------------------------------------------------------------------------------
// A custom container's scoring route: an HTTP server whose behaviour each test sets

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: Buffer;
}
type Handler = (req: IncomingMessage, body: Buffer, res: ServerResponse) => void;
const echo: Handler = (req, body, res) => {
  res.writeHead(200, { 'content-type': 'application/json', 'x-ms-run-fn-exec-ms': '3' });
  res.end(JSON.stringify({ echo: body.toString(), url: req.url }));
};

class FakeContainer {
  readonly seen: Seen[] = [];
  /** Requests whose connection closed before they were answered (the router aborted them). */
  aborted = 0;
  connections = 0;
  handler: Handler = echo;
  private readonly server: HttpServer;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor() {
    this.server = createHttpServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        this.seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        this.handler(req, body, res);
      });
      res.on('close', () => {
        if (!res.writableFinished) this.aborted++;
      });
    });
    this.server.on('connection', (s: Socket) => {
      this.connections++;
      this.sockets.add(s);
      s.on('close', () => this.sockets.delete(s));
    });
  }

  async listen(port = 0): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this.port;
  }

  reset(): void {
    this.seen.length = 0;
    this.aborted = 0;
    this.connections = 0;
    this.handler = echo;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** A framed instance (infergate's own host) that answers every REQUEST 200 with `{"framed": true}`. */
class FramedInstance {
  readonly requests: RequestFrame[] = [];
  private readonly server: NetServer;
  private readonly sockets = new Set<Socket>();

  constructor(readonly socketPath: string) {
    this.server = createNetServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      const reader = new FrameReader((frame, type, id) => {
        if (type !== FRAME_REQUEST) return;
        this.requests.push(decodeRequest(Buffer.from(frame)));
        const body = Buffer.from('{"framed":true}');
        socket.write(Buffer.concat([encodeResponseHead(id, 200, [['content-type', 'application/json']], body.length), body]));
      });
      socket.on('data', (c: Buffer) => reader.push(c));
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------------
// Tables, client

const KEY = 'primary-key-for-tests-0123456789';
const SCORING_PATH = '/v1/models/half_plus_two:predict';
let version = 0;

function httpAddress(id: string, c: FakeContainer, path = SCORING_PATH): InstanceAddress {
  return { instanceId: id, transport: 'http', host: '127.0.0.1', port: c.port, path };
}

function dep(name: string, instances: InstanceAddress[], over: Partial<DeploymentRoute> = {}): DeploymentRoute {
  return { name, requestTimeoutMs: 5000, maxConcurrentRequestsPerInstance: 0, maxQueueWaitMs: 500, scaleFromZero: false, instances, ...over };
}

function endpoint(deployments: DeploymentRoute[], traffic: Record<string, number>, mirror: EndpointRoute['mirror'] = null): RoutingTable {
  return {
    version: ++version,
    endpoints: [{ name: 'ep', authMode: 'key', keyHashes: [sha256Hex(KEY)], deployments, traffic: Object.entries(traffic).map(([deployment, weight]) => ({ deployment, weight })), mirror }],
  };
}

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  rawHeaders: string[];
  body: string;
}

const clientAgent = new Agent({ keepAlive: true, maxSockets: 32 });

function call(path: string, o: { body?: string | Buffer; headers?: Record<string, string>; method?: string } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers = { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...o.headers };
    const req = httpRequest({ host: '127.0.0.1', port, path, method: o.method ?? 'POST', headers, agent: clientAgent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, rawHeaders: res.rawHeaders, body: Buffer.concat(chunks).toString() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(o.body ?? (o.method === 'GET' ? undefined : '{"instances":[1.0,2.0,5.0]}'));
  });
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------------
// Fixture

let dir: string;
let router: Router;
let port: number;
let container: FakeContainer;
let framed: FramedInstance;
/** Draws for the weighted split and the mirror roll: alternately the first and the second half. */
let draws = 0;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ig-http-instance-'));
  container = new FakeContainer();
  await container.listen();
  framed = new FramedInstance(join(dir, 'blue-0.sock'));
  await framed.listen();
  router = new Router({ maxBodyBytes: 1024 * 1024, maxResponseBytes: 256 * 1024, streamBodyThresholdBytes: 16 * 1024, random: () => (draws++ % 2 === 0 ? 0.25 : 0.75) });
  port = (await router.listen(0, '127.0.0.1')).port;
});

after(async () => {
  clientAgent.destroy();
  await router.close();
  await container.close();
  await framed.close();
  rmSync(dir, { recursive: true, force: true });
});

function only(over: Partial<DeploymentRoute> = {}): void {
  container.reset();
  router.setTable(endpoint([dep('byoc', [httpAddress('byoc-0', container)], over)], { byoc: 100 }));
}

// ---------------------------------------------------------------------------------------------------
// Scoring

test('scoring reaches the scoring route with the query and body; 200 passes through with its body and content-type', async () => {
  only();
  container.handler = (_req, body, res) => {
    res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8', 'x-ms-run-fn-exec-ms': '7', 'x-request-id': 'the-containers-own' });
    res.end(`got ${body.length} bytes`);
  };
  const body = '{"instances":[1.0,2.0,5.0]}';
  const r = await call('/endpoints/ep/score?verbose=1&x=%20y', { body, headers: { 'x-ms-client-request-id': 'client-abc', 'x-custom': 'kept' } });
  assert.equal(r.status, 200);
  assert.equal(r.body, `got ${body.length} bytes`);
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.headers['x-ms-run-fn-exec-ms'], '7');
  assert.equal(r.rawHeaders.filter((h, i) => i % 2 === 0 && h.toLowerCase() === 'date').length, 1, "the router's date only");
  assert.equal(r.headers['azureml-model-deployment'], 'byoc');
  assert.match(String(r.headers['x-request-id']), GUID, "the router's request id, not the container's");

  assert.equal(container.seen.length, 1);
  const s = container.seen[0];
  assert.equal(s.method, 'POST');
  assert.equal(s.url, `${SCORING_PATH}?verbose=1&x=%20y`);
  assert.equal(s.body.toString(), body);
  assert.equal(s.headers['content-length'], String(body.length));
  assert.equal(s.headers['content-type'], 'application/json');
  assert.equal(s.headers['x-custom'], 'kept');
  assert.equal(s.headers['x-ms-client-request-id'], 'client-abc');
  assert.equal(s.headers['x-request-id'], r.headers['x-request-id'], 'the container sees the id the client gets');
  assert.equal(s.headers.authorization, undefined, "the endpoint's key is not the container's business");
  assert.equal(s.headers.host, `127.0.0.1:${container.port}`);

  // No query: the path alone; a scoring path with a query of its own gets the client's joined with &.
  await call('/endpoints/ep/score');
  assert.equal(container.seen[1].url, SCORING_PATH);
  router.setTable(endpoint([dep('byoc', [httpAddress('byoc-0', container, '/score?model=a')])], { byoc: 100 }));
  await call('/endpoints/ep/score?b=2');
  assert.equal(container.seen[2].url, '/score?model=a&b=2');
});

test("a non-200 answer from the container becomes 424 with Azure's model-error headers and its body", async () => {
  only();
  container.handler = (_req, _body, res) => {
    res.writeHead(500, { 'content-type': 'application/json' });
    res.end('{"error":"boom"}');
  };
  const r = await call('/endpoints/ep/score');
  assert.equal(r.status, 424);
  assert.equal(r.headers['ms-azureml-model-error-statuscode'], '500');
  assert.equal(r.headers['ms-azureml-model-error-reason'], 'Internal Server Error');
  assert.equal(r.headers['azureml-model-deployment'], 'byoc');
  assert.equal(r.body, '{"error":"boom"}');

  container.handler = (_req, _body, res) => {
    res.writeHead(400);
    res.end('bad input');
  };
  const r2 = await call('/endpoints/ep/score');
  assert.equal(r2.status, 424);
  assert.equal(r2.headers['ms-azureml-model-error-statuscode'], '400');
  assert.equal(r2.headers['content-type'], 'application/json', 'untyped answers get the default type, as framed ones');
});

test('a container that resets the connection mid-request gets 502; so does one that refuses it', async () => {
  only();
  container.handler = (req) => req.socket.destroy();
  const r = await call('/endpoints/ep/score');
  assert.equal(r.status, 502);
  assert.match(JSON.parse(r.body).message, /byoc/);
  assert.equal(container.seen.length, 1, 'a request the container may have run is not sent again');

  // Nothing listens on the port any more: refused before anything was written.
  const gone = new FakeContainer();
  const goneId = `gone-${Date.now()}`;
  await gone.listen();
  await gone.close();
  router.setTable(endpoint([dep('byoc', [httpAddress(goneId, gone)])], { byoc: 100 }));
  const r2 = await call('/endpoints/ep/score');
  assert.equal(r2.status, 502);
});

test('an answer past maxResponseBytes is not buffered: 502', async () => {
  only();
  container.handler = (_req, _body, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    // Chunked, so the bound is found while reading, not from content-length.
    for (let i = 0; i < 40; i++) res.write(Buffer.alloc(16 * 1024, 1));
    res.end();
  };
  const r = await call('/endpoints/ep/score');
  assert.equal(r.status, 502);
  // Under the bound: passed whole.
  // The failed channel is avoided for a while (as a framed one); a new table replaces it at once.
  only();
  container.handler = (_req, _body, res) => res.end(Buffer.alloc(200 * 1024, 2));
  const ok = await call('/endpoints/ep/score');
  assert.equal(ok.status, 200);
  assert.equal(ok.body.length, 200 * 1024);
});

test("request_timeout_ms: 408, and the container's request is aborted", async () => {
  only({ requestTimeoutMs: 200 });
  container.handler = () => {}; // never answers
  const started = Date.now();
  const r = await call('/endpoints/ep/score');
  assert.equal(r.status, 408);
  assert.ok(Date.now() - started < 2000, 'answered at the deadline');
  await until(() => container.aborted === 1, 'the container to see its request aborted');
});

test('keep-alive: many requests over few connections, at most max_concurrent_requests_per_instance at once', async () => {
  only({ maxConcurrentRequestsPerInstance: 4, maxQueueWaitMs: 5000 });
  let inFlight = 0;
  let peak = 0;
  container.handler = (req, body, res) => {
    inFlight++;
    peak = Math.max(peak, inFlight);
    setImmediate(() => {
      inFlight--;
      echo(req, body, res);
    });
  };
  const n = 200;
  let next = 0;
  const statuses: number[] = [];
  // 8 clients at once: twice the limit, so requests also queue in the router (Azure's bound: 2 × 4 × 1).
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (next < n) {
        next++;
        statuses.push((await call('/endpoints/ep/score')).status);
      }
    }),
  );
  assert.equal(statuses.length, n);
  assert.deepEqual([...new Set(statuses)], [200]);
  assert.equal(container.seen.length, n);
  assert.ok(container.connections <= 4, `${container.connections} connections for ${n} requests`);
  assert.ok(peak <= 4, `peak ${peak} at the container`);
});

test('an address that changes (a new port) replaces the connection; swagger.json of a custom container is 404', async () => {
  only();
  assert.equal((await call('/endpoints/ep/score')).status, 200);
  const moved = new FakeContainer();
  await moved.listen();
  try {
    router.setTable(endpoint([dep('byoc', [httpAddress('byoc-0', moved)])], { byoc: 100 }));
    const r = await call('/endpoints/ep/score');
    assert.equal(r.status, 200);
    assert.equal(moved.seen.length, 1);
    assert.equal(container.seen.length, 1, 'the old port gets nothing more');
  } finally {
    await moved.close();
  }
  only();
  const s = await call('/endpoints/ep/swagger.json', { method: 'GET' });
  assert.equal(s.status, 404);
  assert.equal(container.seen.length, 0, 'only scoring reaches a custom container');
});

test('a large body is streamed to the container (chunked) and arrives whole', async () => {
  only();
  container.handler = (_req, body, res) => res.end(JSON.stringify({ bytes: body.length, sum: body.reduce((a, b) => a + b, 0) }));
  const big = Buffer.alloc(300 * 1024);
  for (let i = 0; i < big.length; i++) big[i] = i % 251;
  const r = await call('/endpoints/ep/score', { body: big, headers: { 'content-type': 'application/octet-stream' } });
  assert.equal(r.status, 200);
  assert.deepEqual(JSON.parse(r.body), { bytes: big.length, sum: big.reduce((a, b) => a + b, 0) });
  assert.equal(container.seen[0].headers['transfer-encoding'], 'chunked', 'streamed, not buffered whole');
});

test('a container that answers a streamed upload before reading it (413) does not keep the socket: the next request is served', async () => {
  // One socket (max_concurrent_requests_per_instance 1): a leaked one would leave nothing to serve with.
  const early = createHttpServer((req, res) => {
    if (req.headers['transfer-encoding'] === 'chunked') {
      // Node's server keeps such a connection open waiting for the body: the client must let it go.
      res.writeHead(413, { 'content-type': 'application/json' }).end('{"message":"too large"}');
      return;
    }
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
  });
  await new Promise<void>((resolve) => early.listen(0, '127.0.0.1', resolve));
  const earlyPort = (early.address() as AddressInfo).port;
  try {
    router.setTable(endpoint([dep('byoc', [{ instanceId: 'early-0', transport: 'http', host: '127.0.0.1', port: earlyPort, path: SCORING_PATH }], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 4000 })], { byoc: 100 }));
    const refused = await call('/endpoints/ep/score', { body: Buffer.alloc(600 * 1024, 7), headers: { 'content-type': 'application/octet-stream' } });
    assert.equal(refused.status, 424, refused.body);
    const started = Date.now();
    const next = await call('/endpoints/ep/score');
    assert.equal(next.status, 200, next.body);
    assert.ok(Date.now() - started < 2000, `the next request waited ${Date.now() - started} ms for a socket`);
  } finally {
    early.closeAllConnections();
    await new Promise((resolve) => early.close(resolve));
  }
});

test('mixed endpoint: a framed deployment and a custom container split traffic 50/50; pins and the mirror reach either', async () => {
  container.reset();
  framed.requests.length = 0;
  const framedAddress: InstanceAddress = { instanceId: 'blue-0', transport: 'framed', socketPath: framed.socketPath };
  router.setTable(endpoint([dep('blue', [framedAddress]), dep('byoc', [httpAddress('byoc-0', container)])], { blue: 50, byoc: 50 }));
  draws = 0;
  const served: string[] = [];
  for (let i = 0; i < 10; i++) {
    const r = await call('/endpoints/ep/score');
    assert.equal(r.status, 200);
    served.push(String(r.headers['azureml-model-deployment']));
    assert.equal(r.body.includes('framed'), r.headers['azureml-model-deployment'] === 'blue');
  }
  assert.deepEqual(served, ['blue', 'byoc', 'blue', 'byoc', 'blue', 'byoc', 'blue', 'byoc', 'blue', 'byoc']);
  assert.equal(framed.requests.length, 5);
  assert.equal(container.seen.length, 5);

  assert.equal((await call('/endpoints/ep/score', { headers: { 'azureml-model-deployment': 'byoc' } })).headers['azureml-model-deployment'], 'byoc');
  assert.equal((await call('/endpoints/ep/score', { headers: { 'azureml-model-deployment': 'blue' } })).headers['azureml-model-deployment'], 'blue');

  // Mirror traffic to the custom container: every roll draws 0.25 or 0.75, so 100% copies every request.
  router.setTable(endpoint([dep('blue', [framedAddress]), dep('byoc', [httpAddress('byoc-0', container)])], { blue: 100 }, { deployment: 'byoc', percent: 100 }));
  container.reset();
  const before = router.statsOf('ep', 'byoc');
  for (let i = 0; i < 3; i++) assert.equal((await call('/endpoints/ep/score', { body: `{"n":${i}}` })).headers['azureml-model-deployment'], 'blue');
  await until(() => router.statsOf('ep', 'byoc').mirrorAnswered - before.mirrorAnswered === 3, 'three mirror answers from the container');
  assert.deepEqual(container.seen.map((s) => s.body.toString()).sort(), ['{"n":0}', '{"n":1}', '{"n":2}']);
});

// ---------------------------------------------------------------------------------------------------
// HTTP probes (a custom container's liveness_route / readiness_route)

test('httpProbeOnce: 200-399 pass; 500, refused and a timeout fail', async () => {
  const probe = new FakeContainer();
  await probe.listen();
  try {
    const answer = (status: number): Handler => (_req, _body, res) => {
      res.writeHead(status, status === 302 ? { location: '/elsewhere' } : {});
      res.end();
    };
    probe.handler = answer(200);
    assert.equal(await httpProbeOnce('127.0.0.1', probe.port, '/v1/models/half_plus_two', 1000), true);
    assert.equal(probe.seen[0].method, 'GET');
    assert.equal(probe.seen[0].url, '/v1/models/half_plus_two');
    probe.handler = answer(302);
    assert.equal(await httpProbeOnce('127.0.0.1', probe.port, '/', 1000), true);
    probe.handler = answer(500);
    assert.equal(await httpProbeOnce('127.0.0.1', probe.port, '/', 1000), false);
    probe.handler = answer(404);
    assert.equal(await httpProbeOnce('127.0.0.1', probe.port, '/', 1000), false);

    probe.handler = () => {}; // hangs
    const started = Date.now();
    assert.equal(await httpProbeOnce('127.0.0.1', probe.port, '/', 150), false);
    assert.ok(Date.now() - started < 1000, 'fails at its timeout');
    await until(() => probe.aborted >= 1, 'the hung probe connection to close');
  } finally {
    await probe.close();
  }
  assert.equal(await httpProbeOnce('127.0.0.1', probe.port, '/', 1000), false, 'refused');
});

test('startProbesWith: readiness over HTTP goes unready after failureThreshold failures, ready after successThreshold passes', async () => {
  const c = new FakeContainer();
  await c.listen();
  let status = 200;
  c.handler = (_req, _body, res) => {
    res.writeHead(status);
    res.end();
  };
  const events: string[] = [];
  const settings = { initialDelay: 0, period: 0.02, timeout: 0.5, successThreshold: 2, failureThreshold: 3 };
  const probe = (path: string) => (t: number) => httpProbeOnce('127.0.0.1', c.port, path, t);
  const stop = startProbesWith(probe('/live'), probe('/ready'), { ...settings, failureThreshold: 1000 }, settings, {
    onReadiness: (ready) => events.push(ready ? 'ready' : 'unready'),
    onDead: () => events.push('dead'),
  });
  try {
    await until(() => c.seen.some((s) => s.url === '/live') && c.seen.some((s) => s.url === '/ready'), 'both routes probed');
    status = 503;
    await until(() => events.includes('unready'), 'unready');
    status = 200;
    await until(() => events.includes('ready'), 'ready again');
    assert.deepEqual(events, ['unready', 'ready']);
  } finally {
    stop();
    await c.close();
  }
});
