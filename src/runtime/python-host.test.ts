// The Python instance host (python/infergate_host.py, the host inside containers) driven the way the router
// drives an instance: InstanceConnection over a Unix socket. The behaviour tests run against both hosts —
// the Python one, started without a parent as in a container (its HostMessage on stdout), and host.ts,
// forked with IPC as the process backend runs it — so "the router cannot tell them apart" is checked, not
// assumed. The Python host runs twice: as deployed (WORKER_COUNT=1 scores in its own process, "direct")
// and with INFERGATE_PYTHON_HOST_RELAY=1 (the relay to worker processes that WORKER_COUNT > 1 uses, here
// with one worker so every behaviour test applies). Debian's /usr/bin/python3 runs all of them.

import assert from 'node:assert/strict';
import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InstanceConnection } from '../protocol/client.js';
import { decodeResponse, encodeRequestHead, FRAME_INSTANCE_ERROR, FRAME_RESPONSE, FrameReader, type ResponseFrame } from '../protocol/frame.js';
import { HOST_MESSAGE_PREFIX, type HostMessage } from '../protocol/messages.js';
import { waitFor } from '../util/wait-testing.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const PY_HOST = join(ROOT, 'src/runtime/python/infergate_host.py');
const NODE_HOST = join(ROOT, 'src/runtime/host.ts');
const FIXTURE = join(ROOT, 'src/runtime/testdata/python-host');
const FIXTURES = join(ROOT, 'test/fixtures');
const PYTHON = '/usr/bin/python3';
const SHUTTING_DOWN = '{"message": "The instance is shutting down."}';

type Kind = 'python' | 'python-relay' | 'node';

let tmp: string;
let counter = 0;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ig-pyhost-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

interface RunningHost {
  child: ChildProcess;
  socket: string;
  first: HostMessage;
  output(): { stdout: string; stderr: string };
  waitForLog(re: RegExp): Promise<void>;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<void>;
}

interface HostOptions {
  /** Python host only: a command to run it under (e.g. unshare, to make it PID 1). */
  wrap?: string[];
  appRoot?: string;
  script?: string;
  env?: Record<string, string | undefined>;
}

function hostEnv(o: HostOptions, socket: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    INFERGATE_SOCKET: socket,
    INFERGATE_INSTANCE_ID: 'test-0',
    AZUREML_ENTRY_SCRIPT: o.script ?? 'score.py',
    AML_APP_ROOT: o.appRoot ?? FIXTURE,
    AZUREML_MODEL_DIR: tmp,
    INFERGATE_PYTHON: PYTHON,
  };
  for (const [k, v] of Object.entries(o.env ?? {})) {
    if (v === undefined) delete env[k];
    else env[k] = v;
  }
  return env;
}

/** Starts a host; resolves with its first HostMessage (IPC for host.ts, the stdout line for the Python host). */
function startHost(kind: Kind, o: HostOptions = {}): Promise<RunningHost> {
  const socket = join(tmp, `h${++counter}.sock`);
  const env = hostEnv(kind === 'python-relay' ? { ...o, env: { INFERGATE_PYTHON_HOST_RELAY: '1', ...o.env } } : o, socket);
  const child =
    kind !== 'node'
      ? spawn((o.wrap ?? [PYTHON])[0], [...(o.wrap ?? [PYTHON]).slice(1), ...(o.wrap ? [PYTHON] : []), '-u', PY_HOST], { cwd: o.appRoot ?? FIXTURE, env, stdio: ['ignore', 'pipe', 'pipe'] })
      : fork(NODE_HOST, [], { execArgv: ['--import', 'tsx'], env, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
  let stdout = '';
  let stderr = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on('exit', (code, signal) => res({ code, signal })));
  return new Promise((resolve, reject) => {
    let settled = false;
    const timer = setTimeout(() => {
      child.kill('SIGKILL'); // a host stuck in init() must not outlive the test
      reject(new Error(`host did not report within 30 s\n${stderr.slice(-2000)}`));
    }, 30_000);
    const settle = (msg: HostMessage) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        child,
        socket,
        first: msg,
        output: () => ({ stdout, stderr }),
        waitForLog: (re) => waitFor(`${re} in the console log`, () => re.test(stderr), 10_000, 10, () => stderr),
        exited,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
        },
      });
    };
    child.stdout!.on('data', (c: Buffer) => {
      stdout += c.toString();
      const line = stdout.split('\n').find((l) => l.startsWith(HOST_MESSAGE_PREFIX));
      if (kind !== 'node' && line !== undefined && stdout.includes(line + '\n')) settle(JSON.parse(line.slice(HOST_MESSAGE_PREFIX.length)) as HostMessage);
    });
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    if (kind === 'node') child.once('message', (msg: HostMessage) => settle(msg));
    void exited.then(({ code }) => {
      clearTimeout(timer);
      if (!settled) reject(new Error(`host exited (${code}) before reporting\n${stdout}\n${stderr}`));
    });
  });
}

