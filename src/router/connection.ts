// One persistent, multiplexed connection from the router to an instance host (DESIGN.md "The instance
// protocol"). Requests are framed, matched to responses by id, and written coalesced: every frame queued
// in one event-loop turn goes out in a single writev.

import { connect, type Socket } from 'node:net';
import type { InstanceAddress } from '../ir/types.js';
import { encodeBodyHead, encodeCancel, encodeRequestHeadFlat, FRAME_INSTANCE_ERROR, FRAME_REQUEST_STREAM, FRAME_RESPONSE, FrameReader, MAX_ID } from '../util/frame.js';

/** What the router hands over with each request; called exactly once with the outcome. */
export interface Exchange {
  /** Absolute time (ms, performance.now() clock) after which the request is abandoned. */
  deadline: number;
  /**
   * The instance's RESPONSE frame (util/frame.ts: responseStatus, readResponseHeadersFlat), a view that
   * stays valid: frames are never overwritten, so the exchange decodes only what it needs. Its type
   * (frame[8]) is FRAME_INSTANCE_ERROR when the instance host answered because the instance failed.
   */
  onResponse(frame: Buffer): void;
  /**
   * `reason`: 'timeout' (deadline passed), 'unavailable' (the connection failed before the request was
   * written: safe to send elsewhere), 'dropped' (lost after writing: the instance may have run it).
   */
  onFailure(reason: 'timeout' | 'unavailable' | 'dropped'): void;
}

const SWEEP_MS = 20;
/**
 * A streamed body's writes wait for the socket above this many bytes queued: the client's socket stops
 * being read until they drain (backpressure end to end; nothing piles up in the router).
 */
const STREAM_HIGH_WATER = 1024 * 1024;

export class InstanceConnection {
  /** Requests written and not yet answered: the "outstanding" in least-outstanding balancing. */
  outstanding = 0;
  private socket: Socket | null = null;
  private connected = false;
  private closing = false;
  private destroyed = false;
  private readonly pending = new Map<number, Exchange>();
  private queue: Buffer[] = [];
  /** Ids of the requests in `queue`, not yet written to the socket. */
  private queuedIds: number[] = [];
  /** The connection failed on its own; the router avoids it until the routing table changes. */
  broken = false;
  private flushScheduled = false;
  /** Bytes of streamed body parts queued since the last flush. */
  private queuedBodyBytes = 0;
  /** Called once the writes drained below STREAM_HIGH_WATER (or the connection failed). */
  private drainWaiters: (() => void)[] = [];
  private nextId = 1;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly reader: FrameReader;

  constructor(readonly address: InstanceAddress, private readonly onIdleAfterClose: (c: InstanceConnection) => void = () => {}) {
    this.reader = new FrameReader((frame, type, id) => {
      if (type !== FRAME_RESPONSE && type !== FRAME_INSTANCE_ERROR) return;
      const ex = this.pending.get(id);
      if (ex === undefined) return; // answered after its deadline: already failed
      this.pending.delete(id);
      this.outstanding--;
      ex.onResponse(frame);
      if (this.closing && this.pending.size === 0) this.destroy();
    });
  }

  get isOpen(): boolean {
    return !this.closing;
  }

  /** `headers`: name, value pairs (lower-case names); the request's `x-request-id` is appended. */
  send(method: string, url: string, headers: readonly string[], requestId: string, body: Buffer, ex: Exchange): void {
    if (this.closing) {
      ex.onFailure('unavailable');
      return;
    }
    if (this.socket === null) this.open();
    const id = this.nextId;
    this.nextId = id >= MAX_ID ? 1 : id + 1;
    this.pending.set(id, ex);
    this.outstanding++;
    this.queue.push(encodeRequestHeadFlat(id, method, url, headers, 'x-request-id', requestId, body.length), body);
    this.queuedIds.push(id);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    if (this.sweepTimer === null) this.sweepTimer = setInterval(this.sweep, SWEEP_MS).unref();
  }

