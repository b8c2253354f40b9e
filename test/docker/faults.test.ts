// Issue 11, faults on the docker backend, driven through the real CLI with real load on 127.0.0.1:
// `docker kill` of an instance container under load, a server killed with SIGKILL whose containers the
// next server adopts (and whose strangers it leaves alone), and a container that exits at start.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { run, until, Workspace } from '../e2e/harness.js';
import { dockerSkip } from './engine.js';
import { docker, dockerQuiet, FIXTURES_B, removeWorkspaceContainers, whoamiDeployment, workspaceContainers, workspaceLabel } from './fixtures-b/support.js';
import { HostLoad } from './fixtures-b/traffic.js';

const skip = await dockerSkip();
const ws = new Workspace('docker');
/** Containers this file starts by hand (strangers and fakes), removed at the end whatever happens. */
const ours: string[] = [];

before(async () => {
  if (skip) return;
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-30_000));
  await ws.dispose();
  if (skip) return;
  // A server killed with SIGKILL stops nothing: whatever it and its successor left goes here.
  removeWorkspaceContainers(ws.dir);
  if (ours.length > 0) dockerQuiet(['rm', '-f', ...ours]);
});

async function deploy(endpoint: string, name: string, yaml: string): Promise<{ uri: string; headers: Record<string, string> }> {
  await ws.ok(['online-endpoint', 'create', '-n', endpoint]);
  const file = join(ws.dir, `${endpoint}-${name}.yml`);
  writeFileSync(file, yaml);
  await ws.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', endpoint, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ws.ok(['online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  return { uri, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } };
}

function instanceLog(endpoint: string, deployment: string, instance: string): string {
  try {
    return readFileSync(join(ws.dir, 'logs', endpoint, deployment, instance, 'inference-server.log'), 'utf8');
  } catch {
    return '';
  }
}

