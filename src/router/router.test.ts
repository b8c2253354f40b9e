// The router over real sockets: a Router on 127.0.0.1:0 in front of fake instances, each a net.Server on a
// temporary Unix socket that speaks the framed instance protocol with a behaviour each test controls.

import { after, before, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../compile/routing.js';
import type { DeploymentRoute, EndpointRoute, RoutingTable } from '../ir/types.js';
import { decodeRequest, encodeResponseHead, FRAME_CANCEL, FRAME_INSTANCE_ERROR, FRAME_REQUEST, FrameReader, type RequestFrame } from '../protocol/frame.js';
import { issueToken, TOKEN_LIFETIME_MS } from '../util/token.js';
import { deploymentMeters } from '../telemetry/metrics.js';
import { Router } from './router.js';

// ---------------------------------------------------------------------------------------------------
// Fake instances

type Reply = (status: number, headers: [string, string][], body: string | Buffer) => void;
type Behaviour = (req: RequestFrame, reply: Reply, socket: Socket) => void;

const ok: Behaviour = (req, reply) => reply(200, [['content-type', 'application/json']], JSON.stringify({ echo: req.body.toString() }));

class FakeInstance {
  readonly requests: RequestFrame[] = [];
  readonly cancels: number[] = [];
  readonly sockets = new Set<Socket>();
  connections = 0;
  behaviour: Behaviour = ok;
  private readonly server: Server;

  constructor(readonly name: string, readonly socketPath: string) {
    this.server = createServer((socket) => {
      this.connections++;
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
      socket.on('error', () => {});
      const reader = new FrameReader((frame, type, id) => {
        if (type === FRAME_CANCEL) {
          this.cancels.push(id);
          return;
        }
        assert.equal(type, FRAME_REQUEST);
        const req = decodeRequest(Buffer.from(frame));
        this.requests.push(req);
        const reply: Reply = (status, headers, body) => {
          const b = typeof body === 'string' ? Buffer.from(body) : body;
          if (!socket.destroyed) socket.write(Buffer.concat([encodeResponseHead(id, status, headers, b.length), b]));
        };
        this.behaviour(req, reply, socket);
      });
      socket.on('data', (chunk: Buffer) => reader.push(chunk));
    });
  }

  listen(): Promise<void> {
    return new Promise((resolve) => this.server.listen(this.socketPath, resolve));
  }

  reset(): void {
    this.requests.length = 0;
    this.cancels.length = 0;
    this.behaviour = ok;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

// ---------------------------------------------------------------------------------------------------
// Routing tables by hand

const KEY1 = 'primary-key-for-tests-0123456789';
const KEY2 = 'secondary-key-for-tests-abcdefgh';
const SECRET = Buffer.from('token-secret-for-tests-0123456789').toString('base64url');

function dep(name: string, instances: FakeInstance[], over: Partial<DeploymentRoute> = {}): DeploymentRoute {
  return {
    name,
    requestTimeoutMs: 5000,
    // Unlimited (Azure's 0) unless a test is about admission: balancing is then least-outstanding alone.
    maxConcurrentRequestsPerInstance: 0,
    maxQueueWaitMs: 500,
    scaleFromZero: false,
    instances: instances.map((i) => ({ instanceId: `${name}-${i.name}`, transport: 'framed', socketPath: i.socketPath })),
    ...over,
  };
}

function keyEndpoint(name: string, deployments: DeploymentRoute[], traffic: Record<string, number>): EndpointRoute {
  return {
    name,
    authMode: 'key',
    keyHashes: [sha256Hex(KEY1), sha256Hex(KEY2)],
    deployments,
    traffic: Object.entries(traffic).map(([deployment, weight]) => ({ deployment, weight })),
    mirror: null,
  };
}

let version = 0;
const table = (...endpoints: EndpointRoute[]): RoutingTable => ({ version: ++version, endpoints });

// ---------------------------------------------------------------------------------------------------
// HTTP client

interface Res {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
  json: () => any;
  localPort: number | undefined;
  reusedSocket: boolean;
}

const keepAlive = new Agent({ keepAlive: true, maxSockets: 64 });

function call(
  path: string,
  o: { method?: string; headers?: Record<string, string>; body?: string | Buffer; key?: string | null; agent?: Agent; chunked?: boolean; port?: number } = {},
): Promise<Res> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json', ...o.headers };
    const key = o.key === undefined ? KEY1 : o.key;
    if (key !== null) headers.authorization = `Bearer ${key}`;
    const req = httpRequest({ host: '127.0.0.1', port: o.port ?? port, path, method: o.method ?? 'POST', headers, agent: o.agent ?? keepAlive }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString();
        resolve({
          status: res.statusCode!,
          headers: res.headers,
          body,
          json: () => JSON.parse(body),
          localPort: req.socket?.localPort,
          reusedSocket: req.reusedSocket,
        });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    if (o.chunked && o.body !== undefined) {
      // No content-length: the router must count while reading.
      const b = typeof o.body === 'string' ? Buffer.from(o.body) : o.body;
      for (let i = 0; i < b.length; i += 65536) req.write(b.subarray(i, i + 65536));
      req.end();
    } else {
      req.end(o.body ?? '{"data":[1]}');
    }
  });
}

async function until(cond: () => boolean, what: string, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------------
// Fixture: one router, a handful of instances, reset before every test

let dir: string;
let router: Router;
let port: number;
let blue: FakeInstance;
let blue2: FakeInstance;
let green: FakeInstance;
let instances: FakeInstance[];

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ig-router-'));
  blue = new FakeInstance('blue-0', join(dir, 'blue-0.sock'));
  blue2 = new FakeInstance('blue-1', join(dir, 'blue-1.sock'));
  green = new FakeInstance('green-0', join(dir, 'green-0.sock'));
  instances = [blue, blue2, green];
  await Promise.all(instances.map((i) => i.listen()));
  router = new Router({ maxBodyBytes: 64 * 1024 });
  port = (await router.listen(0, '127.0.0.1')).port;
});