interface Answer extends ResponseFrame {
  type: number;
}

interface Sent {
  id: number;
  done: Promise<Answer>;
}

/** One request through the router's client. */
function send(conn: InstanceConnection, body: string | Buffer, o: { method?: string; url?: string; headers?: string[]; requestId?: string } = {}): Sent {
  const b = typeof body === 'string' ? Buffer.from(body) : body;
  let id = 0;
  const done = new Promise<Answer>((resolve, reject) => {
    id = conn.send(o.method ?? 'POST', o.url ?? '/score', o.headers ?? ['content-type', 'application/json'], o.requestId ?? 'rid', b, {
      deadline: performance.now() + 30_000,
      onResponse: (frame) => resolve({ type: frame[8], ...decodeResponse(Buffer.from(frame)) }),
      onFailure: (reason) => reject(new Error(`request failed: ${reason}`)),
    });
  });
  return { id, done };
}

const ask = (conn: InstanceConnection, body: string | Buffer, o?: Parameters<typeof send>[2]): Promise<Answer> => send(conn, body, o).done;
const op = (o: Record<string, unknown>): string => JSON.stringify(o);
const header = (r: ResponseFrame, name: string): string | undefined => r.headers.find(([k]) => k === name)?.[1];
/** Headers that differ between two runs of the same request. */
const stable = (r: ResponseFrame): [string, string][] => r.headers.filter(([k]) => k !== 'x-ms-run-fn-exec-ms');

