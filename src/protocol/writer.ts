// The one batching writer of the instance protocol (DESIGN.md "The instance protocol": writes coalesced
// per event-loop turn; backpressure when write() returns false). Used by the router's connection to an
// instance (client.ts), by the instance host's answers to the router, and by the host's writes to each
// Python worker's stdin.
//
// Every frame pushed during one turn of the event loop is queued; one setImmediate per turn flushes all
// writers, each with cork()/uncork() so a stream's frames leave in one writev() system call. setImmediate
// (not queueMicrotask) is deliberate: it runs after the I/O phase, so the answers to every frame that
// arrived in this turn's reads — including async run() results that settle in microtasks — share the
// write. The measured cost of one write per frame instead is what made the framed protocol worth it
// (reference/perf-baselines.md F2).
//
// Backpressure, as Node's own stream.pipe() does it: when write() returns false the stream is over its
// high-water mark, and nothing more is handed to it until 'drain'; frames pushed meanwhile wait here, and
// the owner is told (`onBlockedChange(true)`) so it stops reading whatever feeds this stream. On 'drain'
// the queue is written and the owner told `false`. Before issue 10 the router's flush ignored write()'s
// return value: a slow instance made the router's socket buffer grow without limit.
//
// A bound with a clear failure: if what waits here plus what the stream holds passes `maxQueuedBytes`,
// the peer is not reading at all; the writer destroys the stream with an error saying so (the owner's
// 'close' handling then fails what was pending on it) rather than holding memory for ever.

import type { Writable } from 'node:stream';

/** Default bound on bytes held for one stream (queued here + in the stream's own buffer). */
export const DEFAULT_MAX_QUEUED_BYTES = 256 * 1024 * 1024;

const dirty: FrameWriter[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  // A writer flushed here may be pushed to again only from later callbacks, never re-entrantly, so
  // iterating and then truncating is safe.
  for (let i = 0; i < dirty.length; i++) dirty[i].flushTurn();
  dirty.length = 0;
}

export interface FrameWriterOptions {
  /** Called with true when write() returned false (stop feeding), with false on 'drain'. */
  onBlockedChange?: (blocked: boolean) => void;
  /** Called after queued frames were handed to the stream (the owner learns they are "written"). */
  onWritten?: () => void;
  /** Bound on bytes queued here plus the stream's writableLength; past it the stream is destroyed. */
  maxQueuedBytes?: number;
  /** What the stream is, for the overflow error ("instance socket /x.sock", "Python worker 123 stdin"). */
  name?: string;
}

export class FrameWriter {
  private queue: Buffer[] = [];
  private bytes = 0;
  private scheduled = false;
  private blocked = false;
  /** Held by the owner (e.g. a socket still connecting): queue, do not write. */
  private held = false;
  private readonly maxQueuedBytes: number;

  constructor(
    private readonly stream: Writable,
    private readonly opts: FrameWriterOptions = {},
  ) {
    this.maxQueuedBytes = opts.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    stream.on('drain', () => {
      if (!this.blocked) return;
      this.blocked = false;
      this.write();
      // write() may have blocked again; only report the change if it did not.
      if (!this.blocked) this.opts.onBlockedChange?.(false);
    });
  }

  /** write() returned false and 'drain' has not come yet. */
  get isBlocked(): boolean {
    return this.blocked;
  }

  /** Bytes waiting here (not yet handed to the stream). */
  get queuedBytes(): number {
    return this.bytes;
  }

  /** Frames (or frame parts) waiting here. */
  get queuedCount(): number {
    return this.queue.length;
  }

  push(buf: Buffer): void {
    if (this.stream.destroyed) return; // its owner's 'close' handling fails what was pending
    this.queue.push(buf);
    this.bytes += buf.length;
    this.schedule();
  }

  /** A frame head and its body, written as two buffers (the body is never copied). */
  push2(head: Buffer, body: Buffer): void {
    if (this.stream.destroyed) return;
    this.queue.push(head);
    if (body.length > 0) this.queue.push(body);
    this.bytes += head.length + body.length;
    this.schedule();
  }

  /** Queue without writing until release() (a socket that is still connecting). */
  hold(): void {
    this.held = true;
  }

  release(): void {
    this.held = false;
    if (this.queue.length > 0) this.write();
  }

  /** Forgets what is queued (the stream is gone); returns nothing written. */
  clear(): void {
    this.queue = [];
    this.bytes = 0;
  }

  private schedule(): void {
    if (this.bytes + this.stream.writableLength > this.maxQueuedBytes) {
      this.overflow();
      return;
    }
    if (this.scheduled) return;
    this.scheduled = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  private overflow(): void {
    const held = this.bytes + this.stream.writableLength;
    this.clear();
    if (!this.stream.destroyed) {
      this.stream.destroy(
        new Error(`${this.opts.name ?? 'The stream'} is not reading: ${held} bytes are waiting to be written, over the bound of ${this.maxQueuedBytes}; closing it.`),
      );
    }
  }

  /** The per-turn flush: writes unless blocked (then 'drain' will) or held. */
  flushTurn(): void {
    this.scheduled = false;
    if (!this.blocked && !this.held) this.write();
  }

  /** Writes everything queued now, even past the high-water mark: only before closing the stream. */
  flush(): void {
    this.write();
  }

  private write(): void {
    const q = this.queue;
    if (q.length === 0) return;
    const stream = this.stream;
    this.queue = [];
    this.bytes = 0;
    if (stream.destroyed || stream.writableEnded) return;
    let ok: boolean;
    if (q.length === 1) {
      ok = stream.write(q[0]);
    } else {
      stream.cork();
      ok = true;
      for (let i = 0; i < q.length; i++) ok = stream.write(q[i]);
      stream.uncork();
    }
    this.opts.onWritten?.();
    if (!ok && !this.blocked) {
      this.blocked = true;
      this.opts.onBlockedChange?.(true);
    }
  }
}