after(async () => {
  keepAlive.destroy();
  await router.close();
  await Promise.all(instances.map((i) => i.close()));
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(() => {
  for (const i of instances) i.reset();
  // The default table: key endpoint, blue (all traffic) and green (0%); a token endpoint.
  router.setTable(
    table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 100 }), {
      name: 'token-endpoint',
      authMode: 'aml_token',
      keyHashes: [],
      tokenSecret: SECRET,
      deployments: [dep('blue', [blue])],
      traffic: [{ deployment: 'blue', weight: 100 }],
      mirror: null,
    }),
  );
});

// ---------------------------------------------------------------------------------------------------
// Auth

test('401 without an Authorization header, with a wrong key, or not Bearer', async () => {
  const variants: Record<string, string>[] = [{}, { authorization: 'Bearer wrong-key' }, { authorization: `Basic ${KEY1}` }, { authorization: 'Bearer ' }, { authorization: KEY1 }];
  for (const headers of variants) {
    const r = await call('/endpoints/my-endpoint/score', { key: null, headers });
    assert.equal(r.status, 401, JSON.stringify(headers));
    assert.match(r.json().message, /Unauthorized/);
  }
  assert.equal(blue.requests.length, 0, 'nothing reaches the instance');
});

test('the Bearer scheme is case-insensitive (RFC 9110 §11.1, RFC 6750), and may be followed by several spaces', async () => {
  for (const scheme of ['bearer', 'BEARER', 'BeArEr']) {
    const r = await call('/endpoints/my-endpoint/score', { key: null, headers: { authorization: `${scheme} ${KEY1}` } });
    assert.equal(r.status, 200, scheme);
  }
  assert.equal((await call('/endpoints/my-endpoint/score', { key: null, headers: { authorization: `Bearer   ${KEY2}` } })).status, 200);
  for (const bad of [`Bearerx ${KEY1}`, `Bearer`, `Bearer    `, `Beare ${KEY1}`]) {
    assert.equal((await call('/endpoints/my-endpoint/score', { key: null, headers: { authorization: bad } })).status, 401, bad);
  }
});

test('two Authorization headers are refused with 400, whichever of them is valid', async () => {
  for (const pair of [[`Bearer ${KEY1}`, 'Bearer wrong'], ['Bearer wrong', `Bearer ${KEY1}`], [`Bearer ${KEY1}`, `Bearer ${KEY1}`]]) {
    const r = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      // node:http joins repeated headers it knows; a raw header list sends them as two lines.
      const req = httpRequest({ host: '127.0.0.1', port, path: '/endpoints/my-endpoint/score', method: 'POST', headers: ['content-type', 'application/json', 'authorization', pair[0], 'authorization', pair[1]], agent: new Agent({ keepAlive: false }) }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end('{}');
    });
    assert.equal(r.status, 400, pair.join(' + '));
    assert.match(r.body, /more than one Authorization header/);
  }
  assert.equal(blue.requests.length, 0);
});

test('both keys are accepted', async () => {
  for (const key of [KEY1, KEY2]) {
    const r = await call('/endpoints/my-endpoint/score', { key });
    assert.equal(r.status, 200);
    assert.deepEqual(r.json(), { echo: '{"data":[1]}' });
  }
  assert.equal(blue.requests.length, 2);
});

test('token auth: a valid token passes; expired, other endpoint, other secret and keys do not', async () => {
  const valid = (await issueToken('token-endpoint', SECRET)).accessToken;
  assert.equal((await call('/endpoints/token-endpoint/score', { key: valid })).status, 200);
  const expired = (await issueToken('token-endpoint', SECRET, Date.now() - TOKEN_LIFETIME_MS - 1000)).accessToken;
  assert.equal((await call('/endpoints/token-endpoint/score', { key: expired })).status, 401);
  const otherEndpoint = (await issueToken('my-endpoint', SECRET)).accessToken;
  assert.equal((await call('/endpoints/token-endpoint/score', { key: otherEndpoint })).status, 401);
  const otherSecret = (await issueToken('token-endpoint', Buffer.from('another secret').toString('base64url'))).accessToken;
  assert.equal((await call('/endpoints/token-endpoint/score', { key: otherSecret })).status, 401);
  assert.equal((await call('/endpoints/token-endpoint/score', { key: KEY1 })).status, 401);
  // And a token is not a key.
  assert.equal((await call('/endpoints/my-endpoint/score', { key: valid })).status, 401);
  assert.equal(blue.requests.length, 1);
});

// ---------------------------------------------------------------------------------------------------
// Selecting a deployment

test('404 for an unknown endpoint and for paths that are not scoring URIs', async () => {
  const r = await call('/endpoints/nope/score');
  assert.equal(r.status, 404);
  assert.match(r.json().message, /nope/);
  assert.equal((await call('/endpoints/my-endpoint/other')).status, 404);
  assert.equal((await call('/somewhere')).status, 404);
  assert.equal((await call('/healthz', { method: 'GET', body: '' })).status, 200);
  assert.equal(blue.requests.length, 0);
});

test("404 with Azure's message when no deployment has a positive weight", async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], {})));
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 404);
  assert.equal(r.headers['content-type'], 'application/json');
  assert.deepEqual(r.json(), { message: "The endpoint doesn't have any valid deployment with positive weight" });
  // Auth still comes first.
  assert.equal((await call('/endpoints/my-endpoint/score', { key: 'wrong' })).status, 401);
});

