// Issue 14 part 1: what `npm pack` produces is what a user installs. Packs a clean copy of the tree (the
// prepack build, not the dist/ lying in this checkout), installs the tarball with `npm install -g
// --prefix`, and runs Azure's deploy-and-score walkthrough with the installed `infergate` from a folder
// outside the repository. The install needs the npm registry: when it cannot be reached, or the install
// takes longer than INSTALL_BUDGET_MS, the install test is skipped with the reason, unless
// INFERGATE_REQUIRE_PACK=1.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import { after, before, test } from 'node:test';
import { curl, EXAMPLES, ROOT, SAMPLE_ANSWER, until } from '../e2e/harness.js';

const INSTALL_BUDGET_MS = 4 * 60_000;
const REQUIRE = process.env.INFERGATE_REQUIRE_PACK === '1';
const tmp = mkdtempSync(join(tmpdir(), 'infergate-pack-'));
// mkdtemp makes it 0700; the installed package lives below it, and instances run as uids of their own
// (instance isolation) that must read the package's instance host as they would under /usr/local.
chmodSync(tmp, 0o755);

interface Packed {
  filename: string;
  size: number;
  unpackedSize: number;
  files: { path: string }[];
}

/**
 * The environment for npm: under `npm test` npm exports npm_config_* and npm_package_* variables that
 * describe this checkout (its prefix, its package); the packing and the installing must not inherit them.
 */
function npmEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!/^npm_/i.test(k)) env[k] = v;
  return env;
}

function exec(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string; timedOut: boolean; ms: number }> {
  const started = Date.now();
  return new Promise((resolve) => {
    // detached: its own process group, so a timeout ends npm and the node-gyp build it runs.
    const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }, opts.timeoutMs);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr, timedOut, ms: Date.now() - started });
    });
  });
}

