#!/usr/bin/env node
// The router over TLS (issue 9, item 3: "HTTP/1.1 over TLS must keep the router's performance
// character"). One run, on loopback, interleaved round by round, wrk -t1 closed loop:
//   direct-http   bench/direct-server.mjs (bare node:http + the scoring module in process)
//   router-http   a real `infergate server` (key auth, one deployment, blue=100), plain HTTP
//   direct-https  the same direct server on node:https, with the same certificate as the router
//   router-https  a second `infergate server --tls-dev` (the same endpoint and deployment), HTTPS
// Summary (last line): bench-tls: router/direct_https=R1 router/direct_http=R2 tls_cost_router=C1 tls_cost_direct=C2
// where tls_cost_X = X over HTTPS / X over HTTP (throughput). wrk keeps its connections open for the whole
// run, so this measures TLS record processing (AES-GCM both ways), not handshakes; the handshakes
// (ECDSA P-256) are timed separately with -c1 runs that reconnect on every request (Connection: close).
// Results go to bench/results/tls-<timestamp>.json. Separate from bench/run.mjs so its phases and
// results stay as they are.
//
// env: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_WARMUP (2), BENCH_CONNS (32), BENCH_REGIME (pinned | free)
import { execFile, execFileSync, spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const BENCH = import.meta.dirname;
const ROOT = resolve(BENCH, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const POST_LUA = join(BENCH, 'wrk', 'post.lua');
const ENDPOINT = 'bench-tls';
const env = process.env;
const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const has = (bin) => {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
const cfg = {
  rounds: Math.max(1, Math.floor(num(env.BENCH_ROUNDS, 3))),
  seconds: Math.max(1, num(env.BENCH_SECONDS, 5)),
  warmup: Math.max(0, num(env.BENCH_WARMUP, 2)),
  conns: Math.max(1, Math.floor(num(env.BENCH_CONNS, 32))),
  regime: env.BENCH_REGIME ?? (has('taskset') && cpus().length >= 2 ? 'pinned' : 'free'),
};
const log = (...a) => console.log(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter(Number.isFinite).sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length === 0 ? NaN : s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'nan');
const fmt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');

// Every process we start runs in its own group and is stopped at exit, even on error.
const started = [];
function track(name, cmd, args, opts = {}) {
  const [c, a] = cfg.regime === 'pinned' ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args];
  const child = spawn(c, a, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const e = { name, child, out: '', err: '' };
  child.stdout.on('data', (d) => (e.out += d));
  child.stderr.on('data', (d) => (e.err = (e.err + d).slice(-100_000)));
  started.push(e);
  return e;
}
async function stopAll() {
  for (const e of started.reverse()) {
    if (e.child.exitCode !== null || e.child.signalCode !== null) continue;
    const exited = new Promise((r) => e.child.once('exit', r));
    try {
      process.kill(e.child.pid, 'SIGTERM');
    } catch {}
    await Promise.race([exited, sleep(8000)]);
    try {
      process.kill(-e.child.pid, 'SIGKILL');
    } catch {}
  }
}
async function waitFor(e, re, ms) {
  const end = Date.now() + ms;
  for (;;) {
    const m = e.out.match(re);
    if (m) return m;
    if (e.child.exitCode !== null || Date.now() > end) throw new Error(`${e.name} did not start:\n${e.out}\n${e.err}`);
    await sleep(50);
  }
}
const run = (cmd, args, opts = {}) =>
  new Promise((r) => execFile(cmd, args, { maxBuffer: 64 << 20, ...opts }, (err, stdout, stderr) => r({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr })));

async function wrk(url, { conns, secs, auth, close = false }) {
  const args = ['-t1', `-c${conns}`, `-d${secs}s`, '--timeout', '5s', '--latency', '-s', POST_LUA, ...(close ? ['-H', 'Connection: close'] : []), url];
  const [cmd, full] = cfg.regime === 'pinned' ? ['taskset', ['-c', '1', 'wrk', ...args]] : ['wrk', args];
  const r = await run(cmd, full, { env: { ...env, BENCH_AUTH: auth }, timeout: (secs + 30) * 1000 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  if (!line) throw new Error(`wrk failed on ${url}:\n${r.stdout}\n${r.stderr}`);
  const j = JSON.parse(line.slice(8));
  return { ...j, p50: j.p50_us, p99: j.p99_us, errors: j.err_connect + j.err_read + j.err_write + j.err_status + j.err_timeout };
}

async function main() {
  if (!has('wrk')) throw new Error('wrk is needed (apt-get install wrk); it speaks TLS (OpenSSL) as well as plain HTTP');
  const tmp = mkdtempSync(join(tmpdir(), 'infergate-bench-tls-'));
  try {
    const code = join(tmp, 'code');
    mkdirSync(code, { recursive: true });
    copyFileSync(join(BENCH, 'fixtures', 'score.mjs'), join(code, 'score.mjs'));
    writeFileSync(join(code, 'blue.yml'), `name: blue\nendpoint_name: ${ENDPOINT}\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings: {max_concurrent_requests_per_instance: 1000}\n`);

    // Two infergate servers, each with the endpoint and its deployment: plain, and --tls-dev.
    const routers = {};
    for (const [id, extra] of [['http', []], ['https', ['--tls-dev']]]) {
      const home = join(tmp, `home-${id}`);
      const cliEnv = { ...env, INFERGATE_HOME: home };
      delete cliEnv.INFERGATE_URL;
      delete cliEnv.INFERGATE_TOKEN;
      const cli = async (...args) => {
        const r = await run(process.execPath, [BIN, ...args], { env: cliEnv });
        if (r.code !== 0) throw new Error(`infergate ${args.join(' ')}: ${r.stderr}`);
        return r.stdout.trim();
      };
      const s = track(`infergate-${id}`, process.execPath, [BIN, 'server', '--port', '0', '--router-port', '0', ...extra], { env: cliEnv });
      await waitFor(s, /router:/, 30_000);
      await cli('online-endpoint', 'create', '-n', ENDPOINT, '-o', 'none');
      await cli('online-deployment', 'create', '-f', join(code, 'blue.yml'), '--all-traffic', '-o', 'none');
      routers[id] = {
        home,
        url: await cli('online-endpoint', 'show', '-n', ENDPOINT, '-o', 'tsv', '--query', 'scoring_uri'),
        auth: `Bearer ${await cli('online-endpoint', 'get-credentials', '-n', ENDPOINT, '-o', 'tsv', '--query', 'primaryKey')}`,
      };
    }
    const tlsDir = join(routers.https.home, 'tls');
    const directs = {};
    for (const [id, extra] of [['http', []], ['https', ['--tls-cert', join(tlsDir, 'server.pem'), '--tls-key', join(tlsDir, 'server-key.pem')]]]) {
      const d = track(`direct-${id}`, process.execPath, [join(BENCH, 'direct-server.mjs'), '--port', '0', ...extra]);
      const port = Number((await waitFor(d, /listening (\d+)/, 15_000))[1]);
      directs[id] = `${id}://127.0.0.1:${port}/score`;
    }
    const scenarios = [
      { id: 'direct-http', url: directs.http, auth: 'Bearer none' },
      { id: 'router-http', ...routers.http },
      { id: 'direct-https', url: directs.https, auth: 'Bearer none' },
      { id: 'router-https', ...routers.https },
    ];
    for (const s of scenarios) {
      const ok = await run('curl', ['-sk', '-o', '/dev/null', '-w', '%{http_code}', '-H', `Authorization: ${s.auth}`, '-H', 'content-type: application/json', '--data', '{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}', s.url]);
      if (ok.stdout !== '200') throw new Error(`${s.id} (${s.url}) answered ${ok.stdout}`);
    }
    log(`bench-tls: regime ${cfg.regime}, ${cfg.rounds} rounds x ${cfg.seconds} s, wrk -t1 -c${cfg.conns}; router https ${routers.https.url}`);

    const results = Object.fromEntries(scenarios.map((s) => [s.id, { rps: [], p50_ms: [], p99_ms: [], errors: 0 }]));
    const handshakes = Object.fromEntries(scenarios.map((s) => [s.id, []]));
    for (const s of scenarios) await wrk(s.url, { conns: cfg.conns, secs: cfg.warmup, auth: s.auth });
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of scenarios) {
        const w = await wrk(s.url, { conns: cfg.conns, secs: cfg.seconds, auth: s.auth });
        const x = results[s.id];
        x.rps.push(w.rps);
        x.p50_ms.push(w.p50 / 1000);
        x.p99_ms.push(w.p99 / 1000);
        x.errors += w.errors ?? 0;
        log(`  round ${r + 1} ${s.id.padEnd(13)} ${fmt(w.rps).padStart(7)} rps  p50 ${(w.p50 / 1000).toFixed(2)} ms  p99 ${(w.p99 / 1000).toFixed(2)} ms${w.errors ? `  ERRORS ${w.errors}` : ''}`);
      }
      // A new connection per request: the handshake's cost (one client, so it is latency, not capacity).
      for (const s of scenarios) {
        const w = await wrk(s.url, { conns: 1, secs: 2, auth: s.auth, close: true });
        handshakes[s.id].push(w.rps);
      }
    }
    const m = (id, k) => median(results[id][k]);
    const summary = {
      router_over_direct_https: m('router-https', 'rps') / m('direct-https', 'rps'),
      router_over_direct_http: m('router-http', 'rps') / m('direct-http', 'rps'),
      tls_cost_router: m('router-https', 'rps') / m('router-http', 'rps'),
      tls_cost_direct: m('direct-https', 'rps') / m('direct-http', 'rps'),
      added_p50_ms_https: m('router-https', 'p50_ms') - m('direct-https', 'p50_ms'),
      new_connection_per_request_rps: Object.fromEntries(Object.entries(handshakes).map(([k, v]) => [k, Math.round(median(v))])),
    };
    log('');
    log('scenario        rps (median)   p50 ms   p99 ms   [rps per round]');
    for (const s of scenarios) log(`  ${s.id.padEnd(13)} ${fmt(m(s.id, 'rps')).padStart(10)}   ${f2(m(s.id, 'p50_ms')).padStart(6)}   ${f2(m(s.id, 'p99_ms')).padStart(6)}   [${results[s.id].rps.map(fmt).join(' ')}]`);
    log(`  one connection per request (handshake each time), rps: ${JSON.stringify(summary.new_connection_per_request_rps)}`);
    mkdirSync(join(BENCH, 'results'), { recursive: true });
    const file = join(BENCH, 'results', `tls-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
    writeFileSync(file, JSON.stringify({ date: new Date().toISOString(), node: process.version, cpus: cpus().length, config: cfg, results, handshakes, summary }, null, 2));
    log(`results: ${file.slice(ROOT.length + 1)}`);
    log(`bench-tls: router/direct_https=${f2(summary.router_over_direct_https)} router/direct_http=${f2(summary.router_over_direct_http)} tls_cost_router=${f2(summary.tls_cost_router)} tls_cost_direct=${f2(summary.tls_cost_direct)}`);
  } finally {
    await stopAll();
    rmSync(tmp, { recursive: true, force: true });
  }
}

for (const sig of ['SIGINT', 'SIGTERM']) process.once(sig, () => stopAll().then(() => process.exit(130)));
main().catch(async (e) => {
  console.error(`bench-tls: ${e.stack ?? e}`);
  await stopAll();
  process.exit(1);
});
