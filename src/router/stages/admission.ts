// Stage 3, admission: whether a deployment takes the request now (a free slot at its least busy
// instance), later (queued, until request_timeout_ms or max_queue_wait_ms) or not at all (503 with no
// ready instance; 429 beyond Azure's bound of 2 × max_concurrent_requests_per_instance × instances
// pending, contract §4.2). It owns every deployment's slot accounting, and is the FlightControl a Flight
// reports back to, so slots are counted in one place.
//
// Scale from zero (issue 12, DeploymentRoute.scaleFromZero): a deployment with no ready instance that may
// scale to zero is not refused with 503. Its requests queue, within the bound of one instance and until
// their deadline (request_timeout_ms; 408 after it, as any queued request), and the first of them asks
// for an instance (onDemand); a table with ready instances dispatches them (Router.setTable). A warm
// deployment's requests pay nothing for it: the bound is computed per table (admitLimit), and the rest
// runs only on the queueing path.

import type { TrafficSink } from '../../telemetry/traffic-log.js';
import type { InstanceChannel } from '../../protocol/client.js';
import type { DeploymentState } from '../state.js';
import { BUSY_WAITED } from '../../protocol/frame.js';
import { record } from './answer.js';
import { send, StreamedBody, type Flight, type FlightControl } from './proxy.js';

/** How often queued requests are checked against their deadline and max_queue_wait_ms. */
const SWEEP_MS = 10;
/**
 * A cold start asked for and not come within this long (the autoscaler took the count back to zero, the
 * callback failed) is asked for again by the next request or mirror copy that finds no instance.
 */
const DEMAND_AGAIN_MS = 5000;

