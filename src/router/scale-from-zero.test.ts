// Scale from zero in the router (issue 12 item 5), over real sockets: a Router on 127.0.0.1:0, and fake
// instances on Unix sockets speaking the framed instance protocol that "start" when a test puts them in a
// routing table, as the controller does once an instance is ready.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../compile/routing.js';
import type { DeploymentRoute, EndpointRoute, RoutingTable } from '../ir/types.js';
import { decodeRequest, encodeResponseHead, FRAME_REQUEST, FrameReader } from '../protocol/frame.js';
import { deploymentMeters } from '../telemetry/metrics.js';
import { Router, type RouterOptions } from './router.js';

const KEY = 'primary-key-for-tests-0123456789';

/** Answers every request with 200 and its own name, so a test sees which instance served it. */
class FakeInstance {
  requests = 0;
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  constructor(readonly name: string, readonly socketPath: string) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      const reader = new FrameReader((frame, type, id) => {
        if (type !== FRAME_REQUEST) return;
        decodeRequest(Buffer.from(frame));
        this.requests++;
        const body = Buffer.from(JSON.stringify({ served: this.name }));
        socket.write(Buffer.concat([encodeResponseHead(id, 200, [['content-type', 'application/json']], body.length), body]));
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
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

function dep(name: string, instances: FakeInstance[], over: Partial<DeploymentRoute> = {}): DeploymentRoute {
  return {
    name,
    requestTimeoutMs: 5000,
    maxConcurrentRequestsPerInstance: 1,
    maxQueueWaitMs: 500,
    scaleFromZero: true,
    instances: instances.map((i) => ({ instanceId: `${name}-${i.name}`, transport: 'framed', socketPath: i.socketPath })),
    ...over,
  };
}

let version = 0;
function table(deployments: DeploymentRoute[], traffic: Record<string, number>, mirror: EndpointRoute['mirror'] = null): RoutingTable {
  return {
    version: ++version,
    endpoints: [
      {
        name: 'ep',
        authMode: 'key',
        keyHashes: [sha256Hex(KEY)],
        deployments,
        traffic: Object.entries(traffic).map(([deployment, weight]) => ({ deployment, weight })),
        mirror,
      },
    ],
  };
}

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  /** When the answer came (performance.now()). */
  at: number;
}

const agent = new Agent({ keepAlive: true, maxSockets: 64 });

function call(port: number, o: { headers?: Record<string, string>; body?: Buffer; chunked?: boolean } = {}): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', authorization: `Bearer ${KEY}`, ...o.headers };
    const req = httpRequest({ host: '127.0.0.1', port, path: '/endpoints/ep/score', method: 'POST', headers, agent }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks).toString(), at: performance.now() }));
      res.on('error', reject);
    });
    req.on('error', reject);
    const body = o.body ?? Buffer.from('{"data":[1]}');
    if (o.chunked) {
      for (let i = 0; i < body.length; i += 65536) req.write(body.subarray(i, i + 65536));
      req.end();
    } else req.end(body);
  });
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

let dir: string;
let blue: FakeInstance;
let green: FakeInstance;
const routers: Router[] = [];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ig-zero-'));
  blue = new FakeInstance('blue-0', join(dir, 'blue-0.sock'));
  green = new FakeInstance('green-0', join(dir, 'green-0.sock'));
  await Promise.all([blue.listen(), green.listen()]);
});

after(async () => {
  agent.destroy();
  await Promise.all(routers.map((r) => r.close()));
  await Promise.all([blue.close(), green.close()]);
  rmSync(dir, { recursive: true, force: true });
});

/** A router whose onDemand calls are recorded; each test has its own (meters are per endpoint/deployment name). */
async function start(options: RouterOptions = {}): Promise<{ router: Router; port: number; demands: string[] }> {
  const demands: string[] = [];
  const router = new Router({ failedAuth: false, onDemand: (e, d) => void demands.push(`${e}/${d}`), ...options });
  routers.push(router);
  const port = (await router.listen(0, '127.0.0.1')).port;
  return { router, port, demands };
}

