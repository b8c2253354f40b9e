import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { AutoscaleProfile, AutoscaleRule, AutoscaleSetting } from '../spec/autoscale.js';
import { aggregate, chooseProfile, decide, describeRule, instantIn, zoneOf } from './engine.js';
import type { MetricName, MetricReader, ResourceRef } from './types.js';

const DEPLOYMENT_ID = '/workspaces/ws/onlineEndpoints/my-endpoint/deployments/blue';
const ENDPOINT_ID = '/workspaces/ws/onlineendpoints/my-endpoint';

/** A fake MetricReader: a constant value per (resource, metric), one sample a second over the asked window. */
function metrics(values: Record<string, number | undefined>): MetricReader & { asked: string[] } {
  const asked: string[] = [];
  return {
    asked,
    series(resource: ResourceRef, metric: MetricName, from: number, to: number) {
      const key = `${resource.deployment ?? 'endpoint'}:${metric}`;
      asked.push(`${resource.endpoint}/${key}`);
      const v = values[key];
      if (v === undefined) return [];
      const out: Array<readonly [number, number]> = [];
      for (let t = Math.ceil(from / 1000) * 1000; t <= to; t += 1000) out.push([t, v]);
      return out;
    },
  };
}

function rule(condition: string, action: string, options: { resource?: string; cooldown?: string; grain?: string } = {}): AutoscaleRule {
  const [metricName, op, threshold, agg, window] = condition.split(' ');
  const ops: Record<string, AutoscaleRule['metricTrigger']['operator']> = { '>': 'GreaterThan', '<': 'LessThan', '>=': 'GreaterThanOrEqual', '<=': 'LessThanOrEqual' };
  const aggs: Record<string, AutoscaleRule['metricTrigger']['timeAggregation']> = { avg: 'Average', max: 'Maximum', min: 'Minimum', last: 'Last', total: 'Total', count: 'Count' };
  const [dir, amount] = action.split(' ');
  const percent = amount.endsWith('%');
  return {
    metricTrigger: {
      metricName,
      metricNamespace: '',
      metricResourceUri: options.resource ?? DEPLOYMENT_ID,
      timeGrain: options.grain ?? 'PT1M',
      statistic: 'Average',
      timeWindow: `PT${window.toUpperCase()}`,
      timeAggregation: aggs[agg],
      operator: ops[op],
      threshold: Number(threshold),
      dividePerInstance: false,
    },
    scaleAction: {
      direction: dir === 'out' ? 'Increase' : dir === 'in' ? 'Decrease' : 'Increase',
      type: dir === 'to' ? 'ExactCount' : percent ? 'PercentChangeCount' : 'ChangeCount',
      value: amount.replace('%', ''),
      cooldown: options.cooldown ?? 'PT5M',
    },
  };
}

function profile(name: string, [min, max, def]: [number, number, number], rules: AutoscaleRule[] = [], extra: Partial<AutoscaleProfile> = {}): AutoscaleProfile {
  return { name, capacity: { minimum: String(min), maximum: String(max), default: String(def) }, rules, ...extra };
}

function setting(profiles: AutoscaleProfile[], enabled = true): AutoscaleSetting {
  return {
    id: '/workspaces/ws/autoscalesettings/s1',
    name: 's1',
    location: 'local',
    type: 'Microsoft.Insights/autoscaleSettings',
    targetResourceUri: DEPLOYMENT_ID,
    enabled,
    profiles,
    notifications: [],
    tags: {},
  };
}

const NOW = Date.parse('2026-03-04T12:00:00Z'); // a Wednesday
const cpuOut = rule('CpuUtilizationPercentage > 70 avg 5m', 'out 2');
const cpuIn = rule('CpuUtilizationPercentage < 25 avg 5m', 'in 1');

test('describeRule words a rule as az does', () => {
  assert.equal(describeRule(cpuOut), 'CpuUtilizationPercentage > 70 avg 5m');
  assert.equal(describeRule(rule('RequestLatency > 70 avg 30s', 'out 1')), 'RequestLatency > 70 avg 30s');
});

