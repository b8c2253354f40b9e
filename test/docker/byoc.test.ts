// Issue 11 item 4: custom containers (BYOC). An image built here (fixtures-b/byoc/image: a TF-Serving
// shaped model server on 8501) is deployed with a YAML shaped like Azure's
// custom-container/tfserving/half-plus-two example (environment.image + inference_config, no
// code_configuration; with and without a model), and scored through the router, which forwards HTTP to
// the scoring route on the container's port published on 127.0.0.1. Probes use the routes: a container
// whose readiness route fails gets no traffic.

import assert from 'node:assert/strict';
import { cpSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { until, Workspace } from '../e2e/harness.js';
import { dockerSkip } from './engine.js';
import { docker, dockerQuiet, FIXTURES_B, removeWorkspaceContainers, workspaceContainers } from './fixtures-b/support.js';
import { HostLoad } from './fixtures-b/traffic.js';

const skip = await dockerSkip();
const ws = new Workspace('docker');
const IMAGE = `infergate-test-byoc:h5b-${process.pid}`;
const BYOC = join(FIXTURES_B, 'byoc');

before(async () => {
  if (skip) return;
  const t0 = Date.now();
  await docker(['build', '-q', '-t', IMAGE, join(BYOC, 'image')]);
  console.log(`# built ${IMAGE} in ${Date.now() - t0} ms`);
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-30_000));
  await ws.dispose();
  if (skip) return;
  removeWorkspaceContainers(ws.dir);
  dockerQuiet(['rmi', '-f', IMAGE]);
});

/** Azure's half-plus-two deployment YAML, with this test's image. */
function byocYaml(o: { name: string; endpoint: string; instances: number; model: boolean; readinessPath?: string }): string {
  const name = 'half_plus_two';
  return [
    '$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json',
    `name: ${o.name}`,
    `endpoint_name: ${o.endpoint}`,
    ...(o.model
      ? [`model:`, `  name: tfserving-mounted`, `  version: "1"`, `  path: ./${name}`, `model_mount_path: /var/tfserving-model-mount`, `environment_variables:`, `  MODEL_BASE_PATH: /var/tfserving-model-mount`, `  MODEL_NAME: ${name}`]
      : []),
    'environment:',
    `  image: ${IMAGE}`,
    '  inference_config:',
    `    liveness_route: {port: 8501, path: /v1/models/${name}}`,
    `    readiness_route: {port: 8501, path: ${o.readinessPath ?? `/v1/models/${name}`}}`,
    `    scoring_route: {port: 8501, path: "/v1/models/${name}:predict"}`,
    'instance_type: Standard_DS3_v2',
    `instance_count: ${o.instances}`,
    // Probes every second: a readiness change shows in about the time a test can wait for.
    'readiness_probe: {initial_delay: 1, period: 1, failure_threshold: 2, success_threshold: 1}',
    'liveness_probe: {initial_delay: 1, period: 1, failure_threshold: 3}',
    '',
  ].join('\n');
}

interface Inspected {
  Config: { User: string };
  HostConfig: { PortBindings: Record<string, { HostIp: string; HostPort: string }[]> | null; NetworkMode: string };
  NetworkSettings: { Ports: Record<string, { HostIp: string; HostPort: string }[] | null> };
}

async function inspect(id: string): Promise<Inspected> {
  return (JSON.parse(await docker(['inspect', id])) as Inspected[])[0];
}

