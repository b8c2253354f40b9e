import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { AutoscaleEvent, AutoscaleProfile, AutoscaleRule, AutoscaleSetting } from '../spec/autoscale.js';
import type { DeploymentSpec, ScaleSettings } from '../spec/types.js';
import type { StoredAutoscaleSetting, StoredDeployment } from '../store/types.js';
import { waitFor } from '../util/wait-testing.js';
import { Autoscaler, type AutoscaleStore } from './autoscaler.js';
import type { MetricName, MetricReader, ResourceRef, Scaler } from './types.js';

const T0 = Date.parse('2026-03-04T12:00:00Z');

class FakeStore implements AutoscaleStore {
  settings: StoredAutoscaleSetting[] = [];
  deployments: StoredDeployment[] = [];
  events: AutoscaleEvent[] = [];
  listAutoscaleSettings(): StoredAutoscaleSetting[] {
    return this.settings;
  }
  appendAutoscaleEvent(event: AutoscaleEvent): void {
    this.events.push(event);
  }
  listDeployments(): StoredDeployment[] {
    return this.deployments;
  }
}

/** Constant readings per `<deployment>:<metric>`, one sample a second; change them between evaluations. */
class FakeMetrics implements MetricReader {
  values = new Map<string, number>();
  set(deployment: string, metric: MetricName, value: number | undefined): void {
    if (value === undefined) this.values.delete(`${deployment}:${metric}`);
    else this.values.set(`${deployment}:${metric}`, value);
  }
  series(resource: ResourceRef, metric: MetricName, from: number, to: number): Array<readonly [number, number]> {
    const v = this.values.get(`${resource.deployment ?? 'endpoint'}:${metric}`);
    if (v === undefined) return [];
    const out: Array<readonly [number, number]> = [];
    for (let t = Math.ceil(from / 1000) * 1000; t <= to; t += 1000) out.push([t, v]);
    return out;
  }
}

class FakeScaler implements Scaler {
  counts = new Map<string, number>();
  calls: Array<[string, number, string]> = [];
  notes: string[] = [];
  /** Counts above this throw, as a quota would. */
  quota = Infinity;
  /** When set, scale() waits for it (an instance that takes its time to start). */
  gate: Promise<void> | undefined;
  capacity(endpoint: string, deployment: string): number | undefined {
    return this.counts.get(`${endpoint}/${deployment}`);
  }
  async scale(endpoint: string, deployment: string, count: number, reason: string): Promise<void> {
    this.calls.push([`${endpoint}/${deployment}`, count, reason]);
    await this.gate;
    if (count > this.quota) throw new Error(`instance quota exceeded: ${count} instances asked, ${this.quota} allowed`);
    this.counts.set(`${endpoint}/${deployment}`, count);
  }
  note(endpoint: string, deployment: string, line: string): void {
    this.notes.push(`${endpoint}/${deployment}: ${line}`);
  }
}

function rule(metricName: string, operator: 'GreaterThan' | 'LessThan', threshold: number, direction: 'Increase' | 'Decrease', value: number, cooldown = 'PT5M'): AutoscaleRule {
  return {
    metricTrigger: {
      metricName,
      metricNamespace: '',
      metricResourceUri: '/workspaces/ws/onlineEndpoints/ep/deployments/blue',
      timeGrain: 'PT1M',
      statistic: 'Average',
      timeWindow: 'PT1M',
      timeAggregation: 'Average',
      operator,
      threshold,
      dividePerInstance: false,
    },
    scaleAction: { direction, type: 'ChangeCount', value: String(value), cooldown },
  };
}

function stored(name: string, profiles: AutoscaleProfile[], options: { enabled?: boolean; deployment?: string } = {}): StoredAutoscaleSetting {
  const deployment = options.deployment ?? 'blue';
  const setting: AutoscaleSetting = {
    id: `/workspaces/ws/autoscalesettings/${name}`,
    name,
    location: 'local',
    type: 'Microsoft.Insights/autoscaleSettings',
    targetResourceUri: `/workspaces/ws/onlineEndpoints/ep/deployments/${deployment}`,
    enabled: options.enabled ?? true,
    profiles,
    notifications: [],
    tags: {},
  };
  return { setting, endpoint: 'ep', deployment, createdAt: '', updatedAt: '' };
}

