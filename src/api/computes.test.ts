// The compute routes: who may attach, list, show and detach; the kubeconfig is a credential (never shown
// back, never in the audit log); endpoint and deployment changes check the compute they name.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { FastifyInstance } from 'fastify';
import type { Backend } from '../backend/types.js';
import { errorOf } from '../errors/index.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { AuditLog } from './audit.js';
import { createToken } from './auth.js';
import { buildApi } from './server.js';

const KUBECONFIG = [
  'apiVersion: v1',
  'kind: Config',
  'clusters:',
  '- name: c\n  cluster:\n    server: https://k8s.example:6443',
  'users:',
  '- name: u\n  user:\n    token: very-secret-cluster-token',
  'contexts:',
  '- name: ctx\n  context:\n    cluster: c\n    user: u\n    namespace: ml',
  'current-context: ctx',
].join('\n');

describe('compute routes', () => {
  let app: FastifyInstance;
  let dir: string;
  let audit: AuditLog;
  let controller: Controller;
  const store = new MemoryStateStore();
  const tokens: Record<string, string> = {};
  let reachable = true;
  const checked: string[] = [];
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'ig-computes-'));
    audit = new AuditLog(join(dir, 'audit.jsonl'));
    const backend = { kind: 'process', observe: () => [], start: async () => {}, stop: async () => {}, logs: async () => '', onChange: () => {}, close: async () => {} } as unknown as Backend;
    controller = new Controller({ store, backend, publish: () => {}, deregistrationDelayMs: 0 });
    app = await buildApi({
      store, controller, logs: async () => '', routerUrl: 'http://127.0.0.1:1', workspace: 'ws', location: 'local', version: '0', assetsDir: join(dir, 'assets'), audit,
      async checkCompute(c) {
        checked.push(c.name);
        if (!reachable) throw errorOf('KubernetesUnaccessible', { compute: c.name, server: 'https://k8s.example:6443', seconds: 3, reason: 'no answer within 3 s' });
        return { server: 'https://k8s.example:6443', namespace: c.namespace ?? 'ml', version: 'v1.30.0' };
      },
    });
    for (const role of ['owner', 'contributor', 'reader'] as const) tokens[role] = createToken(store, { role }).token;
  });
  after(async () => {
    controller.stop();
    await app.close();
    await audit.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const call = async (role: string, method: string, url: string, body?: unknown) => {
    const r = await app.inject({ method: method as 'GET', url, headers: { authorization: `Bearer ${tokens[role]}`, ...(body ? { 'content-type': 'application/json' } : {}) }, ...(body ? { payload: JSON.stringify(body) } : {}) });
    return { status: r.statusCode, body: r.json() as any, text: r.body };
  };

  test('a reader lists and shows but cannot attach or detach; a contributor attaches and detaches', async () => {
    const denied = await call('reader', 'POST', '/api/computes', { name: 'k8s', kubeconfig: KUBECONFIG });
    assert.equal(denied.status, 403);
    const attached = await call('contributor', 'POST', '/api/computes', { name: 'k8s', type: 'Kubernetes', kubeconfig: KUBECONFIG, registry: 'reg.example' });
    assert.equal(attached.status, 201, attached.text);
    assert.deepEqual(attached.body, { id: '/workspaces/ws/computes/k8s', name: 'k8s', type: 'kubernetes', provisioning_state: 'Succeeded', namespace: 'ml', properties: { server: 'https://k8s.example:6443', context: null, registry: 'reg.example' }, created_on: attached.body.created_on });
    assert.deepEqual(checked, ['k8s'], 'attach checked the cluster');
    for (const r of [await call('reader', 'GET', '/api/computes'), await call('reader', 'GET', '/api/computes/K8S')]) {
      assert.equal(r.status, 200);
      assert.doesNotMatch(r.text, /very-secret|kubeconfig/);
    }
    assert.equal((await call('reader', 'DELETE', '/api/computes/k8s')).status, 403);
    await audit.close();
    assert.doesNotMatch(readFileSync(join(dir, 'audit.jsonl'), 'utf8'), /very-secret/, 'no credential in the audit log');
    assert.match(readFileSync(join(dir, 'audit.jsonl'), 'utf8'), /"compute":"k8s"/);
  });

  test('attach refuses another type, a bad kubeconfig, a missing context and a taken name', async () => {
    assert.equal((await call('owner', 'POST', '/api/computes', { name: 'x1', type: 'aks', kubeconfig: KUBECONFIG })).body.error.code, 'BadArgument');
    const bad = await call('owner', 'POST', '/api/computes', { name: 'x2', kubeconfig: 'not: [yaml' });
    assert.equal(bad.status, 400);
    assert.match(bad.body.error.message, /kubeconfig/);
    assert.match((await call('owner', 'POST', '/api/computes', { name: 'x3', kubeconfig: KUBECONFIG, context: 'nope' })).body.error.message, /no context 'nope'/);
    assert.equal((await call('owner', 'POST', '/api/computes', { name: 'k8s', kubeconfig: KUBECONFIG })).body.error.code, 'ComputeAlreadyExists');
    reachable = false;
    try {
      const down = await call('owner', 'POST', '/api/computes', { name: 'x4', kubeconfig: KUBECONFIG });
      assert.equal(down.status, 503);
      assert.equal(down.body.error.code, 'KubernetesUnaccessible');
      assert.equal((await call('owner', 'GET', '/api/computes/x4')).body.error.code, 'ComputeNotFound', 'nothing stored');
    } finally {
      reachable = true;
    }
  });

  test('attach refuses a kubeconfig that would make the server run a command or read one of its files', async () => {
    const variants: Record<string, string> = {
      exec: KUBECONFIG.replace('    token: very-secret-cluster-token', '    exec:\n      apiVersion: client.authentication.k8s.io/v1\n      command: /bin/sh\n      args: ["-c", "touch /tmp/pwned"]'),
      'token-file': KUBECONFIG.replace('    token: very-secret-cluster-token', '    token-file: /etc/passwd'),
      'auth-provider': KUBECONFIG.replace('    token: very-secret-cluster-token', '    auth-provider:\n      name: gcp\n      config:\n        cmd-path: /bin/sh'),
      'client-key': KUBECONFIG.replace('    token: very-secret-cluster-token', '    client-certificate: /etc/ssl/cert.pem\n    client-key: /etc/ssl/key.pem'),
      'certificate-authority': KUBECONFIG.replace('    server: https://k8s.example:6443', '    server: https://k8s.example:6443\n    certificate-authority: /etc/ssl/ca.pem'),
    };
    const before = checked.length;
    for (const [what, kubeconfig] of Object.entries(variants)) {
      const r = await call('contributor', 'POST', '/api/computes', { name: 'local-ref', kubeconfig });
      assert.equal(r.status, 400, what);
      assert.equal(r.body.error.code, 'BadArgument', what);
      assert.match(r.body.error.message, new RegExp(what.replace('-', '\\-')), what);
    }
    assert.equal(checked.length, before, 'no such kubeconfig reached the Kubernetes client');
    assert.equal((await call('owner', 'GET', '/api/computes/local-ref')).status, 404);
  });

  test('an endpoint naming an unknown compute: ComputeNotFound; a known one that does not answer: KubernetesUnaccessible; a malformed one: ValidationFailed', async () => {
    const nf = await call('owner', 'POST', '/api/endpoints', { name: 'ep-nf', compute: 'azureml:nope' });
    assert.equal(nf.status, 404);
    assert.equal(nf.body.error.code, 'ComputeNotFound');
    assert.match(nf.body.error.message, /'nope'.*attached: k8s/);
    const malformed = await call('owner', 'POST', '/api/endpoints', { name: 'ep-bad', compute: 'azureml:has spaces' });
    assert.equal(malformed.body.error.code, 'ValidationFailed');
    assert.match(malformed.body.error.message, /compute: 'azureml:has spaces' is not a compute reference/);
    // Azure's ARM id of a compute names the same compute.
    assert.equal((await call('owner', 'POST', '/api/endpoints', { name: 'ep-arm', compute: '/subscriptions/s/resourceGroups/g/providers/Microsoft.MachineLearningServices/workspaces/w/computes/nope' })).body.error.code, 'ComputeNotFound');
    reachable = false;
    try {
      assert.equal((await call('owner', 'POST', '/api/endpoints', { name: 'ep-down', compute: 'azureml:k8s' })).body.error.code, 'KubernetesUnaccessible');
    } finally {
      reachable = true;
    }
    assert.equal(store.listEndpoints().length, 0, 'nothing was created');
    const created = await call('owner', 'POST', '/api/endpoints', { name: 'ep-k8s', compute: 'azureml:k8s' });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.compute, 'azureml:k8s');
    // Detach is refused while an endpoint names the compute.
    const inUse = await call('owner', 'DELETE', '/api/computes/k8s');
    assert.equal(inUse.status, 409);
    assert.equal(inUse.body.error.code, 'ComputeInUse');
  });

  test('an endpoint\'s compute cannot change on update: not dropped, not added, not another one', async () => {
    const attached = await call('owner', 'POST', '/api/computes', { name: 'k8s-two', kubeconfig: KUBECONFIG });
    assert.equal(attached.status, 201, attached.text);
    assert.equal((await call('owner', 'POST', '/api/endpoints', { name: 'ep-move', compute: 'azureml:k8s' })).status, 201);
    assert.equal((await call('owner', 'POST', '/api/endpoints', { name: 'ep-local' })).status, 201);
    for (const [name, body] of [['ep-move', { name: 'ep-move' }], ['ep-move', { name: 'ep-move', compute: 'azureml:k8s-two' }], ['ep-local', { name: 'ep-local', compute: 'azureml:k8s' }]] as const) {
      const r = await call('owner', 'PUT', `/api/endpoints/${name}`, body);
      assert.equal(r.status, 400, JSON.stringify(body));
      assert.equal(r.body.error.code, 'BadArgument');
      assert.match(r.body.error.message, /compute cannot change/);
    }
    assert.equal(store.getEndpoint('ep-move')?.spec.compute, 'azureml:k8s', 'unchanged');
    assert.equal(store.getEndpoint('ep-local')?.spec.compute, undefined, 'unchanged');
    // The same compute written another way is no change.
    const same = await call('owner', 'PUT', '/api/endpoints/ep-move', { name: 'ep-move', compute: 'azureml:K8S', description: 'd' });
    assert.equal(same.status, 200, same.text);
  });
});