test('a request to a deployment scaled to zero waits, asks for an instance once, and is answered 200 when the instance appears', async () => {
  const { router, port, demands } = await start();
  const meters = deploymentMeters('ep', 'blue');
  router.setTable(table([dep('blue', [], { maxConcurrentRequestsPerInstance: 2 })], { blue: 100 }));
  const first = call(port);
  const second = call(port);
  await until(() => meters.queued === 2, 'both requests to be queued');
  assert.deepEqual(demands, ['ep/blue'], 'one cold start asked for, not one per request');
  // A table published meanwhile for another reason (still no instance) changes nothing.
  router.setTable(table([dep('blue', [], { maxConcurrentRequestsPerInstance: 2 })], { blue: 100 }));
  await sleep(30);
  assert.equal(meters.queued, 2);
  const readyAt = performance.now();
  router.setTable(table([dep('blue', [blue], { maxConcurrentRequestsPerInstance: 2 })], { blue: 100 }));
  const answers = await Promise.all([first, second]);
  for (const r of answers) {
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).served, 'blue-0');
    assert.equal(r.headers['azureml-model-deployment'], 'blue');
    assert.ok(r.at >= readyAt, 'answered only after the instance was in the table');
  }
  assert.equal(meters.queued, 0);
  assert.deepEqual(demands, ['ep/blue']);
  // Warm now: no more asking.
  assert.equal((await call(port)).status, 200);
  assert.deepEqual(demands, ['ep/blue']);
});

test('a cold request waits up to request_timeout_ms, not max_queue_wait_ms, then gets 408; the next one asks again', async () => {
  const { router, port, demands } = await start();
  const meters = deploymentMeters('ep', 'blue');
  router.setTable(table([dep('blue', [], { requestTimeoutMs: 300, maxQueueWaitMs: 50 })], { blue: 100 }));
  const t0 = performance.now();
  const r = await call(port);
  const waited = r.at - t0;
  assert.equal(r.status, 408, r.body);
  assert.match(JSON.parse(r.body).message, /timed out after 300 ms .*waiting for an instance of deployment 'blue' to start/);
  assert.ok(waited >= 290, `answered after ${waited.toFixed(0)} ms: the deadline, not max_queue_wait_ms (50 ms)`);
  assert.ok(waited < 2000, `answered after ${waited.toFixed(0)} ms`);
  assert.equal(meters.queued, 0);
  assert.deepEqual(demands, ['ep/blue']);
  // The start never came and nothing waits any more: the next request asks again.
  const again = call(port);
  await until(() => demands.length === 2, 'a second onDemand');
  assert.deepEqual(demands, ['ep/blue', 'ep/blue']);
  router.setTable(table([dep('blue', [blue], { requestTimeoutMs: 300, maxQueueWaitMs: 50 })], { blue: 100 }));
  assert.equal((await again).status, 200);
});

test('without scaleFromZero a deployment with no instance still gets 503 at once, and nothing is asked for', async () => {
  const { router, port, demands } = await start();
  router.setTable(table([dep('blue', [], { scaleFromZero: false })], { blue: 100 }));
  const r = await call(port);
  assert.equal(r.status, 503);
  assert.match(JSON.parse(r.body).message, /no ready instance/);
  assert.deepEqual(demands, []);
});

test('while it starts, the pending bound is that of one instance (2 × max_concurrent): one more gets 429, never 503', async () => {
  const { router, port, demands } = await start();
  const meters = deploymentMeters('ep', 'blue');
  router.setTable(table([dep('blue', [], { maxConcurrentRequestsPerInstance: 1 })], { blue: 100 }));
  const waiting = [call(port), call(port)];
  await until(() => meters.queued === 2, 'two queued');
  const third = await call(port);
  assert.equal(third.status, 429, third.body);
  assert.equal(third.headers['retry-after'], '1');
  assert.match(JSON.parse(third.body).message, /while an instance starts: at most 2/);
  router.setTable(table([dep('blue', [blue], { maxConcurrentRequestsPerInstance: 1 })], { blue: 100 }));
  for (const r of await Promise.all(waiting)) assert.equal(r.status, 200);
  assert.deepEqual(demands, ['ep/blue']);
});

