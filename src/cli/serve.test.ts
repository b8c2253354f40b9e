// `infergate serve` (issue #5 item 5) driven as a user would: the real CLI as a child process, real HTTP
// requests, files edited on disk while it runs, Ctrl-C at the end.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { errorSummary, findErrorLocation } from './serve.js';
import { sourceCliArgs } from './source-cli-testing.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FIXTURES = join(ROOT, 'test/fixtures');
const EXAMPLES = join(ROOT, 'examples/azureml');
const CANONICAL = '[11055.977245525679, 4503.079536107787]';

let tmp: string;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'infergate-serve-test-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Served {
  child: ChildProcess;
  url: string;
  stdout(): string;
  stderr(): string;
  waitFor(re: RegExp, stream?: 'stdout' | 'stderr', ms?: number): Promise<RegExpMatchArray>;
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

async function serve(args: string[]): Promise<Served> {
  const child = spawn(process.execPath, sourceCliArgs(['serve', '--port', '0', ...args]), {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_PYTHON: '/usr/bin/python3' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const waitFor = async (re: RegExp, stream: 'stdout' | 'stderr' = 'stderr', ms = 20_000) => {
    for (let waited = 0; ; waited += 25) {
      const m = (stream === 'stdout' ? out : err).match(re);
      if (m) return m;
      if (waited > ms || child.exitCode !== null) assert.fail(`no ${re} in ${stream} after ${waited} ms (exit ${child.exitCode})\n--- stdout\n${out}\n--- stderr\n${err}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  };
  const port = (await waitFor(/^Server Port: (\d+)$/m, 'stdout'))[1];
  return {
    child,
    url: `http://127.0.0.1:${port}`,
    stdout: () => out,
    stderr: () => err,
    waitFor,
    async stop(signal = 'SIGINT') {
      if (child.exitCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Polls until `check` passes (the script may still be starting or reloading). */
async function eventually<T>(fn: () => Promise<T>, check: (v: T) => boolean, ms = 20_000): Promise<T> {
  const t0 = Date.now();
  for (;;) {
    const v = await fn();
    if (check(v)) return v;
    if (Date.now() - t0 > ms) return v;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });

describe('infergate serve: Azure model-1 score.py over HTTP', () => {
  let s: Served;
  before(async () => {
    // A copy: Python writes __pycache__ next to the script, and examples/ must stay as it is.
    cpSync(join(EXAMPLES, 'model-1/onlinescoring'), join(tmp, 'onlinescoring'), { recursive: true });
    s = await serve(['--entry-script', join(tmp, 'onlinescoring/score.py'), '--model-dir', join(EXAMPLES, 'model-1')]);
    await s.waitFor(/The scoring script is ready/);
  });
  after(() => s.stop());

  it("prints azmlinfsrv's banner, adapted", () => {
    const out = s.stdout();
    assert.match(out, /^infergate inference server v\d+\.\d+\.\d+ \(azmlinfsrv-compatible debug server\)\n\n\nServer Settings\n---------------\n/);
    assert.match(out, new RegExp(`^Entry Script Name: ${join(tmp, 'onlinescoring/score.py')}$`, 'm'));
    assert.match(out, new RegExp(`^Model Directory: ${join(EXAMPLES, 'model-1')}$`, 'm'));
    assert.match(out, /^Worker Count: 1$/m);
    assert.match(out, /^Server Routes\n---------------\nLiveness Probe: GET   127\.0\.0\.1:\d+\/\nScore:          POST  127\.0\.0\.1:\d+\/score\n/m);
  });

  it('answers the sample request with the canonical bytes and azmlinfsrv headers', async () => {
    const r = await fetch(`${s.url}/score`, { method: 'POST', headers: { 'content-type': 'application/json', TraceId: 'trace-7' }, body: readFileSync(join(EXAMPLES, 'model-1/sample-request.json')) });
    assert.equal(r.status, 200);
    assert.equal(await r.text(), CANONICAL);
    assert.equal(r.headers.get('content-length'), '39');
    assert.equal(r.headers.get('x-ms-run-function-failed'), 'False');
    assert.match(r.headers.get('x-request-id') ?? '', /^[0-9a-f-]{36}$/); // made up when the client sent none
    assert.equal(r.headers.get('x-ms-request-id'), r.headers.get('x-request-id'));
    assert.match(r.headers.get('x-ms-server-version') ?? '', /^infergate\/\d+\.\d+\.\d+$/);
    assert.equal(r.headers.get('traceid'), 'trace-7');
    await s.waitFor(/infergate\.serve - POST \/score 200 \d+\.\d{3}ms 39$/m);
  });

  it('serves /, /swagger.json (2, 3, 3.1) and 404 / 405', async () => {
    assert.equal(await (await fetch(`${s.url}/`)).text(), 'Healthy');
    const v2 = (await (await fetch(`${s.url}/swagger.json`)).json()) as { swagger: string; definitions: Record<string, unknown> };
    assert.equal(v2.swagger, '2.0');
    assert.deepEqual(v2.definitions.ServiceInput, { type: 'object', example: {} });
    assert.equal(((await (await fetch(`${s.url}/swagger.json?version=3`)).json()) as { openapi: string }).openapi, '3.0.3');
    assert.equal(((await (await fetch(`${s.url}/swagger.json?version=3.1`)).json()) as { openapi: string }).openapi, '3.1.0');
    const bad = await fetch(`${s.url}/swagger.json?version=5`);
    assert.equal(bad.status, 404);
    assert.deepEqual(await bad.json(), { message: 'Swagger version [5] is not valid. Supported versions: [2, 3, 3.1].' });
    assert.equal((await fetch(`${s.url}/predict`)).status, 404);
    const put = await fetch(`${s.url}/score`, { method: 'PUT', body: '{}' });
    assert.equal(put.status, 405);
    assert.deepEqual(await put.json(), { message: 'The method is not allowed for the requested URL.' });
  });
});

describe('infergate serve: @input_schema and @rawhttp scripts over HTTP', () => {
  it('converts decorated inputs and answers 415 / 400 with azmlinfsrv messages', async () => {
    const s = await serve(['--entry-script', join(FIXTURES, 'py-schema-standard/score.py')]);
    try {
      const ok = await postJson(`${s.url}/score`, { sepal_length: [1, 2.5], sepal_width: [3], species: 'setosa' });
      assert.equal(ok.status, 200);
      const v = (await ok.json()) as Record<string, unknown>;
      assert.deepEqual(v.types, ['list', 'list', 'str', 'int']);
      assert.deepEqual(v.sepal_length, [1, 2.5]);
      assert.equal(v.user_agent, 'node');
      const text = await fetch(`${s.url}/score`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: '{}' });
      assert.equal(text.status, 415);
      assert.deepEqual(await text.json(), { message: 'Expects Content-Type to be application/json' });
      const missing = await postJson(`${s.url}/score`, { species: 'setosa' });
      assert.equal(missing.status, 400);
      assert.deepEqual(await missing.json(), { message: "A value is not provided for the 'sepal_length' parameter." });
      const swagger = (await (await fetch(`${s.url}/swagger.json?version=3`)).json()) as { components: { schemas: { ServiceInput: { properties: Record<string, unknown> } } } };
      assert.deepEqual(swagger.components.schemas.ServiceInput.properties.species, { type: 'string' });
    } finally {
      await s.stop();
    }
  });

  it('uploads a file as multipart/form-data and gets the binary answer; 422 without a file', async () => {
    const s = await serve(['--entry-script', join(FIXTURES, 'py-rawhttp/score.py')]);
    try {
      const image = Buffer.concat([Buffer.from('P6\n2 1\n255\n'), Buffer.from([0, 10, 13, 250, 128, 45])]);
      const form = new FormData();
      form.append('caption', 'hello');
      form.append('file', new Blob([image], { type: 'image/x-portable-pixmap' }), 'tiny.ppm');
      const r = await fetch(`${s.url}/score`, { method: 'POST', body: form });
      assert.equal(r.status, 200);
      assert.equal(r.headers.get('content-type'), 'image/x-portable-pixmap');
      assert.deepEqual(Buffer.from(await r.arrayBuffer()), Buffer.concat([Buffer.from('P6\n2 1\n255\n'), Buffer.from([255, 245, 242, 5, 127, 210])]));
      const none = new FormData();
      none.append('caption', 'nothing');
      const r422 = await fetch(`${s.url}/score`, { method: 'POST', body: none });
      assert.equal(r422.status, 422);
      assert.equal(await r422.text(), 'No file uploaded');
    } finally {
      await s.stop();
    }
  });

  it('runs a JavaScript rawHttp module the same way', async () => {
    const s = await serve(['--entry-script', join(FIXTURES, 'js-rawhttp/score.mjs')]);
    try {
      const form = new FormData();
      form.append('file', new Blob([Buffer.from([1, 2, 3, 4])]), 'four.bin');
      const r = await fetch(`${s.url}/score`, { method: 'POST', body: form });
      assert.equal(r.status, 200);
      assert.deepEqual(Buffer.from(await r.arrayBuffer()), Buffer.from([4, 3, 2, 1]));
      assert.equal(r.headers.get('x-filename'), 'four.bin');
      assert.match(r.headers.get('x-ms-server-version') ?? '', /^infergate\/\d+\.\d+\.\d+$/);
      const get = (await (await fetch(`${s.url}/score?q=1`, { headers: { 'x-custom': 'yes' } })).json()) as Record<string, unknown>;
      assert.deepEqual(get, { path: '/score', args: { q: '1' }, custom: 'yes' });
    } finally {
      await s.stop();
    }
  });
});

describe('infergate serve: reload and error locations', () => {
  it('reloads the script when it changes, keeping the port', async () => {
    const dir = join(tmp, 'reload');
    cpSync(join(FIXTURES, 'py-own-swagger'), dir, { recursive: true });
    writeFileSync(join(dir, 'score.py'), 'def init():\n    pass\n\n\ndef run(raw_data):\n    return "first"\n');
    const s = await serve(['--entry-script', join(dir, 'score.py')]);
    try {
      assert.equal(await (await postJson(`${s.url}/score`, {})).text(), '"first"');
      writeFileSync(join(dir, 'score.py'), 'def init():\n    pass\n\n\ndef run(raw_data):\n    return "second"\n');
      const text = await eventually(async () => (await postJson(`${s.url}/score`, {})).text(), (t) => t === '"second"');
      assert.equal(text, '"second"');
      assert.match(s.stderr(), /infergate\.serve - Detected a change in .*score\.py: reloading the scoring script\./);
      // A change to another file of the folder reloads too (the swagger document is read at start-up).
      writeFileSync(join(dir, 'swagger.json'), '{"swagger": "2.0", "info": {"title": "edited", "version": "8"}, "paths": {}}');
      const doc = await eventually(async () => (await (await fetch(`${s.url}/swagger.json`)).json()) as { info: { title: string } }, (d) => d.info.title === 'edited');
      assert.equal(doc.info.title, 'edited');
    } finally {
      await s.stop();
    }
  });

  it('prints where init() failed, answers 503 meanwhile, and recovers when the script is fixed', async () => {
    const dir = join(tmp, 'broken');
    cpSync(join(FIXTURES, 'broken-init'), dir, { recursive: true });
    const script = join(dir, 'score.py');
    const s = await serve(['--entry-script', script]);
    try {
      await s.waitFor(new RegExp(`✖ init\\(\\) failed at ${script.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:6 in init\\(\\)\\n\\s+RuntimeError: model file is corrupt: checksum mismatch`));
      assert.match(s.stderr(), /Fix the script and save it: infergate serve reloads it\./);
      const r = await postJson(`${s.url}/score`, {});
      assert.equal(r.status, 503);
      assert.match(((await r.json()) as { message: string }).message, /^The scoring script is not running: User's init function failed: RuntimeError: model file is corrupt/);
      writeFileSync(script, 'def init():\n    pass\n\n\ndef run(raw_data):\n    return raw_data\n');
      const ok = await eventually(() => postJson(`${s.url}/score`, { fixed: true }), (res) => res.status === 200);
      assert.equal(await ok.text(), '"{\\"fixed\\":true}"');
    } finally {
      await s.stop();
    }
  });

  it('prints where run() failed (Python traceback)', async () => {
    const s = await serve(['--entry-script', join(FIXTURES, 'py-behaviours/score.py')]);
    try {
      const r = await postJson(`${s.url}/score`, { op: 'raise', why: 'here' });
      assert.equal(r.status, 500);
      const line = readFileSync(join(FIXTURES, 'py-behaviours/score.py'), 'utf8').split('\n').findIndex((l) => l.includes('raise ValueError')) + 1;
      await s.waitFor(new RegExp(`✖ run\\(\\) failed at .*py-behaviours/score\\.py:${line} in run\\(\\)\\n\\s+ValueError: scoring exploded: here`));
    } finally {
      await s.stop();
    }
  });

  it('prints where run() failed (JavaScript stack) and where a syntax error is', async () => {
    const s = await serve(['--entry-script', join(FIXTURES, 'js-behaviours/score.mjs')]);
    try {
      assert.equal((await postJson(`${s.url}/score`, { op: 'raise', why: 'js' })).status, 500);
      const line = readFileSync(join(FIXTURES, 'js-behaviours/score.mjs'), 'utf8').split('\n').findIndex((l) => l.includes('throw new TypeError')) + 1;
      await s.waitFor(new RegExp(`✖ run\\(\\) failed at .*js-behaviours/score\\.mjs:${line} in run\\(\\)\\n\\s+TypeError: scoring exploded: js`));
    } finally {
      await s.stop();
    }
    const dir = join(tmp, 'syntax');
    cpSync(join(FIXTURES, 'broken-init'), dir, { recursive: true });
    writeFileSync(join(dir, 'score.py'), 'def init():\n    pass\n\n\ndef run(raw_data:\n    return raw_data\n');
    const bad = await serve(['--entry-script', join(dir, 'score.py')]);
    try {
      await bad.waitFor(/✖ init\(\) failed at .*syntax\/score\.py:5\n\s+SyntaxError: /);
    } finally {
      await bad.stop();
    }
  });

  it('stops the host and its Python workers on SIGTERM and Ctrl-C', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const s = await serve(['--entry-script', join(FIXTURES, 'py-behaviours/score.py'), '--worker-count', '2']);
      await s.waitFor(/The scoring script is ready/);
      const pids = [...s.stderr().matchAll(/Worker with pid (\d+) ready/g)].map((m) => Number(m[1]));
      assert.equal(pids.length, 2);
      assert.equal(await s.stop(signal), 0);
      for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/, `worker ${pid} still running after ${signal}`);
      await assert.rejects(fetch(`${s.url}/`));
    }
  });
});

describe('infergate serve: arguments', () => {
  const run = (args: string[]) => spawnSync(process.execPath, sourceCliArgs(['serve', ...args]), { cwd: ROOT, encoding: 'utf8' });

  it("refuses a bad port or worker count with azmlinfsrv's messages", () => {
    const script = join(FIXTURES, 'py-behaviours/score.py');
    const port = run(['--entry-script', script, '--port', '70000']);
    assert.equal(port.status, 1);
    assert.match(port.stderr, /Specified port '70000' is invalid\. Please specify a port within range the \[1, 65535\] range\./);
    const workers = run(['--entry_script', script, '--worker_count', '0']);
    assert.equal(workers.status, 1);
    assert.match(workers.stderr, /Specified worker count '0' is invalid\. Please specify a worker count greater than zero\./);
    const none = run([]);
    assert.equal(none.status, 1);
    assert.match(none.stderr, /Provide the scoring script with --entry-script/);
    const missing = run(['--entry-script', join(tmp, 'nope.py')]);
    assert.match(missing.stderr, /The entry script .*nope\.py does not exist\./);
  });
});

describe('findErrorLocation / errorSummary', () => {
  it('picks the innermost frame in user code of a Python traceback', () => {
    const tb = [
      'Traceback (most recent call last):',
      '  File "/app/score.py", line 20, in run',
      '    return helper.go(x)',
      '  File "/app/helper.py", line 3, in go',
      '    return np.array(x).reshape(3)',
      '  File "/usr/lib/python3/dist-packages/numpy/core/fromnumeric.py", line 285, in reshape',
      '    return _wrapfunc(a, "reshape", newshape, order=order)',
      'ValueError: cannot reshape array of size 2 into shape (3,)',
    ].join('\n');
    assert.deepEqual(findErrorLocation(tb, ['/app']), { file: '/app/helper.py', line: 3, func: 'go' });
    assert.equal(errorSummary(tb), 'ValueError: cannot reshape array of size 2 into shape (3,)');
  });

  it('picks the first frame in user code of a JavaScript stack', () => {
    const stack = [
      'TypeError: Cannot read properties of undefined (reading \'map\')',
      '    at predict (file:///app/lib/model.mjs:12:20)',
      '    at async run (/app/score.mjs:5:10)',
      '    at process.processTicksAndRejections (node:internal/process/task_queues:95:5)',
    ].join('\n');
    assert.deepEqual(findErrorLocation(stack, ['/app']), { file: '/app/lib/model.mjs', line: 12, func: 'predict' });
    assert.equal(errorSummary(stack), "TypeError: Cannot read properties of undefined (reading 'map')");
    assert.equal(findErrorLocation('no trace here', ['/app']), undefined);
  });
});
