// Instance admission at real instance hosts (./admission.ts and python/infergate_host.py, docs/
// router-scale.md): two connections stand for two routers; after LIMITS the host runs at most
// max_concurrent at once over both, holds at most max_queued more, answers BUSY beyond them, lets probes
// through, honours CANCEL (and, host.ts, max_queue_wait_ms) for what it holds, and drops admission again
// when told the deployment is unlimited. The Node host (a JavaScript module) and the Python host, direct
// mode and relay (a score.py).

import assert from 'node:assert/strict';
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InstanceConnection } from '../protocol/client.js';
import { connect } from 'node:net';
import { once } from 'node:events';
import { BUSY_FULL, BUSY_WAITED, encodeLimits, encodeRequestHead, FRAME_BUSY, FrameReader, decodeResponse, type InstanceLimits } from '../protocol/frame.js';
import { InstanceAdmission, type GatedPeer } from './admission.js';
import type { Peer } from './scorer.js';
import { HOST_MESSAGE_PREFIX, type HostMessage } from '../protocol/messages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const tmp = mkdtempSync(join(tmpdir(), 'ig-admission-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

// node-python: the Node host running a score.py (its Python worker pool, the process backend's Python path).
type Kind = 'node' | 'node-python' | 'python-direct' | 'python-relay';
type Outcome = { busy: number } | { status: number; maxActive: number };

/** Starts a host of `kind` and waits for its ready message. */
async function startHost(kind: Kind, socketPath: string): Promise<ChildProcess> {
  const js = join(ROOT, 'test/fixtures/js-dataplane');
  const py = join(ROOT, 'test/fixtures/py-behaviours');
  const env: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socketPath, AZUREML_ENTRY_SCRIPT: kind === 'node' ? 'score.mjs' : 'score.py', AML_APP_ROOT: kind === 'node' ? js : py };
  if (kind === 'python-relay') env.INFERGATE_PYTHON_HOST_RELAY = '1';
  const child =
    kind === 'node' || kind === 'node-python'
      ? fork(join(ROOT, 'src/runtime/host.ts'), [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env })
      : spawn('/usr/bin/python3', ['-u', join(ROOT, 'src/runtime/python/infergate_host.py')], { cwd: py, stdio: ['ignore', 'pipe', 'pipe'], env });
  let out = '';
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const first = await new Promise<HostMessage>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`host not ready in 30 s\n${stderr}`)), 30_000);
    const done = (m: HostMessage) => {
      clearTimeout(t);
      resolve(m);
    };
    child.once('message', done);
    child.stdout!.on('data', (c: Buffer) => {
      out += c.toString();
      const line = out.split('\n').find((l) => l.startsWith(HOST_MESSAGE_PREFIX));
      if (line !== undefined && out.includes(line + '\n')) done(JSON.parse(line.slice(HOST_MESSAGE_PREFIX.length)) as HostMessage);
    });
  });
  assert.equal(first.type, 'ready', stderr);
  return child;
}