function deployment(name: string, scale: ScaleSettings, maxConcurrent = 1): StoredDeployment {
  const spec = {
    name,
    endpointName: 'ep',
    type: 'managed',
    instanceCount: 1,
    scaleSettings: scale,
    requestSettings: { requestTimeoutMs: 5000, maxConcurrentRequestsPerInstance: maxConcurrent, maxQueueWaitMs: 500 },
  } as unknown as DeploymentSpec;
  return { spec, generation: 1, createdAt: '', updatedAt: '', status: { provisioningState: 'Succeeded', observedGeneration: 1, updatedAt: '' } };
}

function rig(options: { idleMs?: number; intervalMs?: number; clock?: () => number } = {}) {
  const store = new FakeStore();
  const metrics = new FakeMetrics();
  const scaler = new FakeScaler();
  const lines: string[] = [];
  let now = T0;
  const autoscaler = new Autoscaler({ store, metrics, scaler, clock: options.clock ?? (() => now), log: (l) => lines.push(l), idleMs: options.idleMs, intervalMs: options.intervalMs });
  return { store, metrics, scaler, lines, autoscaler, advance: (ms: number) => (now += ms) };
}

const cpuProfile: AutoscaleProfile = {
  name: 'default',
  capacity: { minimum: '2', maximum: '5', default: '2' },
  rules: [rule('CpuUtilizationPercentage', 'GreaterThan', 70, 'Increase', 2), rule('CpuUtilizationPercentage', 'LessThan', 25, 'Decrease', 1)],
};

test('a firing rule scales through the Scaler and is recorded in the history, get-logs and the log', async () => {
  const { store, metrics, scaler, lines, autoscaler } = rig();
  store.settings.push(stored('as1', [cpuProfile]));
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls, [['ep/blue', 4, 'autoscale (CpuUtilizationPercentage > 70 avg 1m)']]);
  assert.equal(store.events.length, 1);
  const e = store.events[0];
  assert.deepEqual([e.setting, e.profile, e.outcome, e.from, e.to, e.rule, e.value], ['as1', 'default', 'scaled', 2, 4, 'CpuUtilizationPercentage > 70 avg 1m', 90]);
  assert.equal(e.time, new Date(T0).toISOString());
  assert.match(scaler.notes[0], /^ep\/blue: autoscale as1: scaled 2 → 4 — scale out 2 → 4/);
  assert.match(lines[0], /CpuUtilizationPercentage > 70 avg 1m: 90 \(fired\)/);
  assert.deepEqual(autoscaler.history('AS1'), store.events);
});

test('cooldown blocks the next action and is recorded once, not on every tick; then the count stops at the maximum', async () => {
  const { store, metrics, scaler, autoscaler, advance } = rig();
  store.settings.push(stored('as1', [cpuProfile]));
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  await autoscaler.evaluateNow();
  for (let i = 0; i < 5; i++) {
    advance(5000);
    await autoscaler.evaluateNow();
  }
  assert.equal(scaler.calls.length, 1);
  assert.deepEqual(store.events.map((e) => e.outcome), ['scaled', 'cooldown']);
  advance(300_000);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [4, 5]);
  advance(300_000);
  await autoscaler.evaluateNow();
  advance(5000);
  await autoscaler.evaluateNow();
  assert.deepEqual(store.events.map((e) => `${e.outcome} ${e.to}`), ['scaled 4', 'cooldown 4', 'scaled 5', 'limited 5']);
  // Load gone: after the cooldown it scales in by 1, recorded again.
  metrics.set('blue', 'CpuUtilizationPercentage', 5);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [4, 5, 4]);
});