test('traffic split 50/50 with a cold deployment: the warm one answers at once, the cold one waits for its instance', async () => {
  // Draws: below 0.5 → blue (warm), from 0.5 → green (cold).
  const draws = [0.7, 0.2];
  const { router, port, demands } = await start({ random: () => draws.shift() ?? 0.1 });
  const greenMeters = deploymentMeters('ep', 'green');
  router.setTable(table([dep('blue', [blue], { scaleFromZero: false }), dep('green', [])], { blue: 50, green: 50 }));
  const cold = call(port);
  await until(() => greenMeters.queued === 1, 'the green request to be queued');
  assert.deepEqual(demands, ['ep/green']);
  const warm = await call(port);
  assert.equal(warm.status, 200);
  assert.equal(JSON.parse(warm.body).served, 'blue-0', 'the warm deployment is not held up by the cold one');
  assert.equal(greenMeters.queued, 1);
  router.setTable(table([dep('blue', [blue], { scaleFromZero: false }), dep('green', [green])], { blue: 50, green: 50 }));
  const r = await cold;
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).served, 'green-0');
  assert.equal(r.headers['azureml-model-deployment'], 'green');
});

test('a request pinned by azureml-model-deployment to a cold deployment with 0% traffic waits and is served by it', async () => {
  const { router, port, demands } = await start();
  router.setTable(table([dep('blue', [blue], { scaleFromZero: false }), dep('green', [])], { blue: 100 }));
  const pinned = call(port, { headers: { 'azureml-model-deployment': 'GREEN' } });
  await until(() => demands.length === 1, 'onDemand');
  assert.deepEqual(demands, ['ep/green']);
  assert.equal(JSON.parse((await call(port)).body).served, 'blue-0', 'unpinned traffic still goes to blue');
  router.setTable(table([dep('blue', [blue], { scaleFromZero: false }), dep('green', [green])], { blue: 100 }));
  const r = await pinned;
  assert.equal(r.status, 200);
  assert.equal(JSON.parse(r.body).served, 'green-0');
});

test('a large or chunked body for a cold deployment is not refused at its head: it is buffered, queued and served', async () => {
  const { router, port, demands } = await start({ streamBodyThresholdBytes: 1024 });
  const meters = deploymentMeters('ep', 'blue');
  router.setTable(table([dep('blue', [], { maxConcurrentRequestsPerInstance: 2 })], { blue: 100 }));
  const big = Buffer.alloc(200 * 1024, 'a');
  const declared = call(port, { body: big });
  const chunked = call(port, { body: big, chunked: true });
  await until(() => meters.queued === 2, 'both bodies to be queued');
  assert.deepEqual(demands, ['ep/blue']);
  router.setTable(table([dep('blue', [blue], { maxConcurrentRequestsPerInstance: 2 })], { blue: 100 }));
  for (const r of await Promise.all([declared, chunked])) assert.equal(r.status, 200, r.body);
});

test('a mirror deployment at zero is asked for an instance; copies are dropped until it has one, then sent', async () => {
  const { router, port, demands } = await start();
  const greenMeters = deploymentMeters('ep', 'green');
  const mirror = { deployment: 'green', percent: 100 };
  router.setTable(table([dep('blue', [blue], { scaleFromZero: false }), dep('green', [])], { blue: 100 }, mirror));
  const dropped = greenMeters.mirror.dropped;
  assert.equal((await call(port)).status, 200);
  assert.equal((await call(port)).status, 200);
  assert.deepEqual(demands, ['ep/green'], 'asked once for both copies');
  assert.equal(greenMeters.mirror.dropped - dropped, 2);
  const before = green.requests;
  router.setTable(table([dep('blue', [blue], { scaleFromZero: false }), dep('green', [green])], { blue: 100 }, mirror));
  assert.equal((await call(port)).status, 200);
  await until(() => green.requests === before + 1, 'the copy to reach green');
});

