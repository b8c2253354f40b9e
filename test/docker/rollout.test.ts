// Issue 11: scale and rolling update on the docker backend under constant load, through the real CLI:
// instance_count 1 → 2, a code update (new revision) at 2 instances, 2 → 1. No request may fail, as the
// process backend's safe-rollout walkthrough (test/e2e/safe-rollout.test.ts) requires.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { until, Workspace } from '../e2e/harness.js';
import { dockerSkip } from './engine.js';
import { FIXTURES_B, removeWorkspaceContainers, whoamiDeployment, workspaceContainers } from './fixtures-b/support.js';
import { HostLoad } from './fixtures-b/traffic.js';

const skip = await dockerSkip();
const ws = new Workspace('docker');

before(async () => {
  if (skip) return;
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-30_000));
  await ws.dispose();
  if (!skip) removeWorkspaceContainers(ws.dir);
});

test('scale 1 → 2, a code update at 2 instances, scale 2 → 1: no failed request', { skip, timeout: 240_000 }, async (t) => {
  const E = 'endpt-dk-rollout';
  const v1 = ws.scratch(join(FIXTURES_B, 'whoami'), 'whoami-v1');
  // The new revision's code differs in one line: what it answers as its version.
  const v2 = ws.scratch(join(FIXTURES_B, 'whoami'), 'whoami-v2');
  const script = join(v2, 'score.py');
  const code = readFileSync(script, 'utf8');
  assert.ok(code.includes('os.environ.get("WHOAMI_VERSION", "1")'));
  writeFileSync(script, code.replace('os.environ.get("WHOAMI_VERSION", "1")', 'os.environ.get("WHOAMI_VERSION", "code-2")'));

  const file = join(ws.dir, 'blue.yml');
  writeFileSync(file, whoamiDeployment({ name: 'blue', endpoint: E, code: v1, instances: 1 }));
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await ws.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ws.ok(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const containers = async () => (await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E && c.state === 'running');

  // Two clients: Azure's admission (2 × max_concurrent_requests_per_instance × ready instances pending)
  // takes both even while one instance serves.
  const load = new HostLoad(uri, { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, 0.005, 200_000);
  load.start(2);
  const timings: string[] = [];
  const step = async (what: string, args: string[]) => {
    const t0 = Date.now();
    await ws.ok(['online-deployment', 'update', '-n', 'blue', '-e', E, ...args]);
    timings.push(`${what} ${Date.now() - t0} ms`);
    return t0;
  };
  try {
    await load.until('the first instance to answer', () => load.outcomes.length >= 100);
    const first = [...load.hosts()];
    assert.equal(first.length, 1);

    const scaleOut = await step('scale 1→2', ['--set', 'instance_count=2']);
    await load.until('answers from two containers', () => load.hosts(scaleOut).size === 2);
    await load.until('200 answers at 2 instances', () => load.count((o) => o.at > scaleOut) >= 200);
    const two = await containers();
    assert.equal(two.length, 2);
    assert.ok(two.some((c) => c.id.startsWith(first[0])), 'scale-out keeps the serving container');

    const update = await step('code update at 2 instances', ['--set', `code_configuration.code=${v2}`]);
    await load.until('only the new revision to answer', () => {
      const recent = load.outcomes.slice(-50);
      return recent.length === 50 && recent.every((o) => o.version === 'code-2');
    });
    await load.until('200 answers after the update', () => load.count((o) => o.at > update && o.version === 'code-2') >= 200);
    const updated = await containers();
    assert.equal(updated.length, 2, `after the rolling update: ${updated.map((c) => c.name).join(', ')}`);
    assert.ok(!updated.some((c) => two.some((o) => o.id === c.id)), 'the old revision\'s containers are gone');
    const revisions = new Set(updated.map((c) => c.labels['io.infergate.revision']));
    assert.equal(revisions.size, 1);
    assert.ok(!two.some((c) => revisions.has(c.labels['io.infergate.revision'])), 'a new revision');
    // Old and new answered side by side while the update rolled, never a failure in between.
    const duringUpdate = load.outcomes.filter((o) => o.at >= update);
    t.diagnostic(`during the update: ${duringUpdate.filter((o) => o.version === '1').length} answers from the old revision, ${duringUpdate.filter((o) => o.version === 'code-2').length} from the new`);

    const scaleIn = await step('scale 2→1', ['--set', 'instance_count=1']);
    // The update returns once the routing table has dropped the instance; its container then drains and stops.
    const one = await until('scale-in to stop one container', async () => {
      const c = await containers();
      return c.length === 1 ? c : undefined;
    }, 20_000, 100);
    timings.push(`scale-in container gone ${Date.now() - scaleIn} ms after the update began`);
    await load.until('200 answers after scale-in', () => load.count((o) => o.at > scaleIn) >= 200);
    assert.deepEqual([...load.hosts(Date.now() - 500)], [one[0].id.slice(0, 12)]);
    assert.equal((await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).trim(), 'Succeeded');
  } finally {
    await load.stop();
  }
  t.diagnostic(`${timings.join('; ')}; load: ${load.outcomes.length} requests, ${load.failures.length} failed`);
  assert.deepEqual(load.failures.map((f) => `#${f.id} ${f.status} ${f.body}`), []);
  assert.ok(load.outcomes.length >= 800, `only ${load.outcomes.length} requests`);
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
  assert.deepEqual(await containers(), []);
});