test('a quota refusal is recorded as limited with its message and the count stays', async () => {
  const { store, metrics, scaler, autoscaler, advance } = rig();
  store.settings.push(stored('as1', [cpuProfile]));
  scaler.counts.set('ep/blue', 2);
  scaler.quota = 3;
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  await autoscaler.evaluateNow();
  advance(5000);
  await autoscaler.evaluateNow();
  assert.equal(scaler.counts.get('ep/blue'), 2);
  assert.equal(scaler.calls.length, 2, 'no cooldown starts from an action that did not happen');
  assert.equal(store.events.length, 1, 'the same refusal is recorded once');
  assert.equal(store.events[0].outcome, 'limited');
  assert.match(store.events[0].message, /not applied: instance quota exceeded: 4 instances asked, 3 allowed/);
});

test('disabled settings and settings whose deployment is gone do nothing; missing metrics bring the count up to default', async () => {
  const { store, scaler, autoscaler } = rig();
  store.settings.push(stored('off', [cpuProfile], { enabled: false }), stored('gone', [cpuProfile], { deployment: 'green' }));
  scaler.counts.set('ep/blue', 1);
  await autoscaler.evaluateNow();
  assert.equal(scaler.calls.length, 0);
  assert.equal(store.events.length, 0);

  store.settings.push(stored('on', [{ ...cpuProfile, capacity: { minimum: '1', maximum: '5', default: '3' } }]));
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [3]);
  assert.equal(store.events[0].outcome, 'metrics-missing');
});

test('a deployment still being created or being deleted is left alone', async () => {
  const { store, metrics, scaler, autoscaler } = rig();
  store.settings.push(stored('as1', [cpuProfile]));
  const d = deployment('blue', { type: 'default' });
  d.status.provisioningState = 'Creating';
  store.deployments.push(d);
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  await autoscaler.evaluateNow();
  assert.equal(scaler.calls.length, 0);
  d.status.provisioningState = 'Succeeded';
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [4]);
});

test("a deployment the user is updating, or that failed, is left alone until the operation is over", async () => {
  const { store, metrics, scaler, autoscaler } = rig();
  store.settings.push(stored('as1', [cpuProfile]));
  const d = deployment('blue', { type: 'default' });
  store.deployments.push(d);
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  for (const state of ['Updating', 'Failed'] as const) {
    d.status.provisioningState = state;
    await autoscaler.evaluateNow();
    assert.equal(scaler.calls.length, 0, `no scale while ${state}`);
  }
  // Its own scales leave a deployment Scaling: that does not stop the next decision.
  d.status.provisioningState = 'Scaling';
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [4]);
});

test('a deleted setting takes its cooldown and in-memory history with it; one created again under its name starts afresh', async () => {
  const { store, metrics, scaler, autoscaler, advance } = rig();
  store.settings.push(stored('as1', [cpuProfile]));
  store.deployments.push(deployment('blue', { type: 'default' }));
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  await autoscaler.evaluateNow();
  assert.equal(autoscaler.history('as1').length, 1);
  store.settings = [];
  advance(5000);
  await autoscaler.evaluateNow();
  assert.deepEqual(autoscaler.history('as1'), [], 'forgotten with its setting');
  store.settings.push(stored('as1', [cpuProfile]));
  advance(5000);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [4, 5], 'no cooldown inherited from the deleted setting');
  assert.deepEqual(autoscaler.history('as1').map((e) => e.outcome), ['scaled']);
  // A target_utilization deployment's history goes with the deployment.
  store.deployments = [deployment('green', tu(1, 3))];
  scaler.counts.set('ep/green', 5);
  await autoscaler.evaluateNow();
  assert.equal(autoscaler.history('ep/green').length, 1);
  store.deployments = [];
  store.settings = [];
  await autoscaler.evaluateNow();
  assert.deepEqual(autoscaler.history('ep/green'), []);
});

test('a scale call still running is not repeated by the next tick', async () => {
  const { store, metrics, scaler, autoscaler, advance } = rig();
  store.settings.push(stored('as1', [{ ...cpuProfile, rules: [rule('CpuUtilizationPercentage', 'GreaterThan', 70, 'Increase', 1, 'PT0S')] }]));
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  let open!: () => void;
  scaler.gate = new Promise((r) => (open = r));
  const first = autoscaler.evaluateNow();
  await waitFor('the first scale call', () => scaler.calls.length === 1);
  advance(10_000);
  const second = autoscaler.evaluateNow();
  await new Promise((r) => setImmediate(r));
  assert.equal(scaler.calls.length, 1, 'no second call while the first runs');
  open();
  await Promise.all([first, second]);
  assert.equal(scaler.counts.get('ep/blue'), 3);
});

