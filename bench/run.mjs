#!/usr/bin/env node
// The router benchmark (DESIGN.md "Budgets"; issue #4 part 6). One run, on loopback, measures:
//   DIRECT         a bare Node HTTP server running the scoring module in process (bench/direct-server.mjs)
//   ROUTER         a real `infergate server`: endpoint (key auth), blue + green (1 instance each, same
//                  module), traffic blue=90 green=10
//   NGINX          Debian nginx doing the same job: key check, split_clients 90/10, keep-alive upstreams
//                  to two direct servers
//   ROUTER+MIRROR  the same router at traffic blue=100 with mirror_traffic green=10
//   ROUTER blue    the same router at traffic blue=100, no mirror (the baseline the mirror is compared to)
// with wrk (-t1, closed loop, max throughput), interleaved round by round, then at a fixed request rate
// (half of DIRECT's maximum in this run) for the latency budgets, then at one connection.
// The last line printed is the summary:
//   bench: router/direct=R1 router/nginx=R2 added_p99_ms=P mirror_p99_ratio=M
// Full results go to bench/results/<timestamp>.json. See bench/README.md.
//
// env: BENCH_ROUNDS (3), BENCH_SECONDS (5), BENCH_WARMUP (2), BENCH_CONNS (32), BENCH_RATE_SECONDS
//      (= BENCH_SECONDS), BENCH_C1_SECONDS (3; 0 skips the one-connection runs), BENCH_REGIME
//      (pinned | free; pinned when taskset exists and there are >= 2 CPUs), BENCH_MAX_CONCURRENT (1000:
//      the deployments' max_concurrent_requests_per_instance), BENCH_KEEP=1 keeps the temp directory,
//      BENCH_TRACE_GC=1 starts the infergate server with node --trace-gc and reports its GC pauses,
//      BENCH_SERVER_ARGS: extra arguments for `infergate server` (e.g. --no-traffic-log),
//      BENCH_WORKERS_PAIR=0 skips the router workers 1-vs-2 phase.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';

const BENCH = import.meta.dirname;
const ROOT = resolve(BENCH, '..');
// BENCH_BIN: another build's bin/infergate.js (a private build while dist/ is shared with other work).
const BIN = process.env.BENCH_BIN ? resolve(process.env.BENCH_BIN) : join(ROOT, 'bin', 'infergate.js');
const PROBE = join(BENCH, 'probe.mjs');
const POST_LUA = join(BENCH, 'wrk', 'post.lua');
const STATUS_LUA = join(BENCH, 'wrk', 'statuses.lua');
const BODY = '{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}';
const EXPECTED = '[55, 55]';
const ENDPOINT = 'bench-ep';
const PY_ENDPOINT = 'bench-py';

const env = process.env;
const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const cfg = {
  rounds: Math.max(1, Math.floor(num(env.BENCH_ROUNDS, 3))),
  seconds: Math.max(1, num(env.BENCH_SECONDS, 5)),
  warmup: Math.max(0, num(env.BENCH_WARMUP, 2)),
  conns: Math.max(1, Math.floor(num(env.BENCH_CONNS, 32))),
  rateSeconds: 0,
  c1Seconds: Math.max(0, num(env.BENCH_C1_SECONDS, 3)),
  maxConcurrent: Math.max(1, Math.floor(num(env.BENCH_MAX_CONCURRENT, 1000))),
  regime: '',
  keep: env.BENCH_KEEP === '1',
  traceGc: env.BENCH_TRACE_GC === '1',
  serverArgs: (env.BENCH_SERVER_ARGS ?? '').split(/\s+/).filter(Boolean),
  probe: env.BENCH_PROBE !== '0',
  routerWorkers: Math.max(0, Math.floor(num(env.BENCH_ROUTER_WORKERS, 0))),
  python: env.BENCH_PYTHON !== '0',
  workersPair: env.BENCH_WORKERS_PAIR !== '0',
  pyWorkers: Math.max(0, Math.floor(num(env.BENCH_PY_WORKERS, 0))),
  nodeArgs: (env.BENCH_NODE_ARGS ?? '').split(/\s+/).filter(Boolean),
  hostNodeOptions: (env.BENCH_HOST_NODE_OPTIONS ?? '').split(/\s+/).filter(Boolean),
};
// --router-workers N (or BENCH_ROUTER_WORKERS): passed to `infergate server --router-workers N` (issue 13
// part 2; 0 = the server's default, the flag is not passed).
for (let i = 2; i < process.argv.length; i++) {
  const a = process.argv[i];
  if (a === '--router-workers') cfg.routerWorkers = Math.max(0, Math.floor(Number(process.argv[++i])));
  else if (a.startsWith('--router-workers=')) cfg.routerWorkers = Math.max(0, Math.floor(Number(a.slice(17))));
}
cfg.rateSeconds = Math.max(1, num(env.BENCH_RATE_SECONDS, cfg.seconds));