for (const kind of ['node', 'node-python', 'python-direct', 'python-relay'] as const) {
  describe(`instance admission: ${kind}`, () => {
    const socketPath = join(tmp, `${kind}.sock`);
    let host: ChildProcess;
    let a: InstanceConnection;
    let b: InstanceConnection;

    before(async () => {
      host = await startHost(kind, socketPath);
      a = new InstanceConnection({ socketPath });
      b = new InstanceConnection({ socketPath });
      // Both connected before the tests: the frames of a burst then reach the host together (the Python
      // host, direct mode, reads only between two run() calls, as a single thread does).
      assert.deepEqual(await Promise.all([probe(a), probe(b)]), [200, 200]);
    });
    after(() => {
      a?.close();
      b?.close();
      host?.kill('SIGKILL');
    });

    /** A scoring request whose run() sleeps `sleepMs`; resolves with the answer (or the BUSY reason). */
    function score(conn: InstanceConnection, sleepMs: number): { id: number; done: Promise<Outcome> } {
      let id = 0;
      const body = kind === 'node' ? { sleep_ms: sleepMs } : { op: 'sleep', seconds: sleepMs / 1000 };
      const done = new Promise<Outcome>((resolve, reject) => {
        id = conn.send('POST', '/score', ['content-type', 'application/json'], 'r', Buffer.from(JSON.stringify(body)), {
          deadline: performance.now() + 20_000,
          onResponse(frame) {
            if (frame[8] === FRAME_BUSY) return resolve({ busy: frame[9] });
            const r = decodeResponse(frame);
            // The Python hosts run one request at a time (one worker): only the JavaScript module counts.
            const maxActive = kind === 'node' ? (JSON.parse(r.body.toString()) as { max_active: number }).max_active : 1;
            resolve({ status: r.status, maxActive });
          },
          onFailure: (reason) => reject(new Error(reason)),
        });
      });
      return { id, done };
    }

    /** The liveness route, as the backend's probe sends it; resolves with its status. */
    function probe(conn: InstanceConnection): Promise<number> {
      return new Promise<number>((resolve, reject) => {
        conn.send('GET', '/', [], 'probe', Buffer.alloc(0), {
          deadline: performance.now() + 5000,
          onResponse: (frame) => (frame[8] === FRAME_BUSY ? reject(new Error('the probe got BUSY')) : resolve(decodeResponse(frame).status)),
          onFailure: (reason) => reject(new Error(reason)),
        });
      });
    }

    function limits(l: InstanceLimits): void {
      a.setLimits(encodeLimits(l));
      b.setLimits(encodeLimits(l));
    }

    test('one running and one waiting over two connections; the rest BUSY at once', async () => {
      limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
      // The Python host in direct mode is one thread: it reads only between two run() calls, so what comes
      // while one runs is decided when it returns. The burst is sent during such a run(), so that both
      // connections' frames are read in the same turn, before any of them runs.
      const blocker = kind === 'python-direct' ? score(a, 300) : null;
      if (blocker !== null) await new Promise((r) => setTimeout(r, 100));
      const t0 = performance.now();
      const sent = [score(a, 300), score(b, 300), score(a, 300), score(b, 300), score(a, 300)];
      const outcomes = await Promise.all(sent.map((s) => s.done));
      if (blocker !== null) assert.equal(((await blocker.done) as { status: number }).status, 200);
      const served = outcomes.filter((o): o is { status: number; maxActive: number } => 'status' in o);
      const busy = outcomes.filter((o): o is { busy: number } => 'busy' in o);
      assert.equal(served.length, 2, JSON.stringify(outcomes));
      assert.deepEqual(busy.map((o) => o.busy), [BUSY_FULL, BUSY_FULL, BUSY_FULL]);
      // One after the other, never together.
      for (const s of served) assert.deepEqual(s, { status: 200, maxActive: 1 });
      assert.ok(performance.now() - t0 >= 590, 'the waiting request ran after the first, not beside it');
    });

    if (kind === 'node' || kind === 'node-python') {
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
    }

    if (kind !== 'python-relay') {
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
    }

    test('the liveness route (probes) is never refused, however busy the instance is', async () => {
      limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
      // In one write: the bound is full when the probe and the last request arrive.
      const busy = [score(a, 300), score(a, 300)];
      const probed = probe(a);
      const refused = score(a, 0);
      assert.equal(await probed, 200);
      assert.deepEqual(await refused.done, { busy: BUSY_FULL }, 'while a scoring request is refused');
      for (const s of busy) assert.equal(((await s.done) as { status: number }).status, 200);
    });

    test('unlimited again (max_concurrent 0): no admission at all', async () => {
      limits({ maxConcurrent: 0, maxQueued: 0, maxQueueWaitMs: 0 });
      const outcomes = await Promise.all([score(a, 200), score(b, 200), score(a, 200), score(b, 200)].map((s) => s.done));
      assert.ok(outcomes.every((o) => 'status' in o && o.status === 200), JSON.stringify(outcomes));
      if (kind === 'node') assert.equal(Math.max(...outcomes.map((o) => (o as { maxActive: number }).maxActive)), 4);
    });

    // Last: the dead connection's request goes on running in the scorer after it (the fixture's max_active
    // would show it to the tests above).
    if (kind === 'node' || kind === 'node-python') {
      test('a router connection that dies takes its places with it: the other routers are served, not refused', async () => {
        limits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
        // A third router, killed (a router worker that crashed) with one request running at the host, one
        // waiting, and a third refused: that BUSY says the host holds the other two.
        const dead = connect(socketPath);
        await once(dead, 'connect');
        const body = Buffer.from(JSON.stringify(kind === 'node' ? { sleep_ms: 4000 } : { op: 'sleep', seconds: 4 }));
        dead.write(encodeLimits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 }));
        for (const id of [1, 2, 3]) dead.write(Buffer.concat([encodeRequestHead(id, 'POST', '/score', [['content-type', 'application/json']], body.length), body]));
        const refused = await new Promise<number>((resolve) => {
          const reader = new FrameReader((frame, type, id) => type === FRAME_BUSY && resolve(id));
          dead.on('data', (c: Buffer) => reader.push(c));
        });
        assert.equal(refused, 3);
        const closedAt = performance.now();
        dead.destroy();
        // Before its running request ends (4 s), the places are free again: what it held waiting is not
        // counted any more. The Node host's single Python worker still has the dead request to finish, so
        // the new one is answered after it there; never refused for good (its answer goes nowhere).
        let outcome: Outcome = { busy: BUSY_FULL };
        while ('busy' in outcome && performance.now() - closedAt < 10_000) {
          outcome = await score(b, 0).done;
          if ('busy' in outcome) await new Promise((r) => setTimeout(r, 20));
        }
        const took = performance.now() - closedAt;
        assert.equal((outcome as { status: number }).status, 200, JSON.stringify(outcome));
        if (kind === 'node') assert.ok(took < 3000, `served ${took.toFixed(0)} ms after the connection closed`);
      });
    }
  });
}

