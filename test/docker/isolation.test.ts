// Issue 11 item 5 as an attacker would try it on the docker backend: a deployed score.py
// (fixtures/py-escape) tries to read the workspace's state.db and owner token, the server's environment,
// another deployment's instance directory, to write to its root filesystem and its code, to reach the
// control plane over TCP and the Docker socket, and to become root; it answers with what stopped each
// attempt. Only /tmp is writable, and its own model readable.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type Docker from 'dockerode';
import { Workspace } from '../e2e/harness.js';
import { BASE_IMAGE, dockerCheck, dockerSkip, removeWorkspaceContainers } from './engine.js';

const SKIP = await dockerSkip();
const FIXTURE = join(import.meta.dirname, 'fixtures', 'py-escape');
const ws = new Workspace('docker');
const E = 'escape-docker';
/** In the server's environment only: found in an instance's view of /proc, the server's environ leaked. */
const MARKER = `INFERGATE_ISOLATION_MARKER_${randomBytes(6).toString('hex')}`;
let docker: Docker;

before(async () => {
  if (SKIP) return;
  docker = (await dockerCheck()).docker!;
  // The Workspace passes process.env on to the server it starts; the variable is for that server alone.
  process.env[MARKER] = '1';
  try {
    await ws.startServer();
  } finally {
    delete process.env[MARKER];
  }
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  if (!SKIP) {
    await ws.stopServer();
    await removeWorkspaceContainers(docker, ws.dir);
  }
  await ws.dispose();
});

async function deploy(name: string): Promise<void> {
  const file = join(ws.dir, 'scratch', `${name}.yml`);
  const fixture = ws.scratch(FIXTURE, name);
  writeFileSync(file, [
    `name: ${name}`,
    `endpoint_name: ${E}`,
    'model:',
    `  path: ${join(fixture, 'model')}`,
    'code_configuration:',
    `  code: ${fixture}`,
    '  scoring_script: score.py',
    `environment: {image: ${BASE_IMAGE}}`,
    'environment_variables:',
    `  STATE_DB: ${join(ws.dir, 'state.db')}`,
    'instance_type: Standard_DS2_v2',
    'instance_count: 1',
    '',
  ].join('\n'));
  await ws.ok(['online-deployment', 'create', '-f', file]);
}

test('a score.py in a container reaches nothing of the machine: not state.db, the server, another instance, /, the control plane', { skip: SKIP, timeout: 120_000 }, async (t) => {
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await deploy('attacker');
  await deploy('victim');
  const victimDir = join(ws.dir, 'instances', E, 'victim');
  const [victim] = readdirSync(victimDir);
  assert.ok(victim, 'the victim instance has a directory on this machine');
  const { url } = JSON.parse(readFileSync(join(ws.dir, 'server.json'), 'utf8')) as { url: string };
  const request = join(ws.dir, 'scratch', 'attack.json');
  writeFileSync(request, JSON.stringify({ server_pid: ws.server!.pid, other: join(victimDir, victim), port: Number(new URL(url).port), marker: MARKER }));
  const r = await ws.cli(['online-endpoint', 'invoke', '-n', E, '--deployment-name', 'attacker', '-r', request, '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const answer = JSON.parse(JSON.parse(r.stdout) as string) as { uid: number; interfaces: string[]; marker_in: number[]; tried: Record<string, string> };
  t.diagnostic(JSON.stringify(answer));
  assert.notEqual(answer.uid, 0, 'not root');
  // 127.0.0.1 inside is the container's own loopback: with no other interface nothing outside is reachable.
  assert.deepEqual(answer.interfaces, ['lo'], 'no network but loopback');
  assert.deepEqual(answer.marker_in, [], "no process the instance can see has the server's environment");
  const { 'write /tmp': tmp, 'read own model': own, ...attacks } = answer.tried;
  assert.equal(tmp, 'ok', '/tmp is writable');
  assert.equal(own, 'ok', 'its own model is readable');
  for (const [what, outcome] of Object.entries(attacks)) assert.notEqual(outcome, 'ok', `${what} must not succeed`);
  // And what stopped them is the isolation, not a typo in the attempt: the files are not there, the root
  // filesystem and the code are read-only, there is no network and no privilege.
  assert.equal(attacks['read state.db'], 'FileNotFoundError');
  assert.equal(attacks['list other instance'], 'FileNotFoundError');
  assert.equal(attacks['write /'], 'OSError');
  assert.equal(attacks['write /var/azureml-app'], 'OSError');
  assert.match(attacks['connect 127.0.0.1 control plane'], /ConnectionRefusedError|OSError/);
  assert.equal(attacks['setuid 0'], 'PermissionError');
});
