// The autoscale runner (issue 12): every few seconds it evaluates each enabled autoscale setting with the
// engine and applies the decision through the Scaler (an ordinary instance_count change, so scale-in
// drains); every polling_interval it evaluates each deployment whose spec has
// `scale_settings: {type: target_utilization}`. Decisions that change something or are blocked go to the
// setting's history (store), the deployment's console log (Scaler.note, so get-logs shows them) and the
// server log; idle ticks go nowhere.
//
// target_utilization (issue 12 item 4, Kubernetes's azureml-fe semantics, on any deployment here):
//   utilization = (in-flight + queued) ÷ (max_concurrent_requests_per_instance × ready instances),
//   averaged over the last polling interval; desired = ceil(ready × utilization ÷ target), which is
//   ceil(load ÷ (slots per instance × target)). Counting ready instances rather than instance_count keeps
//   instances that are still starting from being asked for a second time. Within ±10 % of the target
//   nothing changes (as Kubernetes's HPA tolerance), scale-out is immediate, scale-in takes the largest
//   desired count of the last `scaleInPolls` polls and only when all of them were below the current count
//   (stabilisation: one quiet poll never removes an instance). With min_instances 0 the count goes to
//   zero only after `idleMs` without a single in-flight or queued request.

import type { AutoscaleEvent, AutoscaleSetting } from '../spec/autoscale.js';
import type { DeploymentSpec } from '../spec/types.js';
import type { ProvisioningState, StateStore } from '../store/types.js';
import { decide, type Decision } from './engine.js';
import type { Clock, MetricReader, Scaler } from './types.js';

/** What the runner reads and writes in the store (StateStore has it all). */
export type AutoscaleStore = Pick<StateStore, 'listAutoscaleSettings' | 'appendAutoscaleEvent' | 'listDeployments'>;

export interface AutoscalerOptions {
  store: AutoscaleStore;
  metrics: MetricReader;
  scaler: Scaler;
  clock?: Clock;
  /** How often autoscale settings are evaluated. Default 5000 (Azure: 30–60 s; infergate reacts in seconds). */
  intervalMs?: number;
  log?: (line: string) => void;
  /** target_utilization: polls in a row that must want fewer instances before a scale-in. Default 3. */
  scaleInPolls?: number;
  /** target_utilization with min_instances 0: idle time before the count goes to zero. Default 30000. */
  idleMs?: number;
  /** Decisions kept in memory per target for `history()` (target_utilization ones are kept only here). Default 200. */
  historyLimit?: number;
}

/** A decision of the target_utilization poller, in the shape of the engine's. */
export type TargetUtilizationDecision = Omit<AutoscaleEvent, 'time' | 'setting'>;

interface UtilizationState {
  nextPoll: number;
  /** Desired counts of the last polls that wanted fewer instances (reset by any other poll). */
  lower: number[];
  /** Since when the deployment has had no in-flight or queued request (undefined: it has load). */
  idleSince?: number;
}

const TOLERANCE = 0.1;

/** Provisioning states in which autoscale does not touch a deployment (tick() says why). */
const LEFT_ALONE: ReadonlySet<ProvisioningState> = new Set<ProvisioningState>(['Creating', 'Updating', 'Deleting', 'Failed']);

export class Autoscaler {
  private readonly clock: Clock;
  private readonly intervalMs: number;
  private readonly log: (line: string) => void;
  private readonly scaleInPolls: number;
  private readonly idleMs: number;
  private readonly historyLimit: number;
  private timer: NodeJS.Timeout | undefined;
  private ticking: Promise<void> | undefined;
  private nextSettings = 0;
  /** The last scale action per setting name (lower case), for cooldowns. */
  private readonly lastAction = new Map<string, { time: number; cooldownMs: number }>();
  /** The last recorded event's gist per target, so a blocked decision repeated every tick is recorded once. */
  private readonly lastRecorded = new Map<string, string>();
  private readonly utilization = new Map<string, UtilizationState>();
  /** Scale calls still running, per `<endpoint>/<deployment>`: a target is not evaluated again until its call returns. */
  private readonly pending = new Map<string, Promise<void>>();
  private readonly events = new Map<string, AutoscaleEvent[]>();

  constructor(private readonly o: AutoscalerOptions) {
    this.clock = o.clock ?? Date.now;
    this.intervalMs = o.intervalMs ?? 5000;
    this.log = o.log ?? (() => {});
    this.scaleInPolls = Math.max(1, o.scaleInPolls ?? 3);
    this.idleMs = o.idleMs ?? 30_000;
    this.historyLimit = o.historyLimit ?? 200;
  }

