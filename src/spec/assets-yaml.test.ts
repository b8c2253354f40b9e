// Model and environment asset documents (az ml model|environment create -f): keys, defaults, versions,
// paths, problems with their location, and dump/parse round trips.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import {
  dumpEnvironmentAsset,
  dumpModelAsset,
  loadEnvironmentYaml,
  loadModelYaml,
  parseEnvironmentObject,
  parseModelObject,
  validateAssetName,
  validateAssetVersion,
} from './index.js';

const dir = mkdtempSync(join(tmpdir(), 'infergate-assets-yaml-'));
mkdirSync(join(dir, 'model'));
writeFileSync(join(dir, 'model', 'sklearn_regression_model.pkl'), 'x');
writeFileSync(join(dir, 'conda.yaml'), 'name: env\ndependencies: [python=3.11]\n');
mkdirSync(join(dir, 'ctx'));
const file = join(dir, 'model.yml');
after(() => rmSync(dir, { recursive: true, force: true }));
const messages = (r: { problems: { path: string; message: string; line?: number }[] }) => r.problems.map((p) => `${p.path}${p.line ? `@${p.line}` : ''}: ${p.message}`);

test('a model YAML as Azure writes it (managed/minimal/single-model-registered/model.yml)', () => {
  const text = [
    '$schema: https://azuremlschemas.azureedge.net/latest/model.schema.json',
    'name: my-model',
    'version: 1',
    'path: model/',
    'type: custom_model',
    'description: sklearn regression',
    'tags: {framework: sklearn, rank: 10}',
    'properties: {a: b}',
    '',
  ].join('\n');
  const { spec, problems } = loadModelYaml(text, file);
  assert.deepEqual(problems, []);
  assert.deepEqual(spec, {
    name: 'my-model',
    version: '1',
    path: join(dir, 'model'),
    type: 'custom_model',
    description: 'sklearn regression',
    tags: { framework: 'sklearn', rank: '10' },
    properties: { a: 'b' },
  });
});

test('model defaults: type custom_model, no version (auto-increment), empty tags; versions stay strings as written', () => {
  assert.deepEqual(loadModelYaml('name: m\npath: model\n', file).spec, { name: 'm', path: join(dir, 'model'), type: 'custom_model', tags: {}, properties: {} });
  assert.equal(loadModelYaml('name: m\npath: model\nversion: 1.10\n', file).spec!.version, '1.10');
  assert.equal(loadModelYaml('name: m\npath: model/sklearn_regression_model.pkl\ntype: MLFlow_Model\n', file).spec!.type, 'mlflow_model');
});

test('--set overrides (name, version, path) apply before validation, as flags do', () => {
  const { spec, problems } = loadModelYaml('name: m\npath: model\n', file, ['name=other', 'version=7', `path=${join(dir, 'conda.yaml')}`]);
  assert.deepEqual(problems, []);
  assert.equal(spec!.name, 'other');
  assert.equal(spec!.version, '7');
  assert.equal(spec!.path, join(dir, 'conda.yaml'));
});

test('model problems: every one, with its line, unknown keys and bad names and versions included', () => {
  const text = ['name: -bad', 'version: ../x', 'path: nowhere', 'type: onnx_model', 'colour: blue', ''].join('\n');
  assert.deepEqual(messages(loadModelYaml(text, file)), [
    "name@1: asset name '-bad' is not valid: use letters, digits, '-', '_' and '.', start with a letter or digit, at most 255 characters",
    "version@2: asset version '../x' is not valid: use letters, digits, '-', '_' and '.', start with a letter or digit, at most 64 characters",
    `path@3: path 'nowhere' (${join(dir, 'nowhere')}) does not exist`,
    'type@4: expected one of custom_model, mlflow_model, triton_model, got the string "onnx_model"',
    'colour@5: unknown key \'colour\'',
  ]);
  assert.deepEqual(messages(loadModelYaml('description: x\n', file)), ["name@1: missing required key 'name'", "path@1: missing required key 'path'"]);
  assert.deepEqual(messages(loadModelYaml('name: m\npath: azureml://datastores/workspaceblobstore/paths/model\n', file)), [
    "path@2: 'azureml://datastores/workspaceblobstore/paths/model' is a remote location; only a local file or folder can be registered here",
  ]);
});

