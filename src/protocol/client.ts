// The framed client: one persistent, multiplexed connection to an instance host (DESIGN.md "The instance
// protocol"), used by the router. Requests are framed, matched to responses by id (IdAllocator: never an
// id still pending), and written through the one batching writer (writer.ts): every frame queued in one
// event-loop turn goes out in a single writev, and nothing more is handed to a socket that is not
// draining.

import { connect, type Socket } from 'node:net';
import { encodeBodyHead, encodeCancel, encodeRequestHeadFlat, FRAME_BUSY, FRAME_INSTANCE_ERROR, FRAME_REQUEST_STREAM, FRAME_RESPONSE, FrameReader, HEADER_BYTES, IdAllocator, isWellFormedResponse } from './frame.js';
import { PendingTable } from './pending.js';
import { FrameWriter } from './writer.js';

/**
 * Where an instance host listens (the IR's InstanceAddress has these shapes; protocol/ does not import ir/):
 * a Unix socket on this machine, or a TCP address (a pod on a Kubernetes compute, docs/kubernetes.md).
 */
export type FramedAddress = { readonly socketPath: string } | { readonly host: string; readonly port: number };

/** How an address reads in messages: the socket path, or host:port. */
export function framedTarget(a: FramedAddress): string {
  return 'socketPath' in a ? a.socketPath : `${a.host}:${a.port}`;
}

export interface InstanceConnectionOptions {
  /** The request id space (tests start it near its end to reach the wrap). */
  ids?: IdAllocator;
  /** Bound on bytes waiting to be written to this instance; past it the connection fails (writer.ts). */
  maxQueuedBytes?: number;
  /**
   * Largest frame accepted from the instance (length field included). A larger one ends the connection
   * (its requests fail 'dropped'): the instance is untrusted code and must not make the router buffer
   * up to the 4 GiB a frame's u32 length allows.
   */
  maxFrameBytes?: number;
  /** How long a connection that failed on its own is avoided before it may be opened again (default 1 s). */
  retryAfterMs?: number;
  /** Called when a failed connection may be used again (the router serves what queued meanwhile). */
  onUsable?: () => void;
}

/** What the router hands over with each request; called exactly once with the outcome. */
export interface Exchange {
  /** Absolute time (ms, performance.now() clock) after which the request is abandoned. */
  deadline: number;
  /**
   * The instance's RESPONSE frame (protocol/frame.ts: responseStatus, readResponseHeadersFlat), a view that
   * stays valid: frames are never overwritten, so the exchange decodes only what it needs. Its type
   * (frame[8]) is FRAME_INSTANCE_ERROR when the instance host answered because the instance failed, and
   * FRAME_BUSY (frame[9] the reason, no RESPONSE payload) when it did not take the request (instance admission).
   */
  onResponse(frame: Buffer): void;
  /**
   * `reason`: 'timeout' (deadline passed), 'unavailable' (the connection failed before the request was
   * written: safe to send elsewhere), 'dropped' (lost after writing: the instance may have run it).
   */
  onFailure(reason: 'timeout' | 'unavailable' | 'dropped'): void;
}

/**
 * What the router uses of a connection to one instance, whatever its transport: the framed client below
 * (infergate's own hosts) and HttpInstanceConnection (./http-client.ts: custom containers that only speak
 * HTTP). Both hand the answer over as a RESPONSE frame, so the router's stages never know which it is.
 */
export interface InstanceChannel {
  /** Requests sent and not yet answered (least-outstanding balancing, the per-instance limit). */
  readonly outstanding: number;
  /** Failed on its own and avoided for a while (retryAfterMs); usable again afterwards. */
  readonly broken: boolean;
  /** Not closing: it still takes requests. */
  readonly isOpen: boolean;
  /** A streamed body's writes are backing up: its sender should wait (whenDrained). */
  readonly congested: boolean;
  send(method: string, url: string, headers: readonly string[], requestId: string, body: Buffer, ex: Exchange): number;
  sendStream(method: string, url: string, headers: readonly string[], requestId: string, ex: Exchange): number;
  sendBody(id: number, part: Buffer, last: boolean): void;
  cancel(id: number): void;
  /**
   * Instance admission (docs/router-scale.md): the LIMITS frame this connection sends first on every
   * socket it opens, and now if it is open; null sends none. Only the framed client has it.
   */
  setLimits?(frame: Buffer | null): void;
  whenDrained(fn: () => void): void;
  close(): void;
}

