// Issue #3's acceptance: Azure's safe-rollout walkthrough (contract §9.3,
// deploy-safe-rollout-online-endpoints.sh) through the CLI while a load generator sends requests to the
// scoring URI without pause. Zero failed requests, the right answers, mirror copies in green's logs,
// and the traffic shares Azure promises.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { curl, EXAMPLES, FIXTURES, SAMPLE_ANSWER, until, Workspace } from './harness.js';
import { Load } from './load.js';

const ws = new Workspace();
const E = 'endpt-sr-e2e';
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST_1 = join(EXAMPLES, 'model-1', 'sample-request.json');
const REQUEST_2 = join(EXAMPLES, 'model-2', 'sample-request.json');
const GREEN_ANSWER = '[0.5, 0.5]';

before(async () => {
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

const ok = (args: string[]) => ws.ok(args);

async function greenMirrorLines(): Promise<number> {
  const logs = await ok(['online-deployment', 'get-logs', '-n', 'green', '-e', E, '--lines', '1000000']);
  return (logs.match(/model 2: request received/g) ?? []).length;
}

test('the safe-rollout walkthrough under constant load fails no request', async (t) => {
  await ok(['ml', 'online-endpoint', 'create', '--name', E, '-f', join(SAMPLE, 'endpoint.yml')]);
  await ok(['ml', 'online-deployment', 'create', '--name', 'blue', '--endpoint-name', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  assert.equal(JSON.parse(await ok(['ml', 'online-endpoint', 'invoke', '--name', E, '--request-file', REQUEST_1])), SAMPLE_ANSWER);

  const key = (await ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ok(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  // One at a time: Azure's default request_settings (max_concurrent_requests_per_instance 1) admit
  // 2 × 1 × instances pending, and the walkthrough's own invoke/curl calls take the second slot.
  const load = new Load(uri, { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, readFileSync(REQUEST_1), { blue: SAMPLE_ANSWER, green: GREEN_ANSWER });
  load.phase('blue');
  load.start(1);
  try {
    await load.waitFor(300);

    load.phase('scale');
    await ok(['ml', 'online-deployment', 'update', '--name', 'blue', '--endpoint-name', E, '--set', 'instance_count=2']);
    await load.waitFor(300);

    load.phase('green-created');
    await ok(['ml', 'online-deployment', 'create', '--name', 'green', '--endpoint-name', E, '-f', join(SAMPLE, 'green-deployment.yml')]);
    assert.deepEqual(JSON.parse(await ok(['ml', 'online-endpoint', 'show', '-n', E, '--query', 'traffic'])), { blue: 100, green: 0 });
    assert.equal(JSON.parse(await ok(['ml', 'online-endpoint', 'invoke', '--name', E, '--deployment-name', 'green', '--request-file', REQUEST_2])), GREEN_ANSWER);
    const pinned = await curl(uri, { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json', 'azureml-model-deployment': 'green' }, REQUEST_2);
    assert.equal(pinned.status, 200);
    assert.equal(pinned.body, GREEN_ANSWER);
    await load.waitFor(300);
    assert.deepEqual(Object.keys(load.stats('green-created').byDeployment), ['blue'], 'green gets no live traffic at 0%');

    // Mirror 10%: copies reach green (its log shows them) while clients only ever see blue's answers.
    const linesBefore = await greenMirrorLines();
    load.phase('mirror');
    await ok(['ml', 'online-endpoint', 'update', '--name', E, '--mirror-traffic', 'green=10']);
    await load.waitFor(10_000, 120_000);
    await ok(['ml', 'online-endpoint', 'update', '--name', E, '--mirror-traffic', 'green=0']);
    load.phase('mirror-off');
    // Copies are fire-and-forget: wait until every one sent has settled and the answered ones are in
    // green's console log (written asynchronously by the backend), not for a guessed time.
    const copies = (outcome: string) => ws.metric('infergate_mirror_requests_total', { endpoint: E, deployment: 'green', outcome });
    const mirrored = await until('the mirror copies to settle and reach green\'s log', async () => {
      const [sent, answered, error, failed] = await Promise.all(['sent', 'answered', 'error', 'failed'].map(copies));
      if (answered + error + failed < sent) return undefined;
      const lines = (await greenMirrorLines()) - linesBefore;
      return lines >= answered ? lines : undefined;
    }, 15_000, 100);
    const mirrorStats = load.stats('mirror');
    const mirrorShare = mirrored / mirrorStats.total;
    t.diagnostic(`mirror: ${mirrored} copies of ${mirrorStats.total} requests = ${(100 * mirrorShare).toFixed(2)}%`);
    assert.deepEqual(Object.keys(mirrorStats.byDeployment), ['blue'], 'clients see only the live answer');
    assert.ok(Math.abs(mirrorShare - 0.1) <= 0.015, `mirror share ${mirrorShare}`);

    load.phase('split');
    await ok(['ml', 'online-endpoint', 'update', '--name', E, '--traffic', 'blue=90 green=10']);
    await load.waitFor(10_000, 120_000);
    const split = load.stats('split');
    load.phase('all-green');
    const greenShare = (split.byDeployment.green ?? 0) / split.total;
    t.diagnostic(`split 90/10: green answered ${split.byDeployment.green} of ${split.total} = ${(100 * greenShare).toFixed(2)}%`);
    assert.ok(Math.abs(greenShare - 0.1) <= 0.015, `green share ${greenShare}`);

    const t0 = Date.now();
    await ok(['ml', 'online-endpoint', 'update', '--name', E, '--traffic', 'blue=0 green=100']);
    const returned = Date.now();
    // The router applies the change before the command returns: the very next request goes to green.
    const next = await curl(uri, { Authorization: `Bearer ${key}` }, REQUEST_1);
    assert.equal(next.body, GREEN_ANSWER);
    t.diagnostic(`update --traffic took ${returned - t0} ms; applied before it returned`);
    await load.waitFor(300);

    // Rolling update of green to a version whose init() fails: the old instances keep serving.
    load.phase('bad-update');
    const bad = await ws.cli(['online-deployment', 'update', '-n', 'green', '-e', E, '--set', `code_configuration.code=${join(FIXTURES, 'broken-init')}`]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /UserScriptInitFailed.*model file is corrupt/s);
    assert.equal((await ok(['online-deployment', 'show', '-n', 'green', '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).trim(), 'Failed');
    await load.waitFor(300);
    assert.deepEqual(Object.keys(load.stats('bad-update').byDeployment), ['green']);

    // A good rolling update (new environment variable → new instances) replaces them with no failure.
    load.phase('rolling');
    const r0 = Date.now();
    await ok(['online-deployment', 'update', '-n', 'green', '-e', E, '-f', join(SAMPLE, 'green-deployment.yml'), '--set', 'environment_variables.ROLLOUT=2']);
    t.diagnostic(`rolling update of green took ${Date.now() - r0} ms`);
    assert.equal((await ok(['online-deployment', 'show', '-n', 'green', '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).trim(), 'Succeeded');
    await load.waitFor(300);
  } finally {
    await load.stop();
  }

  t.diagnostic(`load: ${load.total} requests, ${load.failures.length} failed`);
  assert.deepEqual(load.failures, []);
  assert.ok(load.total >= 5000, `only ${load.total} requests`);

  await ok(['ml', 'online-deployment', 'delete', '--name', 'blue', '--endpoint', E, '--yes', '--no-wait']);
  await ok(['ml', 'online-endpoint', 'delete', '--name', E, '--yes', '--no-wait']);
});