test('the azureml-model-deployment header pins a deployment, even one with 0% traffic; case-insensitive', async () => {
  const r = await call('/endpoints/my-endpoint/score', { headers: { 'azureml-model-deployment': 'green' } });
  assert.equal(r.status, 200);
  assert.equal(r.headers['azureml-model-deployment'], 'green');
  assert.equal(green.requests.length, 1);
  assert.equal(blue.requests.length, 0);
  const upper = await call('/endpoints/my-endpoint/score', { headers: { 'azureml-model-deployment': 'GREEN' } });
  assert.equal(upper.status, 200);
  assert.equal(green.requests.length, 2);
  // Pinning works when no deployment has traffic at all.
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], {})));
  assert.equal((await call('/endpoints/my-endpoint/score', { headers: { 'azureml-model-deployment': 'blue' } })).status, 200);
  assert.equal(blue.requests.length, 1);
});

test('pinning an unknown deployment is a 404', async () => {
  const r = await call('/endpoints/my-endpoint/score', { headers: { 'azureml-model-deployment': 'purple' } });
  assert.equal(r.status, 404);
  assert.match(r.json().message, /purple/);
  assert.equal(blue.requests.length + green.requests.length, 0);
});

test('a 90/10 split sends 10% ± 3% of 2,000 requests to the second deployment', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 90, green: 10 })));
  const counts: Record<string, number> = {};
  const total = 2000;
  let sent = 0;
  await Promise.all(
    Array.from({ length: 32 }, async () => {
      while (sent < total) {
        sent++;
        const r = await call('/endpoints/my-endpoint/score');
        assert.equal(r.status, 200);
        const d = r.headers['azureml-model-deployment'] as string;
        counts[d] = (counts[d] ?? 0) + 1;
      }
    }),
  );
  assert.equal((counts.blue ?? 0) + (counts.green ?? 0), total);
  assert.equal(green.requests.length, counts.green);
  const share = counts.green / total;
  assert.ok(share > 0.07 && share < 0.13, `green got ${(share * 100).toFixed(1)}%`);
});

/**
 * A router of its own whose random source (RouterOptions.random) hands out `draws` in order, and counts
 * what was drawn: a draw more than scripted fails the test.
 */
async function scriptedRouter(draws: number[], t: RoutingTable): Promise<{ router: Router; port: number; drawn: () => number; close: () => Promise<void> }> {
  let next = 0;
  const r = new Router({
    random: () => {
      assert.ok(next < draws.length, `draw ${next + 1} of ${draws.length} scripted`);
      return draws[next++];
    },
  });
  r.setTable(t);
  const p = (await r.listen(0, '127.0.0.1')).port;
  return { router: r, port: p, drawn: () => next, close: () => r.close() };
}

test('the weighted pick draws from the injected random source: 90/10 with draws 0.05, 0.95, 0.89, 0.9 → blue, green, blue, green', async () => {
  const s = await scriptedRouter([0.05, 0.95, 0.89, 0.9], table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 90, green: 10 })));
  try {
    const served: string[] = [];
    for (let i = 0; i < 4; i++) {
      const r = await call('/endpoints/my-endpoint/score', { port: s.port });
      assert.equal(r.status, 200);
      served.push(r.headers['azureml-model-deployment'] as string);
      // A pinned request takes no draw.
      const pinned = await call('/endpoints/my-endpoint/score', { port: s.port, headers: { 'azureml-model-deployment': 'green' } });
      assert.equal(pinned.headers['azureml-model-deployment'], 'green');
    }
    assert.deepEqual(served, ['blue', 'green', 'blue', 'green']);
    assert.equal(s.drawn(), 4);
  } finally {
    await s.close();
  }
});

test('the mirror roll draws from the injected random source: mirror 10% with draws 0.05, 0.5 → the first is copied, the second not', async () => {
  // blue=100: the live pick takes no draw, so every draw is a mirror roll.
  const route = keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 100 });
  const s = await scriptedRouter([0.05, 0.5, 0.0999, 0.1], table({ ...route, mirror: { deployment: 'green', percent: 10 } }));
  try {
    for (let i = 0; i < 4; i++) assert.equal((await call('/endpoints/my-endpoint/score', { port: s.port, body: `{"i":${i}}` })).status, 200);
    await until(() => s.router.statsOf('my-endpoint', 'green').mirrorSent === 2 && s.router.statsOf('my-endpoint', 'green').mirrorInflight === 0, 'two mirror answers');
    assert.deepEqual(
      green.requests.map((r) => r.body.toString()),
      ['{"i":0}', '{"i":2}'],
    );
    assert.equal(blue.requests.length, 4);
    assert.equal(s.drawn(), 4);
  } finally {
    await s.close();
  }
});

// ---------------------------------------------------------------------------------------------------
// What the instance sees and what the client gets back

