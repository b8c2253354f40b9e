// Issue 16, end to end through the CLI and the router (process backend): no-code deployments of MLflow
// models (Python host, infergate's MLflow loader) and ONNX models (Node host, onnxruntime-node), their
// request formats, the Open Inference Protocol (v2), signature errors, models refused at create, batching.
// Fixtures are built here: the MLflow model with Debian's scikit-learn (/usr/bin/python3), the ONNX model
// with onnx-proto. The CLI and server run from src/ (tsx), so the test needs no build.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { expectedSoftmax, writeSoftmaxModel } from '../fixtures/no-code/onnx-model.js';
import { SourceWorkspace } from '../fixtures/no-code/source-workspace.js';
import { FIXTURES, until } from './harness.js';

const PYTHON = '/usr/bin/python3';
const MAKE_MLFLOW = join(FIXTURES, 'no-code', 'make_mlflow_model.py');
const COLUMNS = ['sepal_length', 'sepal_width', 'petal_length', 'petal_width'];
const ROWS = [
  [5.1, 3.5, 1.4, 0.2],
  [6.7, 3.0, 5.2, 2.3],
];
const hasSklearn = existsSync(PYTHON) && (() => {
  try {
    execFileSync(PYTHON, ['-c', 'import sklearn'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
})();

const ws = new SourceWorkspace();
let routerUrl = '';
let models = '';

function writeYaml(name: string, text: string): string {
  const file = join(ws.dir, 'scratch', name);
  mkdirSync(join(ws.dir, 'scratch'), { recursive: true });
  writeFileSync(file, text);
  return file;
}

function mlflowModel(name: string, format: 'pickle' | 'cloudpickle', signature: 'columns' | 'tensor' | 'none'): string {
  const dir = join(models, name, 'model');
  execFileSync(PYTHON, [MAKE_MLFLOW, dir, format, signature]);
  return dir;
}

async function endpoint(name: string): Promise<string> {
  const file = writeYaml(`${name}.yml`, `name: ${name}\nauth_mode: key\n`);
  await ws.ok(['ml', 'online-endpoint', 'create', '-f', file]);
  return (await ws.ok(['ml', 'online-endpoint', 'get-credentials', '-n', name, '-o', 'tsv', '--query', 'primaryKey'])).trim();
}

/** Azure's ncd/sklearn-deployment.yaml shape: a model, no code_configuration, no environment. */
function noCodeDeployment(name: string, endpointName: string, model: string, extra = ''): string {
  return writeYaml(
    `${endpointName}-${name}.yml`,
    `$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json
name: ${name}
endpoint_name: ${endpointName}
model:
${model}
instance_type: Standard_DS3_v2
instance_count: 1
${extra}`,
  );
}

async function post(endpointName: string, key: string, path: string, body: unknown, headers: Record<string, string> = {}): Promise<{ status: number; json: unknown; headers: Headers }> {
  const r = await fetch(`${routerUrl}/endpoints/${endpointName}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await r.text();
  let json: unknown = text;
  try {
    json = JSON.parse(text);
  } catch {
    /* kept as text */
  }
  return { status: r.status, json, headers: r.headers };
}

/**
 * The model's own status: the router passes /score answers other than 200 on as Azure does, 424 with the
 * model's status in ms-azureml-model-error-statuscode (contract §4.2); the body is the model's.
 */
function modelStatus(r: { status: number; headers: Headers }): number {
  return r.status === 424 ? Number(r.headers.get('ms-azureml-model-error-statuscode')) : r.status;
}

/** GETs of the Open Inference Protocol: the router passes the model's status as it is (no 424). */
async function get(endpointName: string, key: string, path: string): Promise<{ status: number; json: unknown }> {
  const r = await fetch(`${routerUrl}/endpoints/${endpointName}${path}`, { headers: { authorization: `Bearer ${key}` } });
  return { status: r.status, json: JSON.parse(await r.text()) };
}

before(async () => {
  models = join(ws.dir, 'models');
  ({ routerUrl } = await ws.startServer());
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('an MLflow sklearn model deploys with no code and no environment, and takes every input format', { skip: !hasSklearn && 'needs /usr/bin/python3 with scikit-learn' }, async () => {
  const model = mlflowModel('iris', 'pickle', 'columns');
  const key = await endpoint('ncd-iris');
  const dep = noCodeDeployment('sklearn-deployment', 'ncd-iris', `  name: iris-ncd\n  version: 2\n  path: ${model}\n  type: mlflow_model`);
  await ws.ok(['ml', 'online-deployment', 'create', '-f', dep, '--all-traffic']);

  const split = { columns: COLUMNS, index: [0, 1], data: ROWS };
  const forms: [string, unknown][] = [
    ['Azure input_data, pandas split', { input_data: split }],
    ['Azure input_data, tensor', { input_data: ROWS }],
    ['MLflow dataframe_split, columns in another order', { dataframe_split: { columns: [...COLUMNS].reverse(), data: ROWS.map((r) => [...r].reverse()) } }],
    ['MLflow dataframe_records', { dataframe_records: ROWS.map((r) => Object.fromEntries(COLUMNS.map((c, i) => [c, r[i]]))) }],
    ['MLflow instances', { instances: ROWS }],
    ['MLflow inputs, named columns', { inputs: Object.fromEntries(COLUMNS.map((c, i) => [c, ROWS.map((r) => r[i])])) }],
  ];
  for (const [what, body] of forms) {
    const r = await post('ncd-iris', key, '/score', body);
    assert.equal(r.status, 200, `${what}: ${JSON.stringify(r.json)}`);
    assert.deepEqual(r.json, [0, 2], what);
  }
  // The CLI's invoke is the same /score.
  const req = writeYaml('iris-request.json', JSON.stringify({ input_data: split }));
  assert.deepEqual(JSON.parse(JSON.parse(await ws.ok(['ml', 'online-endpoint', 'invoke', '-n', 'ncd-iris', '--request-file', req])) as string), [0, 2]);

  // Signature enforcement: 400 naming the column, never a failing script.
  const missing = await post('ncd-iris', key, '/score', { dataframe_split: { columns: COLUMNS.slice(0, 3), data: [ROWS[0].slice(0, 3)] } });
  assert.equal(modelStatus(missing), 400);
  assert.match((missing.json as { error: string }).error, /missing inputs \['petal_width'\]/);
  const wrongType = await post('ncd-iris', key, '/score', { dataframe_records: [{ sepal_length: 'long', sepal_width: 3.5, petal_length: 1.4, petal_width: 0.2 }] });
  assert.equal(modelStatus(wrongType), 400);
  assert.match((wrongType.json as { error: string }).error, /column sepal_length/);
  const wrongWidth = await post('ncd-iris', key, '/score', { input_data: [[1, 2, 3]] });
  assert.equal(modelStatus(wrongWidth), 400);
  assert.match((wrongWidth.json as { error: string }).error, /4 columns/);
  // Rows of different lengths, and a value beyond any double: still the request's fault, never a script's 500.
  const ragged = await post('ncd-iris', key, '/score', { dataframe_split: { data: [ROWS[0], [1]] } });
  assert.equal(modelStatus(ragged), 400, JSON.stringify(ragged.json));
  assert.match((ragged.json as { error: string }).error, /A row has 1 values; the model's signature has 4 columns/);
  const huge = await fetch(`${routerUrl}/endpoints/ncd-iris/score`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: `{"dataframe_records": [{"sepal_length": 1${'0'.repeat(400)}, "sepal_width": 1, "petal_length": 1, "petal_width": 1}]}` });
  assert.equal(modelStatus(huge), 400);
  assert.match(((await huge.json()) as { error: string }).error, /column sepal_length: a value is out of the range of double/);
  const notJson = await fetch(`${routerUrl}/endpoints/ncd-iris/score`, { method: 'POST', headers: { authorization: `Bearer ${key}` }, body: '{' });
  assert.equal(modelStatus(notJson), 400);

  // The Open Inference Protocol: metadata from the signature, typed tensors, behind the same auth.
  assert.equal((await fetch(`${routerUrl}/endpoints/ncd-iris/v2/health/ready`)).status, 401);
  assert.deepEqual(await get('ncd-iris', key, '/v2/health/live'), { status: 200, json: { live: true } });
  const meta = await get('ncd-iris', key, '/v2/models/iris-ncd');
  assert.equal(meta.status, 200);
  assert.deepEqual((meta.json as { inputs: unknown[] }).inputs, COLUMNS.map((name) => ({ name, datatype: 'FP64', shape: [-1] })));
  assert.equal((await get('ncd-iris', key, '/v2/models/iris-ncd/versions/2')).status, 200);
  assert.equal((await get('ncd-iris', key, '/v2/models/other')).status, 404);
  const byColumn = await post('ncd-iris', key, '/v2/models/iris-ncd/infer', {
    id: 'req-1',
    inputs: COLUMNS.map((name, i) => ({ name, shape: [2], datatype: 'FP64', data: ROWS.map((r) => r[i]) })),
  });
  assert.equal(byColumn.status, 200, JSON.stringify(byColumn.json));
  assert.deepEqual(byColumn.json, { model_name: 'iris-ncd', model_version: '2', id: 'req-1', outputs: [{ name: 'predict', shape: [2], datatype: 'INT64', data: [0, 2] }] });
  const asTensor = await post('ncd-iris', key, '/v2/models/iris-ncd/versions/2/infer', { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP64', data: ROWS.flat() }] });
  assert.deepEqual((asTensor.json as { outputs: { data: number[] }[] }).outputs[0].data, [0, 2]);
  const badType = await post('ncd-iris', key, '/v2/models/iris-ncd/infer', { inputs: COLUMNS.map((name) => ({ name, shape: [1], datatype: name === 'petal_width' ? 'BYTES' : 'FP64', data: [name === 'petal_width' ? 'x' : 1] })) });
  assert.equal(badType.status, 400, 'OIP errors reach the client with their own status');
  assert.match((badType.json as { error: string }).error, /'petal_width'.*BYTES/);
  const badShape = await post('ncd-iris', key, '/v2/models/iris-ncd/infer', { inputs: [{ name: 'x', shape: [2, 4], datatype: 'FP64', data: [1, 2, 3] }] });
  assert.equal(badShape.status, 400);
  assert.match((badShape.json as { error: string }).error, /3 values for shape \[2, 4\]/);
});

test('a registered mlflow_model (ml model create --type mlflow_model, cloudpickle) deploys by reference', { skip: !hasSklearn && 'needs /usr/bin/python3 with scikit-learn' }, async () => {
  const model = mlflowModel('iris-cp', 'cloudpickle', 'tensor');
  await ws.ok(['ml', 'model', 'create', '--name', 'iris-cp', '--version', '1', '--path', model, '--type', 'mlflow_model']);
  const shown = JSON.parse(await ws.ok(['ml', 'model', 'show', '--name', 'iris-cp', '--version', '1'])) as { type: string; flavors?: Record<string, unknown> };
  assert.equal(shown.type, 'mlflow_model');
  assert.ok(shown.flavors?.sklearn, `flavors recorded from MLmodel: ${JSON.stringify(shown)}`);
  const key = await endpoint('ncd-reg');
  const file = writeYaml('ncd-reg-blue.yml', 'name: blue\nendpoint_name: ncd-reg\nmodel: azureml:iris-cp:1\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n');
  await ws.ok(['ml', 'online-deployment', 'create', '-f', file, '--all-traffic']);
  const r = await post('ncd-reg', key, '/score', { input_data: ROWS });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json, [0, 2]);
  // A tensor signature [-1, 4]: the shape is enforced.
  const bad = await post('ncd-reg', key, '/score', { input_data: [[1, 2, 3]] });
  assert.equal(modelStatus(bad), 400);
  assert.match((bad.json as { error: string }).error, /does not match expected shape \[-1, 4\]/);
});

test('an MLflow model with a scoring script of its own (sklearn-deployment-with-script.yaml style) runs the script', { skip: !hasSklearn && 'needs /usr/bin/python3 with scikit-learn' }, async () => {
  const model = mlflowModel('iris-script', 'pickle', 'columns');
  const code = join(ws.dir, 'scratch', 'with-script');
  mkdirSync(code, { recursive: true });
  // Azure's example loads the model with mlflow.pyfunc; MLflow is not in Debian, so this one unpickles it.
  writeFileSync(
    join(code, 'score.py'),
    `import json, os, pickle
def init():
    global model
    with open(os.path.join(os.environ["AZUREML_MODEL_DIR"], "model", "model.pkl"), "rb") as f:
        model = pickle.load(f)
def run(raw_data):
    rows = json.loads(raw_data)["input_data"]["data"]
    return {"script": True, "predictions": model.predict(rows).tolist()}
`,
  );
  const key = await endpoint('ncd-script');
  const dep = noCodeDeployment('blue', 'ncd-script', `  path: ${model}\n  type: mlflow_model`, `code_configuration:\n  code: ${code}\n  scoring_script: score.py\n`);
  await ws.ok(['ml', 'online-deployment', 'create', '-f', dep, '--all-traffic']);
  const r = await post('ncd-script', key, '/score', { input_data: { columns: COLUMNS, data: ROWS } });
  assert.equal(r.status, 200, JSON.stringify(r.json));
  assert.deepEqual(r.json, { script: true, predictions: [0, 2] });
  // The Open Inference Protocol is the no-code loader's: a scoring script answers /score only.
  assert.equal((await get('ncd-script', key, '/v2/health/ready')).status, 404);
});

test('an ONNX model (triton_model repository) is served by the Node host: /score and the Open Inference Protocol', async () => {
  const repo = join(models, 'triton', 'models');
  writeSoftmaxModel(join(repo, 'tiny', '1', 'model.onnx'));
  const key = await endpoint('ncd-onnx');
  await ws.ok(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('blue', 'ncd-onnx', `  name: tiny-onnx\n  version: 1\n  path: ${repo}\n  type: triton_model`), '--all-traffic']);
  const x = [1, 2, 3, 4];
  const close = (got: number[], want: number[]) => got.forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-5, `${got} ≈ ${want}`));

  const score = await post('ncd-onnx', key, '/score', { input_data: [x] });
  assert.equal(score.status, 200, JSON.stringify(score.json));
  close((score.json as number[][])[0], expectedSoftmax(x));

  const meta = await get('ncd-onnx', key, '/v2/models/tiny');
  assert.deepEqual(meta.json, { name: 'tiny', versions: ['1'], platform: 'onnxruntime_onnx', inputs: [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }], outputs: [{ name: 'Y', datatype: 'FP32', shape: [-1, 3] }] });
  const infer = await post('ncd-onnx', key, '/v2/models/tiny/versions/1/infer', { id: 'a', inputs: [{ name: 'X', shape: [2, 4], datatype: 'FP32', data: [x, [0, 0, 0, 0]] }] });
  assert.equal(infer.status, 200, JSON.stringify(infer.json));
  const out = (infer.json as { id: string; outputs: { name: string; shape: number[]; datatype: string; data: number[] }[] }).outputs[0];
  assert.equal((infer.json as { id: string }).id, 'a');
  assert.deepEqual([out.name, out.shape, out.datatype], ['Y', [2, 3], 'FP32']);
  close(out.data, [...expectedSoftmax(x), ...expectedSoftmax([0, 0, 0, 0])]);

  // Requests that do not fit the model: 400 naming the problem, in the Triton / KServe error shape.
  const cases: [unknown, RegExp][] = [
    [{ inputs: [{ name: 'X', shape: [1, 3], datatype: 'FP32', data: [1, 2, 3] }] }, /Input 'X': shape \[1,3\] does not match the model's \[-1,4\]/],
    [{ inputs: [{ name: 'X', shape: [1, 4], datatype: 'INT64', data: x }] }, /Input 'X': datatype INT64 does not match the model's FP32/],
    [{ inputs: [{ name: 'Z', shape: [1, 4], datatype: 'FP32', data: x }] }, /Input 'X' is missing/],
    [{ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 'a', 4] }] }, /not a valid FP32/],
  ];
  for (const [body, why] of cases) {
    const r = await post('ncd-onnx', key, '/v2/models/tiny/infer', body);
    assert.equal(modelStatus(r), 400, JSON.stringify(r.json));
    assert.match((r.json as { error: string }).error, why);
  }
  assert.equal((await get('ncd-onnx', key, '/v2/models/tiny/versions/7')).status, 404);
  // The header pin reaches v2 as it reaches /score.
  const pinned = await post('ncd-onnx', key, '/v2/models/tiny/infer', { inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: x }] }, { 'azureml-model-deployment': 'blue' });
  assert.equal(pinned.status, 200);
  const unknown = await post('ncd-onnx', key, '/v2/models/tiny/infer', { inputs: [] }, { 'azureml-model-deployment': 'green' });
  assert.equal(unknown.status, 404);
});

test('batching merges concurrent requests into one model call when asked for, and not otherwise', async () => {
  const file = join(models, 'batch', 'tiny.onnx');
  writeSoftmaxModel(file);
  const key = await endpoint('ncd-batch');
  const model = `  name: tiny\n  path: ${file}\n  type: triton_model`;
  await ws.ok(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('batch-on', 'ncd-batch', model, "properties:\n  infergate.batching.max_batch_size: '16'\n  infergate.batching.max_delay_us: '20000'\n"), '--all-traffic']);
  await ws.ok(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('batch-off', 'ncd-batch', model, 'request_settings:\n  max_concurrent_requests_per_instance: 16\n')]);
  const name = 'tiny';
  const fire = (deployment: string) =>
    Promise.all(
      Array.from({ length: 12 }, (_, i) =>
        post('ncd-batch', key, `/v2/models/${name}/infer`, { inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [i, 1, 0, 0] }] }, { 'azureml-model-deployment': deployment }),
      ),
    );
  for (const deployment of ['batch-on', 'batch-off']) {
    const answers = await fire(deployment);
    answers.forEach((r, i) => {
      assert.equal(r.status, 200, JSON.stringify(r.json));
      const data = (r.json as { outputs: { data: number[]; shape: number[] }[] }).outputs[0];
      assert.deepEqual(data.shape, [1, 3], 'each answer has its own rows only');
      data.data.forEach((v, j) => assert.ok(Math.abs(v - expectedSoftmax([i, 1, 0, 0])[j]) < 1e-5, `request ${i} got its own answer`));
    });
    const batches = answers.map((r) => Number(r.headers.get('x-infergate-batch-rows') ?? '1'));
    if (deployment === 'batch-on') assert.ok(Math.max(...batches) > 1, `some requests ran together: ${batches}`);
    else assert.ok(batches.every((b) => b === 1), `every request ran alone: ${batches}`);
  }

  // OIP requests follow the endpoint's traffic split and mirror as /score does: all live traffic to
  // batch-off (whose answers never carry x-infergate-batch-rows), copies of half of it to batch-on.
  await ws.ok(['ml', 'online-endpoint', 'update', '-n', 'ncd-batch', '--traffic', 'batch-on=0 batch-off=100', '--mirror-traffic', 'batch-on=50']);
  const body = { inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 1, 0, 0] }] };
  const live = await Promise.all(Array.from({ length: 20 }, () => post('ncd-batch', key, `/v2/models/${name}/infer`, body)));
  assert.ok(live.every((r) => r.status === 200 && r.headers.get('x-infergate-batch-rows') === null), 'every live answer is batch-off\'s');
  const copies = (outcome: string) => ws.metric('infergate_mirror_requests_total', { endpoint: 'ncd-batch', deployment: 'batch-on', outcome });
  const answered = await until('mirror copies of OIP requests to be answered by batch-on', async () => {
    const n = await copies('answered');
    return n > 0 ? n : undefined;
  }, 15_000, 100);
  assert.ok(answered > 0 && answered <= 20, `mirrored copies: ${answered}`);
});

test('batching an MLflow model: concurrent /score and OIP requests share predict() calls, each gets its own rows', { skip: !hasSklearn && 'needs /usr/bin/python3 with scikit-learn' }, async () => {
  const model = mlflowModel('iris-batch', 'pickle', 'columns');
  const key = await endpoint('ncd-mlbatch');
  const props = "properties:\n  infergate.batching.max_batch_size: '16'\n  infergate.batching.max_delay_us: '20000'\n";
  await ws.ok(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('blue', 'ncd-mlbatch', `  name: iris\n  path: ${model}\n  type: mlflow_model`, props), '--all-traffic']);
  // Rows alternate between the two classes' examples, so a wrong split shows as a wrong prediction.
  const row = (i: number) => ROWS[i % 2];
  const answers = await Promise.all([
    ...Array.from({ length: 6 }, (_, i) => post('ncd-mlbatch', key, '/score', { input_data: { columns: COLUMNS, data: [row(i), row(i + 1), row(i)] } })),
    ...Array.from({ length: 6 }, (_, i) =>
      post('ncd-mlbatch', key, '/v2/models/iris/infer', { id: `r${i}`, inputs: COLUMNS.map((name, c) => ({ name, shape: [1], datatype: 'FP64', data: [row(i)[c]] })) }),
    ),
    // Same form and columns as the /score requests above: it joins their merged call.
    post('ncd-mlbatch', key, '/score', { input_data: { columns: COLUMNS, data: [['x', 3.5, 1.4, 0.2]] } }),
  ]);
  const expect = (i: number) => (i % 2 === 0 ? 0 : 2);
  answers.slice(0, 6).forEach((r, i) => assert.deepEqual(r.json, [expect(i), expect(i + 1), expect(i)], `score ${i}`));
  answers.slice(6, 12).forEach((r, i) => {
    assert.equal(r.status, 200, JSON.stringify(r.json));
    assert.deepEqual(r.json, { model_name: 'iris', model_version: '1', id: `r${i}`, outputs: [{ name: 'predict', shape: [1], datatype: 'INT64', data: [expect(i)] }] });
  });
  // A bad request in a merged call is answered alone, with its own error; its neighbours are not failed.
  assert.equal(modelStatus(answers[12]), 400);
  assert.match((answers[12].json as { error: string }).error, /column sepal_length/);
  const rows = answers.slice(0, 12).map((r) => Number(r.headers.get('x-infergate-batch-rows') ?? '1'));
  assert.ok(Math.max(...rows) > 1, `some requests shared a predict() call: ${rows}`);
});

test('models that cannot be served are refused at create, with a code and the file', { skip: !hasSklearn && 'needs /usr/bin/python3 with scikit-learn' }, async () => {
  await endpoint('ncd-bad');
  const bad = join(models, 'bad');
  const cases: [string, () => string, RegExp][] = [
    ['no MLmodel', () => (mkdirSync(join(bad, 'empty'), { recursive: true }), join(bad, 'empty')), /ModelNotServable[\s\S]*has no MLmodel file/],
    ['unknown flavor', () => edit('flavor', (t) => t.replace(/flavors:[\s\S]*?mlflow_version/, 'flavors:\n  xgboost:\n    data: model.xgb\nmlflow_version')), /ModelNotServable[\s\S]*flavors xgboost cannot be served/],
    ['serialization format', () => edit('format', (t) => t.replace('serialization_format: pickle', 'serialization_format: joblib')), /ModelNotServable[\s\S]*serialization_format 'joblib'/],
    ['missing pickle', () => edit('pickle', (t) => t.replaceAll('model.pkl', 'gone.pkl')), /ModelNotServable[\s\S]*pickled_model 'gone.pkl'/],
    ['unreadable MLmodel', () => edit('yaml', () => 'flavors: [unclosed'), /ModelNotServable[\s\S]*not a readable MLmodel/],
  ];
  function edit(name: string, change: (text: string) => string): string {
    const dir = join(bad, name, 'model');
    execFileSync(PYTHON, [MAKE_MLFLOW, dir, 'pickle', 'none']);
    writeFileSync(join(dir, 'MLmodel'), change(readFileSync(join(dir, 'MLmodel'), 'utf8')));
    return dir;
  }
  for (const [what, make, why] of cases) {
    const r = await ws.cli(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('blue', 'ncd-bad', `  path: ${make()}\n  type: mlflow_model`)]);
    assert.notEqual(r.code, 0, what);
    assert.match(r.stderr, why, what);
  }
  mkdirSync(join(bad, 'onnx'), { recursive: true });
  writeFileSync(join(bad, 'onnx', 'broken.onnx'), 'this is not a protobuf');
  const broken = await ws.cli(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('blue', 'ncd-bad', `  path: ${join(bad, 'onnx', 'broken.onnx')}\n  type: triton_model`)]);
  assert.notEqual(broken.code, 0);
  assert.match(broken.stderr, /ModelNotServable[\s\S]*broken\.onnx cannot be loaded as an ONNX model: it is not a protobuf message/);
  // What only onnxruntime can tell (an operator it does not have) fails the deployment as the instance
  // loads the model, with onnxruntime's reason.
  const odd = join(bad, 'onnx', 'odd.onnx');
  writeSoftmaxModel(odd, 'NoSuchOperator');
  const failed = await ws.cli(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('odd', 'ncd-bad', `  path: ${odd}\n  type: triton_model`)]);
  assert.notEqual(failed.code, 0);
  assert.match(failed.stderr, /onnxruntime cannot load the ONNX model .*odd\.onnx.*NoSuchOperator/);
  await ws.ok(['ml', 'online-deployment', 'delete', '-e', 'ncd-bad', '-n', 'odd', '--yes']);
  // A pickle only the instance opens (unpickling runs code: never in the control plane): one that does not
  // load fails the deployment with the reason and the framework version, not a script's traceback.
  const garbled = edit('garbled', (t) => t);
  writeFileSync(join(garbled, 'model.pkl'), 'not a pickle');
  const unpickled = await ws.cli(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('garbled', 'ncd-bad', `  path: ${garbled}\n  type: mlflow_model`)]);
  assert.notEqual(unpickled.code, 0);
  assert.match(unpickled.stderr, /The MLflow model .*model\.pkl cannot be loaded with pickle: .*sklearn here is \d/);
  assert.doesNotMatch(unpickled.stderr, /unexpected error occurred in scoring script/);
  await ws.ok(['ml', 'online-deployment', 'delete', '-e', 'ncd-bad', '-n', 'garbled', '--yes']);
  const none = await ws.cli(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('blue', 'ncd-bad', `  path: ${join(bad, 'empty')}\n  type: triton_model`)]);
  assert.match(none.stderr, /ModelNotServable[\s\S]*holds no ONNX model/);
  // A custom_model still needs a scoring script.
  const custom = await ws.cli(['ml', 'online-deployment', 'create', '-f', noCodeDeployment('blue', 'ncd-bad', `  path: ${join(bad, 'empty')}`)]);
  assert.match(custom.stderr, /code_configuration is required/);
  const list = await ws.cli(['ml', 'online-deployment', 'list', '-e', 'ncd-bad', '-o', 'json']);
  assert.deepEqual(JSON.parse(list.stdout), [], 'nothing was stored');
});
