// Issue #2's acceptance, end to end: Azure's deploy-managed-online-endpoint.sh (contract §9.3) with `az`
// replaced by `infergate`, against a real server process, with Azure's own example files.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { alive, childPids, curl, EXAMPLES, FIXTURES, SAMPLE_ANSWER, until, Workspace } from './harness.js';

const ws = new Workspace();
const E = 'endpt-e2e-1';
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');

before(async () => {
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('the deploy-managed-online-endpoint.sh sequence works unmodified', async (t) => {
  const create = await ws.cli(['ml', 'online-endpoint', 'create', '--name', E, '-f', join(SAMPLE, 'endpoint.yml')]);
  assert.equal(create.code, 0, create.stderr);
  const shown = JSON.parse(create.stdout) as Record<string, unknown>;
  assert.equal(shown.name, E);
  assert.equal(shown.auth_mode, 'key');
  assert.deepEqual(shown.traffic, {});

  const started = Date.now();
  const dep = await ws.cli(['ml', 'online-deployment', 'create', '--name', 'blue', '--endpoint', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
  t.diagnostic(`online-deployment create --all-traffic returned after ${Date.now() - started} ms`);

  const epState = await ws.cli(['ml', 'online-endpoint', 'show', '-n', E, '--query', 'provisioning_state', '-o', 'tsv']);
  assert.equal(epState.stdout, 'Succeeded\n');
  const depState = await ws.cli(['ml', 'online-deployment', 'show', '--name', 'blue', '--endpoint', E, '--query', 'provisioning_state', '-o', 'tsv']);
  assert.equal(depState.stdout, 'Succeeded\n');
  const traffic = await ws.cli(['online-endpoint', 'show', '-n', E, '--query', 'traffic']);
  assert.deepEqual(JSON.parse(traffic.stdout), { blue: 100 });

  const invoke = await ws.cli(['ml', 'online-endpoint', 'invoke', '--name', E, '--request-file', REQUEST]);
  assert.equal(invoke.code, 0, invoke.stderr);
  // az prints the body as a JSON string (contract §2.6).
  assert.equal(invoke.stdout, JSON.stringify(SAMPLE_ANSWER, null, 2) + '\n');

  const key = (await ws.cli(['ml', 'online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
  const uri = (await ws.cli(['ml', 'online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).stdout.trim();
  assert.match(key, /^[A-Za-z0-9_-]{32}$/);
  assert.match(uri, /^http:\/\/127\.0\.0\.1:\d+\/endpoints\/endpt-e2e-1\/score$/);
  const answer = await curl(uri, { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, REQUEST);
  assert.equal(answer.status, 200);
  assert.equal(answer.body, SAMPLE_ANSWER); // the exact bytes

  const wrong = await curl(uri, { Authorization: 'Bearer not-the-key', 'Content-Type': 'application/json' }, REQUEST);
  assert.equal(wrong.status, 401);
  const none = await curl(uri, { 'Content-Type': 'application/json' }, REQUEST);
  assert.equal(none.status, 401);
  const secondary = (await ws.cli(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'secondaryKey'])).stdout.trim();
  assert.equal((await curl(uri, { Authorization: `Bearer ${secondary}` }, REQUEST)).status, 200);

  const logs = await ws.cli(['ml', 'online-deployment', 'get-logs', '--name', 'blue', '--endpoint', E]);
  assert.equal(logs.code, 0, logs.stderr);
  assert.match(logs.stdout, /Init complete/); // the script's own init() output
  assert.match(logs.stdout, /model 1: request received/);
  const init = await ws.cli(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--container', 'storage-initializer']);
  assert.match(init.stdout, /sklearn_regression_model\.pkl|model/);
  const tail = await ws.cli(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', '2']);
  assert.equal(tail.stdout.trimEnd().split('\n').length, 2);

  const instances = childPids(ws.server!.pid!);
  assert.ok(instances.length >= 1, 'an instance process runs');
  const del = await ws.cli(['ml', 'online-endpoint', 'delete', '--name', E, '--yes', '--no-wait']);
  assert.equal(del.code, 0, del.stderr);
  await until('the endpoint to be gone', async () => (await ws.cli(['online-endpoint', 'show', '-n', E])).code !== 0);
  await until('the instance processes to exit', async () => instances.every((p) => !alive(p)));
  const gone = await ws.cli(['online-endpoint', 'show', '-n', E]);
  assert.match(gone.stderr, /EndpointNotFound/);
});

test('a JavaScript scoring module deploys and scores the same way', async () => {
  const name = 'endpt-e2e-js';
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', name])).code, 0);
  const dir = ws.scratch(join(FIXTURES, 'js-model'), 'js-model');
  writeFileSync(join(dir, 'deployment.yml'), [
    '$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json',
    'name: js-blue',
    `endpoint_name: ${name}`,
    'model:',
    '  path: model/',
    'code_configuration:',
    '  code: ./',
    '  scoring_script: score.mjs',
    'instance_type: Standard_DS3_v2',
    'instance_count: 1',
    '',
  ].join('\n'));
  const dep = await ws.cli(['online-deployment', 'create', '-f', join(dir, 'deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
  const invoke = await ws.cli(['online-endpoint', 'invoke', '-n', name, '-r', REQUEST, '-o', 'tsv']);
  assert.equal(invoke.code, 0, invoke.stderr);
  assert.equal(invoke.stdout, SAMPLE_ANSWER + '\n');
  const pinned = await ws.cli(['online-endpoint', 'invoke', '-n', name, '-r', REQUEST, '--deployment', 'js-blue', '-o', 'tsv']);
  assert.equal(pinned.stdout, SAMPLE_ANSWER + '\n');
  const unknown = await ws.cli(['online-endpoint', 'invoke', '-n', name, '-r', REQUEST, '--deployment-name', 'nope']);
  assert.notEqual(unknown.code, 0);
  assert.match(unknown.stderr, /Deployment name nope not found for this endpoint/);
  assert.equal((await ws.cli(['online-endpoint', 'delete', '-n', name, '--yes'])).code, 0);
});

test('a broken YAML reports every problem with file:line:column and creates nothing', async () => {
  const file = join(ws.dir, 'broken-endpoint.yml');
  writeFileSync(file, ['name: 1bad_name', 'auth_mode: keys', 'colour: blue', 'tags: [a, b]', ''].join('\n'));
  const r = await ws.cli(['online-endpoint', 'create', '-f', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /ValidationFailed/);
  assert.match(r.stderr, new RegExp(`${file}:1:7: name: `));
  assert.match(r.stderr, new RegExp(`${file}:2:12: auth_mode: `));
  assert.match(r.stderr, new RegExp(`${file}:3:1: colour: `));
  assert.match(r.stderr, new RegExp(`${file}:4:7: tags: `));
  const depFile = join(ws.dir, 'broken-deployment.yml');
  writeFileSync(depFile, ['name: blue', 'endpoint_name: nowhere', 'instance_count: two', 'instance_type: Standard_DS3_v2', 'request_settings:', '  request_timeout_ms: 5000', '  max_concurent_requests_per_instance: 2', ''].join('\n'));
  const d = await ws.cli(['online-deployment', 'create', '-f', depFile]);
  assert.equal(d.code, 1);
  assert.match(d.stderr, new RegExp(`${depFile}:3:17: instance_count: `));
  assert.match(d.stderr, new RegExp(`${depFile}:7:3: request_settings.max_concurent_requests_per_instance: `));
  const list = await ws.cli(['online-endpoint', 'list']);
  assert.deepEqual(JSON.parse(list.stdout), []);
});

test('a score.py whose init() raises leaves the deployment Failed with that error', async () => {
  const name = 'endpt-e2e-broken';
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', name])).code, 0);
  const dir = ws.scratch(join(FIXTURES, 'broken-init'), 'broken-init');
  writeFileSync(join(dir, 'deployment.yml'), [
    'name: blue',
    `endpoint_name: ${name}`,
    'code_configuration: {code: ./, scoring_script: score.py}',
    'instance_type: Standard_DS3_v2',
    'instance_count: 1',
    '',
  ].join('\n'));
  const dep = await ws.cli(['online-deployment', 'create', '-f', join(dir, 'deployment.yml')]);
  assert.equal(dep.code, 1);
  assert.match(dep.stderr, /UserScriptInitFailed/);
  assert.match(dep.stderr, /model file is corrupt: checksum mismatch/);
  const state = await ws.cli(['online-deployment', 'show', '-n', 'blue', '-e', name, '--query', 'provisioning_state', '-o', 'tsv']);
  assert.equal(state.stdout, 'Failed\n');
  const logs = await ws.cli(['online-deployment', 'get-logs', '-n', 'blue', '-e', name]);
  assert.match(logs.stdout, /Traceback/);
  assert.match(logs.stdout, /RuntimeError: model file is corrupt: checksum mismatch/);
  assert.equal((await ws.cli(['online-endpoint', 'delete', '-n', name, '--yes'])).code, 0);
});
