// Create → first successful score (DESIGN.md budget: ≤ 3 s locally for a small sklearn model).
// Starts a real server, then N times: `infergate online-deployment create` of Azure's blue deployment
// (--no-wait), and POSTs the sample request to the scoring URI (pinned to the new deployment) every
// 10 ms until a 200. Also times the full `create --all-traffic` a user runs. Prints medians.
// Usage: node bench/create-to-score.mjs [runs=5]
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const SAMPLE = join(ROOT, 'examples', 'azureml', 'managed', 'sample');
const REQUEST = readFileSync(join(ROOT, 'examples', 'azureml', 'model-1', 'sample-request.json'));
const runs = Number(process.argv[2] ?? 5);
const home = mkdtempSync(join(tmpdir(), 'infergate-bench-'));
const env = { ...process.env, INFERGATE_HOME: home };
delete env.INFERGATE_URL;
const run = promisify(execFile);
const cli = (...args) => run(process.execPath, [BIN, ...args], { env });
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = spawn(process.execPath, [BIN, 'server', '--port', '0', '--router-port', '0'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
await new Promise((r) => server.stdout.on('data', (c) => c.toString().includes('router:') && r()));

const platform = [];
const userFacing = [];
try {
  for (let i = 0; i < runs; i++) {
    const e = `bench-${i}`;
    await cli('online-endpoint', 'create', '-n', e, '-o', 'none');
    const key = (await cli('online-endpoint', 'get-credentials', '-n', e, '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
    const uri = (await cli('online-endpoint', 'show', '-n', e, '-o', 'tsv', '--query', 'scoring_uri')).stdout.trim();
    const t0 = performance.now();
    await cli('online-deployment', 'create', '-n', 'blue', '-e', e, '-f', join(SAMPLE, 'blue-deployment.yml'), '--no-wait', '-o', 'none');
    for (;;) {
      const r = await fetch(uri, { method: 'POST', body: REQUEST, headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json', 'azureml-model-deployment': 'blue' } });
      await r.arrayBuffer();
      if (r.status === 200) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    platform.push(performance.now() - t0);

    const e2 = `bench-u-${i}`;
    await cli('online-endpoint', 'create', '-n', e2, '-o', 'none');
    const t1 = performance.now();
    await cli('online-deployment', 'create', '-n', 'blue', '-e', e2, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic', '-o', 'none');
    const key2 = (await cli('online-endpoint', 'get-credentials', '-n', e2, '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
    const r2 = await fetch(uri.replace(e, e2), { method: 'POST', body: REQUEST, headers: { authorization: `Bearer ${key2}`, 'content-type': 'application/json' } });
    if (r2.status !== 200) throw new Error(`first score after create --all-traffic: ${r2.status}`);
    userFacing.push(performance.now() - t1);
    await cli('online-endpoint', 'delete', '-n', e, '--yes');
    await cli('online-endpoint', 'delete', '-n', e2, '--yes');
    console.log(`run ${i + 1}: create → first 200 ${platform.at(-1).toFixed(0)} ms; create --all-traffic + first score ${userFacing.at(-1).toFixed(0)} ms`);
  }
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.once('exit', r));
  rmSync(home, { recursive: true, force: true });
}
console.log(`bench-create: create_to_first_200_ms_median=${median(platform).toFixed(0)} all_traffic_cli_ms_median=${median(userFacing).toFixed(0)} runs=${runs}`);
