// The framed client (the router's connection to an instance) against a real Unix socket server:
// backpressure toward an instance that stops reading, the bound on what waits for it, the id wrap that
// skips ids still in flight, and a cancelled request's slot counted once.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { InstanceConnection, type Exchange } from './client.js';
import { decodeRequest, encodeResponseHead, FRAME_CANCEL, FRAME_REQUEST, FrameReader, IdAllocator, MAX_ID } from './frame.js';

let tmp: string;
let n = 0;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ig-client-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

/** A framed instance that answers only when told, and can stop reading its socket. */
interface FakeInstance {
  server: Server;
  socketPath: string;
  requests: { id: number; body: string }[];
  cancels: number[];
  socket(): Socket;
  answer(id: number, body?: string): void;
  close(): Promise<void>;
}

async function fakeInstance(opts: { paused?: boolean; autoAnswer?: boolean } = {}): Promise<FakeInstance> {
  const socketPath = join(tmp, `i${++n}.sock`);
  const requests: { id: number; body: string }[] = [];
  const cancels: number[] = [];
  let sock: Socket | null = null;
  const server = createServer((s) => {
    sock = s;
    if (opts.paused) s.pause();
    const reader = new FrameReader((frame, type, id) => {
      if (type === FRAME_REQUEST) {
        const body = decodeRequest(frame).body.toString('latin1');
        requests.push({ id, body });
        if (opts.autoAnswer) inst.answer(id, body.length > 64 ? String(body.length) : body);
      } else if (type === FRAME_CANCEL) cancels.push(id);
    });
    s.on('data', (c: Buffer) => reader.push(c));
    s.on('error', () => {});
  });
  await new Promise<void>((res) => server.listen(socketPath, res));
  const inst: FakeInstance = {
    server,
    socketPath,
    requests,
    cancels,
    socket: () => sock!,
    answer(id, body = '') {
      const b = Buffer.from(body, 'latin1');
      sock!.write(Buffer.concat([encodeResponseHead(id, 200, [], b.length), b]));
    },
    close: () =>
      new Promise<void>((res) => {
        server.close(() => res());
        sock?.destroy();
      }),
  };
  return inst;
}

/** An exchange that records its outcome. */
function exchange(deadlineMs = 30_000) {
  const r = {
    body: null as string | null,
    failure: null as string | null,
    ex: {
      deadline: performance.now() + deadlineMs,
      onResponse(frame: Buffer) {
        r.body = frame.subarray(13).toString('latin1');
      },
      onFailure(reason: string) {
        r.failure = reason;
      },
    } as Exchange,
  };
  return r;
}

