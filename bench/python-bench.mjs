#!/usr/bin/env node
// Python hosting benchmark (DESIGN.md "Budgets": Python scoring >= 10x the throughput of Flask on gunicorn
// with one worker — the architecture and default of Azure's own inference server — on the same score.py).
//
//   INFERGATE  a real `infergate server` (workspace in a temp dir), endpoint and deployment created with the
//              CLI from Azure's examples/azureml/managed/sample/{endpoint,blue-deployment}.yml (model-1:
//              its score.py and the real sklearn pickle; WORKER_COUNT 1, so one Python process), requests to
//              the scoring URI with the endpoint key, through the router and the framed instance protocol.
//              The deployment sets request_settings.max_concurrent_requests_per_instance=1000: Azure's
//              default (1) would turn most of 32 concurrent requests into 429s.
//   GUNICORN   bench/python_bench_flask.py (the same score.py, init() once, POST /score ->
//              run(body as text) -> json.dumps) on gunicorn, one sync worker.
// Two scoring scripts, each run by both hosts:
//   rowsum    bench/fixtures/python-rowsum/score.py: JSON parse + row sums, no model. The script of
//             reference/perf-baselines.md's anchor (gunicorn 1 worker 2.2k-2.7k req/s there): it measures
//             the hosting itself, which is what the >= 10x goal is about.
//   model-1   Azure's model-1 score.py with the real sklearn pickle and its per-request logging.info lines:
//             what a user's script costs on both hosts (sklearn's predict() bounds both).
// Both hosts are checked to answer each case's request with the canonical bytes first. Then wrk -t1 -c32
// on each, interleaved round by round (a warm-up run first), and the medians of requests/s are compared.
// The line before the last gives model-1's ratio; the last line printed is exactly (the rowsum case):
//   bench-python: infergate/gunicorn=X.XX
//
// Needs: npm run build (bin/infergate.js), wrk, gunicorn and Flask for /usr/bin/python3
// (apt-get install wrk gunicorn python3-flask), Debian's python3-sklearn / python3-joblib.
// env: BENCH_ROUNDS (3), BENCH_SECONDS (8), BENCH_WARMUP (2), BENCH_CONNS (32), BENCH_KEEP=1 keeps the temp dir.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';

const BENCH = import.meta.dirname;
const ROOT = resolve(BENCH, '..');
const BIN = join(ROOT, 'bin', 'infergate.js');
const SAMPLE = join(ROOT, 'examples', 'azureml', 'managed', 'sample');
const MODEL_1 = join(ROOT, 'examples', 'azureml', 'model-1');
const ROWSUM = join(BENCH, 'fixtures', 'python-rowsum');
const CASES = [
  {
    name: 'rowsum',
    endpoint: 'bench-rowsum',
    scorePy: join(ROWSUM, 'score.py'),
    modelDir: ROWSUM,
    request: '{"data": [[1,2,3,4,5,6,7,8,9,10],[10,9,8,7,6,5,4,3,2,1]]}',
    canonical: '[55, 55]',
  },
  {
    name: 'model-1',
    endpoint: 'my-endpoint',
    scorePy: join(MODEL_1, 'onlinescoring', 'score.py'),
    modelDir: MODEL_1,
    request: readFileSync(join(MODEL_1, 'sample-request.json'), 'utf8'),
    canonical: '[11055.977245525679, 4503.079536107787]',
  },
];
const PYTHON = '/usr/bin/python3';

const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
const cfg = {
  rounds: Math.max(1, Math.floor(num(process.env.BENCH_ROUNDS, 3))),
  seconds: Math.max(1, num(process.env.BENCH_SECONDS, 8)),
  warmup: Math.max(0, num(process.env.BENCH_WARMUP, 2)),
  conns: Math.max(1, Math.floor(num(process.env.BENCH_CONNS, 32))),
  keep: process.env.BENCH_KEEP === '1',
};
const run = promisify(execFile);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

function which(bin) {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
  });
}