test('request method, path, query, body and headers reach the instance; Authorization does not; x-request-id is a new GUID', async () => {
  const body = JSON.stringify({ data: [[1, 2, 3]], note: 'naïve ✓' });
  const r = await call('/endpoints/my-endpoint/score?verbose=true&x=%C3%A9', {
    body,
    headers: { 'x-custom': 'hello ünïcode', 'x-request-id': 'client-chosen-id', 'x-ms-client-request-id': 'abc-123_DEF!@#$%^&*()+xyz' },
  });
  assert.equal(r.status, 200);
  assert.equal(blue.requests.length, 1);
  const seen = blue.requests[0];
  assert.equal(seen.method, 'POST');
  assert.equal(seen.url, '/score?verbose=true&x=%C3%A9');
  assert.equal(seen.body.toString(), body);
  const h = new Map(seen.headers);
  assert.equal(h.get('content-type'), 'application/json');
  // The client sends the value's UTF-8 bytes; like a bare Node server (and WSGI), the router reads header
  // bytes as latin1, and the instance sees exactly those characters.
  assert.equal(h.get('x-custom'), Buffer.from('hello ünïcode', 'utf8').toString('latin1'));
  assert.equal(h.has('authorization'), false, 'the key never reaches the instance');
  assert.equal(h.has('host'), false);
  assert.equal(h.has('connection'), false);
  assert.equal(h.has('content-length'), false);
  assert.equal(seen.headers.filter(([k]) => k === 'x-request-id').length, 1);
  assert.match(h.get('x-request-id')!, GUID);
  assert.notEqual(h.get('x-request-id'), 'client-chosen-id');
  assert.equal(h.get('x-ms-client-request-id'), 'abc-123_DEFxyz', 'sanitised as Azure does (contract §4.3)');
  // Every header name reaches the instance lower-cased.
  assert.ok(seen.headers.every(([k]) => k === k.toLowerCase()));
  // The client gets the same request id back, and its client request id sanitised (contract §4.3).
  assert.equal(r.headers['x-request-id'], h.get('x-request-id'));
  assert.equal(r.headers['x-ms-client-request-id'], 'abc-123_DEFxyz');
});

test('GET and an empty body are forwarded as they are', async () => {
  const r = await call('/endpoints/my-endpoint/score', { method: 'GET', body: '' });
  assert.equal(r.status, 200);
  assert.equal(blue.requests[0].method, 'GET');
  assert.equal(blue.requests[0].body.length, 0);
});

test('response headers: the model\'s own, content-type, x-request-id (a GUID) and azureml-model-deployment', async () => {
  blue.behaviour = (_req, reply) =>
    reply(200, [['content-type', 'text/plain; charset=utf-8'], ['x-ms-run-fn-exec-ms', '1.5'], ['x-request-id', 'model-id'], ['content-length', '999']], 'plain answer');
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 200);
  assert.equal(r.body, 'plain answer');
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.headers['content-length'], String(Buffer.byteLength('plain answer')));
  assert.equal(r.headers['x-ms-run-fn-exec-ms'], '1.5');
  assert.match(r.headers['x-request-id'] as string, GUID);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  // Without a content-type from the model, JSON is assumed.
  blue.behaviour = (_req, reply) => reply(200, [], '[1,2]');
  const plain = await call('/endpoints/my-endpoint/score');
  assert.equal(plain.headers['content-type'], 'application/json');
  assert.equal(plain.body, '[1,2]');
});

test('a response header Node cannot send (not latin1, bad name) is dropped; the router stays up', async () => {
  blue.behaviour = (_req, reply) =>
    reply(200, [['content-type', 'application/json'], ['x-good', 'fine'], ['x-check', 'done ✓'], ['bad name', 'x'], ['x-latin', 'ünï']], '{"ok":true}');
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 200);
  assert.equal(r.body, '{"ok":true}');
  assert.equal(r.headers['x-good'], 'fine');
  assert.equal(r.headers['x-check'], undefined);
  assert.equal(r.headers['x-latin'], Buffer.from('ünï', 'latin1').toString('latin1'));
  assert.match(r.headers['x-request-id'] as string, GUID);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  blue.behaviour = ok;
  assert.equal((await call('/endpoints/my-endpoint/score')).status, 200);
});

test('every request gets its own x-request-id', async () => {
  const ids = new Set<string>();
  for (let i = 0; i < 5; i++) ids.add((await call('/endpoints/my-endpoint/score')).headers['x-request-id'] as string);
  assert.equal(ids.size, 5);
  // Errors the router answers itself carry one too.
  assert.match((await call('/endpoints/my-endpoint/score', { key: null })).headers['x-request-id'] as string, GUID);
});

test('a non-200 from the model becomes 424 with the model\'s status, reason and body', async () => {
  const cases: [number, string][] = [
    [500, 'Internal Server Error'],
    [400, 'Bad Request'],
    [404, 'Not Found'],
    [503, 'Service Unavailable'],
    [201, 'Created'],
  ];
  for (const [status, reason] of cases) {
    const modelBody = JSON.stringify({ message: `An unexpected error occurred in scoring script (${status}).` });
    blue.behaviour = (_req, reply) => reply(status, [['content-type', 'application/json']], modelBody);
    const r = await call('/endpoints/my-endpoint/score');
    assert.equal(r.status, 424, `model status ${status}`);
    assert.equal(r.headers['ms-azureml-model-error-statuscode'], String(status));
    assert.equal(r.headers['ms-azureml-model-error-reason'], reason);
    assert.equal(r.headers['azureml-model-deployment'], 'blue');
    assert.equal(r.body, modelBody);
  }
  // A 200 carries neither header.
  blue.behaviour = ok;
  const fine = await call('/endpoints/my-endpoint/score');
  assert.equal(fine.status, 200);
  assert.equal(fine.headers['ms-azureml-model-error-statuscode'], undefined);
});

// ---------------------------------------------------------------------------------------------------
// Failures between router and instance

test('request_timeout_ms: 408 when the instance does not answer in time, and the instance gets a CANCEL', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { requestTimeoutMs: 150 })], { blue: 100 })));
  blue.behaviour = () => {}; // never answers
  const started = performance.now();
  const r = await call('/endpoints/my-endpoint/score');
  const took = performance.now() - started;
  assert.equal(r.status, 408);
  assert.match(r.json().message, /150 ms/);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  assert.ok(took >= 140 && took < 1500, `took ${took} ms`);
  await until(() => blue.cancels.length === 1, 'the CANCEL frame');
  // The connection stays usable: the next request is answered.
  blue.behaviour = ok;
  assert.equal((await call('/endpoints/my-endpoint/score')).status, 200);
});

