// The studio's server side (api/studio.ts) on a real listening API: the one-time sign-in code, the
// session cookie standing for its token's role (and ending with it), the header a cookie-authenticated
// change must carry, YAML validation at line:column without opening any path, and the live chart stream.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Backend } from '../backend/types.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { DeploymentMeters, deploymentMeters, LATENCY_BUCKETS } from '../telemetry/metrics.js';
import { createToken } from './auth.js';
import { buildApi } from './server.js';
import { CHART_COLUMNS, CODE_TTL_MS, quantileMs, SESSION_TTL_MS, StudioCharts, TEST_ANSWER_MAX, validateYaml } from './studio.js';

const idleBackend = (): Backend =>
  ({ kind: 'process', observe: () => [], start: async () => {}, stop: async () => {}, logs: async () => '', onChange: () => {}, close: async () => {} }) as unknown as Backend;

let app: FastifyInstance;
let base = '';
let dir = '';
const store = new MemoryStateStore();
const clock = { now: Date.now() };
let controller: Controller;
const tokens: Record<string, string> = {};
/** Stands for the router behind the scoring URI: records what the Test route sent, answers `answer`. */
let router: Server;
const scored: Array<{ url: string; headers: IncomingMessage['headers']; body: string }> = [];
let answer = '';

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-studio-'));
  router = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8').on('data', (c: string) => (body += c));
    req.on('end', () => {
      scored.push({ url: req.url ?? '', headers: req.headers, body });
      res.writeHead(200, { 'content-type': 'application/json', 'azureml-model-deployment': 'blue' }).end(answer);
    });
  });
  await new Promise<void>((ok) => router.listen(0, '127.0.0.1', ok));
  const routerUrl = `http://127.0.0.1:${(router.address() as { port: number }).port}`;
  controller = new Controller({ store, backend: idleBackend(), publish: () => {}, deregistrationDelayMs: 0 });
  app = await buildApi({ store, controller, logs: async () => '', routerUrl, workspace: 'ws', location: 'local', version: '0', assetsDir: join(dir, 'assets'), now: () => clock.now });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`;
  for (const role of ['owner', 'contributor', 'reader'] as const) tokens[role] = createToken(store, { role }).token;
});

after(async () => {
  controller.stop();
  await app.close();
  router.closeAllConnections();
  await new Promise((ok) => router.close(ok));
  rmSync(dir, { recursive: true, force: true });
});

const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

/** A session cookie for `token`, through the sign-in code as a browser gets it. */
async function signIn(token: string): Promise<string> {
  const code = (await (await fetch(`${base}/studio/v1/sign-in-codes`, { method: 'POST', headers: bearer(token) })).json()) as { path: string };
  const res = await fetch(base + code.path);
  assert.equal(res.status, 200);
  const cookie = res.headers.get('set-cookie') ?? '';
  assert.match(cookie, /^infergate_studio=[\w-]{43}; Path=\/; HttpOnly; SameSite=Strict; Max-Age=\d+$/, 'no Secure on plain HTTP; HttpOnly and Strict always');
  return cookie.split(';')[0];
}

test('a sign-in code is exchanged once, within its lifetime, for a session of its token', async () => {
  const code = (await (await fetch(`${base}/studio/v1/sign-in-codes`, { method: 'POST', headers: bearer(tokens.reader) })).json()) as { path: string; expires_in_seconds: number };
  assert.equal(code.expires_in_seconds, CODE_TTL_MS / 1000);
  assert.equal((await fetch(base + code.path, { method: 'HEAD' })).status, 200, 'a HEAD does not use the code up');
  const first = await fetch(base + code.path);
  assert.equal(first.status, 200);
  assert.match(first.headers.get('set-cookie') ?? '', /^infergate_studio=/);
  const again = await fetch(base + code.path);
  assert.equal(again.status, 401);
  assert.equal(again.headers.get('set-cookie'), null);
  assert.match(await again.text(), /not valid/);

  const late = (await (await fetch(`${base}/studio/v1/sign-in-codes`, { method: 'POST', headers: bearer(tokens.reader) })).json()) as { path: string };
  clock.now += CODE_TTL_MS + 1;
  assert.equal((await fetch(base + late.path)).status, 401, 'an expired code');
  assert.equal((await fetch(`${base}/studio/login?code=made-up`)).status, 401);
  // Without a session or token the API answers as before.
  assert.equal((await fetch(`${base}/api/whoami`)).status, 401);

  // A session cannot sign in another browser, nor renew itself past its lifetime.
  const session = await signIn(tokens.owner);
  const renew = await fetch(`${base}/studio/v1/sign-in-codes`, { method: 'POST', headers: { cookie: session, 'x-infergate-studio': '1' } });
  assert.equal(renew.status, 403);
  assert.match(((await renew.json()) as { error: { message: string } }).error.message, /API token/);
});

test("a session has its token's role; changes need the studio header", async () => {
  const reader = await signIn(tokens.reader);
  const who = (await (await fetch(`${base}/api/whoami`, { headers: { cookie: reader } })).json()) as { role: string };
  assert.equal(who.role, 'reader');
  const refused = await fetch(`${base}/api/endpoints`, { method: 'POST', headers: { cookie: reader, 'content-type': 'application/json', 'x-infergate-studio': '1' }, body: JSON.stringify({ name: 'studio-a' }) });
  assert.equal(refused.status, 403);
  assert.equal(((await refused.json()) as { error: { code: string } }).error.code, 'Forbidden');

  const owner = await signIn(tokens.owner);
  const bare = await fetch(`${base}/api/endpoints`, { method: 'POST', headers: { cookie: owner, 'content-type': 'application/json' }, body: JSON.stringify({ name: 'studio-a' }) });
  assert.equal(bare.status, 403);
  assert.match(((await bare.json()) as { error: { message: string } }).error.message, /X-Infergate-Studio/);
  const made = await fetch(`${base}/api/endpoints`, { method: 'POST', headers: { cookie: owner, 'content-type': 'application/json', 'x-infergate-studio': '1' }, body: JSON.stringify({ name: 'studio-a' }) });
  assert.equal(made.status, 201);
  // A bearer token wins over the cookie: the request is the reader's.
  const both = await fetch(`${base}/api/whoami`, { headers: { cookie: owner, ...bearer(tokens.reader) } });
  assert.equal(((await both.json()) as { role: string }).role, 'reader');
});

test('a session ends when its token is revoked, when it expires, and at sign-out', async () => {
  const t = createToken(store, { role: 'contributor' });
  const revoked = await signIn(t.token);
  assert.equal((await fetch(`${base}/api/whoami`, { headers: { cookie: revoked } })).status, 200);
  store.deleteToken(t.record.id);
  const gone = await fetch(`${base}/api/whoami`, { headers: { cookie: revoked } });
  assert.equal(gone.status, 401);
  assert.match(((await gone.json()) as { error: { message: string } }).error.message, /studio session has ended/);

  const old = await signIn(tokens.reader);
  clock.now += SESSION_TTL_MS + 1;
  assert.equal((await fetch(`${base}/api/whoami`, { headers: { cookie: old } })).status, 401);

  const s = await signIn(tokens.reader);
  const out = await fetch(`${base}/studio/v1/sign-out`, { method: 'POST', headers: { cookie: s, 'x-infergate-studio': '1' } });
  assert.match(out.headers.get('set-cookie') ?? '', /Max-Age=0/);
  assert.equal((await fetch(`${base}/api/whoami`, { headers: { cookie: s } })).status, 401);
});

test('the page is served with a strict content security policy; assets are public, data is not', async () => {
  const page = await fetch(`${base}/`);
  // Built by scripts/build-studio.mjs (npm run build); without it, a coded 404 that says so.
  if (page.status === 404) assert.match(await page.text(), /npm run build/);
  else {
    assert.equal(page.status, 200);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'; script-src 'self'/);
    const html = await page.text();
    const js = /src="(\/studio\/assets\/[^"]+\.js)"/.exec(html)![1];
    const asset = await fetch(base + js);
    assert.equal(asset.status, 200);
    assert.match(asset.headers.get('cache-control') ?? '', /immutable/);
  }
  assert.equal((await fetch(`${base}/studio/assets/..%2f..%2fpackage.json`)).status, 404);
  assert.equal((await fetch(`${base}/studio/v1/summary`)).status, 401);
});

test('pasted YAML is validated as the CLI does, at line:column, and no path it names is opened', () => {
  const yaml = 'name: blue\nendpoint_name: ep-one\nmodel:\n  path: /etc/shadow\ncode_configuration:\n  code: ./does-not-exist\n  scoring_script: score.py\nenvironment:\n  image: python\ninstance_type: Standard_DS3_v2\ninstance_count: 1\ncolour: blue\n';
  const v = validateYaml('deployment', yaml, 'blue.yml', {});
  assert.deepEqual(v.problems.map((p) => p.text), ["blue.yml:12:1: colour: unknown key 'colour'"]);
  assert.deepEqual(v.uploads.map((u) => [u.key, u.value, u.line, u.column, u.attached]), [
    ['model.path', '/etc/shadow', 4, 9, false],
    ['code_configuration.code', './does-not-exist', 6, 9, false],
  ]);
  assert.equal(v.document, undefined);
  const ref = (c: string) => `upload:sha256:${c.repeat(64)}`;
  const ok = validateYaml('deployment', yaml.replace('colour: blue\n', ''), 'blue.yml', { 'model.path': ref('a'), 'code_configuration.code': ref('b') });
  assert.deepEqual(ok.problems, []);
  assert.equal((ok.document?.model as { path: string }).path, ref('a'));
  assert.equal(ok.endpoint_name, 'ep-one');
  const broken = validateYaml('endpoint', 'name: [unclosed\n', 'e.yml', {});
  assert.match(broken.problems[0].text, /^e\.yml:\d+:\d+: invalid YAML/);
});

test('latency quantiles are interpolated inside their bucket', () => {
  const counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  assert.ok(Number.isNaN(quantileMs(counts, 0.5)));
  const i = LATENCY_BUCKETS.indexOf(0.01); // (5 ms, 10 ms]
  counts[i] = 100;
  assert.equal(quantileMs(counts, 0.5), 7.5);
  assert.equal(quantileMs(counts, 1), 10);
  counts[i + 1] = 100; // (10 ms, 25 ms]
  assert.equal(quantileMs(counts, 0.75), 17.5);
});

test('chart rows: requests per minute by status class, windowed percentiles, capacity; a deleted deployment is forgotten', () => {
  const m = new DeploymentMeters('ep', 'blue');
  let t = 1_000_000;
  const live = [m];
  const charts = new StudioCharts(() => live, 1000, () => t);
  const col = (name: (typeof CHART_COLUMNS)[number]) => 1 + CHART_COLUMNS.indexOf(name);
  charts.sample();
  m.byStatus[200] += 30;
  m.byStatus[503] += 2;
  for (let k = 0; k < 32; k++) m.requestDuration.observe(0.004);
  m.readyInstances = 2;
  t += 1000;
  charts.sample();
  let rows = charts.history('ep', 0).blue;
  assert.equal(rows.length, 2);
  const last = rows[1];
  assert.equal(last[col('RequestsPerMinute:2xx')], 30);
  assert.equal(last[col('RequestsPerMinute:5xx')], 2);
  assert.equal(last[col('DeploymentCapacity')], 2);
  assert.ok((last[col('RequestLatency_P50')] as number) > 2.5 && (last[col('RequestLatency_P50')] as number) <= 5);
  assert.equal(last[col('CpuUtilizationPercentage')], null, 'not measured: no value, not 0');
  assert.deepEqual(charts.perMinute(), { ep: 32 });
  // Past a minute, the old requests no longer count.
  for (let k = 0; k < 61; k++) {
    t += 1000;
    charts.sample();
  }
  rows = charts.history('ep', 0).blue;
  assert.equal(rows[rows.length - 1][col('RequestsPerMinute:2xx')], 0);
  assert.equal(rows[rows.length - 1][col('RequestLatency_P50')], null);
  live.pop();
  charts.sample();
  assert.deepEqual(charts.history('ep', 0), {});
});

test('the metrics stream sends a snapshot, then a sample each second, for the endpoint asked', async () => {
  const res = await fetch(`${base}/api/endpoints`, { method: 'POST', headers: { ...bearer(tokens.owner), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'studio-sse' }) });
  assert.equal(res.status, 201);
  const meters = deploymentMeters('studio-sse', 'blue');
  meters.readyInstances = 1;
  const abort = new AbortController();
  // A stream that sends nothing must fail the test, not hold it: the read below is cut at the deadline.
  const deadlineTimer = setTimeout(() => abort.abort(new Error('no sample within 10 s')), 10_000);
  const stream = await fetch(`${base}/studio/v1/metrics/stream?endpoint=studio-sse&range=60`, { headers: bearer(tokens.reader), signal: abort.signal });
  assert.equal(stream.status, 200);
  assert.match(stream.headers.get('content-type') ?? '', /^text\/event-stream/);
  const reader = stream.body!.getReader();
  let text = '';
  while (!/event: sample\ndata: \{"deployment":"blue"/.test(text)) {
    const { value, done } = await reader.read();
    if (done) break;
    text += new TextDecoder().decode(value);
  }
  clearTimeout(deadlineTimer);
  assert.match(text, /^event: snapshot\ndata: \{"columns":\["time","RequestsPerMinute:2xx"/);
  abort.abort();
  meters.live = false;
  assert.equal((await fetch(`${base}/studio/v1/metrics/stream?endpoint=nope`, { headers: bearer(tokens.reader) })).status, 404);
});

test('the Test route sends with the endpoint key, pinned to a deployment, and returns at most TEST_ANSWER_MAX of the answer', async () => {
  const made = await fetch(`${base}/api/endpoints`, { method: 'POST', headers: { ...bearer(tokens.owner), 'content-type': 'application/json' }, body: JSON.stringify({ name: 'studio-test' }) });
  assert.equal(made.status, 201);
  const key = ((await (await fetch(`${base}/api/endpoints/studio-test/credentials`, { method: 'POST', headers: bearer(tokens.owner) })).json()) as { primaryKey: string }).primaryKey;
  const send = (token: string) =>
    fetch(`${base}/studio/v1/endpoints/studio-test/test`, { method: 'POST', headers: { ...bearer(token), 'content-type': 'application/json' }, body: JSON.stringify({ body: '{"data":[1]}', deployment: 'blue' }) });
  assert.equal((await send(tokens.reader)).status, 403, 'a reader may not use the key');

  answer = '{"ok":true}';
  scored.length = 0;
  const small = (await (await send(tokens.contributor)).json()) as { status: number; headers: Record<string, string>; body: string; truncated_at_bytes?: number };
  assert.deepEqual([small.status, small.body, small.headers['azureml-model-deployment'], small.truncated_at_bytes], [200, '{"ok":true}', 'blue', undefined]);
  assert.equal(scored[0].url, '/endpoints/studio-test/score');
  assert.equal(scored[0].headers.authorization, `Bearer ${key}`);
  assert.equal(scored[0].headers['azureml-model-deployment'], 'blue');
  assert.equal(scored[0].body, '{"data":[1]}');

  answer = 'x'.repeat(TEST_ANSWER_MAX + 1000);
  const big = (await (await send(tokens.contributor)).json()) as { body: string; truncated_at_bytes?: number };
  assert.equal(big.body.length, TEST_ANSWER_MAX);
  assert.equal(big.truncated_at_bytes, TEST_ANSWER_MAX);
});
