// The process backend's files, through real instance processes: what stays behind after stop and delete,
// console-log rotation as get-logs sees it, and a start over an earlier server's leftovers; which
// instance host runs a score.py (the Python host in direct mode, or host.ts with INFERGATE_PYTHON_HOST=node).

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { InstancePlan } from '../../ir/types.js';
import { InstanceConnection } from '../../protocol/client.js';
import { decodeResponse } from '../../protocol/frame.js';
import type { ObservedInstance } from '../types.js';
import { ProcessBackend } from './backend.js';
import { pdeathsigWrapper, pythonHostFor } from './supervisor.js';

const root = mkdtempSync(join(tmpdir(), 'infergate-backend-'));
after(() => rmSync(root, { recursive: true, force: true }));

const PROBE = { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };

/** A JavaScript scoring module whose init() prints `lines` numbered lines. */
function code(name: string, lines: number): string {
  const dir = join(root, 'code', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'score.mjs'),
    `export function init() {\n  for (let i = 0; i < ${lines}; i++) console.log('init line ' + String(i).padStart(6, '0') + ' ' + 'x'.repeat(40));\n  console.log('init done');\n}\nexport function run(raw) { return raw; }\n`,
  );
  return dir;
}

function plan(endpoint: string, deployment: string, codeDir: string, revision = 'r1'): InstancePlan {
  return {
    endpoint,
    deployment,
    revision,
    instanceType: 'Standard_DS3_v2',
    resources: { from: 'test' },
    egress: false,
    instanceCount: 1,
    runtime: 'javascript',
    code: { path: codeDir, scoringScript: 'score.mjs' },
    environment: {},
    environmentVariables: {},
    workerCount: 1,
    requestTimeoutMs: 5000,
    livenessProbe: PROBE,
    readinessProbe: PROBE,
  };
}

