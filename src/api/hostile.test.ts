// The control-plane API against hostile clients and hostile files (issue 8), on a real listening server:
// over-deep and malformed bodies get coded 4xx (never 500), garbage and header slowloris connections give
// their file descriptors back, and FIFOs named as conda files do not block the server's file I/O.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, cpSync, mkdirSync, mkdtempSync, openSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Backend } from '../backend/types.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { createToken } from './auth.js';
import { buildApi } from './server.js';
import { errorOf } from '../errors/index.js';
import { Client } from '../client/client.js';
import { uploadedDeployment, uploadedModel } from '../cli/uploads-testing.js';
import { waitFor } from '../util/wait-testing.js';

const jsModel = join(dirname(fileURLToPath(import.meta.url)), '../../test/fixtures/js-model');
let dir: string;
let app: FastifyInstance;
let controller: Controller;
let base: string;
/** The owner's Authorization header; access control itself is tested in access.test.ts. */
let auth: string;
let port: number;
const fifos: string[] = [];

/** Runs nothing; its logs are read from a real file, through libuv's file threads as the process backend's are. */
function backendWithLogFile(logFile: string): Backend {
  return {
    kind: 'process',
    observe: () => [],
    start: async () => {},
    stop: async () => {},
    logs: async () => readFile(logFile, 'utf8'),
    onChange: () => {},
    close: async () => {},
  } as unknown as Backend;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-api-hostile-'));
  const logFile = join(dir, 'inference-server.log');
  writeFileSync(logFile, 'the log\n');
  const store = new MemoryStateStore();
  auth = `Bearer ${createToken(store, { role: 'owner' }).token}`;
  const backend = backendWithLogFile(logFile);
  controller = new Controller({ store, backend, publish: () => {}, deregistrationDelayMs: 0 });
  app = await buildApi({
    store,
    controller,
    logs: (e, d, c, n) => backend.logs(e, d, c, n),
    routerUrl: 'http://127.0.0.1:9999',
    workspace: 'test-ws',
    location: 'local',
    version: '0.0.0-test',
    assetsDir: join(dir, 'assets'),
    // Short enough for a test; the defaults are in API_HTTP_LIMITS.
    http: { headersTimeoutMs: 1_000, checkIntervalMs: 200 },
  });
  await app.listen({ port: 0, host: '127.0.0.1' });
  port = (app.server.address() as { port: number }).port;
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  // Readers stuck on a FIFO (only if the code regressed) are released by a writer, so the process can end.
  for (const f of fifos) {
    try {
      closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      /* no reader */
    }
  }
  controller.stop();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

async function send(method: string, path: string, body?: string, contentType = 'application/json') {
  const headers = { authorization: auth, ...(body !== undefined ? { 'content-type': contentType } : {}) };
  const res = await fetch(base + path, { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(10_000) });
  const text = await res.text();
  let json: { error?: { code?: string; message?: string } } | undefined;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, code: json?.error?.code, message: json?.error?.message ?? text };
}

const fdCount = () => readdirSync('/proc/self/fd').length;

test('100,000 nested brackets are a coded 400 BodyTooDeep, on every route that takes a body', async () => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const deepObject = '{"name":' + '{"a":'.repeat(100_000) + '1' + '}'.repeat(100_000) + '}';
  for (const [method, path] of [
    ['POST', '/api/endpoints'],
    ['PUT', '/api/endpoints/x'],
    ['POST', '/api/endpoints/x/deployments'],
    ['POST', '/api/models'],
    ['POST', '/api/environments'],
  ]) {
    for (const body of [deep, deepObject]) {
      const r = await send(method, path, body);
      assert.equal(r.status, 400, `${method} ${path}: ${r.message}`);
      assert.equal(r.code, 'BodyTooDeep');
      assert.match(r.message, /more than 64 levels deep/);
    }
  }
  // 64 levels are accepted by the parser (and then refused by validation, as any unknown key is).
  const ok = await send('POST', '/api/endpoints', JSON.stringify({ name: 'my-endpoint', tags: JSON.parse('['.repeat(62) + ']'.repeat(62)) }));
  assert.equal(ok.status, 400);
  assert.equal(ok.code, 'ValidationFailed');
  // Brackets inside strings are text, not nesting.
  const quoted = await send('POST', '/api/endpoints', JSON.stringify({ name: 'my-endpoint', description: '['.repeat(1000) }));
  assert.equal(quoted.status, 201, quoted.message);
});