const SWEEP_MS = 20;
/**
 * A streamed body's writes wait for the socket above this many bytes queued: the client's socket stops
 * being read until they drain (backpressure end to end; nothing piles up in the router).
 */
const STREAM_HIGH_WATER = 1024 * 1024;

export class InstanceConnection implements InstanceChannel {
  /** Requests written and not yet answered: the "outstanding" in least-outstanding balancing. */
  outstanding = 0;
  private socket: Socket | null = null;
  private connected = false;
  private closing = false;
  private destroyed = false;
  private readonly pending = new PendingTable<Exchange>();
  private writer: FrameWriter | null = null;
  /** Ids of the requests queued in the writer, not yet handed to the socket (safe to retry elsewhere). */
  private queuedIds: number[] = [];
  /**
   * The connection failed on its own (the instance closed it, broke the protocol, or did not read what
   * it was sent): the router avoids it for retryAfterMs, then the next request opens a new one. Not until
   * the next routing table: a slow but healthy instance would otherwise stay out of service.
   */
  broken = false;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Called once the writes drained below STREAM_HIGH_WATER (or the connection failed). */
  private drainWaiters: (() => void)[] = [];
  private readonly ids: IdAllocator;
  private readonly maxQueuedBytes: number | undefined;
  private readonly retryAfterMs: number;
  private readonly onUsable: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | null = null;
  private readonly reader: FrameReader;
  private limits: Buffer | null = null;

  constructor(
    readonly address: FramedAddress,
    private readonly onIdleAfterClose: (c: InstanceConnection) => void = () => {},
    options: InstanceConnectionOptions = {},
  ) {
    this.ids = options.ids ?? new IdAllocator();
    this.maxQueuedBytes = options.maxQueuedBytes;
    this.retryAfterMs = options.retryAfterMs ?? 1000;
    this.onUsable = options.onUsable;
    this.reader = new FrameReader(
      (frame, type, id) => {
        if (type !== FRAME_RESPONSE && type !== FRAME_INSTANCE_ERROR && type !== FRAME_BUSY) return;
        // Checked before anything reads it (the exchange decodes the frame lazily): a short frame or a
        // header entry past its end is a broken peer, and this connection ends with it.
        if (type === FRAME_BUSY ? frame.length <= HEADER_BYTES : !isWellFormedResponse(frame)) {
          this.abandon();
          return;
        }
        const ex = this.pending.take(id);
        if (ex === undefined) return; // answered after its deadline: already failed
        this.outstanding--;
        ex.onResponse(frame);
        if (this.closing && this.pending.size === 0) this.destroy();
      },
      { maxFrameBytes: options.maxFrameBytes, onOversize: () => this.abandon() },
    );
  }

  /**
   * The instance broke the protocol: stop reading it and drop the socket. 'close' then fails every
   * pending request as it does for a crash ('dropped' once written: the instance may have run them) and
   * marks the connection broken.
   */
  private abandon(): void {
    this.reader.stop();
    this.socket?.destroy();
  }

  get isOpen(): boolean {
    return !this.closing;
  }

  /**
   * `headers`: name, value pairs (lower-case names); the request's `x-request-id` is appended. Returns the
   * request's id (for cancel()), or 0 if the connection is closing (the exchange has been failed 'unavailable').
   */
  send(method: string, url: string, headers: readonly string[], requestId: string, body: Buffer, ex: Exchange): number {
    if (this.closing) {
      ex.onFailure('unavailable');
      return 0;
    }
    const w = this.writer ?? this.open();
    const id = this.pending.add(this.ids, ex);
    this.outstanding++;
    w.push2(encodeRequestHeadFlat(id, method, url, headers, 'x-request-id', requestId, body.length), body);
    this.queuedIds.push(id);
    if (this.sweepTimer === null) this.sweepTimer = setInterval(this.sweep, SWEEP_MS).unref();
    return id;
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
    const w = this.writer ?? this.open();
    const id = this.pending.add(this.ids, ex);
    this.outstanding++;
    w.push(encodeRequestHeadFlat(id, method, url, headers, 'x-request-id', requestId, 0, FRAME_REQUEST_STREAM));
    this.queuedIds.push(id);
    if (this.sweepTimer === null) this.sweepTimer = setInterval(this.sweep, SWEEP_MS).unref();
    return id;
  }

  /** The next part of a streamed body; dropped if the request is no longer pending (answered, failed, timed out). */
  sendBody(id: number, part: Buffer, last: boolean): void {
    const w = this.writer;
    if (!this.pending.has(id) || w === null) return;
    w.push2(encodeBodyHead(id, part.length, last), part);
  }