const log = (...a) => console.log(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const fmtInt = (x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : 'n/a');
const f2 = (x) => (Number.isFinite(x) ? x.toFixed(2) : 'nan');

// ---------------------------------------------------------------------------------------------------
// Processes: every one we start is tracked, in its own process group, and stopped on exit, even on error.

const started = []; // { name, child, out, err }
const socketDirs = new Set();
let cleaning = null;

function track(name, cmd, args, opts = {}) {
  const child = spawn(cmd, args, { ...opts, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  const entry = { name, child, out: '', err: '' };
  child.stdout.on('data', (c) => (entry.out += c.toString()).length > 2e7 && (entry.out = entry.out.slice(-1e7)));
  child.stderr.on('data', (c) => (entry.err += c.toString()).length > 1e6 && (entry.err = entry.err.slice(-5e5)));
  child.on('error', (e) => (entry.err += `\nspawn error: ${e.message}`));
  started.push(entry);
  return entry;
}

/** Every process we started (and its descendants) may run on every CPU from now on: the free regime. */
async function unpinAll() {
  if (cfg.regime !== 'pinned') return;
  const all = `0-${cpus().length - 1}`;
  const table = procTable();
  for (const e of started) {
    const pid = e.child.pid;
    if (pid === undefined || !table.has(pid)) continue;
    for (const p of [pid, ...descendants(pid, table)]) await run('taskset', ['-a', '-p', '-c', all, String(p)]);
  }
}

const pinServer = (cmd, args) => (cfg.regime === 'pinned' ? ['taskset', ['-c', '0', cmd, ...args]] : [cmd, args]);

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function descendants(pid, table = procTable()) {
  const kids = new Map();
  for (const [p, info] of table) {
    if (!kids.has(info.ppid)) kids.set(info.ppid, []);
    kids.get(info.ppid).push(p);
  }
  const out = [];
  const stack = [...(kids.get(pid) ?? [])];
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    stack.push(...(kids.get(p) ?? []));
  }
  return out;
}

async function stopAll() {
  if (cleaning) return cleaning;
  cleaning = (async () => {
    for (const e of [...started].reverse()) await stop(e);
  })();
  return cleaning;
}

async function stop(e) {
  const pid = e.child.pid;
  if (pid === undefined || e.child.exitCode !== null || e.child.signalCode !== null) return;
  const kids = descendants(pid);
  try {
    process.kill(pid, 'SIGTERM'); // infergate stops its instances itself; nginx/direct servers exit
  } catch {}
  const end = Date.now() + 8000;
  while (alive(pid) && Date.now() < end) await sleep(50);
  for (const p of [-pid, pid, ...kids]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
}

function killAllSync() {
  for (const e of started) {
    const pid = e.child.pid;
    if (pid === undefined) continue;
    for (const p of [-pid, pid]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
  }
}
process.on('exit', killAllSync);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    log(`\nbench: ${sig}, stopping everything it started`);
    stopAll()
      .then(() => {
        if (!cfg.keep) rmSync(tmp, { recursive: true, force: true });
        if (probeDirPath !== '') rmSync(probeDirPath, { recursive: true, force: true });
      })
      .catch(() => {})
      .finally(() => process.exit(130));
  });
}

function waitForOutput(entry, re, timeoutMs, what) {
  return new Promise((resolveWait, reject) => {
    const timer = setTimeout(() => done(new Error(`${what}: not ready after ${timeoutMs} ms\n${entry.out}\n${entry.err}`)), timeoutMs);
    const check = () => {
      const m = entry.out.match(re);
      if (m) done(null, m);
    };
    const onExit = (code) => done(new Error(`${what} exited (${code}) before it was ready\n${entry.out}\n${entry.err}`));
    function done(err, m) {
      clearTimeout(timer);
      entry.child.stdout.off('data', check);
      entry.child.off('exit', onExit);
      if (err) reject(err);
      else resolveWait(m);
    }
    entry.child.stdout.on('data', check);
    entry.child.once('exit', onExit);
    check();
  });
}

function run(cmd, args, opts = {}) {
  return new Promise((resolveRun) => {
    execFile(cmd, args, { maxBuffer: 64 * 1024 * 1024, ...opts }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

function which(bin) {
  for (const dir of (env.PATH ?? '').split(':').concat(['/usr/sbin', '/sbin', '/usr/bin'])) {
    if (dir && existsSync(join(dir, bin))) return join(dir, bin);
  }
  return null;
}

function freePort() {
  return new Promise((resolvePort, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => resolvePort(port));
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// CPU accounting from /proc: per process tree (us of CPU per request) and per CPU (busy %).

const CLK_TCK = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;
  } catch {
    return 100;
  }
})();

function procTable() {
  const t = new Map();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    let s;
    try {
      s = readFileSync(`/proc/${d}/stat`, 'latin1');
    } catch {
      continue;
    }
    const close = s.lastIndexOf(')');
    const rest = s.slice(close + 2).split(' ');
    t.set(Number(d), { ppid: Number(rest[1]), ticks: Number(rest[11]) + Number(rest[12]), comm: s.slice(s.indexOf('(') + 1, close) });
  }
  return t;
}

function cpuStat() {
  const out = {};
  for (const line of readFileSync('/proc/stat', 'latin1').split('\n')) {
    if (!line.startsWith('cpu')) break;
    const [name, ...vals] = line.trim().split(/\s+/);
    const v = vals.map(Number);
    out[name] = { busy: v[0] + v[1] + v[2], irq: v[5] + v[6], idle: v[3] + v[4], steal: v[7] ?? 0, total: v.slice(0, 8).reduce((a, b) => a + b, 0) };
  }
  return out;
}

function cpuDelta(a, b) {
  const res = {};
  for (const name of Object.keys(b)) {
    if (!a[name]) continue;
    const tot = b[name].total - a[name].total || 1;
    const pct = (k) => Math.round(((b[name][k] - a[name][k]) / tot) * 1000) / 10;
    res[name] = { busy: pct('busy'), softirq: pct('irq'), idle: pct('idle'), steal: pct('steal') };
  }
  return res;
}

/** Named groups of pids to account CPU to: each tracked process, and the router's instances by deployment. */
function accountingGroups(table) {
  const groups = new Map(); // name -> pids
  for (const e of started) {
    const pid = e.child.pid;
    if (pid === undefined || !table.has(pid)) continue;
    if (e.name === 'infergate' || e.name.startsWith('infergate-')) {
      // taskset execs node, so pid is the server itself; its children are the instance hosts and, with
      // --router-workers N > 1, the router workers (router-worker.js: rworker1..N by pid). The bench's
      // extra servers (infergate-w1, ...) get their name as a prefix.
      const prefix = e.name === 'infergate' ? '' : `${e.name.slice('infergate-'.length)}:`;
      groups.set(`${prefix}router`, [pid]);
      let workers = 0;
      for (const kid of descendants(pid, table).sort((a, b) => a - b)) {
        let dep = 'instance';
        try {
          if (readFileSync(`/proc/${kid}/cmdline`, 'latin1').includes('router-worker')) dep = `rworker${++workers}`;
          else {
            const m = readlinkSync(`/proc/${kid}/cwd`).match(/\/instances\/[^/]+\/([^/]+)\//);
            if (m) dep = `inst-${m[1]}`;
          }
        } catch {}
        groups.set(`${prefix}${dep}`, [...(groups.get(`${prefix}${dep}`) ?? []), kid]);
      }
    } else {
      groups.set(e.name, [pid, ...descendants(pid, table)]);
    }
  }
  return groups;
}

// ---------------------------------------------------------------------------------------------------
// Per-process event loop, GC and scheduling during each measured run (issue 13 part 1). Node processes we
// start (the infergate server, its Node instance hosts, the direct servers) load bench/probe.mjs, which
// dumps what it saw since the last SIGUSR2 on the next one. Only processes whose command line or
// environment names the probe are signalled: SIGUSR2 kills any other process.

// Its own directory, world-writable (sticky): the instance hosts run as other users (isolation) and the
// workspace temp dir is private to ours.
let probeDirPath = '';
const probeDir = () => {
  if (probeDirPath === '') {
    probeDirPath = mkdtempSync(join(tmpdir(), 'infergate-bench-probe-'));
    chmodSync(probeDirPath, 0o1777);
  }
  return probeDirPath;
};
const probed = new Map(); // pid -> boolean

function hasProbe(pid) {
  let v = probed.get(pid);
  if (v === undefined) {
    v = false;
    try {
      v = readFileSync(`/proc/${pid}/cmdline`, 'latin1').includes('probe.mjs') || readFileSync(`/proc/${pid}/environ`, 'latin1').includes('probe.mjs');
    } catch {}
    // A process that has not yet exec'd node (setpriv) would be re-checked: only cache a yes.
    if (v) probed.set(pid, v);
  }
  return v;
}

/** Asks every probed process among `groups` for what it saw since the last call; name -> [report]. */
async function probeCollect(groups) {
  if (!cfg.probe) return {};
  const want = [];
  for (const [name, pids] of groups) for (const pid of pids) if (hasProbe(pid)) want.push([name, pid]);
  for (const [, pid] of want) rmSync(join(probeDir(), `${pid}.json`), { force: true });
  for (const [, pid] of want) {
    try {
      process.kill(pid, 'SIGUSR2');
    } catch {}
  }
  const out = {};
  const end = Date.now() + 3000;
  for (const [name, pid] of want) {
    const file = join(probeDir(), `${pid}.json`);
    while (!existsSync(file) && Date.now() < end && alive(pid)) await sleep(5);
    try {
      (out[name] ??= []).push(JSON.parse(readFileSync(file, 'utf8')));
    } catch {}
  }
  return out;
}

/** One figure per group from its processes' probe reports (several processes: the worst of each). */
function probeSummary(reports) {
  const res = {};
  for (const [name, list] of Object.entries(reports)) {
    const eld = list.map((r) => r.eld_ms).filter(Boolean);
    const gc = {};
    for (const r of list) {
      for (const [k, v] of Object.entries(r.gc)) {
        const g = (gc[k] ??= { count: 0, total_ms: 0, max_ms: 0 });
        g.count += v.count;
        g.total_ms = Math.round((g.total_ms + v.total_ms) * 100) / 100;
        g.max_ms = Math.max(g.max_ms, v.max_ms);
      }
    }
    const stalls = list.flatMap((r) => r.stalls.map((x) => ({ ...x, pid: r.pid, cause: stallCause(x) })));
    res[name] = {
      eld_ms: eld.length ? { p50: Math.max(...eld.map((e) => e.p50)), p99: Math.max(...eld.map((e) => e.p99)), max: Math.max(...eld.map((e) => e.max)) } : null,
      gc,
      stalls_over_5ms: stalls.length,
      stalls_by_cause: stalls.reduce((a, x) => ((a[x.cause] = (a[x.cause] ?? 0) + 1), a), {}),
      stalls: stalls.sort((a, b) => b.gap_ms - a.gap_ms).slice(0, 20),
      sched: list.map((r) => r.sched),
      heap_mb: Math.round(Math.max(...list.map((r) => r.heap.heapUsed)) / 1e5) / 10,
    };
  }
  return res;
}

/**
 * Why the event loop did not run for gap_ms: 'gc' when GC pauses fill half of it or more; 'busy' when the
 * process used CPU for most of it (JavaScript or native work of ours, not GC); 'descheduled' when it used
 * little CPU — it was runnable or waiting but another process had the core; 'mixed' between.
 */
function stallCause({ gap_ms, cpu_ms, gc_ms }) {
  if (gc_ms >= 0.5 * gap_ms) return 'gc';
  if (cpu_ms >= 0.7 * gap_ms) return 'busy';
  if (cpu_ms <= 0.3 * gap_ms) return 'descheduled';
  return 'mixed';
}

/** Main-thread scheduling of every process of each group from /proc/<pid>/schedstat: ns on CPU, ns runnable but waiting. */
function schedOf(groups) {
  const out = {};
  for (const [name, pids] of groups) {
    let run = 0;
    let wait = 0;
    for (const pid of pids) {
      try {
        const [r, w] = readFileSync(`/proc/${pid}/schedstat`, 'latin1').trim().split(/\s+/).map(Number);
        run += r;
        wait += w;
      } catch {}
    }
    out[name] = { run, wait };
  }
  return out;
}

function ticksOf(pids, table) {
  let t = 0;
  for (const p of pids) t += table.get(p)?.ticks ?? 0;
  return t;
}

// ---------------------------------------------------------------------------------------------------
// wrk

function parseWrk(stdout) {
  const line = stdout.split('\n').find((l) => l.startsWith('WRKJSON '));
  return line ? JSON.parse(line.slice(8)) : null;
}

// wrk runs under a small sh that prints its own /proc stat after wrk exits: cutime + cstime there is the
// CPU wrk used (wrk's own cost per request, which competes with the servers in the free regime).
const WRK_SH = 'wrk "$@"; s=$?; echo "WRKSTAT $(cat /proc/$$/stat)"; exit $s';

/** The regime of the runs now: cfg.regime, except the Python/JS phase, which is always free (unpinAll). */
let regimeNow = '';

async function wrk({ url, conns, secs, rate = 0, auth, script = POST_LUA, deployment = '' }) {
  const args = ['-c', WRK_SH, 'sh', '-t1', `-c${conns}`, `-d${secs}s`, '--timeout', '5s', '--latency', '-s', script, url];
  const [cmd, full] = (regimeNow || cfg.regime) === 'pinned' ? ['taskset', ['-c', '1', 'sh', ...args]] : ['sh', args];
  const wenv = { ...env, BENCH_AUTH: auth, BENCH_DEPLOYMENT: deployment };
  if (rate > 0) wenv.BENCH_RATE = String(rate);
  else delete wenv.BENCH_RATE;
  const r = await run(cmd, full, { env: wenv, timeout: (secs + 30) * 1000 });
  const stat = r.stdout.split('\n').find((l) => l.startsWith('WRKSTAT '));
  if (stat) {
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    r.wrkCpuSeconds = (Number(rest[13]) + Number(rest[14])) / CLK_TCK;
  }
  return r;
}

/** One measured wrk run with CPU accounting; re-run once (after waiting for quiet) if other work disturbed it. */
async function measure(scn, { conns, secs, rate = 0, kind }) {
  let res;
  for (let attempt = 0; attempt < 2; attempt++) {
    if (attempt > 0) await waitQuiet(15_000);
    const t0 = procTable();
    const g0 = accountingGroups(t0);
    await probeCollect(g0); // the probes start afresh here
    const q0 = schedOf(g0);
    const s0 = cpuStat();
    const w0 = performance.now();
    const out = await wrk({ url: scn.url, conns, secs, rate, auth: scn.auth, deployment: scn.deployment });
    const w1 = performance.now();
    const t1 = procTable();
    const s1 = cpuStat();
    const q1 = schedOf(g0);
    const probes = await probeCollect(g0);
    const wall = (w1 - w0) / 1000;
    const parsed = parseWrk(out.stdout);
    if (!parsed) throw new Error(`wrk failed on ${scn.id} (exit ${out.code}):\n${out.stdout}\n${out.stderr}`);
    res = { scenario: scn.id, kind, conns, secs, target_rps: rate || undefined, ...parsed };
    res.errors = parsed.err_connect + parsed.err_read + parsed.err_write + parsed.err_status + parsed.err_timeout;
    // CPU per group: % of one core over the run, and us of CPU per request.
    const groups = accountingGroups(t1);
    res.cpu = {};
    for (const [name, pids] of groups) {
      const ticks = ticksOf(pids, t1) - ticksOf(pids.filter((p) => t0.has(p)), t0);
      const pct = (ticks / CLK_TCK / wall) * 100;
      if (pct < 0.5) continue;
      res.cpu[name] = { pct: Math.round(pct), us_per_req: Math.round(((ticks / CLK_TCK) * 1e6) / Math.max(1, parsed.requests)) };
    }
    if (out.wrkCpuSeconds !== undefined) {
      res.cpu.wrk = { pct: Math.round((out.wrkCpuSeconds / wall) * 100), us_per_req: Math.round((out.wrkCpuSeconds * 1e6) / Math.max(1, parsed.requests)) };
    }
    res.cpus = cpuDelta(s0, s1);
    res.probe = probeSummary(probes);
    // Time each group's main threads waited on a run queue while runnable (ms per second of the run): the
    // scheduler's share of the latency, for every process including the Python workers, nginx and wrk.
    res.runqueue_wait = {};
    for (const [name, v] of Object.entries(q1)) {
      const w = v.wait - (q0[name]?.wait ?? 0);
      const r = v.run - (q0[name]?.run ?? 0);
      if (r > 0) res.runqueue_wait[name] = { wait_ms_per_s: Math.round(w / 1e4 / wall) / 100, run_ms_per_s: Math.round(r / 1e4 / wall) / 100 };
    }
    // Other processes (not ours, not wrk, not kernel threads) that used CPU during the run.
    const mine = new Set([process.pid]);
    for (const pids of groups.values()) for (const p of pids) mine.add(p);
    let foreign = 0;
    const top = [];
    for (const [pid, info] of t1) {
      if (mine.has(pid) || pid === 2 || info.ppid === 2 || info.comm === 'wrk' || info.comm === 'sh') continue;
      const d = info.ticks - (t0.get(pid)?.ticks ?? 0);
      if (d > 0) {
        foreign += d;
        top.push([Math.round((d / CLK_TCK / wall) * 1000) / 10, info.comm]);
      }
    }
    res.foreign_cpu_pct = Math.round((foreign / CLK_TCK / wall) * 1000) / 10;
    res.foreign_top = top.sort((a, b) => b[0] - a[0]).slice(0, 3);
    res.dirty = res.foreign_cpu_pct > 20;
    if (res.errors > 0) res.wrk_stdout = out.stdout;
    if (!res.dirty) break;
    log(`  (${scn.id}: other processes used ${res.foreign_cpu_pct}% CPU during the run: ${JSON.stringify(res.foreign_top)}${attempt === 0 ? '; re-running' : ''})`);
  }
  if (res.errors > 0) {
    // Which statuses? A short diagnostic run that records them (the measured run stays as it was).
    const diag = await wrk({ url: scn.url, conns, secs: 2, auth: scn.auth, script: STATUS_LUA, deployment: scn.deployment });
    const line = diag.stdout.split('\n').find((l) => l.startsWith('WRKSTATUS '));
    res.error_diagnosis = line ? JSON.parse(line.slice(10)) : diag.stdout;
    log(`  !! ${scn.id}: ${res.errors} failed requests (connect ${res.err_connect}, read ${res.err_read}, write ${res.err_write}, non-2xx ${res.err_status}, timeout ${res.err_timeout}); 2 s diagnostic run: ${JSON.stringify(res.error_diagnosis)}`);
  }
  return res;
}

/** The per-run log line's tail: each probed process's event-loop delay p99/max and its stalls by cause. */
function probeLine(res) {
  const parts = [];
  for (const [name, p] of Object.entries(res.probe ?? {})) {
    if (!p.eld_ms) continue;
    const causes = Object.entries(p.stalls_by_cause).map(([k, v]) => `${v} ${k}`).join(' ');
    parts.push(`${name} eld ${p.eld_ms.p99.toFixed(1)}/${p.eld_ms.max.toFixed(1)}${causes ? ` [${causes}]` : ''}`);
  }
  return parts.length ? `  | ${parts.join('; ')}` : '';
}

async function waitQuiet(maxMs) {
  const end = Date.now() + maxMs;
  let ok = 0;
  while (Date.now() < end && ok < 2) {
    const t0 = procTable();
    await sleep(500);
    const t1 = procTable();
    let foreign = 0;
    const mine = new Set([process.pid]);
    for (const pids of accountingGroups(t1).values()) for (const p of pids) mine.add(p);
    for (const [pid, info] of t1) {
      if (mine.has(pid) || pid === 2 || info.ppid === 2) continue;
      foreign += info.ticks - (t0.get(pid)?.ticks ?? 0);
    }
    ok = (foreign / CLK_TCK / 0.5) * 100 < 10 ? ok + 1 : 0;
  }
}

// ---------------------------------------------------------------------------------------------------
// Setup

async function ensureTools() {
  const missing = [['wrk', 'wrk'], ['nginx', 'nginx']].filter(([bin]) => !which(bin));
  if (missing.length) {
    const pkgs = missing.map(([, pkg]) => pkg);
    if (process.getuid?.() !== 0) throw new Error(`missing ${pkgs.join(', ')}; install them (Debian: apt-get install -y ${pkgs.join(' ')})`);
    log(`bench: installing ${pkgs.join(' ')} (apt-get)`);
    const aptEnv = { ...env, DEBIAN_FRONTEND: 'noninteractive' };
    let r = await run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { env: aptEnv });
    if (r.code !== 0) {
      log('bench: apt-get install failed; running apt-get update first');
      await run('apt-get', ['update'], { env: aptEnv });
      r = await run('apt-get', ['install', '-y', '--no-install-recommends', ...pkgs], { env: aptEnv });
    }
    if (r.code !== 0) throw new Error(`apt-get install ${pkgs.join(' ')} failed:\n${r.stdout}\n${r.stderr}`);
  }
  const haveTaskset = which('taskset') !== null;
  const ncpu = cpus().length;
  const wanted = env.BENCH_REGIME;
  if (wanted && wanted !== 'pinned' && wanted !== 'free') throw new Error(`BENCH_REGIME must be pinned or free, not ${wanted}`);
  cfg.regime = wanted ?? (haveTaskset && ncpu >= 2 ? 'pinned' : 'free');
  if (cfg.regime === 'pinned' && (!haveTaskset || ncpu < 2)) throw new Error('BENCH_REGIME=pinned needs taskset and at least 2 CPUs');
  if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
    log('bench: dist/ is missing; npm run build');
    const r = await run('npm', ['run', 'build'], { cwd: ROOT });
    if (r.code !== 0) throw new Error(`npm run build failed:\n${r.stdout}\n${r.stderr}`);
  }
}

async function version(cmd, args, re) {
  const r = await run(cmd, args);
  const m = (r.stdout + r.stderr).match(re);
  return m ? m[1] : 'unknown';
}

const probeArgs = () => (cfg.probe ? ['--import', PROBE] : []);
const probeEnv = () => (cfg.probe ? { INFERGATE_BENCH_PROBE_DIR: probeDir() } : {});

async function startDirect(name) {
  const [cmd, args] = pinServer(process.execPath, [...probeArgs(), join(BENCH, 'direct-server.mjs'), '--port', '0']);
  const e = track(name, cmd, args, { env: { ...env, ...probeEnv() } });
  const m = await waitForOutput(e, /listening (\d+)/, 15_000, name);
  return Number(m[1]);
}

function nginxConf(dir, port, portBlue, portGreen, key) {
  // One worker: the server side gets one core in the pinned regime (more workers would only take turns
  // on it), nginx is then compared like for like with the router's single event loop, and
  // reference/perf-baselines used one. keepalive upstreams, HTTP/1.1 to them, no access log. keepalive
  // 1024 (idle connections cached per upstream): the fixed-rate runs use up to 1000 client connections, and
  // with a smaller cache a saturated nginx opens and closes upstream connections per request.
  return `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
master_process on;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream blue { server 127.0.0.1:${portBlue}; keepalive 1024; }
  upstream green { server 127.0.0.1:${portGreen}; keepalive 1024; }
  split_clients "\${request_id}" $deployment { 90% blue; * green; }
  server {
    listen 127.0.0.1:${port} backlog=4096;
    keepalive_requests 1000000;
    location = /score {
      if ($http_authorization != "Bearer ${key}") { return 401; }
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass http://$deployment;
    }
  }
}
`;
}

async function post(url, auth) {
  const r = await fetch(url, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } });
  return { status: r.status, body: await r.text(), deployment: r.headers.get('azureml-model-deployment') };
}

