// The router's side of instance admission (RouterOptions.instanceAdmission, docs/router-scale.md), against
// stand-in instance hosts that answer as told: LIMITS goes first on every connection; BUSY (FULL) sends the
// request to the next instance once, and 429 with Azure's message when none has room; BUSY (WAITED) is a
// 429 for waiting too long; the router keeps no queue of its own when its view of every instance is full;
// and while every connection is down (an instance restarting) requests wait for it instead of 429.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { sha256Hex } from '../compile/routing.js';
import type { EndpointRoute } from '../ir/types.js';
import { BUSY_FULL, BUSY_WAITED, decodeLimits, encodeBusy, encodeResponseHead, FRAME_LIMITS, FRAME_REQUEST, FrameReader, type InstanceLimits } from '../protocol/frame.js';
import { Router } from './router.js';

const KEY = 'instance-admission-test-key-0123456789';
const tmp = mkdtempSync(join(tmpdir(), 'ig-inst-adm-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
let hosts = 0;

type Mode = 'ok' | 'full' | 'waited' | 'hold';

/** A stand-in instance host: answers scoring requests as `mode` says, and keeps the frame types it got per connection. */
class FakeHost {
  readonly socketPath = join(tmp, `h${++hosts}.sock`);
  mode: Mode = 'ok';
  /** Per connection, the types of the frames it sent, in order. */
  readonly frames: number[][] = [];
  limits: InstanceLimits | null = null;
  served = 0;
  private server: Server | null = null;
  private readonly sockets = new Set<Socket>();

  constructor(readonly name: string) {}

  async start(): Promise<this> {
    this.server = createServer((s) => {
      this.sockets.add(s);
      const types: number[] = [];
      this.frames.push(types);
      const reader = new FrameReader((frame, type, id) => {
        types.push(type);
        if (type === FRAME_LIMITS) this.limits = decodeLimits(frame);
        if (type !== FRAME_REQUEST) return;
        if (this.mode === 'full') s.write(encodeBusy(id, BUSY_FULL));
        else if (this.mode === 'waited') s.write(encodeBusy(id, BUSY_WAITED));
        else if (this.mode === 'ok') {
          this.served++;
          const body = Buffer.from(JSON.stringify({ host: this.name }));
          s.write(Buffer.concat([encodeResponseHead(id, 200, [['content-type', 'application/json']], body.length), body]));
        }
      });
      s.on('data', (c: Buffer) => reader.push(c));
      s.on('error', () => {});
      s.on('close', () => this.sockets.delete(s));
    });
    await new Promise<void>((r) => this.server!.listen(this.socketPath, r));
    return this;
  }

  async stop(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    this.server = null;
  }
}

function endpoint(instances: FakeHost[], mc: number): EndpointRoute {
  return {
    name: 'ep',
    authMode: 'key',
    keyHashes: [sha256Hex(KEY)],
    deployments: [
      {
        name: 'blue',
        requestTimeoutMs: 10_000,
        maxConcurrentRequestsPerInstance: mc,
        maxQueueWaitMs: 5_000,
        scaleFromZero: false,
        instances: instances.map((h) => ({ instanceId: h.name, transport: 'framed' as const, socketPath: h.socketPath })),
      },
    ],
    traffic: [{ deployment: 'blue', weight: 100 }],
    mirror: null,
  };
}

async function withRouter(instances: FakeHost[], mc: number, body: (score: () => Promise<{ status: number; body: string; retryAfter: string | null }>) => Promise<void>): Promise<void> {
  const router = new Router({ instanceAdmission: true });
  router.setTable({ version: 1, endpoints: [endpoint(instances, mc)] });
  const { port } = await router.listen(0, '127.0.0.1');
  try {
    await body(async () => {
      const r = await fetch(`http://127.0.0.1:${port}/endpoints/ep/score`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' }, body: '{}' });
      return { status: r.status, body: await r.text(), retryAfter: r.headers.get('retry-after') };
    });
  } finally {
    await router.close();
    for (const h of instances) await h.stop();
  }
}

test('LIMITS first on the connection; BUSY (FULL) goes to the next instance; none with room: Azure\'s 429', async () => {
  const a = await new FakeHost('a').start();
  const b = await new FakeHost('b').start();
  await withRouter([a, b], 3, async (score) => {
    a.mode = 'full';
    b.mode = 'full';
    // Both instances refuse, whichever is tried first: one try each, then the deployment's bound.
    const refused = await score();
    assert.equal(refused.status, 429, refused.body);
    assert.equal(refused.retryAfter, '1');
    assert.match(refused.body, /Too many pending requests for deployment 'blue': at most 12 \(2 × max_concurrent_requests_per_instance × instances\)/);
    // One refuses: the request is served by the other, whichever was tried first.
    a.mode = 'ok';
    for (let i = 0; i < 4; i++) assert.deepEqual(JSON.parse((await score()).body), { host: 'a' });
    for (const h of [a, b]) {
      assert.deepEqual(h.limits, { maxConcurrent: 3, maxQueued: 3, maxQueueWaitMs: 5_000 });
      for (const types of h.frames) assert.equal(types[0], FRAME_LIMITS, `${h.name}: the first frame of a connection`);
    }
  });
});

test('BUSY (WAITED) is a 429 for waiting too long, not tried elsewhere', async () => {
  const a = await new FakeHost('a').start();
  const b = await new FakeHost('b').start();
  await withRouter([a, b], 1, async (score) => {
    a.mode = 'waited';
    b.mode = 'waited';
    const r = await score();
    assert.equal(r.status, 429, r.body);
    assert.match(r.body, /waited 5000 ms \(max_queue_wait_ms\)/);
    assert.equal(a.served + b.served, 0);
  });
});

test('no router queue: past its view of every instance (running + waiting there), 429 at once', async () => {
  const a = await new FakeHost('a').start();
  await withRouter([a], 1, async (score) => {
    a.mode = 'hold';
    // The instance may hold 2 (one running, one waiting): the router sends it two, and refuses the third
    // itself, without waiting for any answer.
    const held = [score(), score()];
    const t0 = performance.now();
    const third = await score();
    assert.equal(third.status, 429, third.body);
    assert.ok(performance.now() - t0 < 2000, 'refused at once, not queued');
    await a.stop(); // the held ones fail with the connection
    await Promise.allSettled(held);
  });
});

test('every connection down (the instance restarting): a request waits for it, not 429', async () => {
  const a = new FakeHost('a'); // not listening yet
  await withRouter([a], 1, async (score) => {
    // The first request finds no socket (502, nothing else to try) and puts the connection in its 1 s back-off.
    const first = await score();
    assert.equal(first.status, 502, first.body);
    // Sent while it is down: the instance is not full, it is away, so the request waits for it.
    const second = score();
    await a.start();
    const r = await second;
    assert.equal(r.status, 200, r.body);
  });
});