test('a late answer after the deadline is dropped and does not confuse the next request', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { requestTimeoutMs: 100 })], { blue: 100 })));
  const held: Array<() => void> = [];
  blue.behaviour = (_req, reply) => held.push(() => reply(200, [], '"late"'));
  assert.equal((await call('/endpoints/my-endpoint/score')).status, 408);
  blue.behaviour = (_req, reply) => {
    for (const h of held.splice(0)) h(); // the stale answer arrives first
    reply(200, [], '"fresh"');
  };
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 200);
  assert.equal(r.body, '"fresh"');
});

test('the instance closing the connection mid-request gives 502; the next table reconnects', async () => {
  blue.behaviour = (_req, _reply, socket) => socket.destroy();
  const before = blue.connections;
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 502);
  assert.match(r.json().message, /closed the connection/);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  assert.equal(blue.requests.length, 1, 'a request that was written is not sent again (the model may have run it)');
  // The broken connection is avoided until the control plane publishes a table again.
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 100 })));
  blue.behaviour = ok;
  assert.equal((await call('/endpoints/my-endpoint/score')).status, 200);
  assert.ok(blue.connections > before, 'a new connection was opened');
});

test('a connection that failed on its own is tried again after a short back-off, without a new table; what queued meanwhile is served then', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { maxQueueWaitMs: 3000 })], { blue: 100 })));
  blue.behaviour = (_req, _reply, socket) => socket.destroy();
  const before = blue.connections;
  assert.equal((await call('/endpoints/my-endpoint/score')).status, 502);
  const t0 = performance.now();
  blue.behaviour = ok;
  // Within the back-off the broken connection is avoided: the request waits in the queue, and is sent
  // when the connection may be used again (well before its 5 s request timeout).
  const r = await call('/endpoints/my-endpoint/score');
  const waited = performance.now() - t0;
  assert.equal(r.status, 200);
  assert.ok(waited >= 900 && waited < 2500, `served after ${Math.round(waited)} ms (back-off 1 s)`);
  assert.ok(blue.connections > before, 'a new connection was opened');
});

const ghost = (name: string) => ({ instanceId: name, transport: 'framed' as const, socketPath: join(dir, `${name}.sock`) });

test('an instance whose socket does not exist fails the request with 502, without hanging', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [{ ...dep('blue', []), instances: [ghost('ghost-0')] }], { blue: 100 })));
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 502);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
});

test('a request never written to an unreachable instance is retried once on another instance', async () => {
  const route = dep('blue', [blue]);
  // The unreachable instance first, so round-robin tries it for the first request.
  router.setTable(table(keyEndpoint('my-endpoint', [{ ...route, instances: [ghost('ghost-1'), ...route.instances] }], { blue: 100 })));
  for (let i = 0; i < 4; i++) {
    const r = await call('/endpoints/my-endpoint/score');
    assert.equal(r.status, 200, `request ${i}`);
  }
  assert.equal(blue.requests.length, 4);
});

test('503 when the selected deployment has no ready instance', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', []), dep('green', [green])], { blue: 100 })));
  const r = await call('/endpoints/my-endpoint/score');
  assert.equal(r.status, 503);
  assert.match(r.json().message, /blue/);
  assert.equal(r.headers['azureml-model-deployment'], 'blue');
  assert.equal(green.requests.length, 0);
});

test('admission: 2 × max_concurrent × instances pending at most; beyond that 429 at once with retry-after', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 5000 })], { blue: 100 })));
  const held: Array<() => void> = [];
  blue.behaviour = (req, reply) => held.push(() => reply(200, [], JSON.stringify(req.body.toString())));
  const first = call('/endpoints/my-endpoint/score', { body: '"one"' });
  await until(() => blue.requests.length === 1, 'the first request at the instance');
  const second = call('/endpoints/my-endpoint/score', { body: '"two"' }); // queued: the instance's one slot is taken
  await until(() => deploymentMeters('my-endpoint', 'blue').queued === 1, 'the second request queued');
  assert.equal(blue.requests.length, 1, 'max_concurrent_requests_per_instance = 1 holds');
  const third = await call('/endpoints/my-endpoint/score', { body: '"three"' });
  assert.equal(third.status, 429);
  assert.equal(third.headers['retry-after'], '1');
  assert.equal(third.headers['azureml-model-deployment'], 'blue');
  // Answering the first lets the queued one through.
  held.shift()!();
  assert.equal((await first).status, 200);
  await until(() => blue.requests.length === 2, 'the queued request at the instance');
  held.shift()!();
  const r2 = await second;
  assert.equal(r2.status, 200);
  assert.equal(r2.body, JSON.stringify('"two"'));
  assert.equal(blue.requests.length, 2, 'the rejected request never reached the instance');
});

/** A raw client connection to the router: a request written by hand, the answer as text. */
function rawClient(): { socket: Socket; text: () => string; closed: Promise<void> } {
  const socket = connect(port, '127.0.0.1');
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
  socket.on('error', () => {});
  const closed = new Promise<void>((res) => socket.on('close', () => res()));
  return { socket, text: () => out, closed };
}
const rawScore = (body: string) =>
  `POST /endpoints/my-endpoint/score HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY1}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n\r\n${body}`;

