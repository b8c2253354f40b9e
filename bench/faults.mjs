#!/usr/bin/env node
// Faults under load (issue 8, DESIGN.md "Reliability"): a real `infergate server` serves constant load
// from keep-alive clients while we kill -9, in turn,
//   instance  one instance host process of a JS deployment with instance_count 2
//   worker    one Python worker process of a Python deployment with instance_count 2
//   server    the infergate server itself, then start it again through the CLI (same workspace, ports)
// and measure, per kill: requests in flight at the kill, requests that failed, the time until a
// replacement serves (an answer from a new instance / worker pid), and for the server the time from the
// restart command to the first answer. Each fault is repeated FAULTS_REPS times; the last line is a JSON
// summary of medians. See bench/README.md.
//
// env: FAULTS_REPS (3), FAULTS_CONNS (8 keep-alive clients), FAULTS_SLEEP_MS (5: what each request asks
//      the scoring script to wait, so that requests are in flight at the kill), FAULTS_KEEP=1 keeps the
//      temp directory, FAULTS_SERVER_ARGS: extra arguments for `infergate server`.
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const FIXTURES = join(ROOT, 'test', 'fixtures');
const env = process.env;
const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const cfg = {
  reps: Math.max(1, Math.floor(num(env.FAULTS_REPS, 3))),
  conns: Math.max(1, Math.floor(num(env.FAULTS_CONNS, 8))),
  sleepMs: Math.max(0, num(env.FAULTS_SLEEP_MS, 5)),
  keep: env.FAULTS_KEEP === '1',
  serverArgs: (env.FAULTS_SERVER_ARGS ?? '').split(/\s+/).filter(Boolean),
};

const log = (...a) => console.log(...a);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (s.length === 0) return null;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) {
  log('faults: dist/ is missing; run `npm run build` first');
  process.exit(2);
}

const tmp = mkdtempSync(join(tmpdir(), 'infergate-faults-'));
const home = join(tmp, 'workspace');
const cliEnv = { ...env, INFERGATE_HOME: home };
delete cliEnv.INFERGATE_URL;

// ---------------------------------------------------------------------------------------------------
// Processes: the server runs in its own process group; everything we started is stopped on exit.

let server = null; // { child, out, err }
const servers = [];

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function childPids(pid) {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const port = s.address().port;
      s.close(() => res(port));
    });
  });
}

