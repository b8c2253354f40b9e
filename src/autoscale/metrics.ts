// The metrics autoscale rules read (issue 12, contract §6): a windowed store per resource (deployment or
// endpoint) and metric, and the sampler that fills it every second from the router's meters and the
// backend's instance usage. Azure keeps one-minute points and evaluates every 30-60 s; infergate keeps
// one-second points so that a rule's window may be seconds (PT10S) and scaling reacts in seconds.
//
// Per deployment, and per endpoint over its deployments:
//   ConcurrentRequests    requests at instances now (router: in flight)
//   QueuedRequests        requests waiting for a free instance slot now
//   DeploymentCapacity    ready instances
//   RequestsPerMinute     requests answered in the last 60 s (Azure's per-minute count)
//   RequestLatency        mean ms of the requests answered since the last sample; no sample when none was
//                         answered, as Azure has no latency point for a minute without requests
//   CpuUtilizationPercentage, MemoryUtilizationPercentage
//                         mean over the serving instances of CPU time ÷ wall time ÷ the instance's CPUs,
//                         and resident memory ÷ its memory limit, in percent; none without instances

import { allDeploymentMeters, setInstanceUtilization, type DeploymentMeters, type InstanceUtilization } from '../telemetry/metrics.js';
import type { InstanceUsage } from '../ir/types.js';
import type { Clock, MetricName, MetricReader, ResourceRef } from './types.js';

/** One instance's CPU and memory, as the backend's `usage()` gives it. */
export type UsageReading = InstanceUsage;

export interface MetricStoreOptions {
  /** Samples closer than this share one slot, the later one kept. Default 1000 ms. */
  resolutionMs?: number;
  /** How far back samples are kept. Default one hour (Azure's longest usual window). */
  retentionMs?: number;
}

/** Growing ring of [time, value]: starts small, grows by doubling up to `max`, then drops the oldest. */
class Ring {
  private times: Float64Array;
  private values: Float64Array;
  private head = 0;
  size = 0;

  constructor(private readonly max: number) {
    this.times = new Float64Array(Math.min(16, max));
    this.values = new Float64Array(Math.min(16, max));
  }

  get lastTime(): number {
    return this.size === 0 ? -Infinity : this.times[(this.head + this.size - 1) % this.times.length];
  }

  /** Replaces the newest sample's time and value. */
  replaceLast(time: number, value: number): void {
    const i = (this.head + this.size - 1) % this.times.length;
    this.times[i] = time;
    this.values[i] = value;
  }

  push(time: number, value: number): void {
    let cap = this.times.length;
    if (this.size === cap && cap < this.max) {
      const next = Math.min(this.max, cap * 2);
      const times = new Float64Array(next);
      const values = new Float64Array(next);
      for (let k = 0; k < this.size; k++) {
        times[k] = this.times[(this.head + k) % cap];
        values[k] = this.values[(this.head + k) % cap];
      }
      this.times = times;
      this.values = values;
      this.head = 0;
      cap = next;
    }
    if (this.size === cap) {
      this.times[this.head] = time;
      this.values[this.head] = value;
      this.head = (this.head + 1) % cap;
    } else {
      const i = (this.head + this.size) % cap;
      this.times[i] = time;
      this.values[i] = value;
      this.size++;
    }
  }

  /** Samples with from <= time <= to, oldest first (scanned from the newest: windows are recent). */
  between(from: number, to: number): Array<readonly [number, number]> {
    const cap = this.times.length;
    const out: Array<readonly [number, number]> = [];
    for (let k = this.size - 1; k >= 0; k--) {
      const i = (this.head + k) % cap;
      const t = this.times[i];
      if (t < from) break;
      if (t <= to) out.push([t, this.values[i]]);
    }
    return out.reverse();
  }

  /** Capacity allocated now, in samples (for the memory bound's test). */
  get allocated(): number {
    return this.times.length;
  }
}

