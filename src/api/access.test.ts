// Control-plane access as an attacker tries it (issue 9), on a real listening server on loopback:
// every route of the OpenAPI document refuses a request without a token (so a new route cannot ship
// unprotected), a reader cannot change anything nor read keys or tokens, revocation and expiry act on
// the next request, a foreign Host is refused (DNS rebinding), failed authentications are limited per
// address without touching valid clients, 500s carry a request id and nothing internal, fuzzed
// Authorization headers neither crash the server nor leak, and the audit log names who changed what
// without a key or secret in it.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Backend } from '../backend/types.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import type { Role } from '../store/types.js';
import { AuditLog } from './audit.js';
import { createToken, FailedAuthLimiter, hostOf, parseDuration, verifyToken } from './auth.js';
import { buildApi, type ApiOptions } from './server.js';

const idleBackend = (): Backend =>
  ({ kind: 'process', observe: () => [], start: async () => {}, stop: async () => {}, logs: async () => 'log line\n', onChange: () => {}, close: async () => {} }) as unknown as Backend;

/** A store whose listEndpoints can be made to fail with an internal-looking message. */
class BreakableStore extends MemoryStateStore {
  broken = false;
  override listEndpoints() {
    if (this.broken) throw new Error('SQLITE_CORRUPT: database disk image is malformed (/srv/secret/state.db)');
    return super.listEndpoints();
  }
}

interface Api {
  app: FastifyInstance;
  base: string;
  port: number;
  store: BreakableStore;
  tokens: Record<Role, string>;
  serverLog: string[];
  auditFile: string;
  audit: AuditLog;
  clock: { now: number };
  close(): Promise<void>;
}