test('malformed bodies get coded 4xx, never a 500, worded by our templates and never by Fastify', async () => {
  const cases: [string, string | undefined, string, number, string, string][] = [
    ['invalid JSON', '{"name": ', 'application/json', 400, 'BadArgument', errorOf('JsonMalformed').message],
    ['empty JSON body', '', 'application/json', 400, 'BadArgument', errorOf('JsonBodyEmpty').message],
    ['wrong content type', 'name=x', 'application/x-www-form-urlencoded', 415, 'BadArgument', errorOf('MediaTypeUnsupported', { contentType: 'application/x-www-form-urlencoded' }).message],
    ['__proto__ key', '{"__proto__": {"x": 1}, "name": "my-endpoint-2"}', 'application/json', 400, 'BadArgument', errorOf('JsonMalformed').message],
    ['over the body limit', JSON.stringify({ name: 'e', description: 'x'.repeat(11 * 1024 * 1024) }), 'application/json', 413, 'BodyTooLarge', errorOf('BodyTooLarge', { limit: 10 * 1024 * 1024 }).message],
  ];
  for (const [what, body, type, status, code, message] of cases) {
    const r = await send('POST', '/api/endpoints', body, type);
    assert.equal(r.status, status, `${what}: ${r.message}`);
    assert.equal(r.code, code, what);
    assert.equal(r.message, message, what);
  }
  // A schema violation lists Ajv's per-field results under our template.
  const schema = await send('POST', '/api/tokens', JSON.stringify({ role: 'emperor' }));
  assert.equal(schema.status, 400);
  assert.match(schema.message, /^The request does not match the route: body\/role must be equal to one of the allowed values\.$/);
  const badUrl = await send('GET', '/api/endpoints/%E0%A4%A');
  assert.ok(badUrl.status === 400 || badUrl.status === 404, String(badUrl.status));
  assert.ok(badUrl.code === 'BadArgument' || badUrl.code === 'EndpointNotFound', String(badUrl.code));
});

/** The CLI's uploader over real HTTP, with the owner's token. */
const cliClient = () => new Client(base, auth.slice('Bearer '.length));

test('FIFOs named as conda files are refused at once without being opened, and the server keeps reading files (get-logs)', async () => {
  // The endpoint and deployment get-logs needs.
  const ep = await send('POST', '/api/endpoints', JSON.stringify({ name: 'fifo-endpoint' }));
  assert.equal(ep.status, 201, ep.message);
  const dep = await send('POST', '/api/endpoints/fifo-endpoint/deployments', JSON.stringify(await uploadedDeployment(cliClient(), {
    name: 'blue',
    endpoint_name: 'fifo-endpoint',
    model: { path: join(jsModel, 'model') },
    code_configuration: { code: jsModel, scoring_script: 'score.mjs' },
    instance_type: 'Standard_DS3_v2',
    instance_count: 1,
  })));
  assert.equal(dep.status, 201, dep.message);
  const t0 = performance.now();
  // More FIFOs than libuv has file threads (4): before, each blocked one thread until written to.
  const attempts = [];
  for (let i = 0; i < 6; i++) {
    const fifo = join(dir, `conda-${i}.yaml`);
    execFileSync('mkfifo', [fifo]);
    fifos.push(fifo);
    attempts.push(send('POST', '/api/environments', JSON.stringify({ name: `env-${i}`, image: 'python:3.12', conda_file: fifo })));
  }
  // The server no longer opens a path a client names at all (issue 9): refused before any file operation.
  for (const r of await Promise.all(attempts)) {
    assert.equal(r.status, 400, r.message);
    assert.equal(r.code, 'BadArgument');
    assert.match(r.message, /conda_file: '.*conda-\d\.yaml' is a file system path; the server reads no path a client names/);
  }
  assert.ok(performance.now() - t0 < 5_000);
  // The file threads are free: get-logs (which reads the log file through them) answers at once.
  const logs = await send('GET', '/api/endpoints/fifo-endpoint/deployments/blue/logs?lines=10');
  assert.equal(logs.status, 200, logs.message);
  assert.equal(logs.message, 'the log\n');
});