test('the contract §7.2 rules: high CPU scales out by 2, low CPU in by 1, otherwise nothing', () => {
  const s = setting([profile('default', [2, 5, 2], [cpuOut, cpuIn])]);
  const high = decide(s, { now: NOW, capacity: 2, metrics: metrics({ 'blue:CpuUtilizationPercentage': 85 }) });
  assert.equal(high.outcome, 'scaled');
  assert.equal(high.to, 4);
  assert.equal(high.rule, 'CpuUtilizationPercentage > 70 avg 5m');
  assert.equal(high.value, 85);
  assert.equal(high.cooldownMs, 300_000);
  assert.match(high.message, /scale out 2 → 4/);

  const low = decide(s, { now: NOW, capacity: 4, metrics: metrics({ 'blue:CpuUtilizationPercentage': 10 }) });
  assert.deepEqual([low.outcome, low.to], ['scaled', 3]);
  const mid = decide(s, { now: NOW, capacity: 3, metrics: metrics({ 'blue:CpuUtilizationPercentage': 50 }) });
  assert.deepEqual([mid.outcome, mid.to], ['unchanged', 3]);
});

test('scale out: any increase rule fires, the largest result wins; a rule reads its own resource', () => {
  const latency = rule('RequestLatency > 70 avg 5m', 'out 1', { resource: ENDPOINT_ID });
  const s = setting([profile('default', [1, 10, 1], [rule('CpuUtilizationPercentage > 70 avg 5m', 'out 1'), latency, rule('ConcurrentRequests > 4 avg 1m', 'out 3')])]);
  const m = metrics({ 'blue:CpuUtilizationPercentage': 90, 'endpoint:RequestLatency': 100, 'blue:ConcurrentRequests': 1 });
  const d = decide(s, { now: NOW, capacity: 2, metrics: m });
  assert.deepEqual([d.outcome, d.to, d.rule], ['scaled', 3, 'CpuUtilizationPercentage > 70 avg 5m']);
  assert.ok(m.asked.includes('my-endpoint/endpoint:RequestLatency'), m.asked.join());
  const busy = decide(s, { now: NOW, capacity: 2, metrics: metrics({ 'blue:CpuUtilizationPercentage': 0, 'endpoint:RequestLatency': 0, 'blue:ConcurrentRequests': 9 }) });
  assert.deepEqual([busy.to, busy.rule], [5, 'ConcurrentRequests > 4 avg 1m']);
});

test('scale in only when every decrease rule fires, by the smallest decrease', () => {
  const s = setting([profile('default', [1, 10, 1], [rule('CpuUtilizationPercentage < 25 avg 5m', 'in 2'), rule('RequestsPerMinute < 10 avg 5m', 'in 1')])]);
  const both = decide(s, { now: NOW, capacity: 5, metrics: metrics({ 'blue:CpuUtilizationPercentage': 5, 'blue:RequestsPerMinute': 3 }) });
  assert.deepEqual([both.outcome, both.to, both.rule], ['scaled', 4, 'RequestsPerMinute < 10 avg 5m']);
  const one = decide(s, { now: NOW, capacity: 5, metrics: metrics({ 'blue:CpuUtilizationPercentage': 5, 'blue:RequestsPerMinute': 50 }) });
  assert.deepEqual([one.outcome, one.to], ['unchanged', 5]);
});

test('percent changes round up; exact counts; clamping to [min, max] and at the maximum', () => {
  const pct = setting([profile('default', [1, 10, 1], [rule('CpuUtilizationPercentage > 70 avg 5m', 'out 10%')])]);
  assert.equal(decide(pct, { now: NOW, capacity: 3, metrics: metrics({ 'blue:CpuUtilizationPercentage': 99 }) }).to, 4);
  assert.equal(decide(pct, { now: NOW, capacity: 9, metrics: metrics({ 'blue:CpuUtilizationPercentage': 99 }) }).to, 10);
  const pctIn = setting([profile('default', [1, 10, 1], [rule('CpuUtilizationPercentage < 20 avg 5m', 'in 50%')])]);
  assert.equal(decide(pctIn, { now: NOW, capacity: 5, metrics: metrics({ 'blue:CpuUtilizationPercentage': 1 }) }).to, 2);

  const exact = setting([profile('default', [1, 6, 1], [rule('CpuUtilizationPercentage > 70 avg 5m', 'to 8')])]);
  assert.equal(decide(exact, { now: NOW, capacity: 2, metrics: metrics({ 'blue:CpuUtilizationPercentage': 99 }) }).to, 6);
  const atMax = decide(exact, { now: NOW, capacity: 6, metrics: metrics({ 'blue:CpuUtilizationPercentage': 99 }) });
  assert.deepEqual([atMax.outcome, atMax.to], ['limited', 6]);
  assert.match(atMax.message, /maximum/);

  const atMin = decide(setting([profile('default', [2, 6, 2], [cpuIn])]), { now: NOW, capacity: 2, metrics: metrics({ 'blue:CpuUtilizationPercentage': 1 }) });
  assert.deepEqual([atMin.outcome, atMin.to], ['unchanged', 2]);
});

