// Issue #5 item 3's acceptance, end to end through the real CLI and a real server: models and
// environments as versioned assets (`infergate ml model|environment create|list|show|archive`),
// deployments that refer to them as azureml:<name>:<version> and azureml:<name>@latest, a model version
// update and a rollback under load, and conda environments built from a local wheel and reused.

import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EXAMPLES, FIXTURES, run, SAMPLE_ANSWER, Workspace } from './harness.js';
import { Load } from './load.js';

const ws = new Workspace();
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');
const IMAGE = 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest';
const PYTHON = '/usr/bin/python3';

before(async () => {
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

const ok = (args: string[]) => ws.ok(args);

const json = async (args: string[]): Promise<any> => JSON.parse(await ok(args));

/** The sample request's answer, as numbers. */
async function answer(endpoint: string, deployment?: string): Promise<number[]> {
  const text = JSON.parse(await ok(['online-endpoint', 'invoke', '-n', endpoint, '-r', REQUEST, ...(deployment ? ['--deployment-name', deployment] : [])])) as string;
  return JSON.parse(text) as number[];
}

function deploymentYaml(dir: string, file: string, lines: string[]): string {
  const path = join(dir, file);
  writeFileSync(path, ['$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json', ...lines, 'instance_type: Standard_DS3_v2', 'instance_count: 1', ''].join('\n'));
  return path;
}

test('registered model and environment: deploy by azureml:name:version, update to version 2 and roll back under load', async (t) => {
  const E = 'endpt-assets-1';
  await ok(['online-endpoint', 'create', '-n', E]);

  // Register: an explicit version, then the next one by auto-increment.
  const m1 = await json(['ml', 'model', 'create', '-n', 'my-model', '-v', '1', '-p', join(EXAMPLES, 'model-1', 'model')]);
  assert.equal(m1.name, 'my-model');
  assert.equal(m1.version, '1');
  assert.equal(m1.type, 'custom_model');
  assert.equal(m1.path, join(ws.dir, 'assets', 'models', 'my-model', '1', 'model'));
  assert.ok(existsSync(join(m1.path, 'sklearn_regression_model.pkl')), 'the model files are copied into the asset store');
  const again = await ws.cli(['ml', 'model', 'create', '-n', 'my-model', '-v', '1', '-p', join(EXAMPLES, 'model-1', 'model')]);
  assert.equal(again.code, 1);
  assert.match(again.stderr, /\(AssetAlreadyExists\) Model my-model version 1 already exists/);

  const env = await json(['ml', 'environment', 'create', '--name', 'my-env', '--version', '1', '--conda-file', join(EXAMPLES, 'model-1', 'environment', 'conda.yaml'), '--image', IMAGE]);
  assert.equal(env.version, '1');
  assert.equal(env.image, IMAGE);
  assert.equal(env.conda_file.name, 'model-env', 'show prints the conda file content');
  assert.ok(existsSync(join(ws.dir, 'assets', 'environments', 'my-env', '1', 'conda.yaml')));

  // The *-with-registered-assets.yml deployment (contract §9.1).
  const dir = join(ws.dir, 'scratch', 'registered');
  mkdirSync(dir, { recursive: true });
  const blue = deploymentYaml(dir, 'blue.yml', [
    'name: blue',
    `endpoint_name: ${E}`,
    'model: azureml:my-model:1',
    'code_configuration:',
    `  code: ${join(EXAMPLES, 'model-1', 'onlinescoring')}`,
    '  scoring_script: score.py',
    'environment: azureml:my-env:1',
  ]);
  await ok(['ml', 'online-deployment', 'create', '-f', blue, '--all-traffic']);
  const invoke = await ok(['ml', 'online-endpoint', 'invoke', '-n', E, '--request-file', REQUEST, '-o', 'tsv']);
  assert.equal(invoke, SAMPLE_ANSWER + '\n');
  const shown = await json(['ml', 'online-deployment', 'show', '-n', 'blue', '-e', E]);
  assert.equal(shown.model, 'azureml:my-model:1', 'show prints the reference as written');
  assert.equal(shown.environment, 'azureml:my-env:1');
  const logs = await ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E]);
  assert.match(logs, /process backend: running the scoring script on the host, not in image/);
  // The model-1 conda file pins numpy=2.3.1 etc.: without them on the index the build falls back.
  assert.match(logs, /building environment [0-9a-f]{16}|reusing environment [0-9a-f]{16}|could not be built/);
  const storage = await ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--container', 'storage-initializer']);
  assert.match(storage, /my-model/);

  // Version 2: the same model with its intercept moved by 1000 (so the answer says which version runs).
  const v2dir = join(ws.dir, 'scratch', 'model-v2', 'model');
  mkdirSync(v2dir, { recursive: true });
  const made = await run(PYTHON, ['-c', 'import sys, joblib\nm = joblib.load(sys.argv[1])\nm.intercept_ = m.intercept_ + 1000.0\njoblib.dump(m, sys.argv[2])', join(EXAMPLES, 'model-1', 'model', 'sklearn_regression_model.pkl'), join(v2dir, 'sklearn_regression_model.pkl')]);
  assert.equal(made.code, 0, made.stderr);
  assert.equal(await ok(['ml', 'model', 'create', '-n', 'my-model', '-p', v2dir, '--query', 'version', '-o', 'tsv']), '2\n');
  assert.equal(await ok(['ml', 'model', 'show', '-n', 'my-model', '--label', 'latest', '--query', 'version', '-o', 'tsv']), '2\n');

  const key = (await ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ok(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const load = new Load(uri, { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, readFileSync(REQUEST), {});
  load.phase('v1');
  load.start(1);
  const v1 = JSON.parse(SAMPLE_ANSWER) as number[];
  try {
    await load.waitFor(100);
    load.phase('update to v2');
    await ok(['ml', 'online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'model=azureml:my-model:2']);
    const two = await answer(E);
    assert.ok(Math.abs(two[0] - (v1[0] + 1000)) < 1e-6 && Math.abs(two[1] - (v1[1] + 1000)) < 1e-6, `version 2 answers ${two}`);
    assert.equal((await json(['online-deployment', 'show', '-n', 'blue', '-e', E])).model, 'azureml:my-model:2');
    await load.waitFor(100);

    load.phase('roll back to v1');
    await ok(['ml', 'online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'model=azureml:my-model:1']);
    assert.equal(JSON.parse(await ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST])), SAMPLE_ANSWER, 'the exact version-1 answer is back');
    await load.waitFor(100);
  } finally {
    await load.stop();
  }
  t.diagnostic(`${load.total} requests during the update and the rollback`);
  assert.deepEqual(load.failures, []);

  // @latest is resolved when the deployment is created or updated, and does not move under it.
  await ok(['ml', 'online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'model=azureml:my-model@latest']);
  assert.ok(Math.abs((await answer(E))[0] - (v1[0] + 1000)) < 1e-6, '@latest is version 2');
  assert.equal(await ok(['ml', 'model', 'create', '-n', 'my-model', '-p', join(EXAMPLES, 'model-1', 'model'), '--query', 'version', '-o', 'tsv']), '3\n');
  assert.ok(Math.abs((await answer(E))[0] - (v1[0] + 1000)) < 1e-6, 'registering version 3 does not change the running deployment');
  assert.equal((await json(['online-deployment', 'show', '-n', 'blue', '-e', E])).model, 'azureml:my-model@latest');

  // Archived versions: skipped by @latest and lists, still usable by explicit version.
  await ok(['ml', 'model', 'archive', '-n', 'my-model', '-v', '3']);
  assert.equal(await ok(['ml', 'model', 'show', '-n', 'my-model', '-l', 'latest', '--query', 'version', '-o', 'tsv']), '2\n');
  assert.equal(await ok(['ml', 'model', 'show', '-n', 'my-model', '-v', '3', '--query', 'stage', '-o', 'tsv']), 'Archived\n');
  assert.deepEqual((await json(['ml', 'model', 'list', '-n', 'my-model'])).map((m: { version: string }) => m.version), ['2', '1']);
  assert.deepEqual((await json(['ml', 'model', 'list', '-n', 'my-model', '--include-archived'])).map((m: { version: string }) => m.version), ['3', '2', '1']);
  assert.deepEqual(await json(['ml', 'model', 'list', '--query', '[].[name, latest_version]']), [['my-model', '2']]);
  await ok(['ml', 'online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'model=azureml:my-model:3']);
  assert.deepEqual(await answer(E), v1, 'an archived version still deploys by its explicit version');

  // A reference that does not resolve fails creation, with the reason.
  const missing = deploymentYaml(dir, 'missing.yml', ['name: green', `endpoint_name: ${E}`, 'model: azureml:my-model:9', 'code_configuration:', `  code: ${join(EXAMPLES, 'model-1', 'onlinescoring')}`, '  scoring_script: score.py']);
  const refused = await ws.cli(['ml', 'online-deployment', 'create', '-f', missing]);
  assert.equal(refused.code, 3, 'a 404 exits 3, as az does');
  assert.match(refused.stderr, /\(AssetNotFound\) deployment 'green': model 'azureml:my-model:9' does not resolve: no model my-model version 9 is registered/);
  assert.match((await ws.cli(['online-deployment', 'show', '-n', 'green', '-e', E])).stderr, /DeploymentNotFound/, 'nothing was stored');
  const noEnv = await ws.cli(['ml', 'model', 'show', '-n', 'nope', '-v', '1']);
  assert.match(noEnv.stderr, /\(AssetNotFound\) Model nope version 1 not found/);

  await ok(['ml', 'online-endpoint', 'delete', '-n', E, '--yes']);
});

/** A pure-Python wheel made by hand (test/fixtures/wheel/make_wheel.py): no network, no build tools. */
async function buildWheel(dir: string, answerValue: number): Promise<string> {
  const r = await run(PYTHON, [join(FIXTURES, 'wheel', 'make_wheel.py'), dir, 'infergate_e2e_pkg', '1.0.0', String(answerValue)]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

test('an environment whose conda file lists a local wheel is built once and reused by the next deployment', async () => {
  const E = 'endpt-assets-env';
  const dir = join(ws.dir, 'scratch', 'wheel-env');
  mkdirSync(join(dir, 'wheels'), { recursive: true });
  mkdirSync(join(dir, 'code'), { recursive: true });
  await buildWheel(join(dir, 'wheels'), 42);
  writeFileSync(join(dir, 'conda.yaml'), [
    'name: wheel-env',
    'channels:',
    '  - conda-forge',
    'dependencies:',
    '  - python=3.11',
    '  - pip',
    '  - pip:',
    '    - ./wheels/infergate_e2e_pkg-1.0.0-py3-none-any.whl',
    '',
  ].join('\n'));
  writeFileSync(join(dir, 'code', 'score.py'), [
    'import infergate_e2e_pkg',
    '',
    'def init():',
    '    print("infergate_e2e_pkg from", infergate_e2e_pkg.__file__, flush=True)',
    '',
    'def run(raw_data):',
    '    return {"answer": infergate_e2e_pkg.answer(), "module": infergate_e2e_pkg.__file__}',
    '',
  ].join('\n'));

  // Registered without --version: the first version of a new name is "1".
  const env = await json(['ml', 'environment', 'create', '-n', 'wheel-env', '--conda-file', join(dir, 'conda.yaml'), '--image', 'python:3.11-slim']);
  assert.equal(env.version, '1');
  assert.ok(existsSync(join(ws.dir, 'assets', 'environments', 'wheel-env', '1', 'wheels', 'infergate_e2e_pkg-1.0.0-py3-none-any.whl')), 'the wheel is stored with the environment');

  await ok(['online-endpoint', 'create', '-n', E]);
  const blue = deploymentYaml(dir, 'blue.yml', ['name: blue', `endpoint_name: ${E}`, 'code_configuration:', '  code: code', '  scoring_script: score.py', 'environment: azureml:wheel-env@latest']);
  await ok(['online-deployment', 'create', '-f', blue, '--all-traffic']);
  const first = await ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E]);
  const built = /building environment ([0-9a-f]{16})/.exec(first);
  assert.ok(built, `the first deployment builds the environment:\n${first}`);
  assert.match(first, new RegExp(`environment ${built[1]} is ready`));
  assert.match(first, /process backend: running the scoring script on the host, not in image/);
  const a = JSON.parse(JSON.parse(await ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST])) as string) as { answer: number; module: string };
  assert.equal(a.answer, 42);
  assert.ok(a.module.startsWith(realpathSync(join(ws.dir, 'envs', built[1]))), `the package is imported from the environment: ${a.module}`);

  // The second deployment writes the environment inline (registered anonymously): same packages, same wheel
  // bytes, so the same environment is reused.
  const green = deploymentYaml(dir, 'green.yml', [
    'name: green',
    `endpoint_name: ${E}`,
    'code_configuration:',
    '  code: code',
    '  scoring_script: score.py',
    'environment:',
    '  conda_file: conda.yaml',
    '  image: python:3.11-slim',
  ]);
  await ok(['online-deployment', 'create', '-f', green]);
  const second = await ok(['online-deployment', 'get-logs', '-n', 'green', '-e', E]);
  assert.match(second, new RegExp(`reusing environment ${built[1]}`));
  assert.doesNotMatch(second, /building environment/);
  const b = JSON.parse(JSON.parse(await ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST, '--deployment-name', 'green'])) as string) as { answer: number };
  assert.equal(b.answer, 42);

  // The inline environment is an anonymous asset: listed only when asked for.
  const named = (await json(['ml', 'environment', 'list'])).map((e: { name: string }) => e.name);
  assert.ok(named.includes('wheel-env') && !named.includes('CliV2AnonymousEnvironment'), named.join(', '));
  const all = (await json(['ml', 'environment', 'list', '--include-anonymous'])).map((e: { name: string }) => e.name);
  assert.ok(all.includes('CliV2AnonymousEnvironment'), all.join(', '));
  // The conda file was uploaded (the server reads no path a client names): show names the upload, as
  // Azure's show names the anonymous asset its CLI uploaded rather than the local file.
  assert.match((await json(['ml', 'online-deployment', 'show', '-n', 'green', '-e', E])).environment.conda_file, /^upload:sha256:[0-9a-f]{64}$/);
});