/** The key of a resource: names compared case-insensitively, as resource ids are. */
function keyOf(r: ResourceRef): string {
  return r.deployment === undefined ? `${r.endpoint.toLowerCase()}/` : `${r.endpoint.toLowerCase()}/${r.deployment.toLowerCase()}`;
}

/** Every metric of every resource, in bounded rings of one-second samples. */
export class MetricStore implements MetricReader {
  readonly resolutionMs: number;
  readonly retentionMs: number;
  private readonly maxSamples: number;
  private readonly byResource = new Map<string, Map<MetricName, Ring>>();

  constructor(options: MetricStoreOptions = {}) {
    this.resolutionMs = options.resolutionMs ?? 1000;
    this.retentionMs = options.retentionMs ?? 3_600_000;
    this.maxSamples = Math.ceil(this.retentionMs / this.resolutionMs) + 1;
  }

  /**
   * Adds a sample. One that falls in the same resolution slot as the newest replaces it; one older than
   * the newest is dropped (a series only moves forward); NaN and infinities are not samples.
   */
  record(resource: ResourceRef, metric: MetricName, time: number, value: number): void {
    if (!Number.isFinite(value) || !Number.isFinite(time)) return;
    const key = keyOf(resource);
    let metrics = this.byResource.get(key);
    if (metrics === undefined) this.byResource.set(key, (metrics = new Map()));
    let ring = metrics.get(metric);
    if (ring === undefined) metrics.set(metric, (ring = new Ring(this.maxSamples)));
    const last = ring.lastTime;
    if (time < last) return;
    if (ring.size > 0 && Math.floor(time / this.resolutionMs) === Math.floor(last / this.resolutionMs)) ring.replaceLast(time, value);
    else ring.push(time, value);
  }

  series(resource: ResourceRef, metric: MetricName, from: number, to: number): ReadonlyArray<readonly [number, number]> {
    const ring = this.byResource.get(keyOf(resource))?.get(metric);
    // Older than the retention is gone even while the ring still holds it (a sampler that paused).
    return ring === undefined ? [] : ring.between(Math.max(from, ring.lastTime - this.retentionMs), to);
  }

  /** The newest sample, if any. */
  latest(resource: ResourceRef, metric: MetricName): readonly [number, number] | undefined {
    const ring = this.byResource.get(keyOf(resource))?.get(metric);
    const t = ring?.lastTime ?? -Infinity;
    return t === -Infinity ? undefined : ring!.between(t, t)[0];
  }

  /** Drops a resource's samples: a deployment's, or an endpoint's own (its deployments are resources of their own). */
  forget(resource: ResourceRef): void {
    this.byResource.delete(keyOf(resource));
  }

  /** Drops every series whose newest sample is older than the retention at `now`. */
  prune(now: number): void {
    for (const [key, metrics] of this.byResource) {
      for (const [name, ring] of metrics) if (ring.lastTime < now - this.retentionMs) metrics.delete(name);
      if (metrics.size === 0) this.byResource.delete(key);
    }
  }

  /** Resources with samples and the samples allocated for them (tests of the memory bound; diagnostics). */
  footprint(): { resources: number; series: number; samplesAllocated: number } {
    let series = 0;
    let samplesAllocated = 0;
    for (const metrics of this.byResource.values()) {
      for (const ring of metrics.values()) {
        series++;
        samplesAllocated += ring.allocated;
      }
    }
    return { resources: this.byResource.size, series, samplesAllocated };
  }
}

export interface SamplerOptions {
  store: MetricStore;
  /** The router's meters, read live each sample; default every deployment's (telemetry/metrics.ts). */
  meters?: () => Iterable<DeploymentMeters>;
  /** The backend's instance usage (Backend.usage); without it no CPU or memory metrics. */
  usage?: () => Promise<readonly UsageReading[]>;
  clock?: Clock;
  /** Default 1000 ms. */
  intervalMs?: number;
  log?: (line: string) => void;
}

interface DeploymentState {
  ref: ResourceRef;
  /** requestDuration count and sum at the last sample, for the latency of the requests answered since. */
  count: number;
  sum: number;
  /** (time, answered count) of the last minute or so, oldest first, for RequestsPerMinute. */
  history: Array<[number, number]>;
}