  /**
   * Starts a request whose body follows in parts (sendBody), for bodies too large to hold whole. Returns
   * its id, or 0 if the connection is closing (the exchange has been failed 'unavailable').
   */
  sendStream(method: string, url: string, headers: readonly string[], requestId: string, ex: Exchange): number {
    if (this.closing) {
      ex.onFailure('unavailable');
      return 0;
    }
    if (this.socket === null) this.open();
    const id = this.nextId;
    this.nextId = id >= MAX_ID ? 1 : id + 1;
    this.pending.set(id, ex);
    this.outstanding++;
    this.queue.push(encodeRequestHeadFlat(id, method, url, headers, 'x-request-id', requestId, 0, FRAME_REQUEST_STREAM));
    this.queuedIds.push(id);
    this.scheduleFlush();
    return id;
  }

  /** The next part of a streamed body; dropped if the request is no longer pending (answered, failed, timed out). */
  sendBody(id: number, part: Buffer, last: boolean): void {
    if (!this.pending.has(id) || this.socket === null) return;
    this.queue.push(encodeBodyHead(id, part.length, last));
    if (part.length > 0) this.queue.push(part);
    this.queuedBodyBytes += part.length;
    this.scheduleFlush();
  }

  /** Abandons a request (its client went away): the instance gets a CANCEL; the exchange is not called. */
  cancel(id: number): void {
    if (!this.pending.delete(id)) return;
    this.outstanding--;
    if (this.socket !== null) {
      this.queue.push(encodeCancel(id));
      this.scheduleFlush();
    }
    if (this.closing && this.pending.size === 0) this.destroy();
  }

  /** Streamed writes are over the high-water mark (or not connected yet): the sender should wait. */
  get congested(): boolean {
    const s = this.socket;
    return s !== null && (!this.connected || this.queuedBodyBytes + s.writableLength > STREAM_HIGH_WATER);
  }

  /** Calls `fn` once the connection is no longer congested, or is gone. */
  whenDrained(fn: () => void): void {
    if (!this.congested) fn();
    else this.drainWaiters.push(fn);
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || this.congested) return;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of w) fn();
  }

  private scheduleFlush(): void {
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
    if (this.sweepTimer === null) this.sweepTimer = setInterval(this.sweep, SWEEP_MS).unref();
  }

  /** Stops taking requests; closes once the in-flight ones are answered or expire. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.pending.size === 0) this.destroy();
  }

  private open(): void {
    const socket = connect(this.address.socketPath);
    socket.setNoDelay(true);
    socket.on('connect', () => {
      this.connected = true;
      if (this.queue.length > 0 && !this.flushScheduled) this.flush();
    });
    socket.on('drain', () => this.wakeDrainWaiters());
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', () => {}); // 'close' follows and does the work
    socket.on('close', () => {
      if (!this.closing) this.broken = true;
      this.socket = null;
      this.connected = false;
      const unwritten = new Set(this.queuedIds);
      this.queue = [];
      this.queuedIds = [];
      this.queuedBodyBytes = 0;
      const failed = [...this.pending];
      this.pending.clear();
      this.outstanding = 0;
      for (const [id, ex] of failed) ex.onFailure(unwritten.has(id) ? 'unavailable' : 'dropped');
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const fn of waiters) fn(); // their streams' requests have just failed: let them finish
      if (this.closing) this.destroy();
    });
    this.socket = socket;
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const socket = this.socket;
    if (socket === null || !this.connected || this.queue.length === 0) return;
    const q = this.queue;
    this.queue = [];
    this.queuedIds = [];
    this.queuedBodyBytes = 0;
    socket.cork();
    for (let i = 0; i < q.length; i++) socket.write(q[i]);
    socket.uncork();
    if (this.drainWaiters.length > 0) this.wakeDrainWaiters();
  };

  /** Pending entries are in send order; with one deadline per deployment that is deadline order too. */
  private readonly sweep = (): void => {
    if (this.pending.size === 0) {
      if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
      this.sweepTimer = null;
      return;
    }
    const now = performance.now();
    for (const [id, ex] of this.pending) {
      if (ex.deadline > now) break;
      this.pending.delete(id);
      this.outstanding--;
      if (this.socket !== null && this.connected) this.socket.write(encodeCancel(id));
      ex.onFailure('timeout');
    }
    if (this.closing && this.pending.size === 0) this.destroy();
  };

  private destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closing = true;
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
    const s = this.socket;
    this.socket = null;
    s?.destroy();
    this.onIdleAfterClose(this);
  }
}