async function until(what, fn, timeoutMs = 15_000) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last === true) return;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`${what}: ${last instanceof Error ? last.message : JSON.stringify(last)}`);
    await sleep(100);
  }
}

// ---------------------------------------------------------------------------------------------------
// Main

const tmp = mkdtempSync(join(tmpdir(), 'infergate-bench-'));
const home = join(tmp, 'home');
const cliEnv = { ...env, INFERGATE_HOME: home };
delete cliEnv.INFERGATE_URL;
/** Connections for a paced run at `rate`: enough that each waits ~10 ms between requests, so latency up to ~10 ms keeps the rate. */
const connsFor = (rate) => Math.min(1000, Math.max(64, Math.ceil(rate / 100)));

/** The CLI against the server of the workspace in `cenv` (INFERGATE_HOME). */
const cliIn = (cenv) => async (...args) => {
  const r = await run(process.execPath, [BIN, ...args], { env: cenv });
  if (r.code !== 0) throw new Error(`infergate ${args.join(' ')} (${cenv.INFERGATE_HOME}) failed (${r.code}):\n${r.stderr}${r.stdout}`);
  return r.stdout.trim();
};
const cli = cliIn(cliEnv);

/** The server's instances' socket directories, removed at the end if the server leaves them behind empty. */
function noteSocketDirs(serverPid) {
  for (const kid of descendants(serverPid)) {
    try {
      const m = readFileSync(`/proc/${kid}/environ`, 'latin1').match(/(?:^|\0)INFERGATE_SOCKET=([^\0]+)/);
      if (m) socketDirs.add(dirname(m[1]));
    } catch {}
  }
}

