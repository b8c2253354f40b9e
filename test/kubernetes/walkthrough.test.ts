// Azure's Kubernetes safe-rollout walkthrough (deploy-safe-rollout-kubernetes-online-endpoints.sh, the
// examples/azureml/kubernetes/*.yml files as they are) driven through the CLI against a real infergate
// server whose compute is the fake API server. The test plays the cluster (pods ready, image pull
// failures) and checks the objects at each step. Scoring is not part of it: the pods' addresses are the
// fake's, where nothing listens (scoring.test.ts runs the pods and scores through the router).

import assert from 'node:assert/strict';
import { cpSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import { FakeApiServer, type Obj } from './fake-apiserver.js';
import { imageOnlyEnvironments, Infergate, ROOT } from './server.js';
import { validateObject } from './validate.js';

const NS = 'azureml';

describe('Kubernetes safe rollout through the CLI against the fake API server', { timeout: 240_000 }, () => {
  let api: FakeApiServer;
  let ig: Infergate;
  let home: string;
  let examples: string;
  let kubelet: { stop(): Promise<void> } | undefined;
  /** Pods the fake kubelet must not make ready (image pull failures). */
  const badImages = new Set<string>();

  const cli = (args: string[]) => ig.cli(args);
  const ok = (args: string[]) => ig.ok(args);
  const deployments = (deployment?: string) => api.list('Deployment', NS, deployment ? { 'infergate.io/deployment': deployment } : {});

  before(async () => {
    api = new FakeApiServer();
    api.token = 'cluster-token';
    await api.start();
    ig = new Infergate({ INFERGATE_CONTROL_URL: 'http://infergate-control.azureml.svc:8080' });
    home = ig.home;
    examples = join(home, 'examples');
    cpSync(join(ROOT, 'examples', 'azureml'), examples, { recursive: true });
    imageOnlyEnvironments(join(examples, 'kubernetes'));
    writeFileSync(join(home, 'kubeconfig.yaml'), api.kubeconfig(NS));
    await ig.start();
    // The kubelet this test plays: every new pod becomes ready, unless its image is a bad one.
    kubelet = api.playKubelet((p) => (badImages.has(p.spec.containers[0].image) ? api.imagePullFails(p) : api.ready(p)), NS);
  });
  after(async () => {
    await kubelet?.stop();
    await ig?.close();
    await api?.close();
  });

  test('an endpoint naming a compute that is not attached is refused with ComputeNotFound, never run locally', async () => {
    const r = await cli(['ml', 'online-endpoint', 'create', '-f', join(examples, 'kubernetes', 'kubernetes-endpoint.yml')]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ComputeNotFound/);
    assert.match(r.stderr, /inferencecompute/);
    const list = JSON.parse(await ok(['ml', 'online-endpoint', 'list'])) as unknown[];
    assert.deepEqual(list, [], 'nothing was created');
  });

  test('compute attach / show / list: az-shaped, the kubeconfig never shown back', async () => {
    const attached = JSON.parse(await ok(['ml', 'compute', 'attach', '--type', 'kubernetes', '--name', 'inferencecompute', '--kubeconfig', join(home, 'kubeconfig.yaml'), '--registry', 'registry.example:5000'])) as Record<string, any>;
    assert.equal(attached.name, 'inferencecompute');
    assert.equal(attached.type, 'kubernetes');
    assert.equal(attached.namespace, NS, "the context's namespace");
    assert.equal(attached.properties.server, api.url);
    const shown = await ok(['ml', 'compute', 'show', '-n', 'inferencecompute', '-o', 'yaml']);
    assert.doesNotMatch(shown, /cluster-token|kubeconfig/i, 'no credential in show');
    const list = JSON.parse(await ok(['ml', 'compute', 'list'])) as { name: string }[];
    assert.deepEqual(list.map((c) => c.name), ['inferencecompute']);
    const again = await cli(['ml', 'compute', 'attach', '--name', 'inferencecompute', '--kubeconfig', join(home, 'kubeconfig.yaml')]);
    assert.match(again.stderr, /ComputeAlreadyExists/);
  });

  test('the walkthrough: endpoint, blue with all traffic, scale, green at 0, split, all to green, delete blue, delete the endpoint', async () => {
    const k8s = join(examples, 'kubernetes');
    await ok(['ml', 'online-endpoint', 'create', '-f', join(k8s, 'kubernetes-endpoint.yml')]);
    const ep = JSON.parse(await ok(['ml', 'online-endpoint', 'show', '-n', 'my-endpoint'])) as Record<string, unknown>;
    assert.equal(ep.compute, 'azureml:inferencecompute');

    // --dry-run prints what create would apply, and creates nothing.
    const dry = parseYaml(await ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'kubernetes-blue-deployment.yml'), '--dry-run', '-o', 'yaml'])) as { kind: string; items: Obj[] };
    assert.equal(dry.kind, 'List');
    assert.deepEqual(dry.items.map((o) => o.kind), ['ConfigMap', 'Secret', 'Deployment', 'Service', 'PodDisruptionBudget']);
    for (const o of dry.items) validateObject(o);
    assert.deepEqual(deployments(), [], 'dry-run applied nothing');

    await ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'kubernetes-blue-deployment.yml'), '--all-traffic']);
    const [blue] = deployments('blue');
    assert.ok(blue, 'blue is a Deployment on the cluster');
    assert.equal(blue.spec.replicas, 1);
    const c = blue.spec.template.spec.containers[0];
    assert.equal(c.image, 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest');
    assert.deepEqual(c.resources, { requests: { cpu: '0.1', memory: '0.1Gi' }, limits: { cpu: '0.2', memory: '200Mi' } });
    assert.equal(blue.metadata.managedFields?.[0]?.manager, 'infergate');
    // The dry run rendered the same Deployment, but for the revision: the server's plan names its own
    // copies of the model and code (registered when the deployment was created), so their hash differs.
    const dryBlue = dry.items.find((o) => o.kind === 'Deployment')!;
    const revisionOf = (o: Obj) => o.metadata.labels!['infergate.io/revision'];
    const sameRevision = (o: Obj) => JSON.parse(JSON.stringify(o.spec).replaceAll(revisionOf(o), 'REV')) as unknown;
    assert.deepEqual(sameRevision(dryBlue), sameRevision(blue));
    assert.ok(api.get('Service', NS, 'ig-my-endpoint-blue'));
    assert.ok(api.get('PodDisruptionBudget', NS, 'ig-my-endpoint-blue'));
    const shownBlue = JSON.parse(await ok(['ml', 'online-deployment', 'show', '-n', 'blue', '-e', 'my-endpoint'])) as Record<string, unknown>;
    assert.equal(shownBlue.provisioning_state, 'Succeeded');
    assert.deepEqual((JSON.parse(await ok(['ml', 'online-endpoint', 'show', '-n', 'my-endpoint'])) as { traffic: unknown }).traffic, { blue: 100 });

    // Scale blue to 2: the same Deployment, two replicas (instance_count is not part of the revision).
    await ok(['ml', 'online-deployment', 'update', '-n', 'blue', '-e', 'my-endpoint', '--set', 'instance_count=2']);
    assert.deepEqual(deployments('blue').map((d) => d.spec.replicas), [2]);
    assert.equal(api.list('Pod', NS, { 'infergate.io/deployment': 'blue' }).length, 2);

    // Green (target_utilization, min 1): a second Deployment, no traffic yet.
    await ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'kubernetes-green-deployment.yml')]);
    const [green] = deployments('green');
    assert.equal(green.spec.replicas, 1);
    assert.equal(api.list('HorizontalPodAutoscaler', NS).length, 0, "target_utilization is infergate's autoscaler, not an HPA");

    await ok(['ml', 'online-endpoint', 'update', '-n', 'my-endpoint', '--traffic', 'blue=90 green=10']);
    assert.deepEqual((JSON.parse(await ok(['ml', 'online-endpoint', 'show', '-n', 'my-endpoint'])) as { traffic: unknown }).traffic, { blue: 90, green: 10 });
    // Mirroring is refused on Kubernetes endpoints, as by Azure.
    const mirror = await cli(['ml', 'online-endpoint', 'update', '-n', 'my-endpoint', '--mirror-traffic', 'green=10']);
    assert.notEqual(mirror.code, 0);

    await ok(['ml', 'online-endpoint', 'update', '-n', 'my-endpoint', '--traffic', 'blue=0 green=100']);
    await ok(['ml', 'online-deployment', 'delete', '-n', 'blue', '-e', 'my-endpoint', '--yes']);
    await waitFor('blue to leave the cluster', () => deployments('blue').length === 0 && !api.get('Service', NS, 'ig-my-endpoint-blue'));
    assert.equal(deployments('green').length, 1, 'green stays');
    assert.ok(api.get('Service', NS, 'ig-my-endpoint-green'));

    // Detaching a compute that still has endpoints is refused.
    assert.match((await cli(['ml', 'compute', 'detach', '-n', 'inferencecompute'])).stderr, /ComputeInUse/);

    await ok(['ml', 'online-endpoint', 'delete', '-n', 'my-endpoint', '--yes']);
    await waitFor('every object of the endpoint to go', () => ['Deployment', 'Service', 'PodDisruptionBudget', 'Secret', 'ConfigMap', 'Pod'].every((k) => api.list(k, NS).length === 0));
  });

  test('an endpoint without a compute still runs and scores on this machine beside the Kubernetes ones', async () => {
    const sample = join(examples, 'managed', 'sample');
    await ok(['ml', 'online-endpoint', 'create', '--name', 'local-ep', '-f', join(sample, 'endpoint.yml')]);
    await ok(['ml', 'online-deployment', 'create', '--name', 'blue', '--endpoint', 'local-ep', '-f', join(sample, 'blue-deployment.yml'), '--all-traffic']);
    assert.equal(api.list('Deployment', NS, { 'infergate.io/endpoint': 'local-ep' }).length, 0, 'nothing of it on the cluster');
    const answer = await ok(['ml', 'online-endpoint', 'invoke', '--name', 'local-ep', '--request-file', join(examples, 'model-1', 'sample-request.json')]);
    assert.equal(answer, JSON.stringify('[11055.977245525679, 4503.079536107787]', null, 2) + '\n');
    await ok(['ml', 'online-endpoint', 'delete', '-n', 'local-ep', '--yes']);
  });

  test('an image the cluster cannot pull: create fails with ImagePullLoopBackOff, as Azure reports it', async () => {
    const k8s = join(examples, 'kubernetes');
    await ok(['ml', 'online-endpoint', 'create', '-f', join(k8s, 'kubernetes-endpoint.yml'), '--set', 'name=pull-endpoint']);
    badImages.add('registry.example:5000/no-such-image:1');
    const r = await cli(['ml', 'online-deployment', 'create', '-f', join(k8s, 'kubernetes-blue-deployment.yml'), '--set', 'endpoint_name=pull-endpoint', '--set', 'environment.image=registry.example:5000/no-such-image:1']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /ImagePullLoopBackOff/);
    assert.match(r.stderr, /no-such-image/);
    const shown = JSON.parse(await ok(['ml', 'online-deployment', 'show', '-n', 'blue', '-e', 'pull-endpoint'])) as { provisioning_state: string; error?: { code: string } };
    assert.equal(shown.provisioning_state, 'Failed');
    await ok(['ml', 'online-endpoint', 'delete', '-n', 'pull-endpoint', '--yes']);
  });

  test('a cluster that stops answering: endpoint create fails with KubernetesUnaccessible in seconds', async () => {
    const silent = createServer(() => {});
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as { port: number }).port;
    try {
      const cfg = join(home, 'silent.yaml');
      writeFileSync(cfg, api.kubeconfig(NS).replace(api.url, `http://127.0.0.1:${port}`));
      const t0 = Date.now();
      const attach = await cli(['ml', 'compute', 'attach', '--name', 'gone', '--kubeconfig', cfg]);
      assert.notEqual(attach.code, 0);
      assert.match(attach.stderr, /KubernetesUnaccessible/);
      assert.ok(Date.now() - t0 < 15_000, `in seconds (${Date.now() - t0} ms, CLI start included)`);
    } finally {
      silent.close();
    }
    // An attached compute whose API server went away: the endpoint create fails, nothing is created.
    const doc = readFileSync(join(examples, 'kubernetes', 'kubernetes-endpoint.yml'), 'utf8');
    writeFileSync(join(home, 'late.yml'), doc.replace('name: my-endpoint', 'name: late-endpoint'));
    api.token = 'rotated'; // the cluster now refuses the stored credentials
    try {
      const r = await cli(['ml', 'online-endpoint', 'create', '-f', join(home, 'late.yml')]);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /KubernetesUnaccessible/);
    } finally {
      api.token = 'cluster-token';
    }
    assert.match((await cli(['ml', 'online-endpoint', 'show', '-n', 'late-endpoint'])).stderr, /EndpointNotFound/);
  });
});

async function waitFor(what: string, fn: () => boolean, ms = 20_000): Promise<void> {
  const end = Date.now() + ms;
  while (!fn()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}
