// The instance host as the process backend runs it: a forked child process with an IPC channel, a
// Unix socket, real frames, the real model pickle copied by the storage initializer, and Debian's
// /usr/bin/python3 (the only interpreter here with sklearn and joblib: reference/dependencies.md).

import assert from 'node:assert/strict';
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeResponse, encodeCancel, encodeRequestHead, FrameReader, type HeaderList, type ResponseFrame } from '../protocol/frame.js';
import { STORAGE_RESULT_PREFIX, type HostMessage, type StorageResult } from '../protocol/messages.js';
import { waitFor } from '../util/wait-testing.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOST = join(ROOT, 'src/runtime/host.ts');
const FIXTURES = join(ROOT, 'test/fixtures');
const EXAMPLES = join(ROOT, 'examples/azureml');
const PYTHON = '/usr/bin/python3';
const SAMPLE_REQUEST = readFileSync(join(EXAMPLES, 'model-1/sample-request.json'));
const CANONICAL = '[11055.977245525679, 4503.079536107787]';
const RUN_FAILED = '{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}';

let tmp: string;
let socketCounter = 0;

// ---- helpers -------------------------------------------------------------------------------------------

interface RunningHost {
  child: ChildProcess;
  socket: string;
  /** The first IPC message (ready or init-failed). */
  first: HostMessage;
  output(): { stdout: string; stderr: string };
  /**
   * Waits until the console log matches: log lines travel on their own pipe (workers write to it
   * directly), so they may arrive after the response that followed them.
   */
  waitForLog(re: RegExp, stream?: 'stdout' | 'stderr'): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

interface HostOptions {
  script: string;
  appRoot: string;
  modelDir?: string;
  env?: Record<string, string>;
}

function startHost(o: HostOptions): Promise<RunningHost> {
  const socket = join(tmp, `h${++socketCounter}.sock`);
  const child = fork(HOST, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      INFERGATE_SOCKET: socket,
      INFERGATE_INSTANCE_ID: 'test-0',
      AZUREML_ENTRY_SCRIPT: o.script,
      AML_APP_ROOT: o.appRoot,
      ...(o.modelDir !== undefined ? { AZUREML_MODEL_DIR: o.modelDir } : {}),
      INFERGATE_PYTHON: PYTHON,
      ...o.env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.on('exit', (code, signal) => res({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`host did not report within 30 s\n${stderr}`)), 30_000);
    child.once('message', (msg: HostMessage) => {
      clearTimeout(timer);
      resolve({
        child,
        socket,
        first: msg,
        output: () => ({ stdout, stderr }),
        async waitForLog(re, stream = 'stderr') {
          for (let waited = 0; !re.test(stream === 'stderr' ? stderr : stdout); waited += 20) {
            if (waited > 5000) assert.match(stream === 'stderr' ? stderr : stdout, re);
            await new Promise((r) => setTimeout(r, 20));
          }
        },
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
        },
      });
    });
    void exited.then(({ code }) => {
      clearTimeout(timer);
      reject(new Error(`host exited (${code}) before any IPC message\n${stderr}`));
    });
  });
}

/** A framed connection, as the router keeps one. */
class Client {
  private readonly waiting = new Map<number, { resolve: (r: ResponseFrame) => void; reject: (e: Error) => void }>();
  private nextId = 1;

  private constructor(readonly sock: net.Socket) {
    const reader = new FrameReader((frame) => {
      const r = decodeResponse(Buffer.from(frame));
      const w = this.waiting.get(r.id);
      if (w === undefined) throw new Error(`unexpected response id ${r.id}`);
      this.waiting.delete(r.id);
      w.resolve(r);
    });
    sock.on('data', (c: Buffer) => reader.push(c));
    sock.on('close', () => {
      for (const w of this.waiting.values()) w.reject(new Error('connection closed'));
      this.waiting.clear();
    });
  }

  static connect(path: string): Promise<Client> {
    return new Promise((res, rej) => {
      const sock = net.connect(path, () => res(new Client(sock)));
      sock.once('error', rej);
    });
  }

