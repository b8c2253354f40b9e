// Golden files of the objects a deployment becomes on a Kubernetes compute, each validated against
// Kubernetes' OpenAPI schemas (kubernetes-models 4.5.1 = Kubernetes v1.27.1). UPDATE_GOLDEN=1 rewrites them.

import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { InfergateError } from '../../errors/index.js';
import type { InstancePlan } from '../../ir/types.js';
import { KUBERNETES_SCHEMA_VERSION, validateObject } from '../../../test/kubernetes/validate.js';
import { kubeName, renderDeployment, renderRoot, resourcesOf, type RenderContext } from './render.js';

const TESTDATA = join(fileURLToPath(new URL('.', import.meta.url)), 'testdata');
const PROBE = { initialDelay: 10, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };

const base: InstancePlan = {
  endpoint: 'my-endpoint',
  deployment: 'blue',
  revision: '0123456789',
  instanceCount: 2,
  runtime: 'python',
  model: { name: 'my-endpoint-blue-model', version: '1', path: '/ws/assets/models/m/1/model' },
  code: { path: '/ws/assets/code/c/1', scoringScript: 'score.py' },
  environment: { condaFile: '/ws/conda.yaml', image: 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest' },
  instanceType: 'defaultinstancetype',
  resources: { cpus: 0.2, memoryBytes: 200 * 2 ** 20, from: 'resources.limits' },
  egress: true,
  environmentVariables: { WORKER_COUNT: '1' },
  workerCount: 1,
  requestTimeoutMs: 3000,
  livenessProbe: PROBE,
  readinessProbe: { ...PROBE, initialDelay: 0, failureThreshold: 3 },
  compute: 'inferencecompute',
  kubernetesResources: { requests: { cpu: '0.1', memory: '0.1Gi' }, limits: { cpu: '0.2', memory: '200Mi' } },
};
const ctx: RenderContext = {
  namespace: 'azureml',
  workspace: '0123456789abcdef',
  controlUrl: 'http://infergate-control.azureml.svc:8080',
  defaultImage: 'registry.example:5000/infergate-python:bookworm',
  owner: { name: 'ig-my-endpoint', uid: '11111111-2222-3333-4444-555555555555' },
};

function golden(name: string, objects: object[]): void {
  const text = objects.map((o) => stringify(o, { sortMapEntries: false })).join('---\n');
  const file = join(TESTDATA, `${name}.yaml`);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, text);
  assert.equal(text, readFileSync(file, 'utf8'), `${name}.yaml differs (UPDATE_GOLDEN=1 rewrites it)`);
}

test(`every rendered object validates against Kubernetes ${KUBERNETES_SCHEMA_VERSION} schemas`, () => {
  for (const o of [renderRoot(ctx, 'my-endpoint'), ...renderDeployment(base, ctx, 'tok')]) validateObject(o);
});

test('golden: Azure kubernetes-blue-deployment (resources as written, Python host over TCP, probes)', () => {
  const objects = renderDeployment(base, ctx, 'asset-token');
  golden('blue', [renderRoot(ctx, 'my-endpoint'), ...objects]);
  const [secret, deployment, service, pdb] = objects as any[];
  assert.deepEqual(objects.map((o) => o.kind), ['Secret', 'Deployment', 'Service', 'PodDisruptionBudget']);
  assert.equal(deployment.spec.replicas, 2, 'pods = instances');
  const pod = deployment.spec.template.spec;
  const c = pod.containers[0];
  assert.equal(c.image, base.environment.image);
  assert.deepEqual(c.resources, { requests: { cpu: '0.1', memory: '0.1Gi' }, limits: { cpu: '0.2', memory: '200Mi' } });
  assert.deepEqual(c.livenessProbe, { tcpSocket: { port: 5001 }, initialDelaySeconds: 10, periodSeconds: 10, timeoutSeconds: 2, successThreshold: 1, failureThreshold: 30 });
  assert.equal(c.readinessProbe.failureThreshold, 3);
  assert.deepEqual(c.command.slice(-2), ['--listen', 'tcp:0.0.0.0:5001']);
  assert.equal(pod.initContainers[0].name, 'storage-initializer');
  assert.equal(pod.automountServiceAccountToken, false, 'untrusted code gets no API credentials');
  assert.equal(pod.volumes.find((v: any) => v.name === 'token').secret.secretName, secret.metadata.name);
  assert.equal(service.spec.clusterIP, 'None', 'headless');
  assert.equal(pdb.spec.maxUnavailable, 1);
  for (const o of objects) assert.deepEqual(o.metadata.ownerReferences?.[0]?.uid, ctx.owner!.uid, `${o.kind} is owned by the endpoint root`);
  // The selectors pick this deployment's pods only.
  assert.deepEqual(Object.keys(service.spec.selector).sort(), ['infergate.io/component', 'infergate.io/deployment', 'infergate.io/endpoint', 'infergate.io/workspace']);
});

