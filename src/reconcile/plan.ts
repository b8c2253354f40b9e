// Pure: desired instance plans + observed instances → the actions that move one towards the other,
// and the status each deployment is in (DESIGN.md "reconcile/"). Running it twice on the same input
// gives the same actions; applying them is idempotent, so a crash between the two loses nothing.

import type { ObservedInstance } from '../backend/types.js';
import { instanceId } from '../compile/plan.js';
import type { InstancePlan } from '../ir/types.js';

export type Action = { kind: 'start'; id: string; plan: InstancePlan; index: number } | { kind: 'stop'; id: string };

export interface DeploymentProgress {
  /** ready: every wanted instance of the current revision is ready and nothing older runs. */
  phase: 'progressing' | 'ready' | 'failed';
  error?: { code: string; message: string };
  readyCount: number;
  /** Set while an instance crash-loops (restarted again and again): the deployment shows it. */
  crashLoop?: { code: string; message: string };
  /**
   * A wanted instance has crash-looped FAIL_OPERATION_RESTARTS times without becoming ready in between:
   * a create or update in progress fails (controller.ts) rather than waiting for ever.
   */
  failedOperation?: boolean;
}

/** Restarts after which an instance counts as crash-looping (Kubernetes' CrashLoopBackOff shows at 2-3). */
export const CRASH_LOOP_RESTARTS = 2;
/**
 * Restarts after which a create or update in progress fails: one more than CRASH_LOOP_RESTARTS, so a
 * single crash at start (an OOM kill under a burst) is retried before the operation gives up (back-off
 * 0.5 + 1 + 2 s: about 4 s of crash-looping).
 */
export const FAIL_OPERATION_RESTARTS = 3;

/** Azure reserves 20% extra capacity for upgrades (contract §8.2); at least one instance. */
export function surgeOf(instanceCount: number): number {
  return Math.max(1, Math.ceil(instanceCount * 0.2));
}

const key = (endpoint: string, deployment: string) => `${endpoint}/${deployment}`;

export function plan(desired: InstancePlan[], observed: ObservedInstance[]): { actions: Action[]; progress: Map<string, DeploymentProgress> } {
  const actions: Action[] = [];
  const progress = new Map<string, DeploymentProgress>();
  const byDeployment = new Map<string, ObservedInstance[]>();
  for (const o of observed) {
    const k = key(o.endpoint, o.deployment);
    const list = byDeployment.get(k) ?? [];
    list.push(o);
    byDeployment.set(k, list);
  }

  for (const p of desired) {
    const k = key(p.endpoint, p.deployment);
    const mine = byDeployment.get(k) ?? [];
    byDeployment.delete(k);
    const current = mine.filter((o) => o.revision === p.revision && o.state !== 'stopping');
    const older = mine.filter((o) => o.revision !== p.revision && o.state !== 'stopping');

    const wanted = current.filter((o) => o.index < p.instanceCount);
    const readyCount = wanted.filter((o) => o.state === 'ready').length;
    const failed = wanted.find((o) => o.state === 'failed');
    const allReady = readyCount === p.instanceCount;
    const olderReady = older.filter((o) => o.state === 'ready');

    // Start what is missing. While an older revision still serves (a rolling update), at most `surge`
    // instances run beyond instance_count, like Azure's 20% reserve; otherwise start all at once.
    const have = new Set(current.map((o) => o.index));
    let room = olderReady.length === 0 ? Infinity : p.instanceCount + surgeOf(p.instanceCount) - wanted.length - olderReady.length;
    for (let i = 0; i < p.instanceCount && room > 0; i++) {
      if (have.has(i)) continue;
      actions.push({ kind: 'start', id: instanceId(p, i), plan: p, index: i });
      room--;
    }
    // Scale in: the highest indexes go first.
    for (const o of current) if (o.index >= p.instanceCount) actions.push({ kind: 'stop', id: o.id });
    // Older revisions: the ones not serving go at once; a serving one goes only when a new ready instance
    // takes its place, so ready instances never drop below instance_count. If the new revision fails, the
    // old one keeps serving.
    const excess = failed ? 0 : Math.max(0, readyCount + olderReady.length - p.instanceCount);
    for (const o of older) if (o.state !== 'ready') actions.push({ kind: 'stop', id: o.id });
    for (const o of olderReady.slice(0, excess)) actions.push({ kind: 'stop', id: o.id });
    const olderLeft = olderReady.length - Math.min(excess, olderReady.length);

    const looping = wanted.find((o) => o.restarts >= CRASH_LOOP_RESTARTS && o.state !== 'ready');
    const crashLoop = looping
      ? {
          crashLoop: { code: 'CrashLoopBackOff', message: `instance ${looping.id} restarted ${looping.restarts} times: ${looping.error?.message ?? 'it keeps exiting'}; see get-logs` },
          ...(looping.restarts >= FAIL_OPERATION_RESTARTS ? { failedOperation: true } : {}),
        }
      : {};
    if (failed) progress.set(k, { phase: 'failed', error: failed.error ?? { code: 'ResourceNotReady', message: 'an instance failed' }, readyCount });
    else if (allReady && olderLeft === 0) progress.set(k, { phase: 'ready', readyCount, ...crashLoop });
    else progress.set(k, { phase: 'progressing', readyCount, ...crashLoop });
  }

  // Instances of deployments that are no longer wanted at all.
  for (const list of byDeployment.values()) for (const o of list) if (o.state !== 'stopping') actions.push({ kind: 'stop', id: o.id });
  return { actions, progress };
}

export { key as deploymentKey };