  send(body: Buffer | string, o: { method?: string; url?: string; headers?: HeaderList; id?: number } = {}): Promise<ResponseFrame> {
    const id = o.id ?? this.nextId++;
    const b = typeof body === 'string' ? Buffer.from(body) : body;
    const p = new Promise<ResponseFrame>((resolve, reject) => this.waiting.set(id, { resolve, reject }));
    this.sock.write(encodeRequestHead(id, o.method ?? 'POST', o.url ?? '/score', o.headers ?? [], b.length));
    if (b.length > 0) this.sock.write(b);
    return p;
  }

  close(): void {
    this.sock.end();
  }
}

function header(r: ResponseFrame, name: string): string | undefined {
  return r.headers.find(([k]) => k === name)?.[1];
}

function op(o: Record<string, unknown>): string {
  return JSON.stringify(o);
}

/** Copies a model and code folder into a fresh instance directory with the storage initializer program. */
function provision(name: string, model: { name: string; path: string } | null, codePath: string): StorageResult {
  const request = {
    instanceDir: join(tmp, `instance-${name}`),
    ...(model ? { model: { name: model.name, version: '1', path: model.path } } : {}),
    code: { path: codePath },
  };
  const file = join(tmp, `storage-${name}.json`);
  writeFileSync(file, JSON.stringify(request));
  const r = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'src/runtime/storage-initializer.ts'), file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const last = r.stdout.trimEnd().split('\n').pop()!;
  return JSON.parse(last.slice(STORAGE_RESULT_PREFIX.length)) as StorageResult;
}

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'infergate-host-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---- Python -----------------------------------------------------------------------------------------------

describe('host: Azure model-1 score.py (Python, real sklearn pickle)', () => {
  let host: RunningHost;
  before(async () => {
    const storage = provision('model-1', { name: 'sklearn-model', path: join(EXAMPLES, 'model-1/model') }, join(EXAMPLES, 'model-1/onlinescoring'));
    // A stale socket file from a crashed predecessor must not stop the new instance.
    writeFileSync(join(tmp, `h${socketCounter + 1}.sock`), 'stale');
    host = await startHost({ script: 'score.py', appRoot: storage.appRoot, modelDir: storage.modelDir });
  });
  after(() => host.stop());

  it('reports ready over IPC with its pid', () => {
    assert.deepEqual(host.first, { type: 'ready', pid: host.child.pid });
  });

  it('answers the sample request with the exact canonical bytes and azmlinfsrv headers', async () => {
    const c = await Client.connect(host.socket);
    const r = await c.send(SAMPLE_REQUEST, { headers: [['content-type', 'application/json'], ['x-request-id', 'abc-123']] });
    c.close();
    assert.equal(r.status, 200);
    assert.equal(r.body.toString('latin1'), CANONICAL);
    assert.equal(r.body.length, 39);
    assert.equal(header(r, 'content-type'), 'application/json');
    assert.equal(header(r, 'x-ms-run-function-failed'), 'False');
    assert.match(header(r, 'x-ms-run-fn-exec-ms') ?? '', /^\d+\.\d{3}$/);
    assert.equal(header(r, 'x-request-id'), 'abc-123');
    assert.equal(header(r, 'x-ms-request-id'), 'abc-123');
  });

  it('serves several connections that reuse the same ids', async () => {
    const clients = await Promise.all([1, 2, 3].map(() => Client.connect(host.socket)));
    const answers = await Promise.all(clients.flatMap((c) => Array.from({ length: 20 }, (_, i) => c.send(SAMPLE_REQUEST, { id: i + 1 }))));
    for (const c of clients) c.close();
    assert.equal(answers.length, 60);
    for (const a of answers) assert.equal(a.body.toString(), CANONICAL);
  });

  it('logs in azmlinfsrv format: the script, init, the interpreter, user logging', async () => {
    await host.waitForLog(/I \[\d+\] root - model 1: request received$/m);
    const { stderr } = host.output();
    const line = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEC] \[\d+\] [\w.]+ - /;
    assert.match(stderr, new RegExp(line.source + 'Found user script at .*score\\.py$', 'm'));
    assert.match(stderr, /I \[\d+\] azmlinfsrv\.user_script - Invoking user's init function$/m);
    assert.match(stderr, /I \[\d+\] azmlinfsrv\.user_script - Users's init has completed successfully$/m);
    assert.match(stderr, /I \[\d+\] root - Init complete$/m);
    assert.match(stderr, /Python interpreter: \/usr\/bin\/python3/);
    assert.match(stderr, /Python worker pid \d+: \/usr\/bin\/python3 \(Python 3\.\d+/);
    assert.match(stderr, /I \[\d+\] root - model 1: request received$/m);
  });
});

describe('host: Azure model-2 score.py (Python)', () => {
  it('answers [0.5, 0.5]', async () => {
    const storage = provision('model-2', { name: 'sklearn-model', path: join(EXAMPLES, 'model-2/model') }, join(EXAMPLES, 'model-2/onlinescoring'));
    const host = await startHost({ script: 'score.py', appRoot: storage.appRoot, modelDir: storage.modelDir });
    try {
      const c = await Client.connect(host.socket);
      const r = await c.send(SAMPLE_REQUEST);
      c.close();
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), '[0.5, 0.5]');
      await host.waitForLog(/model 2: request received/);
    } finally {
      await host.stop();
    }
  });
});