async function until<T>(what: string, fn: () => T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

async function untilAsync(what: string, fn: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const ready = (b: ProcessBackend, id: string) =>
  until(`${id} to be ready`, () => {
    const o: ObservedInstance | undefined = b.observe().find((i) => i.id === id);
    if (o?.state === 'failed') throw new Error(`${id} failed: ${o.error?.message}`);
    return o?.state === 'ready' ? o : undefined;
  });

const socketDirOf = (workspace: string) => join(tmpdir(), `infergate-${createHash('sha256').update(workspace).digest('hex').slice(0, 10)}`);

test('a stopped instance leaves no directory or socket behind; its logs stay while the deployment lives, and go with forget()', async () => {
  const ws = join(root, 'ws-stop');
  const backend = new ProcessBackend({ workspace: ws });
  const id = 'ep1.blue.r1.0';
  try {
    await backend.start(id, plan('ep1', 'blue', code('stop', 3)), 0);
    const inst = await ready(backend, id);
    assert.ok(existsSync(join(ws, 'instances', 'ep1', 'blue', id, '.initialized')));
    assert.ok(inst.address?.transport === 'framed' && existsSync(inst.address.socketPath));
    assert.match(await backend.logs('ep1', 'blue', 'inference-server', 50), /init done/);

    await backend.stop(id);
    assert.deepEqual(backend.observe(), []);
    assert.equal(existsSync(join(ws, 'instances')) && readdirSync(join(ws, 'instances')).length, 0, 'instances/ is empty: no <endpoint>/<deployment> folders left');
    assert.equal(existsSync(inst.address.transport === 'framed' ? inst.address.socketPath : ''), false);
    // get-logs of a live deployment whose instance stopped (scaled in, failed, replaced) still shows it.
    assert.match(await backend.logs('ep1', 'blue', 'inference-server', 50), /init done/);
    assert.match(await backend.logs('ep1', 'blue', 'storage-initializer', 5), /Copied code/);

    // The deployment is deleted: its logs go too, as on Azure.
    await backend.forget('ep1', 'blue');
    assert.equal(existsSync(join(ws, 'logs', 'ep1')), false);
    assert.equal(await backend.logs('ep1', 'blue', 'inference-server', 5), '');
  } finally {
    await backend.close();
  }
  assert.equal(existsSync(socketDirOf(ws)), false, 'the socket folder is gone');
});

test('forget() leaves a deployment that runs alone; stopped-instance logs are bounded per deployment', async () => {
  const ws = join(root, 'ws-bounded');
  const backend = new ProcessBackend({ workspace: ws });
  const dir = code('bounded', 1);
  try {
    // Five revisions one after the other (rolling updates): only the newest three stopped logs are kept.
    for (let r = 1; r <= 5; r++) {
      const id = `ep2.blue.r${r}.0`;
      await backend.start(id, plan('ep2', 'blue', dir, `r${r}`), 0);
      await ready(backend, id);
      await backend.stop(id);
    }
    // `current` links to the newest instance's logs (get-logs --follow, tail -F); the rest are instance folders.
    assert.deepEqual(readdirSync(join(ws, 'logs', 'ep2', 'blue')).filter((n) => n !== 'current').sort(), ['ep2.blue.r3.0', 'ep2.blue.r4.0', 'ep2.blue.r5.0']);
    const live = 'ep2.blue.r6.0';
    await backend.start(live, plan('ep2', 'blue', dir, 'r6'), 0);
    await ready(backend, live);
    await backend.forget('ep2', 'blue');
    assert.ok(existsSync(join(ws, 'instances', 'ep2', 'blue', live)), 'a running instance keeps its files');
    assert.match(await backend.logs('ep2', 'blue', 'inference-server', 50), /init done/);
  } finally {
    await backend.close();
  }
  assert.equal(existsSync(join(ws, 'instances', 'ep2')), false);
});

test('inference-server.log rotates at the configured size and get-logs --lines reads across the rotation', async () => {
  const ws = join(root, 'ws-rotate');
  const maxFileBytes = 32 * 1024;
  const backend = new ProcessBackend({ workspace: ws, consoleLog: { maxFileBytes, keepFiles: 2 } });
  const id = 'ep3.blue.r1.0';
  const total = 3000; // ~60 bytes each: ~180 kB through 32 kB files
  try {
    await backend.start(id, plan('ep3', 'blue', code('rotate', total)), 0);
    await ready(backend, id);
    const logDir = join(ws, 'logs', 'ep3', 'blue', id);
    // 'ready' comes over IPC, the console output over pipes and then asynchronously to disk: the last
    // rotations may follow the ready message by a moment (more so on a loaded machine).
    const logFiles = () => readdirSync(logDir).filter((f) => f.startsWith('inference-server.log')).sort();
    const files = await until('three console-log files', () => logFiles().length >= 3 && logFiles(), 10_000);
    assert.deepEqual(files, ['inference-server.log', 'inference-server.log.1', 'inference-server.log.2']);
    // A pipe read is at most 64 kB, and a chunk is never split: a file passes the limit by less than that.
    for (const f of files) assert.ok(statSync(join(logDir, f)).size <= maxFileBytes + 64 * 1024, `${f}: ${statSync(join(logDir, f)).size} bytes`);

    await untilAsync('init done in the log', async () => (await backend.logs('ep3', 'blue', 'inference-server', 5)).includes('init done'), 10_000);
    const want = 800; // more than one 32 kB file holds (~540 lines)
    const tail = (await backend.logs('ep3', 'blue', 'inference-server', want)).trimEnd().split('\n');
    assert.equal(tail.length, want);
    const numbered = tail.map((l) => /init line (\d{6})/.exec(l)?.[1]).filter((n): n is string => n !== undefined).map(Number);
    assert.ok(numbered.length > 500, `${numbered.length} numbered lines in the tail`);
    assert.equal(numbered[numbered.length - 1], total - 1);
    numbered.forEach((n, i) => assert.equal(n, numbered[0] + i, 'consecutive across the rotation'));
    assert.ok(tail.some((l) => l.includes('init done')));
  } finally {
    await backend.close();
  }
});

test('a new backend clears an earlier server’s leftovers: stale sockets, old instance directories, a half-initialized one', async () => {
  const ws = join(root, 'ws-leftovers');
  const dir = code('leftovers', 1);
  const id = 'ep4.blue.r2.0';
  // What a server killed with -9 leaves: a socket file, the directory of an instance of an older revision,
  // the initialized directory of the instance that will start again, and files of a deleted deployment.
  const sockets = socketDirOf(ws);
  mkdirSync(sockets, { recursive: true });
  writeFileSync(join(sockets, 'deadbeefdeadbeef.sock'), '');
  mkdirSync(join(ws, 'instances', 'ep4', 'blue', 'ep4.blue.r1.0', 'code'), { recursive: true });
  mkdirSync(join(ws, 'instances', 'gone', 'green', 'gone.green.r1.0'), { recursive: true });
  mkdirSync(join(ws, 'logs', 'gone', 'green', 'gone.green.r1.0'), { recursive: true });

  const first = new ProcessBackend({ workspace: ws });
  await first.start(id, plan('ep4', 'blue', dir, 'r2'), 0);
  await ready(first, id);
  await first.close();
  // The instance's directory as a crash during its storage initialization leaves it: files, no marker.
  mkdirSync(join(ws, 'instances', 'ep4', 'blue', id), { recursive: true });
  writeFileSync(join(ws, 'instances', 'ep4', 'blue', id, 'half-copied.bin'), 'x');

  const backend = new ProcessBackend({ workspace: ws });
  try {
    assert.deepEqual(readdirSync(sockets), [], 'stale socket files are removed');
    await backend.forgetUnknown((e, d) => e === 'ep4' && d === 'blue');
    assert.equal(existsSync(join(ws, 'instances', 'gone')), false);
    assert.equal(existsSync(join(ws, 'logs', 'gone')), false);
    await backend.start(id, plan('ep4', 'blue', dir, 'r2'), 0);
    await ready(backend, id);
    assert.deepEqual(readdirSync(join(ws, 'instances', 'ep4', 'blue')), [id], 'the older revision’s directory is gone');
    assert.equal(existsSync(join(ws, 'instances', 'ep4', 'blue', id, 'half-copied.bin')), false, 'a directory without its marker is initialized afresh');
    assert.ok(existsSync(join(ws, 'instances', 'ep4', 'blue', id, '.initialized')));
  } finally {
    await backend.close();
  }
});

test('kill -9 of the server process: its instance host dies with it, even one whose event loop is stuck', async () => {
  const ws = join(root, 'ws-orphan');
  const dir = join(root, 'code', 'stuck');
  mkdirSync(dir, { recursive: true });
  // Ready, then its event loop never turns again: it cannot see its IPC channel close.
  writeFileSync(join(dir, 'score.mjs'), `export function init() { setTimeout(() => { console.log('entering the loop'); for (;;) {} }, 300); }\nexport function run(raw) { return raw; }\n`);
  const script = join(root, 'server-like.mts');
  writeFileSync(
    script,
    [
      `import { ProcessBackend } from ${JSON.stringify(join(import.meta.dirname, 'backend.ts'))};`,
      `const backend = new ProcessBackend({ workspace: ${JSON.stringify(ws)} });`,
      `await backend.start('ep5.blue.r1.0', ${JSON.stringify(plan('ep5', 'blue', dir))}, 0);`,
      `const t = setInterval(() => { if (backend.observe()[0]?.state === 'ready') { clearInterval(t); process.stdout.write('READY\\n'); } }, 20);`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      child.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('READY')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`exited ${code}`)));
    });
    const hosts = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    assert.equal(hosts.length, 1, 'one instance host');
    // Its loop is stuck once it said so (stdout is a pipe written synchronously, then the log file).
    const consoleLog = join(ws, 'logs', 'ep5', 'blue', 'ep5.blue.r1.0', 'inference-server.log');
    await until('the host to enter its endless loop', () => existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('entering the loop'), 10_000);
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await until('the stuck host to die with its server', () => !isAlive(hosts[0]), 5000);
    console.log(`# instance host gone ${Date.now() - killedAt} ms after kill -9 of its server`);
  } finally {
    child.kill('SIGKILL');
  }
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  // A zombie (dead, not yet reaped by init) counts as gone.
  try {
    return !/^State:\s+Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** A score.py echoing its input with the pid that ran it; init() raises when `failInit`. */
function pyCode(name: string, failInit = false): string {
  const dir = join(root, 'code', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'score.py'),
    [
      'import os, sys',
      'def init():',
      '    print("init printed this")',
      ...(failInit ? ['    raise ValueError("no model here")'] : []),
      'def run(raw_data):',
      '    return {"pid": os.getpid(), "echo": raw_data}',
      '',
    ].join('\n'),
  );
  return dir;
}

