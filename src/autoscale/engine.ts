// The autoscale engine (issue 12 item 3): Azure Monitor's evaluation of one autoscale setting, as a pure
// function of the setting, the deployment's instance count, metric readings and the clock. No I/O: the
// runner (autoscaler.ts) applies what it returns.
//
// Azure's semantics (contract §7.1): profile precedence fixed-date → recurring → default; a recurring
// profile runs from its start until the next recurring profile starts; scale out if ANY increase rule
// fires, to the largest result; scale in only if ALL decrease rules fire, by the smallest decrease, and
// not when the reduced count would make a scale-out rule on the same metric fire at once (anti-flapping);
// the cooldown of the last action blocks further actions; results clamp to [minimum, maximum];
// capacity.default when metrics are missing and the count is below it (never a scale-in for that).
//
// Two choices of ours, both documented in docs/autoscale.md:
// - a count outside the profile's [minimum, maximum] moves into it even during a cooldown: the range is
//   what the user asked for (a profile change or `update --min-count` takes effect at once);
// - aggregation: samples (1 s apart) are grouped into timeGrain buckets aligned to the epoch, the rule's
//   statistic is applied per bucket, then timeAggregation over the buckets of timeWindow (a grain longer
//   than the window shrinks to the window, so "avg 30s" works with Azure's default PT1M grain). Count is
//   the number of samples in the window.

import type { AutoscaleEvent, AutoscaleProfile, AutoscaleRule, AutoscaleSetting, MetricOperator } from '../spec/autoscale.js';
import { durationMs, shortDuration } from './durations.js';
import { parseResourceId } from './resources.js';
import { ianaZone } from './timezones.js';
import type { MetricName, MetricReader, ResourceRef } from './types.js';

export interface DecideContext {
  /** Epoch milliseconds. */
  now: number;
  /** The deployment's instance_count now. */
  capacity: number;
  metrics: MetricReader;
  /** The last scale action of this setting and the cooldown it started. */
  lastAction?: { time: number; cooldownMs: number };
}

/** One rule's reading, for the decision's log line ("which rule, which values"). */
export interface RuleReading {
  rule: string;
  direction: 'Increase' | 'Decrease' | 'None';
  /** Undefined when the metric had no sample in the rule's window. */
  value?: number;
  fired: boolean;
  /** The count this rule asks for (when it fired). */
  result?: number;
}

/** An AutoscaleEvent without time and setting (the runner adds them), plus what the runner needs. */
export interface Decision extends Omit<AutoscaleEvent, 'time' | 'setting'> {
  /** The cooldown the action starts (the firing rule's), when `to !== from`. */
  cooldownMs: number;
  readings: RuleReading[];
}

// ---- rules ----------------------------------------------------------------------------------------------

const OPERATOR_WORD: Record<MetricOperator, string> = {
  GreaterThan: '>',
  GreaterThanOrEqual: '>=',
  Equals: '==',
  NotEquals: '!=',
  LessThan: '<',
  LessThanOrEqual: '<=',
};

const AGGREGATION_WORD: Record<AutoscaleRule['metricTrigger']['timeAggregation'], string> = {
  Average: 'avg',
  Minimum: 'min',
  Maximum: 'max',
  Total: 'total',
  Last: 'last',
  Count: 'count',
};

/** The rule's condition as az words it: "CpuUtilizationPercentage > 70 avg 5m". */
export function describeRule(rule: AutoscaleRule): string {
  const t = rule.metricTrigger;
  return `${t.metricName} ${OPERATOR_WORD[t.operator]} ${t.threshold} ${AGGREGATION_WORD[t.timeAggregation]} ${shortDuration(durationMs(t.timeWindow))}`;
}

export function compare(value: number, operator: MetricOperator, threshold: number): boolean {
  switch (operator) {
    case 'GreaterThan':
      return value > threshold;
    case 'GreaterThanOrEqual':
      return value >= threshold;
    case 'Equals':
      return value === threshold;
    case 'NotEquals':
      return value !== threshold;
    case 'LessThan':
      return value < threshold;
    case 'LessThanOrEqual':
      return value <= threshold;
  }
}

const STATISTIC: Record<AutoscaleRule['metricTrigger']['statistic'], (v: number[]) => number> = {
  Average: (v) => sum(v) / v.length,
  Min: (v) => Math.min(...v),
  Max: (v) => Math.max(...v),
  Sum: sum,
};

function sum(v: number[]): number {
  let s = 0;
  for (const x of v) s += x;
  return s;
}

