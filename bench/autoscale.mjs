#!/usr/bin/env node
// Autoscale bench P7 (issue 12), on the process backend, one real `infergate server` with
// --autoscale-interval 1 --autoscale-idle 2:
//   load step   a fresh endpoint per run with bench/fixtures/autoscale/deployment.yml (target_utilization,
//               min 1, max 3, polling_interval 1, target 50 %, 4 slots per instance; score.py sleeps 50 ms
//               and answers with the id of the instance that ran it). After a warm-up that notes the
//               instance serving, BENCH_CLIENTS (8) closed-loop clients start at once against the scoring
//               URI; the figure is the time from that step to the first 200 whose instance id is new.
//               Goal <= 10 s. Every answer during the step must be a 200 (the fixture keeps 429 out).
//   cold start  the same deployment with min_instances 0 on one endpoint: wait until it runs no instance
//               (infergate_ready_instances 0 on /metrics and the last instance's process gone), then POST
//               one request and time it to its 200 (it waits while an instance starts). Each run starts
//               from zero again after the 2 s idle period.
// The last lines printed are exactly:
//   bench-autoscale: load_step_to_new_instance_ms_median=X runs=R
//   bench-autoscale: cold_start_ms_median=Y runs=R
// Needs: npm run build, python3 (Debian's). env: BENCH_RUNS (5), BENCH_CLIENTS (8), BENCH_KEEP=1 keeps the
// temp dir (server log in it).
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const DEPLOYMENT = join(ROOT, 'bench', 'fixtures', 'autoscale', 'deployment.yml');
const BODY = '{"data": [[1, 2, 3]]}';
const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const runs = num(process.env.BENCH_RUNS, 5);
const clients = num(process.env.BENCH_CLIENTS, 8);
// Bounds only against a hang: far above the goal.
const STEP_LIMIT_MS = 60_000;
const ZERO_LIMIT_MS = 60_000;
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const run = promisify(execFile);
const tick = (ms) => new Promise((r) => setTimeout(r, ms));

const home = mkdtempSync(join(tmpdir(), 'infergate-autoscale-bench-'));
const env = { ...process.env, INFERGATE_HOME: home };
delete env.INFERGATE_URL;
delete env.INFERGATE_TOKEN;
const cli = (...args) => run(process.execPath, [BIN, ...args], { env });