test('golden: green with an instance type and target_utilization (no resources: instance type size; no HPA)', () => {
  const green: InstancePlan = { ...base, deployment: 'green', instanceCount: 1, kubernetesResources: undefined, resources: { cpus: 2, memoryBytes: 7 * 2 ** 30, from: 'instance_type Standard_DS2_v2' } };
  delete (green as Partial<InstancePlan>).kubernetesResources;
  const objects = renderDeployment(green, { ...ctx, owner: undefined }, 'asset-token');
  golden('green-no-owner', objects);
  assert.deepEqual(resourcesOf(green), { requests: { cpu: '2000m', memory: '7168Mi' }, limits: { cpu: '2000m', memory: '7168Mi' } });
  assert.ok(objects.every((o) => o.metadata.ownerReferences === undefined), 'dry-run before the root exists: no owner');
  assert.ok(!objects.some((o) => o.kind === 'HorizontalPodAutoscaler'));
  for (const o of objects) validateObject(o);
});

test('golden: a custom container (BYOC) keeps its image and HTTP routes', () => {
  const byoc: InstancePlan = {
    ...base,
    deployment: 'tfserving',
    runtime: 'container',
    code: undefined,
    environment: { image: 'docker.io/tensorflow/serving:latest', inferenceConfig: { liveness: { port: 8501, path: '/v1/models/half' }, readiness: { port: 8501, path: '/v1/models/half' }, scoring: { port: 8501, path: '/v1/models/half:predict' } } },
    modelMountPath: '/var/tfserving-model-mount',
  };
  delete (byoc as Partial<InstancePlan>).code;
  const objects = renderDeployment(byoc, ctx, 'asset-token');
  golden('byoc', objects);
  const c = (objects[1] as any).spec.template.spec.containers[0];
  assert.equal(c.command, undefined, 'the image runs as it is');
  assert.deepEqual(c.readinessProbe.httpGet, { path: '/v1/models/half', port: 8501 });
  for (const o of objects) validateObject(o);
});

test('an MLflow no-code deployment: the Python host runs infergate\'s MLflow loader in the model folder; no code is fetched', () => {
  const noCode = { kind: 'mlflow' as const, modelName: 'sklearn-model', modelVersion: '1', modelFile: 'model/model.pkl', flavor: 'sklearn' };
  const mlflow: InstancePlan = { ...base, deployment: 'mlflow', runtime: 'mlflow', noCode, model: { name: 'sklearn-model', version: '1', path: '/ws/assets/models/sklearn-model/1/model' } };
  delete (mlflow as Partial<InstancePlan>).code;
  const objects = renderDeployment(mlflow, ctx, 't');
  for (const o of objects) validateObject(o);
  const pod = (objects[1] as any).spec.template.spec;
  const env = (c: any): Record<string, string> => Object.fromEntries(c.env.map((e: any) => [e.name, e.value]));
  const main = env(pod.containers[0]);
  const modelDir = '/var/infergate/models/sklearn-model/1';
  assert.equal(main.AZUREML_MODEL_DIR, modelDir);
  assert.equal(main.AZUREML_ENTRY_SCRIPT, '/var/infergate/runtime/infergate_mlflow.py');
  assert.equal(main.AML_APP_ROOT, modelDir);
  assert.deepEqual(JSON.parse(main.INFERGATE_NO_CODE), noCode);
  assert.equal(pod.containers[0].workingDir, modelDir);
  assert.equal(pod.containers[0].command[2], '/var/infergate/runtime/infergate_host.py');
  assert.equal(env(pod.initContainers[0]).INFERGATE_ASSET_PARTS, 'runtime model', 'a no-code deployment has no code to fetch');
  assert.equal(env((renderDeployment(base, ctx, 't')[1] as any).spec.template.spec.initContainers[0]).INFERGATE_ASSET_PARTS, 'runtime code model');
});

test('an ONNX no-code deployment is refused with a coded error (pods get no Node host)', () => {
  const onnx: InstancePlan = { ...base, deployment: 'onnx', runtime: 'onnx', noCode: { kind: 'onnx', modelName: 'm', modelVersion: '1', modelFile: 'model.onnx' } };
  delete (onnx as Partial<InstancePlan>).code;
  assert.throws(() => renderDeployment(onnx, ctx, 't'), (e: unknown) => e instanceof InfergateError && e.code === 'BadArgument' && /ONNX/.test(e.message) && /'onnx' of endpoint 'my-endpoint'/.test(e.message));
});

test('names stay DNS labels however long the endpoint and deployment names are', () => {
  const long = kubeName('ig', 'a'.repeat(32), 'b'.repeat(30), '0123456789');
  assert.ok(long.length <= 63 && /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(long), long);
  assert.notEqual(long, kubeName('ig', 'a'.repeat(32), 'b'.repeat(30), '0123456788'), 'a hash keeps cut names apart');
  const objects = renderDeployment({ ...base, endpoint: 'E'.repeat(32), deployment: 'D'.repeat(30) }, ctx, 't');
  for (const o of objects) {
    assert.ok(o.metadata.name.length <= 63);
    validateObject(o);
  }
});

test('an invalid object is caught by the schema check (the check can fail)', () => {
  const [, deployment] = renderDeployment(base, ctx, 't') as any[];
  deployment.spec.template.spec.containers[0].ports[0].containerPort = 'five';
  assert.throws(() => validateObject(deployment), /containerPort/);
});