/** A checkout as `git clone` + `npm ci` leaves it: sources, no dist/; node_modules shared with this one. */
function cleanCopy(): string {
  const dir = join(tmp, 'checkout');
  const skip = new Set(['node_modules', 'dist', '.git', '.infergate', 'results', '__pycache__']);
  cpSync(ROOT, dir, {
    recursive: true,
    filter: (src) => {
      const rel = relative(ROOT, src);
      return rel === '' || !rel.split(sep).some((part) => skip.has(part) || part.endsWith('.tgz'));
    },
  });
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

let packed: Packed;
let tarball: string;
let checkout: string;

before(async () => {
  checkout = cleanCopy();
  const out = join(tmp, 'out');
  mkdirSync(out);
  const r = await exec('npm', ['pack', '--json', '--pack-destination', out], { cwd: checkout, env: npmEnv(), timeoutMs: 120_000 });
  assert.equal(r.code, 0, `npm pack failed:\n${r.stderr}`);
  packed = (JSON.parse(r.stdout) as Packed[])[0]!;
  tarball = join(out, packed.filename);
});

after(() => {
  rmSync(tmp, { recursive: true, force: true });
});

test('npm pack builds dist/ on prepack and ships it without tests, benches or sources', (t) => {
  const paths = packed.files.map((f) => f.path);
  t.diagnostic(`${packed.filename}: ${packed.size} bytes packed, ${packed.unpackedSize} bytes unpacked, ${paths.length} files`);
  for (const needed of ['package.json', 'README.md', 'bin/infergate.js', 'dist/cli/main.js', 'dist/main/server.js', 'dist/runtime/python/infergate_worker.py', 'dist/runtime/python/infergate_env_install.py']) {
    assert.ok(paths.includes(needed), `${needed} is in the tarball`);
  }
  assert.ok(paths.some((p) => p.startsWith('dist/runtime/python/') && p.endsWith('.json')), 'the swagger templates are in the tarball');
  const unwanted = paths.filter((p) => /(^|\/)(src|test|bench|examples|scripts|node_modules\/\.bin)\/|\.test\.[cm]?[jt]s$|-testing\.[cm]?[jt]s$|\.map$|\.ts$|^tsconfig/.test(p));
  assert.deepEqual(unwanted, []);
});

test('the installed tarball runs the deploy-and-score walkthrough from outside the repository', { timeout: INSTALL_BUDGET_MS + 3 * 60_000 }, async (t) => {
  const prefix = join(tmp, 'prefix');
  const inst = await exec('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', tarball], { cwd: tmp, env: npmEnv(), timeoutMs: INSTALL_BUDGET_MS });
  // A dependency's install script that fails (a download of its own, such as onnxruntime-node's CUDA
  // files from nuget) is the package's fault, not an unreachable registry: it fails the test.
  const scriptFailed = /npm error command sh -c/.test(inst.stderr);
  const unreachable = !scriptFailed && /ENOTFOUND|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH|network/i.test(inst.stderr);
  if (inst.timedOut || (inst.code !== 0 && unreachable)) {
    const why = inst.timedOut ? `npm install -g of the tarball took longer than ${INSTALL_BUDGET_MS / 1000} s` : `the npm registry is unreachable:\n${inst.stderr.slice(-2000)}`;
    if (REQUIRE) assert.fail(`${why} (INFERGATE_REQUIRE_PACK=1)`);
    t.skip(why);
    return;
  }
  assert.equal(inst.code, 0, `npm install -g failed:\n${inst.stderr}`);
  t.diagnostic(`npm install -g --prefix of the tarball: ${inst.ms} ms`);
  // No engine mismatch on Node 20: package.json pins light-my-request 6.6.0 (cookie ^1; 6.8 takes cookie@2,
  // engines node >= 22) and @fastify/static 10.1.3 (content-disposition ^2; 10.1.11 takes 3, node >= 22) as
  // direct dependencies, so a tarball install resolves fastify's and swagger-ui's ranges to them
  // (overrides would not: npm applies them only to the root project).
  const engines = [...inst.stderr.matchAll(/package: '([^']+)'/g)].map((m) => m[1]!);
  if (engines.length > 0) t.diagnostic(`EBADENGINE from npm install -g: ${engines.join(', ')}`);
  assert.deepEqual(engines, []);

  const bin = join(prefix, 'bin', 'infergate');
  const installed = join(prefix, 'lib', 'node_modules', 'infergate');
  assert.ok(existsSync(join(installed, 'dist', 'cli', 'main.js')));

  // The user's own folder with Azure's example files, nowhere near this repository or its node_modules.
  const cwd = join(tmp, 'user');
  cpSync(EXAMPLES, join(cwd, 'azureml'), { recursive: true });
  const home = join(tmp, 'home');
  const env: NodeJS.ProcessEnv = { ...npmEnv(), INFERGATE_HOME: home, INFERGATE_CONFIG: join(home, 'cli-config.json'), INFERGATE_BACKEND: 'process' };
  delete env.INFERGATE_URL;
  delete env.INFERGATE_TOKEN;
  const cli = async (args: string[]) => {
    const r = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      const child = spawn(bin, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
      child.once('close', (code) => resolve({ code: code ?? 1, stdout, stderr }));
    });
    return r;
  };

  const version = await cli(['--version']);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, new RegExp((JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version.replace(/\./g, '\\.')));

  const server: ChildProcess = spawn(bin, ['server', '--port', '0', '--router-port', '0'], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let serverOut = '';
  server.stdout!.on('data', (c: Buffer) => (serverOut += c.toString()));
  server.stderr!.on('data', (c: Buffer) => (serverOut += c.toString()));
  const exited = new Promise<void>((r) => server.once('exit', () => r()));
  try {
    await until('the installed server to listen', async () => serverOut.includes('router:') || server.exitCode !== null, 30_000);
    assert.equal(server.exitCode, null, `the installed server exited:\n${serverOut}`);

    const E = 'endpt-pack';
    const SAMPLE = join('azureml', 'managed', 'sample');
    const REQUEST = join('azureml', 'model-1', 'sample-request.json');
    const create = await cli(['ml', 'online-endpoint', 'create', '--name', E, '-f', join(SAMPLE, 'endpoint.yml')]);
    assert.equal(create.code, 0, create.stderr);
    const dep = await cli(['ml', 'online-deployment', 'create', '--name', 'blue', '--endpoint', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
    if (dep.code !== 0) {
      const logs = await cli(['ml', 'online-deployment', 'get-logs', '--name', 'blue', '--endpoint', E]);
      assert.fail(`online-deployment create failed:\n${dep.stderr}\n${logs.stdout}\n${serverOut}`);
    }
    const invoke = await cli(['ml', 'online-endpoint', 'invoke', '--name', E, '--request-file', REQUEST]);
    assert.equal(invoke.code, 0, invoke.stderr);
    assert.equal(invoke.stdout, JSON.stringify(SAMPLE_ANSWER, null, 2) + '\n');

    const key = (await cli(['ml', 'online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
    const uri = (await cli(['ml', 'online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).stdout.trim();
    assert.match(uri, /^http:\/\/127\.0\.0\.1:\d+\/endpoints\/endpt-pack\/score$/);
    const answer = await curl(uri, { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, join(cwd, REQUEST));
    assert.equal(answer.status, 200);
    assert.equal(answer.body, SAMPLE_ANSWER); // the exact bytes
    assert.equal((await curl(uri, { 'Content-Type': 'application/json' }, join(cwd, REQUEST))).status, 401);

    const logs = await cli(['ml', 'online-deployment', 'get-logs', '--name', 'blue', '--endpoint', E]);
    assert.match(logs.stdout, /Init complete/);
    assert.equal((await cli(['ml', 'online-endpoint', 'delete', '--name', E, '--yes'])).code, 0);
  } finally {
    server.kill('SIGTERM');
    await exited;
  }
});