test('an environment YAML: image + conda file, inference_config, os_type; build instead of image', () => {
  const text = [
    '$schema: https://azuremlschemas.azureedge.net/latest/environment.schema.json',
    'name: my-env',
    'version: 2',
    'image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest',
    'conda_file: conda.yaml',
    'description: sklearn',
    'inference_config:',
    '  liveness_route: {port: 5001, path: /}',
    '  readiness_route: {port: 5001, path: /}',
    '  scoring_route: {port: 5001, path: /score}',
    '',
  ].join('\n');
  const { spec, problems } = loadEnvironmentYaml(text, join(dir, 'env.yml'));
  assert.deepEqual(problems, []);
  assert.deepEqual(spec, {
    name: 'my-env',
    version: '2',
    description: 'sklearn',
    tags: {},
    image: 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest',
    condaFile: join(dir, 'conda.yaml'),
    osType: 'linux',
    inferenceConfig: { livenessRoute: { port: 5001, path: '/' }, readinessRoute: { port: 5001, path: '/' }, scoringRoute: { port: 5001, path: '/score' } },
  });
  const built = loadEnvironmentYaml('name: e\nbuild: {path: ctx}\nos_type: Windows\n', join(dir, 'env.yml'));
  assert.deepEqual(built.spec, { name: 'e', tags: {}, build: { path: join(dir, 'ctx'), dockerfilePath: 'Dockerfile' }, osType: 'windows' });
  const inline = loadEnvironmentYaml('name: e\nimage: python:3.11\nconda_file: {dependencies: [python=3.11]}\n', join(dir, 'env.yml'));
  assert.deepEqual(inline.spec!.condaFile, { dependencies: ['python=3.11'] });
});

test('environment problems: image or build (not both), channels/dependencies belong in the conda file', () => {
  const f = join(dir, 'env.yml');
  assert.deepEqual(messages(loadEnvironmentYaml('name: e\nconda_file: conda.yaml\n', f)), ["@1: an environment needs 'image' or 'build' (a Docker image, or a build context with a Dockerfile)"]);
  assert.deepEqual(messages(loadEnvironmentYaml('name: e\nimage: x\nbuild: {path: ctx}\n', f)), ["build@3: 'image' and 'build' cannot both be given: an environment is either an image or a build context"]);
  assert.deepEqual(messages(loadEnvironmentYaml('name: e\nimage: x\ndependencies: [numpy]\n', f)), [
    "dependencies@3: 'dependencies' belongs in the conda file (conda_file), not directly under 'environment'",
  ]);
});

test('dump then parse gives the same spec (what the CLI sends and the server reads)', () => {
  const model = loadModelYaml('name: m\nversion: "3"\npath: model\ntags: {a: "1"}\nflavors: {python_function: {loader_module: x}}\n', file).spec!;
  assert.deepEqual(parseModelObject(dumpModelAsset(model), { source: 'test' }).spec, model);
  const env = loadEnvironmentYaml('name: e\nimage: x\nconda_file: conda.yaml\ntags: {a: b}\n', join(dir, 'env.yml')).spec!;
  assert.deepEqual(parseEnvironmentObject(dumpEnvironmentAsset(env), { source: 'test' }).spec, env);
  // Without a base directory (REST bodies) a relative path is a problem.
  assert.match(messages(parseModelObject({ name: 'm', path: 'model' }, { source: 'request body' }))[0], /relative path 'model' cannot be resolved here/);
});

test('asset names and versions', () => {
  for (const ok of ['my-model', 'iris_mlflow_model', 'a', 'A1.b-c_d', 'CliV2AnonymousEnvironment']) assert.equal(validateAssetName(ok), undefined, ok);
  for (const bad of ['', '-a', '.a', '_a', 'a/b', 'a b', 'a:b', 'a@b', 'x'.repeat(256)]) assert.notEqual(validateAssetName(bad), undefined, bad);
  for (const ok of ['1', '10', '1.5', 'v2', '2024-01-01']) assert.equal(validateAssetVersion(ok), undefined, ok);
  for (const bad of ['', '.', '..', '../1', '1/2', '-1', 'x'.repeat(65)]) assert.notEqual(validateAssetVersion(bad), undefined, bad);
});