/** The rule's metric over its window (module comment: per-grain statistic, then timeAggregation), or undefined. */
export function aggregate(samples: ReadonlyArray<readonly [number, number]>, trigger: AutoscaleRule['metricTrigger']): number | undefined {
  if (samples.length === 0) return undefined;
  if (trigger.timeAggregation === 'Count') return samples.length;
  const grain = Math.max(1, Math.min(durationMs(trigger.timeGrain), durationMs(trigger.timeWindow)));
  const buckets: number[][] = [];
  let key = Number.NaN;
  for (const [time, value] of samples) {
    const k = Math.floor(time / grain);
    if (k !== key) {
      buckets.push([]);
      key = k;
    }
    buckets[buckets.length - 1].push(value);
  }
  const perGrain = buckets.map(STATISTIC[trigger.statistic]);
  switch (trigger.timeAggregation) {
    case 'Average':
      return sum(perGrain) / perGrain.length;
    case 'Minimum':
      return Math.min(...perGrain);
    case 'Maximum':
      return Math.max(...perGrain);
    case 'Total':
      return sum(perGrain);
    case 'Last':
      return perGrain[perGrain.length - 1];
  }
}

/** The count a rule's scale action asks for, from `current` (not yet clamped). */
export function actionResult(action: AutoscaleRule['scaleAction'], current: number): number {
  const value = Number(action.value);
  const sign = action.direction === 'Decrease' ? -1 : action.direction === 'Increase' ? 1 : 0;
  switch (action.type) {
    case 'ChangeCount':
      return current + sign * value;
    case 'PercentChangeCount':
      // A percentage of the current count, rounded up: 10% of 3 instances is still one instance.
      return current + sign * Math.ceil((current * value) / 100);
    case 'ExactCount':
      return value;
  }
}

function ruleResource(rule: AutoscaleRule): ResourceRef | undefined {
  const parsed = parseResourceId(rule.metricTrigger.metricResourceUri);
  return parsed && { endpoint: parsed.endpoint, ...(parsed.deployment !== undefined ? { deployment: parsed.deployment } : {}) };
}

function sameMetric(a: AutoscaleRule, b: AutoscaleRule): boolean {
  return (
    a.metricTrigger.metricName.toLowerCase() === b.metricTrigger.metricName.toLowerCase() &&
    a.metricTrigger.metricResourceUri.toLowerCase() === b.metricTrigger.metricResourceUri.toLowerCase()
  );
}

// ---- time zones and profiles -------------------------------------------------------------------------------

/** The IANA zone of a profile's Windows or IANA time zone name; throws for an unknown one (settings validation refuses those first). */
export function zoneOf(name: string): string {
  const zone = ianaZone(name.trim());
  if (!zone) throw new Error(`unknown time zone '${name}'`);
  return zone;
}

interface WallTime {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
  /** 0 = Sunday. */
  weekday: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const WEEKDAY: Record<string, number> = { Sun: 0, Mon: 1, Tue: 2, Wed: 3, Thu: 4, Fri: 5, Sat: 6 };

/** The wall-clock time in a zone at an instant. */
export function wallTime(time: number, zone: string): WallTime {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      weekday: 'short',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(zone, f);
  }
  const parts: Record<string, string> = {};
  for (const p of f.formatToParts(new Date(time))) parts[p.type] = p.value;
  return {
    year: Number(parts.year),
    month: Number(parts.month),
    day: Number(parts.day),
    hour: Number(parts.hour),
    minute: Number(parts.minute),
    second: Number(parts.second) + (time % 1000 >= 0 ? time % 1000 : 1000 + (time % 1000)) / 1000,
    weekday: WEEKDAY[parts.weekday],
  };
}

const LOCAL_DATE_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?$/;

/** An instant from a fixed-date start/end: with an offset (Z, +02:00) as written, without one as wall time in `zone`. */
export function instantIn(text: string, zone: string): number {
  const m = LOCAL_DATE_TIME.exec(text.trim());
  if (!m) {
    const t = Date.parse(text);
    if (Number.isNaN(t)) throw new Error(`not a date and time: '${text}'`);
    return t;
  }
  const [y, mo, d, h, mi, s] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g)));
  const asUtc = Date.UTC(y, mo - 1, d, h, mi, s);
  // The zone's offset at the guess, then again at the corrected instant (they differ only across a DST change).
  let t = asUtc - offsetAt(asUtc, zone);
  t = asUtc - offsetAt(t, zone);
  return t;
}

function offsetAt(time: number, zone: string): number {
  const w = wallTime(time, zone);
  return Date.UTC(w.year, w.month - 1, w.day, w.hour, w.minute, Math.floor(w.second)) - Math.floor(time / 1000) * 1000;
}

const DAY_NUMBER: Record<string, number> = { sun: 0, mon: 1, tue: 2, wed: 3, thu: 4, fri: 5, sat: 6 };
const WEEK_MINUTES = 7 * 24 * 60;

