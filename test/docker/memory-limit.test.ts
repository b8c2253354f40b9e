// Issue 11 item 5: an instance killed by its memory limit. A Kubernetes-style deployment (the local server
// accepts `type: kubernetes`, and its `resources.limits.memory` becomes the container's cgroup limit) whose
// score.py allocates past 150Mi on a request: the kernel kills it, get-logs says OOMKilled (Azure's word),
// the instance is restarted and serves again, and the server never notices beyond that. One that is killed
// at every start shows the OOM kill on `online-deployment show` as a crash loop, with growing back-off.

import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type Docker from 'dockerode';
import { until, Workspace } from '../e2e/harness.js';
import { BASE_IMAGE, dockerCheck, dockerSkip, removeWorkspaceContainers, workspaceContainers } from './engine.js';

const SKIP = await dockerSkip();
const FIXTURE = join(import.meta.dirname, 'fixtures', 'py-memory');
const ws = new Workspace('docker');
const E = 'oom-docker';
const LIMIT = 150 * 1024 * 1024;
let docker: Docker;

before(async () => {
  if (SKIP) return;
  docker = (await dockerCheck()).docker!;
  await ws.startServer();
  await ws.ok(['online-endpoint', 'create', '-n', E]);
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  if (!SKIP) {
    await ws.stopServer();
    await removeWorkspaceContainers(docker, ws.dir);
  }
  await ws.dispose();
});

function deploymentFile(name: string, env: Record<string, string> = {}): string {
  const code = ws.scratch(FIXTURE, name);
  const file = join(ws.dir, 'scratch', `${name}.yml`);
  writeFileSync(file, [
    `name: ${name}`,
    `endpoint_name: ${E}`,
    'type: kubernetes',
    `code_configuration: {code: ${code}, scoring_script: score.py}`,
    `environment: {image: ${BASE_IMAGE}}`,
    ...(Object.keys(env).length ? ['environment_variables:', ...Object.entries(env).map(([k, v]) => `  ${k}: "${v}"`)] : []),
    'instance_count: 1',
    'resources:',
    '  requests: {cpu: "0.5", memory: 100Mi}',
    '  limits: {cpu: "1", memory: 150Mi}',
    '',
  ].join('\n'));
  return file;
}

async function score(deployment: string, body: unknown): Promise<{ status: number; text: string }> {
  const key = (await ws.cli(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
  const uri = (await ws.cli(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).stdout.trim();
  const r = await fetch(uri, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'azureml-model-deployment': deployment }, body: JSON.stringify(body), signal: AbortSignal.timeout(20_000) });
  return { status: r.status, text: await r.text() };
}

test('a request that allocates past resources.limits.memory: OOMKilled in get-logs, restarted, serving again, the server unharmed', { skip: SKIP, timeout: 120_000 }, async (t) => {
  await ws.ok(['online-deployment', 'create', '-f', deploymentFile('hungry')]);
  const [container] = (await workspaceContainers(docker, ws.dir)).filter((c) => c.Labels['io.infergate.deployment'] === 'hungry');
  const info = await docker.getContainer(container.Id).inspect();
  assert.equal(info.HostConfig.Memory, LIMIT, 'the cgroup limit is resources.limits.memory');
  assert.equal(info.HostConfig.MemorySwap, LIMIT, 'and no swap beyond it');
  assert.equal(info.HostConfig.NanoCpus, 1e9, 'resources.limits.cpu');

  assert.deepEqual(JSON.parse((await score('hungry', { alloc_mb: 10 })).text), { pid: JSON.parse((await score('hungry', {})).text).pid, held_mb: 10 });
  const started = Date.now();
  const killed = await score('hungry', { alloc_mb: 400 });
  t.diagnostic(`the request that ran out of memory: ${killed.status} ${killed.text.slice(0, 200)} after ${Date.now() - started} ms`);
  assert.notEqual(killed.status, 200, 'the request the killed instance held fails');

  const logs = await until('get-logs to say OOMKilled', async () => {
    const l = await ws.ok(['online-deployment', 'get-logs', '-n', 'hungry', '-e', E, '--lines', '200']);
    return /OOMKilled/.test(l) ? l : undefined;
  }, 20_000, 200);
  assert.match(logs, /OOMKilled: instance oom-docker\.hungry\.\S+ used more than its memory limit \(150 MiB, from resources\.limits\) and was killed; restarting in \d+ ms \(restart 1\)/);

  const again = await until('the restarted instance to serve', async () => {
    const r = await score('hungry', {}).catch(() => undefined);
    return r?.status === 200 ? r : undefined;
  }, 30_000, 200);
  t.diagnostic(`serving again ${Date.now() - started} ms after the request that ran out of memory`);
  assert.equal((JSON.parse(again.text) as { held_mb: number }).held_mb, 0, 'a fresh process');
  assert.equal(ws.server!.exitCode, null, 'the server runs on');
  assert.equal(await ws.cli(['online-deployment', 'show', '-n', 'hungry', '-e', E, '--query', 'provisioning_state', '-o', 'tsv']).then((r) => r.stdout), 'Succeeded\n');
  assert.equal((await workspaceContainers(docker, ws.dir)).filter((c) => c.Labels['io.infergate.deployment'] === 'hungry').length, 1, 'the killed container was replaced, not left beside the new one');
  await ws.ok(['online-deployment', 'delete', '-n', 'hungry', '-e', E, '--yes']);
});

test('an instance killed by its memory limit at every start: a crash loop on show, saying OOMKilled, with growing back-off', { skip: SKIP, timeout: 120_000 }, async () => {
  assert.equal((await ws.cli(['online-deployment', 'create', '-f', deploymentFile('bloated', { OOM_AFTER_INIT_MB: '400' })])).code, 0);
  const shown = await until('the crash loop to show', async () => {
    const r = JSON.parse((await ws.cli(['online-deployment', 'show', '-n', 'bloated', '-e', E])).stdout) as { provisioning_state: string; error?: { code: string; message: string } };
    return r.error?.code === 'CrashLoopBackOff' ? r : undefined;
  }, 30_000, 200);
  assert.match(shown.error!.message, /restarted \d+ times: OOMKilled: instance oom-docker\.bloated\.\S+ used more than its memory limit \(150 MiB, from resources\.limits\)/);
  const logs = await until('a third OOM kill', async () => {
    const l = await ws.ok(['online-deployment', 'get-logs', '-n', 'bloated', '-e', E, '--lines', '500']);
    return /\(restart 3\)/.test(l) ? l : undefined;
  }, 30_000, 200);
  const delays = [...logs.matchAll(/OOMKilled: .* restarting in (\d+) ms \(restart (\d+)\)/g)].map((m) => Number(m[1]));
  assert.ok(delays.length >= 3, logs);
  for (let i = 1; i < delays.length; i++) assert.ok(delays[i] > delays[i - 1], `back-off grows: ${delays.join(', ')} ms`);
  assert.equal(ws.server!.exitCode, null, 'the server runs on');
  await ws.ok(['online-deployment', 'delete', '-n', 'bloated', '-e', E, '--yes']);
  await until('its container to go', async () => (await workspaceContainers(docker, ws.dir)).length === 0, 20_000);
});
