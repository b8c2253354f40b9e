// Keys and tokens through the CLI (contract §2.5), and `online-deployment update --set` (contract §2.2).

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { childPids, curl, EXAMPLES, SAMPLE_ANSWER, until, Workspace } from './harness.js';

const ws = new Workspace();
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');

before(async () => {
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

async function deployBlue(endpoint: string, extra: string[] = []): Promise<string> {
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', endpoint, ...extra])).code, 0);
  const dep = await ws.cli(['online-deployment', 'create', '-n', 'blue', '-e', endpoint, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
  return (await ws.cli(['online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri'])).stdout.trim();
}

test('aml_token endpoints take the token get-credentials returns, and nothing else', async () => {
  const E = 'endpt-token';
  const uri = await deployBlue(E, ['--auth-mode', 'aml_token']);
  assert.equal((await ws.cli(['online-endpoint', 'show', '-n', E, '--query', 'auth_mode', '-o', 'tsv'])).stdout, 'aml_token\n');
  const creds = JSON.parse((await ws.cli(['online-endpoint', 'get-credentials', '-n', E])).stdout) as Record<string, unknown>;
  assert.equal(typeof creds.accessToken, 'string');
  const now = Date.now() / 1000;
  assert.ok(Number(creds.expiryTimeUtc) > now + 3000 && Number(creds.expiryTimeUtc) <= now + 3601, 'expires in about an hour');
  assert.ok(Number(creds.refreshAfterTimeUtc) < Number(creds.expiryTimeUtc));
  const ok = await curl(uri, { Authorization: `Bearer ${creds.accessToken}` }, REQUEST);
  assert.equal(ok.status, 200);
  assert.equal(ok.body, SAMPLE_ANSWER);
  const tampered = String(creds.accessToken).slice(0, -2) + 'xx';
  assert.equal((await curl(uri, { Authorization: `Bearer ${tampered}` }, REQUEST)).status, 401);
  // The CLI's invoke uses the token by itself.
  assert.equal((await ws.cli(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST, '-o', 'tsv'])).stdout, SAMPLE_ANSWER + '\n');
  const regen = await ws.cli(['online-endpoint', 'regenerate-keys', '-n', E]);
  assert.notEqual(regen.code, 0);
  assert.match(regen.stderr, /NotKeyAuth.*does not use keys for authentication/);
  assert.equal((await ws.cli(['online-endpoint', 'delete', '-n', E, '--yes'])).code, 0);
});

test('regenerate-keys replaces one key; the old one stops working at once', async () => {
  const E = 'endpt-regen';
  const uri = await deployBlue(E);
  const before = JSON.parse((await ws.cli(['online-endpoint', 'get-credentials', '-n', E])).stdout) as { primaryKey: string; secondaryKey: string };
  assert.equal((await ws.cli(['online-endpoint', 'regenerate-keys', '-n', E, '--key-type', 'secondary'])).code, 0);
  const afterKeys = JSON.parse((await ws.cli(['online-endpoint', 'get-credentials', '-n', E])).stdout) as { primaryKey: string; secondaryKey: string };
  assert.equal(afterKeys.primaryKey, before.primaryKey);
  assert.notEqual(afterKeys.secondaryKey, before.secondaryKey);
  assert.equal((await curl(uri, { Authorization: `Bearer ${before.secondaryKey}` }, REQUEST)).status, 401);
  assert.equal((await curl(uri, { Authorization: `Bearer ${afterKeys.secondaryKey}` }, REQUEST)).status, 200);
  assert.equal((await curl(uri, { Authorization: `Bearer ${before.primaryKey}` }, REQUEST)).status, 200);
  const bad = await ws.cli(['online-endpoint', 'regenerate-keys', '-n', E, '--key-type', 'tertiary']);
  assert.match(bad.stderr, /KeyTypeInvalid.*Key type must be 'primary' or 'secondary'/);
  assert.equal((await ws.cli(['online-endpoint', 'delete', '-n', E, '--yes'])).code, 0);
});

test('online-deployment update --set instance_count=2 runs a second instance that serves too', async () => {
  const E = 'endpt-scale';
  const uri = await deployBlue(E);
  const key = (await ws.cli(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
  const before = childPids(ws.server!.pid!).length;
  const up = await ws.cli(['ml', 'online-deployment', 'update', '--name', 'blue', '--endpoint-name', E, '--set', 'instance_count=2']);
  assert.equal(up.code, 0, up.stderr);
  const shown = JSON.parse(up.stdout) as Record<string, unknown>;
  assert.equal(shown.instance_count, 2);
  assert.equal(shown.provisioning_state, 'Succeeded');
  assert.equal(childPids(ws.server!.pid!).length, before + 1);
  for (let i = 0; i < 20; i++) assert.equal((await curl(uri, { Authorization: `Bearer ${key}` }, REQUEST)).body, SAMPLE_ANSWER);
  const logs = await ws.cli(['online-deployment', 'get-logs', '-n', 'blue', '-e', E]);
  assert.equal((logs.stdout.match(/=== instance /g) ?? []).length, 2, 'get-logs shows both instances');
  const down = await ws.cli(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'instance_count=1']);
  assert.equal(down.code, 0, down.stderr);
  await until('the second instance to stop', async () => childPids(ws.server!.pid!).length === before);
  const bad = await ws.cli(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'instance_count=0']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /instance_count/);
  assert.equal((await ws.cli(['online-deployment', 'show', '-n', 'blue', '-e', E, '--query', 'instance_count', '-o', 'tsv'])).stdout, '1\n');
  const delLive = await ws.cli(['online-deployment', 'delete', '-n', 'blue', '-e', E, '--yes']);
  assert.match(delLive.stderr, /DeploymentHasTraffic/);
  assert.equal((await ws.cli(['online-endpoint', 'delete', '-n', E, '--yes'])).code, 0);
});
