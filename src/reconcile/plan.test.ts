// plan(): desired instance plans + observed instances → actions and per-deployment progress. Pure, so
// every case is a table row: input, expected actions, expected progress.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { InstanceState, ObservedInstance } from '../backend/types.js';
import { instanceId } from '../compile/plan.js';
import type { InstancePlan } from '../ir/types.js';
import { plan, type DeploymentProgress } from './plan.js';

function desired(deployment: string, revision: string, instanceCount: number, endpoint = 'ep'): InstancePlan {
  return {
    endpoint,
    deployment,
    revision,
    instanceType: 'Standard_DS3_v2',
    resources: { from: 'test' },
    egress: false,
    instanceCount,
    runtime: 'python',
    code: { path: '/code', scoringScript: 'score.py' },
    environment: {},
    environmentVariables: {},
    workerCount: 1,
    requestTimeoutMs: 5000,
    livenessProbe: { initialDelay: 10, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 },
    readinessProbe: { initialDelay: 10, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 },
  };
}

function inst(deployment: string, revision: string, index: number, state: InstanceState, extra: Partial<ObservedInstance> = {}, endpoint = 'ep'): ObservedInstance {
  return {
    id: instanceId({ endpoint, deployment, revision }, index),
    endpoint,
    deployment,
    revision,
    index,
    state,
    restarts: 0,
    ...extra,
  };
}

/** Actions as short strings: "start ep.blue.r1.0", "stop ep.blue.r1.2". */
type Row = {
  name: string;
  desired: InstancePlan[];
  observed: ObservedInstance[];
  actions: string[];
  progress: Record<string, DeploymentProgress>;
};