// ---- prerequisites ------------------------------------------------------------------------------------------
const missing = [];
if (!existsSync(join(ROOT, 'dist', 'cli', 'main.js'))) missing.push('dist/ (run `npm run build`)');
if (!which('wrk')) missing.push('wrk (apt-get install wrk)');
if (!which('gunicorn')) missing.push('gunicorn (apt-get install gunicorn)');
try {
  execFileSync(PYTHON, ['-c', 'import flask, sklearn, joblib'], { stdio: 'ignore' });
} catch {
  missing.push('Flask / scikit-learn for /usr/bin/python3 (apt-get install python3-flask python3-sklearn python3-joblib)');
}
if (missing.length > 0) {
  console.error(`python-bench: missing ${missing.join(', ')}`);
  process.exit(2);
}

const tmp = mkdtempSync(join(tmpdir(), 'infergate-python-bench-'));
const children = [];
const stopAll = async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
  await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
  if (!cfg.keep) rmSync(tmp, { recursive: true, force: true });
};
process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));

function luaFor(c) {
  const file = join(tmp, `post-${c.name}.lua`);
  writeFileSync(
    file,
    [
      'wrk.method = "POST"',
      `wrk.body = ${JSON.stringify(c.request)}`,
      'wrk.headers["Content-Type"] = "application/json"',
      'local auth = os.getenv("BENCH_AUTH")',
      'if auth and auth ~= "" then wrk.headers["Authorization"] = auth end',
      '',
    ].join('\n'),
  );
  return file;
}

/** One wrk run; returns requests/s, refusing a run with errors or non-2xx answers. */
async function wrk(c, url, seconds, auth) {
  const { stdout } = await run('wrk', ['-t1', `-c${cfg.conns}`, `-d${seconds}s`, '--latency', '-s', c.lua, url], {
    env: { ...process.env, BENCH_AUTH: auth ?? '' },
    maxBuffer: 1 << 20,
  });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p99 = /^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '?';
  const bad = /Non-2xx or 3xx responses: (\d+)/.exec(stdout);
  const errors = /Socket errors: (.*)/.exec(stdout);
  if (bad || errors || !Number.isFinite(rps)) throw new Error(`wrk against ${url} was not clean:\n${stdout}`);
  return { rps, p99 };
}

async function check(c, name, url, auth) {
  const r = await fetch(url, { method: 'POST', body: c.request, headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) } });
  const text = await r.text();
  if (r.status !== 200 || text !== c.canonical) throw new Error(`${name} (${c.name}) answered ${r.status} ${text}`);
}

