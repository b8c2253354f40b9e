// The Kubernetes backend against the fake API server: what it applies (server-side apply, field manager
// infergate), how it follows pods through a watch, and how pod states become instance states and errors
// as Azure reports them (ImagePullLoopBackOff, KubernetesCrashLoopBackOff, PodOutOfMemory,
// UserScriptInitFailed).

import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { after, afterEach, beforeEach, describe, test } from 'node:test';
import type { InstancePlan } from '../../src/ir/types.js';
import { KubernetesBackend, probeCompute } from '../../src/backend/kubernetes/backend.js';
import type { EnvironmentImagePublisher } from '../../src/backend/kubernetes/images.js';
import type { ObservedInstance } from '../../src/backend/types.js';
import { FakeApiServer, type Obj } from './fake-apiserver.js';
import { validateObject } from './validate.js';

const PROBE = { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };
const plan = (deployment = 'blue', revision = 'r1', over: Partial<InstancePlan> = {}): InstancePlan => ({
  endpoint: 'my-endpoint',
  deployment,
  revision,
  instanceCount: 1,
  runtime: 'python',
  model: { name: 'm', version: '1', path: '/ws/m' },
  code: { path: '/ws/code', scoringScript: 'score.py' },
  environment: { image: 'registry.example:5000/sklearn:1' },
  instanceType: 'defaultinstancetype',
  resources: { cpus: 0.2, memoryBytes: 200 * 2 ** 20, from: 'resources.limits' },
  egress: false,
  environmentVariables: {},
  workerCount: 1,
  requestTimeoutMs: 3000,
  livenessProbe: PROBE,
  readinessProbe: PROBE,
  compute: 'k8s',
  kubernetesResources: { requests: { cpu: '0.1', memory: '0.1Gi' }, limits: { cpu: '0.2', memory: '200Mi' } },
  ...over,
});

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, ms = 5000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('KubernetesBackend against the fake API server', () => {
  let api: FakeApiServer;
  let b: KubernetesBackend;
  const NS = 'azureml';
  beforeEach(async () => {
    api = new FakeApiServer();
    api.token = 'secret-token';
    await api.start();
    b = new KubernetesBackend({ compute: 'k8s', kubeconfig: api.kubeconfig(NS), workspace: 'ws0123456789abcd', controlUrl: 'http://control.example:8080', defaultImage: 'infergate-python:bookworm', assetToken: (p) => `token-for-${p.revision}` });
  });
  afterEach(async () => {
    await b.close();
    await api.close();
  });
  const obs = (id: string) => b.observe().find((i) => i.id === id);
  const stateOf = (id: string, state: ObservedInstance['state']) => until(`${id} ${state}`, () => (obs(id)?.state === state ? obs(id) : undefined));
  const podsOf = (deployment = 'blue') => api.list('Pod', NS, { 'infergate.io/deployment': deployment });

  test('start applies root, Secret, Deployment, Service and PDB by server-side apply as infergate; a ready pod is a ready instance', async () => {
    let changes = 0;
    b.onChange(() => changes++);
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    assert.equal(obs('my-endpoint.blue.r1.0')?.state, 'starting');
    const applies = api.requests.filter((r) => r.method === 'PATCH');
    assert.ok(applies.length >= 5);
    for (const r of applies) {
      assert.equal(r.contentType, 'application/apply-patch+yaml');
      assert.equal(r.query.fieldManager, 'infergate');
      assert.equal(r.query.force, 'true');
    }
    const d = api.get('Deployment', NS, 'ig-my-endpoint-blue-r1')!;
    assert.equal(d.spec.replicas, 1);
    assert.equal(d.metadata.managedFields?.[0]?.manager, 'infergate');
    const root = api.get('ConfigMap', NS, 'ig-my-endpoint')!;
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'Secret']) {
      const [o] = api.list(kind, NS, { 'infergate.io/endpoint': 'my-endpoint' });
      assert.ok(o, kind);
      assert.equal(o.metadata.ownerReferences?.[0]?.uid, root.metadata.uid, `${kind} is owned by the root`);
      if (kind !== 'Secret') validateObject(o);
    }
    assert.equal(Buffer.from(api.list('Secret', NS)[0].data.token, 'base64').toString(), 'token-for-r1');
    const [pod] = await until('a pod', () => podsOf()[0] && podsOf());
    api.ready(pod);
    const ready = await stateOf('my-endpoint.blue.r1.0', 'ready');
    assert.deepEqual(ready.address, { instanceId: 'my-endpoint.blue.r1.0', transport: 'framed-tcp', host: pod.status.podIP, port: 5001 });
    assert.ok(changes >= 2);
  });

  test('pods = instances: start and stop change replicas; the last stop deletes the revision', async () => {
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    await b.start('my-endpoint.blue.r1.1', plan(), 1);
    await b.start('my-endpoint.blue.r1.1', plan(), 1); // idempotent
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-blue-r1')!.spec.replicas, 2);
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-blue-r1')!.metadata.annotations?.['infergate.io/instances'], 'my-endpoint.blue.r1.0,my-endpoint.blue.r1.1');
    await until('two pods', () => podsOf().length === 2);
    for (const p of podsOf()) api.ready(p);
    await stateOf('my-endpoint.blue.r1.1', 'ready');
    await b.stop('my-endpoint.blue.r1.1');
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-blue-r1')!.spec.replicas, 1);
    assert.deepEqual(b.observe().map((i) => i.id), ['my-endpoint.blue.r1.0']);
    await b.stop('my-endpoint.blue.r1.0');
    await b.stop('my-endpoint.blue.r1.0');
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-blue-r1'), undefined);
    assert.equal(podsOf().length, 0, 'its pods went with it');
  });

  test('an instance stopped while its revision is being applied fails neither the apply nor the others', async () => {
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    // The stop lands while the apply that start(…1) began waits for the API server's answer to its first PATCH.
    let stopped: Promise<void> | undefined;
    const push = api.requests.push.bind(api.requests);
    api.requests.push = (...r) => {
      if (!stopped && r[0].method === 'PATCH') stopped = b.stop('my-endpoint.blue.r1.1');
      return push(...r);
    };
    await b.start('my-endpoint.blue.r1.1', plan(), 1);
    assert.ok(stopped, 'the stop came in during the apply');
    await stopped;
    assert.deepEqual(b.observe().map((i) => [i.id, i.state]), [['my-endpoint.blue.r1.0', 'starting']]);
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-blue-r1')!.spec.replicas, 1);
  });

  test('CrashLoopBackOff and OOMKilled are restarts with Azure\'s codes; ready again counts the restart', async () => {
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    const [pod] = await until('a pod', () => podsOf()[0] && podsOf());
    api.ready(pod);
    await stateOf('my-endpoint.blue.r1.0', 'ready');
    api.crash(api.get('Pod', NS, pod.metadata.name)!, { message: 'Traceback: boom' });
    const crashed = await stateOf('my-endpoint.blue.r1.0', 'restarting');
    assert.equal(crashed.error?.code, 'KubernetesCrashLoopBackOff');
    assert.match(crashed.error!.message, /boom/);
    api.ready(api.get('Pod', NS, pod.metadata.name)!);
    const again = await stateOf('my-endpoint.blue.r1.0', 'ready');
    assert.equal(again.restarts, 1);
    api.crash(api.get('Pod', NS, pod.metadata.name)!, { reason: 'OOMKilled' });
    const oom = await stateOf('my-endpoint.blue.r1.0', 'restarting');
    assert.equal(oom.error?.code, 'PodOutOfMemory');
    assert.match(oom.error!.message, /200Mi/);
    assert.equal(oom.restarts, 2);
  });

  test('an image that cannot be pulled and a failing init() are final', async () => {
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    await b.start('my-endpoint.green.r1.0', plan('green'), 0);
    const [blue] = await until('blue pod', () => podsOf('blue')[0] && podsOf('blue'));
    const [green] = await until('green pod', () => podsOf('green')[0] && podsOf('green'));
    api.imagePullFails(blue);
    const failed = await stateOf('my-endpoint.blue.r1.0', 'failed');
    assert.equal(failed.error?.code, 'ImagePullLoopBackOff');
    assert.match(failed.error!.message, /registry\.example:5000\/sklearn:1/);
    api.crash(green, { exitCode: 3, message: 'init() raised: FileNotFoundError: model.pkl' });
    const initFailed = await stateOf('my-endpoint.green.r1.0', 'failed');
    assert.equal(initFailed.error?.code, 'UserScriptInitFailed');
    assert.match(initFailed.error!.message, /model\.pkl/);
  });

  test('the watch resumes after the API server drops it and after 410 Gone', async () => {
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    const [pod] = await until('a pod', () => podsOf()[0] && podsOf());
    await until('the watch', () => api.requests.some((r) => r.query.watch === 'true'));
    api.expireWatches = 1;
    api.dropWatches();
    await until('a watch after the 410', () => api.requests.filter((r) => r.query.watch === 'true').length >= 3);
    api.ready(pod);
    await stateOf('my-endpoint.blue.r1.0', 'ready');
    const watches = api.requests.filter((r) => r.query.watch === 'true');
    assert.ok(api.requests.filter((r) => r.method === 'GET' && r.path.endsWith('/pods') && r.query.watch === undefined).length >= 3, 'listed again before each watch');
    assert.ok(watches.every((w) => w.query.resourceVersion !== undefined), 'from a resourceVersion');
  });

  test('logs come from the pods, newest first, per container; forget deletes the deployment\'s objects and the root', async () => {
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    const [pod] = await until('a pod', () => podsOf()[0] && podsOf());
    await until('the pod seen', () => b.observe().length === 1 && api.requests.some((r) => r.query.watch === 'true'));
    api.appendLog(pod, 'inference-server', 'line 1\nline 2\nline 3\n');
    api.appendLog(pod, 'storage-initializer', 'storage-initializer: model -> /var/infergate/models\n');
    await until('pod in cache', async () => (await b.logs('my-endpoint', 'blue', 'inference-server', 2)) === 'line 2\nline 3\n');
    assert.match(await b.logs('my-endpoint', 'blue', 'storage-initializer', 10), /model ->/);
    assert.equal(await b.logs('my-endpoint', 'none', 'inference-server', 10), '');
    await b.forget('my-endpoint', 'blue'); // still running: nothing removed
    assert.ok(api.get('Service', NS, 'ig-my-endpoint-blue'));
    await b.stop('my-endpoint.blue.r1.0');
    await b.forget('my-endpoint', 'blue');
    for (const kind of ['Deployment', 'Service', 'PodDisruptionBudget', 'Secret', 'ConfigMap', 'Pod']) assert.deepEqual(api.list(kind, NS), [], `no ${kind} left`);
  });

  test('deleting the endpoint\'s root deletes everything of the endpoint (owner references), nothing foreign', async () => {
    const foreign: Obj = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'someone-else', namespace: NS }, spec: { replicas: 1, selector: { matchLabels: { app: 'x' } }, template: { metadata: { labels: { app: 'x' } }, spec: { containers: [{ name: 'x', image: 'x' }] } } } };
    const res = await fetch(`${api.url}/apis/apps/v1/namespaces/${NS}/deployments/someone-else?fieldManager=kubectl`, { method: 'PATCH', headers: { 'content-type': 'application/apply-patch+yaml', authorization: 'Bearer secret-token' }, body: JSON.stringify(foreign) });
    assert.equal(res.status, 200);
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    await b.start('my-endpoint.green.r1.0', plan('green'), 0);
    await fetch(`${api.url}/api/v1/namespaces/${NS}/configmaps/ig-my-endpoint`, { method: 'DELETE', headers: { authorization: 'Bearer secret-token' } });
    assert.deepEqual(api.list('Deployment', NS).map((d) => d.metadata.name), ['someone-else']);
    assert.deepEqual(api.list('Service', NS), []);
    await b.close();
    assert.ok(api.get('Deployment', NS, 'someone-else'), 'close leaves what it did not create');
  });

  test('the revisions that run are applied again, with a fresh asset token', async () => {
    await b.close();
    let n = 0;
    b = new KubernetesBackend({ compute: 'k8s', kubeconfig: api.kubeconfig(NS), workspace: 'ws0123456789abcd', controlUrl: 'http://c', defaultImage: 'img', refreshMs: 50, assetToken: () => `token-${++n}` });
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    const secret = () => Buffer.from(api.list('Secret', NS)[0].data.token, 'base64').toString();
    assert.equal(secret(), 'token-1');
    await until('a renewed token', () => Number(secret().slice(6)) >= 3);
  });

  test('a refresh the API server refuses leaves running instances as they are (logged, tried again)', async () => {
    await b.close();
    const lines: string[] = [];
    b = new KubernetesBackend({ compute: 'k8s', kubeconfig: api.kubeconfig(NS), workspace: 'ws0123456789abcd', controlUrl: 'http://c', defaultImage: 'img', refreshMs: 30, assetToken: () => 't', log: (l) => lines.push(l) });
    await b.start('my-endpoint.blue.r1.0', plan(), 0);
    const [pod] = await until('a pod', () => podsOf()[0] && podsOf());
    api.ready(pod);
    await stateOf('my-endpoint.blue.r1.0', 'ready');
    const from = api.requests.length;
    api.token = 'rotated';
    await until('two refused refreshes', () => api.requests.slice(from).filter((r) => r.method === 'PATCH').length >= 2 && lines.filter((l) => /Unauthorized|401/.test(l)).length >= 2);
    assert.equal(obs('my-endpoint.blue.r1.0')?.state, 'ready');
    assert.equal(obs('my-endpoint.blue.r1.0')?.error, undefined);
    api.token = 'secret-token';
  });

  test('an environment infergate builds: published first, rendered by digest, once per revision; no registry: failed, nothing applied', async () => {
    await b.close();
    const published: string[] = [];
    const images: EnvironmentImagePublisher = {
      async publish(environment, registry, _defaultImage, request, log) {
        published.push(`${request.endpoint}/${request.deployment}`);
        log('environment image: pushed (stub)');
        return `${registry}/infergate-env@sha256:${'a'.repeat(64)}`;
      },
    };
    const conda = plan('blue', 'r1', { environment: { image: 'base:1', condaFile: { dependencies: ['python=3.11'] } } });
    b = new KubernetesBackend({ compute: 'k8s', kubeconfig: api.kubeconfig(NS), workspace: 'ws0123456789abcd', controlUrl: 'http://c', defaultImage: 'img', registry: '127.0.0.1:5000', images, assetToken: () => 't' });
    await b.start('my-endpoint.blue.r1.0', conda, 0);
    await b.start('my-endpoint.blue.r1.1', conda, 1);
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-blue-r1')!.spec.template.spec.containers[0].image, `127.0.0.1:5000/infergate-env@sha256:${'a'.repeat(64)}`);
    assert.deepEqual(published, ['my-endpoint/blue'], 'one publish for the revision');
    assert.match(await b.logs('my-endpoint', 'blue', 'inference-server', 10), /pushed \(stub\)/);
    await b.close();

    b = new KubernetesBackend({ compute: 'k8s', kubeconfig: api.kubeconfig(NS), workspace: 'ws0123456789abcd', controlUrl: 'http://c', defaultImage: 'img', images, assetToken: () => 't' });
    const green = plan('green', 'r1', { environment: { image: 'base:1', condaFile: { dependencies: ['python=3.11'] } } });
    await assert.rejects(b.start('my-endpoint.green.r1.0', green, 0), (e: any) => e.code === 'BadArgument' && /compute 'k8s' has no registry/.test(e.message));
    assert.equal(obs('my-endpoint.green.r1.0')?.error?.code, 'BadArgument');
    assert.equal(api.get('Deployment', NS, 'ig-my-endpoint-green-r1'), undefined);
    assert.deepEqual(published, ['my-endpoint/blue']);
  });

  test('an API server that refuses the credentials: the instance fails with KubernetesUnaccessible', async () => {
    api.token = 'another';
    await assert.rejects(b.start('my-endpoint.blue.r1.0', plan(), 0), (e: any) => e.code === 'KubernetesUnaccessible' && /Unauthorized|401/.test(e.message));
    const o = obs('my-endpoint.blue.r1.0');
    assert.equal(o?.state, 'failed');
    assert.equal(o?.error?.code, 'KubernetesUnaccessible');
  });
});