// The server's log, kept in the temp dir and scanned for the autoscaler's decisions (a breakdown of the
// figure: decision vs instance start).
const logFd = openSync(join(home, 'server.log'), 'w');
const decisions = [];
const server = spawn(process.execPath, [BIN, 'server', '--backend', 'process', '--port', '0', '--router-port', '0', '--autoscale-interval', '1', '--autoscale-idle', '2'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
let pending = '';
const onLog = (c) => {
  writeSync(logFd, c);
  pending += c.toString();
  const lines = pending.split('\n');
  pending = lines.pop();
  for (const line of lines) if (/scale out|scaled to zero|starting \d+ instance\(s\) from zero/.test(line)) decisions.push({ at: performance.now(), line });
};
server.stderr.on('data', onLog);
await new Promise((res, rej) => {
  let out = '';
  server.stdout.on('data', (c) => {
    onLog(c);
    out += c;
    if (out.includes('backend:')) res();
  });
  server.once('exit', (code) => rej(new Error(`the server exited (${code}); see ${home}/server.log`)));
});
const { url: apiUrl } = JSON.parse(readFileSync(join(home, 'server.json'), 'utf8'));
const ownerToken = readFileSync(join(home, 'owner.token'), 'utf8').trim();

async function deploy(endpoint, ...sets) {
  await cli('online-endpoint', 'create', '-n', endpoint, '-o', 'none');
  await cli('online-deployment', 'create', '-f', DEPLOYMENT, '--set', `endpoint_name=${endpoint}`, ...sets.flatMap((s) => ['--set', s]), '--all-traffic', '-o', 'none');
  const key = (await cli('online-endpoint', 'get-credentials', '-n', endpoint, '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
  const uri = (await cli('online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri')).stdout.trim();
  return { endpoint, key, uri };
}

async function score(t) {
  const r = await fetch(t.uri, { method: 'POST', body: BODY, headers: { authorization: `Bearer ${t.key}`, 'content-type': 'application/json' } });
  const text = await r.text();
  if (r.status !== 200) return { status: r.status, text };
  const { instance, pid } = JSON.parse(text);
  return { status: 200, instance, pid };
}

async function readyInstances(endpoint) {
  const r = await fetch(`${apiUrl}/metrics`, { headers: { authorization: `Bearer ${ownerToken}` } });
  const text = await r.text();
  const line = text.split('\n').find((l) => l.startsWith(`infergate_ready_instances{endpoint="${endpoint}",deployment="blue"}`));
  return line === undefined ? undefined : Number(line.split(' ').pop());
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

/** One load step: ms from the step to the first 200 answered by an instance not serving before it. */
async function loadStep(i) {
  const t = await deploy(`bench-as-${i}`);
  const before = new Set();
  for (let k = 0; k < 5; k++) {
    const a = await score(t);
    if (a.status !== 200) throw new Error(`warm-up: ${a.status} ${a.text}`);
    before.add(a.instance);
  }
  const statuses = new Map();
  let answers = 0;
  let done = false;
  let found;
  const t0 = performance.now();
  const client = async () => {
    while (!done) {
      const a = await score(t);
      answers++;
      statuses.set(a.status, (statuses.get(a.status) ?? 0) + 1);
      if (a.status === 200 && !before.has(a.instance) && found === undefined) {
        found = { ms: performance.now() - t0, instance: a.instance };
        done = true;
      }
      if (performance.now() - t0 > STEP_LIMIT_MS) done = true;
    }
  };
  await Promise.all(Array.from({ length: clients }, client));
  if (found === undefined) throw new Error(`run ${i + 1}: no new instance answered within ${STEP_LIMIT_MS} ms; see ${home}/server.log`);
  const decided = decisions.find((d) => d.at >= t0 && d.line.includes(`${t.endpoint}/blue`) && d.line.includes('scale out'));
  const failed = [...statuses].filter(([s]) => s !== 200).map(([s, n]) => `${n}×${s}`);
  console.log(`load step ${i + 1}: new instance ${found.instance} answered after ${found.ms.toFixed(0)} ms` +
    (decided ? ` (scale-out decided at ${(decided.at - t0).toFixed(0)} ms)` : '') +
    `; ${answers} answers, ${failed.length ? `not 200: ${failed.join(', ')}` : 'all 200'}`);
  await cli('online-endpoint', 'delete', '-n', t.endpoint, '--yes');
  if (failed.length) throw new Error(`run ${i + 1}: requests failed during the load step: ${failed.join(', ')}`);
  return found.ms;
}

/** Waits until the deployment runs no instance: none ready, and the last one's process has exited. */
async function waitForZero(t, lastPid) {
  const deadline = performance.now() + ZERO_LIMIT_MS;
  while ((await readyInstances(t.endpoint)) !== 0 || (lastPid !== undefined && alive(lastPid))) {
    if (performance.now() > deadline) throw new Error(`${t.endpoint}: not at zero instances within ${ZERO_LIMIT_MS} ms; see ${home}/server.log`);
    await tick(50);
  }
}

let failure;
const steps = [];
const colds = [];
try {
  for (let i = 0; i < runs; i++) steps.push(await loadStep(i));

  const t = await deploy('bench-as-cold', 'scale_settings.min_instances=0');
  const first = await score(t);
  if (first.status !== 200) throw new Error(`cold-start deployment: ${first.status} ${first.text}`);
  let lastPid = first.pid;
  for (let i = 0; i < runs; i++) {
    await waitForZero(t, lastPid);
    const t0 = performance.now();
    const a = await score(t);
    const ms = performance.now() - t0;
    if (a.status !== 200) throw new Error(`cold start ${i + 1}: ${a.status} ${a.text}`);
    // The request itself must have started the instance, or this was not a start from zero.
    if (!decisions.some((d) => d.at >= t0 && d.line.includes(`${t.endpoint}/blue`) && d.line.includes('from zero'))) {
      throw new Error(`cold start ${i + 1}: the server did not log a start from zero for the request`);
    }
    lastPid = a.pid;
    colds.push(ms);
    console.log(`cold start ${i + 1}: 200 after ${ms.toFixed(0)} ms (instance ${a.instance})`);
  }
  await cli('online-endpoint', 'delete', '-n', t.endpoint, '--yes');
} catch (e) {
  failure = e;
} finally {
  if (server.exitCode === null) {
    server.kill('SIGTERM');
    await new Promise((r) => server.once('exit', r));
  }
  if (process.env.BENCH_KEEP === '1' || failure) console.error(`bench-autoscale: kept ${home}`);
  else rmSync(home, { recursive: true, force: true });
}
if (failure) {
  console.error(`bench-autoscale: ${failure.message}`);
  process.exit(1);
}
console.log(`bench-autoscale: load_step_to_new_instance_ms_median=${median(steps).toFixed(0)} runs=${steps.length}`);
console.log(`bench-autoscale: cold_start_ms_median=${median(colds).toFixed(0)} runs=${colds.length}`);