let trafficState = '';
async function setTraffic(state) {
  if (state === trafficState) return;
  const rules = {
    split: ['blue=90 green=10', 'green=0'],
    blue: ['blue=100 green=0', 'green=0'],
    mirror: ['blue=100 green=0', 'green=10'],
  }[state];
  await cli('online-endpoint', 'update', '-n', ENDPOINT, '--traffic', rules[0], '--mirror-traffic', rules[1], '-o', 'none');
  trafficState = state;
  await sleep(200); // DESIGN.md budget for a traffic change to take effect: 100 ms
}

async function main() {
  const t0 = Date.now();
  await ensureTools();
  const info = {
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    cpu_model: cpus()[0]?.model,
    wrk: await version('wrk', ['-v'], /wrk (\S+)/),
    nginx: await version(which('nginx'), ['-v'], /nginx\/(\S+)/),
    commit: (await run('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT })).stdout.trim(),
    dirty_tree: (await run('git', ['status', '--porcelain', '--', 'src'], { cwd: ROOT })).stdout.trim() !== '',
  };
  log(`bench: regime ${cfg.regime}${cfg.regime === 'pinned' ? ' (wrk on CPU 1; every server-side process on CPU 0)' : ' (no CPU affinity)'}; ` +
    `${cfg.rounds} rounds x ${cfg.seconds} s, wrk -t1 -c${cfg.conns}; workdir ${tmp}`);

  // Fixtures: the scoring module, copied where the deployments' code lives.
  const code = join(tmp, 'code');
  mkdirSync(code, { recursive: true });
  copyFileSync(join(BENCH, 'fixtures', 'score.mjs'), join(code, 'score.mjs'));
  const deploymentYml = (name, endpoint) =>
      `name: ${name}\nendpoint_name: ${endpoint}\ncode_configuration: {code: ./, scoring_script: score.mjs}\n` +
      `instance_type: Standard_DS3_v2\ninstance_count: 1\n` +
      // Azure's default (1) admits 2 x 1 x instances pending requests and answers 429 beyond: wrk -c32 would
      // mostly measure rejections. DIRECT and nginx have no such limit, so neither does the router here.
      `request_settings: {max_concurrent_requests_per_instance: ${cfg.maxConcurrent}}\n` +
      // The instance hosts load the probe too (event loop, GC: bench/probe.mjs); NODE_OPTIONS is refused
      // unless the deployment names it (spec/unsafe-env.ts).
      (cfg.probe || cfg.hostNodeOptions.length
        ? `tags: {infergate.allow-environment-variables: NODE_OPTIONS}\n` +
          `environment_variables: {NODE_OPTIONS: "${[...(cfg.probe ? [`--import=${PROBE}`] : []), ...cfg.hostNodeOptions].join(' ')}", INFERGATE_BENCH_PROBE_DIR: "${probeDir()}"}\n`
        : '');
  for (const name of ['blue', 'green']) writeFileSync(join(code, `${name}.yml`), deploymentYml(name, ENDPOINT));

  // DIRECT (also nginx's blue upstream) and the second direct server (nginx's green upstream).
  const portA = await startDirect('direct-a');
  const portB = await startDirect('direct-b');

  // The infergate server, endpoint and deployments, as a user would create them.
  const [scmd, sargs] = pinServer(process.execPath, [...cfg.nodeArgs, ...(cfg.traceGc ? ['--trace-gc'] : []), ...probeArgs(), BIN, 'server', '--backend', 'process', '--port', '0', '--router-port', '0',
    ...(cfg.routerWorkers > 0 ? ['--router-workers', String(cfg.routerWorkers)] : []), ...cfg.serverArgs]);
  const server = track('infergate', scmd, sargs, { env: { ...cliEnv, ...probeEnv() } });
  await waitForOutput(server, /router:/, 30_000, 'infergate server');
  await cli('online-endpoint', 'create', '-n', ENDPOINT, '-o', 'none');
  await cli('online-deployment', 'create', '-f', join(code, 'blue.yml'), '--all-traffic', '-o', 'none');
  await cli('online-deployment', 'create', '-f', join(code, 'green.yml'), '-o', 'none');
  await setTraffic('split');
  const key = await cli('online-endpoint', 'get-credentials', '-n', ENDPOINT, '-o', 'tsv', '--query', 'primaryKey');
  const scoringUri = await cli('online-endpoint', 'show', '-n', ENDPOINT, '-o', 'tsv', '--query', 'scoring_uri');
  const auth = `Bearer ${key}`;
  // Python vs JavaScript through the same router (issue 13 goal): endpoint bench-py, deployment `py` (the
  // light row-sum score.py of bench:python, WORKER_COUNT BENCH_PY_WORKERS, default the product's default)
  // and `js` (the same logic as a JS module, score.mjs), one instance each; requests pinned to one or the
  // other by the azureml-model-deployment header, so both go through the same router and endpoint.
  let py = null;
  let js = null;
  if (cfg.python) {
    copyFileSync(join(BENCH, 'fixtures', 'python-rowsum', 'score.py'), join(code, 'score.py'));
    const depYml = (name, script, extra) =>
      `name: ${name}\nendpoint_name: ${PY_ENDPOINT}\ncode_configuration: {code: ./, scoring_script: ${script}}\n` +
      `instance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings: {max_concurrent_requests_per_instance: ${cfg.maxConcurrent}}\n${extra}`;
    writeFileSync(join(code, 'py.yml'), depYml('pyrowsum', 'score.py', cfg.pyWorkers > 0 ? `environment_variables: {WORKER_COUNT: "${cfg.pyWorkers}"}\n` : ''));
    writeFileSync(join(code, 'js.yml'), depYml('jsrowsum', 'score.mjs', ''));
    await cli('online-endpoint', 'create', '-n', PY_ENDPOINT, '-o', 'none');
    await cli('online-deployment', 'create', '-f', join(code, 'py.yml'), '--all-traffic', '-o', 'none');
    await cli('online-deployment', 'create', '-f', join(code, 'js.yml'), '-o', 'none');
    const pyKey = await cli('online-endpoint', 'get-credentials', '-n', PY_ENDPOINT, '-o', 'tsv', '--query', 'primaryKey');
    const pyUri = await cli('online-endpoint', 'show', '-n', PY_ENDPOINT, '-o', 'tsv', '--query', 'scoring_uri');
    py = { id: 'py_router', label: `ROUTER -> score.py (WORKER_COUNT ${cfg.pyWorkers || 'default'})`, url: pyUri, auth: `Bearer ${pyKey}`, traffic: null, deployment: 'pyrowsum' };
    js = { id: 'js_router', label: 'ROUTER -> score.mjs (same logic)', url: pyUri, auth: `Bearer ${pyKey}`, traffic: null, deployment: 'jsrowsum' };
  }
  noteSocketDirs(server.child.pid);

  // nginx doing the same job in front of the two direct servers.
  const ngDir = join(tmp, 'nginx');
  mkdirSync(ngDir, { recursive: true });
  const ngPort = await freePort();
  writeFileSync(join(ngDir, 'nginx.conf'), nginxConf(ngDir, ngPort, portA, portB, key));
  const [ncmd, nargs] = pinServer(which('nginx'), ['-p', ngDir, '-e', join(ngDir, 'error.log'), '-c', join(ngDir, 'nginx.conf')]);
  track('nginx', ncmd, nargs);

  const direct = { id: 'direct', label: 'DIRECT (bare node http + module)', url: `http://127.0.0.1:${portA}/score`, auth, traffic: null };
  const router = { id: 'router', label: 'ROUTER blue=90 green=10', url: scoringUri, auth, traffic: 'split' };
  const nginx = { id: 'nginx', label: 'NGINX split 90/10 -> 2 direct', url: `http://127.0.0.1:${ngPort}/score`, auth, traffic: null };
  const mirror = { id: 'router_mirror', label: 'ROUTER+MIRROR blue=100 +green 10%', url: scoringUri, auth, traffic: 'mirror' };
  const blue = { id: 'router_blue', label: 'ROUTER blue=100 (no mirror)', url: scoringUri, auth, traffic: 'blue' };
  const scenarios = [direct, router, nginx, mirror, blue];
  const enter = async (s) => s.traffic && (await setTraffic(s.traffic));

  // Sanity: every scenario answers the sample with the module's answer; wrong keys get 401.
  await until('direct answers', async () => (await post(direct.url)).body === EXPECTED || 'no answer');
  await until('nginx answers', async () => {
    const r = await post(nginx.url, auth);
    return (r.status === 200 && r.body === EXPECTED) || r;
  });
  for (const [url, what] of [[nginx.url, 'nginx'], [scoringUri, 'router']]) {
    const r = await post(url, 'Bearer wrong');
    if (r.status !== 401) throw new Error(`${what} answered ${r.status} to a wrong key`);
  }
  for (const s of [blue, router]) {
    await enter(s);
    const seen = {};
    for (let i = 0; i < 200; i++) {
      const r = await post(scoringUri, auth);
      if (r.status !== 200 || r.body !== EXPECTED) throw new Error(`router: ${r.status} ${r.body}`);
      seen[r.deployment] = (seen[r.deployment] ?? 0) + 1;
    }
    if (s === blue && Object.keys(seen).join() !== 'blue') throw new Error(`traffic blue=100 but answers from ${JSON.stringify(seen)}`);
    if (s === router && !(seen.green > 0)) throw new Error(`traffic blue=90 green=10 but answers from ${JSON.stringify(seen)}`);
  }
  for (const s of [py, js]) {
    if (s === null) continue;
    await until(`${s.id} answers`, async () => {
      const r = await fetch(s.url, { method: 'POST', body: BODY, headers: { 'content-type': 'application/json', authorization: s.auth, 'azureml-model-deployment': s.deployment } });
      const body = await r.text();
      return (r.status === 200 && body === EXPECTED && r.headers.get('azureml-model-deployment') === s.deployment) || `${r.status} ${body}`;
    }, 60_000);
  }
  log(`bench: ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (direct :${portA}, nginx :${ngPort}, router ${scoringUri}` +
    `${cfg.serverArgs.length ? `; infergate server ${cfg.serverArgs.join(' ')}` : ''})`);

  const runs = [];
  /** One measured run of round `r`: kept with its round, and logged under `label`. */
  const recordRun = async (r, label, s, opts) => {
    const res = await measure(s, opts);
    res.round = r;
    runs.push(res);
    log(`  round ${r + 1} ${label.padEnd(11)} ${s.id.padEnd(14)} ${fmtInt(res.rps).padStart(7)} rps${opts.rate ? ` (target ${fmtInt(opts.rate)})` : ''}  ` +
      `p50 ${(res.p50_us / 1000).toFixed(2)} ms  p99 ${(res.p99_us / 1000).toFixed(2)} ms${res.errors ? `  ERRORS ${res.errors}` : ''}${probeLine(res)}`);
  };
  const workersScenarios = [];
  let workersRate = 0;

  // 1. Max throughput, interleaved.
  if (cfg.warmup > 0) {
    for (const s of scenarios) {
      await enter(s);
      await wrk({ url: s.url, conns: cfg.conns, secs: cfg.warmup, auth: s.auth });
    }
  }
  for (let r = 0; r < cfg.rounds; r++) {
    for (const s of scenarios) {
      await enter(s);
      await recordRun(r, 'max', s, { conns: cfg.conns, secs: cfg.seconds, kind: 'max' });
    }
  }

  // 2. Fixed rate: half of DIRECT's maximum in this run (the budget's definition). When the router cannot
  // carry that rate it is measured saturated there, so a second level, half of the ROUTER's own maximum,
  // shows the latency the router adds when it is not overloaded.
  const maxOf = (id) => median(runs.filter((x) => x.kind === 'max' && x.scenario === id).map((x) => x.rps));
  const directMax = maxOf('direct');
  const routerMax = maxOf('router');
  const levels = [
    { kind: 'rate', rate: Math.round(directMax / 2), of: `half of direct's median max ${fmtInt(directMax)}`, scenarios: [direct, router, nginx, mirror, blue] },
  ];
  // Always: the goals name both levels (half of DIRECT's max and half of the router's own).
  {
    levels.push({ kind: 'rate_router', rate: Math.round(routerMax / 2), of: `half of the router's median max ${fmtInt(routerMax)}`, scenarios: [direct, router, mirror, blue] });
  }
  for (const level of levels) {
    level.conns = connsFor(level.rate);
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of level.scenarios) {
        await enter(s);
        await recordRun(r, level.kind, s, { conns: level.conns, secs: cfg.rateSeconds, rate: level.rate, kind: level.kind });
      }
    }
  }

  // 3. One connection: added latency when idle.
  if (cfg.c1Seconds > 0) {
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of [direct, router]) {
        await enter(s);
        const res = await measure(s, { conns: 1, secs: cfg.c1Seconds, kind: 'c1' });
        res.round = r;
        runs.push(res);
      }
    }
  }

  // 4. Python vs JavaScript through the same router, max throughput, free regime: the goal is stated for
  // the free regime (with everything on one core the ratio would only compare CPU per request).
  if (py !== null) {
    // DIRECT and nginx are done: idle, each still takes ~5 % of a core (the probe's 1 ms timer) from the
    // two cores the free regime shares.
    for (const e of started.filter((x) => x.name === 'nginx' || x.name.startsWith('direct-'))) await stop(e);
    await unpinAll();
    regimeNow = 'free';
    await wrk({ url: py.url, conns: cfg.conns, secs: Math.max(1, cfg.warmup), auth: py.auth, deployment: py.deployment });
    await wrk({ url: js.url, conns: cfg.conns, secs: Math.max(1, cfg.warmup), auth: js.auth, deployment: js.deployment });
    for (let r = 0; r < cfg.rounds; r++) {
      // Alternate which goes first, so a drift of the shared host does not favour one.
      for (const s of r % 2 === 0 ? [py, js] : [js, py]) {
        await recordRun(r, 'pyjs free', s, { conns: cfg.conns, secs: cfg.seconds, kind: 'pyjs' });
      }
    }
    regimeNow = '';
  }

  // 5. Router workers, 1 vs 2 (issue 13 part 4), max throughput, free regime: two more servers, identical
  // but for --router-workers (1: the router in the server's process; 2: two worker processes sharing the
  // port, admission at the instance), each with endpoint bench-ep and deployment blue (one instance of the
  // same module), measured round by round, alternating which goes first. The servers of the phases before
  // are stopped first: on a 2-core machine a dozen idle probed processes (a 1 ms event-loop timer each)
  // take ~5 % of a core each from the free regime.
  if (cfg.workersPair) {
    for (const e of [...started].reverse()) await stop(e);
    regimeNow = 'free';
    const pairServers = [];
    for (const n of [1, 2]) {
      const wEnv = { ...cliEnv, INFERGATE_HOME: join(tmp, `home-w${n}`) };
      const wCli = cliIn(wEnv);
      const srv = track(`infergate-w${n}`, process.execPath, [...cfg.nodeArgs, ...probeArgs(), BIN, 'server', '--backend', 'process', '--port', '0', '--router-port', '0',
        '--router-workers', String(n), ...cfg.serverArgs], { env: { ...wEnv, ...probeEnv() } });
      await waitForOutput(srv, /router:/, 30_000, `infergate server --router-workers ${n}`);
      writeFileSync(join(code, `w${n}.yml`), deploymentYml('blue', ENDPOINT));
      await wCli('online-endpoint', 'create', '-n', ENDPOINT, '-o', 'none');
      await wCli('online-deployment', 'create', '-f', join(code, `w${n}.yml`), '--all-traffic', '-o', 'none');
      const wKey = await wCli('online-endpoint', 'get-credentials', '-n', ENDPOINT, '-o', 'tsv', '--query', 'primaryKey');
      const wUri = await wCli('online-endpoint', 'show', '-n', ENDPOINT, '-o', 'tsv', '--query', 'scoring_uri');
      const scn = { id: `workers_${n}`, label: `ROUTER --router-workers ${n}, blue=100`, url: wUri, auth: `Bearer ${wKey}`, traffic: null };
      await until(`${scn.id} answers`, async () => {
        const r = await post(scn.url, scn.auth);
        return (r.status === 200 && r.body === EXPECTED) || r;
      });
      pairServers.push(scn);
      noteSocketDirs(srv.child.pid);
    }
    for (const s of pairServers) await wrk({ url: s.url, conns: cfg.conns, secs: Math.max(1, cfg.warmup), auth: s.auth });
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of r % 2 === 0 ? pairServers : [...pairServers].reverse()) {
        await recordRun(r, 'workers', s, { conns: cfg.conns, secs: cfg.seconds, kind: 'workers' });
      }
    }
    // The same rate for both, half of one worker's max: CPU per request without the contention of a
    // saturated machine (at max, on 2 cores, the second worker competes with wrk and the instance).
    workersRate = Math.round(median(runs.filter((x) => x.kind === 'workers' && x.scenario === 'workers_1').map((x) => x.rps)) / 2);
    const wConns = connsFor(workersRate);
    for (let r = 0; r < cfg.rounds; r++) {
      for (const s of r % 2 === 0 ? pairServers : [...pairServers].reverse()) {
        await recordRun(r, 'workers rate', s, { conns: wConns, secs: cfg.rateSeconds, rate: workersRate, kind: 'workers_rate' });
      }
    }
    regimeNow = '';
    workersScenarios.push(...pairServers);
  }

  // Server-side error output (anything the router or nginx logged at warn/error).
  const ngErrors = existsSync(join(ngDir, 'error.log')) ? readFileSync(join(ngDir, 'error.log'), 'utf8').trim().split('\n').filter(Boolean) : [];
  const serverErrors = server.err.split('\n').filter((l) => /error|fail|warn|exception/i.test(l));

  const results = summarize({ runs, scenarios: [...scenarios, ...(py ? [py, js] : []), ...workersScenarios], levels });
  results.workers_rate = workersRate;
  if (cfg.traceGc) results.router_gc = gcSummary(server.out);
  try {
    results.traffic_log_bytes = statSync(join(home, 'logs', 'traffic.jsonl')).size;
  } catch {}
  results.info = info;
  results.config = { ...cfg, body: BODY, wrk_lua: 'bench/wrk/post.lua' };
  results.server_log_problems = serverErrors.slice(-50);
  if (cfg.keep) writeFileSync(join(tmp, 'server.out'), server.out); // e.g. BENCH_NODE_ARGS=--trace-gc-nvp output
  results.nginx_error_log = ngErrors.slice(-50);
  results.elapsed_s = Math.round((Date.now() - t0) / 1000);
  report(results, scenarios);
  mkdirSync(join(BENCH, 'results'), { recursive: true });
  const file = join(BENCH, 'results', `${results.info.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n');
  log(`results: ${file.slice(ROOT.length + 1)} (${results.elapsed_s} s)`);
  const s = results.summary;
  log(`bench (goals of issue 13): added_p99_ms_at_half_router_max=${f2(s.added_p99_ms_at_half_router_max)} (<= 1) ` +
    `added_p99_ms_at_half_direct_max=${f2(s.added_p99_ms)} (<= 2) router_cpu_us_per_request=${Number.isFinite(s.router_cpu_us_per_request) ? s.router_cpu_us_per_request : 'n/a'} (<= ~16) ` +
    `mirror_p99_ratio=${f2(s.mirror_p99_ratio)} (<= 1.05) py/js=${f2(s.py_over_js)} (>= 0.9, free regime) ` +
    `workers2/1=${f2(s.workers_2_over_1)} (>= 1.6 where two cores are free for them; free regime on ${results.info.cpus} CPUs) ` +
    `router_worker_cpu_us_per_request=${s.router_worker_cpu_us_per_request_1 ?? 'n/a'}/${s.router_worker_cpu_us_per_request_2 ?? 'n/a'} at max, ` +
    `${s.router_worker_cpu_us_per_request_at_rate_1 ?? 'n/a'}/${s.router_worker_cpu_us_per_request_at_rate_2 ?? 'n/a'} at one rate (1/2 workers; not to grow)`);
  log(`bench: router/direct=${f2(s.router_over_direct)} router/nginx=${f2(s.router_over_nginx)} added_p99_ms=${f2(s.added_p99_ms)} mirror_p99_ratio=${f2(s.mirror_p99_ratio)}`);
}

/** node --trace-gc lines of the infergate server process: counts and pauses (ms) by kind. */
function gcSummary(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const m = line.match(/\d+ ms: (Scavenge|Mark-Compact|Mark-Compact \(reduce\)|Minor Mark-Sweep|Mark-Sweep)\b.*?MB, ([\d.]+) \/ [\d.]+ ms/);
    if (!m) continue;
    const k = (out[m[1]] ??= { count: 0, total_ms: 0, max_ms: 0 });
    const pause = Number(m[2]);
    k.count++;
    k.total_ms = Math.round((k.total_ms + pause) * 100) / 100;
    k.max_ms = Math.max(k.max_ms, pause);
  }
  return out;
}

/** Per process group, over the rounds of one scenario and phase: medians of the event-loop delay, GC and stalls. */
function probeStats(rs) {
  const out = {};
  const names = new Set(rs.flatMap((x) => Object.keys(x.probe ?? {})));
  for (const n of names) {
    const ps = rs.map((x) => x.probe?.[n]).filter((p) => p && p.eld_ms);
    if (!ps.length) continue;
    const gc = {};
    for (const k of new Set(ps.flatMap((p) => Object.keys(p.gc)))) {
      gc[k] = {
        count: median(ps.map((p) => p.gc[k]?.count ?? 0)),
        total_ms: median(ps.map((p) => p.gc[k]?.total_ms ?? 0)),
        max_ms: Math.max(...ps.map((p) => p.gc[k]?.max_ms ?? 0)),
      };
    }
    const causes = {};
    for (const p of ps) for (const [c, v] of Object.entries(p.stalls_by_cause)) causes[c] = (causes[c] ?? 0) + v;
    out[n] = {
      eld_ms: { p50: median(ps.map((p) => p.eld_ms.p50)), p99: median(ps.map((p) => p.eld_ms.p99)), max: median(ps.map((p) => p.eld_ms.max)), max_of_rounds: Math.max(...ps.map((p) => p.eld_ms.max)) },
      gc,
      stalls_over_5ms_median: median(ps.map((p) => p.stalls_over_5ms)),
      stalls_by_cause_all_rounds: causes,
    };
  }
  return out;
}

function summarize({ runs, scenarios, levels }) {
  const by = (kind, id) => runs.filter((x) => x.kind === kind && x.scenario === id);
  const rounds = [...new Set(runs.map((x) => x.round))];
  const pair = (kind, a, b, f) =>
    rounds.map((r) => {
      const x = by(kind, a).find((y) => y.round === r);
      const y = by(kind, b).find((z) => z.round === r);
      return x && y ? f(x, y) : NaN;
    });
  const stats = (kind) => {
    const out = {};
    for (const s of scenarios) {
      const rs = by(kind, s.id);
      if (!rs.length) continue;
      const cpu = {};
      for (const name of new Set(rs.flatMap((x) => Object.keys(x.cpu)))) {
        cpu[name] = { pct: median(rs.map((x) => x.cpu[name]?.pct ?? 0)), us_per_req: median(rs.map((x) => x.cpu[name]?.us_per_req ?? 0)) };
      }
      out[s.id] = {
        label: s.label,
        runs: rs.length,
        rps_median: median(rs.map((x) => x.rps)),
        rps_min: Math.min(...rs.map((x) => x.rps)),
        rps_max: Math.max(...rs.map((x) => x.rps)),
        p50_ms: median(rs.map((x) => x.p50_us / 1000)),
        p99_ms: median(rs.map((x) => x.p99_us / 1000)),
        p99_ms_min: Math.min(...rs.map((x) => x.p99_us / 1000)),
        p99_ms_max: Math.max(...rs.map((x) => x.p99_us / 1000)),
        errors: rs.reduce((a, x) => a + x.errors, 0),
        dirty_runs: rs.filter((x) => x.dirty).length,
        cpu,
        probe: probeStats(rs),
        runqueue_wait_ms_per_s: Object.fromEntries([...new Set(rs.flatMap((x) => Object.keys(x.runqueue_wait ?? {})))].map((n) => [n, median(rs.map((x) => x.runqueue_wait?.[n]?.wait_ms_per_s ?? NaN))])),
        cpus: {
          cpu0_busy: median(rs.map((x) => (x.cpus.cpu0?.busy ?? NaN) + (x.cpus.cpu0?.softirq ?? 0))),
          cpu1_busy: median(rs.map((x) => (x.cpus.cpu1?.busy ?? NaN) + (x.cpus.cpu1?.softirq ?? 0))),
          softirq: median(rs.map((x) => x.cpus.cpu?.softirq ?? NaN)),
          steal: median(rs.map((x) => x.cpus.cpu?.steal ?? NaN)),
        },
      };
    }
    return out;
  };
  const rps = (x, y) => x.rps / y.rps;
  const ratios = {
    router_over_direct: pair('max', 'router', 'direct', rps),
    router_over_nginx: pair('max', 'router', 'nginx', rps),
    nginx_over_direct: pair('max', 'nginx', 'direct', rps),
    router_mirror_over_direct: pair('max', 'router_mirror', 'direct', rps),
    router_blue_over_direct: pair('max', 'router_blue', 'direct', rps),
    mirror_over_router_blue: pair('max', 'router_mirror', 'router_blue', rps),
    mirror_over_router: pair('max', 'router_mirror', 'router', rps),
    py_over_js: pair('pyjs', 'py_router', 'js_router', rps),
    workers_2_over_1: pair('workers', 'workers_2', 'workers_1', rps),
  };
  // Router CPU per request with N workers: the workers' CPU (rworker*) over all requests, and the primary's
  // (control plane, the traffic log's one writer, the meters' merge). With 1 the router is the primary.
  const routerCpu = (x) => {
    const pre = x.scenario === 'workers_1' ? 'w1:' : 'w2:';
    let workers = 0;
    let n = 0;
    for (const [k, v] of Object.entries(x.cpu)) if (k.startsWith(`${pre}rworker`)) { workers += v.us_per_req; n++; }
    const primary = x.cpu[`${pre}router`]?.us_per_req ?? 0;
    return n === 0 ? { workers: primary, primary: 0, n: 1 } : { workers, primary, n };
  };
  const cpuOf = (kind) => Object.fromEntries(['workers_1', 'workers_2'].map((id) => {
    const rs = by(kind, id).map(routerCpu);
    const inst = by(kind, id).map((x) => x.cpu[`${id === 'workers_1' ? 'w1' : 'w2'}:inst-blue`]?.us_per_req ?? NaN);
    return [id, { worker_us_per_req: median(rs.map((c) => c.workers)), primary_us_per_req: median(rs.map((c) => c.primary)), instance_us_per_req: median(inst), workers: median(rs.map((c) => c.n)) }];
  }));
  const workersCpu = { max: cpuOf('workers'), rate: cpuOf('workers_rate') };
  const p99 = (x) => x.p99_us / 1000;
  const p50 = (x) => x.p50_us / 1000;
  const latency = {};
  for (const { kind } of levels) {
    const k = kind === 'rate' ? '' : '_at_half_router_max';
    latency[`added_p99_ms${k}`] = pair(kind, 'router', 'direct', (x, y) => p99(x) - p99(y));
    latency[`added_p50_ms${k}`] = pair(kind, 'router', 'direct', (x, y) => p50(x) - p50(y));
    if (kind === 'rate') latency.nginx_added_p99_ms = pair(kind, 'nginx', 'direct', (x, y) => p99(x) - p99(y));
    latency[`mirror_p99_ratio${k}`] = pair(kind, 'router_mirror', 'router_blue', (x, y) => p99(x) / p99(y));
    latency[`mirror_p99_ratio_vs_split${k}`] = pair(kind, 'router_mirror', 'router', (x, y) => p99(x) / p99(y));
  }
  latency.c1_added_p50_ms = pair('c1', 'router', 'direct', (x, y) => p50(x) - p50(y));
  latency.c1_added_p99_ms = pair('c1', 'router', 'direct', (x, y) => p99(x) - p99(y));
  const med = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { median: median(v), per_round: v }]));
  return {
    max: stats('max'),
    levels: levels.map((l) => ({ kind: l.kind, target_rps: l.rate, of: l.of, conns: l.conns, scenarios: stats(l.kind) })),
    c1: stats('c1'),
    pyjs: stats('pyjs'),
    workers: stats('workers'),
    workers_at_rate: stats('workers_rate'),
    workers_cpu: workersCpu,
    paired: { ...med(ratios), ...med(latency) },
    summary: {
      workers_2_over_1: median(ratios.workers_2_over_1),
      router_worker_cpu_us_per_request_1: workersCpu.max.workers_1.worker_us_per_req,
      router_worker_cpu_us_per_request_2: workersCpu.max.workers_2.worker_us_per_req,
      router_primary_cpu_us_per_request_2: workersCpu.max.workers_2.primary_us_per_req,
      router_worker_cpu_us_per_request_at_rate_1: workersCpu.rate.workers_1.worker_us_per_req,
      router_worker_cpu_us_per_request_at_rate_2: workersCpu.rate.workers_2.worker_us_per_req,
      router_cpu_us_per_request: median(by('max', 'router').map((x) => x.cpu.router?.us_per_req ?? NaN)),
      py_over_js: median(ratios.py_over_js),
      router_over_direct: median(ratios.router_over_direct),
      router_over_nginx: median(ratios.router_over_nginx),
      added_p99_ms: median(latency.added_p99_ms),
      mirror_p99_ratio: median(latency.mirror_p99_ratio),
      ...(latency.added_p99_ms_at_half_router_max
        ? {
            rate_router_rps: levels[1].rate,
            added_p99_ms_at_half_router_max: median(latency.added_p99_ms_at_half_router_max),
            mirror_p99_ratio_at_half_router_max: median(latency.mirror_p99_ratio_at_half_router_max),
          }
        : {}),
    },
    runs,
  };
}

function table(rows, header) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const line = (r) => r.map((c, i) => (i < 2 ? String(c).padEnd(widths[i]) : String(c).padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function report(res, scenarios) {
  const cpuText = (cpu) => Object.entries(cpu).filter(([, v]) => v.pct >= 1).map(([n, v]) => `${n} ${v.pct}% (${v.us_per_req} us/req)`).join(', ');
  const dir = res.max.direct;
  const pr = res.paired;
  const xDirect = (id) => (id === 'direct' ? 1 : pr[`${id}_over_direct`]?.median);
  log('');
  log(`Max throughput: wrk -t1 -c${res.config.conns} -d${res.config.seconds}s, ${res.config.rounds} rounds interleaved, regime ${res.config.regime}. ` +
    `x direct = median of same-round ratios.`);
  log(table(scenarios.filter((s) => res.max[s.id]).map((s) => {
    const m = res.max[s.id];
    return [s.id, s.label, fmtInt(m.rps_median), `${fmtInt(m.rps_min)}-${fmtInt(m.rps_max)}`, f2(xDirect(s.id)), f2(m.p50_ms), f2(m.p99_ms), m.errors, `${Math.round(m.cpus.cpu0_busy)}/${Math.round(m.cpus.cpu1_busy)}`, cpuText(m.cpu)];
  }), ['scenario', 'what', 'rps', 'min-max', 'x direct', 'p50 ms', 'p99 ms', 'errors', 'cpu0/1 %', 'CPU by process: % of a core (us/request)']));
  log('');
  for (const level of res.levels) {
    log(`Fixed rate: ${fmtInt(level.target_rps)} rps offered (${level.of}), wrk -t1 -c${level.conns} -d${res.config.rateSeconds}s paced by delay(), ${res.config.rounds} rounds.`);
    log(table(scenarios.filter((s) => level.scenarios[s.id]).map((s) => {
      const m = level.scenarios[s.id];
      const short = m.rps_median < 0.95 * level.target_rps ? ' SATURATED' : '';
      return [s.id, s.label, `${fmtInt(m.rps_median)}${short}`, f2(m.p50_ms), `${f2(m.p99_ms)} (${f2(m.p99_ms_min)}-${f2(m.p99_ms_max)})`, m.errors, `${Math.round(m.cpus.cpu0_busy)}/${Math.round(m.cpus.cpu1_busy)}`, cpuText(m.cpu)];
    }), ['scenario', 'what', 'achieved', 'p50 ms', 'p99 ms (min-max)', 'errors', 'cpu0/1 %', 'CPU by process: % of a core (us/request)']));
    log('');
  }
  if (res.c1.direct) {
    const f3 = (x) => (Number.isFinite(x) ? x.toFixed(3) : 'nan');
    log(`One connection (wrk -t1 -c1 -d${res.config.c1Seconds}s): direct p50 ${f3(res.c1.direct.p50_ms)} ms (${fmtInt(res.c1.direct.rps_median)} rps), ` +
      `router p50 ${f3(res.c1.router.p50_ms)} ms (${fmtInt(res.c1.router.rps_median)} rps); added p50 ${f3(pr.c1_added_p50_ms.median)} ms (budget <= 0.25). ` +
      '(p99 at -c1 is left out: see the note on wrk\'s latency correction.)');
  }
  log('');
  log('Paired ratios (median over rounds; per round in brackets):');
  const show = (k, label) => log(`  ${label.padEnd(44)} ${f2(pr[k].median).padStart(6)}  [${pr[k].per_round.map(f2).join(' ')}]`);
  show('router_over_direct', 'router/direct throughput (budget >= 0.8)');
  show('router_over_nginx', 'router/nginx throughput (budget >= 1.2)');
  show('nginx_over_direct', 'nginx/direct throughput');
  show('mirror_over_router_blue', 'router+mirror / router blue=100 throughput');
  show('added_p99_ms', 'added p99 ms at half direct max (goal <= 2)');
  show('added_p50_ms', 'added p50 ms at half direct max');
  show('nginx_added_p99_ms', 'nginx added p99 ms at half direct max');
  show('mirror_p99_ratio', 'p99 mirror / blue=100, half direct max (<= 1.05)');
  show('mirror_p99_ratio_vs_split', 'p99 mirror / blue=90 green=10, half direct max');
  if (pr.added_p99_ms_at_half_router_max) {
    show('added_p99_ms_at_half_router_max', 'added p99 ms at half router max (goal <= 1)');
    show('added_p50_ms_at_half_router_max', 'added p50 ms at half router max');
    show('mirror_p99_ratio_at_half_router_max', 'p99 mirror / blue=100, half router max');
    show('mirror_p99_ratio_vs_split_at_half_router_max', 'p99 mirror / blue=90 green=10, half router max');
  }

  if (pr.py_over_js && res.pyjs.py_router) {
    log('');
    log(`Python vs JavaScript through the same router (endpoint ${PY_ENDPOINT}, wrk -t1 -c${res.config.conns} -d${res.config.seconds}s, regime free, rounds alternate which goes first):`);
    log(table(['py_router', 'js_router'].filter((id) => res.pyjs[id]).map((id) => {
      const m = res.pyjs[id];
      return [id, m.label, fmtInt(m.rps_median), `${fmtInt(m.rps_min)}-${fmtInt(m.rps_max)}`, f2(m.p50_ms), f2(m.p99_ms), m.errors, `${Math.round(m.cpus.cpu0_busy)}/${Math.round(m.cpus.cpu1_busy)}`, cpuText(m.cpu)];
    }), ['scenario', 'what', 'rps', 'min-max', 'p50 ms', 'p99 ms', 'errors', 'cpu0/1 %', 'CPU by process: % of a core (us/request)']));
    show('py_over_js', 'score.py / score.mjs via router (goal >= 0.9)');
  }

  if (res.workers.workers_1 && res.workers.workers_2) {
    log('');
    log(`Router workers, 1 vs 2 (two more servers, identical but for --router-workers; endpoint ${ENDPOINT}, blue=100, one instance; ` +
      `wrk -t1 -c${res.config.conns} -d${res.config.seconds}s, regime free on ${res.info.cpus} CPUs, rounds alternate which goes first):`);
    log(table(['workers_1', 'workers_2'].map((id) => {
      const m = res.workers[id];
      return [id, m.label, fmtInt(m.rps_median), `${fmtInt(m.rps_min)}-${fmtInt(m.rps_max)}`, f2(m.p50_ms), f2(m.p99_ms), m.errors, `${Math.round(m.cpus.cpu0_busy)}/${Math.round(m.cpus.cpu1_busy)}`, cpuText(m.cpu)];
    }), ['scenario', 'what', 'rps', 'min-max', 'p50 ms', 'p99 ms', 'errors', 'cpu0/1 %', 'CPU by process: % of a core (us/request)']));
    show('workers_2_over_1', '2 workers / 1 worker throughput');
    for (const [k, what] of [['max', 'at max throughput'], ['rate', `at ${fmtInt(res.workers_rate)} rps for both (half of one worker's max)`]]) {
      const c = res.workers_cpu[k];
      log(`  CPU per request ${what}: router 1 worker ${c.workers_1.worker_us_per_req} us; 2 workers ${c.workers_2.worker_us_per_req} us in the workers ` +
        `(together) + ${c.workers_2.primary_us_per_req} us in the primary (control plane, traffic-log writer, meters); instance ${c.workers_1.instance_us_per_req} vs ${c.workers_2.instance_us_per_req} us`);
    }
    const r = res.workers_at_rate;
    if (r.workers_1 && r.workers_2) log(`  p50 / p99 at that rate: 1 worker ${f2(r.workers_1.p50_ms)} / ${f2(r.workers_1.p99_ms)} ms, 2 workers ${f2(r.workers_2.p50_ms)} / ${f2(r.workers_2.p99_ms)} ms`);
  }

  // Event loop and GC of every Node process, per phase (bench/probe.mjs), and where stalls came from.
  const phases = [['max', res.max], ...res.levels.map((l) => [l.kind, l.scenarios]), ['pyjs', res.pyjs ?? {}], ['workers', res.workers ?? {}], ['workers_rate', res.workers_at_rate ?? {}]];
  const rows = [];
  const gcText = (gc) => Object.entries(gc).filter(([k]) => k === 'scavenge' || k === 'mark-compact').map(([k, v]) => `${k === 'scavenge' ? 'scav' : 'mc'} ${v.count}x ${Math.round(v.total_ms)}ms max ${v.max_ms.toFixed(1)}`).join(', ');
  for (const [kind, scns] of phases) {
    for (const [id, m] of Object.entries(scns)) {
      for (const [proc, p] of Object.entries(m.probe ?? {})) {
        // The processes the scenario's requests pass through; idle ones only show the machine's noise.
        const busy = (m.cpu[proc]?.pct ?? 0) >= 5;
        if (!busy) continue;
        const causes = Object.entries(p.stalls_by_cause_all_rounds).map(([c, v]) => `${v} ${c}`).join(' ');
        rows.push([`${kind}/${id}`, proc, `${p.eld_ms.p50.toFixed(2)}/${p.eld_ms.p99.toFixed(2)}/${p.eld_ms.max.toFixed(1)}`, gcText(p.gc) || '-',
          `${p.stalls_over_5ms_median}${causes ? ` (${causes})` : ''}`, f2(m.runqueue_wait_ms_per_s?.[proc])]);
      }
    }
  }
  if (rows.length) {
    log('');
    log('Event loop and GC per process, medians over rounds (bench/probe.mjs; processes using >= 5% of a core in that run). eld = event-loop delay ' +
      'beyond a 1 ms timer, p50/p99/max ms; GC pauses per run; stalls = times the loop was > 5 ms late, with their cause over all rounds ' +
      '(gc: GC pauses filled it; busy: the process ran; descheduled: it did not get the CPU; mixed); runq = ms per second its main thread waited for a CPU.');
    log(table(rows, ['phase/scenario', 'process', 'eld p50/p99/max', 'GC (scavenge, mark-compact)', 'stalls > 5ms', 'runq ms/s']));
  }

  // Notes: what limits the numbers.
  const notes = [];
  const totalErr = res.runs.reduce((a, x) => a + x.errors, 0);
  notes.push(cfg.regime === 'pinned'
    ? 'Regime: pinned. wrk runs on CPU 1; every server-side process (direct servers, nginx master+worker, the infergate server with its ' +
      'control plane and router, and the instance hosts) on CPU 0. The server side has exactly one core, so a throughput ratio is a ratio of ' +
      'CPU cost per request; ROUTER runs 2 processes per request on that core (router + instance), DIRECT one, NGINX two (nginx + upstream).'
    : 'Regime: free. No CPU affinity: wrk, servers and instances share both cores as the scheduler likes, so multi-process scenarios ' +
      '(router + instance, nginx + upstream) can use two cores while DIRECT uses one, and wrk takes CPU from all of them.');
  if (dir) {
    notes.push(`At max throughput DIRECT kept CPU0/CPU1 ${Math.round(dir.cpus.cpu0_busy)}%/${Math.round(dir.cpus.cpu1_busy)}% busy (incl. softirq); ` +
      `the direct server used ${dir.cpu['direct-a']?.pct ?? '?'}% of a core, wrk ${dir.cpu.wrk?.pct ?? '?'}% (${dir.cpu.wrk?.us_per_req ?? '?'} us/request). ` +
      'A process at ~100% of a core is what limits that scenario; us/request is steadier than rps.');
  }
  notes.push('wrk 4 corrects its latency histogram for coordinated omission: after the run it adds synthetic samples for every response ' +
    'slower than twice the mean per-connection interval (runtime / (requests / connections)), at n - interval, n - 2 x interval, .... ' +
    `At the fixed rates that interval is ~${Math.round((res.levels[0].conns / res.levels[0].target_rps) * 1000)} ms, so only responses >= ~${Math.round((2 * res.levels[0].conns / res.levels[0].target_rps) * 1000)} ms ` +
    'are amplified; at max throughput and at -c1 it is microseconds, so any pause (GC, a timer) is multiplied into the tail. ' +
    'All p99 here are wrk\'s corrected figures, as reference/perf-baselines used; p50 is barely affected.');
  notes.push('Noise (reference/perf-baselines.md): rps of one configuration varies 10-35% run to run on this shared VM; differences under ~20% ' +
    'between scenarios are not significant; p99 is the noisiest figure (often 2x between runs). Use the paired ratios.');
  const lv = res.levels[0];
  notes.push(`Fixed rate: wrk 4 has no -R; bench/wrk/post.lua paces with delay() from one schedule of ${fmtInt(lv.target_rps)} slots/s over ` +
    `${lv.conns} connections. wrk's timers have 1 ms resolution, so requests leave in bursts of ~${Math.round(lv.target_rps / 1000)} per ms ` +
    '(the same for every scenario); p99 includes draining such a burst. Latency is measured from when each request is written.');
  for (const level of res.levels) {
    const unsustained = Object.entries(level.scenarios).filter(([, v]) => v.rps_median < 0.95 * level.target_rps).map(([k]) => k);
    if (unsustained.length) {
      notes.push(`SATURATED at ${fmtInt(level.target_rps)} rps (${level.of}): ${unsustained.join(', ')} achieved < 95% of the offered rate, so ` +
        `their p99 there is that of an overloaded server (queueing over ${level.conns} connections), not added latency` +
        (level.kind === 'rate' && res.levels.length > 1 ? `; the second fixed-rate level (${fmtInt(res.levels[1].target_rps)} rps) shows the router below saturation.` : '.'));
    }
  }
  notes.push(`Deployments use request_settings.max_concurrent_requests_per_instance: ${cfg.maxConcurrent} (Azure's default 1 admits only 2 pending ` +
    'requests per instance and answers 429 beyond, which at -c32 would measure rejections).');
  const dirty = res.runs.filter((x) => x.dirty);
  if (dirty.length) notes.push(`${dirty.length} run(s) had other processes using > 20% CPU even after a re-run: ${dirty.map((x) => `${x.kind}/${x.scenario}/r${x.round + 1}`).join(', ')}.`);
  notes.push(totalErr === 0 ? 'No failed requests (wrk counted no connect/read/write/timeout errors and no non-2xx answers) in any run.'
    : `FAILED REQUESTS: ${res.runs.filter((x) => x.errors).map((x) => `${x.kind}/${x.scenario}/r${x.round + 1}: ${x.errors} (non-2xx ${x.err_status}, timeout ${x.err_timeout}, read ${x.err_read}, connect ${x.err_connect})`).join('; ')}. See error_diagnosis in the JSON.`);
  if (cfg.serverArgs.length) notes.push(`The infergate server ran with extra arguments: ${cfg.serverArgs.join(' ')} (BENCH_SERVER_ARGS).`);
  if (res.router_gc) {
    notes.push(`GC in the infergate server process (node --trace-gc, whole bench): ${Object.entries(res.router_gc).map(([k, v]) => `${k} ${v.count}x, max pause ${v.max_ms} ms, total ${Math.round(v.total_ms)} ms`).join('; ')}.`);
  }
  if (res.traffic_log_bytes !== undefined) notes.push(`The router wrote ${(res.traffic_log_bytes / 1e6).toFixed(0)} MB of traffic log (<workspace>/logs/traffic.jsonl) during the bench; that work is part of its cost.`);
  if (res.server_log_problems.length) notes.push(`infergate server log lines mentioning errors: ${res.server_log_problems.length} (in the JSON).`);
  if (res.nginx_error_log.length) notes.push(`nginx error.log lines: ${res.nginx_error_log.length} (in the JSON).`);
  log('');
  log('Notes:');
  for (const n of notes) log(`  - ${n}`);
  log('');
}

try {
  await main();
} catch (err) {
  console.error(`bench: failed: ${err instanceof Error ? err.stack : err}`);
  for (const e of started) if (e.err.trim()) console.error(`--- ${e.name} stderr (tail)\n${e.err.trim().split('\n').slice(-20).join('\n')}`);
  process.exitCode = 1;
} finally {
  await stopAll();
  if (!cfg.keep) rmSync(tmp, { recursive: true, force: true });
  if (probeDirPath !== '') rmSync(probeDirPath, { recursive: true, force: true });
  for (const d of socketDirs) {
    try {
      if (d.startsWith(tmpdir()) && readdirSync(d).length === 0) rmdirSync(d);
    } catch {}
  }
}
