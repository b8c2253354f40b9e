// The autoscale metrics: the windowed store (windows, resolution, bounds) and the sampler's arithmetic
// from router meters and instance usage, with an injected clock and meters of the test's own.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { DeploymentMeters, deploymentMeters, registry } from '../telemetry/metrics.js';
import { MetricStore, Sampler, type UsageReading } from './metrics.js';

const D = { endpoint: 'ep', deployment: 'blue' };
const E = { endpoint: 'ep' };
const T0 = 1_800_000_000_000;

test('series: samples within [from, to], oldest first; a slot keeps the later sample; older ones are dropped', () => {
  const s = new MetricStore();
  for (let i = 0; i < 10; i++) s.record(D, 'ConcurrentRequests', T0 + i * 1000, i);
  assert.deepEqual(s.series(D, 'ConcurrentRequests', T0 + 3000, T0 + 5000), [[T0 + 3000, 3], [T0 + 4000, 4], [T0 + 5000, 5]]);
  assert.deepEqual(s.series(D, 'ConcurrentRequests', T0 + 3500, T0 + 3999), []);
  // Same one-second slot as the newest: replaces it.
  s.record(D, 'ConcurrentRequests', T0 + 9400, 42);
  assert.deepEqual(s.series(D, 'ConcurrentRequests', T0 + 9000, T0 + 10_000), [[T0 + 9400, 42]]);
  // Older than the newest: dropped; NaN: not a sample.
  s.record(D, 'ConcurrentRequests', T0 + 2000, 99);
  s.record(D, 'ConcurrentRequests', T0 + 11_000, NaN);
  assert.equal(s.series(D, 'ConcurrentRequests', 0, Infinity).length, 10);
  assert.deepEqual(s.latest(D, 'ConcurrentRequests'), [T0 + 9400, 42]);
  // Other metrics and resources are separate; names compare case-insensitively, as resource ids do.
  assert.deepEqual(s.series(D, 'QueuedRequests', 0, Infinity), []);
  assert.deepEqual(s.series(E, 'ConcurrentRequests', 0, Infinity), []);
  assert.equal(s.series({ endpoint: 'EP', deployment: 'Blue' }, 'ConcurrentRequests', 0, Infinity).length, 10);
});

test('bounded: a day of samples keeps the retention only, in a fixed allocation; stale series are pruned', () => {
  const s = new MetricStore({ retentionMs: 60_000 });
  for (let i = 0; i < 86_400; i++) s.record(D, 'RequestsPerMinute', T0 + i * 1000, i);
  const all = s.series(D, 'RequestsPerMinute', 0, Infinity);
  assert.equal(all.length, 61);
  assert.deepEqual(all[0], [T0 + (86_400 - 61) * 1000, 86_400 - 61]);
  assert.deepEqual(all.at(-1), [T0 + 86_399_000, 86_399]);
  assert.equal(s.footprint().samplesAllocated, 61);
  // Default retention: an hour of one-second samples at most.
  const h = new MetricStore();
  for (let i = 0; i < 5000; i++) h.record(D, 'RequestsPerMinute', T0 + i * 1000, i);
  assert.equal(h.footprint().samplesAllocated, 3601);
  assert.equal(h.series(D, 'RequestsPerMinute', 0, Infinity).length, 3601);
  // A resource that stopped reporting goes at the first prune after its retention.
  s.record(E, 'RequestsPerMinute', T0 + 86_399_000, 1);
  s.prune(T0 + 86_399_000 + 60_001);
  assert.deepEqual(s.footprint(), { resources: 0, series: 0, samplesAllocated: 0 });
});

test('a sampler that paused: what the ring still holds beyond the retention is not returned', () => {
  const s = new MetricStore({ retentionMs: 10_000 });
  s.record(D, 'ConcurrentRequests', T0, 1);
  s.record(D, 'ConcurrentRequests', T0 + 60_000, 2);
  assert.deepEqual(s.series(D, 'ConcurrentRequests', 0, Infinity), [[T0 + 60_000, 2]]);
});

/** A sampler over meters and usage readings the test sets, at times the test sets. */
function rig() {
  const store = new MetricStore();
  const blue = new DeploymentMeters('ep', 'blue');
  const green = new DeploymentMeters('ep', 'green');
  const meters = [blue, green];
  let now = T0;
  let usage: UsageReading[] = [];
  const sampler = new Sampler({ store, meters: () => meters, usage: async () => usage, clock: () => now });
  return {
    store,
    blue,
    green,
    meters,
    sampler,
    at: async (t: number, u: UsageReading[] = usage) => {
      now = T0 + t;
      usage = u;
      await sampler.tick();
    },
    last: (r: { endpoint: string; deployment?: string }, m: Parameters<MetricStore['latest']>[1]) => store.latest(r, m)?.[1],
  };
}

