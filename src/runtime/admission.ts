// Instance admission (docs/router-scale.md): when several routers serve one deployment (router workers, the
// router role), none of them sees the others' requests, so max_concurrent_requests_per_instance and Azure's
// pending bound (2 × max_concurrent × instances) can only be exact where every request meets: the instance.
// The routers send the deployment's request settings in a LIMITS frame (first on each connection, again
// when they change); from then on the host runs at most maxConcurrent requests at once, over every
// connection together, keeps at most maxQueued more waiting (in arrival order), and answers the next one
// BUSY (FULL) at once, before anything of it runs: the router tries another instance or answers 429.
// A request that waited maxQueueWaitMs gets BUSY (WAITED). The request deadline needs nothing here: the
// router sends CANCEL when it passes, which takes a waiting request out of the queue.
//
// A host that never got LIMITS (one router, which does its own admission) passes every request straight
// on, as before: nothing is counted. Only scoring requests (`/score`, and the Open Inference Protocol's
// `/v2/models/<m>[/versions/<v>]/infer` of no-code deployments) are admitted: the liveness route (the
// backend's probes, which must not fail because the instance is busy scoring), swagger.json and the v2
// health and metadata routes pass.

import { BUSY_FULL, BUSY_WAITED, encodeBusy, type HeaderList, type InstanceLimits } from '../protocol/frame.js';
import type { Peer } from './scorer.js';

/** How often waiting requests are checked against max_queue_wait_ms. */
const SWEEP_MS = 10;
const SCORE = Buffer.from('/score', 'latin1');
const V2_MODELS = Buffer.from('/v2/models/', 'latin1');
const INFER = Buffer.from('/infer', 'latin1');
const QUERY = 0x3f; // '?'

/** Whether a REQUEST frame's URL is the scoring route: `/score` or `/score?…` (docs/protocol.md REQUEST). */
export function isScoring(frame: Buffer): boolean {
  const at = 10 + frame[9];
  if (frame.length < at + 2 + SCORE.length) return false;
  const urlLen = frame.readUInt16BE(at);
  const start = at + 2;
  if (urlLen >= SCORE.length && frame.compare(SCORE, 0, SCORE.length, start, start + SCORE.length) === 0) return urlLen === SCORE.length || frame[start + SCORE.length] === QUERY;
  return isInfer(frame, start, Math.min(start + urlLen, frame.length));
}

/** `/v2/models/…/infer` (query allowed): an OIP inference request, admitted like /score. */
function isInfer(frame: Buffer, start: number, urlEnd: number): boolean {
  if (urlEnd - start < V2_MODELS.length + INFER.length || frame.compare(V2_MODELS, 0, V2_MODELS.length, start, start + V2_MODELS.length) !== 0) return false;
  let end = frame.indexOf(QUERY, start);
  if (end < 0 || end > urlEnd) end = urlEnd;
  return end - start >= V2_MODELS.length + INFER.length && frame.compare(INFER, 0, INFER.length, end - INFER.length, end) === 0;
}

/**
 * A router connection as the scorer sees it: every answer passes here first, so the host knows when a
 * running request ends, whichever way the scorer answers (respond, or a frame already encoded).
 */
export class GatedPeer implements Peer {
  /** Ids of this connection's requests counted as running. */
  readonly running = new Set<number>();

  constructor(
    readonly inner: Peer,
    private readonly gate: InstanceAdmission,
  ) {}

  get closed(): boolean {
    return this.inner.closed;
  }

  respond(id: number, status: number, headers: HeaderList, body: Buffer, instanceError?: boolean): void {
    this.inner.respond(id, status, headers, body, instanceError);
    if (this.running.size > 0) this.gate.answered(this, id);
  }

  sendFrame(frame: Buffer): void {
    this.inner.sendFrame(frame);
    if (this.running.size > 0) this.gate.answered(this, frame.readUInt32BE(4));
  }
}

interface Waiting {
  peer: GatedPeer;
  frame: Buffer;
  id: number;
  at: number;
}

export class InstanceAdmission {
  private limits: InstanceLimits | null = null;
  /** Requests handed to the scorer and not answered (or cancelled) yet, every connection together. */
  running = 0;
  private queue: Waiting[] = [];
  private head = 0;
  private readonly peers = new Set<GatedPeer>();
  private sweepTimer: NodeJS.Timeout | null = null;
  private dispatching = false;

  constructor(private readonly run: (peer: Peer, frame: Buffer, id: number) => void) {}

  /** The gate of one router connection. */
  peer(conn: Peer): GatedPeer {
    this.forgetClosed();
    const p = new GatedPeer(conn, this);
    this.peers.add(p);
    return p;
  }

  get waiting(): number {
    return this.queue.length - this.head;
  }

