#!/usr/bin/env node
// Docker backend benchmarks (issue 11), paired in one run on one machine:
//   P8  the same score.py through the router on the docker backend vs the process backend: two real
//       `infergate server`s (--backend process, --backend docker), each with Azure's model-1 blue deployment
//       (examples/azureml/managed/sample; the environment image is the conda file on top of
//       infergate-python:bookworm, tagged as Azure's image name), wrk -t1 -cN on each, interleaved round by
//       round after a warm-up; goal docker/process >= 0.95.
//   P4  create -> first 200 on the docker backend with the environment image warm (built once before):
//       `online-deployment create --no-wait`, then POST the sample request pinned to the new deployment
//       every 10 ms until a 200; goal <= 3 s. The process backend's figure is measured beside it.
// The last lines printed are exactly:
//   bench-docker: docker/process=X.XX (docker R req/s, process R req/s)
//   bench-docker: create_to_first_200_ms_median docker=D process=P
// Needs: npm run build, wrk, a Docker Engine and the image infergate-python:bookworm (scripts/setup.sh).
// env: BENCH_ROUNDS (5), BENCH_SECONDS (6), BENCH_WARMUP (2), BENCH_CONNS (16), BENCH_CREATES (5).
import { execFile, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const SAMPLE = join(ROOT, 'examples', 'azureml', 'managed', 'sample');
const REQUEST = readFileSync(join(ROOT, 'examples', 'azureml', 'model-1', 'sample-request.json'), 'utf8');
const CANONICAL = '[11055.977245525679, 4503.079536107787]';
const AZURE_IMAGE = 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest';
const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const cfg = {
  rounds: num(process.env.BENCH_ROUNDS, 5),
  seconds: num(process.env.BENCH_SECONDS, 6),
  warmup: num(process.env.BENCH_WARMUP, 2),
  conns: num(process.env.BENCH_CONNS, 16),
  creates: num(process.env.BENCH_CREATES, 5),
};
const run = promisify(execFile);
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

try {
  execFileSync('docker', ['image', 'inspect', 'infergate-python:bookworm'], { stdio: 'ignore' });
  execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
} catch {
  console.error('bench-docker: needs a Docker Engine, the image infergate-python:bookworm (scripts/setup.sh) and wrk');
  process.exit(2);
}
// What users do when their YAML names Azure's image and no registry is reachable (docs/backends.md).
execFileSync('docker', ['tag', 'infergate-python:bookworm', AZURE_IMAGE]);

const tmp = mkdtempSync(join(tmpdir(), 'infergate-docker-bench-'));
const lua = join(tmp, 'post.lua');
writeFileSync(lua, ['wrk.method = "POST"', `wrk.body = ${JSON.stringify(REQUEST)}`, 'wrk.headers["Content-Type"] = "application/json"', 'wrk.headers["Authorization"] = os.getenv("BENCH_AUTH")', ''].join('\n'));
const servers = [];

async function startServer(backend) {
  const home = join(tmp, backend);
  const env = { ...process.env, INFERGATE_HOME: home };
  delete env.INFERGATE_URL;
  delete env.INFERGATE_TOKEN;
  const child = spawn(process.execPath, [BIN, 'server', '--backend', backend, '--port', '0', '--router-port', '0'], { env, stdio: ['ignore', 'pipe', openSync(join(tmp, `${backend}.log`), 'w')] });
  servers.push(child);
  await new Promise((res, rej) => {
    let out = '';
    child.stdout.on('data', (c) => (out += c) && out.includes('backend:') && res());
    child.once('exit', (code) => rej(new Error(`the ${backend} server exited (${code}); see ${tmp}/${backend}.log`)));
  });
  const cli = (...args) => run(process.execPath, [BIN, ...args], { env });
  return { backend, cli };
}

async function deploy(s, endpoint) {
  await s.cli('online-endpoint', 'create', '-n', endpoint, '-f', join(SAMPLE, 'endpoint.yml'), '-o', 'none');
  await s.cli('online-deployment', 'create', '-n', 'blue', '-e', endpoint, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic', '--set', 'request_settings.max_concurrent_requests_per_instance=1000', '-o', 'none');
  const key = (await s.cli('online-endpoint', 'get-credentials', '-n', endpoint, '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
  const uri = (await s.cli('online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri')).stdout.trim();
  const r = await fetch(uri, { method: 'POST', body: REQUEST, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' } });
  const text = await r.text();
  if (r.status !== 200 || text !== CANONICAL) throw new Error(`${s.backend}: ${r.status} ${text}`);
  return { key, uri };
}

async function wrk(target, seconds) {
  const { stdout } = await run('wrk', ['-t1', `-c${cfg.conns}`, `-d${seconds}s`, '--latency', '-s', lua, target.uri], { env: { ...process.env, BENCH_AUTH: `Bearer ${target.key}` } });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  if (/Non-2xx|Socket errors/.test(stdout) || !Number.isFinite(rps)) throw new Error(`wrk was not clean:\n${stdout}`);
  return { rps, p99: /^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '?' };
}

async function createToFirst200(s, i) {
  const e = `bench-c-${i}`;
  await s.cli('online-endpoint', 'create', '-n', e, '-o', 'none');
  const key = (await s.cli('online-endpoint', 'get-credentials', '-n', e, '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
  const uri = (await s.cli('online-endpoint', 'show', '-n', e, '-o', 'tsv', '--query', 'scoring_uri')).stdout.trim();
  const t0 = performance.now();
  await s.cli('online-deployment', 'create', '-n', 'blue', '-e', e, '-f', join(SAMPLE, 'blue-deployment.yml'), '--no-wait', '-o', 'none');
  const deadline = t0 + 60_000;
  for (;;) {
    const r = await fetch(uri, { method: 'POST', body: REQUEST, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'azureml-model-deployment': 'blue' } });
    await r.arrayBuffer();
    if (r.status === 200) break;
    if (performance.now() > deadline) throw new Error(`${s.backend}: no 200 within 60 s (last ${r.status})`);
    await new Promise((res) => setTimeout(res, 10));
  }
  const ms = performance.now() - t0;
  await s.cli('online-endpoint', 'delete', '-n', e, '--yes');
  return ms;
}

try {
  const proc = await startServer('process');
  const dock = await startServer('docker');
  const targets = { process: await deploy(proc, 'bench-ep'), docker: await deploy(dock, 'bench-ep') };
  console.log(`bench-docker: wrk -t1 -c${cfg.conns}, ${cfg.rounds} rounds x ${cfg.seconds} s, warm-up ${cfg.warmup} s; model-1 score.py, WORKER_COUNT 1`);
  for (const b of ['process', 'docker']) await wrk(targets[b], cfg.warmup);
  const rps = { process: [], docker: [] };
  const ratios = [];
  for (let r = 0; r < cfg.rounds; r++) {
    // Alternate which goes first: the machine's drift falls on both alike.
    const order = r % 2 ? ['docker', 'process'] : ['process', 'docker'];
    const got = {};
    for (const b of order) got[b] = await wrk(targets[b], cfg.seconds);
    for (const b of order) rps[b].push(got[b].rps);
    ratios.push(got.docker.rps / got.process.rps);
    console.log(`round ${r + 1}: process ${got.process.rps.toFixed(0)} req/s (p99 ${got.process.p99}), docker ${got.docker.rps.toFixed(0)} req/s (p99 ${got.docker.p99}), ratio ${ratios.at(-1).toFixed(3)}`);
  }
  const created = { process: [], docker: [] };
  for (let i = 0; i < cfg.creates; i++) {
    for (const s of [proc, dock]) created[s.backend].push(await createToFirst200(s, i));
    console.log(`create ${i + 1}: docker ${created.docker.at(-1).toFixed(0)} ms, process ${created.process.at(-1).toFixed(0)} ms`);
  }
  console.log(`bench-docker: docker/process=${median(ratios).toFixed(2)} (docker ${median(rps.docker).toFixed(0)} req/s, process ${median(rps.process).toFixed(0)} req/s)`);
  console.log(`bench-docker: create_to_first_200_ms_median docker=${median(created.docker).toFixed(0)} process=${median(created.process).toFixed(0)}`);
} finally {
  for (const c of servers) if (c.exitCode === null) c.kill('SIGTERM');
  await Promise.all(servers.map((c) => (c.exitCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  rmSync(tmp, { recursive: true, force: true });
}