try {
  // ---- infergate ----------------------------------------------------------------------------------------
  const home = join(tmp, 'workspace');
  const env = { ...process.env, INFERGATE_HOME: home, INFERGATE_PYTHON: PYTHON };
  delete env.INFERGATE_URL;
  const server = spawn(process.execPath, [BIN, 'server', '--port', '0', '--router-port', '0', '--workspace', home], {
    env,
    stdio: ['ignore', 'pipe', openSync(join(tmp, 'infergate-server.log'), 'w')],
  });
  children.push(server);
  await new Promise((res, rej) => {
    let out = '';
    server.stdout.on('data', (c) => {
      out += c.toString();
      if (out.includes('router:')) res();
    });
    server.once('exit', (code) => rej(new Error(`infergate server exited (${code}); see ${tmp}/infergate-server.log`)));
  });
  const cli = (...args) => run(process.execPath, [BIN, ...args, '--workspace', home], { env });
  await cli('online-endpoint', 'create', '-f', join(SAMPLE, 'endpoint.yml'), '-o', 'none');
  await cli('online-deployment', 'create', '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic',
    '--set', 'request_settings.max_concurrent_requests_per_instance=1000', '-o', 'none');
  // The rowsum case: the same deployment file with the light script and no model.
  await cli('online-endpoint', 'create', '-n', 'bench-rowsum', '-o', 'none');
  await cli('online-deployment', 'create', '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic',
    '--set', 'endpoint_name=bench-rowsum', '--set', `code_configuration.code=${ROWSUM}`, '--set', 'model=null',
    '--set', 'request_settings.max_concurrent_requests_per_instance=1000', '-o', 'none');
  for (const c of CASES) {
    c.lua = luaFor(c);
    c.key = (await cli('online-endpoint', 'get-credentials', '-n', c.endpoint, '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
    c.scoringUri = (await cli('online-endpoint', 'show', '-n', c.endpoint, '-o', 'tsv', '--query', 'scoring_uri')).stdout.trim();
    c.auth = `Bearer ${c.key}`;
    await check(c, 'infergate', c.scoringUri, c.auth);
  }

  const versions = {
    node: process.version,
    wrk: (await run('wrk', ['-v']).catch((e) => ({ stdout: e.stdout ?? '' }))).stdout.split('\n')[0].trim(),
    gunicorn: (await run('gunicorn', ['--version'])).stdout.trim(),
    python: (await run(PYTHON, ['--version'])).stdout.trim(),
  };
  console.log(`python-bench: ${JSON.stringify(versions)}; wrk -t1 -c${cfg.conns}, ${cfg.rounds} rounds x ${cfg.seconds} s, warm-up ${cfg.warmup} s`);
  const ratios = {};
  for (const c of CASES) {
    // ---- gunicorn + Flask on this case's script ----------------------------------------------------------
    const port = await freePort();
    const gunicorn = spawn('gunicorn', ['-w', '1', '-b', `127.0.0.1:${port}`, '--chdir', BENCH, 'python_bench_flask:app'], {
      env: { ...process.env, AZUREML_MODEL_DIR: c.modelDir, BENCH_SCORE_PY: c.scorePy },
      stdio: ['ignore', 'ignore', openSync(join(tmp, `gunicorn-${c.name}.log`), 'w')],
    });
    children.push(gunicorn);
    const flaskUrl = `http://127.0.0.1:${port}/score`;
    for (let i = 0; ; i++) {
      try {
        await check(c, 'gunicorn', flaskUrl);
        break;
      } catch (err) {
        if (i > 150 || gunicorn.exitCode !== null) throw new Error(`gunicorn did not come up: ${err.message}; see ${tmp}/gunicorn-${c.name}.log`);
        await sleep(100);
      }
    }

    // ---- load ---------------------------------------------------------------------------------------------
    if (cfg.warmup > 0) {
      await wrk(c, c.scoringUri, cfg.warmup, c.auth);
      await wrk(c, flaskUrl, cfg.warmup);
    }
    const results = { infergate: [], gunicorn: [] };
    for (let round = 1; round <= cfg.rounds; round++) {
      // Alternate which goes first, so neither always runs on a machine still busy with the other.
      const order = round % 2 === 1 ? ['infergate', 'gunicorn'] : ['gunicorn', 'infergate'];
      for (const name of order) {
        const r = name === 'infergate' ? await wrk(c, c.scoringUri, cfg.seconds, c.auth) : await wrk(c, flaskUrl, cfg.seconds);
        results[name].push(r.rps);
        console.log(`${c.name.padEnd(8)} round ${round}: ${name.padEnd(9)} ${r.rps.toFixed(0).padStart(7)} req/s  p99 ${r.p99}`);
      }
    }
    const mi = median(results.infergate);
    const mg = median(results.gunicorn);
    ratios[c.name] = mi / mg;
    console.log(`${c.name}: median infergate ${mi.toFixed(0)} req/s, gunicorn ${mg.toFixed(0)} req/s (same score.py, one Python process each): ${(mi / mg).toFixed(2)}x`);
    gunicorn.kill('SIGTERM');
    await new Promise((r) => (gunicorn.exitCode !== null ? r() : gunicorn.once('exit', r)));
  }
  await stopAll();
  console.log(`bench-python (model-1, sklearn): infergate/gunicorn=${ratios['model-1'].toFixed(2)}`);
  console.log(`bench-python: infergate/gunicorn=${ratios.rowsum.toFixed(2)}`);
} catch (err) {
  console.error(`python-bench: ${err.stack ?? err}`);
  await stopAll();
  process.exit(1);
}