/** What one sample found for a deployment, summed up again per endpoint. */
interface Reading {
  ref: ResourceRef;
  concurrent: number;
  queued: number;
  capacity: number;
  rpm: number;
  answered: number;
  durationSeconds: number;
  cpu: number[];
  memory: number[];
}

const MINUTE_MS = 60_000;
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** Reads meters and instance usage every interval into a MetricStore. */
export class Sampler {
  private readonly store: MetricStore;
  private readonly meters: () => Iterable<DeploymentMeters>;
  private readonly usage: (() => Promise<readonly UsageReading[]>) | undefined;
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private readonly log: (line: string) => void;
  private readonly deployments = new Map<string, DeploymentState>();
  /** Per instance id: CPU seconds and time of the last reading. */
  private readonly cpuBefore = new Map<string, { cpuSeconds: number; time: number }>();
  /** Resources written by the last sample (deployments and endpoints), to forget those that went. */
  private readonly written = new Map<string, ResourceRef>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private lastPrune = 0;
  private lastError = '';

  constructor(options: SamplerOptions) {
    this.store = options.store;
    this.meters = options.meters ?? allDeploymentMeters;
    this.usage = options.usage;
    this.clock = options.clock ?? Date.now;
    this.intervalMs = options.intervalMs ?? 1000;
    this.log = options.log ?? (() => {});
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => {
      // A usage read slower than the interval (a loaded machine) skips a beat rather than piling up.
      if (this.running === null) void this.tick();
    }, this.intervalMs);
    this.timer.unref();
  }

  /** Stops sampling; resolves once a sample in progress is done. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.running;
    if (this.usage) setInstanceUtilization([]);
  }

  /** Takes one sample of everything now (the timer calls it; tests call it directly). */
  tick(): Promise<void> {
    this.running ??= this.sample().finally(() => (this.running = null));
    return this.running;
  }

  private async sample(): Promise<void> {
    let usage: readonly UsageReading[] = [];
    if (this.usage) {
      try {
        usage = await this.usage();
        this.lastError = '';
      } catch (e) {
        // Said once per distinct failure, not every second.
        const msg = (e as Error).message;
        if (msg !== this.lastError) this.log(`autoscale metrics: reading instance usage failed: ${msg}`);
        this.lastError = msg;
      }
    }
    const now = this.clock();
    const readings = new Map<string, Reading>();
    const readingOf = (endpoint: string, deployment: string): Reading => {
      const key = keyOf({ endpoint, deployment });
      let r = readings.get(key);
      if (r === undefined) {
        r = { ref: { endpoint, deployment }, concurrent: 0, queued: 0, capacity: 0, rpm: 0, answered: 0, durationSeconds: 0, cpu: [], memory: [] };
        readings.set(key, r);
      }
      return r;
    };

    const live = new Map<string, DeploymentMeters>();
    for (const m of this.meters()) {
      if (m.live) live.set(keyOf({ endpoint: m.endpoint, deployment: m.deployment }), m);
    }
    for (const [key, m] of live) {
      const r = readingOf(m.endpoint, m.deployment);
      r.concurrent = m.inFlight;
      r.queued = m.queued;
      r.capacity = m.readyInstances;
      const { count, sum } = m.requestDuration;
      let state = this.deployments.get(key);
      if (state === undefined) {
        // First sight (or seen again after it was deleted: its meters kept their counts): a baseline only.
        state = { ref: r.ref, count, sum, history: [] };
        this.deployments.set(key, state);
      }
      r.answered = count - state.count;
      r.durationSeconds = sum - state.sum;
      state.count = count;
      state.sum = sum;
      const h = state.history;
      h.push([now, count]);
      // The base is the newest entry at or before a minute ago (the oldest while there is less than a
      // minute of history): later ones are all that is kept besides it.
      while (h.length > 2 && h[1][0] <= now - MINUTE_MS) h.shift();
      r.rpm = Math.max(0, count - h[0][1]);
    }

    const seenInstances = new Set<string>();
    const perInstance: InstanceUtilization[] = [];
    for (const u of usage) {
      seenInstances.add(u.id);
      const r = readingOf(u.endpoint, u.deployment);
      const memoryPercent = u.memoryLimitBytes > 0 ? (u.memoryBytes / u.memoryLimitBytes) * 100 : NaN;
      if (!Number.isNaN(memoryPercent)) r.memory.push(memoryPercent);
      const before = this.cpuBefore.get(u.id);
      this.cpuBefore.set(u.id, { cpuSeconds: u.cpuSeconds, time: now });
      // Less CPU time than before: the instance's processes or container started again; a new baseline.
      const rated = before !== undefined && u.cpuSeconds >= before.cpuSeconds && now > before.time && u.cpus > 0;
      const cpuPercent = rated ? ((u.cpuSeconds - before.cpuSeconds) / ((now - before.time) / 1000) / u.cpus) * 100 : NaN;
      if (rated) r.cpu.push(cpuPercent);
      perInstance.push({ instance: u.id, endpoint: u.endpoint, deployment: u.deployment, cpuPercent, memoryPercent, memoryBytes: u.memoryBytes });
    }
    for (const id of this.cpuBefore.keys()) if (!seenInstances.has(id)) this.cpuBefore.delete(id);
    // Per instance on /metrics (infergate_instance_cpu/memory_*): the whole list, replaced each sample.
    if (this.usage) setInstanceUtilization(perInstance);

    const byEndpoint = new Map<string, Reading>();
    for (const [key, r] of readings) {
      this.write(r, now);
      const m = live.get(key);
      if (m) {
        m.cpuUtilizationPercent = r.cpu.length ? mean(r.cpu) : NaN;
        m.memoryUtilizationPercent = r.memory.length ? mean(r.memory) : NaN;
      }
      const ek = keyOf({ endpoint: r.ref.endpoint });
      let e = byEndpoint.get(ek);
      if (e === undefined) {
        e = { ref: { endpoint: r.ref.endpoint }, concurrent: 0, queued: 0, capacity: 0, rpm: 0, answered: 0, durationSeconds: 0, cpu: [], memory: [] };
        byEndpoint.set(ek, e);
      }
      e.concurrent += r.concurrent;
      e.queued += r.queued;
      e.capacity += r.capacity;
      e.rpm += r.rpm;
      e.answered += r.answered;
      e.durationSeconds += r.durationSeconds;
      e.cpu.push(...r.cpu);
      e.memory.push(...r.memory);
    }
    for (const e of byEndpoint.values()) this.write(e, now);

    // Gone deployments and endpoints: their series go, so that one created again under the same name
    // does not inherit them, and the store holds only what exists.
    for (const key of this.deployments.keys()) if (!live.has(key)) this.deployments.delete(key);
    for (const [key, ref] of this.written) if (!readings.has(key) && !byEndpoint.has(key)) this.store.forget(ref);
    this.written.clear();
    for (const [key, r] of readings) this.written.set(key, r.ref);
    for (const [key, e] of byEndpoint) this.written.set(key, e.ref);
    if (now - this.lastPrune >= MINUTE_MS) {
      this.lastPrune = now;
      this.store.prune(now);
    }
  }

  private write(r: Reading, now: number): void {
    const s = this.store;
    s.record(r.ref, 'ConcurrentRequests', now, r.concurrent);
    s.record(r.ref, 'QueuedRequests', now, r.queued);
    s.record(r.ref, 'DeploymentCapacity', now, r.capacity);
    s.record(r.ref, 'RequestsPerMinute', now, r.rpm);
    if (r.answered > 0) s.record(r.ref, 'RequestLatency', now, (r.durationSeconds / r.answered) * 1000);
    if (r.cpu.length) s.record(r.ref, 'CpuUtilizationPercentage', now, mean(r.cpu));
    if (r.memory.length) s.record(r.ref, 'MemoryUtilizationPercentage', now, mean(r.memory));
  }
}