/** Minutes since the profile's most recent start (any of its days × hours × minutes) in its zone. */
function minutesSinceStart(profile: AutoscaleProfile, now: number): number {
  const s = profile.recurrence!.schedule;
  const w = wallTime(now, zoneOf(s.timeZone));
  const nowMinute = w.weekday * 1440 + w.hour * 60 + w.minute + w.second / 60;
  const hours = s.hours.length ? s.hours : [0];
  const minutes = s.minutes.length ? s.minutes : [0];
  let best = Infinity;
  for (const day of s.days) {
    const d = DAY_NUMBER[day.trim().slice(0, 3).toLowerCase()];
    if (d === undefined) throw new Error(`unknown day '${day}' in profile '${profile.name}'`);
    for (const h of hours) {
      for (const m of minutes) {
        const since = (nowMinute - (d * 1440 + h * 60 + m) + WEEK_MINUTES) % WEEK_MINUTES;
        if (since < best) best = since;
      }
    }
  }
  return best;
}

/** The profile that applies at `now` (fixed-date → recurring → default), or undefined when none does. */
export function chooseProfile(setting: AutoscaleSetting, now: number): AutoscaleProfile | undefined {
  for (const p of setting.profiles) {
    if (!p.fixedDate) continue;
    const zone = zoneOf(p.fixedDate.timeZone || 'UTC');
    if (instantIn(p.fixedDate.start, zone) <= now && now <= instantIn(p.fixedDate.end, zone)) return p;
  }
  // Azure's rule: a recurring profile runs until the next recurring profile starts, so the one that
  // started most recently applies (az adds a companion profile to end one, e.g. a weekend profile).
  let recurring: AutoscaleProfile | undefined;
  let since = Infinity;
  for (const p of setting.profiles) {
    if (!p.recurrence || p.fixedDate) continue;
    const s = minutesSinceStart(p, now);
    if (s < since) {
      since = s;
      recurring = p;
    }
  }
  return recurring ?? setting.profiles.find((p) => !p.fixedDate && !p.recurrence);
}

// ---- the decision -------------------------------------------------------------------------------------------

/** Evaluates one setting once (module comment). Never throws: a broken setting is an 'error' decision. */
export function decide(setting: AutoscaleSetting, ctx: DecideContext): Decision {
  const from = ctx.capacity;
  const none = (profile: string, outcome: Decision['outcome'], message: string, readings: RuleReading[] = []): Decision => ({
    profile,
    outcome,
    from,
    to: from,
    message,
    cooldownMs: 0,
    readings,
  });
  if (!setting.enabled) return none('', 'unchanged', `autoscale setting '${setting.name}' is disabled`);
  let profile: AutoscaleProfile | undefined;
  try {
    profile = chooseProfile(setting, ctx.now);
  } catch (e) {
    return none('', 'error', (e as Error).message);
  }
  if (!profile) return none('', 'unchanged', 'no profile applies now');
  try {
    return decideInProfile(profile, ctx);
  } catch (e) {
    return none(profile.name, 'error', (e as Error).message);
  }
}

