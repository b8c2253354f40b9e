// Environment images on a Kubernetes compute (issue 17 point 2): a deployment whose environment is a conda
// file on top of an image is built on this machine's Docker Engine, pushed to the compute's --registry (a
// real registry on loopback) and run by digest; the same environment again pushes nothing; a compute
// without a registry, or a registry that does not answer, fails the deployment with a coded error and
// puts no Deployment on the cluster. Driven through the CLI and a real server, the fake API server as the
// cluster.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BASE_IMAGE, dockerCheck, dockerSkip, removeImages } from '../docker/engine.js';
import { FakeApiServer } from './fake-apiserver.js';
import { LoopbackRegistry, registrySkip } from './registry.js';
import { Infergate, ROOT } from './server.js';

const skip = (await dockerSkip()) || registrySkip();

describe('environment images pushed to the compute registry, by digest', { skip, timeout: 300_000 }, () => {
  let api: FakeApiServer;
  let ig: Infergate;
  let reg: LoopbackRegistry;
  let k8s: string;
  let kubelet: { stop(): Promise<void> } | undefined;
  /** Registries the test's tags point at (the loopback one, and one where nothing listens). */
  const registries: string[] = [];

  const deployments = (ns: string, endpoint: string) => api.list('Deployment', ns, { 'infergate.io/endpoint': endpoint });
  const imageOf = (ns: string, endpoint: string, deployment: string) => deployments(ns, endpoint).find((d) => d.metadata.labels!['infergate.io/deployment'] === deployment)?.spec.template.spec.containers[0].image as string | undefined;

  before(async () => {
    reg = new LoopbackRegistry();
    await reg.start();
    registries.push(reg.address);
    api = new FakeApiServer();
    await api.start();
    ig = new Infergate();
    const examples = join(ig.home, 'examples');
    cpSync(join(ROOT, 'examples', 'azureml'), examples, { recursive: true });
    k8s = join(examples, 'kubernetes');
    // A conda file of this run only: its content is in the image's tag, so no other run or suite shares it.
    writeFileSync(join(k8s, 'registry-conda.yaml'), `name: infergate-registry-test-${randomBytes(4).toString('hex')}\ndependencies:\n  - python=3.11\n  - pip:\n    - joblib\n`);
    writeFileSync(
      join(k8s, 'registry-deployment.yml'),
      [
        'name: blue',
        'type: kubernetes',
        'endpoint_name: reg-endpoint',
        'model:',
        '  path: ../model-1/model/',
        'code_configuration:',
        '  code: ../model-1/onlinescoring/',
        '  scoring_script: score.py',
        'environment:',
        '  conda_file: registry-conda.yaml',
        `  image: ${BASE_IMAGE}`,
        'instance_count: 1',
        '',
      ].join('\n'),
    );
    writeFileSync(join(ig.home, 'kubeconfig.yaml'), api.kubeconfig('azureml'));
    await ig.start();
    kubelet = api.playKubelet();
  });
  after(async () => {
    await kubelet?.stop();
    await ig?.close();
    await api?.close();
    const { docker } = await dockerCheck();
    if (docker && reg) {
      // The images this suite built and tagged: infergate-env:<tag> and <registry>/infergate-env:<tag>.
      const tags = ((await fetch(`http://${reg.address}/v2/infergate-env/tags/list`).then((r) => r.json(), () => ({}))) as { tags?: string[] }).tags ?? [];
      const ids = await Promise.all(tags.map((t) => docker.getImage(`infergate-env:${t}`).inspect().then((i) => i.Id, () => undefined)));
      // By id, forced: every tag of the image goes with it.
      await removeImages(docker, [...tags.flatMap((t) => [...registries.map((r) => `${r}/infergate-env:${t}`), `infergate-env:${t}`]), ...ids.filter((i): i is string => i !== undefined)]);
      const left = (await docker.listImages()).flatMap((i) => i.RepoTags ?? []).filter((t) => tags.some((x) => t.endsWith(`/infergate-env:${x}`) || t === `infergate-env:${x}`));
      assert.deepEqual(left, [], 'the images this suite made are removed');
    }
    await reg?.close();
  });

  test('built, pushed and rendered as <registry>/infergate-env@sha256:...; the same environment again pushes nothing', async () => {
    await ig.ok(['ml', 'compute', 'attach', '--type', 'kubernetes', '--name', 'regcompute', '--kubeconfig', join(ig.home, 'kubeconfig.yaml'), '--registry', reg.address]);
    await ig.ok(['ml', 'online-endpoint', 'create', '-f', join(k8s, 'kubernetes-endpoint.yml'), '--set', 'name=reg-endpoint', '--set', 'compute=azureml:regcompute']);
    await ig.ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'registry-deployment.yml'), '--all-traffic']);

    const image = imageOf('azureml', 'reg-endpoint', 'blue');
    const m = new RegExp(`^${reg.address.replaceAll('.', '\\.')}/infergate-env@(sha256:[0-9a-f]{64})$`).exec(image ?? '');
    assert.ok(m, `the pod's image is the pushed one by digest (got ${image})`);
    assert.equal(await reg.manifestStatus('infergate-env', m[1]), 200, 'the digest is in the registry');
    const blueLog = await ig.ok(['ml', 'online-deployment', 'get-logs', '-n', 'blue', '-e', 'reg-endpoint', '--lines', '500']);
    assert.match(blueLog, /environment image: building infergate-env:/);
    assert.match(blueLog, new RegExp(`environment image: pushed ${reg.address.replaceAll('.', '\\.')}/infergate-env@${m[1]}`));

    const blobs = reg.blobs();
    assert.ok(blobs.length >= 3, `layers, config and manifest are stored (${blobs.length})`);
    await ig.ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'registry-deployment.yml'), '--set', 'name=green']);
    assert.equal(imageOf('azureml', 'reg-endpoint', 'green'), image, 'the same environment runs the same digest');
    assert.deepEqual(reg.blobs(), blobs, 'nothing new was pushed');
    const greenLog = await ig.ok(['ml', 'online-deployment', 'get-logs', '-n', 'green', '-e', 'reg-endpoint', '--lines', '500']);
    assert.match(greenLog, /environment image: reusing infergate-env:/);
    assert.match(greenLog, /is pushed already/);
    assert.doesNotMatch(greenLog, /environment image: (building|pushing)/);
    await ig.ok(['ml', 'online-endpoint', 'delete', '-n', 'reg-endpoint', '--yes']);
  });

  test('a compute without --registry: the deployment fails with KubernetesImageNeedsRegistry, no Deployment is applied', async () => {
    await ig.ok(['ml', 'compute', 'attach', '--type', 'kubernetes', '--name', 'noregistry', '--kubeconfig', join(ig.home, 'kubeconfig.yaml'), '--namespace', 'noreg']);
    await ig.ok(['ml', 'online-endpoint', 'create', '-f', join(k8s, 'kubernetes-endpoint.yml'), '--set', 'name=noreg-endpoint', '--set', 'compute=azureml:noregistry']);
    const r = await ig.cli(['ml', 'online-deployment', 'create', '-f', join(k8s, 'registry-deployment.yml'), '--set', 'endpoint_name=noreg-endpoint']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /compute 'noregistry' has no registry to push it to/);
    assert.match(r.stderr, /--registry/);
    const shown = JSON.parse(await ig.ok(['ml', 'online-deployment', 'show', '-n', 'blue', '-e', 'noreg-endpoint'])) as { provisioning_state: string };
    assert.equal(shown.provisioning_state, 'Failed');
    assert.deepEqual(deployments('noreg', 'noreg-endpoint'), [], 'never a pod with an image that cannot exist');
    await ig.ok(['ml', 'online-endpoint', 'delete', '-n', 'noreg-endpoint', '--yes']);
  });

  test('a registry that does not answer: the deployment fails with EnvironmentImagePushFailed and the reason', async () => {
    const gone = new LoopbackRegistry();
    // Started and stopped: its port is one where nothing listens now.
    await gone.start();
    await gone.close();
    registries.push(gone.address);
    await ig.ok(['ml', 'compute', 'attach', '--type', 'kubernetes', '--name', 'deadregistry', '--kubeconfig', join(ig.home, 'kubeconfig.yaml'), '--namespace', 'dead', '--registry', gone.address]);
    await ig.ok(['ml', 'online-endpoint', 'create', '-f', join(k8s, 'kubernetes-endpoint.yml'), '--set', 'name=dead-endpoint', '--set', 'compute=azureml:deadregistry']);
    const r = await ig.cli(['ml', 'online-deployment', 'create', '-f', join(k8s, 'registry-deployment.yml'), '--set', 'endpoint_name=dead-endpoint']);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /EnvironmentImagePushFailed/);
    assert.match(r.stderr, new RegExp(`Pushing the environment image ${gone.address.replaceAll('.', '\\.')}/infergate-env:\\S+ to registry`));
    assert.match(r.stderr, /connection refused|connect/i, "the registry's reason");
    assert.deepEqual(deployments('dead', 'dead-endpoint'), []);
    await ig.ok(['ml', 'online-endpoint', 'delete', '-n', 'dead-endpoint', '--yes']);
  });
});
