// The studio must not slow scoring (issue 15): router throughput and latency with a browser watching the
// endpoint's live charts (Monitoring page, one server-sent event stream, a redraw a second) against the
// same load with no browser, interleaved round by round so that drift on the machine hits both alike.
// A real server (process backend), the bench's JS scoring module, wrk -t1 closed loop; Debian's chromium
// driven by playwright-core, headless.
// Usage: node bench/studio.mjs [--rounds 3] [--seconds 10] [--conns 16]
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const POST_LUA = join(ROOT, 'bench', 'wrk', 'post.lua');
const arg = (name, def) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const cfg = { rounds: arg('rounds', 3), seconds: arg('seconds', 10), conns: arg('conns', 16) };
const CHROMIUM = process.env.INFERGATE_CHROMIUM ?? '/usr/bin/chromium';
const run = promisify(execFile);
const home = mkdtempSync(join(tmpdir(), 'infergate-bench-studio-'));
const env = { ...process.env, INFERGATE_HOME: home, INFERGATE_BACKEND: 'process' };
delete env.INFERGATE_URL;
delete env.INFERGATE_TOKEN;
const cli = async (...args) => (await run(process.execPath, [BIN, ...args], { env })).stdout;
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function wrk(url, auth) {
  const r = await run('wrk', ['-t1', `-c${cfg.conns}`, `-d${cfg.seconds}s`, '--timeout', '5s', '--latency', '-s', POST_LUA, url], { env: { ...env, BENCH_AUTH: auth }, timeout: (cfg.seconds + 30) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk printed no result:\n${r.stdout}\n${r.stderr}`);
  return JSON.parse(line.slice('WRKJSON '.length));
}

const server = spawn(process.execPath, [BIN, 'server', '--port', '0', '--router-port', '0', '--backend', 'process'], { env, stdio: ['ignore', 'pipe', 'ignore'] });
let browser;
try {
  await new Promise((ok, fail) => {
    let out = '';
    server.stdout.on('data', (c) => (out += c) && out.includes('router:') && ok());
    server.once('exit', (code) => fail(new Error(`server exited with ${code}`)));
  });
  const code = join(home, 'code');
  mkdirSync(code, { recursive: true });
  copyFileSync(join(ROOT, 'bench', 'fixtures', 'score.mjs'), join(code, 'score.mjs'));
  writeFileSync(join(code, 'blue.yml'),
    'name: blue\nendpoint_name: bench-studio\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n' +
    'request_settings: {max_concurrent_requests_per_instance: 64}\n');
  await cli('online-endpoint', 'create', '-n', 'bench-studio', '-o', 'none');
  await cli('online-deployment', 'create', '-f', join(code, 'blue.yml'), '--all-traffic', '-o', 'none');
  const key = (await cli('online-endpoint', 'get-credentials', '-n', 'bench-studio', '-o', 'tsv', '--query', 'primaryKey')).trim();
  const uri = (await cli('online-endpoint', 'show', '-n', 'bench-studio', '-o', 'tsv', '--query', 'scoring_uri')).trim();
  const login = (await cli('studio')).trim();

  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await (await browser.newContext({ viewport: { width: 1360, height: 900 } })).newPage();
  await page.goto(login);
  await page.getByTestId('role').waitFor();
  const watch = async () => {
    await page.goto(login.replace(/\/studio\/login.*$/, `/#/endpoints/bench-studio/monitoring`));
    await page.getByText('Live (updated every second)').waitFor();
  };
  // Without: the page is somewhere that polls nothing and streams nothing.
  const leave = () => page.goto('about:blank');

  await wrk(uri, `Bearer ${key}`); // warm-up (JIT, connections)
  const results = { without: [], with: [] };
  for (let r = 0; r < cfg.rounds; r++) {
    for (const mode of r % 2 === 0 ? ['without', 'with'] : ['with', 'without']) {
      if (mode === 'with') await watch();
      else await leave();
      const w = await wrk(uri, `Bearer ${key}`);
      const errors = w.err_connect + w.err_read + w.err_write + w.err_status + w.err_timeout;
      results[mode].push(w);
      console.log(`round ${r + 1} ${mode.padEnd(7)} browser: ${w.rps.toFixed(0)} req/s, p50 ${(w.p50_us / 1000).toFixed(2)} ms, p99 ${(w.p99_us / 1000).toFixed(2)} ms${errors ? `, ${errors} errors` : ''}`);
    }
  }
  const m = (mode, k) => median(results[mode].map((w) => w[k]));
  const ratio = m('with', 'rps') / m('without', 'rps');
  console.log(`\nmedian of ${cfg.rounds} x ${cfg.seconds} s, wrk -t1 -c${cfg.conns}:`);
  console.log(`  without browser: ${m('without', 'rps').toFixed(0)} req/s, p99 ${(m('without', 'p99_us') / 1000).toFixed(2)} ms`);
  console.log(`  charts watched:  ${m('with', 'rps').toFixed(0)} req/s, p99 ${(m('with', 'p99_us') / 1000).toFixed(2)} ms`);
  console.log(`  ratio (with / without): ${ratio.toFixed(3)}`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'studio.json'), JSON.stringify({ cfg, results, ratio }, null, 2) + '\n');
} finally {
  await browser?.close();
  server.kill('SIGTERM');
  await new Promise((r) => (server.exitCode !== null ? r() : server.once('exit', r)));
  rmSync(home, { recursive: true, force: true });
}