test('Azure\'s half-plus-two custom container: invoke returns the container\'s answer; its port is bound on 127.0.0.1 only', { skip, timeout: 120_000 }, async (t) => {
  const E = 'endpt-byoc';
  const dir = join(ws.dir, 'scratch', 'half-plus-two');
  cpSync(join(BYOC, 'model'), dir, { recursive: true });
  cpSync(join(BYOC, 'sample-request.json'), join(dir, 'sample-request.json'));
  writeFileSync(join(dir, 'half-plus-two-deployment.yml'), byocYaml({ name: 'half-plus-two', endpoint: E, instances: 1, model: true }));
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  const t0 = Date.now();
  const created = await ws.cli(['online-deployment', 'create', '-f', join(dir, 'half-plus-two-deployment.yml'), '--all-traffic']);
  t.diagnostic(`create → Succeeded in ${Date.now() - t0} ms`);
  assert.equal(created.code, 0, created.stderr);

  const answer = JSON.parse(JSON.parse(await ws.ok(['online-endpoint', 'invoke', '-n', E, '--request-file', join(dir, 'sample-request.json')])) as string) as { predictions: number[]; host: string };
  assert.deepEqual(answer.predictions, [2.5, 3.0, 4.5]);
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'half-plus-two', '-e', E, '--lines', '1000']);
  assert.match(logs, /model server: half_plus_two, y = 0\.5\*x \+ 2\.0 \(\/var\/tfserving-model-mount\/half_plus_two\/coefficients\.json\)/, 'the model is mounted where model_mount_path says');

  const [c] = (await workspaceContainers(ws.dir)).filter((x) => x.labels['io.infergate.endpoint'] === E);
  assert.equal(answer.host, c.id.slice(0, 12), 'the answer came from the deployment\'s container');
  const info = await inspect(c.id);
  const bindings = Object.entries(info.NetworkSettings.Ports).flatMap(([port, list]) => (list ?? []).map((b) => ({ port, ...b })));
  t.diagnostic(`published: ${JSON.stringify(bindings)}; network ${info.HostConfig.NetworkMode}; user ${info.Config.User}`);
  assert.ok(bindings.some((b) => b.port === '8501/tcp'), 'the scoring port is published');
  for (const b of bindings) assert.equal(b.HostIp, '127.0.0.1', `port ${b.port} is bound on ${b.HostIp}`);
  for (const list of Object.values(info.HostConfig.PortBindings ?? {})) for (const b of list) assert.equal(b.HostIp, '127.0.0.1');
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});

test('a custom container whose readiness route fails gets no traffic until it passes again', { skip, timeout: 120_000 }, async (t) => {
  const E = 'endpt-byoc-ready';
  const file = join(ws.dir, 'integrated.yml');
  // Azure's half-plus-two-integrated: the model is in the image, nothing is mounted.
  writeFileSync(file, byocYaml({ name: 'integrated', endpoint: E, instances: 2, model: false, readinessPath: '/ready' }));
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await ws.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ws.ok(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const containers = (await workspaceContainers(ws.dir)).filter((x) => x.labels['io.infergate.endpoint'] === E);
  assert.equal(containers.length, 2);
  const [a, b] = containers;
  const hostA = a.id.slice(0, 12);
  const hostB = b.id.slice(0, 12);
  // The test switches a's readiness on its published port, as an operator's tool would; the router never sees these calls.
  const portA = Number((await inspect(a.id)).NetworkSettings.Ports['8501/tcp']!.find((x) => x.HostIp === '127.0.0.1')!.HostPort);
  const admin = async (what: 'ready' | 'unready') => assert.equal((await fetch(`http://127.0.0.1:${portA}/admin/${what}`, { method: 'POST' })).status, 200);

  // Two clients: the admission limit (2 × 1 × ready instances) admits both with one instance out.
  const load = new HostLoad(uri, { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, 0, 100_000, () => '{"instances": [1.0, 2.0, 5.0]}');
  load.start(2);
  try {
    await load.until('both containers to answer', () => load.count((o) => o.host === hostA) >= 20 && load.count((o) => o.host === hostB) >= 20);
    const off = Date.now();
    await admin('unready');
    // Two failed probes a second apart, then a's traffic stops: from then on only b answers.
    await until('a to leave the routing table', async () => {
      const recent = load.outcomes.slice(-100);
      return recent.length === 100 && recent.every((o) => o.host === hostB) && recent[0].at > off;
    }, 15_000, 100);
    const out = Date.now();
    const lastFromA = Math.max(...load.outcomes.filter((o) => o.host === hostA).map((o) => o.at));
    t.diagnostic(`a's last answer ${lastFromA - off} ms after its readiness route began to fail`);
    assert.ok(lastFromA - off < 6000, `a took traffic for ${lastFromA - off} ms with its readiness route failing (2 probes 1 s apart)`);
    await load.until('200 answers with a unready', () => load.count((o) => o.at > out) >= 200);
    assert.equal(load.count((o) => o.at > out && o.host === hostA), 0, 'an unready custom container gets no traffic');
    const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'integrated', '-e', E, '--lines', '10000']);
    assert.match(logs, /Readiness probe failed 2 times: no traffic until it passes/);

    const on = Date.now();
    await admin('ready');
    await load.until('a to take traffic again', () => load.count((o) => o.at > on && o.host === hostA) >= 20, 15_000);
    t.diagnostic(`a back in traffic ${load.outcomes.find((o) => o.at > on && o.host === hostA)!.at - on} ms after its readiness route passed again`);
  } finally {
    await load.stop();
  }
  assert.deepEqual(load.failures.map((f) => `${f.status} ${f.body}`), []);
  for (const o of load.outcomes) assert.equal(o.body.includes('"predictions": [2.5, 3.0, 4.5]'), true, o.body);
  t.diagnostic(`load: ${load.outcomes.length} requests, none failed`);
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});