// The gate alone, with a scorer that never answers a connection that closed (the Python worker pool drops
// those answers without a word): only the gate's own sweep can give their places back.
describe('instance admission: connections that close', () => {
  const frame = encodeRequestHead(1, 'POST', '/score', [], 0);
  type FakePeer = Peer & { closed: boolean; busy: number[] };
  const peer = (): FakePeer => {
    const p = { closed: false, busy: [] as number[], respond() {}, sendFrame: (f: Buffer) => void p.busy.push(f.readUInt32BE(4)) };
    return p;
  };

  /** A gate with one running and one waiting place, two connections to it, and the ids it ran. */
  function gate(): { adm: InstanceAdmission; ran: number[]; a: FakePeer; b: FakePeer; ga: GatedPeer; gb: GatedPeer } {
    const ran: number[] = [];
    const adm = new InstanceAdmission((_p, _f, id) => ran.push(id));
    adm.setLimits({ maxConcurrent: 1, maxQueued: 1, maxQueueWaitMs: 0 });
    const a = peer();
    const b = peer();
    return { adm, ran, a, b, ga: adm.peer(a), gb: adm.peer(b) };
  }

  test('what waits behind the running request of a closed connection runs without any new request coming', async () => {
    const { adm, ran, a, ga, gb } = gate();
    try {
      adm.request(ga, frame, 1);
      adm.request(gb, frame, 2);
      assert.deepEqual(ran, [1]);
      a.closed = true;
      const t0 = performance.now();
      while (ran.length < 2 && performance.now() - t0 < 2000) await new Promise((r) => setTimeout(r, 5));
      assert.deepEqual(ran, [1, 2], "the waiting request started once the running one's connection closed");
      assert.equal(adm.running, 1);
    } finally {
      adm.close();
    }
  });

  test('the waiting requests of a closed connection leave the queue: the next one waits instead of BUSY', () => {
    const { adm, a, b, ga, gb } = gate();
    try {
      adm.request(gb, frame, 1);
      adm.request(ga, frame, 2);
      adm.request(gb, frame, 3);
      assert.deepEqual(b.busy, [3], 'full: one running, one waiting');
      a.closed = true;
      adm.request(gb, frame, 4);
      assert.deepEqual(b.busy, [3], "the closed connection's place in the queue is free");
      assert.equal(adm.waiting, 1);
    } finally {
      adm.close();
    }
  });
});
