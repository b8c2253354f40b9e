// Issue 13 (docs/router-scale.md): routers in several processes. `infergate server --router-workers 2` and
// two `infergate router --control` processes in front of one instance whose deployment allows one request
// at a time: admission stays exact across routers (the instance holds it), both workers serve, /metrics
// sums the workers and the traffic log has every request.

import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { request, Agent } from 'node:http';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, until, Workspace } from './harness.js';

const ws = new Workspace();
const routers: ChildProcess[] = [];
let key = '';
let uri = '';
let apiUrl = '';
let workerPids: number[] = [];
/** Scoring requests sent to this endpoint so far, whatever their answer (metrics and the traffic log must have each). */
let sent = 0;

const SLEEP_MS = 1500;

before(async () => {
  // A short autoscale idle time: the scale-from-zero test below waits for its deployment to go to zero.
  ({ url: apiUrl } = await ws.startServer(['--router-workers', '2', '--autoscale-interval', '1', '--autoscale-idle', '2']));
  const m = /router: 2 workers on port \d+ \(pids (\d+), (\d+)\)/.exec(ws.serverLog);
  assert.ok(m, ws.serverLog);
  workerPids = [Number(m[1]), Number(m[2])];
  // One request at a time, one instance: Azure's bound is 2 pending (one running, one waiting).
  ({ key, uri } = await ws.jsEndpoint('rscale', '{max_concurrent_requests_per_instance: 1, request_timeout_ms: 20000, max_queue_wait_ms: 20000}'));
});
after(async () => {
  for (const c of routers) if (c.exitCode === null) c.kill('SIGKILL');
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

interface Answer {
  status: number;
  body: string;
}

/**
 * One scoring request. Those of one burst run at once, so each has a connection of its own (the router
 * workers take connections in turn); `agent` keeps them open afterwards, to see which worker had which.
 */
function score(url: string, body: unknown, agent: Agent | false = false): Promise<Answer> {
  sent++;
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(url, { method: 'POST', agent, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

/** The pids owning established connections on the router port (ss). */
function connectionOwners(port: number): Set<number> {
  const out = spawnSync('ss', ['-Htnp', 'state', 'established', `( sport = :${port} )`], { encoding: 'utf8' }).stdout;
  return new Set([...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
}

/**
 * A burst of `n` slow requests at once (spread over `urls`): exactly two are served (one runs, one waits
 * at the instance), the others get Azure's 429 at once, and the instance never runs two at a time.
 */
async function exactBurst(urls: string[], n: number, agent: Agent | false = false): Promise<void> {
  const all = await Promise.all(Array.from({ length: n }, (_, i) => score(urls[i % urls.length], { sleep_ms: SLEEP_MS }, agent)));
  const ok = all.filter((a) => a.status === 200);
  const refused = all.filter((a) => a.status === 429);
  const summary = all.map((a) => `${a.status} ${a.body}`).join('\n');
  assert.equal(ok.length, 2, summary);
  assert.equal(refused.length, n - 2, summary);
  for (const a of refused) assert.match(a.body, /Too many pending requests for deployment 'blue': at most 2 \(2 × max_concurrent_requests_per_instance × instances\)/);
  for (const a of ok) assert.equal((JSON.parse(a.body) as { max_active: number }).max_active, 1, `the instance ran two requests at once: ${a.body}`);
}

test('--router-workers 2: admission is exact across the workers, and both of them serve', async () => {
  const port = Number(new URL(uri).port);
  // Sixteen requests at once: sixteen connections, each answered by the worker that accepted it, and kept
  // open (idle) once answered.
  const agent = new Agent({ keepAlive: true, maxSockets: 64 });
  await exactBurst([uri], 16, agent);
  const owners = connectionOwners(port);
  agent.destroy();
  for (const pid of workerPids) assert.ok(owners.has(pid), `worker ${pid} holds none of the burst's connections (owners: ${[...owners].join(', ')})`);
  // A second burst after the first drained: the bound is the same (nothing leaked at the instance).
  await exactBurst([uri], 8);
});

test('/metrics sums the workers, and the traffic log has every request', async () => {
  // Workers report each second: wait for the sum rather than for a guessed time.
  await until('/metrics to count every request', async () => (await ws.metric('infergate_requests_total', { endpoint: 'rscale' })) === sent, 10_000, 100);
  assert.equal(await ws.metric('infergate_requests_total', { endpoint: 'rscale', status_code: '200' }), 4);
  assert.equal(await ws.metric('infergate_requests_in_flight', { endpoint: 'rscale' }), 0);
  assert.equal(await ws.metric('infergate_ready_instances', { endpoint: 'rscale' }), 1, 'ready instances are one table, not a sum over workers');
  const lines = () => readFileSync(join(ws.dir, 'logs', 'traffic.jsonl'), 'utf8').split('\n').filter((l) => l.includes('"EndpointName":"rscale"'));
  await until('the traffic log to have every request', async () => lines().length === sent, 10_000, 100);
  const codes = lines().map((l) => (JSON.parse(l) as { ResponseCode: number }).ResponseCode);
  assert.equal(codes.filter((c) => c === 200).length, 4);
  assert.equal(new Set(lines().map((l) => (JSON.parse(l) as { XRequestId: string }).XRequestId)).size, sent, 'one record per request');
});

test('--router-workers 2: a worker that dies is replaced; the new one gets the table, and nothing is counted twice', async () => {
  // From a count that has every request so far: what follows must add exactly what is sent.
  await until('/metrics to count every request', async () => (await ws.metric('infergate_requests_total', { endpoint: 'rscale' })) === sent, 10_000, 100);
  const [victim, survivor] = workerPids;
  process.kill(victim, 'SIGKILL');
  const replacement = Number(await until('a worker in place of the one killed', async () => new RegExp(`router worker (\\d+) started in place of ${victim}`).exec(ws.serverLog)?.[1], 15_000, 50));
  assert.ok(replacement > 0 && replacement !== survivor);
  // The replacement serves the endpoint (it got the current routing table, not a 404): connections go to
  // the workers in turn, so a few bursts reach it.
  const port = Number(new URL(uri).port);
  await until(
    'the replacement to hold connections of a burst',
    async () => {
      const agent = new Agent({ keepAlive: true, maxSockets: 8 });
      const answers = await Promise.all(Array.from({ length: 4 }, () => score(uri, {}, agent)));
      const owners = connectionOwners(port);
      agent.destroy();
      assert.ok(answers.every((a) => a.status === 200 || a.status === 429), answers.map((a) => `${a.status} ${a.body}`).join('\n'));
      return owners.has(replacement);
    },
    15_000,
    50,
  );
  // The primary keeps what the dead worker counted and adds the replacement's from zero: the same total.
  await until('/metrics to count every request once', async () => (await ws.metric('infergate_requests_total', { endpoint: 'rscale' })) === sent, 10_000, 100);
  assert.equal(await ws.metric('infergate_requests_in_flight', { endpoint: 'rscale' }), 0, "the dead worker's gauges left the sums");
  workerPids = [replacement, survivor];
});

test('--router-workers 2: a cold request wakes a deployment scaled to zero (the worker asks the primary)', async () => {
  const dir = join(ws.dir, 'scratch', 'js-dataplane');
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', 'rzero'])).code, 0);
  const file = join(dir, 'zero.yml');
  writeFileSync(file, 'name: blue\nendpoint_name: rzero\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\nscale_settings: {type: target_utilization, min_instances: 0, max_instances: 1, polling_interval: 1, target_utilization_percentage: 70}\nrequest_settings: {request_timeout_ms: 30000}\n');
  const r = await ws.cli(['online-deployment', 'create', '-f', file, '--all-traffic']);
  assert.equal(r.code, 0, r.stderr);
  const zeroKey = (await ws.ok(['online-endpoint', 'get-credentials', '-n', 'rzero', '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const zeroUri = (await ws.ok(['online-endpoint', 'show', '-n', 'rzero', '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  const scoreZero = async () => {
    const a = await fetch(zeroUri, { method: 'POST', headers: { authorization: `Bearer ${zeroKey}`, 'content-type': 'application/json' }, body: '{}' });
    return { status: a.status, body: await a.text() };
  };
  assert.equal((await scoreZero()).status, 200, 'warm');
  // Idle: the autoscaler takes it to zero; the workers' tables say so (ready instances, summed by the primary).
  const ready = () => ws.metric('infergate_ready_instances', { endpoint: 'rzero', deployment: 'blue' });
  await until('the deployment to scale to zero', async () => (await ready()) === 0, 60_000, 200);
  // Cold: the worker that takes it has no instance; it asks the primary (IPC), which starts one.
  const cold = await scoreZero();
  assert.equal(cold.status, 200, cold.body);
  assert.equal(await ws.metric('infergate_requests_total', { endpoint: 'rzero', status_code: '503' }), 0, 'no 503 for the cold start');
});

/** Starts `infergate router --control` and returns its scoring URI base. */
async function startRouterRole(): Promise<string> {
  const child = spawn(process.execPath, [BIN, 'router', '--control', apiUrl, '--port', '0'], { env: { ...ws.env, INFERGATE_TOKEN: ws.ownerToken }, stdio: ['ignore', 'pipe', 'pipe'] });
  routers.push(child);
  let out = '';
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  const base = await until('the router role to serve', async () => /serving (http:\/\/\S+),/.exec(out)?.[1], 15_000);
  // It serves once its first routing table came.
  await until('the router role to have the routing table', async () => /routing table \d+ from/.test(err), 15_000);
  return base;
}

test('two router-role processes: admission is exact across them too', async () => {
  const bases = [await startRouterRole(), await startRouterRole()];
  await exactBurst(
    bases.map((b) => `${b}/endpoints/rscale/score`),
    12,
  );
});