function pyPlan(endpoint: string, codeDir: string, workerCount = 1): InstancePlan {
  return { ...plan(endpoint, 'blue', codeDir), runtime: 'python', code: { path: codeDir, scoringScript: 'score.py' }, workerCount };
}

function score(socketPath: string): Promise<{ status: number; body: string }> {
  const conn = new InstanceConnection({ socketPath });
  return new Promise((resolve, reject) =>
    conn.send('POST', '/score', ['content-type', 'application/json'], 'test', Buffer.from('"hi"'), {
      deadline: performance.now() + 10_000,
      onResponse: (frame) => {
        const r = decodeResponse(frame);
        conn.close();
        resolve({ status: r.status, body: r.body.toString('utf8') });
      },
      onFailure: (reason) => {
        conn.close();
        reject(new Error(reason));
      },
    }),
  );
}

const cmdline = (pid: number) => readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);

/** The pid of an instance's host: the child of this process whose environment names the instance. */
function hostPidOf(id: string): number {
  for (const task of readdirSync(`/proc/${process.pid}/task`)) {
    for (const pid of readFileSync(`/proc/${process.pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number)) {
      try {
        if (readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`INFERGATE_INSTANCE_ID=${id}`)) return pid;
      } catch {
        // exited meanwhile
      }
    }
  }
  throw new Error(`no host process of ${id}`);
}

test('which host runs a script: the Python host for .py with one worker and a setpriv wrapper, host.ts otherwise', () => {
  const env = { INFERGATE_PYTHON: '/usr/bin/python3', AZUREML_ENTRY_SCRIPT: '/app/score.py', WORKER_COUNT: '1' };
  assert.equal(pythonHostFor(env, '/usr/bin/setpriv'), '/usr/bin/python3');
  assert.equal(pythonHostFor({ ...env, AZUREML_ENTRY_SCRIPT: '/app/SCORE.PY' }, '/usr/bin/setpriv'), '/usr/bin/python3');
  assert.equal(pythonHostFor(env, null), null, 'no pdeathsig wrapper: host.ts and its IPC guard');
  assert.equal(pythonHostFor({ ...env, WORKER_COUNT: '2' }, '/usr/bin/setpriv'), null, 'several workers: host.ts relays');
  assert.equal(pythonHostFor({ ...env, AZUREML_ENTRY_SCRIPT: '/app/score.mjs' }, '/usr/bin/setpriv'), null);
  assert.equal(pythonHostFor({ ...env, INFERGATE_PYTHON: undefined }, '/usr/bin/setpriv'), null);
  const mlflow = (batching?: object) => ({ ...env, INFERGATE_NO_CODE: JSON.stringify({ kind: 'mlflow', ...(batching ? { batching } : {}) }) });
  assert.equal(pythonHostFor(mlflow(), '/usr/bin/setpriv'), '/usr/bin/python3');
  assert.equal(pythonHostFor(mlflow({ maxBatchSize: 8, maxDelayUs: 500 }), '/usr/bin/setpriv'), null, 'only host.ts batches');
  const saved = process.env.INFERGATE_PYTHON_HOST;
  process.env.INFERGATE_PYTHON_HOST = 'node';
  try {
    assert.equal(pythonHostFor(env, '/usr/bin/setpriv'), null);
  } finally {
    if (saved === undefined) delete process.env.INFERGATE_PYTHON_HOST;
    else process.env.INFERGATE_PYTHON_HOST = saved;
  }
});

test('a score.py instance runs under infergate_host.py itself (direct mode), with its output in the console log and no message line', { skip: pdeathsigWrapper() ? false : 'no setpriv: the Node host runs it' }, async () => {
  const ws = join(root, 'ws-pyhost');
  const backend = new ProcessBackend({ workspace: ws });
  try {
    await backend.start('py1.blue.r1.0', pyPlan('py1', pyCode('py-direct')), 0);
    const o = await ready(backend, 'py1.blue.r1.0');
    assert.equal(o.address?.transport, 'framed');
    const pid = hostPidOf('py1.blue.r1.0');
    const argv = cmdline(pid);
    assert.ok(argv.some((a) => a.endsWith('runtime/python/infergate_host.py')), `the instance's process is the Python host: ${argv.join(' ')}`);
    assert.match(argv[0], /python/);
    const r = await score((o.address as { socketPath: string }).socketPath);
    assert.equal(r.status, 200, r.body);
    assert.equal((JSON.parse(r.body) as { pid: number }).pid, pid, 'run() ran in the host process: no worker');
    const log = await backend.logs('py1', 'blue', 'inference-server', 200);
    assert.match(log, /init printed this/);
    assert.match(log, /WORKER_COUNT=1: scoring in the instance host's own process/);
    assert.match(log, /Listening on /);
    assert.doesNotMatch(log, /INFERGATE_HOST/, 'the message line is taken out of the console log');
  } finally {
    await backend.close();
  }
});

test('a score.py whose init() fails on the Python host: Failed with UserScriptInitFailed and the traceback, never restarted', { skip: pdeathsigWrapper() ? false : 'no setpriv' }, async () => {
  const ws = join(root, 'ws-pyfail');
  const backend = new ProcessBackend({ workspace: ws });
  try {
    await backend.start('py2.blue.r1.0', pyPlan('py2', pyCode('py-fail', true)), 0);
    const o = await until('the instance to fail', () => backend.observe().find((i) => i.id === 'py2.blue.r1.0' && i.state === 'failed'));
    assert.equal(o.error?.code, 'UserScriptInitFailed');
    assert.match(o.error?.message ?? '', /no model here/);
    assert.equal(o.restarts, 0);
    const log = await backend.logs('py2', 'blue', 'inference-server', 200);
    assert.match(log, /ValueError: no model here/);
    assert.doesNotMatch(log, /INFERGATE_HOST/);
  } finally {
    await backend.close();
  }
});

test('INFERGATE_PYTHON_HOST=node keeps the Node host for a score.py (one Python worker behind it)', async () => {
  const ws = join(root, 'ws-pynode');
  const saved = process.env.INFERGATE_PYTHON_HOST;
  process.env.INFERGATE_PYTHON_HOST = 'node';
  const backend = new ProcessBackend({ workspace: ws });
  try {
    await backend.start('py3.blue.r1.0', pyPlan('py3', pyCode('py-node')), 0);
    const o = await ready(backend, 'py3.blue.r1.0');
    const pid = hostPidOf('py3.blue.r1.0');
    const argv = cmdline(pid);
    assert.ok(argv.some((a) => /runtime\/host\.(ts|js)$/.test(a)), `the instance's process is the Node host: ${argv.join(' ')}`);
    const r = await score((o.address as { socketPath: string }).socketPath);
    assert.equal(r.status, 200, r.body);
    assert.notEqual((JSON.parse(r.body) as { pid: number }).pid, pid, 'run() ran in a worker process');
  } finally {
    await backend.close();
    if (saved === undefined) delete process.env.INFERGATE_PYTHON_HOST;
    else process.env.INFERGATE_PYTHON_HOST = saved;
  }
});

test('a score.py that ends its process during init() on the Python host: Failed as host.ts reports a worker that died, not restarted', { skip: pdeathsigWrapper() ? false : 'no setpriv' }, async () => {
  const ws = join(root, 'ws-pyexit');
  const dir = join(root, 'code', 'py-exit');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'score.py'), 'import os, sys\n\ndef init():\n    print("last words", file=sys.stderr, flush=True)\n    os._exit(4)\n\ndef run(raw):\n    return raw\n');
  const backend = new ProcessBackend({ workspace: ws });
  try {
    await backend.start('py4.blue.r1.0', pyPlan('py4', dir), 0);
    const o = await until('the instance to fail', () => backend.observe().find((i) => i.id === 'py4.blue.r1.0' && i.state === 'failed'));
    assert.equal(o.error?.code, 'UserScriptInitFailed');
    assert.match(o.error?.message ?? '', /exited \(exit code 4\) before reporting the outcome of init\(\)/);
    assert.equal(o.restarts, 0);
    assert.match(await backend.logs('py4', 'blue', 'inference-server', 200), /last words/);
  } finally {
    await backend.close();
  }
});