  /**
   * Abandons a request (its client went away): the instance gets a CANCEL; the exchange is not called.
   * Its slot is freed here, once: an answer that still comes finds no pending entry and is dropped.
   */
  cancel(id: number): void {
    if (this.pending.take(id) === undefined) return;
    this.outstanding--;
    this.writer?.push(encodeCancel(id));
    if (this.closing && this.pending.size === 0) this.destroy();
  }

  setLimits(frame: Buffer | null): void {
    if (frame !== null && this.limits !== null && frame.equals(this.limits)) return;
    this.limits = frame;
    if (frame !== null) this.writer?.push(frame);
  }

  /** Writes wait for the socket (over STREAM_HIGH_WATER, not draining, or not connected yet): the sender should wait. */
  get congested(): boolean {
    const s = this.socket;
    const w = this.writer;
    return s !== null && w !== null && (!this.connected || w.isBlocked || w.queuedBytes + s.writableLength > STREAM_HIGH_WATER);
  }

  /** Bytes waiting for this instance: in the writer's queue, and in the socket's own buffer. */
  get backlog(): { queued: number; inSocket: number } {
    return { queued: this.writer?.queuedBytes ?? 0, inSocket: this.socket?.writableLength ?? 0 };
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

  /** Stops taking requests; closes once the in-flight ones are answered or expire. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.pending.size === 0) this.destroy();
  }

  private open(): FrameWriter {
    // A fresh stream: nothing of the previous connection's last (partial or rejected) frame carries over.
    this.reader.reset();
    const a = this.address;
    const socket = 'socketPath' in a ? connect(a.socketPath) : connect({ host: a.host, port: a.port });
    socket.setNoDelay(true);
    const writer = new FrameWriter(socket, {
      // Handed to the socket: a failure now means the instance may have run them ('dropped').
      onWritten: () => {
        this.queuedIds.length = 0;
        if (this.drainWaiters.length > 0) this.wakeDrainWaiters();
      },
      onBlockedChange: (blocked) => {
        if (!blocked) this.wakeDrainWaiters();
      },
      maxQueuedBytes: this.maxQueuedBytes,
      name: `The instance at ${framedTarget(a)}`,
    });
    // Until connected, frames wait in the writer: if the connection fails first, none was written and
    // every request can be retried on another instance.
    writer.hold();
    // A new socket may reach a restarted host: it learns the limits before any request.
    if (this.limits !== null) writer.push(this.limits);
    socket.on('connect', () => {
      this.connected = true;
      writer.release();
    });
    socket.on('data', (chunk: Buffer) => this.reader.push(chunk));
    socket.on('error', () => {}); // 'close' follows and does the work
    socket.on('close', () => {
      if (!this.closing) {
        this.broken = true;
        if (this.retryTimer === null) this.retryTimer = setTimeout(this.retry, this.retryAfterMs).unref();
      }
      this.socket = null;
      this.writer = null;
      this.connected = false;
      const unwritten = new Set(this.queuedIds);
      writer.clear();
      this.queuedIds = [];
      const failed = this.pending.drain();
      this.outstanding = 0;
      for (const [id, ex] of failed) ex.onFailure(unwritten.has(id) ? 'unavailable' : 'dropped');
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const fn of waiters) fn(); // their streams' requests have just failed: let them finish
      if (this.closing) this.destroy();
    });
    this.socket = socket;
    this.writer = writer;
    return writer;
  }

  /**
   * Every pending entry is checked: send order is not deadline order (the deployments sharing an instance
   * over time have their own request_timeout_ms, and probes and mirrors theirs), so a request with a long
   * deadline must not shield the shorter ones behind it. Bounded by what is in flight on the connection.
   */
  private readonly sweep = (): void => {
    if (this.pending.size === 0) {
      if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
      this.sweepTimer = null;
      return;
    }
    const now = performance.now();
    this.pending.forEach((ex, id) => {
      if (ex.deadline > now) return;
      this.pending.take(id);
      this.outstanding--;
      // The instance host drops it if it has not started it (docs/protocol.md "CANCEL").
      this.writer?.push(encodeCancel(id));
      ex.onFailure('timeout');
    });
    if (this.closing && this.pending.size === 0) this.destroy();
  };

  private readonly retry = (): void => {
    this.retryTimer = null;
    if (this.closing) return;
    this.broken = false;
    this.onUsable?.();
  };

  private destroy(): void {
    if (this.destroyed) return;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    this.retryTimer = null;
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
