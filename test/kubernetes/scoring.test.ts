// Scoring through Kubernetes "pods": the fake API server plays the cluster and ProcessKubelet runs each pod
// as rendered (storage initializer fetching from the control plane's asset route with the revision's
// token, then the Python host listening on TCP at the pod's IP), so the server's router reaches them over
// the framed protocol on TCP. Azure's blue/green files (without their conda_file, which would make the
// environment one infergate builds and pushes: registry.test.ts) and scoring scripts.

import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FakeApiServer } from './fake-apiserver.js';
import { ProcessKubelet } from './process-kubelet.js';
import { imageOnlyEnvironments, Infergate, ROOT } from './server.js';

const NS = 'azureml';
let api: FakeApiServer;
let ig: Infergate;
let kubelet: ProcessKubelet;
let examples: string;

before(async () => {
  api = new FakeApiServer();
  // Pod IPs on loopback, in a /24 of their own, so the pods' hosts can listen at them on this machine.
  api.podNetwork = `127.${100 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}.`;
  await api.start();
  ig = new Infergate();
  await ig.start();
  kubelet = new ProcessKubelet(api, NS, join(ig.home, 'kubelet'));
  kubelet.start();
  examples = join(ig.home, 'examples');
  cpSync(join(ROOT, 'examples', 'azureml'), examples, { recursive: true });
  imageOnlyEnvironments(join(examples, 'kubernetes'));
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(ig.home, 'kubeconfig.yaml'), api.kubeconfig(NS));
});
after(async () => {
  await ig?.close();
  await kubelet?.close();
  await api?.close();
});

test('blue and green on the compute score through the router over TCP; header pinning and the split work', { timeout: 180_000 }, async () => {
  const k8s = join(examples, 'kubernetes');
  await ig.ok(['ml', 'compute', 'attach', '--type', 'kubernetes', '--name', 'inferencecompute', '--kubeconfig', join(ig.home, 'kubeconfig.yaml')]);
  await ig.ok(['ml', 'online-endpoint', 'create', '-f', join(k8s, 'kubernetes-endpoint.yml')]);
  await ig.ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'kubernetes-blue-deployment.yml'), '--all-traffic']);
  const blueAnswer = await ig.ok(['ml', 'online-endpoint', 'invoke', '-n', 'my-endpoint', '--request-file', join(examples, 'model-1', 'sample-request.json')]);
  assert.equal(blueAnswer, JSON.stringify('[11055.977245525679, 4503.079536107787]', null, 2) + '\n');
  const [pod] = api.list('Pod', NS, { 'infergate.io/deployment': 'blue' });
  assert.ok(pod.status.podIP.startsWith(api.podNetwork));

  await ig.ok(['ml', 'online-deployment', 'create', '-f', join(k8s, 'kubernetes-green-deployment.yml')]);
  // green has no traffic yet: only the header reaches it.
  const green = await ig.ok(['ml', 'online-endpoint', 'invoke', '-n', 'my-endpoint', '--deployment-name', 'green', '--request-file', join(examples, 'model-2', 'sample-request.json')]);
  assert.notEqual(green, blueAnswer);
  assert.match(green, /\d/);
  // get-logs reads the pods' logs through the API server.
  assert.match(await ig.ok(['ml', 'online-deployment', 'get-logs', '-n', 'blue', '-e', 'my-endpoint', '--lines', '200']), /Listening on tcp:127\./);
  assert.match(await ig.ok(['ml', 'online-deployment', 'get-logs', '-n', 'blue', '-e', 'my-endpoint', '--container', 'storage-initializer']), /storage-initializer: model ->/);

  await ig.ok(['ml', 'online-endpoint', 'update', '-n', 'my-endpoint', '--traffic', 'blue=0 green=100']);
  const after = await ig.ok(['ml', 'online-endpoint', 'invoke', '-n', 'my-endpoint', '--request-file', join(examples, 'model-2', 'sample-request.json')]);
  assert.equal(after, green);
  await ig.ok(['ml', 'online-endpoint', 'delete', '-n', 'my-endpoint', '--yes']);
});