  /** Starts the periodic evaluation (a 1 s tick at most, so target_utilization's 1 s polling is kept). */
  start(): void {
    if (this.timer) return;
    const period = Math.min(this.intervalMs, 1000);
    this.timer = setInterval(() => {
      if (this.ticking) return;
      this.ticking = this.tick(false).finally(() => (this.ticking = undefined));
    }, period);
    this.timer.unref();
  }

  /** Stops the timer and waits for the evaluation and scale calls under way. */
  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.ticking;
    await Promise.allSettled([...this.pending.values()]);
  }

  /** Evaluates every setting and target_utilization deployment now and waits until their scale calls return. */
  async evaluateNow(): Promise<void> {
    await this.ticking;
    await this.tick(true);
    await Promise.allSettled([...this.pending.values()]);
  }

  /**
   * Recent decisions kept in memory, oldest first: of one setting (by name) or one target_utilization
   * deployment (`<endpoint>/<deployment>`); the store keeps settings' history across restarts.
   */
  history(key: string): AutoscaleEvent[] {
    return [...(this.events.get(key.toLowerCase()) ?? [])];
  }

  private async tick(force: boolean): Promise<void> {
    const now = this.clock();
    const work: Array<Promise<void>> = [];
    const utilizationTargets = new Map<string, DeploymentSpec>();
    // A deployment being created, updated to a new revision, or deleted is the user's operation: a scale
    // now would turn its state to Scaling, or hold a count the rollout does not expect (Azure answers
    // OperationInProgress). A Failed one is left alone too: a scale is an update, and an update of a
    // Failed deployment retries it (control/provisioning.ts), which only the user should ask for.
    // Autoscale joins in once the operation has finished.
    const busy = new Set<string>();
    const live = new Set<string>();
    for (const d of this.o.store.listDeployments()) {
      const k = key(d.spec.endpointName, d.spec.name);
      live.add(k);
      if (LEFT_ALONE.has(d.status.provisioningState)) busy.add(k);
      else if (d.spec.scaleSettings.type === 'target_utilization') utilizationTargets.set(k, d.spec);
    }
    if (force || now >= this.nextSettings) {
      this.nextSettings = now + this.intervalMs;
      const settings = this.o.store.listAutoscaleSettings();
      this.forgetGone(settings.map((s) => s.setting.name.toLowerCase()), live);
      for (const stored of settings) {
        const target = key(stored.endpoint, stored.deployment);
        if (!stored.setting.enabled || busy.has(target)) continue;
        if (utilizationTargets.has(target)) {
          const count = this.o.scaler.capacity(stored.endpoint, stored.deployment) ?? 0;
          this.record(stored.setting.name, stored.endpoint, stored.deployment, {
            profile: '',
            outcome: 'error',
            from: count,
            to: count,
            message: `autoscale setting '${stored.setting.name}' is ignored: the deployment scales itself with scale_settings type target_utilization`,
          }, now);
          continue;
        }
        work.push(this.evaluateSetting(stored.setting, stored.endpoint, stored.deployment, now));
      }
    }
    for (const [target, spec] of utilizationTargets) {
      const state = this.utilization.get(target) ?? { nextPoll: 0, lower: [] };
      this.utilization.set(target, state);
      if (!force && now < state.nextPoll) continue;
      if (spec.scaleSettings.type !== 'target_utilization') continue;
      state.nextPoll = now + spec.scaleSettings.pollingInterval * 1000;
      work.push(this.evaluateUtilization(spec, state, now));
    }
    for (const target of this.utilization.keys()) if (!utilizationTargets.has(target)) this.utilization.delete(target);
    await Promise.allSettled(work);
  }

  /**
   * Settings deleted and deployments gone take their cooldowns and in-memory history with them: names come
   * and go for the life of the server, and a setting created again under an old name starts afresh.
   */
  private forgetGone(settings: string[], deployments: ReadonlySet<string>): void {
    const keep = new Set(settings);
    for (const k of deployments) keep.add(k); // target_utilization history is kept under `<endpoint>/<deployment>`
    for (const k of this.events.keys()) if (!keep.has(k)) this.events.delete(k);
    for (const k of this.lastRecorded.keys()) if (!keep.has(k)) this.lastRecorded.delete(k);
    for (const k of this.lastAction.keys()) if (!keep.has(k)) this.lastAction.delete(k);
  }

  private async evaluateSetting(setting: AutoscaleSetting, endpoint: string, deployment: string, now: number): Promise<void> {
    const target = key(endpoint, deployment);
    if (this.pending.has(target)) return;
    const capacity = this.o.scaler.capacity(endpoint, deployment);
    if (capacity === undefined) return;
    const settingKey = setting.name.toLowerCase();
    const decision: Decision = decide(setting, { now, capacity, metrics: this.o.metrics, lastAction: this.lastAction.get(settingKey) });
    if (decision.to === decision.from) {
      if (decision.outcome !== 'unchanged') this.record(setting.name, endpoint, deployment, decision, now);
      return;
    }
    // The target comes from the store (resolved from targetResourceUri when the setting was written).
    if (await this.apply(endpoint, deployment, decision, now, setting.name)) this.lastAction.set(settingKey, { time: now, cooldownMs: decision.cooldownMs });
  }

  private async evaluateUtilization(spec: DeploymentSpec, state: UtilizationState, now: number): Promise<void> {
    if (spec.scaleSettings.type !== 'target_utilization') return;
    const { minInstances: min, maxInstances: max, pollingInterval, targetUtilizationPercentage: targetPct } = spec.scaleSettings;
    const endpoint = spec.endpointName;
    const deployment = spec.name;
    const target = key(endpoint, deployment);
    if (this.pending.has(target)) return;
    const from = this.o.scaler.capacity(endpoint, deployment);
    if (from === undefined) return;
    const name = `${endpoint}/${deployment}`;
    const rule = `target_utilization ${targetPct}%`;
    const decision = (outcome: AutoscaleEvent['outcome'], to: number, message: string, value?: number): TargetUtilizationDecision => ({
      profile: 'target_utilization',
      outcome,
      from,
      to,
      rule,
      ...(value !== undefined ? { value: Math.round(value * 10) / 10 } : {}),
      message,
    });

    if (from < min || from > max) {
      const to = Math.min(max, Math.max(min, from));
      state.lower = [];
      await this.apply(endpoint, deployment, decision('scaled', to, `instance count ${from} is outside [${min}, ${max}]: ${from} → ${to}`), now, name);
      return;
    }
    const ref = { endpoint, deployment };
    const windowStart = now - pollingInterval * 1000;
    const inFlight = mean(this.o.metrics.series(ref, 'ConcurrentRequests', windowStart, now));
    const queued = mean(this.o.metrics.series(ref, 'QueuedRequests', windowStart, now));
    if (inFlight === undefined && queued === undefined) {
      state.lower = [];
      this.record(name, endpoint, deployment, decision('metrics-missing', from, `no ConcurrentRequests or QueuedRequests samples in the last ${pollingInterval}s; keeping ${from} instances`), now);
      return;
    }
    const load = (inFlight ?? 0) + (queued ?? 0);
    const ready = lastValue(this.o.metrics.series(ref, 'DeploymentCapacity', windowStart, now)) ?? from;
    const slots = spec.requestSettings.maxConcurrentRequestsPerInstance || 1;
    const utilization = ready > 0 ? load / (slots * ready) : load > 0 ? Infinity : 0;
    // ceil of load ÷ (slots × target), with the floating point noise of the mean removed (1.4 ÷ 0.7 is 2, not 3).
    let desired = Math.ceil(Math.round(((load * 100) / (slots * targetPct)) * 1e6) / 1e6);
    if (ready > 0 && Math.abs(utilization * 100 - targetPct) <= TOLERANCE * targetPct) desired = ready;
    if (load > 0) state.idleSince = undefined;
    else state.idleSince ??= now;
    // Zero only after a whole idle period: a deployment that just answered its last request keeps one instance.
    const idleLongEnough = state.idleSince !== undefined && now - state.idleSince >= this.idleMs;
    const floor = idleLongEnough ? 0 : 1;
    const to = Math.min(max, Math.max(min, floor, desired));
    const pct = Number.isFinite(utilization) ? `${Math.round(utilization * 1000) / 10}%` : 'no ready instance';
    const seen = `utilization ${pct} (in-flight ${round1(inFlight ?? 0)} + queued ${round1(queued ?? 0)} over ${slots} × ${ready} slots), target ${targetPct}%`;
    const value = Number.isFinite(utilization) ? utilization * 100 : undefined;

    if (to > from) {
      state.lower = [];
      await this.apply(endpoint, deployment, decision('scaled', to, `scale out ${from} → ${to}: ${seen}`, value), now, name);
      return;
    }
    if (desired > max && from === max) {
      state.lower = [];
      this.record(name, endpoint, deployment, decision('limited', from, `${seen} asks for ${desired} instances; ${max} is max_instances`, value), now);
      return;
    }
    if (to < from && ready < from && !idleLongEnough) {
      // Instances are still starting (or failing): the ready ones carry the load for now, which says
      // nothing about whether the new ones will be needed once they are up.
      state.lower = [];
      return;
    }
    if (to < from) {
      state.lower.push(to);
      if (state.lower.length > this.scaleInPolls) state.lower.shift();
      if (state.lower.length < this.scaleInPolls) return;
      const stable = Math.max(...state.lower);
      state.lower = [];
      await this.apply(endpoint, deployment, decision('scaled', stable, `scale in ${from} → ${stable} after ${this.scaleInPolls} polls below: ${seen}`, value), now, name);
      return;
    }
    state.lower = [];
  }

  /** Applies a change; records it (or the limit the Scaler refused it with). Says whether it took effect. */
  private apply(endpoint: string, deployment: string, d: TargetUtilizationDecision | Decision, now: number, historyKey: string): Promise<boolean> {
    const target = key(endpoint, deployment);
    const reason = d.rule ? `autoscale (${d.rule})` : 'autoscale';
    const run = (async () => {
      try {
        await this.o.scaler.scale(endpoint, deployment, d.to, reason);
        this.record(historyKey, endpoint, deployment, d, now);
        return true;
      } catch (e) {
        // A quota or capacity limit: the deployment stays where it is and the history says why.
        this.record(historyKey, endpoint, deployment, { ...d, outcome: 'limited', to: d.from, message: `${d.message} — not applied: ${(e as Error).message}` }, now);
        return false;
      }
    })();
    const tracked = run.then(() => undefined).finally(() => this.pending.delete(target));
    this.pending.set(target, tracked);
    return run;
  }

  private record(historyKey: string, endpoint: string, deployment: string, d: TargetUtilizationDecision | Decision, now: number): void {
    // Messages carry the readings, which change every tick; an error's message is its gist.
    const gist = `${d.outcome} ${d.from}→${d.to} ${d.rule ?? ''} ${d.outcome === 'error' ? d.message : ''}`;
    const k = historyKey.toLowerCase();
    // A blocked decision repeats every tick while the condition lasts: record it when it first happens.
    if (d.to === d.from && this.lastRecorded.get(k) === gist) return;
    this.lastRecorded.set(k, d.to === d.from ? gist : '');
    const event: AutoscaleEvent = {
      time: new Date(now).toISOString(),
      setting: historyKey,
      profile: d.profile,
      outcome: d.outcome,
      from: d.from,
      to: d.to,
      ...(d.rule !== undefined ? { rule: d.rule } : {}),
      ...(d.value !== undefined ? { value: d.value } : {}),
      message: d.message,
    };
    const ring = this.events.get(k) ?? [];
    ring.push(event);
    if (ring.length > this.historyLimit) ring.shift();
    this.events.set(k, ring);
    // target_utilization decisions have no setting to keep history under: the store drops them by design.
    if (d.profile !== 'target_utilization') {
      try {
        this.o.store.appendAutoscaleEvent(event);
      } catch (e) {
        this.log(`autoscale: could not record an event of '${historyKey}': ${(e as Error).message}`);
      }
    }
    const line = `autoscale ${historyKey}: ${d.outcome}${d.to !== d.from ? ` ${d.from} → ${d.to}` : ''} — ${d.message}`;
    this.o.scaler.note(endpoint, deployment, line);
    this.log(line);
  }
}

function key(endpoint: string, deployment: string): string {
  return `${endpoint}/${deployment}`.toLowerCase();
}

function mean(samples: ReadonlyArray<readonly [number, number]>): number | undefined {
  if (samples.length === 0) return undefined;
  let s = 0;
  for (const [, v] of samples) s += v;
  return s / samples.length;
}

function lastValue(samples: ReadonlyArray<readonly [number, number]>): number | undefined {
  return samples.length ? samples[samples.length - 1][1] : undefined;
}

function round1(n: number): number {
  return Math.round(n * 10) / 10;
}