function decideInProfile(profile: AutoscaleProfile, ctx: DecideContext): Decision {
  const from = ctx.capacity;
  const min = Number(profile.capacity.minimum);
  const max = Number(profile.capacity.maximum);
  const def = Number(profile.capacity.default);
  const clamp = (n: number): number => Math.min(max, Math.max(min, n));
  const base = { profile: profile.name, from };

  if (from < min || from > max) {
    const to = clamp(from);
    return { ...base, outcome: 'scaled', to, cooldownMs: 0, readings: [], message: `instance count ${from} is outside [${min}, ${max}] of profile '${profile.name}': ${from} → ${to}` };
  }

  const readings: RuleReading[] = [];
  const values = new Map<AutoscaleRule, number>();
  for (const rule of profile.rules) {
    const t = rule.metricTrigger;
    const name = describeRule(rule);
    const resource = ruleResource(rule);
    if (!resource) throw new Error(`rule '${name}': '${t.metricResourceUri}' is not a deployment or endpoint id`);
    const samples = ctx.metrics.series(resource, t.metricName as MetricName, ctx.now - durationMs(t.timeWindow), ctx.now);
    let value = aggregate(samples, t);
    if (value !== undefined && t.dividePerInstance) value = from > 0 ? value / from : value;
    const fired = value !== undefined && rule.scaleAction.direction !== 'None' && compare(value, t.operator, t.threshold);
    if (value !== undefined) values.set(rule, value);
    readings.push({ rule: name, direction: rule.scaleAction.direction, ...(value !== undefined ? { value: round(value) } : {}), fired, ...(fired ? { result: actionResult(rule.scaleAction, from) } : {}) });
  }
  const seen = readings.map((r) => `${r.rule}: ${r.value ?? 'no data'}${r.fired ? ' (fired)' : ''}`).join('; ');
  const inCooldown = (want: number, why: string): Decision | undefined => {
    const last = ctx.lastAction;
    if (!last || ctx.now >= last.time + last.cooldownMs) return undefined;
    const left = Math.ceil((last.time + last.cooldownMs - ctx.now) / 1000);
    return { ...base, outcome: 'cooldown', to: from, cooldownMs: 0, readings, message: `${why} would scale ${from} → ${want}, but the cooldown of the last scale action has ${left}s left. ${seen}` };
  };
  const act = (rule: AutoscaleRule, to: number, what: string): Decision => {
    const why = `rule '${describeRule(rule)}'`;
    return (
      inCooldown(to, why) ?? {
        ...base,
        outcome: 'scaled',
        to,
        rule: describeRule(rule),
        value: round(values.get(rule)!),
        cooldownMs: durationMs(rule.scaleAction.cooldown),
        readings,
        message: `${what} ${from} → ${to} by ${why} (value ${round(values.get(rule)!)}). ${seen}`,
      }
    );
  };

  // Scale out: any increase rule, the largest result.
  let out: { rule: AutoscaleRule; to: number } | undefined;
  for (const rule of profile.rules) {
    if (rule.scaleAction.direction !== 'Increase' || !firedRule(rule, readings, profile)) continue;
    const to = clamp(actionResult(rule.scaleAction, from));
    if (!out || to > out.to) out = { rule, to };
  }
  if (out) {
    if (out.to > from) return act(out.rule, out.to, 'scale out');
    return { ...base, outcome: 'limited', to: from, rule: describeRule(out.rule), value: round(values.get(out.rule)!), cooldownMs: 0, readings, message: `rule '${describeRule(out.rule)}' fired, but ${from} is the maximum of profile '${profile.name}'. ${seen}` };
  }

  // Scale in: only when every decrease rule fires, by the smallest decrease.
  const decrease = profile.rules.filter((r) => r.scaleAction.direction === 'Decrease');
  if (decrease.length > 0 && decrease.every((r) => firedRule(r, readings, profile))) {
    let chosen: { rule: AutoscaleRule; to: number } | undefined;
    for (const rule of decrease) {
      const to = clamp(actionResult(rule.scaleAction, from));
      if (!chosen || to > chosen.to) chosen = { rule, to };
    }
    if (chosen && chosen.to < from) {
      // Anti-flapping (contract §7.1): the load of `from` instances spread over fewer must not make a
      // scale-out rule on the same metric fire; take the largest count below `from` that does not.
      let to = chosen.to;
      while (to < from && wouldFlap(profile, values, from, to)) to++;
      if (to === from) return { ...base, outcome: 'unchanged', to: from, cooldownMs: 0, readings, message: `scale in from ${from} deferred: with fewer instances a scale-out rule would fire. ${seen}` };
      return act(chosen.rule, to, 'scale in');
    }
  }

  // Missing metrics: up to capacity.default, never down (contract §7.1).
  if (readings.some((r) => r.value === undefined)) {
    if (from < def) {
      const cooling = inCooldown(def, 'metrics missing:');
      if (cooling) return cooling;
      return { ...base, outcome: 'metrics-missing', to: def, cooldownMs: 0, readings, message: `metrics missing; instance count ${from} is below the default ${def}: ${from} → ${def}. ${seen}` };
    }
    return { ...base, outcome: 'metrics-missing', to: from, cooldownMs: 0, readings, message: `metrics missing; keeping ${from} instances. ${seen}` };
  }
  return { ...base, outcome: 'unchanged', to: from, cooldownMs: 0, readings, message: profile.rules.length ? `no rule asks for a change. ${seen}` : `profile '${profile.name}' has no rules` };
}

function firedRule(rule: AutoscaleRule, readings: RuleReading[], profile: AutoscaleProfile): boolean {
  return readings[profile.rules.indexOf(rule)].fired;
}

function wouldFlap(profile: AutoscaleProfile, values: Map<AutoscaleRule, number>, from: number, to: number): boolean {
  for (const down of profile.rules) {
    if (down.scaleAction.direction !== 'Decrease') continue;
    const value = values.get(down);
    if (value === undefined) continue;
    const projected = (value * from) / Math.max(1, to);
    for (const up of profile.rules) {
      if (up.scaleAction.direction === 'Increase' && sameMetric(up, down) && compare(projected, up.metricTrigger.operator, up.metricTrigger.threshold)) return true;
    }
  }
  return false;
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000;
}
