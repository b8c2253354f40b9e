// The asset routes and deployment-time resolution, through fastify's inject() against buildApi wired to a
// MemoryStateStore, a real Controller, a backend that only records the plans it is asked to run, and an
// asset store in a temporary folder.

import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { afterEach, beforeEach, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Backend, ObservedInstance } from '../backend/types.js';
import type { InstancePlan } from '../ir/types.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { ANONYMOUS_ENVIRONMENT, ANONYMOUS_MODEL } from './assets.js';
import { createToken } from './auth.js';
import { injectSink, uploadedDeployment, uploadedEnvironment, uploadedModel } from '../cli/uploads-testing.js';
import { buildApi } from './server.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const jsModel = join(root, 'test/fixtures/js-model');

/** Runs nothing; remembers the plan of every instance it is asked to start. */
class RecordingBackend implements Backend {
  readonly kind = 'process' as const;
  readonly plans = new Map<string, InstancePlan>();
  private readonly instances = new Map<string, ObservedInstance>();
  private listeners: (() => void)[] = [];
  observe = (): ObservedInstance[] => [...this.instances.values()].map((i) => ({ ...i }));
  async start(id: string, plan: InstancePlan, index: number): Promise<void> {
    this.plans.set(id, plan);
    this.instances.set(id, { id, endpoint: plan.endpoint, deployment: plan.deployment, revision: plan.revision, index, state: 'starting', restarts: 0 });
  }
  async stop(id: string): Promise<void> {
    this.instances.delete(id);
  }
  logs = async (): Promise<string> => '';
  onChange(l: () => void): void {
    this.listeners.push(l);
  }
  async close(): Promise<void> {}
  /** The plan of the deployment's newest instance. */
  planOf(deployment: string): InstancePlan | undefined {
    return [...this.plans.values()].filter((p) => p.deployment === deployment).pop();
  }
}

let dir: string;
let assetsDir: string;
let store: MemoryStateStore;
let backend: RecordingBackend;
let controller: Controller;
let app: FastifyInstance;
/** Every call below is the owner's; access control itself is tested in access.test.ts. */
let ownerToken: string;

async function makeApi(withAssets = true): Promise<FastifyInstance> {
  return buildApi({
    store,
    controller,
    logs: async () => '',
    routerUrl: 'http://127.0.0.1:9999',
    workspace: 'test-ws',
    location: 'local',
    version: '0.0.0-test',
    ...(withAssets ? { assetsDir } : {}),
  });
}

beforeEach(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-assets-api-'));
  assetsDir = join(dir, 'assets');
  store = new MemoryStateStore();
  ownerToken = createToken(store, { role: 'owner' }).token;
  backend = new RecordingBackend();
  controller = new Controller({ store, backend, publish: () => {}, deregistrationDelayMs: 0 });
  app = await makeApi();
});

afterEach(async () => {
  controller.stop();
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

/** As the CLI does: the paths of model, environment and deployment documents are uploaded before they are sent. */
async function asCli(url: string, payload: unknown): Promise<unknown> {
  if (payload === undefined || typeof payload !== 'object') return payload;
  const sink = injectSink(app, ownerToken);
  if (/^\/api\/models\/?$/.test(url)) return uploadedModel(sink, payload as Record<string, unknown>);
  if (/^\/api\/environments\/?$/.test(url)) return uploadedEnvironment(sink, payload as Record<string, unknown>);
  if (/\/deployments(\/[^/?]+)?(\?.*)?$/.test(url)) return uploadedDeployment(sink, payload as Record<string, unknown>);
  return payload;
}

async function call(method: 'GET' | 'POST' | 'PUT', url: string, payload?: unknown) {
  payload = await asCli(url, payload);
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ownerToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  return { status: res.statusCode, json: res.json() as any, text: res.body };
}

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await sleep(1);
    await controller.kick();
  }
}

/** A model folder of our own, so the test can change it after registering. */
function modelFolder(name: string, content: string): string {
  const p = join(dir, 'src', name, 'model');
  mkdirSync(p, { recursive: true });
  writeFileSync(join(p, 'model.json'), content);
  return p;
}

const registerModel = async (doc: Record<string, unknown>) => call('POST', '/api/models', doc);

const deploymentDoc = (name: string, extra: Record<string, unknown>) => ({
  name,
  endpoint_name: 'my-endpoint',
  code_configuration: { code: jsModel, scoring_script: 'score.mjs' },
  instance_type: 'Standard_DS3_v2',
  instance_count: 1,
  ...extra,
});

async function endpoint(): Promise<void> {
  assert.equal((await call('POST', '/api/endpoints', { name: 'my-endpoint' })).status, 201);
}

