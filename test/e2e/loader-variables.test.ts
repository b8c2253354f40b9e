// A deployment that opts in to a dynamic-loader variable (tags: infergate.allow-environment-variables,
// spec/unsafe-env.ts) still gets it in its instance — set again by env(1) after setpriv has dropped to the
// instance's uid — while setpriv, which runs as the server's user (root), never sees it: LD_PRELOAD in
// setpriv's own environment would run the deployment's code as root (backend/process/backend.ts).

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, Workspace } from './harness.js';
import { httpRequest } from '../reliability/attack.js';

const ws = new Workspace();

before(async () => {
  await ws.startServer();
});
after(() => ws.dispose());

test('an allowed LD_PRELOAD reaches the instance host only, never setpriv running as the server user', { timeout: 90_000 }, async () => {
  // ld.so reports a preload it cannot open on stderr, once per program started with it: the host's console
  // log shows one report per start when only the instance host (node) had it, two when setpriv had it too.
  const dir = ws.scratch(join(FIXTURES, 'js-behaviours'), 'loader-vars');
  writeFileSync(
    join(dir, 'blue.yml'),
    'name: blue\nendpoint_name: ld-ep\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n' +
      'tags: {infergate.allow-environment-variables: "LD_PRELOAD"}\nenvironment_variables: {LD_PRELOAD: /nonexistent/infergate-test-preload.so}\n',
  );
  await ws.ok(['online-endpoint', 'create', '-n', 'ld-ep']);
  await ws.ok(['online-deployment', 'create', '-f', join(dir, 'blue.yml'), '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', 'ld-ep', '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ws.ok(['online-endpoint', 'show', '-n', 'ld-ep', '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const r = await httpRequest(uri, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"op":"env","name":"LD_PRELOAD"}' });
  assert.equal(r.status, 200, r.body);
  assert.deepEqual(JSON.parse(r.body), { name: 'LD_PRELOAD', value: '/nonexistent/infergate-test-preload.so' });
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', 'ld-ep', '--lines', '500']);
  const reports = logs.split('\n').filter((l) => l.includes('infergate-test-preload.so') && l.includes('ld.so')).length;
  assert.equal(reports, 1, `ld.so reports in the console log (1: the host only; 2: setpriv had it too):\n${logs}`);
});