test('a client that leaves: its queued request leaves the queue, its in-flight one is cancelled at the instance; both recorded 499, slots counted once', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 5000 })], { blue: 100 })));
  const d = (router as unknown as { deployments: Map<string, { admitted: number }> }).deployments.get('my-endpoint/blue')!;
  const m = deploymentMeters('my-endpoint', 'blue');
  const before499 = m.byStatus[499];
  const held: Array<() => void> = [];
  blue.behaviour = (_req, reply) => held.push(() => reply(200, [], '"ok"'));
  const inFlight = rawClient();
  inFlight.socket.write(rawScore('"a"'));
  await until(() => blue.requests.length === 1, 'the first request at the instance');
  const waiting = rawClient();
  waiting.socket.write(rawScore('"b"'));
  await until(() => m.queued === 1, 'the second request queued');
  assert.equal(d.admitted, 2);
  waiting.socket.destroy();
  await until(() => m.queued === 0, 'the queued request leaving the queue');
  assert.equal(d.admitted, 1, 'its pending place given back');
  assert.equal(m.byStatus[499], before499 + 1);
  inFlight.socket.destroy();
  await until(() => blue.cancels.length === 1, 'the CANCEL for the in-flight request');
  assert.equal(d.admitted, 0);
  assert.equal(m.inFlight, 0);
  assert.equal(m.byStatus[499], before499 + 2);
  // The instance's late answer reaches nobody and frees nothing twice: the slot serves the next request.
  for (const h of held.splice(0)) h();
  blue.behaviour = ok;
  assert.equal((await call('/endpoints/my-endpoint/score')).status, 200);
  assert.equal(blue.requests.length, 2, 'the request whose client left while queued never reached the instance');
  assert.equal(d.admitted, 0);
  assert.equal(m.inFlight, 0);
  assert.equal(m.queued, 0);
});

/** A router of its own (its own stream threshold) over blue with max_concurrent_requests_per_instance 1. */
async function oneSlotRouter(streamBodyThresholdBytes = 1024 * 1024): Promise<{ router: Router; port: number; admitted: () => number }> {
  const r = new Router({ streamBodyThresholdBytes, failedAuth: false });
  r.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 5000 })], { blue: 100 })));
  const p = (await r.listen(0, '127.0.0.1')).port;
  const d = (r as unknown as { deployments: Map<string, { admitted: number }> }).deployments.get('my-endpoint/blue')!;
  return { router: r, port: p, admitted: () => d.admitted };
}

function rawTo(p: number): { socket: Socket; text: () => string } {
  const socket = connect(p, '127.0.0.1');
  let out = '';
  socket.on('data', (d: Buffer) => (out += d.toString('latin1')));
  socket.on('error', () => {});
  return { socket, text: () => out };
}

test('slow uploads hold no pending place while their bodies arrive: an idle instance still serves a complete request', async () => {
  const s = await oneSlotRouter(); // pending bound: 2 × 1 × 1 = 2
  try {
    const uploads = [rawTo(s.port), rawTo(s.port)];
    // Two 100 kB bodies (under the stream threshold: buffered), barely started.
    for (const u of uploads) u.socket.write(rawScore('').replace('content-length: 0', 'content-length: 100000') + '{"a":"');
    await sleep(100);
    assert.equal(s.admitted(), 0, 'a body still arriving holds no place');
    const r = await call('/endpoints/my-endpoint/score', { port: s.port, agent: new Agent() });
    assert.equal(r.status, 200, 'not 429: nothing waits for the instance');
    for (const u of uploads) u.socket.destroy();
  } finally {
    await s.router.close();
  }
});

test('a chunked body that crosses the stream threshold is not refused because of itself (no 429 against its own place)', async () => {
  const s = await oneSlotRouter(1024);
  try {
    const held: Array<() => void> = [];
    blue.behaviour = (_req, reply) => held.push(() => reply(200, [], '"ok"'));
    const x = rawTo(s.port);
    x.socket.write(`POST /endpoints/my-endpoint/score HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${KEY1}\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n2\r\n"a\r\n`);
    await sleep(50);
    const y = rawTo(s.port);
    y.socket.write(rawScore('"y"'));
    await until(() => blue.requests.length === 1, 'y at the instance');
    // Y holds the one slot; X's body passes 1024 bytes: offered again, it must be buffered, then queued.
    const big = 'y'.repeat(2000);
    x.socket.write(`${big.length.toString(16)}\r\n${big}\r\n0\r\n\r\n`);
    await until(() => deploymentMeters('my-endpoint', 'blue').queued === 1 || x.text() !== '', 'x queued or answered');
    assert.equal(x.text(), '', `x was answered early: ${x.text().split('\r\n')[0]}`);
    held.shift()!();
    await until(() => blue.requests.length === 2, 'x at the instance');
    held.shift()!();
    await until(() => x.text().includes('"ok"') && y.text().includes('"ok"'), 'both answers');
    assert.match(x.text(), /^HTTP\/1\.1 200 /);
    assert.equal(s.admitted(), 0);
    x.socket.destroy();
    y.socket.destroy();
  } finally {
    await s.router.close();
  }
});

test('a deployment removed with requests queued: they get 503 and its queued and admitted counts return to 0', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 5000 })], { blue: 100 })));
  const d = (router as unknown as { deployments: Map<string, { admitted: number }> }).deployments.get('my-endpoint/blue')!;
  const m = deploymentMeters('my-endpoint', 'blue');
  const held: Array<() => void> = [];
  blue.behaviour = (_req, reply) => held.push(() => reply(200, [], '"ok"'));
  const first = call('/endpoints/my-endpoint/score');
  await until(() => blue.requests.length === 1, 'the first request at the instance');
  const second = call('/endpoints/my-endpoint/score');
  await until(() => m.queued === 1, 'the second request queued');
  router.setTable(table(keyEndpoint('my-endpoint', [dep('green', [green])], { green: 100 })));
  const r = await second;
  assert.equal(r.status, 503);
  assert.match(r.json().message, /was removed/);
  assert.equal(m.queued, 0, 'the queued gauge does not keep a request that left');
  assert.equal(d.admitted, 1, 'only the in-flight request is still counted');
  for (const h of held.splice(0)) h();
  assert.equal((await first).status, 200);
  assert.equal(d.admitted, 0);
});