test('register models: explicit and auto-incremented versions, files copied, existing versions refused', async () => {
  const src = modelFolder('m', '{"w": 1}');
  const one = await registerModel({ name: 'm', path: src });
  assert.equal(one.status, 201, one.text);
  assert.equal(one.json.version, '1');
  assert.equal(one.json.path, join(assetsDir, 'models', 'm', '1', 'model'));
  assert.equal(one.json.id, '/workspaces/test-ws/models/m/versions/1');
  assert.equal(one.json.stage, 'Development');
  // A later change to the source does not change the registered version.
  writeFileSync(join(src, 'model.json'), '{"w": 2}');
  assert.equal(readFileSync(join(one.json.path, 'model.json'), 'utf8'), '{"w": 1}');

  assert.equal((await registerModel({ name: 'm', path: src, version: 'v7' })).json.version, 'v7');
  assert.equal((await registerModel({ name: 'm', path: src, version: 10 })).json.version, '10');
  assert.equal((await registerModel({ name: 'm', path: join(src, 'model.json') })).json.version, '11', 'the next integer after the highest');
  const file = await call('GET', '/api/models/m/versions/11');
  assert.equal(file.json.path, join(assetsDir, 'models', 'm', '11', 'model.json'), 'a file keeps its name too');

  const dup = await registerModel({ name: 'm', path: src, version: '1' });
  assert.equal(dup.status, 409);
  assert.equal(dup.json.error.code, 'AssetAlreadyExists');
  assert.equal(readFileSync(join(assetsDir, 'models', 'm', '1', 'model', 'model.json'), 'utf8'), '{"w": 1}', 'the existing version is untouched');
  assert.deepEqual(readdirSync(join(assetsDir, '.tmp')), [], 'no staging folder is left behind');

  // Sent as it is (it does not validate here either): the server reads no path, relative or absolute.
  const bad = await registerModel({ name: 'm', path: 'relative/model' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'BadArgument');
  assert.match(bad.json.error.message, /path: 'relative\/model' is a file system path; the server reads no path a client names/);
});

test('show by version and by label; archive hides a version from @latest and lists; restore brings it back', async () => {
  const src = modelFolder('m', '{}');
  for (const v of ['1', '2', '3']) await registerModel({ name: 'm', version: v, path: src });
  assert.equal((await call('GET', '/api/models/m/labels/latest')).json.version, '3');
  const archived = await call('POST', '/api/models/m/versions/3/archive');
  assert.equal(archived.json.stage, 'Archived');
  assert.equal((await call('GET', '/api/models/m/labels/latest')).json.version, '2');
  assert.equal((await call('GET', '/api/models/m/versions/3')).json.version, '3', 'still there by version');
  assert.deepEqual((await call('GET', '/api/models?name=m')).json.map((m: { version: string }) => m.version), ['2', '1']);
  assert.deepEqual((await call('GET', '/api/models?name=m&include_archived=true')).json.map((m: { version: string }) => m.version), ['3', '2', '1']);
  assert.deepEqual((await call('GET', '/api/models?name=m&archived_only=true')).json.map((m: { version: string }) => m.version), ['3']);
  await call('POST', '/api/models/m/versions/3/restore');
  assert.equal((await call('GET', '/api/models/m/labels/latest')).json.version, '3');

  const missing = await call('GET', '/api/models/m/versions/9');
  assert.equal(missing.status, 404);
  assert.equal(missing.json.error.code, 'AssetNotFound');
  const label = await call('GET', '/api/models/m/labels/production');
  assert.equal(label.status, 404);
  assert.equal(label.json.error.message, "Label 'production' not found for model m: the only label is 'latest'.");
  await call('POST', '/api/models/m/versions/1/archive');
  await call('POST', '/api/models/m/versions/2/archive');
  await call('POST', '/api/models/m/versions/3/archive');
  assert.match((await call('GET', '/api/models/m/labels/latest')).json.error.message, /Model m has no version with label 'latest': it is not registered, or every version is archived/);
  assert.equal((await call('POST', '/api/models/nope/versions/1/archive')).status, 404);
});

test('list without a name: one entry per name with its latest version; all-archived names and anonymous assets left out unless asked', async () => {
  const src = modelFolder('m', '{}');
  await registerModel({ name: 'b', path: src });
  await registerModel({ name: 'a', path: src });
  await registerModel({ name: 'a', path: src, description: 'second' });
  await registerModel({ name: 'c', path: src });
  await call('POST', '/api/models/c/versions/1/archive');
  await endpoint();
  assert.equal((await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', { model: { path: src } }))).status, 201);
  const list = (await call('GET', '/api/models')).json;
  assert.deepEqual(list.map((m: any) => [m.name, m.latest_version, m.description ?? null]), [['a', '2', 'second'], ['b', '1', null]]);
  assert.equal(list[0].id, '/workspaces/test-ws/models/a');
  const withArchived = (await call('GET', '/api/models?include_archived=true')).json.map((m: any) => m.name);
  assert.deepEqual(withArchived, ['a', 'b', 'c']);
  const withAnonymous = (await call('GET', '/api/models?include_anonymous=true')).json.map((m: any) => m.name);
  assert.deepEqual(withAnonymous, [ANONYMOUS_MODEL, 'a', 'b'].sort());
});

test('a deployment records the versions its references resolve to; show keeps the references as written; @latest does not move', async () => {
  const src = modelFolder('m', '{"v": 1}');
  await registerModel({ name: 'm', path: src });
  await registerModel({ name: 'm', path: src });
  await endpoint();
  const created = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', { model: 'azureml:m@latest' }));
  assert.equal(created.status, 201, created.text);
  assert.equal(created.json.model, 'azureml:m@latest');
  assert.deepEqual(store.getDeployment('my-endpoint', 'blue')!.spec.resolvedAssets!.model, { name: 'm', version: '2' });
  await settle();
  const before = backend.planOf('blue')!;
  assert.deepEqual(before.model, { name: 'm', version: '2', path: join(assetsDir, 'models', 'm', '2', 'model') });

  // A new version: the running deployment keeps version 2 on every reconcile pass.
  await registerModel({ name: 'm', path: src });
  await settle();
  assert.equal(backend.planOf('blue')!.revision, before.revision);
  assert.equal((await call('GET', '/api/endpoints/my-endpoint/deployments/blue/document')).json.model, 'azureml:m@latest');

  // An update of the stored document (the CLI's `update --set` without -f) keeps version 2: a scale.
  const doc = (await call('GET', '/api/endpoints/my-endpoint/deployments/blue/document')).json;
  const scaled = await call('PUT', '/api/endpoints/my-endpoint/deployments/blue?keep_assets=true', { ...doc, instance_count: 2 });
  assert.equal(scaled.status, 200, scaled.text);
  assert.deepEqual(store.getDeployment('my-endpoint', 'blue')!.spec.resolvedAssets!.model, { name: 'm', version: '2' });
  assert.equal(scaled.json.provisioning_state, 'Scaling');

  // An update with a document resolves again (as `az ml online-deployment update -f` does).
  const updated = await call('PUT', '/api/endpoints/my-endpoint/deployments/blue', { ...doc, instance_count: 2 });
  assert.equal(updated.status, 200, updated.text);
  assert.deepEqual(store.getDeployment('my-endpoint', 'blue')!.spec.resolvedAssets!.model, { name: 'm', version: '3' });
  assert.equal(updated.json.provisioning_state, 'Updating', 'a new version is a new revision, not a scale');

  // Pinned to an explicit version: a scale stays a scale.
  const pinned = await call('PUT', '/api/endpoints/my-endpoint/deployments/blue', { ...doc, model: 'azureml:m:3', instance_count: 3 });
  assert.equal(pinned.json.provisioning_state, 'Scaling');
});

test('references that do not resolve refuse the deployment with AssetNotFound (404), and store nothing', async () => {
  await endpoint();
  const src = modelFolder('m', '{}');
  await registerModel({ name: 'm', path: src });
  await call('POST', '/api/models/m/versions/1/archive');
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ model: 'azureml:m:2' }, /model 'azureml:m:2' does not resolve: no model m version 2 is registered/],
    [{ model: 'azureml:m@latest' }, /model 'azureml:m@latest' does not resolve: no model m is registered, or every version of it is archived/],
    [{ model: 'azureml:m@best' }, /label 'best' does not exist/],
    [{ environment: 'azureml:e:1' }, /environment 'azureml:e:1' does not resolve: no environment e version 1 is registered/],
  ];
  for (const [extra, message] of cases) {
    const r = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', extra));
    assert.equal(r.status, 404, JSON.stringify(extra));
    assert.equal(r.json.error.code, 'AssetNotFound');
    assert.match(r.json.error.message, message);
  }
  assert.equal(store.listDeployments().length, 0);
  // The archived version by its number works.
  assert.equal((await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', { model: 'azureml:m:1' }))).status, 201);
});

test('inline model and environment are registered anonymously, once per content, and run from the stored copy', async () => {
  await endpoint();
  const src = modelFolder('inline', '{"v": 1}');
  const condaDir = join(dir, 'env');
  mkdirSync(condaDir, { recursive: true });
  writeFileSync(join(condaDir, 'conda.yaml'), 'name: e\ndependencies:\n  - python=3.11\n');
  const inline = { model: { path: src }, environment: { image: 'python:3.11-slim', conda_file: join(condaDir, 'conda.yaml') } };
  assert.equal((await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', inline))).status, 201);
  assert.equal((await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('green', inline))).status, 201);
  const blue = store.getDeployment('my-endpoint', 'blue')!.spec;
  const green = store.getDeployment('my-endpoint', 'green')!.spec;
  assert.equal(blue.resolvedAssets!.model!.name, ANONYMOUS_MODEL);
  assert.match(blue.resolvedAssets!.model!.version, /^[0-9a-f]{32}$/);
  assert.equal(blue.resolvedAssets!.environment!.name, ANONYMOUS_ENVIRONMENT);
  assert.deepEqual(green.resolvedAssets, blue.resolvedAssets, 'the same content is the same anonymous version');
  assert.equal(store.listAssets('model').length, 1);
  assert.equal(store.listAssets('environment').length, 1);

  await settle();
  const plan = backend.planOf('blue')!;
  assert.equal(plan.model!.path, join(assetsDir, 'models', ANONYMOUS_MODEL, blue.resolvedAssets!.model!.version, 'model'));
  assert.equal(plan.model!.name, 'my-endpoint-blue-model', 'the mount name is the one inline models always had');
  assert.deepEqual(plan.environment, { condaFile: join(assetsDir, 'environments', ANONYMOUS_ENVIRONMENT, blue.resolvedAssets!.environment!.version, 'conda.yaml'), image: 'python:3.11-slim' });
  assert.match((await call('GET', '/api/endpoints/my-endpoint/deployments/blue')).json.model.path, /^upload:sha256:[0-9a-f]{64}$/, 'show prints the upload the model came from');

  // Changed content: a new anonymous version on update (`update -f` uploads the files again).
  writeFileSync(join(src, 'model.json'), '{"v": 2}');
  assert.equal((await call('PUT', '/api/endpoints/my-endpoint/deployments/blue', deploymentDoc('blue', inline))).status, 200);
  assert.notEqual(store.getDeployment('my-endpoint', 'blue')!.spec.resolvedAssets!.model!.version, blue.resolvedAssets!.model!.version);
  assert.equal(store.listAssets('model').length, 2);
  assert.deepEqual((await call('GET', '/api/models')).json, [], 'anonymous models are not listed');
});

test('environments: the conda file and the local files its pip list names are stored with the asset', async () => {
  const envDir = join(dir, 'envsrc');
  mkdirSync(join(envDir, 'wheels'), { recursive: true });
  mkdirSync(join(dir, 'elsewhere'), { recursive: true });
  writeFileSync(join(envDir, 'wheels', 'a-1.0-py3-none-any.whl'), 'a');
  writeFileSync(join(dir, 'elsewhere', 'b-1.0-py3-none-any.whl'), 'b');
  const conda = `# comment kept\nname: e\ndependencies:\n  - pip:\n    - ./wheels/a-1.0-py3-none-any.whl\n    - joblib\n`;
  writeFileSync(join(envDir, 'conda.yaml'), conda);
  const r = await call('POST', '/api/environments', { name: 'e', image: 'python:3.11', conda_file: join(envDir, 'conda.yaml') });
  assert.equal(r.status, 201, r.text);
  const stored = join(assetsDir, 'environments', 'e', '1');
  assert.equal(readFileSync(join(stored, 'conda.yaml'), 'utf8'), conda, 'unchanged entries: the file is stored as written');
  assert.equal(readFileSync(join(stored, 'wheels', 'a-1.0-py3-none-any.whl'), 'utf8'), 'a');
  assert.deepEqual(r.json.conda_file, { name: 'e', dependencies: [{ pip: ['./wheels/a-1.0-py3-none-any.whl', 'joblib'] }] });

  // A file outside the conda file's folder is stored under files/ and the entry rewritten.
  writeFileSync(join(envDir, 'conda2.yaml'), `dependencies:\n  - pip:\n    - ../elsewhere/b-1.0-py3-none-any.whl\n    - ${join(dir, 'elsewhere', 'b-1.0-py3-none-any.whl')}\n`);
  const two = await call('POST', '/api/environments', { name: 'e', image: 'python:3.11', conda_file: join(envDir, 'conda2.yaml') });
  assert.equal(two.json.version, '2');
  assert.deepEqual(two.json.conda_file.dependencies[0].pip, ['./files/b-1.0-py3-none-any.whl', './files/2/b-1.0-py3-none-any.whl']);
  assert.equal(readFileSync(join(assetsDir, 'environments', 'e', '2', 'files', 'b-1.0-py3-none-any.whl'), 'utf8'), 'b');

  writeFileSync(join(envDir, 'conda3.yaml'), 'dependencies:\n  - pip:\n    - ./missing.whl\n');
  // Found missing by the CLI, before anything is sent.
  await assert.rejects(call('POST', '/api/environments', { name: 'e', image: 'python:3.11', conda_file: join(envDir, 'conda3.yaml') }), /pip entry '\.\/missing\.whl' names .*missing\.whl, which does not exist/);
  const noImage = await call('POST', '/api/environments', { name: 'e', conda_file: { name: 'e' } });
  assert.equal(noImage.json.error.code, 'ValidationFailed');
  assert.equal((await call('GET', '/api/environments/e/labels/latest')).json.version, '2');
});

test('without an asset store: uploads, registration and inline files are refused (nothing is read from a path)', async () => {
  await app.close();
  app = await makeApi(false);
  await assert.rejects(registerModel({ name: 'm', path: modelFolder('m', '{}') }), /no blob store/);
  await endpoint();
  const src = join(dir, 'copy');
  cpSync(jsModel, src, { recursive: true });
  const r = await app.inject({ method: 'POST', url: '/api/endpoints/my-endpoint/deployments', headers: { authorization: `Bearer ${ownerToken}` }, payload: deploymentDoc('blue', { model: { path: 'upload:sha256:' + 'a'.repeat(64) }, code_configuration: { code: 'upload:sha256:' + 'b'.repeat(64), scoring_script: 'score.mjs' } }) });
  assert.equal(r.statusCode, 400);
  assert.match(r.json().error.message, /no asset store/);
  assert.equal(store.getDeployment('my-endpoint', 'blue'), undefined);
});

test('the code folder is snapshotted at create and update: edits reach instances only through an update, which rolls out', async () => {
  await endpoint();
  const code = join(dir, 'src', 'onlinescoring');
  cpSync(jsModel, code, { recursive: true });
  mkdirSync(join(code, '__pycache__'));
  writeFileSync(join(code, '__pycache__', 'x.pyc'), 'cache');
  const doc = deploymentDoc('blue', { code_configuration: { code, scoring_script: 'score.mjs' } });
  assert.equal((await call('POST', '/api/endpoints/my-endpoint/deployments', doc)).status, 201);
  await settle();
  const first = backend.planOf('blue')!;
  const snapshot = store.getDeployment('my-endpoint', 'blue')!.spec.resolvedAssets!.code!;
  assert.match(snapshot.version, /^[0-9a-f]{32}$/);
  assert.equal(first.code!.path, join(assetsDir, 'code', snapshot.version, 'onlinescoring'), 'the folder name is kept (AML_APP_ROOT)');
  assert.deepEqual(readdirSync(first.code!.path).sort(), readdirSync(jsModel).sort(), '__pycache__ is not copied');
  assert.match((await call('GET', '/api/endpoints/my-endpoint/deployments/blue')).json.code_configuration.code, /^upload:sha256:/, 'show prints the upload');

  // Python's cache changing is not a new version; an update with the same code keeps the revision.
  writeFileSync(join(code, '__pycache__', 'x.pyc'), 'other cache');
  const same = (await call('GET', '/api/endpoints/my-endpoint/deployments/blue/document')).json;
  assert.equal((await call('PUT', '/api/endpoints/my-endpoint/deployments/blue', doc)).status, 200);
  await settle();
  assert.equal(backend.planOf('blue')!.revision, first.revision);

  // An edit reaches nothing until an update with the document: `update --set` (keep_assets) keeps the snapshot.
  const script = join(code, 'score.mjs');
  writeFileSync(script, readFileSync(script, 'utf8') + '\n// edited\n');
  assert.equal((await call('PUT', '/api/endpoints/my-endpoint/deployments/blue?keep_assets=true', { ...same, instance_count: 2 })).status, 200);
  await settle();
  assert.equal(backend.planOf('blue')!.revision, first.revision, 'a scale does not read the code again');
  assert.equal((await call('PUT', '/api/endpoints/my-endpoint/deployments/blue', doc)).status, 200);
  await settle();
  const second = backend.planOf('blue')!;
  assert.notEqual(second.revision, first.revision);
  assert.match(readFileSync(join(second.code!.path, 'score.mjs'), 'utf8'), /\/\/ edited/);
  assert.doesNotMatch(readFileSync(join(first.code!.path, 'score.mjs'), 'utf8'), /\/\/ edited/);
});
