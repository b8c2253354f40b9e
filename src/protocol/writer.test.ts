// The one batching writer: frames of one turn leave in one writev; nothing more is handed to a stream
// whose write() returned false until 'drain'; past the bound the stream is destroyed with a clear error.

import assert from 'node:assert/strict';
import { once } from 'node:events';
import { Writable } from 'node:stream';
import { test } from 'node:test';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { FrameWriter } from './writer.js';

/** A stream that takes writes but completes none until release(): a peer that stopped reading. */
function slowStream(highWaterMark: number) {
  const held: (() => void)[] = [];
  const chunks: Buffer[] = [];
  let writev = 0;
  const stream = new Writable({
    highWaterMark,
    writev(batch, cb) {
      writev++;
      for (const b of batch) chunks.push(b.chunk as Buffer);
      held.push(cb);
    },
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk);
      held.push(cb);
    },
  });
  return {
    stream,
    chunks,
    get writevCalls() {
      return writev;
    },
    /** Completes the writes taken so far (and the ones that follow, as they come). */
    release() {
      let cb: (() => void) | undefined;
      while ((cb = held.shift()) !== undefined) cb();
    },
  };
}

test('frames pushed in one turn are written together, in order', async () => {
  const s = slowStream(1 << 20);
  const w = new FrameWriter(s.stream);
  for (let i = 0; i < 5; i++) w.push(Buffer.from([i]));
  assert.equal(s.chunks.length, 0, 'nothing before the turn ends');
  await nextTurn();
  await nextTurn();
  s.release();
  await nextTurn();
  assert.deepEqual(Buffer.concat(s.chunks), Buffer.from([0, 1, 2, 3, 4]));
});

test('backpressure: after write() returns false nothing more reaches the stream until drain', async () => {
  const s = slowStream(1024);
  const changes: boolean[] = [];
  const w = new FrameWriter(s.stream, { onBlockedChange: (b) => changes.push(b) });
  w.push(Buffer.alloc(2048, 1)); // over the high-water mark at once
  await nextTurn();
  assert.equal(w.isBlocked, true);
  assert.deepEqual(changes, [true]);
  const inStream = s.stream.writableLength;
  for (let i = 0; i < 50; i++) {
    w.push(Buffer.alloc(1024, 2));
    await nextTurn();
  }
  // Before issue 10 the router's flush wrote regardless: the stream's buffer grew by all 50 KiB.
  assert.equal(s.stream.writableLength, inStream, 'the stream got nothing more while blocked');
  assert.equal(w.queuedBytes, 50 * 1024);
  // The peer reads again: 'drain', the queue goes out (bounded: a few turns).
  for (let i = 0; i < 20 && (w.queuedBytes > 0 || s.stream.writableLength > 0); i++) {
    s.release();
    await nextTurn();
  }
  assert.equal(w.queuedBytes, 0);
  assert.equal(Buffer.concat(s.chunks).length, 2048 + 50 * 1024);
  assert.ok(changes.length >= 2 && changes[changes.length - 1] === false, JSON.stringify(changes));
});

test('a stream that never drains fails clearly at the bound, and nothing more is held', async () => {
  const s = slowStream(1024);
  const w = new FrameWriter(s.stream, { maxQueuedBytes: 64 * 1024, name: 'The instance at /tmp/x.sock' });
  const error = once(s.stream, 'error');
  for (let i = 0; i < 100 && !s.stream.destroyed; i++) {
    w.push(Buffer.alloc(4096));
    await nextTurn();
  }
  const [err] = (await error) as [Error];
  assert.match(err.message, /^The instance at \/tmp\/x\.sock is not reading: \d+ bytes are waiting to be written, over the bound of 65536; closing it\.$/);
  assert.equal(w.queuedBytes, 0);
});

test('flush() before closing writes everything, blocked or not', async () => {
  const s = slowStream(16);
  const w = new FrameWriter(s.stream);
  w.push(Buffer.alloc(32));
  await nextTurn();
  assert.equal(w.isBlocked, true);
  w.push(Buffer.alloc(8));
  w.flush();
  assert.equal(w.queuedBytes, 0);
  assert.equal(s.stream.writableLength, 40);
});
