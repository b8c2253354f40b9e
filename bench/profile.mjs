// Where the router spends its CPU: starts a real `infergate server` (and its instance hosts) under
// `node --cpu-prof`, deploys the benchmark endpoint (bench/fixtures/score.mjs, blue=90 green=10, key
// auth), drives it with `wrk -t1 -c32` for PROFILE_SECONDS, stops the server and prints the functions
// with the most self time, per process. The profiles stay in the printed folder (open them in Chrome
// DevTools or speedscope).
//
//   node bench/profile.mjs                 # 10 s
//   PROFILE_SECONDS=20 PROFILE_MIRROR=1 node bench/profile.mjs
//   PROFILE_SERVER_ARGS=--no-traffic-log node bench/profile.mjs

import { execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BENCH = dirname(fileURLToPath(import.meta.url));
const ROOT = dirname(BENCH);
const BIN = join(ROOT, 'bin', 'infergate.js');
const seconds = Number(process.env.PROFILE_SECONDS ?? 10);
const tmp = mkdtempSync(join(tmpdir(), 'infergate-profile-'));
const profDir = join(tmp, 'profiles');
const profArgs = ['--cpu-prof', `--cpu-prof-dir=${profDir}`];
const env = { ...process.env, INFERGATE_HOME: join(tmp, 'ws'), INFERGATE_HOST_NODE_ARGS: profArgs.join(' ') };
const cliEnv = { ...process.env, INFERGATE_HOME: join(tmp, 'ws') };
const cli = (...args) => execFileSync(process.execPath, [BIN, ...args], { env: cliEnv, encoding: 'utf8' }).trim();

const code = join(tmp, 'code');
execFileSync('mkdir', ['-p', code]);
copyFileSync(join(BENCH, 'fixtures', 'score.mjs'), join(code, 'score.mjs'));
for (const name of ['blue', 'green']) {
  writeFileSync(join(code, `${name}.yml`), `name: ${name}\nendpoint_name: bench-ep\ncode_configuration: {code: ./, scoring_script: score.mjs}\n` +
    `instance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings: {max_concurrent_requests_per_instance: 1000}\n`);
}

const server = spawn(process.execPath, [...profArgs, BIN, 'server', '--port', '0', '--router-port', '0', ...(process.env.PROFILE_SERVER_ARGS ?? '').split(' ').filter(Boolean)], { env, stdio: ['ignore', 'pipe', 'inherit'] });
await new Promise((resolve, reject) => {
  let out = '';
  server.stdout.on('data', (c) => { out += c; if (/router:/.test(out)) resolve(); });
  server.on('exit', (c) => reject(new Error(`server exited ${c}`)));
});
try {
  cli('online-endpoint', 'create', '-n', 'bench-ep', '-o', 'none');
  cli('online-deployment', 'create', '-f', join(code, 'blue.yml'), '--all-traffic', '-o', 'none');
  cli('online-deployment', 'create', '-f', join(code, 'green.yml'), '-o', 'none');
  if (process.env.PROFILE_MIRROR === '1') cli('online-endpoint', 'update', '-n', 'bench-ep', '--mirror-traffic', 'green=10', '-o', 'none');
  else cli('online-endpoint', 'update', '-n', 'bench-ep', '--traffic', 'blue=90 green=10', '-o', 'none');
  const key = cli('online-endpoint', 'get-credentials', '-n', 'bench-ep', '-o', 'tsv', '--query', 'primaryKey');
  const uri = cli('online-endpoint', 'show', '-n', 'bench-ep', '-o', 'tsv', '--query', 'scoring_uri');
  const wrk = execFileSync('wrk', ['-t1', '-c32', `-d${seconds}s`, '-s', join(BENCH, 'wrk', 'post.lua'), uri], { env: { ...process.env, BENCH_AUTH: `Bearer ${key}` }, encoding: 'utf8' });
  console.log(wrk.split('\n').filter((l) => /Requests\/sec|Latency|Non-2xx/.test(l)).join('\n'));
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
}

// Self time per function, per profile (the big ones: the server and its instance hosts).
const files = readdirSync(profDir).map((f) => join(profDir, f)).filter((f) => statSync(f).size > 50_000);
for (const file of files) {
  const p = JSON.parse(readFileSync(file, 'utf8'));
  const self = new Map();
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const dt = p.timeDeltas;
  let total = 0;
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]);
    const f = n.callFrame;
    const name = `${f.functionName || '(anonymous)'} ${f.url.replace(/^.*\/(node_modules|src|dist|lib)\//, '$1/')}:${f.lineNumber + 1}`;
    self.set(name, (self.get(name) ?? 0) + dt[i]);
    total += dt[i];
  }
  const idle = [...self].filter(([k]) => k.startsWith('(idle)')).reduce((a, [, v]) => a + v, 0);
  console.log(`\n${file}: ${(total / 1e6).toFixed(1)} s sampled, ${(100 * (1 - idle / total)).toFixed(0)} % busy`);
  for (const [k, v] of [...self].filter(([k]) => !k.startsWith('(idle)')).sort((a, b) => b[1] - a[1]).slice(0, Number(process.env.PROFILE_TOP ?? 30))) console.log(`${(100 * v / (total - idle)).toFixed(1).padStart(5)} %  ${k}`);
}
console.log(`\nprofiles: ${profDir}`);
