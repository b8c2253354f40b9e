// deploy/kubernetes/: every object validates against Kubernetes' schemas (kubernetes-models 4.5.1 =
// Kubernetes v1.27.1), the RBAC is namespaced and least privilege, and it grants every request the
// Kubernetes backend makes (recorded against the fake API server) — no more than those.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { KubernetesBackend } from '../../src/backend/kubernetes/backend.js';
import type { InstancePlan } from '../../src/ir/types.js';
import { FakeApiServer, type Obj } from './fake-apiserver.js';
import { KUBERNETES_SCHEMA_VERSION, validateObject } from './validate.js';

const DIR = resolve(import.meta.dirname, '..', '..', 'deploy', 'kubernetes');
const objects: (Obj & { rules?: { apiGroups: string[]; resources: string[]; verbs: string[] }[] })[] = readdirSync(DIR)
  .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
  .flatMap((f) => parseAllDocuments(readFileSync(join(DIR, f), 'utf8')).map((d) => d.toJS() as Obj))
  .filter(Boolean);
const byKind = (kind: string) => objects.filter((o) => o.kind === kind);

test(`every manifest validates against Kubernetes ${KUBERNETES_SCHEMA_VERSION} schemas; kustomization lists them`, () => {
  assert.ok(objects.length >= 10);
  for (const o of objects) validateObject(o);
  const k = readFileSync(join(DIR, 'kustomization.yaml'), 'utf8');
  for (const f of ['namespace.yaml', 'serviceaccount.yaml', 'rbac.yaml', 'control-plane.yaml', 'routers.yaml']) assert.match(k, new RegExp(f.replace('.', '\\.')));
});

test('control plane: a StatefulSet of one with its workspace on a PVC; routers: replicas, a Service, no API credentials', () => {
  const [sts] = byKind('StatefulSet');
  assert.equal(sts.spec.replicas, 1, 'one writer of the workspace database');
  assert.equal(sts.spec.volumeClaimTemplates[0].metadata.name, 'workspace');
  assert.ok(sts.spec.template.spec.containers[0].volumeMounts.some((m: { name: string; mountPath: string }) => m.name === 'workspace' && m.mountPath === '/workspace'));
  assert.ok(sts.spec.template.spec.containers[0].args.includes('--workspace=/workspace'));
  const router = byKind('Deployment').find((d) => d.metadata.name === 'infergate-router')!;
  assert.ok(router.spec.replicas >= 2);
  assert.equal(router.spec.template.spec.automountServiceAccountToken, false);
  assert.equal(router.spec.template.spec.containers[0].args[0], 'router');
  assert.ok(router.spec.template.spec.containers[0].args.some((a: string) => a.startsWith('--control=')));
  assert.ok(byKind('Service').some((s) => s.metadata.name === 'infergate-router'));
});

test('RBAC: a namespaced Role, no wildcards, bound to the control plane\'s ServiceAccount only', () => {
  assert.equal(byKind('ClusterRole').length + byKind('ClusterRoleBinding').length, 0);
  const [role] = byKind('Role');
  for (const r of role.rules!) {
    assert.ok(!r.verbs.includes('*') && !r.resources.includes('*') && !r.apiGroups.includes('*'), JSON.stringify(r));
    assert.ok(!r.resources.some((x) => x === 'pods/exec' || x === 'nodes'), 'nothing beyond what the backend uses');
  }
  const [binding] = byKind('RoleBinding');
  assert.deepEqual(binding.subjects, [{ kind: 'ServiceAccount', name: 'infergate-control', namespace: 'infergate' }]);
});

test('the Role grants every request the backend makes, and every rule is used', async () => {
  const api = new FakeApiServer();
  await api.start();
  const b = new KubernetesBackend({ compute: 'k8s', kubeconfig: api.kubeconfig('infergate'), workspace: 'ws', controlUrl: 'http://c', defaultImage: 'img', assetToken: () => 't' });
  const plan: InstancePlan = {
    endpoint: 'ep', deployment: 'blue', revision: 'r1', instanceCount: 1, runtime: 'python', code: { path: '/c', scoringScript: 'score.py' }, environment: {}, instanceType: 'x',
    resources: { from: 'x' }, egress: false, environmentVariables: {}, workerCount: 1, requestTimeoutMs: 1000,
    livenessProbe: { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 3 }, readinessProbe: { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 3 },
  };
  try {
    await b.start('ep.blue.r1.0', plan, 0);
    const deadline = Date.now() + 5000;
    while (api.list('Pod', 'infergate').length === 0 || !api.requests.some((r) => r.query.watch === 'true')) {
      if (Date.now() > deadline) throw new Error('no pod or watch');
      await new Promise((r) => setTimeout(r, 10));
    }
    const pod = api.list('Pod', 'infergate')[0];
    api.appendLog(pod, 'inference-server', 'x\n');
    while (!(await b.logs('ep', 'blue', 'inference-server', 5))) await new Promise((r) => setTimeout(r, 10));
    await b.stop('ep.blue.r1.0');
    await b.forget('ep', 'blue');
  } finally {
    await b.close();
    await api.close();
  }
  const used = new Set<string>();
  for (const r of api.requests) {
    const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/namespaces\/[^/]+\/([^/]+)(?:\/([^/]+))?(?:\/(log))?$/.exec(r.path);
    if (!m) continue; // discovery (/api/v1, /apis/<group>/<version>) needs no Role: every authenticated user may read it
    const group = m[1] ?? '';
    const resource = m[4] ? `${m[2]}/log` : m[2];
    const verb = r.method === 'PATCH' ? 'patch' : r.method === 'DELETE' ? 'delete' : r.query.watch === 'true' ? 'watch' : m[3] ? 'get' : 'list';
    // Server-side apply of an object that does not exist yet creates it: that needs `create` too.
    const verbs = verb === 'patch' ? ['patch', 'create'] : [verb];
    for (const v of verbs) used.add(`${group}|${resource}|${v}`);
  }
  const [role] = byKind('Role');
  const granted = new Set(role.rules!.flatMap((r) => r.apiGroups.flatMap((g) => r.resources.flatMap((res) => r.verbs.map((v) => `${g}|${res}|${v}`)))));
  for (const u of used) assert.ok(granted.has(u), `the Role grants ${u}`);
  // Least privilege: every grant is something the backend does, or reads what routers need (endpointslices).
  for (const g of granted) assert.ok(used.has(g) || g.startsWith('discovery.k8s.io|endpointslices|') || g.endsWith('|get'), `unused grant ${g}`);
});
