// Issue 16 on the docker backend: a no-code MLflow deployment (no code, no environment) runs in the base
// image's container (Python instance host + infergate's MLflow loader, no pandas there) and answers /score
// and the Open Inference Protocol. Skips without a Docker Engine (test/docker/engine.ts).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type Docker from 'dockerode';
import { dockerCheck, dockerSkip, removeWorkspaceContainers, workspaceContainers } from '../docker/engine.js';
import { writeSoftmaxModel } from '../fixtures/no-code/onnx-model.js';
import { SourceWorkspace } from '../fixtures/no-code/source-workspace.js';
import { FIXTURES, until } from './harness.js';

const SKIP = (await dockerSkip()) || (hasSklearn() ? false : 'needs /usr/bin/python3 with scikit-learn to build the model');
const ws = new SourceWorkspace('docker');
let docker: Docker;
let routerUrl = '';

function hasSklearn(): boolean {
  try {
    execFileSync('/usr/bin/python3', ['-c', 'import sklearn'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

before(async () => {
  if (SKIP) return;
  docker = (await dockerCheck()).docker!;
  ({ routerUrl } = await ws.startServer());
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  if (!SKIP) {
    await ws.stopServer();
    await removeWorkspaceContainers(docker, ws.dir);
  }
  await ws.dispose();
});

test('an mlflow_model with no code and no environment is served from a container', { skip: SKIP, timeout: 180_000 }, async () => {
  const scratch = join(ws.dir, 'scratch');
  mkdirSync(scratch, { recursive: true });
  const model = join(scratch, 'iris', 'model');
  execFileSync('/usr/bin/python3', [join(FIXTURES, 'no-code', 'make_mlflow_model.py'), model, 'pickle', 'columns']);
  writeFileSync(join(scratch, 'endpoint.yml'), 'name: ncd-docker\nauth_mode: key\n');
  writeFileSync(
    join(scratch, 'blue.yml'),
    `name: blue\nendpoint_name: ncd-docker\nmodel:\n  name: iris\n  version: 1\n  path: ${model}\n  type: mlflow_model\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n`,
  );
  await ws.ok(['ml', 'online-endpoint', 'create', '-f', join(scratch, 'endpoint.yml')]);
  await ws.ok(['ml', 'online-deployment', 'create', '-f', join(scratch, 'blue.yml'), '--all-traffic']);
  const containers = await workspaceContainers(docker, ws.dir);
  assert.equal(containers.length, 1, 'one instance, in a container');
  assert.equal(containers[0].Image, 'infergate-python:bookworm');

  const key = (await ws.ok(['ml', 'online-endpoint', 'get-credentials', '-n', 'ncd-docker', '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const post = async (path: string, body: unknown) => {
    const r = await fetch(`${routerUrl}/endpoints/ncd-docker${path}`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    return { status: r.status, modelStatus: r.status === 424 ? Number(r.headers.get('ms-azureml-model-error-statuscode')) : r.status, json: (await r.json()) as unknown };
  };
  const columns = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
  const score = await post('/score', { input_data: { columns, index: [0, 1], data: [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]] } });
  assert.equal(score.status, 200, JSON.stringify(score.json));
  assert.deepEqual(score.json, [0, 2]);
  const infer = await post('/v2/models/iris/infer', { inputs: columns.map((name, i) => ({ name, shape: [1], datatype: 'FP64', data: [[5.1, 3.5, 1.4, 0.2][i]] })) });
  assert.equal(infer.status, 200, JSON.stringify(infer.json));
  assert.deepEqual((infer.json as { outputs: { data: number[] }[] }).outputs[0].data, [0]);
  const missing = await post('/score', { dataframe_split: { columns: columns.slice(1), data: [[3.5, 1.4, 0.2]] } });
  assert.equal(missing.modelStatus, 400);
  assert.match((missing.json as { error: string }).error, /missing inputs \['sepal_length'\]/);

  // An ONNX model needs the Node host, which the base image does not have: a clear error, not a crash loop.
  const onnx = join(scratch, 'tiny.onnx');
  writeSoftmaxModel(onnx);
  writeFileSync(join(scratch, 'onnx.yml'), `name: onnx\nendpoint_name: ncd-docker\nmodel:\n  path: ${onnx}\n  type: triton_model\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n`);
  const refused = await ws.cli(['ml', 'online-deployment', 'create', '-f', join(scratch, 'onnx.yml')]);
  assert.notEqual(refused.code, 0);
  assert.match(refused.stderr, /EnvironmentNotSatisfied[\s\S]*no 'node' on its PATH: a no-code ONNX \(triton_model\) deployment/);
  await ws.ok(['ml', 'online-deployment', 'delete', '-e', 'ncd-docker', '-n', 'onnx', '--yes']);

  await ws.ok(['ml', 'online-endpoint', 'delete', '-n', 'ncd-docker', '--yes']);
  await until('the container to be removed', async () => (await workspaceContainers(docker, ws.dir)).length === 0, 30_000);
});