function answer(m: DeploymentMeters, n: number, seconds: number): void {
  for (let i = 0; i < n; i++) m.requestDuration.observe(seconds);
}

test('sampler: concurrency, queue, capacity, requests per minute and latency per deployment and endpoint', async () => {
  const r = rig();
  answer(r.blue, 500, 0.1); // answered before the sampler started: not in any window
  await r.at(0);
  assert.equal(r.last(D, 'RequestsPerMinute'), 0);
  assert.equal(r.last(D, 'RequestLatency'), undefined);

  r.blue.inFlight = 3;
  r.blue.queued = 2;
  r.blue.readyInstances = 2;
  r.green.inFlight = 1;
  r.green.readyInstances = 1;
  answer(r.blue, 10, 0.02);
  answer(r.green, 30, 0.06);
  await r.at(1000);
  assert.equal(r.last(D, 'ConcurrentRequests'), 3);
  assert.equal(r.last(D, 'QueuedRequests'), 2);
  assert.equal(r.last(D, 'DeploymentCapacity'), 2);
  assert.equal(r.last(D, 'RequestsPerMinute'), 10);
  assert.ok(Math.abs(r.last(D, 'RequestLatency')! - 20) < 1e-9);
  // The endpoint: sums, and the latency of all its answered requests.
  assert.equal(r.last(E, 'ConcurrentRequests'), 4);
  assert.equal(r.last(E, 'QueuedRequests'), 2);
  assert.equal(r.last(E, 'DeploymentCapacity'), 3);
  assert.equal(r.last(E, 'RequestsPerMinute'), 40);
  assert.ok(Math.abs(r.last(E, 'RequestLatency')! - (10 * 20 + 30 * 60) / 40) < 1e-9);

  // Latency is of the last interval only; an interval without answers has no latency sample.
  answer(r.blue, 5, 0.2);
  await r.at(2000);
  assert.ok(Math.abs(r.last(D, 'RequestLatency')! - 200) < 1e-9);
  await r.at(3000);
  assert.equal(r.store.latest(D, 'RequestLatency')![0], T0 + 2000);
  assert.equal(r.last(D, 'RequestsPerMinute'), 15);

  // A minute on: the first interval's requests leave the per-minute count.
  for (let t = 4000; t <= 61_000; t += 1000) await r.at(t);
  assert.equal(r.last(D, 'RequestsPerMinute'), 5);
  await r.at(62_000);
  assert.equal(r.last(D, 'RequestsPerMinute'), 0);
  assert.equal(r.last(E, 'RequestsPerMinute'), 0);
});