test('an INSTANCE_ERROR is answered and recorded as the 502/503 the client got, not as the instance host\'s own status', async () => {
  const m = deploymentMeters('my-endpoint', 'blue');
  for (const [hostStatus, sent] of [[500, 502], [503, 503]] as const) {
    const before = [m.byStatus[hostStatus], m.byStatus[sent]];
    blue.behaviour = (req, _reply, socket) => {
      const b = Buffer.from('{"message":"worker died"}');
      socket.write(Buffer.concat([encodeResponseHead(req.id, hostStatus, [], b.length, FRAME_INSTANCE_ERROR), b]));
    };
    const r = await call('/endpoints/my-endpoint/score');
    assert.equal(r.status, sent);
    assert.match(r.json().message, /worker died/);
    if (hostStatus !== sent) assert.equal(m.byStatus[hostStatus], before[0], `${hostStatus} not recorded`);
    assert.equal(m.byStatus[sent], before[1] + 1, `${sent} recorded once`);
  }
});

test('admission: a request queued longer than max_queue_wait_ms gets 429', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 80 })], { blue: 100 })));
  let release!: () => void;
  blue.behaviour = (_req, reply) => (release = () => reply(200, [], '"done"'));
  const first = call('/endpoints/my-endpoint/score');
  await until(() => blue.requests.length === 1, 'the first request at the instance');
  const started = performance.now();
  const queued = await call('/endpoints/my-endpoint/score');
  const waited = performance.now() - started;
  assert.equal(queued.status, 429);
  assert.match(queued.json().message, /max_queue_wait_ms/);
  assert.ok(waited >= 70 && waited < 2000, `waited ${waited} ms`);
  release();
  assert.equal((await first).status, 200);
});

test('mirror: a share of live requests is copied to the mirror deployment; clients see only the live answer', async () => {
  const route = keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 100 });
  router.setTable(table({ ...route, mirror: { deployment: 'green', percent: 50 } }));
  green.behaviour = (_req, reply) => reply(500, [], '"the mirror fails"');
  const before = router.statsOf('my-endpoint', 'green').mirrorSent;
  const n = 200;
  for (let i = 0; i < n; i++) {
    const r = await call('/endpoints/my-endpoint/score', { body: `{"i":${i}}` });
    assert.equal(r.status, 200);
    assert.equal(r.headers['azureml-model-deployment'], 'blue');
  }
  assert.equal(blue.requests.length, n);
  await until(() => router.statsOf('my-endpoint', 'green').mirrorInflight === 0, 'mirror answers');
  const copies = green.requests.length;
  assert.ok(copies > n * 0.3 && copies < n * 0.7, `${copies} of ${n} mirrored at 50%`);
  assert.equal(router.statsOf('my-endpoint', 'green').mirrorSent - before, copies);
  // A copy is the same request.
  const copy = green.requests[0];
  const original = blue.requests.find((b) => b.body.equals(copy.body));
  assert.ok(original, 'the mirror got a copy of a live request body');
  // Pinned requests are never mirrored.
  // The mirror roll happens as the live request goes out (stages/mirror.ts), before its answer: once
  // the pinned requests are answered, a copy would already be counted sent or dropped.
  const pinnedBefore = green.requests.length;
  const { mirrorSent, mirrorDropped } = router.statsOf('my-endpoint', 'green');
  for (let i = 0; i < 20; i++) await call('/endpoints/my-endpoint/score', { headers: { 'azureml-model-deployment': 'blue' } });
  assert.equal(router.statsOf('my-endpoint', 'green').mirrorSent, mirrorSent);
  assert.equal(router.statsOf('my-endpoint', 'green').mirrorDropped, mirrorDropped);
  assert.equal(green.requests.length, pinnedBefore);
});

test('413 for a body over maxBodyBytes, declared or chunked; a body at the limit passes', async () => {
  const limit = 64 * 1024;
  const big = Buffer.alloc(limit + 1, 'a');
  const declared = await call('/endpoints/my-endpoint/score', { body: big, agent: new Agent({ keepAlive: false }) });
  assert.equal(declared.status, 413);
  const chunked = await call('/endpoints/my-endpoint/score', { body: big, chunked: true, agent: new Agent({ keepAlive: false }) });
  assert.equal(chunked.status, 413);
  assert.equal(blue.requests.length, 0);
  const atLimit = Buffer.alloc(limit, 'b');
  const r = await call('/endpoints/my-endpoint/score', { body: atLimit });
  assert.equal(r.status, 200);
  assert.equal(blue.requests[0].body.length, limit);
});

// ---------------------------------------------------------------------------------------------------
// Balancing and table swaps

test('least outstanding requests: a slow instance gets fewer requests than a fast one', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue, blue2])], { blue: 100 })));
  const held: Array<() => void> = [];
  blue.behaviour = (_req, reply) => held.push(() => reply(200, [], '"slow"')); // answers only when released
  blue2.behaviour = (_req, reply) => reply(200, [], '"fast"');
  const pending: Promise<Res>[] = [];
  for (let i = 0; i < 20; i++) {
    const slowBefore = blue.requests.length;
    let done = false;
    pending.push(call('/endpoints/my-endpoint/score').finally(() => (done = true)));
    // Sent one at a time: each is either answered by the fast instance or held by the slow one.
    await until(() => done || blue.requests.length > slowBefore, `request ${i}`);
  }
  assert.equal(blue.requests.length, 1, 'the slow instance got one request and nothing while it was busy');
  assert.equal(blue2.requests.length, 19);
  for (const h of held) h();
  const results = await Promise.all(pending);
  assert.deepEqual(
    results.map((r) => r.body).sort(),
    [...Array(19).fill('"fast"'), '"slow"'].sort(),
  );
});