async function startApi(extra: Partial<ApiOptions> = {}, listen = true): Promise<Api> {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-access-'));
  const store = new BreakableStore();
  const controller = new Controller({ store, backend: idleBackend(), publish: () => {}, deregistrationDelayMs: 0 });
  const serverLog: string[] = [];
  const auditFile = join(dir, 'logs', 'audit.jsonl');
  const audit = new AuditLog(auditFile);
  const clock = { now: Date.now() };
  const app = await buildApi({
    store,
    controller,
    logs: async () => 'log line\n',
    routerUrl: 'http://127.0.0.1:9999',
    workspace: 'test-ws',
    location: 'local',
    version: '0.0.0-test',
    assetsDir: join(dir, 'assets'),
    audit,
    log: (l) => serverLog.push(l),
    now: () => clock.now,
    ...extra,
  });
  if (listen) await app.listen({ port: 0, host: '127.0.0.1' });
  const port = listen ? (app.server.address() as { port: number }).port : 0;
  const tokens = {
    owner: createToken(store, { role: 'owner' }).token,
    contributor: createToken(store, { role: 'contributor' }).token,
    reader: createToken(store, { role: 'reader' }).token,
  };
  return {
    app,
    base: `http://127.0.0.1:${port}`,
    port,
    store,
    tokens,
    serverLog,
    auditFile,
    audit,
    clock,
    close: async () => {
      controller.stop();
      await app.close();
      await audit.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: any;
}

/** A raw HTTP/1.1 request (node:http, so Host and repeated headers are exactly what the test says). */
function call(port: number, method: string, path: string, o: { token?: string; headers?: Record<string, string | string[]>; body?: unknown; host?: string } = {}): Promise<Answer> {
  const body = o.body === undefined ? undefined : JSON.stringify(o.body);
  const headers: Record<string, string | string[]> = {
    host: o.host ?? `127.0.0.1:${port}`,
    ...(o.token !== undefined ? { authorization: `Bearer ${o.token}` } : {}),
    ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    ...o.headers,
  };
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, method, path, headers, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        let json: any;
        try {
          json = JSON.parse(text);
        } catch {
          json = undefined;
        }
        resolve({ status: res.statusCode!, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Every (method, path) of the OpenAPI document, path parameters filled with a name that exists nowhere. */
async function openApiRoutes(api: Api): Promise<{ method: string; path: string; template: string }[]> {
  const doc = (await call(api.port, 'GET', '/openapi.json', { token: api.tokens.owner })).json as { paths: Record<string, Record<string, unknown>> };
  const routes: { method: string; path: string; template: string }[] = [];
  for (const [template, ops] of Object.entries(doc.paths)) {
    for (const method of Object.keys(ops)) {
      if (!['get', 'post', 'put', 'delete', 'patch'].includes(method)) continue;
      routes.push({ method: method.toUpperCase(), template, path: template.replace(/\{[^}]+\}/g, 'nothing-here') });
    }
  }
  return routes;
}

/** The only routes anyone may call without a token. */
const PUBLIC = new Set(['GET /healthz']);

describe('every control-plane route, from the OpenAPI document', () => {
  let api: Api;
  before(async () => {
    // Each route is tried without a token: more failures than the limiter allows by default.
    api = await startApi({ failedAuth: { maxFailures: 1_000_000 } });
  });
  after(() => api.close());

  test('the document lists every route, and there are many (so the table below is not empty)', async () => {
    const routes = await openApiRoutes(api);
    assert.ok(routes.length >= 30, `${routes.length} routes`);
    for (const want of ['POST /api/endpoints/{name}/credentials', 'POST /api/tokens', 'DELETE /api/tokens/{id}', 'GET /metrics', 'POST /api/models']) {
      assert.ok(routes.some((r) => `${r.method} ${r.template}` === want), `${want} is in the OpenAPI document`);
    }
  });

  test('without a token every route but the health check answers 401 Unauthorized with a Bearer challenge', async () => {
    const routes = [...(await openApiRoutes(api)), { method: 'GET', path: '/openapi.json', template: '/openapi.json' }];
    for (const r of routes) {
      const res = await call(api.port, r.method, r.path, r.method === 'GET' || r.method === 'DELETE' ? {} : { body: { name: 'x' } });
      if (PUBLIC.has(`${r.method} ${r.template}`)) {
        assert.equal(res.status, 200, `${r.method} ${r.path}`);
        continue;
      }
      assert.equal(res.status, 401, `${r.method} ${r.path}: ${res.text}`);
      assert.equal(res.json?.error?.code, 'Unauthorized', `${r.method} ${r.path}`);
      assert.match(String(res.headers['www-authenticate']), /^Bearer realm="infergate"/);
    }
  });

  test('a reader gets 403 Forbidden on every change route and on tokens; every read route lets it in', async () => {
    for (const r of await openApiRoutes(api)) {
      if (PUBLIC.has(`${r.method} ${r.template}`)) continue;
      const res = await call(api.port, r.method, r.path, { token: api.tokens.reader, ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { body: { name: 'x' } }) });
      const forbidden = r.method !== 'GET' || r.template.startsWith('/api/tokens');
      if (forbidden) {
        assert.equal(res.status, 403, `${r.method} ${r.path}: ${res.text}`);
        assert.equal(res.json.error.code, 'Forbidden');
        assert.match(res.json.error.message, /role 'reader'/);
      } else {
        // Let in: whatever the route answers for a name that does not exist, it is not an access refusal.
        assert.ok(![401, 403].includes(res.status), `${r.method} ${r.path}: ${res.status} ${res.text}`);
      }
    }
  });

  test('a contributor gets 403 on the token routes only', async () => {
    for (const r of await openApiRoutes(api)) {
      if (PUBLIC.has(`${r.method} ${r.template}`)) continue;
      const res = await call(api.port, r.method, r.path, { token: api.tokens.contributor, ...(r.method === 'GET' || r.method === 'DELETE' ? {} : { body: { name: 'x' } }) });
      if (r.template.startsWith('/api/tokens')) assert.equal(res.status, 403, `${r.method} ${r.path}`);
      else assert.ok(![401, 403].includes(res.status), `${r.method} ${r.path}: ${res.status} ${res.text}`);
    }
  });

  test('an unknown URL needs a token too (401 without, 404 with), so the API cannot be mapped anonymously', async () => {
    assert.equal((await call(api.port, 'GET', '/api/secret-admin')).status, 401);
    assert.equal((await call(api.port, 'GET', '/api/secret-admin', { token: api.tokens.reader })).status, 404);
  });

  test('a route registered without a role is refused at registration', async () => {
    const fresh = await startApi({}, false);
    try {
      assert.throws(() => fresh.app.get('/api/new-thing', async () => ({})), /declares no role/);
    } finally {
      await fresh.close();
    }
  });
});

describe('roles, on real endpoints', () => {
  let api: Api;
  before(async () => {
    api = await startApi();
  });
  after(() => api.close());

  test('reader lists and shows but never reads keys; contributor creates and reads keys; only owner manages tokens', async () => {
    const { port, tokens } = api;
    assert.equal((await call(port, 'POST', '/api/endpoints', { token: tokens.reader, body: { name: 'ep1', auth_mode: 'key' } })).status, 403);
    assert.equal((await call(port, 'POST', '/api/endpoints', { token: tokens.contributor, body: { name: 'ep1', auth_mode: 'key' } })).status, 201);
    const list = await call(port, 'GET', '/api/endpoints', { token: tokens.reader });
    assert.equal(list.status, 200);
    assert.deepEqual(list.json.map((e: { name: string }) => e.name), ['ep1']);
    const keys = api.store.getEndpoint('ep1')!.keys;
    assert.ok(!list.text.includes(keys.primaryKey) && !list.text.includes(keys.secondaryKey));
    const show = await call(port, 'GET', '/api/endpoints/ep1', { token: tokens.reader });
    assert.ok(!show.text.includes(keys.primaryKey));
    assert.equal((await call(port, 'POST', '/api/endpoints/ep1/credentials', { token: tokens.reader })).status, 403);
    assert.equal((await call(port, 'POST', '/api/endpoints/ep1/regenerate-keys', { token: tokens.reader, body: { key_type: 'primary' } })).status, 403);
    const creds = await call(port, 'POST', '/api/endpoints/ep1/credentials', { token: tokens.contributor });
    assert.equal(creds.status, 200);
    assert.equal(creds.json.primaryKey, keys.primaryKey);
    assert.equal((await call(port, 'GET', '/metrics', { token: tokens.reader })).status, 200);
    assert.equal((await call(port, 'GET', '/api/tokens', { token: tokens.reader })).status, 403);
    assert.equal((await call(port, 'POST', '/api/tokens', { token: tokens.contributor, body: { role: 'owner' } })).status, 403);
    const who = await call(port, 'GET', '/api/whoami', { token: tokens.reader });
    assert.deepEqual({ role: who.json.role, id: who.json.token_id }, { role: 'reader', id: tokens.reader.split('_')[1] });
  });

  test('token create shows the secret once; list never shows a secret or hash; last use is recorded', async () => {
    const { port, tokens } = api;
    const created = await call(port, 'POST', '/api/tokens', { token: tokens.owner, body: { role: 'reader', expires_in: '30d', description: 'ci dashboards' } });
    assert.equal(created.status, 201);
    assert.match(created.json.token, /^igt_[0-9a-f]{16}_[0-9a-f]{64}$/);
    assert.equal(created.json.role, 'reader');
    assert.equal(Date.parse(created.json.expires_at) - Date.parse(created.json.created_at) >= 30 * 86400_000 - 2000, true);
    assert.equal((await call(port, 'GET', '/api/info', { token: created.json.token })).status, 200);
    const list = await call(port, 'GET', '/api/tokens', { token: tokens.owner });
    const mine = list.json.find((t: { id: string }) => t.id === created.json.id);
    assert.deepEqual(Object.keys(mine).sort(), ['created_at', 'description', 'expires_at', 'id', 'last_used_at', 'role']);
    assert.notEqual(mine.last_used_at, null);
    const secret = created.json.token.split('_')[2];
    const hash = api.store.getToken(created.json.id)!.hash;
    assert.ok(!list.text.includes(secret) && !list.text.includes(hash));
    assert.equal(api.store.listTokens().some((t) => JSON.stringify(t).includes(secret)), false, 'the secret is not stored');
    for (const bad of [{ role: 'admin' }, { role: 'reader', expires_in: 'forever' }, { role: 'reader', expires_in: '0s' }, { role: 'reader', description: 'x'.repeat(300) }, {}]) {
      assert.equal((await call(port, 'POST', '/api/tokens', { token: tokens.owner, body: bad })).status, 400, JSON.stringify(bad));
    }
  });

  test('revocation takes effect on the very next request', async () => {
    const { port, tokens } = api;
    const t = (await call(port, 'POST', '/api/tokens', { token: tokens.owner, body: { role: 'contributor' } })).json;
    assert.equal((await call(port, 'GET', '/api/endpoints', { token: t.token })).status, 200);
    assert.equal((await call(port, 'DELETE', `/api/tokens/${t.id}`, { token: tokens.owner })).status, 200);
    const after = await call(port, 'GET', '/api/endpoints', { token: t.token });
    assert.equal(after.status, 401);
    assert.match(after.json.error.message, /unknown or revoked/);
    assert.equal((await call(port, 'DELETE', `/api/tokens/${t.id}`, { token: tokens.owner })).status, 400, 'revoking twice says there is no such token');
  });

  test('expiry takes effect the moment it passes', async () => {
    const { port, tokens, clock } = api;
    const t = (await call(port, 'POST', '/api/tokens', { token: tokens.owner, body: { role: 'reader', expires_in: '90s' } })).json;
    clock.now += 89_000;
    assert.equal((await call(port, 'GET', '/api/info', { token: t.token })).status, 200);
    clock.now += 1_000;
    const expired = await call(port, 'GET', '/api/info', { token: t.token });
    assert.equal(expired.status, 401);
    assert.match(expired.json.error.message, /expired at/);
    clock.now -= 90_000;
  });
});

describe('Host header (DNS rebinding)', () => {
  let api: Api;
  before(async () => {
    api = await startApi({ apiHost: '127.0.0.1', allowedHosts: ['infergate.internal.example'] });
  });
  after(() => api.close());

  test('a page that rebinds evil.example to 127.0.0.1 is refused, even with a valid token', async () => {
    for (const host of ['evil.example', 'evil.example:80', `evil.example:${api.port}`, '127.0.0.1.evil.example', 'localhost.evil.example', 'localhost@evil.example']) {
      const res = await call(api.port, 'GET', '/api/info', { host, token: api.tokens.owner });
      assert.equal(res.status, 421, `Host: ${host}`);
      assert.equal(res.json.error.code, 'HostNotAllowed');
    }
    assert.equal((await call(api.port, 'GET', '/healthz', { host: 'evil.example' })).status, 421, 'even the health check');
  });

  test('an HTTP/1.0 request without a Host header is refused too', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const s = connect(api.port, '127.0.0.1', () => s.end(`GET /api/info HTTP/1.0\r\nAuthorization: Bearer ${api.tokens.owner}\r\n\r\n`));
      let text = '';
      s.setEncoding('utf8');
      s.on('data', (c: string) => (text += c));
      s.on('end', () => resolve(text));
      s.on('error', reject);
    });
    assert.match(answer, /^HTTP\/1\.[01] 421 /);
    assert.match(answer, /HostNotAllowed/);
  });

  test('its own names are answered: loopback names, the bound address, --api-allowed-host values', async () => {
    for (const host of [`127.0.0.1:${api.port}`, `localhost:${api.port}`, 'LOCALHOST', '[::1]:8470', 'infergate.internal.example', 'Infergate.Internal.Example.:443']) {
      assert.equal((await call(api.port, 'GET', '/api/info', { host, token: api.tokens.owner })).status, 200, `Host: ${host}`);
    }
  });

  test('hostOf takes the name out of a Host header', () => {
    assert.equal(hostOf('Example.COM:8470'), 'example.com');
    assert.equal(hostOf('[::1]:80'), '[::1]');
    assert.equal(hostOf('[::1]'), '[::1]');
    assert.equal(hostOf('a.example.'), 'a.example');
  });
});