test('sampler: CPU and memory from instance usage, a restart, and the Prometheus gauges', async () => {
  const r = rig();
  const u = (id: string, cpuSeconds: number, memoryBytes: number, deployment = 'blue'): UsageReading => ({ id, endpoint: 'ep', deployment, cpuSeconds, memoryBytes, cpus: 2, memoryLimitBytes: 1000 });
  await r.at(0, [u('i1', 10, 100), u('i2', 50, 300)]);
  // CPU needs two readings; memory one.
  assert.equal(r.last(D, 'CpuUtilizationPercentage'), undefined);
  assert.equal(r.last(D, 'MemoryUtilizationPercentage'), 20);
  assert.ok(Number.isNaN(r.blue.cpuUtilizationPercent));
  assert.equal(r.blue.memoryUtilizationPercent, 20);

  // i1 used 1 CPU of its 2 for 2 s (50%), i2 2 CPUs (100%): the deployment's mean is 75%.
  await r.at(2000, [u('i1', 12, 100), u('i2', 54, 300)]);
  assert.equal(r.last(D, 'CpuUtilizationPercentage'), 75);
  assert.equal(r.blue.cpuUtilizationPercent, 75);
  assert.equal(r.last(E, 'CpuUtilizationPercentage'), 75);

  // i2 restarted (less CPU time than before): no value from it this time, a new baseline.
  await r.at(3000, [u('i1', 12.5, 100), u('i2', 0.1, 500), u('g1', 0, 1000, 'green')]);
  assert.equal(r.last(D, 'CpuUtilizationPercentage'), 25);
  assert.equal(r.last(D, 'MemoryUtilizationPercentage'), 30);
  assert.equal(r.last({ endpoint: 'ep', deployment: 'green' }, 'MemoryUtilizationPercentage'), 100);
  assert.equal(r.last(E, 'MemoryUtilizationPercentage'), (10 + 50 + 100) / 3);
  await r.at(4000, [u('i1', 12.5, 100), u('i2', 1.1, 500), u('g1', 0, 1000, 'green')]);
  assert.equal(r.last(D, 'CpuUtilizationPercentage'), 25); // (0 + 50) / 2
  assert.equal(r.last(E, 'CpuUtilizationPercentage'), 50 / 3);

  // No instances left: no CPU or memory sample, and the gauge is not exported.
  await r.at(5000, []);
  assert.equal(r.store.latest(D, 'CpuUtilizationPercentage')![0], T0 + 4000);
  assert.ok(Number.isNaN(r.blue.cpuUtilizationPercent));

  // Exported on /metrics for a live deployment (the registry reads the process-wide meters).
  const m = deploymentMeters('prom-ep', 'prom-d');
  m.cpuUtilizationPercent = 37.5;
  m.memoryUtilizationPercent = 12.25;
  const text = await registry.metrics();
  assert.match(text, /# HELP infergate_cpu_utilization_percent .*Azure: CpuUtilizationPercentage/);
  assert.match(text, /infergate_cpu_utilization_percent\{endpoint="prom-ep",deployment="prom-d"\} 37\.5/);
  assert.match(text, /infergate_memory_utilization_percent\{endpoint="prom-ep",deployment="prom-d"\} 12\.25/);
  m.live = false;
  assert.doesNotMatch(await registry.metrics(), /utilization_percent\{endpoint="prom-ep"/);
});

test('sampler: a deleted deployment and endpoint lose their series; created again, they start afresh', async () => {
  const r = rig();
  answer(r.green, 7, 0.01);
  await r.at(0);
  answer(r.green, 3, 0.01);
  await r.at(1000);
  assert.equal(r.last({ endpoint: 'ep', deployment: 'green' }, 'RequestsPerMinute'), 3);
  r.green.live = false;
  await r.at(2000);
  assert.deepEqual(r.store.series({ endpoint: 'ep', deployment: 'green' }, 'RequestsPerMinute', 0, Infinity), []);
  assert.equal(r.last(D, 'RequestsPerMinute'), 0);
  // Created again: the meters kept their counts; nothing of before is counted.
  r.green.live = true;
  await r.at(3000);
  assert.equal(r.last({ endpoint: 'ep', deployment: 'green' }, 'RequestsPerMinute'), 0);
  // The whole endpoint gone.
  r.meters.length = 0;
  await r.at(4000);
  assert.equal(r.store.footprint().resources, 0);
});

test('sampler: a failing usage read is logged once and the router metrics go on', async () => {
  const store = new MetricStore();
  const lines: string[] = [];
  const m = new DeploymentMeters('ep', 'blue');
  m.inFlight = 4;
  let now = T0;
  const sampler = new Sampler({ store, meters: () => [m], usage: () => Promise.reject(new Error('boom')), clock: () => now, log: (l) => lines.push(l) });
  await sampler.tick();
  now += 1000;
  await sampler.tick();
  assert.equal(lines.length, 1);
  assert.match(lines[0], /boom/);
  assert.equal(store.series(D, 'ConcurrentRequests', 0, Infinity).length, 2);
});

test('sampler timer: samples every interval on its own, and a slow usage read never runs twice at once', async () => {
  const store = new MetricStore();
  const m = new DeploymentMeters('ep', 'blue');
  let reading = 0;
  let most = 0;
  const sampler = new Sampler({
    store,
    meters: () => [m],
    intervalMs: 20,
    usage: async () => {
      most = Math.max(most, ++reading);
      // A real process whose exit takes longer than the interval, as a slow /proc or cgroup read would.
      await new Promise((resolve) => spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60)']).once('exit', resolve));
      reading--;
      return [];
    },
  });
  sampler.start();
  const end = Date.now() + 10_000;
  while (store.series(D, 'ConcurrentRequests', 0, Infinity).length < 3 && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  await sampler.stop();
  assert.ok(store.series(D, 'ConcurrentRequests', 0, Infinity).length >= 3);
  assert.equal(most, 1);
});
