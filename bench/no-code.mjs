#!/usr/bin/env node
// No-code ONNX benchmark (issue 16): Open Inference Protocol infer on a small ONNX model, paired in one run.
//
//   DIRECT    a bare node:http server in its own process: onnxruntime-node, one session (one intra-op
//             thread, as the instance host), POST /v2/models/tiny/infer → JSON.parse, typed tensor,
//             session.run, JSON answer. The goal: infergate ≥ 0.8× this.
//   ROUTER    a real `infergate server` (temp workspace), an endpoint with key auth and two no-code
//             triton_model deployments of the same .onnx file, pinned with azureml-model-deployment:
//               plain    no batching
//               batched  properties infergate.batching.max_batch_size 32, max_delay_us BENCH_DELAY_US (500)
//             both with max_concurrent_requests_per_instance 64, one instance.
// The model: Y = Softmax(X·W + B), X float32 [N, 4] (bench builds it with onnx-proto, 213 bytes); each
// request one row. wrk -t1 -cBENCH_CONNS on each target, interleaved round by round after a warm-up, medians.
// Prints per-round lines, then exactly:
//   bench-no-code: router/direct=X.XX batched/plain=Y.YY
//
// Needs wrk; the CLI from dist/ (npm run build), or from src/ through tsx with BENCH_FROM_SOURCE=1 (or when
// dist/ is missing). Short by default (the machine is shared): BENCH_ROUNDS (3), BENCH_SECONDS (4),
// BENCH_WARMUP (2), BENCH_CONNS (32), BENCH_DELAY_US (500), BENCH_KEEP=1 keeps the temp dir.
import { execFile, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';

const ROOT = resolve(import.meta.dirname, '..');

// ---- the bare server (this file run as `no-code.mjs --direct <model.onnx> <port file>`) ----------------
if (process.argv[2] === '--direct') {
  const ort = await import('onnxruntime-node');
  const session = await ort.InferenceSession.create(process.argv[3], { executionProviders: ['cpu'], intraOpNumThreads: 1 });
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      try {
        const doc = JSON.parse(Buffer.concat(chunks).toString('utf8'));
        const t = doc.inputs[0];
        const x = new ort.Tensor('float32', Float32Array.from(t.data.flat(Infinity)), t.shape);
        const out = await session.run({ X: x });
        const y = out.Y;
        const body = JSON.stringify({ model_name: 'tiny', model_version: '1', outputs: [{ name: 'Y', datatype: 'FP32', shape: [...y.dims], data: Array.from(y.data) }] });
        res.writeHead(200, { 'content-type': 'application/json' }).end(body);
      } catch (e) {
        res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: String(e) }));
      }
    });
  });
  server.listen(0, '127.0.0.1', () => writeFileSync(process.argv[4], String(server.address().port)));
  process.on('SIGTERM', () => server.close(() => process.exit(0)));
} else {
  await main();
}