describe('host: Python behaviours with WORKER_COUNT=2', () => {
  let host: RunningHost;
  let c: Client;
  before(async () => {
    host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-behaviours'), modelDir: tmp, env: { WORKER_COUNT: '2' } });
    c = await Client.connect(host.socket);
  });
  after(async () => {
    c.close();
    await host.stop();
  });

  it('is ready only after both workers ran init()', () => {
    assert.equal(host.first.type, 'ready');
    const readyLines = host.output().stderr.match(/Worker with pid \d+ ready for serving traffic/g) ?? [];
    assert.equal(readyLines.length, 2);
    assert.equal((host.output().stderr.match(/Users's init has completed successfully/g) ?? []).length, 2);
  });

  it('spreads concurrent requests over both workers', async () => {
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 4 }, () => c.send(op({ op: 'sleep', seconds: 0.4 }))));
    const elapsed = Date.now() - t0;
    const pids = new Set(answers.map((a) => (JSON.parse(a.body.toString()) as { pid: number }).pid));
    assert.equal(pids.size, 2);
    assert.ok(elapsed < 1400, `4 x 0.4 s on 2 workers took ${elapsed} ms`); // one worker: >= 1600 ms
  });

  it('answers 500 with the failed header when run() raises, traceback in the console log', async () => {
    const r = await c.send(op({ op: 'raise', why: 'bad input' }), { headers: [['x-request-id', 'r-500']] });
    assert.equal(r.status, 500);
    assert.equal(r.body.toString(), RUN_FAILED);
    assert.equal(header(r, 'x-ms-run-function-failed'), 'True');
    assert.equal(header(r, 'x-request-id'), 'r-500');
    await host.waitForLog(/ValueError: scoring exploded: bad input/);
    const { stderr } = host.output();
    assert.match(stderr, /E \[\d+\] azmlinfsrv - Encountered Exception: Traceback \(most recent call last\):/);
    assert.match(stderr, /File ".*py-behaviours\/score\.py", line \d+, in run/);
    assert.match(stderr, /ValueError: scoring exploded: bad input/);
  });

  it('keeps print() and writes to fd 1 out of the frame channel', async () => {
    const r = await c.send(op({ op: 'print' }));
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), '{"printed": true}');
    // The channel is still in step afterwards.
    const echo = await c.send(op({ op: 'echo', n: 1 }));
    assert.equal(echo.body.toString(), '{"op": "echo", "n": 1}');
    await host.waitForLog(/raw fd 1 write from run\(\)/);
    const { stderr, stdout } = host.output();
    assert.match(stderr, /print\(\) from run\(\)/);
    assert.match(stderr, /raw fd 1 write from run\(\)/);
    assert.match(stderr, /py-behaviours: init says hello on stdout/);
    assert.match(stderr, /py-behaviours: raw write to fd 1 during init/);
    assert.doesNotMatch(stdout, /print\(\) from run/);
  });

  it('passes request_headers with Flask-style names', async () => {
    const r = await c.send(op({ op: 'headers' }), { headers: [['content-type', 'application/json'], ['x-ms-client-request-id', 'cli-1']] });
    assert.equal(r.body.toString(), '{"Content-Type": "application/json", "X-Ms-Client-Request-Id": "cli-1"}');
    assert.equal(header(r, 'x-ms-client-request-id'), 'cli-1');
    assert.equal(header(r, 'x-ms-request-id'), 'cli-1');
  });

  it('imports modules next to score.py', async () => {
    assert.equal((await c.send(op({ op: 'helper' }))).body.toString(), '42');
  });

  it('answers 400 for a body that is not UTF-8, with Python\'s reason', async () => {
    const r = await c.send(Buffer.from([0xff, 0x7b, 0x7d]));
    assert.equal(r.status, 400);
    assert.equal(r.body.toString(), `{"message": "Input cannot be decoded as UTF-8: 'utf-8' codec can't decode byte 0xff in position 0: invalid start byte"}`);
  });

  it('answers GET / (liveness), GET with query parameters, OPTIONS and 405', async () => {
    const health = await c.send('', { method: 'GET', url: '/' });
    assert.equal(health.status, 200);
    assert.equal(health.body.toString(), 'Healthy');
    const get = await c.send('', { method: 'GET', url: '/score?op=echo&a=1&b=x&b=y' });
    assert.equal(get.body.toString(), '{"op": "echo", "a": 1, "b": ["x", "y"]}');
    const options = await c.send('', { method: 'OPTIONS' });
    assert.equal(options.status, 200);
    assert.equal(options.body.length, 0);
    const put = await c.send('{}', { method: 'PUT' });
    assert.equal(put.status, 405);
    assert.equal(put.body.toString(), '{"message": "The method is not allowed for the requested URL."}');
  });

  it('refuses request ids longer than 100 characters with 431', async () => {
    const r = await c.send('{}', { headers: [['x-request-id', 'x'.repeat(101)]] });
    assert.equal(r.status, 431);
    assert.equal(r.body.toString(), '{"message": "x-request-id must not exceed 100 characters"}');
  });

  it('carries big bodies, many at once, through full pipes (backpressure)', async () => {
    const big = op({ op: 'size', pad: 'p'.repeat(3_000_000) });
    const one = await c.send(big);
    assert.equal(one.body.toString(), `{"length": ${big.length}}`);
    const mid = op({ op: 'size', pad: 'q'.repeat(200_000) });
    const many = await Promise.all(Array.from({ length: 60 }, () => c.send(mid)));
    for (const r of many) assert.equal(r.body.toString(), `{"length": ${mid.length}}`);
  });
});