describe('failed-authentication limit', () => {
  let api: Api;
  before(async () => {
    api = await startApi({ failedAuth: { maxFailures: 20, windowMs: 60_000 } });
  });
  after(() => api.close());

  test('after 20 failures in a minute: 429 with Retry-After; a valid token from the same address is still served at once', async () => {
    const wrong = `igt_${'0'.repeat(16)}_${'0'.repeat(64)}`;
    for (let i = 0; i < 20; i++) assert.equal((await call(api.port, 'GET', '/api/endpoints', { token: wrong })).status, 401, `failure ${i + 1}`);
    const limited = await call(api.port, 'GET', '/api/endpoints', { token: wrong });
    assert.equal(limited.status, 429);
    assert.equal(limited.json.error.code, 'TooManyFailedAuth');
    const retry = Number(limited.headers['retry-after']);
    assert.ok(retry >= 1 && retry <= 60, `Retry-After ${retry}`);
    assert.equal((await call(api.port, 'GET', '/api/endpoints')).status, 429, 'no token counts as a failure too');
    const t0 = performance.now();
    for (let i = 0; i < 20; i++) assert.equal((await call(api.port, 'GET', '/api/endpoints', { token: api.tokens.reader })).status, 200);
    const ms = (performance.now() - t0) / 20;
    assert.ok(ms < 50, `valid requests took ${ms.toFixed(1)} ms each while the address was limited`);
  });

  test('the window ends: the limiter forgets the address, and its memory is bounded', () => {
    let now = 0;
    const l = new FailedAuthLimiter(2, 1_000, 100, () => now);
    assert.equal(l.fail('a'), 0);
    assert.equal(l.fail('a'), 0);
    assert.equal(l.fail('a'), 1);
    now = 1_000;
    assert.equal(l.fail('a'), 0, 'a new window');
    for (let i = 0; i < 1_000; i++) l.fail(`10.0.${i >> 8}.${i & 255}`);
    assert.ok(l.tracked <= 100, `${l.tracked} addresses tracked`);
  });
});

