// Issue #3: every traffic rule Azure enforces (contract §3) fails with a clear error and changes nothing.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, Workspace } from './harness.js';

const ws = new Workspace();
const E = 'endpt-rules';
let dir = '';

before(async () => {
  await ws.startServer(['--max-deployments', '3']);
  dir = ws.scratch(join(FIXTURES, 'js-model'), 'js-model');
  for (const name of ['blue', 'green', 'red', 'extra']) {
    writeFileSync(join(dir, `${name}.yml`), `name: ${name}\nendpoint_name: ${E}\nmodel: {path: model/}\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n`);
  }
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', E])).code, 0);
  for (const name of ['blue', 'green', 'red']) {
    const r = await ws.cli(['online-deployment', 'create', '-f', join(dir, `${name}.yml`), ...(name === 'blue' ? ['--all-traffic'] : [])]);
    assert.equal(r.code, 0, r.stderr);
  }
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

async function endpointState(): Promise<{ traffic: unknown; mirror_traffic: unknown }> {
  const shown = JSON.parse((await ws.cli(['online-endpoint', 'show', '-n', E])).stdout) as { traffic: unknown; mirror_traffic: unknown };
  return { traffic: shown.traffic, mirror_traffic: shown.mirror_traffic };
}

async function rejected(args: string[], code: string, message: RegExp): Promise<void> {
  const before = await endpointState();
  const r = await ws.cli(args);
  assert.notEqual(r.code, 0, `expected a failure: ${args.join(' ')}`);
  assert.match(r.stderr, new RegExp(`\\(${code}\\)`), r.stderr);
  assert.match(r.stderr, message);
  assert.deepEqual(await endpointState(), before, 'nothing changed');
}

test('the starting point: blue has all traffic, show re-adds 0 for the others', async () => {
  assert.deepEqual(await endpointState(), { traffic: { blue: 100, green: 0, red: 0 }, mirror_traffic: {} });
});

test('traffic must sum to 0 or 100', async () => {
  await rejected(['online-endpoint', 'update', '-n', E, '--traffic', 'blue=50 green=20'], 'ValidationFailed', /sum/i);
  await rejected(['online-endpoint', 'update', '-n', E, '--traffic', 'blue=150'], 'ValidationFailed', /traffic/);
});

test('traffic values are whole numbers', async () => {
  await rejected(['online-endpoint', 'update', '-n', E, '--traffic', 'blue=50.5 green=49.5'], 'BadArgument', /<deployment>=<percent>/);
  await rejected(['online-endpoint', 'update', '-n', E, '--set', 'traffic.blue=ninety'], 'ValidationFailed', /traffic\.blue/);
});

test('traffic may name only existing deployments', async () => {
  await rejected(['online-endpoint', 'update', '-n', E, '--traffic', 'blue=50 purple=50'], 'InvalidTraffic', /purple.*does not exist/);
  await rejected(['online-endpoint', 'update', '-n', E, '--mirror-traffic', 'purple=10'], 'InvalidTraffic', /purple.*does not exist/);
});

test('traffic cannot be set when an endpoint is created', async () => {
  const file = join(ws.dir, 'with-traffic.yml');
  writeFileSync(file, 'name: endpt-with-traffic\ntraffic:\n  blue: 100\n');
  const r = await ws.cli(['online-endpoint', 'create', '-f', file]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /\(InvalidTraffic\).*can't be set when an endpoint is created/);
  assert.equal((await ws.cli(['online-endpoint', 'show', '-n', 'endpt-with-traffic'])).code, 3, 'nothing was created (not found: exit 3, as az)');
});

test('mirror traffic: one deployment, at most 50%, never a deployment with live traffic', async () => {
  await rejected(['online-endpoint', 'update', '-n', E, '--mirror-traffic', 'green=10 red=10'], 'ValidationFailed', /mirror_traffic/);
  await rejected(['online-endpoint', 'update', '-n', E, '--mirror-traffic', 'green=60'], 'ValidationFailed', /50/);
  await rejected(['online-endpoint', 'update', '-n', E, '--mirror-traffic', 'blue=10'], 'ValidationFailed', /both live/);
});

test('a deployment with live or mirror traffic cannot be deleted', async () => {
  const r = await ws.cli(['online-deployment', 'delete', '-n', 'blue', '-e', E, '--yes']);
  assert.match(r.stderr, /\(DeploymentHasTraffic\)/);
  assert.equal((await ws.cli(['online-deployment', 'show', '-n', 'blue', '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).stdout, 'Succeeded\n');
  assert.equal((await ws.cli(['online-endpoint', 'update', '-n', E, '--mirror-traffic', 'green=10'])).code, 0);
  const m = await ws.cli(['online-deployment', 'delete', '-n', 'green', '-e', E, '--yes']);
  assert.match(m.stderr, /\(DeploymentHasTraffic\).*mirror/);
  assert.equal((await ws.cli(['online-endpoint', 'update', '-n', E, '--mirror-traffic', 'green=0'])).code, 0);
  assert.deepEqual(await endpointState(), { traffic: { blue: 100, green: 0, red: 0 }, mirror_traffic: {} });
});

test('the number of deployments per endpoint is limited (here --max-deployments 3)', async () => {
  const r = await ws.cli(['online-deployment', 'create', '-f', join(dir, 'extra.yml')]);
  assert.match(r.stderr, /\(TooManyDeployments\)/);
  assert.equal((await ws.cli(['online-deployment', 'show', '-n', 'extra', '-e', E])).code, 3, 'nothing was created (not found: exit 3, as az)');
});

test('--all-traffic replaces the whole traffic map', async () => {
  assert.equal((await ws.cli(['online-endpoint', 'update', '-n', E, '--traffic', 'blue=60 green=40'])).code, 0);
  assert.equal((await ws.cli(['online-deployment', 'delete', '-n', 'red', '-e', E, '--yes'])).code, 0);
  const r = await ws.cli(['online-deployment', 'create', '-f', join(dir, 'red.yml'), '--all-traffic']);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual((await endpointState()).traffic, { blue: 0, green: 0, red: 100 });
});