for (const kind of ['python', 'python-relay', 'node'] as const) {
  describe(`instance host (${kind}): what the router sees`, () => {
    let host: RunningHost;
    let conn: InstanceConnection;
    before(async () => {
      host = await startHost(kind);
      conn = new InstanceConnection({ socketPath: host.socket });
    });
    after(async () => {
      conn.close();
      await host.stop();
    });

    it('reports ready with its pid once listening', () => {
      assert.deepEqual(host.first, { type: 'ready', pid: host.child.pid });
      assert.match(host.output().stderr, /I \[\d+\] azmlinfsrv - Worker with pid \d+ ready for serving traffic$/m);
      assert.match(host.output().stderr, new RegExp(`I \\[${host.child.pid}\\] azmlinfsrv - Listening on ${host.socket}$`, 'm'));
    });

    it('scores, answers GET / and serves the swagger document', async () => {
      const r = await ask(conn, op({ op: 'echo', n: 1 }), { requestId: 'abc-1' });
      assert.equal(r.type, FRAME_RESPONSE);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), '{"op": "echo", "n": 1}');
      assert.equal(header(r, 'content-type'), 'application/json');
      assert.equal(header(r, 'x-ms-run-function-failed'), 'False');
      assert.equal(header(r, 'x-request-id'), 'abc-1');
      const health = await ask(conn, '', { method: 'GET', url: '/' });
      assert.equal(health.status, 200);
      assert.equal(health.body.toString(), 'Healthy');
      const swagger = await ask(conn, '', { method: 'GET', url: '/swagger.json?version=3' });
      assert.equal(swagger.status, 200);
      assert.equal((JSON.parse(swagger.body.toString()) as { openapi: string }).openapi.slice(0, 2), '3.');
      const missing = await ask(conn, '', { method: 'GET', url: '/nothing' });
      assert.equal(missing.status, 404);
    });

    it('answers a streamed request (REQUEST_STREAM + BODY frames) as it answers the whole one', async () => {
      const body = op({ op: 'echo', pad: 'x'.repeat(300_000) });
      const whole = await ask(conn, body);
      const streamed = await new Promise<Answer>((resolve, reject) => {
        const id = conn.sendStream('POST', '/score', ['content-type', 'application/json'], 'rid', {
          deadline: performance.now() + 30_000,
          onResponse: (frame) => resolve({ type: frame[8], ...decodeResponse(Buffer.from(frame)) }),
          onFailure: (reason) => reject(new Error(reason)),
        });
        const b = Buffer.from(body);
        conn.sendBody(id, b.subarray(0, 100_000), false);
        conn.sendBody(id, b.subarray(100_000, 100_000), false); // an empty part changes nothing
        conn.sendBody(id, b.subarray(100_000, 250_000), false);
        conn.sendBody(id, b.subarray(250_000), true);
      });
      assert.equal(streamed.status, whole.status);
      assert.deepEqual(stable(streamed), stable(whole));
      assert.ok(streamed.body.equals(whole.body));
      assert.equal(streamed.body.toString(), `{"op": "echo", "pad": "${'x'.repeat(300_000)}"}`);
    });

    it('keeps two connections that use the same ids apart', async () => {
      const other = new InstanceConnection({ socketPath: host.socket });
      try {
        // Both connections number their requests from 1: the host sees every id twice at once.
        const a = Array.from({ length: 30 }, (_, i) => ask(conn, op({ op: 'echo', from: 'a', i })));
        const b = Array.from({ length: 30 }, (_, i) => ask(other, op({ op: 'echo', from: 'b', i })));
        const [ra, rb] = await Promise.all([Promise.all(a), Promise.all(b)]);
        ra.forEach((r, i) => assert.equal(r.body.toString(), `{"op": "echo", "from": "a", "i": ${i}}`));
        rb.forEach((r, i) => assert.equal(r.body.toString(), `{"op": "echo", "from": "b", "i": ${i}}`));
      } finally {
        other.close();
      }
    });

    it('never runs a request cancelled while it waits for the worker, nor a stream cancelled mid-body', async () => {
      const record = join(tmp, `record-${kind}.txt`);
      writeFileSync(record, '');
      // The fixture reads RECORD_FILE from its environment: a host of its own for this test.
      const h = await startHost(kind, { env: { RECORD_FILE: record } });
      const c = new InstanceConnection({ socketPath: h.socket });
      try {
        const slow = send(c, op({ op: 'sleep', seconds: 0.5, announce: `cancel-test ${kind}` }));
        await h.waitForLog(new RegExp(`cancel-test ${kind}`)); // the only worker is busy in run()
        const queued = send(c, op({ op: 'record', tag: 'cancelled' }));
        let settled = false;
        void queued.done.then(() => (settled = true), () => (settled = true));
        c.cancel(queued.id);
        // A stream whose body never completes: cancelled before its last part.
        const streamId = c.sendStream('POST', '/score', ['content-type', 'application/json'], 'rid', {
          deadline: performance.now() + 30_000,
          onResponse: () => (settled = true),
          onFailure: () => (settled = true),
        });
        c.sendBody(streamId, Buffer.from('{"op": "record", '), false);
        c.cancel(streamId);
        const after = send(c, op({ op: 'record', tag: 'after' }));
        assert.equal((await slow.done).status, 200);
        assert.equal((await after.done).body.toString(), '{"recorded": "after"}');
        assert.equal(readFileSync(record, 'utf8'), 'after\n');
        assert.equal(settled, false); // a cancelled request gets no answer at all
        // The worker's id space is intact: more requests after the skipped one are answered in order.
        const more = await Promise.all(Array.from({ length: 5 }, (_, i) => ask(c, op({ op: 'echo', i }))));
        more.forEach((r, i) => assert.equal(r.body.toString(), `{"op": "echo", "i": ${i}}`));
      } finally {
        c.close();
        await h.stop();
      }
    });
  });

  describe(`instance host (${kind}): WORKER_COUNT=2`, () => {
    it('runs concurrent requests on two worker processes at once', { skip: kind === 'python-relay' && 'the same host as (python): WORKER_COUNT > 1 always relays' }, async () => {
      const host = await startHost(kind, { env: { WORKER_COUNT: '2' } });
      const conn = new InstanceConnection({ socketPath: host.socket });
      try {
        assert.equal((host.output().stderr.match(/Worker with pid \d+ ready for serving traffic/g) ?? []).length, 2);
        const t0 = Date.now();
        const answers = await Promise.all(Array.from({ length: 4 }, () => ask(conn, op({ op: 'sleep', seconds: 0.4 }))));
        const elapsed = Date.now() - t0;
        const pids = new Set(answers.map((a) => (JSON.parse(a.body.toString()) as { pid: number }).pid));
        assert.equal(pids.size, 2);
        assert.ok(elapsed < 1400, `4 x 0.4 s on 2 workers took ${elapsed} ms`); // one worker: >= 1600 ms
      } finally {
        conn.close();
        await host.stop();
      }
    });
  });

  describe(`instance host (${kind}): failures and shutdown`, () => {
    it('answers INSTANCE_ERROR 502 for the requests of a worker that is killed, then exits 1', { skip: kind === 'python' && 'direct mode has no worker: see "a script that ends its process"' }, async () => {
      const host = await startHost(kind);
      const conn = new InstanceConnection({ socketPath: host.socket });
      try {
        const { pid } = JSON.parse((await ask(conn, op({ op: 'pid' }))).body.toString()) as { pid: number };
        const doomed = send(conn, op({ op: 'sleep', seconds: 30, announce: `doomed ${kind}` }));
        await host.waitForLog(new RegExp(`doomed ${kind}`));
        process.kill(pid, 'SIGKILL');
        const r = await doomed.done;
        assert.equal(r.type, FRAME_INSTANCE_ERROR);
        assert.equal(r.status, 502);
        assert.equal(
          r.body.toString(),
          `{"message": "The scoring worker (pid ${pid}) exited unexpectedly (signal SIGKILL) while handling the request. Check the logs for more info."}`,
        );
        assert.equal((await host.exited).code, 1);
        assert.match(host.output().stderr, new RegExp(`E \\[\\d+\\] azmlinfsrv - Python worker pid ${pid} exited unexpectedly \\(signal SIGKILL\\); 1 in-flight request\\(s\\) answered with 502\\.`));
        assert.match(host.output().stderr, /Instance host stopped \(exit code 1\)\./);
      } finally {
        conn.close();
        await host.stop();
      }
    });

    it('answers a run() that exceeds SCORING_TIMEOUT_MS with 500 and goes on serving', async () => {
      const host = await startHost(kind, { env: { SCORING_TIMEOUT_MS: '300' } });
      const conn = new InstanceConnection({ socketPath: host.socket });
      try {
        const t0 = Date.now();
        const r = await ask(conn, op({ op: 'sleep', seconds: 5 }));
        assert.ok(Date.now() - t0 < 3000, `the timeout took ${Date.now() - t0} ms`);
        assert.equal(r.type, FRAME_RESPONSE);
        assert.equal(r.status, 500);
        assert.equal(r.body.toString(), '{"message": "Scoring timeout after 300 ms"}');
        assert.equal(header(r, 'x-ms-run-function-failed'), 'True');
        assert.equal((await ask(conn, op({ op: 'echo', after: true }))).body.toString(), '{"op": "echo", "after": true}');
      } finally {
        conn.close();
        await host.stop();
      }
    });

    it('reports init-failed with the script\'s traceback and exits 3', async () => {
      const host = await startHost(kind, { appRoot: join(FIXTURES, 'broken-init') });
      assert.equal(host.first.type, 'init-failed');
      const msg = host.first as Extract<HostMessage, { type: 'init-failed' }>;
      assert.equal(msg.code, 'UserScriptInitFailed');
      assert.match(msg.message, /^User's init function failed: RuntimeError: model file is corrupt: checksum mismatch\n/);
      assert.match(msg.message, /File ".*broken-init\/score\.py", line 6, in init/);
      assert.equal((await host.exited).code, 3);
      assert.match(host.output().stderr, /E \[\d+\] azmlinfsrv - init-failed UserScriptInitFailed: User's init function failed: RuntimeError/);
      assert.equal(existsSync(host.socket), false); // never listened
    });

    it('reports a missing scoring script as UserScriptImportError, exit 3', async () => {
      const host = await startHost(kind, { script: 'missing.py' });
      assert.deepEqual(host.first, { type: 'init-failed', code: 'UserScriptImportError', message: `User script at ${join(FIXTURE, 'missing.py')} does not exist.` });
      assert.equal((await host.exited).code, 3);
    });

    it('finishes a request in flight on SIGTERM, answers new ones 503, exits 0', async () => {
      const host = await startHost(kind);
      const conn = new InstanceConnection({ socketPath: host.socket });
      try {
        const slow = send(conn, op({ op: 'sleep', seconds: 0.8, announce: `sigterm ${kind}` }));
        await host.waitForLog(new RegExp(`sigterm ${kind}`));
        host.child.kill('SIGTERM');
        await host.waitForLog(/Shutting down \(SIGTERM\); 1 request\(s\) in flight\./);
        const late = await ask(conn, op({ op: 'echo' }));
        assert.equal(late.type, FRAME_INSTANCE_ERROR);
        assert.equal(late.status, 503);
        assert.equal(late.body.toString(), SHUTTING_DOWN);
        const r = await slow.done;
        assert.equal(r.type, FRAME_RESPONSE);
        assert.equal(r.status, 200);
        assert.equal((await host.exited).code, 0);
        assert.equal(existsSync(host.socket), false); // no longer listening
        assert.match(host.output().stderr, /I \[\d+\] azmlinfsrv - Instance host stopped \(exit code 0\)\.$/m);
      } finally {
        conn.close();
        await host.stop();
      }
    });

    it('stops reading a connection that does not read its answers, and catches up when it does', async () => {
      const host = await startHost(kind);
      const sock = await new Promise<net.Socket>((res, rej) => {
        const s = net.connect(host.socket, () => res(s));
        s.once('error', rej);
      });
      try {
        const answers: ResponseFrame[] = [];
        sock.on('data', (c: Buffer) => reader.push(c));
        const reader = new FrameReader((frame) => answers.push(decodeResponse(Buffer.from(frame))));
        sock.pause(); // a router that stopped reading
        const body = Buffer.from(op({ op: 'echo', pad: 'e'.repeat(500_000) })); // each answer is as big as its request
        const count = 100; // 50 MB each way
        for (let i = 1; i <= count; i++) sock.write(Buffer.concat([encodeRequestHead(i, 'POST', '/score', [], body.length), body]));
        // Wait for the flow to stop: our queue no longer shrinking over 100 ms (the host stopped reading).
        let last = -1;
        await waitFor('the host to stop reading', () => {
          const now = sock.writableLength;
          const stalled = now === last;
          last = now;
          return stalled;
        }, 10_000, 100);
        // The host holds a bounded amount (its high-water marks), not the other 30 MB.
        assert.ok(sock.writableLength > 20_000_000, `client still holds ${sock.writableLength} bytes`);
        sock.resume();
        await waitFor('every answer', () => answers.length === count, 30_000, 20);
        const expected = `{"op": "echo", "pad": "${'e'.repeat(500_000)}"}`;
        for (const a of answers) assert.equal(a.body.toString(), expected);
        assert.deepEqual(answers.map((a) => a.id), Array.from({ length: count }, (_, i) => i + 1));
      } finally {
        sock.destroy();
        await host.stop();
      }
    });
  });
}

describe('instance host (python): what only the container host does', () => {
  it('makes its socket connectable by any user and prints exactly one host message line', async () => {
    const host = await startHost('python');
    try {
      assert.equal(statSync(host.socket).mode & 0o777, 0o666);
      const lines = host.output().stdout.split('\n').filter((l) => l.startsWith(HOST_MESSAGE_PREFIX));
      assert.deepEqual(lines, [`${HOST_MESSAGE_PREFIX}{"type":"ready","pid":${host.child.pid}}`]);
      const { stderr } = host.output();
      const line = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEC] \[\d+\] [\w.]+ - /;
      assert.match(stderr, new RegExp(line.source + `infergate instance host \\(azmlinfsrv-compatible\\), instance test-0, pid ${host.child.pid}, Python 3\\.\\d+`, 'm'));
      assert.match(stderr, /I \[\d+\] azmlinfsrv - Python interpreter: \/usr\/bin\/python3; worker script: .*infergate_worker\.py$/m);
      assert.match(stderr, /I \[\d+\] azmlinfsrv - Worker count: 1$/m);
    } finally {
      await host.stop();
    }
  });

  it('replaces a stale socket file left by a crashed predecessor', async () => {
    writeFileSync(join(tmp, `h${counter + 1}.sock`), 'stale');
    const host = await startHost('python');
    try {
      assert.equal(host.first.type, 'ready');
      assert.ok(statSync(host.socket).isSocket());
    } finally {
      await host.stop();
    }
  });

  for (const [env, message] of [
    [{ INFERGATE_SOCKET: undefined }, 'INFERGATE_SOCKET is not set: the host needs a socket path to listen on.'],
    [{ AZUREML_ENTRY_SCRIPT: undefined }, 'AZUREML_ENTRY_SCRIPT is not set: the host needs the scoring script to run.'],
    [{ WORKER_COUNT: '0' }, "Specified worker count '0' is invalid. Please specify a worker count greater than zero."],
    [{ WORKER_COUNT: 'two' }, "Specified worker count 'two' is invalid. Please specify a worker count greater than zero."],
    [{ SCORING_TIMEOUT_MS: '1.5' }, "SCORING_TIMEOUT_MS '1.5' is invalid. Please specify a whole number of milliseconds."],
    [{ INFERGATE_SOCKET: 'tcp://127.0.0.1:1' }, "INFERGATE_SOCKET 'tcp://127.0.0.1:1' is not a Unix socket path: the Python instance host listens on a Unix socket only."],
  ] as const) {
    it(`exits 2 on an unusable environment: ${message.slice(0, 40)}`, async () => {
      const child = spawn(PYTHON, ['-u', PY_HOST], { env: hostEnv({ env }, join(tmp, 'never.sock')), stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      let stdout = '';
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      const code = await new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      assert.equal(code, 2);
      assert.match(stderr, new RegExp(`C \\[${child.pid}\\] azmlinfsrv - ${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\n$`));
      assert.equal(stdout, '');
    });
  }

  // Root only: a new PID namespace, as a container without --init gives.
  const canUnshare = spawnSync('unshare', ['--pid', '--fork', 'true']).status === 0;
  it('runs as PID 1, as in a container: serves, and stops gracefully on SIGTERM to PID 1', { skip: !canUnshare && 'unshare --pid needs root' }, async () => {
    const host = await startHost('python', { wrap: ['unshare', '--pid', '--fork'] });
    const conn = new InstanceConnection({ socketPath: host.socket });
    try {
      // PID 1 stays init; the host is its first child (a worker whose parent is PID 1 would exit at once).
      assert.deepEqual(host.first, { type: 'ready', pid: 2 });
      assert.equal((await ask(conn, op({ op: 'echo' }))).body.toString(), '{"op": "echo"}');
      const slow = send(conn, op({ op: 'sleep', seconds: 0.5, announce: 'pid-1 sleeping' }));
      await host.waitForLog(/pid-1 sleeping/);
      const pid1 = Number(readFileSync(`/proc/${host.child.pid}/task/${host.child.pid}/children`, 'utf8').trim());
      process.kill(pid1, 'SIGTERM');
      assert.equal((await slow.done).status, 200);
      assert.equal((await host.exited).code, 0); // PID 1 exits with the host's code
      assert.match(host.output().stderr, /I \[2\] azmlinfsrv - Instance host stopped \(exit code 0\)\./);
    } finally {
      conn.close();
      await host.stop();
    }
  });

  it('refuses a JavaScript scoring module with init-failed (it needs the Node host)', async () => {
    const host = await startHost('python', { appRoot: join(FIXTURES, 'js-behaviours'), script: 'score.mjs' });
    assert.equal(host.first.type, 'init-failed');
    assert.match((host.first as Extract<HostMessage, { type: 'init-failed' }>).message, /score\.mjs is not a scoring script the Python instance host can run: expected \.py/);
    assert.equal((await host.exited).code, 3);
  });
});

// A script that writes to stdout and its own console log, ends its process, runs subprocesses: what running
// it inside the host (direct mode) must survive as a worker process does.
const NOISY = `import json, os, subprocess, sys

def init():
    print("noisy: init print")
    os.write(1, b"noisy: init os.write(1)\\n")
    n = int(os.environ.get("NOISY_INIT_BYTES", "0"))
    if n:
        sys.stderr.write(("x" * 99 + "\\n") * (n // 100))
        sys.stderr.flush()

def run(raw):
    req = json.loads(raw)
    op = req["op"]
    if op == "write":
        print("noisy: run print")
        os.write(1, b"noisy: run os.write(1)\\n")
        sys.stdout.write("noisy: run sys.stdout\\n")
        sys.stdout.flush()
        return {"pid": os.getpid()}
    if op == "exit":
        os._exit(7)
    if op == "subprocess":
        return {"code": subprocess.run([sys.executable, "-c", "import sys; sys.exit(5)"]).returncode}
    return req
`;

for (const kind of ['python', 'python-relay'] as const) {
  describe(`instance host (${kind}): the script's own doings`, () => {
    let appRoot: string;
    before(() => {
      appRoot = mkdtempSync(join(tmp, 'noisy-'));
      writeFileSync(join(appRoot, 'score.py'), NOISY);
    });

    it('keeps print() and os.write(1, ...) off stdout (the host message line) and off the frames', async () => {
      const host = await startHost(kind, { appRoot });
      const conn = new InstanceConnection({ socketPath: host.socket });
      try {
        const r = await ask(conn, op({ op: 'write' }));
        assert.equal(r.status, 200);
        const { pid } = JSON.parse(r.body.toString()) as { pid: number };
        // Direct mode scores in the host's own process; the relay in a worker process.
        if (kind === 'python') assert.equal(pid, host.child.pid);
        else assert.notEqual(pid, host.child.pid);
        assert.equal((await ask(conn, op({ op: 'echo' }))).body.toString(), '{"op": "echo"}');
        await host.waitForLog(/noisy: run sys\.stdout/);
        const { stdout, stderr } = host.output();
        assert.equal(stdout, `${HOST_MESSAGE_PREFIX}{"type":"ready","pid":${host.child.pid}}\n`);
        for (const line of ['init print', 'init os.write(1)', 'run print', 'run os.write(1)']) assert.ok(stderr.includes(`noisy: ${line}\n`), line);
      } finally {
        conn.close();
        await host.stop();
      }
    });

    it("leaves the exit status of the script's subprocesses to the script", async () => {
      const host = await startHost(kind, { appRoot });
      const conn = new InstanceConnection({ socketPath: host.socket });
      try {
        assert.equal((await ask(conn, op({ op: 'subprocess' }))).body.toString(), '{"code": 5}');
      } finally {
        conn.close();
        await host.stop();
      }
    });

    it('relays a console log bigger than a pipe that init() writes before the loop runs', async () => {
      const logSocket = join(tmp, `log-${kind}.sock`);
      let received = '';
      const server = net.createServer((s) => s.on('data', (c: Buffer) => (received += c.toString())));
      await new Promise<void>((res) => server.listen(logSocket, res));
      try {
        // 300 kB > the 64 kB a pipe holds: with nobody reading while init() runs, the script would block.
        const host = await startHost(kind, { appRoot, env: { INFERGATE_LOG_SOCKET: logSocket, NOISY_INIT_BYTES: '300000' } });
        try {
          assert.equal(host.first.type, 'ready');
          await waitFor('the whole console log on the log socket', () => /Listening on /.test(received), 10_000, 10);
          assert.equal(received.split('\n').filter((l) => l === 'x'.repeat(99)).length, 3000);
          assert.ok(received.includes('noisy: init print\n'));
        } finally {
          await host.stop();
        }
      } finally {
        await new Promise((res) => server.close(res));
      }
    });
  });
}

describe('instance host (python): direct mode (WORKER_COUNT=1) differs from the relay', () => {
  it('ends with the script when the script ends its process: no worker to answer 502 for it', async () => {
    const appRoot = mkdtempSync(join(tmp, 'noisy-'));
    writeFileSync(join(appRoot, 'score.py'), NOISY);
    const host = await startHost('python', { appRoot });
    const conn = new InstanceConnection({ socketPath: host.socket });
    try {
      // The router sees its connection close, fails what was in flight, and the backend restarts the instance.
      await assert.rejects(ask(conn, op({ op: 'exit' })), /request failed: (dropped|unavailable)/);
      assert.deepEqual(await host.exited, { code: 7, signal: null });
    } finally {
      conn.close();
      await host.stop();
    }
  });

  it("keeps a script's last words when it ends the process at import (log supervisor), with its exit code", async () => {
    const appRoot = mkdtempSync(join(tmp, 'exit-at-import-'));
    writeFileSync(join(appRoot, 'score.py'), 'import os, sys\nprint("last words before exiting", file=sys.stderr, flush=True)\nos._exit(4)\n\ndef init():\n    pass\n\ndef run(raw):\n    return raw\n');
    const logSocket = join(tmp, `log-exit-${++counter}.sock`);
    let received = '';
    const server = net.createServer((s) => s.on('data', (c: Buffer) => (received += c.toString())));
    await new Promise<void>((res) => server.listen(logSocket, res));
    try {
      const socket = join(tmp, `h${++counter}.sock`);
      const child = spawn(PYTHON, ['-u', PY_HOST], { cwd: appRoot, env: { ...hostEnv({ appRoot }, socket), INFERGATE_LOG_SOCKET: logSocket }, stdio: ['ignore', 'pipe', 'pipe'] });
      const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
      // The supervisor (the process started) exits with the host's code, after the pipe is drained.
      assert.equal(await exited, 4);
      await waitFor('the last words on the log socket', () => received.includes('last words before exiting'), 5_000, 10, () => received);
      assert.match(received, /Entry script: /);
    } finally {
      await new Promise((res) => server.close(res));
    }
  });

  it('exits 0 at once on SIGTERM during init(), as the relay does', async () => {
    const appRoot = mkdtempSync(join(tmp, 'slow-init-'));
    writeFileSync(join(appRoot, 'score.py'), 'import time\n\ndef init():\n    print("slow init", flush=True)\n    time.sleep(30)\n\ndef run(raw):\n    return raw\n');
    const socket = join(tmp, `h${++counter}.sock`);
    const child = spawn(PYTHON, ['-u', PY_HOST], { cwd: appRoot, env: hostEnv({ appRoot }, socket), stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let stdout = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    const exited = new Promise<number | null>((res) => child.on('exit', (c) => res(c)));
    await waitFor('init() to run', () => stderr.includes('slow init'), 10_000, 10, () => stderr);
    const t0 = Date.now();
    child.kill('SIGTERM');
    assert.equal(await exited, 0);
    assert.ok(Date.now() - t0 < 5000);
    assert.match(stderr, /I \[\d+\] azmlinfsrv - Shutting down \(SIGTERM\); 0 request\(s\) in flight\./);
    assert.equal(stdout, '');
  });
});