const rows: Row[] = [
  {
    name: 'fresh deployment starts N instances with stable ids',
    desired: [desired('blue', 'r1', 3)],
    observed: [],
    actions: ['start ep.blue.r1.0', 'start ep.blue.r1.1', 'start ep.blue.r1.2'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'observed == desired: nothing to do, ready',
    desired: [desired('blue', 'r1', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready')],
    actions: [],
    progress: { 'ep/blue': { phase: 'ready', readyCount: 2 } },
  },
  {
    name: 'instances still starting are not started again',
    desired: [desired('blue', 'r1', 2)],
    observed: [inst('blue', 'r1', 0, 'starting'), inst('blue', 'r1', 1, 'restarting')],
    actions: [],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'scale out starts only the missing indexes',
    desired: [desired('blue', 'r1', 4)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready')],
    actions: ['start ep.blue.r1.2', 'start ep.blue.r1.3'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 2 } },
  },
  {
    name: 'a hole in the indexes is filled',
    desired: [desired('blue', 'r1', 3)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 2, 'ready')],
    actions: ['start ep.blue.r1.1'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 2 } },
  },
  {
    name: 'scale in stops the highest indexes',
    desired: [desired('blue', 'r1', 1)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready'), inst('blue', 'r1', 2, 'ready')],
    actions: ['stop ep.blue.r1.1', 'stop ep.blue.r1.2'],
    progress: { 'ep/blue': { phase: 'ready', readyCount: 1 } },
  },
  {
    name: 'rolling update: while the old revision serves, at most the surge (20%, at least 1) starts',
    desired: [desired('blue', 'r2', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready')],
    actions: ['start ep.blue.r2.0'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'rolling update: the surge of 10 instances is 2',
    desired: [desired('blue', 'r2', 10)],
    observed: Array.from({ length: 10 }, (_, i) => inst('blue', 'r1', i, 'ready')),
    actions: ['start ep.blue.r2.0', 'start ep.blue.r2.1'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'rolling update: old ready ones keep serving while the new instance is not ready',
    desired: [desired('blue', 'r2', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready'), inst('blue', 'r2', 0, 'starting')],
    actions: [],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'rolling update: each new ready instance replaces one old one',
    desired: [desired('blue', 'r2', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready'), inst('blue', 'r2', 0, 'ready')],
    actions: ['stop ep.blue.r1.0'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 1 } },
  },
  {
    name: 'rolling update: once the replaced old instance is stopping, the next new one starts',
    desired: [desired('blue', 'r2', 2)],
    observed: [inst('blue', 'r1', 0, 'stopping'), inst('blue', 'r1', 1, 'ready'), inst('blue', 'r2', 0, 'ready')],
    actions: ['start ep.blue.r2.1'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 1 } },
  },
  {
    name: 'rolling update: once every new instance is ready the old ones stop',
    desired: [desired('blue', 'r2', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'ready'), inst('blue', 'r2', 0, 'ready'), inst('blue', 'r2', 1, 'ready')],
    actions: ['stop ep.blue.r1.0', 'stop ep.blue.r1.1'],
    progress: { 'ep/blue': { phase: 'ready', readyCount: 2 } },
  },
  {
    name: 'rolling update: old instances that do not serve stop at once',
    desired: [desired('blue', 'r2', 1)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'starting'), inst('blue', 'r1', 2, 'restarting'), inst('blue', 'r1', 3, 'failed')],
    actions: ['start ep.blue.r2.0', 'stop ep.blue.r1.1', 'stop ep.blue.r1.2', 'stop ep.blue.r1.3'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'a failed new instance fails the deployment with its error; old ones keep serving',
    desired: [desired('blue', 'r2', 2)],
    observed: [
      inst('blue', 'r1', 0, 'ready'),
      inst('blue', 'r1', 1, 'ready'),
      inst('blue', 'r2', 0, 'ready'),
      inst('blue', 'r2', 1, 'failed', { error: { code: 'UserScriptInitFailed', message: 'Traceback: boom' } }),
    ],
    actions: [],
    progress: { 'ep/blue': { phase: 'failed', error: { code: 'UserScriptInitFailed', message: 'Traceback: boom' }, readyCount: 1 } },
  },
  {
    name: 'a failed instance without an error reports ResourceNotReady',
    desired: [desired('blue', 'r1', 1)],
    observed: [inst('blue', 'r1', 0, 'failed')],
    actions: [],
    progress: { 'ep/blue': { phase: 'failed', error: { code: 'ResourceNotReady', message: 'an instance failed' }, readyCount: 0 } },
  },
  {
    name: 'a failed instance beyond the wanted count is stopped and does not fail the deployment',
    desired: [desired('blue', 'r1', 1)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'failed', { error: { code: 'X', message: 'x' } })],
    actions: ['stop ep.blue.r1.1'],
    progress: { 'ep/blue': { phase: 'ready', readyCount: 1 } },
  },
  {
    name: 'a crash-looping instance is reported on the deployment',
    desired: [desired('blue', 'r1', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'restarting', { restarts: 3, error: { code: 'ResourceNotReady', message: 'exit code 1' } })],
    actions: [],
    progress: {
      'ep/blue': {
        phase: 'progressing',
        readyCount: 1,
        crashLoop: { code: 'CrashLoopBackOff', message: 'instance ep.blue.r1.1 restarted 3 times: exit code 1; see get-logs' },
        // Three restarts: a create, update or scale still in progress fails (controller.ts).
        failedOperation: true,
      },
    },
  },
  {
    name: 'two restarts show the crash loop but do not fail an operation yet',
    desired: [desired('blue', 'r1', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'restarting', { restarts: 2, error: { code: 'ResourceNotReady', message: 'exit code 1' } })],
    actions: [],
    progress: {
      'ep/blue': {
        phase: 'progressing',
        readyCount: 1,
        crashLoop: { code: 'CrashLoopBackOff', message: 'instance ep.blue.r1.1 restarted 2 times: exit code 1; see get-logs' },
      },
    },
  },
  {
    name: "an 'unready' instance (readiness probe failing) is neither counted ready nor replaced",
    desired: [desired('blue', 'r1', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'unready')],
    actions: [],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 1 } },
  },
  {
    name: 'instances of deployments no longer desired stop',
    desired: [desired('blue', 'r1', 1)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('green', 'g1', 0, 'ready'), inst('green', 'g1', 1, 'starting'), inst('blue', 'b1', 0, 'ready', {}, 'other-ep')],
    actions: ['stop ep.green.g1.0', 'stop ep.green.g1.1', 'stop other-ep.blue.b1.0'],
    progress: { 'ep/blue': { phase: 'ready', readyCount: 1 } },
  },
  {
    name: "'stopping' instances are ignored: not stopped again, not counted, their index is started afresh",
    desired: [desired('blue', 'r1', 2)],
    observed: [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r1', 1, 'stopping'), inst('blue', 'r0', 0, 'stopping'), inst('gone', 'x', 0, 'stopping')],
    actions: ['start ep.blue.r1.1'],
    progress: { 'ep/blue': { phase: 'progressing', readyCount: 1 } },
  },
  {
    name: 'same deployment name under two endpoints are separate deployments',
    desired: [desired('blue', 'r1', 1, 'a-ep'), desired('blue', 'r9', 1, 'b-ep')],
    observed: [inst('blue', 'r1', 0, 'ready', {}, 'a-ep')],
    actions: ['start b-ep.blue.r9.0'],
    progress: { 'a-ep/blue': { phase: 'ready', readyCount: 1 }, 'b-ep/blue': { phase: 'progressing', readyCount: 0 } },
  },
  {
    name: 'nothing desired, nothing observed',
    desired: [],
    observed: [],
    actions: [],
    progress: {},
  },
];

const show = (a: { kind: 'start' | 'stop'; id: string }) => `${a.kind} ${a.id}`;

for (const row of rows) {
  test(row.name, () => {
    const { actions, progress } = plan(row.desired, row.observed);
    assert.deepEqual(actions.map(show).sort(), [...row.actions].sort());
    assert.deepEqual(Object.fromEntries(progress), row.progress);
    // Start actions carry the plan and index they start.
    for (const a of actions) {
      if (a.kind !== 'start') continue;
      const p = row.desired.find((d) => a.id.startsWith(`${d.endpoint}.${d.deployment}.${d.revision}.`));
      assert.ok(p, `start ${a.id} belongs to a desired plan`);
      assert.equal(a.plan, p);
      assert.equal(a.id, instanceId(p, a.index));
    }
  });
}

test('plan is pure: the same input gives the same output, and the input is untouched', () => {
  const d = [desired('blue', 'r2', 2)];
  const o = [inst('blue', 'r1', 0, 'ready'), inst('blue', 'r2', 0, 'ready')];
  const before = JSON.stringify({ d, o });
  const first = plan(d, o);
  const second = plan(d, o);
  assert.deepEqual(second.actions, first.actions);
  assert.deepEqual([...second.progress], [...first.progress]);
  assert.equal(JSON.stringify({ d, o }), before);
});

test('a rolling update converges, never below instance_count ready nor above instance_count + surge running', () => {
  // A backend that does what it is told: a started instance is 'starting' and becomes ready one round
  // later; a stopped one is gone at once.
  for (const count of [1, 2, 3, 10]) {
    let observed: ObservedInstance[] = Array.from({ length: count }, (_, i) => inst('blue', 'r1', i, 'ready'));
    const want = [desired('blue', 'r2', count)];
    const surge = Math.max(1, Math.ceil(count * 0.2));
    let rounds = 0;
    for (; rounds < 100; rounds++) {
      observed = observed.map((o) => (o.state === 'starting' ? { ...o, state: 'ready' as const } : o));
      const { actions } = plan(want, observed);
      if (actions.length === 0) break;
      for (const a of actions) {
        if (a.kind === 'start') observed.push(inst(a.plan.deployment, a.plan.revision, a.index, 'starting'));
        else observed = observed.filter((o) => o.id !== a.id);
      }
      const ready = observed.filter((o) => o.state === 'ready').length;
      assert.ok(ready >= count, `count ${count}, round ${rounds}: ${ready} ready`);
      assert.ok(observed.length <= count + surge, `count ${count}, round ${rounds}: ${observed.length} running`);
    }
    assert.ok(rounds < 100, 'converges');
    const final = plan(want, observed);
    assert.deepEqual(final.actions, []);
    assert.deepEqual(
      observed.map((o) => o.id).sort(),
      Array.from({ length: count }, (_, i) => `ep.blue.r2.${i}`).sort(),
    );
    assert.deepEqual(final.progress.get('ep/blue'), { phase: 'ready', readyCount: count });
  }
});