describe('what an answer never carries', () => {
  let api: Api;
  before(async () => {
    api = await startApi({ failedAuth: { maxFailures: 1_000_000 } });
  });
  after(() => api.close());

  test('a 500 carries a coded message and a request id; the details go to the server log only', async () => {
    api.store.broken = true;
    try {
      const res = await call(api.port, 'GET', '/api/endpoints', { token: api.tokens.reader });
      assert.equal(res.status, 500);
      assert.equal(res.json.error.code, 'InternalError');
      const id = res.json.error.details[0].request_id;
      assert.match(id, /^[0-9a-f-]{36}$/);
      assert.equal(res.headers['x-request-id'], id);
      assert.doesNotMatch(res.text, /SQLITE|secret|state\.db|\bat\b.*\.ts/);
      const logged = api.serverLog.find((l) => l.includes(id));
      assert.ok(logged && /SQLITE_CORRUPT/.test(logged) && /access\.test\.ts/.test(logged), 'the server log has the message and the stack');
    } finally {
      api.store.broken = false;
    }
  });

  test('2,000 fuzzed Authorization headers: every one 401, none crashes the server or echoes a secret', async () => {
    const owner = api.tokens.owner;
    const [, id, secret] = owner.split('_');
    const rnd = (n: number) => randomBytes(n);
    const printable = (n: number) => [...rnd(n)].map((b) => String.fromCharCode(0x21 + (b % 94))).join('');
    const cases: (string | string[])[] = [
      '',
      'Bearer',
      'Bearer ',
      'Basic dXNlcjpwYXNz',
      `Bearer ${owner}x`,
      `Bearer ${owner.slice(0, -1)}`,
      `Bearer igt_${id}_${'f'.repeat(64)}`,
      `Bearer igt_${id}_${secret.toUpperCase()}`,
      `Bearer igt_${id.toUpperCase()}_${secret}`,
      `Bearer ${owner} extra`,
      `Token ${owner}`,
      `Bearer igt_${'a'.repeat(6000)}`,
      [`Bearer ${owner}`, `Bearer ${owner}`],
      [`Bearer ${api.tokens.reader}`, `Bearer ${owner}`],
    ];
    for (let i = 0; i < 2_000 - 14; i++) {
      const kind = i % 4;
      cases.push(kind === 0 ? `Bearer ${printable(1 + (i % 200))}` : kind === 1 ? `Bearer igt_${id}_${rnd(32).toString('hex')}` : kind === 2 ? `bEaReR   igt_${rnd(8).toString('hex')}_${rnd(32).toString('hex')}` : printable(1 + (i % 100)));
    }
    let n = 0;
    for (const auth of cases) {
      const res = await call(api.port, 'GET', '/api/endpoints', { headers: { authorization: auth } });
      assert.equal(res.status, 401, `Authorization: ${String(auth).slice(0, 80)} → ${res.status} ${res.text}`);
      assert.equal(res.json.error.code, 'Unauthorized');
      assert.ok(!res.text.includes(secret) && !res.text.includes(api.store.getToken(id)!.hash));
      n++;
    }
    assert.equal(n, 2_000);
    assert.equal((await call(api.port, 'GET', '/api/endpoints', { token: owner })).status, 200, 'still serving');
  });

  test('an unknown id and a known id with the wrong secret get the same answer', async () => {
    const [, id] = api.tokens.owner.split('_');
    const unknown = await call(api.port, 'GET', '/api/info', { token: `igt_${'1'.repeat(16)}_${'2'.repeat(64)}` });
    const wrongSecret = await call(api.port, 'GET', '/api/info', { token: `igt_${id}_${'2'.repeat(64)}` });
    assert.deepEqual(unknown.json, wrongSecret.json);
  });
});