  /** From a LIMITS frame. maxConcurrent 0 (unlimited) ends admission: what waits runs. */
  setLimits(l: InstanceLimits | null): void {
    this.limits = l !== null && l.maxConcurrent > 0 ? l : null;
    this.schedule();
    this.startSweep();
  }

  request(p: GatedPeer, frame: Buffer, id: number): void {
    const l = this.limits;
    if (l === null || !isScoring(frame)) return this.run(p, frame, id);
    if (this.running >= l.maxConcurrent || this.waiting >= l.maxQueued) this.forgetClosed();
    if (this.running < l.maxConcurrent && this.waiting === 0) return this.start(p, frame, id);
    if (this.waiting >= l.maxQueued) {
      p.inner.sendFrame(encodeBusy(id, BUSY_FULL));
      return;
    }
    this.queue.push({ peer: p, frame, id, at: performance.now() });
    this.startSweep();
  }

  answered(p: GatedPeer, id: number): void {
    if (!p.running.delete(id)) return;
    this.running--;
    this.schedule();
  }

  /**
   * CANCEL for (p, id). true: it was waiting here and is dropped (nothing ran, nothing is answered). false:
   * the scorer has it (or never had it); its slot is free from now, as the router freed its own.
   */
  cancel(p: GatedPeer, id: number): boolean {
    for (let i = this.head; i < this.queue.length; i++) {
      const w = this.queue[i];
      if (w.peer === p && w.id === id) {
        this.queue.splice(i, 1);
        return true;
      }
    }
    if (p.running.delete(id)) {
      this.running--;
      this.schedule();
    }
    return false;
  }

  close(): void {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  private start(p: GatedPeer, frame: Buffer, id: number): void {
    this.running++;
    p.running.add(id);
    this.run(p, frame, id);
  }

  /**
   * Answers end running requests from inside the scorer's own callbacks (a worker's answer being read):
   * the next waiting request starts after them, not re-entering the scorer.
   */
  private schedule(): void {
    if (this.dispatching || this.waiting === 0) return;
    this.dispatching = true;
    queueMicrotask(this.dispatch);
  }

  private readonly dispatch = (): void => {
    this.dispatching = false;
    while (this.head < this.queue.length) {
      const l = this.limits;
      if (l !== null && this.running >= l.maxConcurrent) {
        this.forgetClosed();
        if (this.running >= l.maxConcurrent) break;
      }
      const w = this.queue[this.head];
      this.queue[this.head++] = undefined as unknown as Waiting;
      if (w.peer.closed) continue; // its router went away: nobody waits for the answer
      if (l === null) this.run(w.peer, w.frame, w.id);
      else this.start(w.peer, w.frame, w.id);
    }
    this.compact();
  };

  /**
   * A connection that closed takes its running requests' slots with it (their answers go nowhere: the
   * Python pool drops them without a word, so no answer would ever free them) and its waiting requests
   * (a router worker that restarted must not leave places taken that the others' requests need).
   */
  private forgetClosed(): void {
    let closed = false;
    let freed = false;
    for (const p of this.peers) {
      if (!p.closed) continue;
      closed = true;
      this.running -= p.running.size;
      freed ||= p.running.size > 0;
      p.running.clear();
      this.peers.delete(p);
    }
    // A peer leaves `peers` once: its waiting requests go with it, in the same pass.
    if (!closed) return;
    if (this.waiting > 0) {
      this.queue = this.queue.slice(this.head).filter((w) => !w.peer.closed);
      this.head = 0;
    }
    if (freed) this.schedule();
  }

  /**
   * While requests wait, a tick checks them against max_queue_wait_ms and looks for connections that
   * closed: nothing else would free their slots for the waiting ones when no answer comes.
   */
  private startSweep(): void {
    if (this.sweepTimer === null && this.waiting > 0 && this.limits !== null) this.sweepTimer = setInterval(this.sweep, SWEEP_MS).unref();
  }

  private compact(): void {
    if (this.head === this.queue.length) {
      this.queue = [];
      this.head = 0;
    } else if (this.head > 1024 && this.head * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.head);
      this.head = 0;
    }
  }

  private readonly sweep = (): void => {
    this.forgetClosed();
    const l = this.limits;
    if (this.waiting === 0 || l === null) {
      this.close();
      return;
    }
    if (l.maxQueueWaitMs === 0) return;
    const now = performance.now();
    while (this.head < this.queue.length) {
      const w = this.queue[this.head];
      if (now - w.at < l.maxQueueWaitMs) break;
      this.queue[this.head++] = undefined as unknown as Waiting;
      if (!w.peer.closed) w.peer.inner.sendFrame(encodeBusy(w.id, BUSY_WAITED));
    }
    this.compact();
  };
}