describe('a compute whose API server cannot be reached', () => {
  // A port that accepts connections and never answers (a black-holed API server), and one nobody listens on.
  const held = new Set<import('node:net').Socket>();
  const silent = createServer((s) => {
    held.add(s);
  });
  after(() => {
    for (const s of held) s.destroy();
    silent.close();
  });

  test('probeCompute fails with KubernetesUnaccessible within its timeout, for a silent and for a closed port', async () => {
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    const api = new FakeApiServer();
    const kubeconfig = (url: string) => api.kubeconfig('default', 't').replace(/server: .*/, `server: ${url}`);
    const t0 = Date.now();
    await assert.rejects(probeCompute({ name: 'k8s', kubeconfig: kubeconfig(`http://127.0.0.1:${port}`) }, 1500), (e: any) => e.code === 'KubernetesUnaccessible' && /k8s/.test(e.message) && /1\.5 s/.test(e.message));
    assert.ok(Date.now() - t0 < 4000, 'in seconds');
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const closedPort = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await assert.rejects(probeCompute({ name: 'k8s', kubeconfig: kubeconfig(`http://127.0.0.1:${closedPort}`) }, 1500), (e: any) => e.code === 'KubernetesUnaccessible' && /ECONNREFUSED/.test(e.message));
  });

  test('a kubeconfig that is not one, or names a missing context, is refused with KubeconfigInvalid', async () => {
    await assert.rejects(probeCompute({ name: 'k8s', kubeconfig: 'not: [valid' }), (e: any) => e.code === 'BadArgument' && /kubeconfig/i.test(e.message));
    const api = new FakeApiServer();
    api.url = 'http://127.0.0.1:1';
    await assert.rejects(probeCompute({ name: 'k8s', kubeconfig: api.kubeconfig(), context: 'nope' }), (e: any) => /no context 'nope'/.test(e.message));
  });
});