test('a count outside [min, max] moves into it, even during a cooldown', () => {
  const s = setting([profile('default', [2, 5, 2], [cpuOut, cpuIn])]);
  const lastAction = { time: NOW - 1000, cooldownMs: 300_000 };
  assert.deepEqual(pick(decide(s, { now: NOW, capacity: 1, metrics: metrics({}), lastAction })), ['scaled', 1, 2]);
  assert.deepEqual(pick(decide(s, { now: NOW, capacity: 9, metrics: metrics({}), lastAction })), ['scaled', 9, 5]);
});

test('cooldown: the last action blocks a change in either direction until it ends', () => {
  const s = setting([profile('default', [1, 5, 1], [cpuOut, cpuIn])]);
  const hot = metrics({ 'blue:CpuUtilizationPercentage': 90 });
  const cold = metrics({ 'blue:CpuUtilizationPercentage': 1 });
  const lastAction = { time: NOW - 60_000, cooldownMs: 300_000 };
  const blocked = decide(s, { now: NOW, capacity: 2, metrics: hot, lastAction });
  assert.deepEqual(pick(blocked), ['cooldown', 2, 2]);
  assert.match(blocked.message, /240s left/);
  assert.deepEqual(pick(decide(s, { now: NOW, capacity: 2, metrics: cold, lastAction })), ['cooldown', 2, 2]);
  assert.deepEqual(pick(decide(s, { now: NOW + 240_000, capacity: 2, metrics: hot, lastAction })), ['scaled', 2, 4]);
});

test('missing metrics: up to capacity.default, never down; other rules still scale out', () => {
  const s = setting([profile('default', [1, 5, 3], [cpuOut, cpuIn])]);
  const below = decide(s, { now: NOW, capacity: 1, metrics: metrics({}) });
  assert.deepEqual(pick(below), ['metrics-missing', 1, 3]);
  assert.deepEqual(pick(decide(s, { now: NOW, capacity: 4, metrics: metrics({}) })), ['metrics-missing', 4, 4]);

  const two = setting([profile('default', [1, 5, 1], [cpuOut, rule('ConcurrentRequests < 1 avg 1m', 'in 1'), cpuIn])]);
  // One decrease rule without data: no scale-in.
  assert.deepEqual(pick(decide(two, { now: NOW, capacity: 3, metrics: metrics({ 'blue:CpuUtilizationPercentage': 1 }) })), ['metrics-missing', 3, 3]);
  const out = setting([profile('default', [1, 5, 1], [cpuOut, rule('RequestLatency > 70 avg 5m', 'out 1', { resource: ENDPOINT_ID })])]);
  assert.deepEqual(pick(decide(out, { now: NOW, capacity: 1, metrics: metrics({ 'blue:CpuUtilizationPercentage': 99 }) })), ['scaled', 1, 3]);
});

test('anti-flapping: a scale-in that would make a scale-out rule on the same metric fire is reduced or deferred', () => {
  // 4 instances at 40 % → 3 would be 53 %, 2 would be 80 % (> 70 fires): in by 2 becomes in by 1.
  const s = setting([profile('default', [1, 10, 1], [rule('CpuUtilizationPercentage > 70 avg 5m', 'out 1'), rule('CpuUtilizationPercentage < 45 avg 5m', 'in 2')])]);
  assert.deepEqual(pick(decide(s, { now: NOW, capacity: 4, metrics: metrics({ 'blue:CpuUtilizationPercentage': 40 }) })), ['scaled', 4, 3]);
  const deferred = decide(s, { now: NOW, capacity: 2, metrics: metrics({ 'blue:CpuUtilizationPercentage': 40 }) });
  assert.deepEqual(pick(deferred), ['unchanged', 2, 2]);
  assert.match(deferred.message, /deferred/);
});