test('a deployment removed while requests wait for its instance: they get 503, counts return to 0', async () => {
  const { router, port } = await start();
  const meters = deploymentMeters('ep', 'blue');
  router.setTable(table([dep('blue', [])], { blue: 100 }));
  const waiting = call(port);
  await until(() => meters.queued === 1, 'queued');
  router.setTable(table([dep('other', [blue], { scaleFromZero: false })], { other: 100 }));
  assert.equal((await waiting).status, 503);
  assert.equal(meters.queued, 0);
});

/** Keeps every request unanswered until release(): its one slot stays busy, so the next request queues. */
class HoldingInstance {
  readonly held: Array<() => void> = [];
  private readonly sockets = new Set<Socket>();
  private readonly server: Server;

  constructor(readonly socketPath: string) {
    this.server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      const reader = new FrameReader((_frame, type, id) => {
        if (type !== FRAME_REQUEST) return;
        const body = Buffer.from(JSON.stringify({ served: 'held' }));
        this.held.push(() => socket.write(Buffer.concat([encodeResponseHead(id, 200, [['content-type', 'application/json']], body.length), body])));
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
    });
  }
  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }
  release(): void {
    for (const answer of this.held.splice(0)) answer();
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

test('requests queued behind a busy instance when the deployment is scaled to zero ask for an instance and are answered by it', async () => {
  const busy = new HoldingInstance(join(dir, 'held-0.sock'));
  await busy.listen();
  try {
    const { router, port, demands } = await start();
    const meters = deploymentMeters('ep', 'blue');
    const opts = { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 50, requestTimeoutMs: 5000 };
    const heldRoute = { ...dep('blue', [], opts), instances: [{ instanceId: 'blue-held-0', transport: 'framed' as const, socketPath: busy.socketPath }] };
    router.setTable(table([heldRoute], { blue: 100 }));
    const inFlight = call(port);
    await until(() => busy.held.length === 1, 'the first request to reach the instance');
    const queued = call(port);
    await until(() => meters.queued === 1, 'the second request to queue behind it');
    // The autoscaler took the deployment to zero: its instance left the table (it finishes what it has).
    router.setTable(table([dep('blue', [], opts)], { blue: 100 }));
    await until(() => demands.length === 1, 'an instance to be asked for the queued request', 1000);
    assert.deepEqual(demands, ['ep/blue']);
    busy.release();
    assert.equal((await inFlight).status, 200, 'the draining instance answers what it had');
    // Longer than max_queue_wait_ms: a request waiting for a cold start waits to its deadline instead.
    await sleep(120);
    assert.equal(meters.queued, 1);
    router.setTable(table([dep('blue', [blue], opts)], { blue: 100 }));
    const r = await queued;
    assert.equal(r.status, 200, r.body);
    assert.equal(JSON.parse(r.body).served, 'blue-0');
  } finally {
    await busy.close();
  }
});

test('a cold start asked for and lost is asked for again by the requests still waiting', async () => {
  const { router, port, demands } = await start({ demandAgainMs: 100 });
  router.setTable(table([dep('blue', [], { requestTimeoutMs: 5000 })], { blue: 100 }));
  const waiting = call(port);
  await until(() => demands.length === 1, 'the first onDemand');
  // Nothing comes (the controller's count went back to zero before the instance was ready).
  await until(() => demands.length === 2, 'onDemand again for the same waiting request', 2000);
  router.setTable(table([dep('blue', [blue], { requestTimeoutMs: 5000 })], { blue: 100 }));
  assert.equal((await waiting).status, 200);
});
