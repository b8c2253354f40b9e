import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatAssetRef, parseAssetRef, validateName } from './index.js';
import { parseQuantity } from './deployment.js';

const LENGTH = 'The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits).';
const PATTERN = "The name for an endpoint must start with an upper- or lowercase letter\n and only consist of '-'s and alphanumeric characters.";

test('validateName accepts what Azure accepts (contract §1.8)', () => {
  for (const ok of ['abc', 'my-endpoint', 'My-Endpoint-1', 'a--b', 'a'.repeat(32), 'A1b']) assert.equal(validateName(ok, 'endpoint'), undefined, ok);
});

test('validateName checks the length first, with Azure\'s message', () => {
  assert.equal(validateName('ab', 'endpoint'), LENGTH);
  assert.equal(validateName('a'.repeat(33), 'endpoint'), LENGTH);
  assert.equal(validateName('', 'endpoint'), LENGTH);
  assert.equal(validateName('_a', 'endpoint'), LENGTH);
});

test('validateName rejects bad characters and edges, with Azure\'s message', () => {
  for (const bad of ['1abc', '-abc', 'abc-', 'my_endpoint', 'my endpoint', 'café-1']) assert.equal(validateName(bad, 'endpoint'), PATTERN, bad);
});

test('validateName says "a deployment" for deployments', () => {
  assert.equal(validateName('ab', 'deployment'), LENGTH.replace('an endpoint', 'a deployment'));
  assert.equal(validateName('b_lue', 'deployment'), PATTERN.replace('an endpoint', 'a deployment'));
});

test('asset references parse and format back (contract §1.5, §1.6)', () => {
  const cases: [string, unknown][] = [
    ['azureml:my-model:1', { kind: 'registered', name: 'my-model', version: '1' }],
    ['azureml:iris_mlflow_model@latest', { kind: 'registered', name: 'iris_mlflow_model', label: 'latest' }],
    ['azureml:my-env', { kind: 'registered', name: 'my-env' }],
    ['azureml://registries/azureml/environments/sklearn-1.5/labels/latest', { kind: 'uri', uri: 'azureml://registries/azureml/environments/sklearn-1.5/labels/latest' }],
    ['azureml:/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/models/m/versions/1', { kind: 'uri', uri: 'azureml:/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/models/m/versions/1' }],
  ];
  for (const [text, ref] of cases) {
    assert.deepEqual(parseAssetRef(text), ref, text);
    assert.equal(formatAssetRef(parseAssetRef(text)!), text);
  }
  for (const bad of ['my-model:1', 'azureml:', 'azureml:a:b:c', 'azureml:a@b@c', './model']) assert.equal(parseAssetRef(bad), undefined, bad);
});

test('Kubernetes quantities', () => {
  assert.equal(parseQuantity('0.1'), 0.1);
  assert.equal(parseQuantity('100m'), 0.1);
  assert.equal(parseQuantity('1Gi'), 2 ** 30);
  assert.equal(parseQuantity('200Mi'), 200 * 2 ** 20);
  assert.equal(parseQuantity('1e3'), 1000);
  assert.equal(parseQuantity('2G'), 2e9);
  for (const bad of ['lots', '', '1 Gi', '-1', 'Gi', '1gi']) assert.equal(parseQuantity(bad), undefined, bad);
});
