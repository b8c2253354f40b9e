// Issue 8's figures, against a real `infergate server` (router and control plane in one process, a JS
// instance host beside it), on loopback only, bounded in count and time:
//   1. fds of the server process before and after 20,000 `GARBAGE\r\n\r\n` requests, and that it still serves;
//   2. peak RSS of the server process while 20 clients upload 50 MB bodies at once (default limits), and
//      what they were answered;
//   3. CPU of the server process per small scoring request (keep-alive, 8 connections), so the hot path
//      can be compared with an earlier build.
//
//   node bench/router-reliability.mjs                      # this checkout's dist/
//   RELIABILITY_ROOT=/path/to/other/checkout node bench/router-reliability.mjs   # another build
//   RELIABILITY_SKIP=rss node bench/router-reliability.mjs # skip a part: fd, rss, cpu

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = process.env.RELIABILITY_ROOT ?? dirname(dirname(fileURLToPath(import.meta.url)));
const BIN = join(ROOT, 'bin', 'infergate.js');
const skip = new Set((process.env.RELIABILITY_SKIP ?? '').split(',').filter(Boolean));
const tmp = mkdtempSync(join(tmpdir(), 'infergate-reliability-'));
const env = { ...process.env, INFERGATE_HOME: join(tmp, 'ws') };
const cli = (...args) => execFileSync(process.execPath, [BIN, ...args], { env, encoding: 'utf8' }).trim();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const code = join(tmp, 'code');
mkdirSync(code);
// Answers the body's length: a 50 MB upload costs the instance little.
writeFileSync(join(code, 'score.mjs'), 'export function init() {}\nexport function run(raw) { return raw.length; }\n');
// blue: Azure's default max_concurrent_requests_per_instance (1); green: 1000 (nothing waits).
for (const [name, mc] of [['blue', 1], ['green', 1000]]) {
  writeFileSync(join(code, `${name}.yml`), `name: ${name}\nendpoint_name: rel-ep\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings: {max_concurrent_requests_per_instance: ${mc}}\n`);
}

const server = spawn(process.execPath, [BIN, 'server', '--port', '0', '--router-port', '0', '--no-traffic-log'], { env, stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (c) => {
    out += c;
    if (/router:/.test(out)) resolve();
  });
  server.on('exit', (c) => reject(new Error(`server exited ${c}`)));
});
const pid = server.pid;
const fds = () => readdirSync(`/proc/${pid}/fd`).length;
const rssMb = () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))[1]) / 1024;
const cpuMs = () => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100; // utime + stime, in clock ticks of 10 ms
};

function score(port, path, key, body, agent, deployment) {
  return new Promise((resolve) => {
    const headers = { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'content-length': body.length };
    if (deployment !== undefined) headers['azureml-model-deployment'] = deployment;
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers }, (res) => {
      let text = '';
      res.on('data', (c) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode, text }));
    });
    req.on('error', (e) => resolve({ status: 0, text: e.code }));
    req.end(body);
  });
}

try {
  cli('online-endpoint', 'create', '-n', 'rel-ep', '-o', 'none');
  cli('online-deployment', 'create', '-f', join(code, 'blue.yml'), '--all-traffic', '-o', 'none');
  cli('online-deployment', 'create', '-f', join(code, 'green.yml'), '-o', 'none');
  const key = cli('online-endpoint', 'get-credentials', '-n', 'rel-ep', '-o', 'tsv', '--query', 'primaryKey');
  const uri = new URL(cli('online-endpoint', 'show', '-n', 'rel-ep', '-o', 'tsv', '--query', 'scoring_uri'));
  const port = Number(uri.port);
  const path = uri.pathname;
  console.log(`server pid ${pid}, router port ${port}`);

  if (!skip.has('fd')) {
    const before = fds();
    const t0 = Date.now();
    let next = 0;
    let answered = 0;
    const N = 20_000;
    await Promise.all(
      Array.from({ length: 200 }, async () => {
        while (next < N && Date.now() - t0 < 120_000) {
          next++;
          await new Promise((resolve) => {
            const c = connect(port, '127.0.0.1', () => c.write('GARBAGE\r\n\r\n'));
            c.on('data', () => answered++);
            c.on('error', () => resolve());
            c.on('close', () => resolve());
            setTimeout(() => c.destroy(), 10_000).unref();
          });
        }
      }),
    );
    const sent = Date.now() - t0;
    const justAfter = fds();
    await sleep(3500);
    const after = fds();
    const ok = await score(port, path, key, Buffer.from('{"data":[1]}'));
    console.log(`fd: ${before} before, ${justAfter} right after ${next} GARBAGE requests (${sent} ms, ${answered} answers read), ${after} 3.5 s later; then a scoring request: ${ok.status}`);
  }

  for (const deployment of skip.has('rss') ? [] : ['blue', 'green']) {
    const before = rssMb();
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rssMb())), 20);
    const body = Buffer.alloc(50 * 1000 * 1000, ' ');
    body.write('"x"');
    const agent = new Agent({ keepAlive: false, maxSockets: 100 });
    const t0 = Date.now();
    const results = await Promise.all(Array.from({ length: 20 }, () => score(port, path, key, body, agent, deployment)));
    clearInterval(sampler);
    const statuses = {};
    for (const r of results) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    await sleep(1500);
    console.log(`rss (${deployment}, max_concurrent_requests_per_instance ${deployment === 'blue' ? 1 : 1000}): ${before.toFixed(0)} MB before, peak ${peak.toFixed(0)} MB during 20 concurrent 50 MB uploads (${Date.now() - t0} ms), ${rssMb().toFixed(0)} MB 1.5 s after; answers ${JSON.stringify(statuses)}`);
  }

  if (!skip.has('cpu')) {
    const body = Buffer.from('{"data":[[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}');
    const agent = new Agent({ keepAlive: true, maxSockets: 8 });
    const N = Number(process.env.RELIABILITY_REQUESTS ?? 20_000);
    await Promise.all(Array.from({ length: 8 }, () => score(port, path, key, body, agent, 'green'))); // warm up
    for (let round = 0; round < 2; round++) {
      const c0 = cpuMs();
      const t0 = Date.now();
      let next = 0;
      let failed = 0;
      await Promise.all(
        Array.from({ length: 8 }, async () => {
          while (next < N) {
            next++;
            if ((await score(port, path, key, body, agent, 'green')).status !== 200) failed++;
          }
        }),
      );
      const ms = Date.now() - t0;
      console.log(`cpu: ${(((cpuMs() - c0) * 1000) / N).toFixed(1)} µs of server CPU per request (${N} requests, ${failed} not 200, ${(N / (ms / 1000)).toFixed(0)} req/s)`);
    }
    agent.destroy();
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
  rmSync(tmp, { recursive: true, force: true });
}