async function main() {
  const num = (v, d) => (v === undefined || v === '' || Number.isNaN(Number(v)) ? d : Number(v));
  const cfg = {
    rounds: Math.max(1, Math.floor(num(process.env.BENCH_ROUNDS, 3))),
    seconds: Math.max(1, num(process.env.BENCH_SECONDS, 4)),
    warmup: Math.max(0, num(process.env.BENCH_WARMUP, 2)),
    conns: Math.max(1, Math.floor(num(process.env.BENCH_CONNS, 32))),
    delayUs: Math.max(0, Math.floor(num(process.env.BENCH_DELAY_US, 500))),
    keep: process.env.BENCH_KEEP === '1',
  };
  const run = promisify(execFile);
  const median = (xs) => {
    const s = [...xs].sort((a, b) => a - b);
    const m = s.length >> 1;
    return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
  };
  try {
    execFileSync('sh', ['-c', 'command -v wrk'], { stdio: 'ignore' });
  } catch {
    console.error('bench-no-code: needs wrk (apt-get install wrk)');
    process.exit(2);
  }
  const dist = join(ROOT, 'dist', 'cli', 'main.js');
  const fromSource = process.env.BENCH_FROM_SOURCE === '1' || !existsSync(dist);
  const cliArgs = (args) =>
    fromSource
      ? ['--import', 'tsx', '--input-type=module', '--eval', `import { main } from ${JSON.stringify(pathToFileURL(join(ROOT, 'src', 'cli', 'main.ts')).href)}; process.exitCode = await main(process.argv.slice(1));`, '--', ...args]
      : [join(ROOT, 'bin', 'infergate.js'), ...args];

  const tmp = mkdtempSync(join(tmpdir(), 'infergate-no-code-bench-'));
  const children = [];
  const stopAll = async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode !== null || c.signalCode !== null ? null : new Promise((r) => c.once('exit', r)))));
    if (!cfg.keep) rmSync(tmp, { recursive: true, force: true });
  };
  process.on('SIGINT', () => void stopAll().then(() => process.exit(130)));

  try {
    // The model, built here (reference/dependencies.md "Making small ONNX test models").
    const { default: onnxProto } = await import('onnx-proto');
    const { onnx } = onnxProto;
    const F = onnx.TensorProto.DataType.FLOAT;
    const model = onnx.ModelProto.create({
      irVersion: 7,
      opsetImport: [{ domain: '', version: 13 }],
      graph: {
        name: 'tiny',
        node: [
          { opType: 'MatMul', input: ['X', 'W'], output: ['XW'] },
          { opType: 'Add', input: ['XW', 'B'], output: ['Z'] },
          { opType: 'Softmax', input: ['Z'], output: ['Y'], attribute: [{ name: 'axis', type: onnx.AttributeProto.AttributeType.INT, i: 1 }] },
        ],
        initializer: [
          { name: 'W', dims: [4, 3], dataType: F, floatData: [0.1, 0.2, 0.3, -0.1, 0.4, 0, 0.5, -0.2, 0.1, 0.3, 0.3, -0.4] },
          { name: 'B', dims: [3], dataType: F, floatData: [0, 0.5, -0.5] },
        ],
        input: [{ name: 'X', type: { tensorType: { elemType: F, shape: { dim: [{ dimParam: 'N' }, { dimValue: 4 }] } } } }],
        output: [{ name: 'Y', type: { tensorType: { elemType: F, shape: { dim: [{ dimParam: 'N' }, { dimValue: 3 }] } } } }],
      },
    });
    const modelFile = join(tmp, 'model', 'tiny.onnx');
    mkdirSync(join(tmp, 'model'), { recursive: true });
    writeFileSync(modelFile, onnx.ModelProto.encode(model).finish());
    const body = JSON.stringify({ inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }] });
    const lua = join(tmp, 'post.lua');
    writeFileSync(
      lua,
      [
        'wrk.method = "POST"',
        `wrk.body = ${JSON.stringify(body)}`,
        'wrk.headers["Content-Type"] = "application/json"',
        'local auth = os.getenv("BENCH_AUTH")',
        'if auth and auth ~= "" then wrk.headers["Authorization"] = auth end',
        'local d = os.getenv("BENCH_DEPLOYMENT")',
        'if d and d ~= "" then wrk.headers["azureml-model-deployment"] = d end',
        '',
      ].join('\n'),
    );

    // ---- direct ---------------------------------------------------------------------------------------
    const portFile = join(tmp, 'direct.port');
    const direct = spawn(process.execPath, [import.meta.filename, '--direct', modelFile, portFile], { stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(direct);
    for (let i = 0; i < 200 && !existsSync(portFile); i++) await new Promise((r) => setTimeout(r, 50));
    const directUrl = `http://127.0.0.1:${readFileSync(portFile, 'utf8')}/v2/models/tiny/infer`;

    // ---- infergate --------------------------------------------------------------------------------------
    const home = join(tmp, 'workspace');
    const env = { ...process.env, INFERGATE_HOME: home };
    delete env.INFERGATE_URL;
    delete env.INFERGATE_TOKEN;
    const server = spawn(process.execPath, cliArgs(['server', '--port', '0', '--router-port', '0', '--workspace', home, '--backend', 'process']), { cwd: ROOT, env, stdio: ['ignore', 'pipe', openSync(join(tmp, 'server.log'), 'w')] });
    children.push(server);
    await new Promise((res, rej) => {
      let out = '';
      server.stdout.on('data', (c) => (out += c) && out.includes('router:') && res());
      server.once('exit', (code) => rej(new Error(`server exited (${code}); see ${join(tmp, 'server.log')}`)));
    });
    const cli = (...args) => run(process.execPath, cliArgs(args), { env, cwd: ROOT, maxBuffer: 1 << 22 });
    writeFileSync(join(tmp, 'endpoint.yml'), 'name: bench-onnx\nauth_mode: key\n');
    await cli('ml', 'online-endpoint', 'create', '-f', join(tmp, 'endpoint.yml'), '-o', 'none');
    const dep = (name, extra) =>
      `name: ${name}\nendpoint_name: bench-onnx\nmodel:\n  name: tiny\n  version: 1\n  path: ${modelFile}\n  type: triton_model\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n` +
      `request_settings:\n  max_concurrent_requests_per_instance: 64\n${extra}`;
    writeFileSync(join(tmp, 'plain.yml'), dep('plain', ''));
    writeFileSync(join(tmp, 'batched.yml'), dep('batched', `properties:\n  infergate.batching.max_batch_size: '32'\n  infergate.batching.max_delay_us: '${cfg.delayUs}'\n`));
    await cli('ml', 'online-deployment', 'create', '-f', join(tmp, 'plain.yml'), '--all-traffic', '-o', 'none');
    await cli('ml', 'online-deployment', 'create', '-f', join(tmp, 'batched.yml'), '-o', 'none');
    const key = (await cli('ml', 'online-endpoint', 'get-credentials', '-n', 'bench-onnx', '-o', 'tsv', '--query', 'primaryKey')).stdout.trim();
    const uri = (await cli('ml', 'online-endpoint', 'show', '-n', 'bench-onnx', '-o', 'tsv', '--query', 'scoring_uri')).stdout.trim();
    const routerUrl = uri.replace(/\/score$/, '/v2/models/tiny/infer');

    const targets = [
      { name: 'direct', url: directUrl, auth: '', deployment: '' },
      { name: 'router', url: routerUrl, auth: `Bearer ${key}`, deployment: 'plain' },
      { name: 'router-batched', url: routerUrl, auth: `Bearer ${key}`, deployment: 'batched' },
    ];
    for (const t of targets) {
      const r = await fetch(t.url, { method: 'POST', body, headers: { 'content-type': 'application/json', ...(t.auth ? { authorization: t.auth } : {}), ...(t.deployment ? { 'azureml-model-deployment': t.deployment } : {}) } });
      const text = await r.text();
      if (r.status !== 200 || !text.includes('"name":"Y"')) throw new Error(`${t.name} answered ${r.status} ${text}`);
    }
    const wrk = async (t, seconds) => {
      const { stdout } = await run('wrk', ['-t1', `-c${cfg.conns}`, `-d${seconds}s`, '--latency', '-s', lua, t.url], { env: { ...process.env, BENCH_AUTH: t.auth, BENCH_DEPLOYMENT: t.deployment }, maxBuffer: 1 << 20 });
      const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
      const p99 = /^\s+99%\s+(\S+)/m.exec(stdout)?.[1] ?? '?';
      if (/Non-2xx or 3xx responses/.test(stdout) || /Socket errors/.test(stdout) || !Number.isFinite(rps)) throw new Error(`wrk against ${t.name} was not clean:\n${stdout}`);
      return { rps, p99 };
    };
    for (const t of targets) if (cfg.warmup) await wrk(t, cfg.warmup);
    const results = Object.fromEntries(targets.map((t) => [t.name, []]));
    for (let round = 1; round <= cfg.rounds; round++) {
      const line = [];
      for (const t of targets) {
        const r = await wrk(t, cfg.seconds);
        results[t.name].push(r.rps);
        line.push(`${t.name} ${r.rps.toFixed(0)} req/s (p99 ${r.p99})`);
      }
      console.log(`round ${round}: ${line.join(', ')}`);
    }
    const m = Object.fromEntries(targets.map((t) => [t.name, median(results[t.name])]));
    console.log(`medians (wrk -t1 -c${cfg.conns}, ${cfg.seconds} s x ${cfg.rounds}): direct ${m.direct.toFixed(0)}, router ${m.router.toFixed(0)}, router-batched ${m['router-batched'].toFixed(0)} req/s`);
    console.log(`bench-no-code: router/direct=${(m.router / m.direct).toFixed(2)} batched/plain=${(m['router-batched'] / m.router).toFixed(2)}`);
  } finally {
    await stopAll();
  }
}