describe('audit log', () => {
  test('a walkthrough leaves one line per change and per credential read, with who, what and the result; no key, no secret', async () => {
    const api = await startApi();
    try {
      const { port, tokens } = api;
      await call(port, 'POST', '/api/endpoints', { token: tokens.contributor, body: { name: 'ep-audit', auth_mode: 'key' } });
      await call(port, 'GET', '/api/endpoints/ep-audit', { token: tokens.reader }); // a read: not audited
      const creds = (await call(port, 'POST', '/api/endpoints/ep-audit/credentials', { token: tokens.contributor })).json;
      await call(port, 'POST', '/api/endpoints/ep-audit/regenerate-keys', { token: tokens.contributor, body: { key_type: 'secondary' } });
      await call(port, 'DELETE', '/api/endpoints/ep-audit', { token: tokens.reader }); // refused: audited with 403
      await call(port, 'PUT', '/api/endpoints/ep-audit', { body: { name: 'ep-audit' } }); // no token: audited with 401
      const created = (await call(port, 'POST', '/api/tokens', { token: tokens.owner, body: { role: 'reader' } })).json;
      await call(port, 'DELETE', `/api/tokens/${created.id}`, { token: tokens.owner });
      await api.audit.close();
      assert.equal((statSync(api.auditFile).mode & 0o777).toString(8), '600');
      const text = readFileSync(api.auditFile, 'utf8');
      const lines = text.trim().split('\n').map((l) => JSON.parse(l));
      const summary = lines.map((l) => `${l.method} ${l.route} ${l.status} ${l.role ?? '-'} ${l.endpoint ?? l.target_token ?? ''}`);
      assert.deepEqual(summary, [
        'POST /api/endpoints 201 contributor ep-audit',
        'POST /api/endpoints/:name/credentials 200 contributor ep-audit',
        'POST /api/endpoints/:name/regenerate-keys 200 contributor ep-audit',
        'DELETE /api/endpoints/:name 403 reader ep-audit',
        'PUT /api/endpoints/:name 401 - ep-audit',
        `POST /api/tokens 201 owner ${created.id}`,
        `DELETE /api/tokens/:id 200 owner ${created.id}`,
      ]);
      for (const l of lines) {
        assert.ok(!Number.isNaN(Date.parse(l.time)) && typeof l.request_id === 'string' && l.client === '127.0.0.1');
        if (l.role) assert.equal(l.token_id, tokens[l.role as Role].split('_')[1]);
      }
      const keys = api.store.getEndpoint('ep-audit')?.keys;
      const secrets = [creds.primaryKey, creds.secondaryKey, keys?.tokenSecret, keys?.secondaryKey, created.token, created.token.split('_')[2], ...Object.values(tokens).map((t) => t.split('_')[2])];
      for (const s of secrets.filter(Boolean)) assert.ok(!text.includes(s), 'no key or token secret in the audit log');
    } finally {
      await api.close();
    }
  });
});