export class Admission implements FlightControl {
  private readonly queued = new Set<DeploymentState>();
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    private readonly log: TrafficSink,
    /** Asks for an instance of a scale-from-zero deployment that has none (RouterOptions.onDemand). */
    private readonly onDemand: ((endpoint: string, deployment: string) => unknown) | null = null,
    private readonly demandAgainMs: number = DEMAND_AGAIN_MS,
  ) {}

  /**
   * The pending bound is reached, or the deployment has no ready instance and cannot wait for one (its
   * admitLimit is 0 then, Router.deploymentState): a new request would be refused.
   */
  full(d: DeploymentState): boolean {
    return d.admitted >= d.admitLimit;
  }

  /** Not admitted: no ready instance (503), or the deployment's pending bound is full (429, fast). */
  refuse(f: Flight): void {
    const d = f.d;
    if (d.connections.length === 0) {
      if (!d.route.scaleFromZero) return f.fail(503, `Deployment '${d.name}' has no ready instance`);
      return f.fail(429, `Too many pending requests for deployment '${d.name}' while an instance starts: at most ${d.admitLimit} (2 × max_concurrent_requests_per_instance × 1 instance)`, '1');
    }
    f.fail(429, `Too many pending requests for deployment '${d.name}': at most ${d.admitLimit} (2 × max_concurrent_requests_per_instance × instances)`, '1');
  }

  /**
   * A scale-from-zero deployment has no instance and a request for it (or a mirror copy) came: ask for
   * one, once per cold start. A failing callback must not fail the request: it waits to its deadline.
   */
  demand(d: DeploymentState): void {
    if (this.onDemand === null) return;
    const now = performance.now();
    if (d.demandedAt !== 0 && now - d.demandedAt < this.demandAgainMs) return;
    d.demandedAt = now;
    try {
      const r = this.onDemand(d.endpoint, d.name);
      if (r instanceof Promise) r.catch(() => {});
    } catch {
      // the request still waits until its deadline
    }
  }

  /**
   * A new table left a scale-from-zero deployment without an instance (it was scaled to zero, or its last
   * instance failed) while requests wait behind busy slots: nothing else would ask for an instance for
   * them, so they become cold requests (waiting to their deadline for one) and one is asked for.
   */
  instancesGone(d: DeploymentState): void {
    if (d.connections.length > 0 || !d.route.scaleFromZero || d.queueHead >= d.queue.length) return;
    for (let i = d.queueHead; i < d.queue.length; i++) d.queue[i].cold = true;
    this.demand(d);
  }

  /** A complete request: sent to a free slot, queued, or refused. false when refused (nothing is mirrored then). */
  admit(f: Flight): boolean {
    const d = f.d;
    if (this.full(d)) {
      this.refuse(f);
      return false;
    }
    d.admitted++;
    const conn = pickFree(d, null);
    if (conn !== null) send(f, conn);
    else if (d.hostAdmission && d.connections.some(up)) {
      // Instances hold the queue (docs/router-scale.md): every one is at its bound by this router's view.
      // (With every connection down, in its back-off after a failure, it waits here as with one router:
      // the instances are not full, they are restarting, and a 429 would tell the client otherwise.)
      d.admitted--;
      this.refuse(f);
      return false;
    } else this.enqueue(f);
    f.req.owner = f;
    return true;
  }

  /**
   * The instance host did not take it (instance admission). FULL: the next instance this router sees
   * room at, else 429 as for a full bound; a streamed body cannot go elsewhere. WAITED: it waited
   * max_queue_wait_ms there: 429, as for a request that waited that long here.
   */
  busy(f: Flight, reason: number): void {
    const d = f.d;
    const at = f.conn;
    if (reason !== BUSY_WAITED && !f.streamed && at !== null) {
      (f.busyAt ??= []).push(at);
      const conn = pickFree(d, null, d.perInstance, f.busyAt);
      if (conn !== null) {
        d.m.inFlight--;
        f.conn = null;
        send(f, conn);
        return;
      }
    }
    this.release(f);
    if (reason === BUSY_WAITED) f.fail(429, `Request waited ${d.route.maxQueueWaitMs} ms (max_queue_wait_ms) for a free instance of deployment '${d.name}'`, '1');
    else this.refuse(f);
  }

  /** A body streamed to `conn` (a free slot found at its head) as it arrives. */
  stream(f: Flight, conn: InstanceChannel): StreamedBody {
    f.d.admitted++;
    // Its body is not kept: it cannot be sent again elsewhere.
    f.retried = true;
    f.streamed = true;
    f.req.owner = f;
    return new StreamedBody(f, conn);
  }

  release(f: Flight): void {
    const d = f.d;
    if (f.conn !== null) {
      d.m.inFlight--;
      f.conn = null;
    }
    d.admitted--;
    this.dispatchQueued(d);
  }

  gone(f: Flight): void {
    const d = f.d;
    if (f.queued) {
      // Out of the queue now, so its body is not held until a slot or its deadline comes (bounded by
      // the pending bound: 2 × max_concurrent × instances).
      const i = d.queue.indexOf(f, d.queueHead);
      if (i >= 0) d.queue.splice(i, 1);
      f.queued = false;
      d.m.queued--;
      d.admitted--;
      this.compact(d);
    } else if (f.conn !== null) {
      // Written or about to be: the instance gets a CANCEL and the slot is freed once (client.ts cancel()),
      // so its answer, if it still comes, reaches nobody.
      f.conn.cancel(f.id);
      this.release(f);
    } else return; // already released (a streamed body aborted with the connection, an answer on its way)
    this.finish(f, 499, 0);
  }

  retry(f: Flight, failed: InstanceChannel | null): void {
    f.d.m.inFlight--;
    const conn = pickFree(f.d, failed);
    if (conn !== null) send(f, conn);
    else {
      this.release(f);
      f.fail(502, `No instance of deployment '${f.d.name}' could take the request`);
    }
  }

  finish(f: Flight, status: number, responseBytes: number): void {
    record(this.log, f, status, responseBytes);
  }

  /** Free slots (an answer, more instances, a higher limit) serve what waits, oldest first. */
  dispatchQueued(d: DeploymentState): void {
    while (d.queueHead < d.queue.length) {
      const conn = pickFree(d, null);
      if (conn === null) return;
      const f = d.queue[d.queueHead];
      d.queue[d.queueHead++] = undefined as unknown as Flight;
      d.m.queued--;
      f.queued = false;
      send(f, conn);
    }
    this.compact(d);
  }

  /** The deployment is gone (a new table without it): whatever still waits for it cannot be served. */
  removed(d: DeploymentState): void {
    const waiting = d.queue;
    const from = d.queueHead;
    d.m.queued -= waiting.length - from;
    d.admitted -= waiting.length - from;
    d.queue = [];
    d.queueHead = 0;
    this.queued.delete(d);
    for (let i = from; i < waiting.length; i++) {
      waiting[i].queued = false;
      waiting[i].fail(503, `Deployment '${d.name}' was removed`);
    }
  }

  close(): void {
    if (this.sweepTimer) clearInterval(this.sweepTimer);
    this.sweepTimer = null;
  }

  private enqueue(f: Flight): void {
    const d = f.d;
    f.queuedAt = performance.now();
    f.queued = true;
    if (d.connections.length === 0) {
      // Only a scale-from-zero deployment gets here without an instance (full() refuses the others).
      f.cold = true;
      this.demand(d);
    }
    d.queue.push(f);
    d.m.queued++;
    this.queued.add(d);
    if (this.sweepTimer === null) this.sweepTimer = setInterval(() => this.sweepQueues(), SWEEP_MS).unref();
  }

  private compact(d: DeploymentState): void {
    if (d.queueHead === d.queue.length) {
      d.queue = [];
      d.queueHead = 0;
      this.queued.delete(d);
      // Nothing waits: a start asked for and never come is asked for again by the next request.
      d.demandedAt = 0;
    } else if (d.queueHead > 1024 && d.queueHead * 2 > d.queue.length) {
      d.queue = d.queue.slice(d.queueHead);
      d.queueHead = 0;
    }
  }

  /** Queued requests past their deadline (408) or past max_queue_wait_ms (429) leave the queue. */
  private sweepQueues(): void {
    if (this.queued.size === 0) {
      this.close();
      return;
    }
    const now = performance.now();
    for (const d of this.queued) {
      // A start asked for and lost (the autoscaler took the count back to zero before the instance was
      // ready, the callback failed) is asked for again by the requests still waiting, not only by new ones.
      if (d.connections.length === 0 && d.route.scaleFromZero) this.demand(d);
      const maxWait = d.route.maxQueueWaitMs;
      while (d.queueHead < d.queue.length) {
        const f = d.queue[d.queueHead];
        const timedOut = f.deadline <= now;
        const waitedTooLong = maxWait > 0 && !f.cold && now - f.queuedAt >= maxWait;
        if (!timedOut && !waitedTooLong) break;
        d.queue[d.queueHead++] = undefined as unknown as Flight;
        f.queued = false;
        d.m.queued--;
        d.admitted--;
        if (timedOut && f.cold && d.connections.length === 0) f.fail(408, `Request timed out after ${d.route.requestTimeoutMs} ms (request_timeout_ms) waiting for an instance of deployment '${d.name}' to start from zero`);
        else if (timedOut) f.fail(408, `Request timed out after ${d.route.requestTimeoutMs} ms waiting for a free instance of deployment '${d.name}'`);
        else f.fail(429, `Request waited ${maxWait} ms (max_queue_wait_ms) for a free instance of deployment '${d.name}'`, '1');
      }
      this.compact(d);
    }
  }
}

const up = (c: InstanceChannel): boolean => !c.broken;

/**
 * The least busy instance with a free slot (least outstanding requests; ties round-robin), skipping
 * `avoid`, the instances that `answeredBusy` (instance admission) and connections that failed on their own.
 * null when every slot is taken. `limit`: requests outstanding per instance that count as full (default
 * the deployment's per-instance bound).
 */
export function pickFree(d: DeploymentState, avoid: InstanceChannel | null, limit: number = d.perInstance, answeredBusy: readonly InstanceChannel[] | null = null): InstanceChannel | null {
  const list = d.connections;
  const n = list.length;
  const start = d.next;
  d.next = n > 0 ? (start + 1) % n : 0;
  let best: InstanceChannel | null = null;
  for (let i = 0; i < n; i++) {
    const c = list[(start + i) % n];
    if (c === avoid || c.broken || c.outstanding >= limit || (answeredBusy !== null && answeredBusy.includes(c))) continue;
    if (best === null || c.outstanding < best.outstanding) best = c;
  }
  return best;
}