describe('host: Python failures', () => {
  it('reports init-failed with the script\'s error and traceback, and exits 3', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'broken-init'), modelDir: tmp });
    assert.equal(host.first.type, 'init-failed');
    const msg = host.first as Extract<HostMessage, { type: 'init-failed' }>;
    assert.equal(msg.code, 'UserScriptInitFailed');
    assert.match(msg.message, /RuntimeError: model file is corrupt: checksum mismatch/);
    assert.match(msg.message, /Traceback \(most recent call last\):\n {2}File ".*broken-init\/score\.py", line 6, in init/);
    assert.equal((await host.exited).code, 3);
    const { stderr } = host.output();
    assert.match(stderr, /E \[\d+\] azmlinfsrv\.user_script - User's init function failed$/m);
    assert.match(stderr, /init-failed UserScriptInitFailed: User's init function failed: RuntimeError: model file is corrupt/);
  });

  it('reports UserScriptFunctionNotFound when run() is missing', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-no-run') });
    assert.deepEqual(host.first, {
      type: 'init-failed',
      code: 'UserScriptFunctionNotFound',
      message: `User script at ${join(FIXTURES, 'py-no-run/score.py')} does not have a run() function defined.`,
    });
    assert.equal((await host.exited).code, 3);
  });

  it('reports UserScriptImportError with the import traceback', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-import-error') });
    const msg = host.first as Extract<HostMessage, { type: 'init-failed' }>;
    assert.equal(msg.code, 'UserScriptImportError');
    assert.match(msg.message, /ModuleNotFoundError: No module named 'a_module_that_is_not_installed'/);
    assert.match(msg.message, /py-import-error\/score\.py", line 2/);
    assert.equal((await host.exited).code, 3);
  });

  it('reports an interpreter that cannot be started', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-behaviours'), env: { INFERGATE_PYTHON: join(tmp, 'no-such-python') } });
    const msg = host.first as Extract<HostMessage, { type: 'init-failed' }>;
    assert.equal(msg.code, 'UserScriptImportError');
    assert.match(msg.message, /Could not start the Python interpreter '.*no-such-python': spawn .* ENOENT/);
    assert.equal((await host.exited).code, 3);
  });

  it('prints init-failed as a log line when started without IPC', async () => {
    const socket = join(tmp, 'no-ipc.sock');
    const child = spawn(process.execPath, ['--import', 'tsx', HOST], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { PATH: process.env.PATH, INFERGATE_SOCKET: socket, AZUREML_ENTRY_SCRIPT: 'score.py', AML_APP_ROOT: join(FIXTURES, 'broken-init'), INFERGATE_PYTHON: PYTHON },
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    assert.equal(code, 3);
    assert.match(stderr, /E \[\d+\] azmlinfsrv - init-failed UserScriptInitFailed: User's init function failed: RuntimeError: model file is corrupt: checksum mismatch/);
  });

  it('answers 502 for the requests of a worker that dies, then exits non-zero', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-behaviours') });
    const c = await Client.connect(host.socket);
    const r = await c.send(op({ op: 'die' }));
    assert.equal(r.status, 502);
    assert.match(r.body.toString(), /^\{"message": "The scoring worker \(pid \d+\) exited unexpectedly \(exit code 7\) while handling the request\. Check the logs for more info\."\}$/);
    const exit = await host.exited;
    assert.equal(exit.code, 1);
  });

  it('enforces SCORING_TIMEOUT_MS as azmlinfsrv does', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-behaviours'), env: { SCORING_TIMEOUT_MS: '300' } });
    try {
      const c = await Client.connect(host.socket);
      const r = await c.send(op({ op: 'sleep', seconds: 3 }));
      assert.equal(r.status, 500);
      assert.equal(r.body.toString(), '{"message": "Scoring timeout after 300 ms"}');
      assert.equal(header(r, 'x-ms-run-function-failed'), 'True');
      // The worker survives and keeps serving.
      assert.equal((await c.send(op({ op: 'echo' }))).body.toString(), '{"op": "echo"}');
      c.close();
    } finally {
      await host.stop();
    }
  });

  it('finishes in-flight requests on SIGTERM, then exits 0', async () => {
    const host = await startHost({ script: 'score.py', appRoot: join(FIXTURES, 'py-behaviours') });
    const c = await Client.connect(host.socket);
    const slow = c.send(op({ op: 'sleep', seconds: 0.6, announce: 'sigterm-test sleeping' }));
    await host.waitForLog(/sigterm-test sleeping/); // printed from inside run(): the request is in flight
    host.child.kill('SIGTERM');
    const r = await slow;
    assert.equal(r.status, 200);
    const exit = await host.exited;
    assert.equal(exit.code, 0);
    await assert.rejects(Client.connect(host.socket)); // no longer listening, socket file removed
    assert.match(host.output().stderr, /Shutting down \(SIGTERM\); 1 request\(s\) in flight\./);
  });
});