test('equally idle instances share requests round-robin', async () => {
  router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue, blue2])], { blue: 100 })));
  for (let i = 0; i < 10; i++) assert.equal((await call('/endpoints/my-endpoint/score')).status, 200);
  assert.equal(blue.requests.length, 5);
  assert.equal(blue2.requests.length, 5);
});

test('setTable swaps traffic for the next request, keeping client and instance connections', async () => {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const first = await call('/endpoints/my-endpoint/score', { agent });
    assert.equal(first.headers['azureml-model-deployment'], 'blue');
    const blueConnections = blue.connections;

    // A request in flight on blue while the table moves all traffic to green.
    let release!: () => void;
    blue.behaviour = (_req, reply) => (release = () => reply(200, [], '"blue, after the swap"'));
    const inFlight = call('/endpoints/my-endpoint/score', { agent: new Agent({ keepAlive: false }) });
    await until(() => blue.requests.length === 2, 'the in-flight request');
    router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { green: 100 })));
    assert.equal(router.version, version);

    const second = await call('/endpoints/my-endpoint/score', { agent });
    assert.equal(second.status, 200);
    assert.equal(second.headers['azureml-model-deployment'], 'green');
    assert.equal(second.reusedSocket, true, 'the client connection survived the swap');
    assert.equal(second.localPort, first.localPort);

    release();
    const old = await inFlight;
    assert.equal(old.status, 200);
    assert.equal(old.body, '"blue, after the swap"');

    // Back to blue: the router's connection to blue was kept, not reopened.
    router.setTable(table(keyEndpoint('my-endpoint', [dep('blue', [blue]), dep('green', [green])], { blue: 100 })));
    blue.behaviour = ok;
    assert.equal((await call('/endpoints/my-endpoint/score', { agent })).headers['azureml-model-deployment'], 'blue');
    assert.equal(blue.connections, blueConnections);
  } finally {
    agent.destroy();
  }
});

test('an instance removed from the table finishes its in-flight request, then its connection closes', async () => {
  let release!: () => void;
  blue.behaviour = (_req, reply) => (release = () => reply(200, [], '"finished"'));
  const inFlight = call('/endpoints/my-endpoint/score', { agent: new Agent({ keepAlive: false }) });
  await until(() => blue.requests.length === 1, 'the in-flight request');
  assert.ok(blue.sockets.size >= 1);
  router.setTable(table(keyEndpoint('my-endpoint', [dep('green', [green])], { green: 100 })));
  assert.equal((await call('/endpoints/my-endpoint/score')).headers['azureml-model-deployment'], 'green');
  release();
  const r = await inFlight;
  assert.equal(r.status, 200);
  assert.equal(r.body, '"finished"');
  await until(() => blue.sockets.size === 0, 'the router to close its connection to the removed instance');
});

test('keys regenerated: a keep-alive connection that was let in with the old key is refused from the next table on', async () => {
  const one = new Agent({ keepAlive: true, maxSockets: 1 });
  try {
    const ep = keyEndpoint('my-endpoint', [dep('blue', [blue])], { blue: 100 });
    router.setTable(table(ep));
    for (let i = 0; i < 3; i++) assert.equal((await call('/endpoints/my-endpoint/score', { key: KEY1, agent: one })).status, 200);
    router.setTable(table({ ...ep, keyHashes: [sha256Hex('new-primary-key-0123456789abcdef'), sha256Hex(KEY2)] }));
    assert.equal((await call('/endpoints/my-endpoint/score', { key: KEY1, agent: one })).status, 401);
    assert.equal((await call('/endpoints/my-endpoint/score', { key: 'new-primary-key-0123456789abcdef', agent: one })).status, 200);
    // A different header on the same connection is checked again, not compared with the remembered one.
    assert.equal((await call('/endpoints/my-endpoint/score', { key: KEY1 + 'x', agent: one })).status, 401);
    assert.equal((await call('/endpoints/my-endpoint/score', { key: KEY2, agent: one })).status, 200);
  } finally {
    one.destroy();
  }
});

test("GET and HEAD <endpoint>/swagger.json reach the instance without a key; its status is passed on, not wrapped in 424", async () => {
  blue.behaviour = (req, reply) =>
    req.url.includes('version=9') ? reply(404, [['content-type', 'application/json']], '{"message": "no such version"}') : reply(200, [['content-type', 'application/json']], '{"swagger": "2.0"}');
  const doc = await call('/endpoints/my-endpoint/swagger.json', { method: 'GET', key: null, body: '' });
  assert.equal(doc.status, 200);
  assert.deepEqual(doc.json(), { swagger: '2.0' });
  assert.equal(blue.requests.at(-1)!.url, '/swagger.json');
  const head = await call('/endpoints/my-endpoint/swagger.json', { method: 'HEAD', key: null, body: '' });
  assert.equal(head.status, 200);
  assert.equal(blue.requests.at(-1)!.method, 'HEAD');
  const missing = await call('/endpoints/my-endpoint/swagger.json?version=9', { method: 'GET', key: null, body: '' });
  assert.equal(missing.status, 404);
  assert.equal(missing.headers['ms-azureml-model-error-statuscode'], undefined);
  assert.deepEqual(missing.json(), { message: 'no such version' });
  // Other methods on it are not routes.
  assert.equal((await call('/endpoints/my-endpoint/swagger.json', { method: 'POST', key: null })).status, 404);
});