test('docker kill of a custom container under load: failures ≤ the requests it held; a replacement serves', { skip, timeout: 120_000 }, async (t) => {
  const E = 'endpt-byoc-kill';
  const file = join(ws.dir, 'kill.yml');
  writeFileSync(file, byocYaml({ name: 'blue', endpoint: E, instances: 2, model: false }));
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await ws.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ws.ok(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const containers = (await workspaceContainers(ws.dir)).filter((x) => x.labels['io.infergate.endpoint'] === E);
  assert.equal(containers.length, 2);
  const [victim, other] = containers;
  const instance = victim.labels['io.infergate.instance'];

  // Two clients (max_concurrent_requests_per_instance 1, Azure's default): the killed container holds at most one.
  const load = new HostLoad(uri, { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, 0, 100_000, () => '{"instances": [1.0, 2.0, 5.0]}');
  load.start(2);
  try {
    await load.until('both containers to answer', () => containers.every((c) => load.count((o) => o.host === c.id.slice(0, 12)) >= 50));
    const killedAt = Date.now();
    await docker(['kill', victim.id]);
    const replacement = await until('a replacement container', async () => (await workspaceContainers(ws.dir)).find((c) => c.labels['io.infergate.instance'] === instance && c.id !== victim.id && c.state === 'running'), 30_000, 100);
    await load.until('the replacement to answer', () => load.count((o) => o.host === replacement.id.slice(0, 12)) >= 20, 30_000);
    const first = load.outcomes.find((o) => o.host === replacement.id.slice(0, 12))!.at;
    t.diagnostic(`replacement answered ${first - killedAt} ms after the kill`);
    assert.ok(first - killedAt < 10_000);
  } finally {
    await load.stop();
  }
  const failures = load.failures;
  t.diagnostic(`load: ${load.outcomes.length} requests, ${failures.length} failed: ${failures.map((f) => `${f.status} ${f.body.slice(0, 120)}`).join(' | ')}`);
  assert.ok(failures.length <= 1, `the killed container held at most 1 request (max_concurrent_requests_per_instance), yet ${failures.length} failed`);
  for (const f of failures) assert.ok(f.status === 502 || f.status === 503, `${f.status} ${f.body}`);
  assert.ok(load.count((o) => o.host === other.id.slice(0, 12)) > 0);
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});

test('a server killed with SIGKILL: the next one adopts the custom container and serves at once', { skip, timeout: 120_000 }, async (t) => {
  const E = 'endpt-byoc-adopt';
  const file = join(ws.dir, 'adopt.yml');
  writeFileSync(file, byocYaml({ name: 'blue', endpoint: E, instances: 1, model: false }));
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await ws.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const [c] = (await workspaceContainers(ws.dir)).filter((x) => x.labels['io.infergate.endpoint'] === E);
  const startedAt = (JSON.parse(await docker(['inspect', c.id])) as { State: { StartedAt: string } }[])[0].State.StartedAt;

  const server = ws.server!;
  const exited = new Promise((r) => server.once('exit', r));
  server.kill('SIGKILL');
  await exited;
  const t0 = Date.now();
  const { routerUrl } = await ws.startServer();
  const up = Date.now();
  const answer = await until('the first 200 after the restart', async () => {
    const r = await fetch(`${routerUrl}/endpoints/${E}/score`, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: '{"instances": [4]}' }).catch(() => undefined);
    return r?.status === 200 ? { at: Date.now(), body: await r.text() } : undefined;
  }, 20_000, 20);
  t.diagnostic(`server up ${up - t0} ms after launch; first 200 ${answer.at - up} ms later`);
  assert.ok(answer.at - up < 1000, `an adopted custom container serves at once (${answer.at - up} ms)`);
  const body = JSON.parse(answer.body) as { predictions: number[]; host: string };
  assert.deepEqual(body.predictions, [4]);
  assert.equal(body.host, c.id.slice(0, 12), 'the same container answers');
  const now = (await workspaceContainers(ws.dir)).filter((x) => x.labels['io.infergate.endpoint'] === E);
  assert.deepEqual(now.map((x) => x.id), [c.id]);
  assert.equal((JSON.parse(await docker(['inspect', c.id])) as { State: { StartedAt: string } }[])[0].State.StartedAt, startedAt, 'not restarted');
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
});
