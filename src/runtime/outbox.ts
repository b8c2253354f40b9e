// Coalesced, backpressure-aware writes (DESIGN.md "The instance protocol": writes coalesced per
// event-loop turn; backpressure when write() returns false).
//
// Every frame written during one turn of the event loop is queued; one setImmediate per turn flushes all
// queues, each with cork()/uncork() so a stream's frames leave in one writev() system call. setImmediate
// (not queueMicrotask) is deliberate: it runs after the I/O phase, so the answers to every frame that
// arrived in this turn's reads — including async run() results that settle in microtasks — share the
// write. The measured cost of one write per frame instead is what made the framed protocol worth it
// (reference/perf-baselines.md F2).
//
// When write() returns false the stream's buffer is over its high-water mark: the Outbox reports
// `blocked` through its callback and the owner stops reading from whatever feeds this stream, until
// 'drain' reports it unblocked. Nothing is dropped: node keeps what was already written.

import type { Writable } from 'node:stream';

const dirty: Outbox[] = [];
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  // An Outbox flushed here may be pushed to again only from later callbacks, never re-entrantly, so
  // iterating and then truncating is safe.
  for (let i = 0; i < dirty.length; i++) dirty[i].flush();
  dirty.length = 0;
}

export class Outbox {
  private readonly queue: Buffer[] = [];
  private queued = false;
  private blocked = false;

  /**
   * @param stream where the frames go (a socket, or a worker's stdin pipe)
   * @param onBlockedChange called with true when write() returned false, with false on 'drain'
   */
  constructor(
    private readonly stream: Writable,
    private readonly onBlockedChange: (blocked: boolean) => void,
  ) {
    stream.on('drain', () => {
      if (this.blocked) {
        this.blocked = false;
        this.onBlockedChange(false);
      }
    });
  }

  get isBlocked(): boolean {
    return this.blocked;
  }

  /** Bytes or frames waiting for this turn's flush. */
  get queuedCount(): number {
    return this.queue.length;
  }

  push(buf: Buffer): void {
    this.queue.push(buf);
    this.schedule();
  }

  /** A frame head and its body, written as two buffers (the body is never copied). */
  push2(head: Buffer, body: Buffer): void {
    this.queue.push(head);
    if (body.length > 0) this.queue.push(body);
    this.schedule();
  }

  private schedule(): void {
    if (this.queued) return;
    this.queued = true;
    dirty.push(this);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flushAll);
    }
  }

  /** Writes everything queued now. Called by the per-turn flush; callable directly before closing. */
  flush(): void {
    this.queued = false;
    const q = this.queue;
    if (q.length === 0) return;
    const stream = this.stream;
    if (stream.destroyed || stream.writableEnded) {
      q.length = 0;
      return;
    }
    let ok: boolean;
    if (q.length === 1) {
      ok = stream.write(q[0]);
    } else {
      stream.cork();
      ok = true;
      for (let i = 0; i < q.length; i++) ok = stream.write(q[i]);
      stream.uncork();
    }
    q.length = 0;
    if (!ok && !this.blocked) {
      this.blocked = true;
      this.onBlockedChange(true);
    }
  }
}