// ---- JavaScript / TypeScript ------------------------------------------------------------------------------

describe('host: JavaScript model (score.mjs)', () => {
  it('answers the sample request with the same bytes as sklearn', async () => {
    const storage = provision('js-model', { name: 'js-linear', path: join(FIXTURES, 'js-model/model') }, join(FIXTURES, 'js-model'));
    const host = await startHost({ script: 'score.mjs', appRoot: storage.appRoot, modelDir: storage.modelDir });
    try {
      assert.deepEqual(host.first, { type: 'ready', pid: host.child.pid });
      const c = await Client.connect(host.socket);
      const r = await c.send(SAMPLE_REQUEST, { headers: [['x-request-id', 'js-1']] });
      c.close();
      assert.equal(r.status, 200);
      assert.equal(r.body.toString('latin1'), CANONICAL);
      assert.equal(header(r, 'content-type'), 'application/json');
      assert.equal(header(r, 'x-ms-run-function-failed'), 'False');
      assert.match(header(r, 'x-ms-run-fn-exec-ms') ?? '', /^\d+\.\d{3}$/);
      assert.equal(header(r, 'x-request-id'), 'js-1');
      await host.waitForLog(/js-model: loaded 10 coefficients/, 'stdout'); // the module's own console output
      const { stderr } = host.output();
      assert.match(stderr, /azmlinfsrv\.user_script - Found user script at .*score\.mjs$/m);
      assert.match(stderr, /Users's init has completed successfully/);
    } finally {
      await host.stop();
    }
  });
});

describe('host: TypeScript module (score.ts through tsx)', () => {
  it('loads and runs', async () => {
    const host = await startHost({ script: 'score.ts', appRoot: join(FIXTURES, 'ts-model') });
    try {
      const c = await Client.connect(host.socket);
      const r = await c.send('{"data": [[1, 2, 3], [0.25, 0.5]]}');
      c.close();
      assert.equal(r.body.toString(), '[12, 1.5]');
    } finally {
      await host.stop();
    }
  });
});

describe('host: JavaScript behaviours', () => {
  let host: RunningHost;
  let c: Client;
  before(async () => {
    host = await startHost({ script: 'score.mjs', appRoot: join(FIXTURES, 'js-behaviours') });
    c = await Client.connect(host.socket);
  });
  after(async () => {
    c.close();
    await host.stop();
  });

  it('answers 500 with the failed header when run() throws, stack in the console log', async () => {
    const r = await c.send(op({ op: 'raise', why: 'js input' }));
    assert.equal(r.status, 500);
    assert.equal(r.body.toString(), RUN_FAILED);
    assert.equal(header(r, 'x-ms-run-function-failed'), 'True');
    await host.waitForLog(/E \[\d+\] azmlinfsrv - Encountered Exception: TypeError: scoring exploded: js input\n\s+at run \(.*js-behaviours\/score\.mjs:\d+:\d+\)$/m);
    // The stack stops where the user's code was called from: no host plumbing.
    assert.doesNotMatch(host.output().stderr, /at JsScorer|host\.ts|frame\.ts/);
  });

  it('runs async run() calls concurrently', async () => {
    const t0 = Date.now();
    const answers = await Promise.all(Array.from({ length: 5 }, () => c.send(op({ op: 'sleep', seconds: 0.3 }))));
    assert.ok(Date.now() - t0 < 1000);
    for (const a of answers) assert.equal(a.body.toString(), '{"slept": 0.3, "initialised": true}');
  });

  it('writes the same bytes as Python for the same values', async () => {
    const r = await c.send(op({ op: 'floats' }));
    assert.equal(r.body.toString(), '[NaN, Infinity, -Infinity, 1e+16, 1e-05, 1, 0.1, "\\u00e9\\u20ac\\ud83d\\ude00"]');
    // Python's answer differs only where JavaScript cannot know a float was meant (1.0).
    const py = spawnSync(PYTHON, ['-c', 'import json; print(json.dumps([float("nan"), float("inf"), -float("inf"), 1e16, 1e-05, 1, 0.1, "\\u00e9\\u20ac\\U0001F600"]))'], { encoding: 'utf8' });
    assert.equal(r.body.toString(), py.stdout.trimEnd());
  });

  it('passes lower-case request headers to a run() that declares them', async () => {
    const r = await c.send(op({ op: 'headers' }), { headers: [['content-type', 'application/json'], ['x-custom', 'v']] });
    assert.equal(r.body.toString(), '{"content-type": "application/json", "x-custom": "v"}');
  });

  it('sends a { status, headers, body } result as-is', async () => {
    const r = await c.send(op({ op: 'response' }));
    assert.equal(r.status, 201);
    assert.equal(r.body.toString(), 'created');
    assert.equal(header(r, 'x-custom'), 'yes');
    assert.equal(header(r, 'content-type'), 'text/plain; charset=utf-8');
  });

  it('answers 400 for a body that is not UTF-8, with the same text as Python', async () => {
    const r = await c.send(Buffer.from([0x7b, 0xe2, 0x28, 0xa1]));
    assert.equal(r.status, 400);
    const py = spawnSync(PYTHON, ['-c', 'import sys\ntry:\n  bytes([0x7b, 0xe2, 0x28, 0xa1]).decode("utf-8")\nexcept UnicodeDecodeError as e: print(e)'], { encoding: 'utf8' });
    assert.equal(r.body.toString(), `{"message": "Input cannot be decoded as UTF-8: ${py.stdout.trimEnd()}"}`);
  });

  it('carries a large body', async () => {
    const big = op({ op: 'size', pad: 'z'.repeat(2_000_000) });
    assert.equal((await c.send(big)).body.toString(), `{"length": ${big.length}}`);
  });

  it('ignores CANCEL frames', async () => {
    c.sock.write(encodeCancel(12345));
    assert.equal((await c.send(op({ op: 'echo' }))).body.toString(), '{"op": "echo"}');
  });

  it('stops reading a connection that does not read its responses, and catches up when it does', async () => {
    const slow = await Client.connect(host.socket);
    slow.sock.pause(); // a router that stopped reading
    const req = op({ op: 'echo', pad: 'e'.repeat(500_000) }); // each answer is as big as its request
    const answers = Array.from({ length: 80 }, () => slow.send(req)); // 40 MB each way
    // Wait for the flow to stop: our queue no longer shrinking over 100 ms (the host stopped reading).
    // Not a fixed sleep: a loaded machine takes longer to get there, a fast one is done in ~100 ms.
    let last = -1;
    await waitFor('the host to stop reading', () => {
      const now = slow.sock.writableLength;
      const stalled = now === last;
      last = now;
      return stalled;
    }, 10_000, 100);
    // Backpressure: the host stopped reading, so most of our 40 MB is still queued on our side instead of
    // being answered into an ever-growing buffer in the host.
    assert.ok(slow.sock.writableLength > 20_000_000, `client still holds ${slow.sock.writableLength} bytes`);
    slow.sock.resume();
    const expected = `{"op": "echo", "pad": "${'e'.repeat(500_000)}"}`;
    for (const a of await Promise.all(answers)) assert.equal(a.body.toString(), expected);
    slow.close();
  });
});

describe('host: JavaScript failures', () => {
  it('reports init-failed with the error and its stack, and exits 3', async () => {
    const host = await startHost({ script: 'score.mjs', appRoot: join(FIXTURES, 'js-broken-init') });
    const msg = host.first as Extract<HostMessage, { type: 'init-failed' }>;
    assert.equal(msg.type, 'init-failed');
    assert.equal(msg.code, 'UserScriptInitFailed');
    assert.match(msg.message, /^User's init function failed: Error: model file is corrupt: checksum mismatch\n\s+at init \(.*js-broken-init\/score\.mjs:2/);
    assert.equal((await host.exited).code, 3);
    assert.match(host.output().stderr, /init-failed UserScriptInitFailed/);
  });

  it('reports UserScriptFunctionNotFound when init() is missing', async () => {
    const host = await startHost({ script: 'score.mjs', appRoot: join(FIXTURES, 'js-no-init') });
    assert.deepEqual(host.first, {
      type: 'init-failed',
      code: 'UserScriptFunctionNotFound',
      message: `User script at ${join(FIXTURES, 'js-no-init/score.mjs')} does not have a init() function defined.`,
    });
    assert.equal((await host.exited).code, 3);
  });

  it('reports UserScriptImportError for a script that does not exist', async () => {
    const host = await startHost({ script: 'missing.mjs', appRoot: join(FIXTURES, 'js-no-init') });
    assert.equal(host.first.type, 'init-failed');
    assert.equal((host.first as Extract<HostMessage, { type: 'init-failed' }>).code, 'UserScriptImportError');
    assert.equal((await host.exited).code, 3);
  });
});
