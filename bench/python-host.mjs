#!/usr/bin/env node
// The instance hosts side by side (not a test): the Node host (src/runtime/host.ts, what the process
// backend runs: one Python worker process behind it) and the Python host (src/runtime/python/
// infergate_host.py, what runs inside containers) twice: as deployed with WORKER_COUNT=1 ("python": the
// script runs in the host's own process, no relay hop) and forced to relay to one worker process
// ("python-relay", INFERGATE_PYTHON_HOST_RELAY=1: what WORKER_COUNT > 1 does, and what WORKER_COUNT=1 did
// before direct mode). All run bench/fixtures/python-rowsum/score.py (init() does nothing, run() sums two
// rows: the hosting is what is measured), driven by the router's own framed client (InstanceConnection
// over the Unix socket), in the same process, interleaved round by round:
//   sequential  BENCH_SEQ requests, one at a time (the latency of one hop through the host)
//   concurrent  BENCH_CONC requests, BENCH_WINDOW in flight at a time (the throughput of the relay)
// Prints req/s per round and the median of the rounds, then
// `bench-python-host: python/node seq=X conc=Y relay/node seq=X conc=Y`.
//
//   node --import tsx bench/python-host.mjs       (from the repository root; Debian's /usr/bin/python3)
// env: BENCH_ROUNDS (3), BENCH_SEQ (5000), BENCH_CONC (50000), BENCH_WINDOW (64), BENCH_PYTHON (/usr/bin/python3),
//      BENCH_PYTHON_HOST (another infergate_host.py to run as "python", e.g. a copy of an older version)
import { fork, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { decodeResponse } from '../src/protocol/frame.ts';
import { InstanceConnection } from '../src/protocol/client.ts';
import { HOST_MESSAGE_PREFIX } from '../src/protocol/messages.ts';

const ROOT = resolve(import.meta.dirname, '..');
const SCRIPT_DIR = join(ROOT, 'bench', 'fixtures', 'python-rowsum');
const PYTHON = process.env.BENCH_PYTHON || '/usr/bin/python3';
const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const ROUNDS = num(process.env.BENCH_ROUNDS, 3);
const SEQ = num(process.env.BENCH_SEQ, 5000);
const CONC = num(process.env.BENCH_CONC, 50000);
const WINDOW = num(process.env.BENCH_WINDOW, 64);
const PY_HOST = process.env.BENCH_PYTHON_HOST || join(ROOT, 'src/runtime/python/infergate_host.py');
const BODY = Buffer.from('{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}');
const HEADERS = ['content-type', 'application/json'];
const tmp = mkdtempSync(join(tmpdir(), 'ig-bench-pyhost-'));

function start(kind) {
  const socket = join(tmp, `${kind}.sock`);
  const env = { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socket, AZUREML_ENTRY_SCRIPT: 'score.py', AML_APP_ROOT: SCRIPT_DIR, AZUREML_MODEL_DIR: SCRIPT_DIR, INFERGATE_PYTHON: PYTHON };
  if (kind === 'python-relay') env.INFERGATE_PYTHON_HOST_RELAY = '1';
  const child =
    kind !== 'node'
      ? spawn(PYTHON, ['-u', kind === 'python' ? PY_HOST : join(ROOT, 'src/runtime/python/infergate_host.py')], { cwd: SCRIPT_DIR, env, stdio: ['ignore', 'pipe', 'ignore'] })
      : fork(join(ROOT, 'src/runtime/host.ts'), [], { execArgv: ['--import', 'tsx'], env, stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  return new Promise((res, rej) => {
    child.on('exit', (code) => rej(new Error(`${kind} host exited (${code})`)));
    const ready = () => res({ child, conn: new InstanceConnection({ socketPath: socket }) });
    if (kind === 'node') child.once('message', (m) => (m.type === 'ready' ? ready() : rej(new Error(JSON.stringify(m)))));
    else {
      let out = '';
      child.stdout.on('data', (c) => {
        out += c;
        if (out.includes(`${HOST_MESSAGE_PREFIX}{"type":"ready"`)) ready();
      });
    }
  });
}

function one(conn) {
  return new Promise((res, rej) =>
    conn.send('POST', '/score', HEADERS, 'bench', BODY, {
      deadline: performance.now() + 60_000,
      onResponse: (frame) => res(frame),
      onFailure: (reason) => rej(new Error(reason)),
    }),
  );
}

async function sequential(conn, n) {
  const t0 = performance.now();
  for (let i = 0; i < n; i++) await one(conn);
  return n / ((performance.now() - t0) / 1000);
}

async function concurrent(conn, n, window) {
  let sent = 0;
  const t0 = performance.now();
  const lane = async () => {
    while (sent < n) {
      sent++;
      await one(conn);
    }
  };
  await Promise.all(Array.from({ length: window }, lane));
  return n / ((performance.now() - t0) / 1000);
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const KINDS = ['node', 'python', 'python-relay'];
const hosts = {};
for (const kind of KINDS) hosts[kind] = await start(kind);
try {
  for (const [kind, h] of Object.entries(hosts)) {
    const answer = decodeResponse(Buffer.from(await one(h.conn))).body.toString();
    if (answer !== '[55, 55]') throw new Error(`${kind} host answered ${answer}`);
    await concurrent(h.conn, 5000, WINDOW); // warm-up
  }
  const results = Object.fromEntries(KINDS.map((k) => [k, { seq: [], conc: [] }]));
  for (let r = 1; r <= ROUNDS; r++) {
    for (const [kind, h] of Object.entries(hosts)) {
      const seq = await sequential(h.conn, SEQ);
      const conc = await concurrent(h.conn, CONC, WINDOW);
      results[kind].seq.push(seq);
      results[kind].conc.push(conc);
      console.log(`round ${r} ${kind.padEnd(12)} sequential ${seq.toFixed(0).padStart(6)} req/s   concurrent(${WINDOW}) ${conc.toFixed(0).padStart(6)} req/s`);
    }
  }
  const m = (kind, what) => median(results[kind][what]);
  for (const kind of KINDS) console.log(`median ${kind.padEnd(12)} sequential ${m(kind, 'seq').toFixed(0).padStart(6)} req/s   concurrent(${WINDOW}) ${m(kind, 'conc').toFixed(0).padStart(6)} req/s`);
  const ratio = (kind, what) => (m(kind, what) / m('node', what)).toFixed(2);
  console.log(`bench-python-host: python/node seq=${ratio('python', 'seq')} conc=${ratio('python', 'conc')} relay/node seq=${ratio('python-relay', 'seq')} conc=${ratio('python-relay', 'conc')}`);
} finally {
  for (const h of Object.values(hosts)) {
    h.conn.close();
    h.child.removeAllListeners('exit');
    h.child.kill('SIGTERM');
  }
  rmSync(tmp, { recursive: true, force: true });
}