// ---- target_utilization ------------------------------------------------------------------------------------

const tu = (min: number, max: number, target = 70, pollingInterval = 1): ScaleSettings => ({ type: 'target_utilization', minInstances: min, maxInstances: max, pollingInterval, targetUtilizationPercentage: target });

test('target_utilization: scales out at once to ceil(load ÷ (slots × target)), clamped; in after 3 polls below', async () => {
  const { store, metrics, scaler, autoscaler, advance } = rig();
  store.deployments.push(deployment('blue', tu(1, 5), 2));
  scaler.counts.set('ep/blue', 1);
  // 2 in flight + 1 queued on 1 instance of 2 slots: 150 %, desired ceil(3 / 1.4) = 3.
  metrics.set('blue', 'ConcurrentRequests', 2);
  metrics.set('blue', 'QueuedRequests', 1);
  metrics.set('blue', 'DeploymentCapacity', 1);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [3]);
  const out = autoscaler.history('ep/blue')[0];
  assert.deepEqual([out.outcome, out.from, out.to, out.rule, out.value], ['scaled', 1, 3, 'target_utilization 70%', 150]);
  assert.equal(store.events.length, 0, 'target_utilization decisions have no setting to be stored under');
  assert.match(scaler.notes[0], /utilization 150% \(in-flight 2 \+ queued 1 over 2 × 1 slots\), target 70%/);

  // Within 10 % of the target: nothing changes (3 ready × 2 slots × 70 % = 4.2).
  metrics.set('blue', 'DeploymentCapacity', 3);
  metrics.set('blue', 'ConcurrentRequests', 4);
  metrics.set('blue', 'QueuedRequests', 0);
  advance(1000);
  await autoscaler.evaluateNow();
  assert.equal(scaler.calls.length, 1);

  // Load drops to 1: desired 1, but only after three polls in a row want fewer.
  metrics.set('blue', 'ConcurrentRequests', 1);
  for (let i = 0; i < 2; i++) {
    advance(1000);
    await autoscaler.evaluateNow();
  }
  assert.equal(scaler.calls.length, 1);
  // One busy poll in between starts the count again.
  metrics.set('blue', 'ConcurrentRequests', 4);
  advance(1000);
  await autoscaler.evaluateNow();
  metrics.set('blue', 'ConcurrentRequests', 1);
  for (let i = 0; i < 2; i++) {
    advance(1000);
    await autoscaler.evaluateNow();
  }
  assert.equal(scaler.calls.length, 1);
  advance(1000);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [3, 1]);
});

test('target_utilization: at max_instances the limit is recorded once; instances still starting are not scaled in', async () => {
  const { metrics, scaler, autoscaler, store, advance } = rig();
  store.deployments.push(deployment('blue', tu(1, 2)));
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'ConcurrentRequests', 8);
  metrics.set('blue', 'DeploymentCapacity', 2);
  for (let i = 0; i < 3; i++) {
    advance(1000);
    await autoscaler.evaluateNow();
  }
  assert.deepEqual(autoscaler.history('ep/blue').map((e) => e.outcome), ['limited']);
  assert.match(autoscaler.history('ep/blue')[0].message, /asks for 12 instances; 2 is max_instances/);
  // 1 of 2 ready and light load: the starting one is not taken away.
  metrics.set('blue', 'ConcurrentRequests', 0.5);
  metrics.set('blue', 'DeploymentCapacity', 1);
  for (let i = 0; i < 5; i++) {
    advance(1000);
    await autoscaler.evaluateNow();
  }
  assert.deepEqual(scaler.calls, []);
});

