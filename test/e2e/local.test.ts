// Issue #5 item 4: Azure's deploy-local-endpoint.sh (contract §9.3) with `az` replaced by `infergate`:
// every command with --local, no key, scoring URI http://localhost:<port>/score — and no Docker.

import assert from 'node:assert/strict';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { curl, EXAMPLES, SAMPLE_ANSWER, Workspace } from './harness.js';

const ws = new Workspace();
const E = 'endpt-local';
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');

after(async () => {
  await ws.dispose();
});

const ok = (args: string[]) => ws.ok(args);

test('the deploy-local-endpoint.sh sequence works with no server started by hand and no Docker', async () => {
  await ok(['ml', 'online-endpoint', 'create', '--local', '-n', E, '-f', join(SAMPLE, 'endpoint.yml')]);
  await ok(['ml', 'online-deployment', 'create', '--local', '-n', 'blue', '--endpoint', E, '-f', join(SAMPLE, 'blue-deployment.yml')]);
  assert.equal(await ok(['ml', 'online-endpoint', 'show', '-n', E, '--local', '--query', 'provisioning_state', '-o', 'tsv']), 'Succeeded\n');
  assert.equal(await ok(['ml', 'online-deployment', 'show', '-n', 'blue', '--endpoint', E, '--local', '--query', 'provisioning_state', '-o', 'tsv']), 'Succeeded\n');
  const shown = JSON.parse(await ok(['ml', 'online-endpoint', 'show', '-n', E, '--local'])) as Record<string, unknown>;
  assert.equal(shown.location, 'local');
  assert.match(String(shown.scoring_uri), /^http:\/\/localhost:\d+\/score$/);

  assert.equal(JSON.parse(await ok(['ml', 'online-endpoint', 'invoke', '--local', '--name', E, '--request-file', REQUEST])), SAMPLE_ANSWER);
  const uri = (await ok(['ml', 'online-endpoint', 'show', '--local', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const answer = await curl(uri, { 'Content-Type': 'application/json' }, REQUEST); // no Authorization
  assert.equal(answer.status, 200);
  assert.equal(answer.body, SAMPLE_ANSWER);
  assert.match(await ok(['ml', 'online-deployment', 'get-logs', '--local', '-n', 'blue', '--endpoint', E]), /Init complete/);

  // Beyond Azure's local mode: a second deployment and traffic rules work too.
  await ok(['online-deployment', 'create', '--local', '-n', 'green', '-e', E, '-f', join(SAMPLE, 'green-deployment.yml')]);
  assert.equal(JSON.parse(await ok(['online-endpoint', 'invoke', '--local', '-n', E, '-r', REQUEST, '--deployment-name', 'green'])), '[0.5, 0.5]');
  await ok(['online-endpoint', 'update', '--local', '-n', E, '--traffic', 'blue=0 green=100']);
  assert.equal((await curl(uri, {}, REQUEST)).body, '[0.5, 0.5]');

  // The regular (non-local) side is untouched: no server runs for it.
  const nonLocal = await ws.cli(['online-endpoint', 'list']);
  assert.match(nonLocal.stderr, /ServerNotFound/);

  await ok(['ml', 'online-endpoint', 'delete', '--local', '--name', E, '--yes']);
  const gone = await ws.cli(['online-endpoint', 'show', '--local', '-n', E]);
  assert.match(gone.stderr, /EndpointNotFound/);
  assert.notEqual((await curl(uri, {}, REQUEST).catch(() => ({ status: 0, body: '' }))).status, 200, 'its port is closed');
});