test('kill -9 of the server process: a Python host stuck in init() dies with it (no IPC channel: the parent-death signal)', { skip: pdeathsigWrapper() ? false : 'no setpriv' }, async () => {
  const ws = join(root, 'ws-pyorphan');
  const dir = join(root, 'code', 'py-stuck');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'score.py'), 'def init():\n    print("entering the loop", flush=True)\n    while True:\n        pass\n\ndef run(raw):\n    return raw\n');
  const script = join(root, 'server-like-py.mts');
  writeFileSync(
    script,
    [
      `import { ProcessBackend } from ${JSON.stringify(join(import.meta.dirname, 'backend.ts'))};`,
      `const backend = new ProcessBackend({ workspace: ${JSON.stringify(ws)} });`,
      `await backend.start('py5.blue.r1.0', ${JSON.stringify(pyPlan('py5', dir))}, 0);`,
      `setInterval(() => {}, 1000);`,
      '',
    ].join('\n'),
  );
  const child = spawn(process.execPath, ['--import', 'tsx', script], { stdio: ['ignore', 'ignore', 'inherit'] });
  try {
    const consoleLog = join(ws, 'logs', 'py5', 'blue', 'py5.blue.r1.0', 'inference-server.log');
    await until('the script to enter its endless loop', () => existsSync(consoleLog) && readFileSync(consoleLog, 'utf8').includes('entering the loop'), 20_000);
    const hosts = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    assert.equal(hosts.length, 1, 'one instance host');
    assert.ok(cmdline(hosts[0]).some((a) => a.endsWith('infergate_host.py')), 'the Python host');
    const killedAt = Date.now();
    child.kill('SIGKILL');
    await until('the stuck host to die with its server', () => !isAlive(hosts[0]), 5000);
    console.log(`# Python instance host gone ${Date.now() - killedAt} ms after kill -9 of its server`);
  } finally {
    child.kill('SIGKILL');
  }
});