test('target_utilization with min_instances 0: to zero only after the idle period, back up when requests queue', async () => {
  const { metrics, scaler, autoscaler, store, advance } = rig({ idleMs: 10_000 });
  store.deployments.push(deployment('blue', tu(0, 3)));
  scaler.counts.set('ep/blue', 1);
  metrics.set('blue', 'ConcurrentRequests', 0);
  metrics.set('blue', 'QueuedRequests', 0);
  metrics.set('blue', 'DeploymentCapacity', 1);
  for (let t = 0; t < 10_000; t += 1000) {
    await autoscaler.evaluateNow();
    advance(1000);
  }
  assert.deepEqual(scaler.calls, [], 'one instance is kept until the deployment has been idle for idleMs');
  for (let i = 0; i < 3; i++) {
    await autoscaler.evaluateNow();
    advance(1000);
  }
  assert.deepEqual(scaler.calls.map((c) => c[1]), [0]);
  // A request queues while there is no instance (H10's router holds it): up from zero at the next poll.
  metrics.set('blue', 'DeploymentCapacity', 0);
  metrics.set('blue', 'QueuedRequests', 1);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [0, 2]);
  assert.match(autoscaler.history('ep/blue')[1].message, /no ready instance/);
});

test('target_utilization: a count outside [min, max] moves in; missing metrics change nothing; polling follows polling_interval', async () => {
  const { metrics, scaler, autoscaler, store, advance } = rig();
  store.deployments.push(deployment('blue', tu(2, 4, 70, 3)));
  scaler.counts.set('ep/blue', 1);
  await autoscaler.evaluateNow();
  assert.deepEqual(scaler.calls.map((c) => c[1]), [2]);
  advance(3000);
  await autoscaler.evaluateNow();
  assert.equal(autoscaler.history('ep/blue').at(-1)?.outcome, 'metrics-missing');
  assert.equal(scaler.calls.length, 1);
  // Timer-driven evaluation: with polling_interval 3 s, a tick 1 s later does not poll.
  metrics.set('blue', 'ConcurrentRequests', 10);
  metrics.set('blue', 'DeploymentCapacity', 2);
  const tick = (autoscaler as unknown as { tick(force: boolean): Promise<void> }).tick.bind(autoscaler);
  advance(1000);
  await tick(false);
  assert.equal(scaler.calls.length, 1);
  advance(2000);
  await tick(false);
  assert.deepEqual(scaler.calls.map((c) => c[1]), [2, 4]);
});

test('an autoscale setting on a target_utilization deployment is ignored, and says so once', async () => {
  const { metrics, scaler, autoscaler, store, advance } = rig();
  store.deployments.push(deployment('blue', tu(1, 5)));
  store.settings.push(stored('as1', [cpuProfile]));
  scaler.counts.set('ep/blue', 2);
  metrics.set('blue', 'CpuUtilizationPercentage', 90);
  metrics.set('blue', 'ConcurrentRequests', 1);
  metrics.set('blue', 'DeploymentCapacity', 2);
  await autoscaler.evaluateNow();
  advance(5000);
  await autoscaler.evaluateNow();
  assert.equal(store.events.length, 1);
  assert.match(store.events[0].message, /ignored: the deployment scales itself with scale_settings type target_utilization/);
  assert.ok(!scaler.calls.some((c) => c[1] === 4), 'the CPU rule did not act');
});

test('the timer reacts within the polling interval on real time', async () => {
  const { metrics, scaler, autoscaler, store } = rig({ clock: Date.now, intervalMs: 5000 });
  store.deployments.push(deployment('blue', tu(1, 3)));
  scaler.counts.set('ep/blue', 1);
  metrics.set('blue', 'ConcurrentRequests', 3);
  metrics.set('blue', 'DeploymentCapacity', 1);
  const started = Date.now();
  autoscaler.start();
  try {
    await waitFor('a scale-out', () => scaler.calls.length > 0, 5000);
  } finally {
    await autoscaler.stop();
  }
  assert.deepEqual(scaler.calls.map((c) => c[1]), [3]);
  assert.ok(Date.now() - started <= 2500, `took ${Date.now() - started} ms`);
});
