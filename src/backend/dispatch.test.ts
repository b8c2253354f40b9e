// The dispatcher: each instance goes to its endpoint's compute, the rest to this machine; an instance
// whose compute is not attached fails with ComputeNotFound and never runs locally.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { errorOf } from '../errors/index.js';
import type { InstancePlan } from '../ir/types.js';
import { DispatchBackend } from './dispatch.js';
import type { Backend, ObservedInstance } from './types.js';

class Recording implements Backend {
  readonly kind: Backend['kind'];
  readonly running = new Map<string, ObservedInstance>();
  closed = false;
  private listeners: (() => void)[] = [];
  constructor(kind: Backend['kind'], readonly name: string) {
    this.kind = kind;
  }
  observe() {
    return [...this.running.values()];
  }
  async start(id: string, plan: InstancePlan, index: number) {
    this.running.set(id, { id, endpoint: plan.endpoint, deployment: plan.deployment, revision: plan.revision, index, state: 'ready', restarts: 0 });
    for (const l of this.listeners) l();
  }
  async stop(id: string) {
    this.running.delete(id);
  }
  async logs(endpoint: string, deployment: string) {
    return `${this.name}: ${endpoint}/${deployment}\n`;
  }
  onChange(l: () => void) {
    this.listeners.push(l);
  }
  async close() {
    this.closed = true;
  }
}

const plan = (endpoint: string): InstancePlan => ({ endpoint, deployment: 'blue', revision: 'r1' }) as InstancePlan;

test('instances go to their endpoint\'s compute or to this machine; logs follow; close closes all', async () => {
  const local = new Recording('process', 'local');
  const made: string[] = [];
  const clusters = new Map<string, Recording>();
  const computeOf: Record<string, string> = { k8s: 'azureml:Cluster-A', gone: 'azureml:detached' };
  const d = new DispatchBackend({
    local,
    computeOf: (e) => computeOf[e],
    backendFor: async (name) => {
      made.push(name);
      if (name === 'detached') throw errorOf('ComputeNotFound', { compute: name, attached: 'cluster-a' });
      const b = new Recording('kubernetes', name);
      clusters.set(name, b);
      return b;
    },
  });
  let changes = 0;
  d.onChange(() => changes++);
  await d.start('here.blue.r1.0', plan('here'), 0);
  await Promise.all([d.start('k8s.blue.r1.0', plan('k8s'), 0), d.start('k8s.blue.r1.1', plan('k8s'), 1)]);
  await d.start('gone.blue.r1.0', plan('gone'), 0);
  assert.deepEqual(made, ['cluster-a', 'detached'], 'one backend per compute, made once');
  assert.deepEqual([...local.running.keys()], ['here.blue.r1.0'], 'nothing of a compute runs locally');
  assert.deepEqual([...clusters.get('cluster-a')!.running.keys()], ['k8s.blue.r1.0', 'k8s.blue.r1.1']);
  const gone = d.observe().find((i) => i.id === 'gone.blue.r1.0')!;
  assert.equal(gone.state, 'failed');
  assert.equal(gone.error?.code, 'ComputeNotFound');
  assert.deepEqual(d.observe().map((i) => i.id), ['gone.blue.r1.0', 'here.blue.r1.0', 'k8s.blue.r1.0', 'k8s.blue.r1.1']);
  assert.ok(changes >= 3);
  assert.equal(await d.logs('k8s', 'blue', 'inference-server', 10), 'cluster-a: k8s/blue\n');
  assert.equal(await d.logs('here', 'blue', 'inference-server', 10), 'local: here/blue\n');
  // A plan that names its compute itself wins over the endpoint's.
  await d.start('x.blue.r1.0', { ...plan('here'), compute: 'cluster-a' }, 0);
  assert.ok(clusters.get('cluster-a')!.running.has('x.blue.r1.0'));
  await d.stop('k8s.blue.r1.1');
  await d.stop('gone.blue.r1.0');
  assert.deepEqual(d.observe().map((i) => i.id), ['here.blue.r1.0', 'k8s.blue.r1.0', 'x.blue.r1.0']);
  await d.close();
  assert.ok(local.closed && clusters.get('cluster-a')!.closed);
  assert.deepEqual(d.observe(), []);
});

test('a compute detached and attached again gets a backend of its new settings once nothing runs on the old one', async () => {
  const local = new Recording('process', 'local');
  let version: string | undefined = 'v1';
  const made: Recording[] = [];
  const d = new DispatchBackend({
    local,
    computeOf: () => 'azureml:k8s',
    versionOf: () => version,
    backendFor: async () => {
      const b = new Recording('kubernetes', `k8s-${version}`);
      made.push(b);
      return b;
    },
  });
  await d.start('ep.blue.r1.0', plan('ep'), 0);
  version = 'v2';
  await d.start('ep.blue.r1.1', plan('ep'), 1);
  assert.equal(made.length, 1, 'instances still run on the old backend: it stays');
  await d.stop('ep.blue.r1.0');
  await d.stop('ep.blue.r1.1');
  await d.start('ep.blue.r2.0', plan('ep'), 0);
  assert.deepEqual(made.map((b) => b.name), ['k8s-v1', 'k8s-v2']);
  assert.ok(made[0].closed, 'the old backend was closed');
  assert.deepEqual([...made[1].running.keys()], ['ep.blue.r2.0']);
  assert.equal(await d.logs('ep', 'blue', 'inference-server', 10), 'k8s-v2: ep/blue\n');
  await d.start('ep.blue.r2.1', plan('ep'), 1);
  assert.equal(made.length, 2, 'the same version: the same backend');
  await d.close();
});
