// Instance admission at a real instance host (./admission.ts, docs/router-scale.md): two connections stand
// for two routers; after LIMITS the host runs at most max_concurrent at once over both, queues at most
// max_queued more, answers BUSY beyond them, honours max_queue_wait_ms and CANCEL for what it queues, and
// drops admission again when told the deployment is unlimited.

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InstanceConnection } from '../protocol/client.js';
import { BUSY_FULL, BUSY_WAITED, encodeLimits, FRAME_BUSY, decodeResponse, type InstanceLimits } from '../protocol/frame.js';
import type { HostMessage } from '../protocol/messages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ig-admission-'));
const socketPath = join(tmp, 'host.sock');
let host: ChildProcess;
let a: InstanceConnection;
let b: InstanceConnection;

before(async () => {
  host = fork(join(ROOT, 'src/runtime/host.ts'), [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socketPath, AZUREML_ENTRY_SCRIPT: 'score.mjs', AML_APP_ROOT: join(ROOT, 'test/fixtures/js-dataplane') },
  });
  let stderr = '';
  host.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const first = await new Promise<HostMessage>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`host not ready in 30 s\n${stderr}`)), 30_000);
    host.once('message', (m: HostMessage) => {
      clearTimeout(t);
      resolve(m);
    });
  });
  assert.equal(first.type, 'ready', stderr);
  a = new InstanceConnection({ socketPath });
  b = new InstanceConnection({ socketPath });
});
after(() => {
  a?.close();
  b?.close();
  host?.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

type Outcome = { busy: number } | { status: number; maxActive: number };

/** Sends a scoring request that sleeps `sleepMs`; resolves with the answer (or the BUSY reason). */
function score(conn: InstanceConnection, sleepMs: number): { id: number; done: Promise<Outcome> } {
  let id = 0;
  const done = new Promise<Outcome>((resolve, reject) => {
    id = conn.send('POST', '/score', ['content-type', 'application/json'], 'r', Buffer.from(JSON.stringify({ sleep_ms: sleepMs })), {
      deadline: performance.now() + 20_000,
      onResponse(frame) {
        if (frame[8] === FRAME_BUSY) return resolve({ busy: frame[9] });
        const r = decodeResponse(frame);
        resolve({ status: r.status, maxActive: (JSON.parse(r.body.toString()) as { max_active: number }).max_active });
      },
      onFailure: (reason) => reject(new Error(reason)),
    });
  });
  return { id, done };
}

function limits(l: InstanceLimits): void {
  a.setLimits(encodeLimits(l));
  b.setLimits(encodeLimits(l));
}

test('one running and one waiting over two connections; the rest BUSY at once', async () => {
  limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
  const t0 = performance.now();
  const sent = [score(a, 300), score(b, 300), score(a, 300), score(b, 300), score(a, 300)];
  const outcomes = await Promise.all(sent.map((s) => s.done));
  const served = outcomes.filter((o): o is { status: number; maxActive: number } => 'status' in o);
  const busy = outcomes.filter((o): o is { busy: number } => 'busy' in o);
  assert.equal(served.length, 2, JSON.stringify(outcomes));
  assert.deepEqual(busy.map((o) => o.busy), [BUSY_FULL, BUSY_FULL, BUSY_FULL]);
  // One after the other, never together.
  for (const s of served) assert.deepEqual(s, { status: 200, maxActive: 1 });
  assert.ok(performance.now() - t0 >= 590, 'the waiting request ran after the first, not beside it');
});

test('a request that waited max_queue_wait_ms is answered BUSY (WAITED), never run', async () => {
  limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 100 });
  const first = score(a, 500);
  const t0 = performance.now();
  const second = score(b, 0);
  assert.deepEqual(await second.done, { busy: BUSY_WAITED });
  const waited = performance.now() - t0;
  assert.ok(waited >= 90 && waited < 450, `answered after ${waited.toFixed(0)} ms`);
  assert.equal(((await first.done) as { status: number }).status, 200);
});

test('CANCEL takes a waiting request out of the queue: its place is free for the next', async () => {
  limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
  const running = score(a, 400);
  const waiting = score(b, 0);
  let cancelledAnswered = false;
  void waiting.done.then(() => (cancelledAnswered = true));
  // Both frames out before the CANCEL (a CANCEL written first would find nothing to cancel).
  await new Promise((r) => setTimeout(r, 50));
  b.cancel(waiting.id);
  await new Promise((r) => setTimeout(r, 50));
  const next = score(a, 0);
  assert.deepEqual(await next.done, { status: 200, maxActive: 1 }, 'the cancelled request left its place');
  assert.equal(((await running.done) as { status: number }).status, 200);
  assert.equal(cancelledAnswered, false);
});

test('the liveness route (probes) is never refused, however busy the instance is', async () => {
  limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
  const busy = [score(a, 300), score(b, 300)];
  const status = await new Promise<number>((resolve, reject) => {
    a.send('GET', '/', [], 'probe', Buffer.alloc(0), {
      deadline: performance.now() + 5000,
      onResponse: (frame) => (frame[8] === FRAME_BUSY ? reject(new Error('the probe got BUSY')) : resolve(decodeResponse(frame).status)),
      onFailure: (reason) => reject(new Error(reason)),
    });
  });
  assert.equal(status, 200);
  assert.deepEqual(await score(b, 0).done, { busy: BUSY_FULL }, 'while a scoring request is refused');
  await Promise.all(busy.map((s) => s.done));
});

test('unlimited again (max_concurrent 0): no admission at all', async () => {
  limits({ maxConcurrent: 0, maxQueued: 0, maxQueueWaitMs: 0 });
  const outcomes = await Promise.all([score(a, 200), score(b, 200), score(a, 200), score(b, 200)].map((s) => s.done));
  assert.ok(outcomes.every((o) => 'status' in o && o.status === 200), JSON.stringify(outcomes));
  assert.equal(Math.max(...outcomes.map((o) => (o as { maxActive: number }).maxActive)), 4);
});