test('dividePerInstance divides the reading by the instance count', () => {
  const r = rule('RequestsPerMinute > 100 avg 1m', 'out 1');
  r.metricTrigger.dividePerInstance = true;
  const s = setting([profile('default', [1, 10, 1], [r])]);
  assert.equal(decide(s, { now: NOW, capacity: 2, metrics: metrics({ 'blue:RequestsPerMinute': 150 }) }).to, 2);
  assert.equal(decide(s, { now: NOW, capacity: 1, metrics: metrics({ 'blue:RequestsPerMinute': 150 }) }).to, 2);
});

test('a disabled setting does nothing; a broken rule is an error decision, not a throw', () => {
  const off = decide(setting([profile('default', [2, 5, 2], [cpuOut])], false), { now: NOW, capacity: 1, metrics: metrics({}) });
  assert.deepEqual(pick(off), ['unchanged', 1, 1]);
  const bad = rule('CpuUtilizationPercentage > 70 avg 5m', 'out 1', { resource: '/subscriptions/x' });
  const err = decide(setting([profile('default', [1, 5, 1], [bad])]), { now: NOW, capacity: 1, metrics: metrics({}) });
  assert.equal(err.outcome, 'error');
  assert.match(err.message, /not a deployment or endpoint id/);
});

test('aggregation: statistic per grain, then the time aggregation over the window', () => {
  const trigger = { ...cpuOut.metricTrigger, timeGrain: 'PT10S', timeWindow: 'PT30S' };
  // Three 10 s grains: averages 1, 5, 30 (the last grain has a spike).
  const samples: Array<[number, number]> = [
    [0, 1], [5000, 1],
    [10_000, 4], [15_000, 6],
    [20_000, 0], [25_000, 60],
  ];
  assert.equal(aggregate(samples, { ...trigger, timeAggregation: 'Average' }), 12);
  assert.equal(aggregate(samples, { ...trigger, timeAggregation: 'Maximum' }), 30);
  assert.equal(aggregate(samples, { ...trigger, timeAggregation: 'Minimum' }), 1);
  assert.equal(aggregate(samples, { ...trigger, timeAggregation: 'Last' }), 30);
  assert.equal(aggregate(samples, { ...trigger, timeAggregation: 'Total' }), 36);
  assert.equal(aggregate(samples, { ...trigger, timeAggregation: 'Count' }), 6);
  assert.equal(aggregate(samples, { ...trigger, statistic: 'Max', timeAggregation: 'Maximum' }), 60);
  assert.equal(aggregate([], trigger), undefined);
  // A grain longer than the window shrinks to it: "avg 30s" with PT1M grain is the plain mean.
  assert.equal(aggregate(samples, { ...trigger, timeGrain: 'PT1M', timeAggregation: 'Average' }), 12);
});

// ---- profiles ------------------------------------------------------------------------------------------

const weekendPst = profile('weekend-profile', [2, 2, 2], [], {
  recurrence: { frequency: 'Week', schedule: { timeZone: 'Pacific Standard Time', days: ['Saturday', 'Sunday'], hours: [0], minutes: [0] } },
});
// az's companion profile that ends the weekend one (its name is JSON, as az writes it).
const weekendEnd = profile('{"name": "default", "for": "weekend-profile"}', [1, 5, 1], [cpuOut], {
  recurrence: { frequency: 'Week', schedule: { timeZone: 'Pacific Standard Time', days: ['Saturday', 'Sunday'], hours: [23], minutes: [59] } },
});
const christmas = profile('christmas', [5, 10, 5], [], { fixedDate: { timeZone: 'Europe/Berlin', start: '2026-12-24T00:00:00', end: '2026-12-26T23:59:00' } });
const base = profile('default', [1, 5, 1], [cpuOut]);