test('a model folder with a link loop, or a code folder with a FIFO, is PathNotReadable when the CLI uploads it (was a 500, or a hang)', async () => {
  const model = join(dir, 'loop-model');
  mkdirSync(join(model, 'inner'), { recursive: true });
  writeFileSync(join(model, 'weights.bin'), 'w');
  symlinkSync('..', join(model, 'inner', 'up'));
  await assert.rejects(uploadedModel(cliClient(), { name: 'loopy', path: model }), (e: { code?: string; message: string }) => {
    assert.equal(e.code, 'PathNotReadable');
    assert.match(e.message, /'.*loop-model\/inner\/up' \(inside model path .*loop-model\) is a symbolic-link loop/);
    return true;
  });

  const code = join(dir, 'fifo-code');
  mkdirSync(code);
  cpSync(join(jsModel, 'score.mjs'), join(code, 'score.mjs'));
  execFileSync('mkfifo', [join(code, 'pipe')]);
  fifos.push(join(code, 'pipe'));
  await send('POST', '/api/endpoints', JSON.stringify({ name: 'code-endpoint' }));
  const t0 = performance.now();
  await assert.rejects(uploadedDeployment(cliClient(), {
    name: 'blue',
    endpoint_name: 'code-endpoint',
    model: { path: join(jsModel, 'model') },
    code_configuration: { code, scoring_script: 'score.mjs' },
    instance_type: 'Standard_DS3_v2',
    instance_count: 1,
  }), (e: { code?: string; message: string }) => {
    assert.equal(e.code, 'PathNotReadable');
    assert.match(e.message, /'.*fifo-code\/pipe' \(inside code .*\) is a FIFO \(named pipe\)/);
    return true;
  });
  assert.ok(performance.now() - t0 < 5_000, 'refused at once, not after waiting on the FIFO');
});

/** Opens `n` connections, `batch` at a time; each writes `payload` and waits for the server to close it. */
async function hammer(n: number, batch: number, payload: string, waitMs: number): Promise<{ closedByServer: number }> {
  let closedByServer = 0;
  for (let done = 0; done < n; done += batch) {
    const sockets: Promise<void>[] = [];
    for (let i = 0; i < Math.min(batch, n - done); i++) {
      sockets.push(
        new Promise<void>((resolve) => {
          const s: Socket = connect(port, '127.0.0.1');
          const timer = setTimeout(() => s.destroy(), waitMs);
          s.on('connect', () => s.write(payload));
          s.on('data', () => {});
          s.on('end', () => closedByServer++);
          s.on('error', () => {});
          s.on('close', () => {
            clearTimeout(timer);
            resolve();
          });
        }),
      );
    }
    await Promise.all(sockets);
  }
  return { closedByServer };
}

test('3,000 garbage requests and a 300-connection header slowloris leave the fd count where it was; the API still serves', async () => {
  const info = () => send('GET', '/api/info');
  assert.equal((await info()).status, 200);
  const baseline = fdCount();

  const garbage = await hammer(3_000, 200, 'GARBAGE\r\n\r\n', 5_000);
  assert.equal(garbage.closedByServer, 3_000, 'the server answers 400 and closes every garbage connection');
  // The clients saw every close; the server's side of each socket is released as its 'close' runs.
  // A leak never gets there: the wait fails with the count.
  await waitFor('the fd count back where it was after the garbage', () => fdCount() <= baseline + 5, 5_000, 20, () => `fds: ${baseline} before, ${fdCount()} now`);
  const afterGarbage = fdCount();

  // Headers that never end: cut by headersTimeout (1 s here, 10 s by default), checked every 200 ms.
  const t0 = performance.now();
  const slow = await hammer(300, 300, 'GET /api/info HTTP/1.1\r\nHost: x\r\nX-Slow: ', 10_000);
  const slowMs = performance.now() - t0;
  assert.equal(slow.closedByServer, 300, 'the server cuts every slow-header connection itself');
  assert.ok(slowMs < 5_000, `slowloris cut after ${slowMs.toFixed(0)} ms`);
  await waitFor('the fd count back where it was after the slowloris', () => fdCount() <= baseline + 5, 5_000, 20, () => `fds: ${baseline} before, ${fdCount()} now`);
  const afterSlow = fdCount();

  assert.ok(afterGarbage <= baseline + 5, `fds: ${baseline} before, ${afterGarbage} after garbage`);
  assert.ok(afterSlow <= baseline + 5, `fds: ${baseline} before, ${afterSlow} after slowloris`);
  assert.equal((await info()).status, 200);
  process.stderr.write(`# fds: baseline ${baseline}, after 3000 garbage ${afterGarbage}, after 300 slowloris ${afterSlow} (cut in ${slowMs.toFixed(0)} ms)\n`);
});