function cli(args) {
  return new Promise((res) => {
    execFile(process.execPath, [BIN, ...args], { env: cliEnv, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      res({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

async function ok(args) {
  const r = await cli(args);
  if (r.code !== 0) throw new Error(`infergate ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

let ports = null;

/** Starts the server (same workspace and ports every time); resolves once it printed its router address. */
function startServer() {
  const child = spawn(process.execPath, [BIN, 'server', '--workspace', home, '--port', String(ports.api), '--router-port', String(ports.router), ...cfg.serverArgs], {
    env: cliEnv,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const entry = { child, out: '', err: '' };
  child.stdout.on('data', (c) => (entry.out += c.toString()));
  child.stderr.on('data', (c) => (entry.err = (entry.err + c.toString()).slice(-200_000)));
  servers.push(entry);
  server = entry;
  return new Promise((res, rej) => {
    const timer = setTimeout(() => rej(new Error(`server did not start:\n${entry.out}\n${entry.err}`)), 30_000);
    child.stdout.on('data', () => {
      if (entry.out.includes('router:')) {
        clearTimeout(timer);
        res(entry);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      rej(new Error(`server exited (${code}):\n${entry.out}\n${entry.err}`));
    });
  });
}

function descendantsOf(pid) {
  const out = [];
  const stack = childPids(pid);
  while (stack.length) {
    const p = stack.pop();
    out.push(p);
    stack.push(...childPids(p));
  }
  return out;
}

let instancePids = new Set(); // every instance/worker pid seen, for the orphan check at the end
function killEverything() {
  for (const e of servers) {
    const pid = e.child.pid;
    if (pid === undefined) continue;
    for (const p of [...descendantsOf(pid), -pid, pid]) {
      try {
        process.kill(p, 'SIGKILL');
      } catch {}
    }
  }
  for (const p of instancePids) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {}
  }
}
process.on('exit', killEverything);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(sig, () => {
    log(`\nfaults: ${sig}, stopping everything it started`);
    killEverything();
    if (!cfg.keep) rmSync(tmp, { recursive: true, force: true });
    process.exit(130);
  });
}

async function stopServer() {
  const c = server?.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const gone = new Promise((r) => c.once('exit', r));
  c.kill('SIGTERM');
  await Promise.race([gone, sleep(10_000)]);
}

// ---------------------------------------------------------------------------------------------------
// Load: `conns` keep-alive clients, each POSTing in a loop. Every request is recorded with its start
// and end time (performance.now()), its status (0: a connection error) and the pid that answered.

class Load {
  constructor(url, key, body) {
    this.url = new URL(url);
    this.key = key;
    this.body = Buffer.from(body);
    this.records = [];
    this.inflight = new Set();
    this.running = false;
    this.agent = new Agent({ keepAlive: true, maxSockets: cfg.conns });
  }

  start() {
    this.running = true;
    this.workers = Array.from({ length: cfg.conns }, () => this.worker());
  }

  async stop() {
    this.running = false;
    await Promise.all(this.workers);
    this.agent.destroy();
  }

  one() {
    return new Promise((res) => {
      const rec = { t0: performance.now(), t1: 0, status: 0, pid: 0 };
      this.inflight.add(rec);
      const done = () => {
        rec.t1 = performance.now();
        this.inflight.delete(rec);
        this.records.push(rec);
        res(rec);
      };
      const req = request(this.url, { method: 'POST', agent: this.agent, headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json', 'content-length': this.body.length }, timeout: 15_000 }, (r) => {
        const parts = [];
        r.on('data', (c) => parts.push(c));
        r.on('end', () => {
          rec.status = r.statusCode;
          if (r.statusCode === 200) {
            try {
              rec.pid = JSON.parse(Buffer.concat(parts).toString()).pid ?? 0;
            } catch {}
          } else rec.body = Buffer.concat(parts).toString().slice(0, 200);
          done();
        });
        r.on('error', () => done());
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => {
        rec.error = e.code ?? e.message;
        done();
      });
      req.end(this.body);
    });
  }

  async worker() {
    while (this.running) {
      const r = await this.one();
      // A refused connection (the server is down) fails at once: pace the retries like a client would.
      if (r.status === 0) await sleep(10);
    }
  }
}

async function untilTrue(what, fn, timeoutMs, everyMs = 10) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Pids answering in the last `ms` of the load. */
function recentPids(load, ms) {
  const since = performance.now() - ms;
  const s = new Set();
  for (let i = load.records.length - 1; i >= 0 && load.records[i].t1 >= since; i--) if (load.records[i].pid) s.add(load.records[i].pid);
  return s;
}

/**
 * One kill under load. `victim()` picks and returns a pid to kill (after the load has run a second);
 * the replacement is the first answer from a pid not seen before the kill.
 */
async function killUnderLoad(load, victim, wantPids) {
  await untilTrue(`${wantPids} instances answering`, async () => recentPids(load, 500).size >= wantPids, 20_000, 50);
  const seen = new Set(load.records.map((r) => r.pid).filter(Boolean));
  const pid = victim(recentPids(load, 500));
  const before = load.records.length;
  const inflight = load.inflight.size;
  const tKill = performance.now();
  process.kill(pid, 'SIGKILL');
  instancePids.add(pid);
  let replacedAt = null;
  await untilTrue('a replacement to serve', async () => {
    for (let i = before; i < load.records.length; i++) {
      const r = load.records[i];
      if (r.pid && !seen.has(r.pid) && r.t1 > tKill) {
        replacedAt = r.t1;
        return true;
      }
    }
    return false;
  }, 30_000);
  await sleep(500); // let stragglers finish
  const after = load.records.slice(before).concat(load.records.slice(0, before).filter((r) => r.t1 > tKill));
  const failed = after.filter((r) => r.status !== 200);
  return { victim: pid, in_flight_at_kill: inflight, failed: failed.length, failures: summarise(failed), replacement_ms: Math.round(replacedAt - tKill) };
}

function summarise(failed) {
  const by = {};
  for (const r of failed) {
    const k = r.status ? String(r.status) : r.error ?? 'error';
    by[k] = (by[k] ?? 0) + 1;
  }
  return by;
}

// ---------------------------------------------------------------------------------------------------

async function deploy(endpoint, fixture, script, settings) {
  const dir = join(tmp, 'scratch', endpoint);
  await ok(['online-endpoint', 'create', '-n', endpoint]);
  cpSync(join(FIXTURES, fixture), dir, { recursive: true });
  writeFileSync(join(dir, 'd.yml'), `name: blue\nendpoint_name: ${endpoint}\ncode_configuration: {code: ./, scoring_script: ${script}}\ninstance_type: Standard_DS3_v2\ninstance_count: 2\nrequest_settings: ${settings}\n`);
  await ok(['online-deployment', 'create', '-f', join(dir, 'd.yml'), '--all-traffic']);
  const key = (await ok(['online-endpoint', 'get-credentials', '-n', endpoint, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ok(['online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  return { key, uri };
}

async function main() {
  ports = { api: await freePort(), router: await freePort() };
  log(`faults: workspace ${home}, ${cfg.conns} keep-alive clients, ${cfg.reps} repetitions, requests wait ${cfg.sleepMs} ms in the scoring script`);
  await startServer();
  const js = await deploy('faults-js', 'js-dataplane', 'score.mjs', '{max_concurrent_requests_per_instance: 16, request_timeout_ms: 10000}');
  const py = await deploy('faults-py', 'py-behaviours', 'score.py', '{max_concurrent_requests_per_instance: 16, request_timeout_ms: 10000}');
  const results = { instance: [], worker: [], server: [] };

  // (a) an instance host process of the JS deployment
  {
    const load = new Load(js.uri, js.key, JSON.stringify({ sleep_ms: cfg.sleepMs }));
    load.start();
    for (let i = 0; i < cfg.reps; i++) {
      const r = await killUnderLoad(load, (pids) => [...pids][0], 2);
      log(`instance kill ${i + 1}: ${JSON.stringify(r)}`);
      results.instance.push(r);
    }
    await load.stop();
  }

  // (b) a Python worker (its instance host exits, as a dead worker leaves init() state unknown, and is restarted)
  {
    const load = new Load(py.uri, py.key, JSON.stringify({ op: 'sleep', seconds: cfg.sleepMs / 1000 }));
    load.start();
    for (let i = 0; i < cfg.reps; i++) {
      const r = await killUnderLoad(load, (pids) => [...pids][0], 2);
      log(`worker kill ${i + 1}: ${JSON.stringify(r)}`);
      results.worker.push(r);
    }
    await load.stop();
  }

  // (c) the server itself, then `infergate server` again on the same workspace and ports
  {
    const load = new Load(js.uri, js.key, JSON.stringify({ sleep_ms: cfg.sleepMs }));
    load.start();
    for (let i = 0; i < cfg.reps; i++) {
      await untilTrue('2 instances answering', async () => recentPids(load, 500).size >= 2, 30_000, 50);
      const old = server.child;
      const oldInstances = descendantsOf(old.pid);
      for (const p of oldInstances) instancePids.add(p);
      const before = load.records.length;
      const inflight = load.inflight.size;
      const tKill = performance.now();
      const exited = new Promise((r) => old.once('exit', r));
      process.kill(old.pid, 'SIGKILL');
      await exited;
      const tRestart = performance.now();
      await startServer();
      const tListening = performance.now();
      let servedAt = null;
      await untilTrue('the restarted server to serve', async () => {
        for (let j = before; j < load.records.length; j++) {
          const r = load.records[j];
          if (r.status === 200 && r.t0 > tRestart) {
            servedAt = r.t1;
            return true;
          }
        }
        return false;
      }, 30_000);
      // The old server's instances lost their backend with it: they must exit on their own (nobody else
      // will stop them). Time until the last one is gone, or null if some still run 15 s after the kill.
      let goneMs = null;
      await untilTrue('the old instances to exit', async () => oldInstances.every((p) => !alive(p)), 15_000 - (performance.now() - tKill), 50)
        .then(() => (goneMs = Math.round(performance.now() - tKill)))
        .catch(() => {});
      const orphans = oldInstances.filter(alive);
      const after = load.records.slice(before);
      const failed = after.filter((r) => r.status !== 200);
      const failedInFlight = after.filter((r) => r.t0 < tKill && r.status !== 200).length;
      const r = {
        in_flight_at_kill: inflight,
        failed_in_flight: failedInFlight,
        failed_while_down: failed.length - failedInFlight,
        failures: summarise(failed),
        restart_to_listening_ms: Math.round(tListening - tRestart),
        restart_to_serving_ms: Math.round(servedAt - tRestart),
        kill_to_serving_ms: Math.round(servedAt - tKill),
        old_instances: oldInstances.length,
        old_instances_gone_ms: goneMs,
        old_instances_alive_15s_after_kill: orphans.length,
      };
      log(`server kill ${i + 1}: ${JSON.stringify(r)}`);
      results.server.push(r);
    }
    await load.stop();
  }

  await stopServer();
  const pick = (xs, k) => median(xs.map((x) => x[k]));
  const summary = {
    reps: cfg.reps,
    conns: cfg.conns,
    instance: { in_flight_at_kill: pick(results.instance, 'in_flight_at_kill'), failed: pick(results.instance, 'failed'), replacement_ms: pick(results.instance, 'replacement_ms') },
    worker: { in_flight_at_kill: pick(results.worker, 'in_flight_at_kill'), failed: pick(results.worker, 'failed'), replacement_ms: pick(results.worker, 'replacement_ms') },
    server: {
      in_flight_at_kill: pick(results.server, 'in_flight_at_kill'),
      failed_in_flight: pick(results.server, 'failed_in_flight'),
      restart_to_serving_ms: pick(results.server, 'restart_to_serving_ms'),
      kill_to_serving_ms: pick(results.server, 'kill_to_serving_ms'),
      old_instances_gone_ms: pick(results.server, 'old_instances_gone_ms'),
      old_instances_alive_15s_after_kill: Math.max(...results.server.map((r) => r.old_instances_alive_15s_after_kill)),
    },
    runs: results,
  };
  log(`faults: ${JSON.stringify(summary)}`);
}

main()
  .catch((e) => {
    log(`faults: FAILED: ${e.stack ?? e}`);
    if (server) log(server.err.slice(-5000));
    process.exitCode = 1;
  })
  .finally(() => {
    killEverything();
    if (!cfg.keep) rmSync(tmp, { recursive: true, force: true });
    else log(`faults: kept ${tmp}`);
  });