describe('tokens (pure)', () => {
  test('durations: 30d, 12h, 15m, 90s, bare seconds; nonsense and zero refused', () => {
    assert.equal(parseDuration('30d'), 30 * 86400);
    assert.equal(parseDuration('12h'), 43200);
    assert.equal(parseDuration('15m'), 900);
    assert.equal(parseDuration('90s'), 90);
    assert.equal(parseDuration('45'), 45);
    for (const bad of ['', '0s', '-1d', '1y', '1.5h', '99999d']) assert.throws(() => parseDuration(bad), /expires_in/, bad);
  });

  test('verifyToken: valid, wrong secret, malformed, revoked, expired', () => {
    const store = new MemoryStateStore();
    const now = Date.now();
    const { token, record } = createToken(store, { role: 'reader', expiresInSeconds: 10 }, now);
    assert.equal(verifyToken(store, token, now).ok, true);
    assert.equal(verifyToken(store, token.replace(/.$/, (c) => (c === '0' ? '1' : '0')), now).ok, false);
    assert.equal(verifyToken(store, 'igt_nothex_nothex', now).ok, false);
    assert.equal(verifyToken(store, token, now + 10_000).ok, false);
    store.deleteToken(record.id);
    assert.equal(verifyToken(store, token, now).ok, false);
  });
});