test('docker kill of an instance under load: failures ≤ the requests it held; a replacement serves', { skip, timeout: 180_000 }, async (t) => {
  const E = 'endpt-dk-kill';
  const MAX = 2;
  const { uri, headers } = await deploy(E, 'blue', whoamiDeployment({ name: 'blue', endpoint: E, code: join(FIXTURES_B, 'whoami'), instances: 2, maxConcurrent: MAX }));
  const containers = (await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E);
  assert.equal(containers.length, 2, 'instance_count: 2 → two containers');
  const hostOf = (id: string) => id.slice(0, 12);

  // As many clients as the two instances take at once: both stay full. No more: while one is down the
  // router admits 2 × MAX × (ready instances) = 2 × MAX pending, as Azure does, and answers 429 beyond.
  const load = new HostLoad(uri, headers, 0.02);
  load.start(2 * MAX);
  try {
    await load.until('both instances to answer', () => containers.every((c) => load.count((o) => o.host === hostOf(c.id)) >= 30));
    const victim = containers[0];
    const instance = victim.labels['io.infergate.instance'];
    const killedAt = Date.now();
    await docker(['kill', victim.id]);
    const killDone = Date.now();

    // The replacement: a new container of the same instance, and an answer from it.
    const replacement = await until('a replacement container', async () => {
      const now = (await workspaceContainers(ws.dir)).find((c) => c.labels['io.infergate.instance'] === instance && c.id !== victim.id && c.state === 'running');
      return now;
    }, 30_000, 100);
    await load.until('the replacement to answer', () => load.count((o) => o.host === hostOf(replacement.id)) > 0, 30_000);
    const firstFromReplacement = load.outcomes.find((o) => o.host === hostOf(replacement.id))!.at;
    await load.until('100 more answers', () => load.count((o) => o.at > firstFromReplacement) >= 100);
    await load.stop();
    const failures = load.failures;

    // The router hands an instance at most max_concurrent_requests_per_instance requests: that many at
    // most were in flight on the killed container, and only those may fail — none sent once the router
    // knew the container was gone. The console log names the ones it took (a diagnostic only: the line of a
    // request taken just before the kill can die with the host that relays it).
    const answered = new Set(load.outcomes.filter((o) => o.status === 200).map((o) => o.id));
    const logged = [...instanceLog(E, 'blue', instance).matchAll(/whoami: took (\d+)/g)].map((m) => Number(m[1]));
    const held = new Set(logged.filter((id) => !answered.has(id)));
    t.diagnostic(`load: ${load.outcomes.length} requests, ${failures.length} failed (${failures.slice(0, 5).map((f) => `#${f.id} sent ${f.sent - killedAt} ms after the kill: ${f.status} ${f.body.slice(0, 100)}`).join(' | ')}); the console log shows ${held.size} taken and never answered: ${[...held].join(',')}`);
    t.diagnostic(`docker kill took ${killDone - killedAt} ms; replacement answered ${firstFromReplacement - killedAt} ms after the kill`);
    assert.ok(failures.length <= MAX, `${failures.length} failures, but the killed container could hold at most ${MAX}`);
    for (const f of failures) {
      assert.ok(f.status === 502 || f.status === 503, `a lost container is 502/503: ${f.status} ${f.body}`);
      assert.ok(f.sent <= killDone, `request ${f.id}, sent ${f.sent - killDone} ms after docker kill returned, failed: the router sent it to a dead container`);
      assert.ok(!answered.has(f.id));
    }
    assert.ok(firstFromReplacement - killedAt < 10_000, `replacement served ${firstFromReplacement - killedAt} ms after the kill`);

    // The restart is on record: the instance's log says why and how often, and the deployment is still Succeeded.
    const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', '100000']);
    assert.match(logs, /instance exited \(code 137\); restarting in \d+ ms \(restart 1\)/);
    // (show has no per-instance restart count to check: get-logs is where a user sees it.)
    assert.equal((await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).trim(), 'Succeeded');
    const after = (await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E);
    assert.deepEqual(after.map((c) => c.state), ['running', 'running']);
    assert.ok(!after.some((c) => c.id === victim.id), 'the killed container was removed');
  } finally {
    await load.stop();
  }
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});

interface Inspected {
  Id: string;
  RestartCount: number;
  State: { Status: string; StartedAt: string; Pid: number };
}

async function inspect(id: string): Promise<Inspected | undefined> {
  const r = await run('docker', ['inspect', id]);
  return r.code === 0 ? (JSON.parse(r.stdout) as Inspected[])[0] : undefined;
}

test('a server killed with SIGKILL: its containers run on; the next server adopts them and removes only its own strays', { skip, timeout: 180_000 }, async (t) => {
  const E = 'endpt-dk-adopt';
  const { headers } = await deploy(E, 'blue', whoamiDeployment({ name: 'blue', endpoint: E, code: join(FIXTURES_B, 'whoami'), instances: 2 }));
  const mine = (await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E);
  assert.equal(mine.length, 2);
  const before = new Map<string, Inspected>();
  for (const c of mine) before.set(c.id, (await inspect(c.id))!);

  // Three containers the next server finds: one labelled with this workspace for a deployment that does
  // not exist (an earlier server's leftover: removed); one of another workspace with the same endpoint
  // and deployment names, and one with no infergate label at all (neither is the server's: untouched).
  const tag = `${process.pid}-${Date.now()}`;
  const template = mine[0].labels;
  const labels = (l: Record<string, string>) => Object.entries(l).flatMap(([k, v]) => ['--label', `${k}=${v}`]);
  const sleeper = (name: string, l: Record<string, string>) => docker(['run', '-d', '--name', name, '--network', 'none', ...labels(l), 'infergate-python:bookworm', 'sleep', '600']);
  const ghost = await sleeper(`igb-ghost-${tag}`, { ...template, 'io.infergate.deployment': 'ghost', 'io.infergate.instance': `${E}.ghost.0000000000.0`, 'io.infergate.socket': join(ws.dir, 'no-such-socket-dir') });
  ours.push(ghost);
  const otherWorkspace = await sleeper(`igb-other-ws-${tag}`, { ...template, 'io.infergate.workspace': workspaceLabel(`${ws.dir}-another`), 'io.infergate.socket': join(ws.dir, 'no-such-socket-dir') });
  ours.push(otherWorkspace);
  const stranger = await sleeper(`igb-stranger-${tag}`, {});
  ours.push(stranger);

  const server = ws.server!;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGKILL');
  await exited;
  for (const c of mine) assert.equal((await inspect(c.id))?.State.Status, 'running', `container ${c.name} outlives a server killed with SIGKILL`);

  const t0 = Date.now();
  const { routerUrl } = await ws.startServer();
  const started = Date.now();
  // The router listens on a new port (--router-port 0): the scoring URI is read from server.json, not asked for.
  const uri = `${routerUrl}/endpoints/${E}/score`;
  const first = await until('the first 200 after the restart', async () => {
    const r = await fetch(uri, { method: 'POST', headers, body: JSON.stringify({ id: 0 }) }).catch(() => undefined);
    return r?.status === 200 ? Date.now() : undefined;
  }, 20_000, 20);
  t.diagnostic(`new server: ${started - t0} ms to start (adoption included); first 200 ${first - started} ms after it said it was up (${first - t0} ms after it was launched)`);
  assert.ok(first - started < 1000, `adopted instances serve at once, not after a restart (${first - started} ms)`);

  // Same containers, never restarted, both serving.
  const now = (await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E);
  assert.deepEqual(now.map((c) => c.id).sort(), mine.map((c) => c.id).sort(), 'the same container IDs');
  for (const c of now) {
    const i = (await inspect(c.id))!;
    assert.equal(i.State.StartedAt, before.get(c.id)!.State.StartedAt, `${c.name} was not restarted`);
    assert.equal(i.RestartCount, 0);
    assert.equal(i.State.Pid, before.get(c.id)!.State.Pid);
  }
  const load = new HostLoad(uri, headers, 0.01);
  load.start(2);
  try {
    await load.until('answers from both adopted containers', () => mine.every((c) => load.count((o) => o.host === c.id.slice(0, 12)) >= 5), 20_000);
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures, []);
  assert.deepEqual([...load.hosts()].sort(), mine.map((c) => c.id.slice(0, 12)).sort(), 'only the adopted containers answer');
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', '100000']);
  assert.match(logs, /adopting container/);
  assert.doesNotMatch(logs, /BackOff|restarting in/);

  // The stray of this workspace is gone; the others are as they were.
  assert.equal(await inspect(ghost), undefined, 'the container of a deployment that no longer exists is removed');
  assert.equal((await inspect(otherWorkspace))?.State.Status, 'running', 'another workspace\'s container is not touched');
  assert.equal((await inspect(stranger))?.State.Status, 'running', 'a container infergate did not label is not touched');

  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
  assert.deepEqual((await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E), [], 'deleting the endpoint removes the adopted containers');
});

test('score.py that exits at import: the update fails after three restarts with a coded error; the old revision serves on', { skip, timeout: 120_000 }, async (t) => {
  const E = 'endpt-dk-initfail';
  const { uri, headers } = await deploy(E, 'blue', whoamiDeployment({ name: 'blue', endpoint: E, code: join(FIXTURES_B, 'whoami'), instances: 1 }));
  const load = new HostLoad(uri, headers, 0.01);
  load.start(2);
  try {
    await load.until('the first revision to answer', () => load.outcomes.length >= 20);
    const servingHost = [...load.hosts()];
    const updateAt = Date.now();
    const bad = await ws.cli(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', `code_configuration.code=${join(FIXTURES_B, 'exit-at-import')}`]);
    t.diagnostic(`failed update returned in ${Date.now() - updateAt} ms: ${bad.stderr.trim().slice(0, 300)}`);
    assert.equal(bad.code, 1);
    // The Python host runs a single worker's script in its own process: os._exit at import ends the
    // instance (Azure: the container exits, CrashLoopBackOff), so the update fails once it crash-looped.
    assert.match(bad.stderr, /restarted 3 times: instance exited \(code 1\)/);
    assert.equal((await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).trim(), 'Failed');
    assert.match(await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', '100000']), /exit-at-import: exiting with code 1 at import/);
    const n = load.outcomes.length;
    await load.until('more answers after the failed update', () => load.outcomes.length >= n + 50);
    assert.deepEqual([...load.hosts(updateAt)], servingHost, 'only the old revision\'s container answers');
    // The old revision's container is still the one serving (the failed one restarts with back-off).
    const containers = (await workspaceContainers(ws.dir)).filter((c) => c.labels['io.infergate.endpoint'] === E);
    assert.ok(servingHost.every((h) => containers.some((c) => c.id.startsWith(h))));
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures, []);
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});

test('a container that dies at start: crash-loop back-off shows, and the old revision serves through the failed update', { skip, timeout: 180_000 }, async (t) => {
  const E = 'endpt-dk-crash';
  const { uri, headers } = await deploy(E, 'blue', whoamiDeployment({ name: 'blue', endpoint: E, code: join(FIXTURES_B, 'whoami'), instances: 1 }));
  const load = new HostLoad(uri, headers, 0.01);
  load.start(2);
  try {
    await load.until('the first revision to answer', () => load.outcomes.length >= 20);
    const servingHost = [...load.hosts()];
    assert.equal(servingHost.length, 1);

    const bad = await ws.cli(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', `code_configuration.code=${join(FIXTURES_B, 'kill-host-at-import')}`, '--no-wait']);
    assert.equal(bad.code, 0, bad.stderr);
    const updateAt = Date.now();
    // Restarts grow with back-off (500 ms, 1 s, 2 s, ...), each on record in get-logs.
    const logs = await until('three restarts of the new revision', async () => {
      const l = await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', '100000']);
      return /\(restart 3\)/.test(l) ? l : undefined;
    }, 30_000, 200);
    const delays = [...logs.matchAll(/instance exited \(code \d+\); restarting in (\d+) ms \(restart (\d+)\)/g)].map((m) => Number(m[1]));
    t.diagnostic(`back-off delays: ${delays.join(', ')} ms; three restarts ${Date.now() - updateAt} ms after the update`);
    assert.ok(delays.length >= 3, logs.slice(-3000));
    for (let i = 1; i < delays.length; i++) assert.ok(delays[i] > delays[i - 1], `back-off grows: ${delays.join(', ')}`);
    // The new revision's container is the one that keeps dying (its own print may die with the host that relays it).
    assert.match(logs, /Entry script: \S*kill-host-at-import\/score\.py/);

    // The update fails (rather than waiting for ever) once the new revision has crash-looped three times.
    const show = await until('the update to fail with CrashLoopBackOff', async () => {
      const d = JSON.parse(await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', E])) as { provisioning_state: string; error?: { code: string; message: string } };
      return d.provisioning_state === 'Failed' ? d : undefined;
    }, 30_000, 200);
    t.diagnostic(`show after the crash loop: provisioning_state ${show.provisioning_state}, error ${JSON.stringify(show.error)}`);
    assert.equal(show.error?.code, 'CrashLoopBackOff');
    // The old revision still has all the traffic: the same container, no failure.
    const during = load.outcomes.filter((o) => o.at > updateAt);
    assert.ok(during.length > 50, `only ${during.length} requests during the failed update`);
    assert.deepEqual([...load.hosts(updateAt)], servingHost, 'only the old revision\'s container answers');
    assert.deepEqual(load.failures, []);
    // Put right: a good revision replaces the old one with no failure.
    await ws.ok(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', `code_configuration.code=${join(FIXTURES_B, 'whoami')}`, '--set', 'environment_variables.WHOAMI_VERSION=2']);
    const shown = JSON.parse(await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', E])) as { provisioning_state: string; error?: unknown };
    assert.equal(shown.provisioning_state, 'Succeeded');
    assert.equal(shown.error, undefined);
    await load.until('the new revision to answer', () => load.count((o) => o.version === '2') >= 10);
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures, []);
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});
