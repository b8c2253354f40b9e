// Issue 9, item 5, as an attacker would try it: a deployed score.py (test/fixtures/py-attacker) tries to
// read the workspace's database, owner token, lock and every other file in it, to list and write the
// workspace, to walk up from AZUREML_MODEL_DIR, to read and write another deployment's instance
// directory and that instance's environment; it answers with what stopped each attempt. Deployed through
// the real CLI on a real server. Needs root (instances then run under uids of their own); skipped, saying
// so, otherwise.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, Workspace } from './harness.js';

const ROOT = typeof process.getuid === 'function' && process.getuid() === 0;
const SKIP = ROOT ? false : 'instance isolation needs a server running as root (instances run as uids of their own); this run is not root';

const ws = new Workspace();
const E = 'isolation-e2e';

/** Real uid and supplementary groups of a process, from /proc/<pid>/status. */
function credentials(pid: number): { uids: number[]; groups: string } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return { uids: /^Uid:\s+(.*)$/m.exec(status)![1].trim().split(/\s+/).map(Number), groups: /^Groups:(.*)$/m.exec(status)![1].trim() };
}

/** Pid of the instance host of a deployment (its environment names its instance id). */
function hostPid(deployment: string): number | undefined {
  for (const p of readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const env = readFileSync(`/proc/${p}/environ`, 'utf8');
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8');
      // The Node host (runtime/host.js) or, for a score.py with WORKER_COUNT 1, the Python host itself.
      if ((cmd.includes('runtime/host') || cmd.includes('infergate_host.py')) && env.includes(`INFERGATE_INSTANCE_ID=${E}.${deployment}.`)) return Number(p);
    } catch {
      // exited, or a kernel thread
    }
  }
  return undefined;
}

async function deploy(name: string): Promise<void> {
  const file = join(ws.dir, 'scratch', `${name}.yml`);
  const fixture = ws.scratch(join(FIXTURES, 'py-attacker'), name);
  writeFileSync(file, [
    `name: ${name}`,
    `endpoint_name: ${E}`,
    'model:',
    `  path: ${join(fixture, 'model')}`,
    'code_configuration:',
    `  code: ${fixture}`,
    '  scoring_script: score.py',
    'instance_type: Standard_DS3_v2',
    'instance_count: 1',
    '',
  ].join('\n'));
  await ws.ok(['online-deployment', 'create', '-f', file]);
}

before(async () => {
  if (!ROOT) return;
  await ws.startServer();
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await deploy('victim');
  await deploy('attacker');
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('a scoring script cannot read the workspace, another deployment\'s files or its environment; it runs as a uid of its own', { skip: SKIP }, async (t) => {
  assert.match(ws.serverLog + '', /instance isolation: on/, 'the server says isolation is on');
  // Every file the workspace holds now (state.db, server.lock, server.json, the owner token if there is
  // one, assets/, logs/ ...), and the three the issue names whether they exist or not.
  const files = [...new Set([...readdirSync(ws.dir).filter((n) => n !== 'instances' && n !== 'envs' && n !== 'scratch'), 'state.db', 'owner.token', 'server.lock'])];
  const victimDir = realpathSync(join(ws.dir, 'instances', E, 'victim'));
  const [victimId] = readdirSync(victimDir);
  const victimPid = hostPid('victim');
  assert.ok(victimPid, 'the victim instance host runs');
  const request = join(ws.dir, 'scratch', 'attack.json');
  writeFileSync(request, JSON.stringify({ workspace: ws.dir, files, other: join(victimDir, victimId), pids: [victimPid] }));

  const out = await ws.ok(['online-endpoint', 'invoke', '-n', E, '--deployment-name', 'attacker', '--request-file', request]);
  const answer = JSON.parse(JSON.parse(out) as string) as { uid: number; gid: number; groups: number[]; pid: number; ppid: number; tried: Record<string, string> };

  t.diagnostic(`uid ${answer.uid}; ${JSON.stringify(answer.tried)}`);
  const allowed = { 'read own model': 'ok' };
  for (const [what, result] of Object.entries(answer.tried)) {
    if (what in allowed) assert.equal(result, 'ok', `${what}: its own files stay readable`);
    else assert.equal(result, 'PermissionError', `${what}: ${result}`);
  }
  for (const f of files) assert.ok(`read ${f}` in answer.tried, `tried ${f}`);
  assert.ok(Object.keys(answer.tried).length >= files.length + 8);

  // Its own uid: not root, not the victim's, the same for the script's process and its instance host
  // (one process in the Python host's direct mode), and no supplementary group (root's would have stayed).
  assert.notEqual(answer.uid, 0);
  const victim = credentials(victimPid);
  assert.notEqual(victim.uids[0], 0);
  assert.notEqual(answer.uid, victim.uids[0], 'each instance has a uid of its own');
  const attackerHost = hostPid('attacker');
  assert.ok(attackerHost, 'the attacker instance host runs');
  for (const pid of new Set([answer.pid, attackerHost])) {
    const c = credentials(pid);
    assert.deepEqual(c.uids, [answer.uid, answer.uid, answer.uid, answer.uid], `/proc/${pid}/status: real, effective, saved and fs uid`);
    assert.equal(c.groups, '', 'no supplementary groups');
  }
  assert.deepEqual(answer.groups, []);

  // get-logs says how the instance runs.
  const logs = await ws.ok(['online-deployment', 'get-logs', '-e', E, '-n', 'attacker', '--lines', '200']);
  assert.match(logs, new RegExp(`Instance isolation: running as uid ${answer.uid}\\b`));
});