test('profile precedence: fixed date → recurring → default', () => {
  const s = setting([base, weekendPst, weekendEnd, christmas]);
  // Saturday 2026-03-07 10:00 in Los Angeles (PST, UTC-8) = 18:00 UTC.
  assert.equal(chooseProfile(s, Date.parse('2026-03-07T18:00:00Z'))?.name, 'weekend-profile');
  // Saturday 23:59:30 PST: the companion started at 23:59.
  assert.equal(chooseProfile(s, Date.parse('2026-03-08T07:59:30Z'))?.name, weekendEnd.name);
  // Still Friday 23:30 in Los Angeles although Saturday in UTC.
  assert.equal(chooseProfile(s, Date.parse('2026-03-07T07:30:00Z'))?.name, weekendEnd.name);
  // Christmas Eve (a Thursday) in Berlin: the fixed date wins over everything; it starts at 23:00 UTC the day before.
  assert.equal(chooseProfile(s, Date.parse('2026-12-23T23:00:00Z'))?.name, 'christmas');
  assert.notEqual(chooseProfile(s, Date.parse('2026-12-23T22:59:59Z'))?.name, 'christmas');
  // Christmas on a Saturday (2027 is not; use a fixed date over a weekend): fixed date beats recurring.
  const s2 = setting([base, weekendPst, weekendEnd, profile('sale', [3, 3, 3], [], { fixedDate: { timeZone: 'UTC', start: '2026-03-07T00:00:00Z', end: '2026-03-08T00:00:00Z' } })]);
  assert.equal(chooseProfile(s2, Date.parse('2026-03-07T18:00:00Z'))?.name, 'sale');
  // No recurring profile: the default one.
  assert.equal(chooseProfile(setting([base, christmas]), NOW)?.name, 'default');
  assert.equal(chooseProfile(setting([christmas]), NOW), undefined);
});

test('a recurring profile runs until the next recurring profile starts (IANA zones, hours and minutes)', () => {
  const business = profile('business', [3, 10, 3], [], {
    recurrence: { frequency: 'Week', schedule: { timeZone: 'Asia/Tokyo', days: ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'], hours: [9], minutes: [30] } },
  });
  const night = profile('night', [1, 2, 1], [], {
    recurrence: { frequency: 'Week', schedule: { timeZone: 'Asia/Tokyo', days: ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday'], hours: [18], minutes: [0] } },
  });
  const s = setting([base, business, night]);
  // Wednesday 09:29 Tokyo (UTC+9) = 00:29 UTC: still last night's profile.
  assert.equal(chooseProfile(s, Date.parse('2026-03-04T00:29:00Z'))?.name, 'night');
  assert.equal(chooseProfile(s, Date.parse('2026-03-04T00:30:00Z'))?.name, 'business');
  assert.equal(chooseProfile(s, Date.parse('2026-03-04T08:59:59Z'))?.name, 'business');
  assert.equal(chooseProfile(s, Date.parse('2026-03-04T09:00:00Z'))?.name, 'night');
  // The weekend has no start of its own: Friday's night profile runs through it.
  assert.equal(chooseProfile(s, Date.parse('2026-03-08T03:00:00Z'))?.name, 'night');
});

test('the profile chosen sets the range: the weekend profile pins the count to 2', () => {
  const s = setting([base, weekendPst, weekendEnd]);
  const saturday = Date.parse('2026-03-07T18:00:00Z');
  const d = decide(s, { now: saturday, capacity: 4, metrics: metrics({ 'blue:CpuUtilizationPercentage': 99 }) });
  assert.deepEqual([d.profile, d.outcome, d.to], ['weekend-profile', 'scaled', 2]);
});

test('time zones: Windows names and IANA names; wall times without an offset are in the profile zone', () => {
  assert.equal(zoneOf('Pacific Standard Time'), 'America/Los_Angeles');
  assert.equal(zoneOf('W. Europe Standard Time'), 'Europe/Berlin');
  assert.equal(zoneOf('Europe/Paris'), 'Europe/Paris');
  assert.match(zoneOf('UTC'), /UTC$/);
  assert.throws(() => zoneOf('Mars Standard Time'), /unknown time zone/);
  assert.equal(instantIn('2026-07-01T12:00:00', 'America/Los_Angeles'), Date.parse('2026-07-01T19:00:00Z')); // PDT
  assert.equal(instantIn('2026-01-01T12:00:00', 'America/Los_Angeles'), Date.parse('2026-01-01T20:00:00Z')); // PST
  assert.equal(instantIn('2026-01-01T12:00:00+01:00', 'America/Los_Angeles'), Date.parse('2026-01-01T11:00:00Z'));
  assert.equal(instantIn('2026-01-01', 'Asia/Tokyo'), Date.parse('2025-12-31T15:00:00Z'));
});

function pick(d: { outcome: string; from: number; to: number }): [string, number, number] {
  return [d.outcome, d.from, d.to];
}