async function until(cond: () => boolean, what: string, ms = 10_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

test('backpressure: toward an instance that stops reading, the socket holds at most a turn of writes; the rest waits and goes on drain', async () => {
  const inst = await fakeInstance({ paused: true, autoAnswer: true });
  const conn = new InstanceConnection({ socketPath: inst.socketPath });
  const body = Buffer.alloc(256 * 1024, 0x61);
  const xs: ReturnType<typeof exchange>[] = [];
  let maxInSocket = 0;
  for (let i = 0; i < 64; i++) {
    const x = exchange();
    xs.push(x);
    conn.send('POST', '/score', [], `r${i}`, body, x.ex);
    await nextTurn();
    await nextTurn();
    maxInSocket = Math.max(maxInSocket, conn.backlog.inSocket);
  }
  // 16 MiB sent to a reader that reads nothing. Before issue 10 every flush wrote regardless and the
  // socket's own buffer held all of it; now the socket stops getting writes once write() says false.
  const { queued, inSocket } = conn.backlog;
  assert.ok(maxInSocket < 2 * 1024 * 1024, `socket buffer reached ${maxInSocket} bytes`);
  assert.ok(queued > 8 * 1024 * 1024, `queued in the writer: ${queued}, in the socket: ${inSocket}`);
  assert.equal(conn.congested, true);
  inst.socket().resume(); // the instance reads again: 'drain' resumes the writes
  await until(() => xs.every((x) => x.body !== null), 'every answer');
  assert.deepEqual(new Set(xs.map((x) => x.body)), new Set([String(body.length + 0)]));
  assert.equal(inst.requests.length, 64);
  assert.equal(conn.outstanding, 0);
  assert.equal(conn.backlog.queued, 0);
  conn.close();
  await inst.close();
});

test('an instance that never reads: past the bound the connection fails, and every pending request with it', async () => {
  const inst = await fakeInstance({ paused: true });
  const conn = new InstanceConnection({ socketPath: inst.socketPath }, () => {}, { maxQueuedBytes: 4 * 1024 * 1024 });
  const body = Buffer.alloc(256 * 1024);
  const xs: ReturnType<typeof exchange>[] = [];
  for (let i = 0; i < 64 && !conn.broken; i++) {
    const x = exchange();
    xs.push(x);
    conn.send('POST', '/score', [], `r${i}`, body, x.ex);
    await nextTurn();
    await nextTurn();
  }
  await until(() => conn.broken, 'the connection to fail');
  await until(() => xs.every((x) => x.failure !== null), 'every request to fail');
  // Written ones may have run ('dropped'); ones still waiting in the writer were never sent ('unavailable').
  assert.ok(xs.every((x) => x.failure === 'dropped' || x.failure === 'unavailable'), JSON.stringify(xs.map((x) => x.failure)));
  assert.ok(xs.some((x) => x.failure === 'unavailable'));
  assert.equal(conn.outstanding, 0);
  await inst.close();
});

test('ids wrap to 1 and skip ids still in flight (one rule for every id counter)', async () => {
  const inst = await fakeInstance();
  // An id space of 3 reaches its wrap in three requests; the rule is the same for 1..MAX_ID.
  const conn = new InstanceConnection({ socketPath: inst.socketPath }, () => {}, { ids: new IdAllocator(1, 3) });
  const a = exchange();
  const b = exchange();
  const c = exchange();
  conn.send('POST', '/score', [], 'a', Buffer.from('a'), a.ex);
  conn.send('POST', '/score', [], 'b', Buffer.from('b'), b.ex);
  conn.send('POST', '/score', [], 'c', Buffer.from('c'), c.ex);
  await until(() => inst.requests.length === 3, 'three requests');
  assert.deepEqual(inst.requests.map((r) => r.id), [1, 2, 3]);
  inst.answer(2, 'b');
  await until(() => b.body !== null, 'b answered');
  // Before issue 10 the counter wrapped to 1 — still a's: d's answer went to a, and a's to d.
  const d = exchange();
  conn.send('POST', '/score', [], 'd', Buffer.from('d'), d.ex);
  await until(() => inst.requests.length === 4, 'four requests');
  assert.equal(inst.requests[3].id, 2);
  inst.answer(1, 'a');
  inst.answer(2, 'd');
  inst.answer(3, 'c');
  await until(() => a.body !== null && c.body !== null && d.body !== null, 'all answered');
  assert.deepEqual([a.body, b.body, c.body, d.body], ['a', 'b', 'c', 'd']);
  conn.close();
  await inst.close();
});

test('near MAX_ID: the allocator hands out MAX_ID - 1, MAX_ID, then skips the pending 1 and 2', () => {
  const ids = new IdAllocator(MAX_ID - 1);
  const pending = new Map<number, true>([
    [1, true],
    [2, true],
  ]);
  const got = [ids.take(pending), ids.take(pending), ids.take(pending)];
  assert.deepEqual(got, [MAX_ID - 1, MAX_ID, 3]);
});

test('a request that times out is counted out once: CANCEL sent, a late answer dropped, its slot free', async () => {
  const inst = await fakeInstance();
  const conn = new InstanceConnection({ socketPath: inst.socketPath });
  const slow = exchange(50);
  conn.send('POST', '/score', [], 's', Buffer.from('s'), slow.ex);
  await until(() => slow.failure !== null, 'the deadline');
  assert.equal(slow.failure, 'timeout');
  assert.equal(conn.outstanding, 0);
  await until(() => inst.cancels.length === 1, 'the CANCEL');
  assert.deepEqual(inst.cancels, [inst.requests[0].id]);
  inst.answer(inst.requests[0].id, 'late'); // run() finished anyway: the answer is discarded
  const next = exchange();
  conn.send('POST', '/score', [], 'n', Buffer.from('n'), next.ex);
  await until(() => inst.requests.length === 2, 'the next request');
  inst.answer(inst.requests[1].id, 'n');
  await until(() => next.body !== null, 'the next answer');
  assert.equal(slow.body, null, 'the late answer reached nobody');
  assert.equal(conn.outstanding, 0, 'never negative, never counted twice');
  // cancel() of a request that is gone already changes nothing.
  conn.cancel(inst.requests[0].id);
  assert.equal(conn.outstanding, 0);
  conn.close();
  await inst.close();
});

/** A RESPONSE frame for `id` of the given raw payload (status, header count, entries): possibly malformed. */
function rawResponse(id: number, payload: Buffer): Buffer {
  const head = Buffer.alloc(9);
  head.writeUInt32BE(5 + payload.length, 0);
  head.writeUInt32BE(id, 4);
  head[8] = 2;
  return Buffer.concat([head, payload]);
}

test('a malformed RESPONSE (no status, header entries past its end) ends that connection, not the process: its requests fail dropped', async () => {
  const payloads = [
    Buffer.alloc(0), // no status at all
    Buffer.from([0, 200, 0]), // status, half a header count
    Buffer.from([0, 200, 0, 1, 0, 50, 0x61]), // one header whose name runs 50 bytes past the frame
    Buffer.from([0, 200, 0, 1, 0, 1, 0x61, 0, 9, 0x62]), // its value runs past the frame
    Buffer.from([0, 200, 0, 2, 0, 1, 0x61, 0, 1, 0x62]), // announces a second header it does not hold
  ];
  for (const payload of payloads) {
    const inst = await fakeInstance();
    const conn = new InstanceConnection({ socketPath: inst.socketPath });
    const bad = exchange();
    const other = exchange();
    conn.send('POST', '/score', [], 'b', Buffer.from('b'), bad.ex);
    conn.send('POST', '/score', [], 'o', Buffer.from('o'), other.ex);
    await until(() => inst.requests.length === 2, 'both requests');
    inst.socket().write(rawResponse(inst.requests[0].id, payload));
    await until(() => bad.failure !== null && other.failure !== null, 'both failures');
    assert.equal(bad.body, null, `payload ${payload.toString('hex')} reached nobody`);
    assert.equal(bad.failure, 'dropped');
    assert.equal(other.failure, 'dropped');
    assert.equal(conn.broken, true);
    assert.equal(conn.outstanding, 0);
    conn.close();
    await inst.close();
  }
});

test('a frame longer than maxFrameBytes ends the connection before it is buffered', async () => {
  const inst = await fakeInstance();
  const conn = new InstanceConnection({ socketPath: inst.socketPath }, undefined, { maxFrameBytes: 64 * 1024 });
  const r = exchange();
  conn.send('POST', '/score', [], 'r', Buffer.from('r'), r.ex);
  await until(() => inst.requests.length === 1, 'the request');
  // Announces 4 GiB - 1 and sends a first slice of it: the router must not wait for the rest.
  const head = Buffer.alloc(13);
  head.writeUInt32BE(0xffffffff, 0);
  head.writeUInt32BE(inst.requests[0].id, 4);
  head[8] = 2;
  head.writeUInt16BE(200, 9);
  inst.socket().write(Buffer.concat([head, Buffer.alloc(1000)]));
  await until(() => r.failure !== null, 'the failure');
  assert.equal(r.failure, 'dropped');
  assert.equal(r.body, null);
  // Within the bound, a normal answer is delivered (the cap is not a cap on ordinary frames).
  const inst2 = await fakeInstance({ autoAnswer: true });
  const conn2 = new InstanceConnection({ socketPath: inst2.socketPath }, undefined, { maxFrameBytes: 64 * 1024 });
  const ok = exchange();
  conn2.send('POST', '/score', [], 'k', Buffer.alloc(60 * 1024, 0x61), ok.ex);
  await until(() => ok.body !== null, 'the answer');
  assert.equal(ok.body, String(60 * 1024));
  conn.close();
  conn2.close();
  await inst.close();
  await inst2.close();
});

test('a short deadline behind a long one still expires on time (the sweep does not stop at the first unexpired entry)', async () => {
  const inst = await fakeInstance();
  const conn = new InstanceConnection({ socketPath: inst.socketPath });
  const long = exchange(30_000);
  const short = exchange(60);
  conn.send('POST', '/score', [], 'l', Buffer.from('l'), long.ex);
  conn.send('POST', '/score', [], 's', Buffer.from('s'), short.ex);
  const t0 = performance.now();
  await until(() => short.failure !== null, 'the short deadline', 2000);
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(short.failure, 'timeout');
  assert.equal(long.failure, null);
  assert.equal(conn.outstanding, 1);
  await until(() => inst.requests.length === 2, 'both requests');
  inst.answer(inst.requests[0].id, 'l');
  await until(() => long.body !== null, 'the long one answered');
  assert.equal(conn.outstanding, 0);
  conn.close();
  await inst.close();
});
