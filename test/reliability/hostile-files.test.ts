// Issue 8 part 4: hostile files and bodies through the CLI and the API. Only regular files and directories
// are read from user paths, with size limits; what is refused is refused at once with a coded error, and
// the server keeps serving. (The issue: a FIFO as conda_file stalled the control plane's file I/O, -f
// /dev/zero grew the CLI to 7.9 GB, a symlink loop or a deeply nested body gave 500 InternalError, a 3 MB
// environment variable was stored and then failed at spawn with E2BIG, 100k YAML keys took 57 s.)

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, mkdirSync, openSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, childPids, FIXTURES, until, Workspace } from '../e2e/harness.js';
import { assertControlPlane, assertServes, cliBounded, deployJsModel, httpRequest } from './attack.js';

const ws = new Workspace();
const E = 'rel-files';
let apiUrl = '';
let uri = '';
let key = '';
let dir = '';
const fifos: string[] = [];

before(async () => {
  ({ url: apiUrl } = await ws.startServer());
  ({ uri, key, dir } = await deployJsModel(ws, E));
});
after(async () => {
  // A reader blocked on one of our FIFOs (the bug) is released by a writer's open: EOF follows the close.
  for (const f of fifos) {
    try {
      closeSync(openSync(f, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      /* nobody is reading it: nothing is blocked */
    }
  }
  if (process.exitCode) console.error(ws.serverLog.slice(-20_000));
  await ws.dispose();
});

function deploymentYaml(name: string, lines: string[]): string {
  const file = join(dir, `${name}.yml`);
  writeFileSync(file, [`name: ${name}`, `endpoint_name: ${E}`, 'instance_type: Standard_DS3_v2', 'instance_count: 1', ...lines, ''].join('\n'));
  return file;
}

async function refused(args: string[], code: RegExp, limitMs = 10_000): Promise<{ ms: number; peakMiB: number; stderr: string }> {
  const r = await cliBounded(ws, BIN, args, limitMs);
  assert.ok(!r.timedOut, `infergate ${args.join(' ')} still ran after ${limitMs} ms`);
  assert.notEqual(r.code, 0, `infergate ${args.join(' ')} succeeded`);
  assert.match(r.stderr, code);
  assert.doesNotMatch(r.stderr, /InternalError/);
  return { ms: r.ms, peakMiB: r.peakMiB, stderr: r.stderr };
}

test('a FIFO as conda_file is refused at once, and the control plane keeps doing file I/O', async (t) => {
  const py = ws.scratch(join(FIXTURES, 'py-behaviours'), 'py-fifo');
  const fifo = join(py, 'conda.yaml');
  execFileSync('mkfifo', [fifo]);
  fifos.push(fifo);
  const file = join(py, 'd.yml');
  writeFileSync(file, [`name: fifo`, `endpoint_name: ${E}`, 'code_configuration: {code: ./, scoring_script: score.py}', 'environment: {conda_file: ./conda.yaml, image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest}', 'instance_type: Standard_DS3_v2', 'instance_count: 1', ''].join('\n'));
  // Several at once: four would have occupied every one of libuv's file-system threads.
  const all = await Promise.all(Array.from({ length: 4 }, () => refused(['online-deployment', 'create', '-f', file], /PathNotReadable/)));
  t.diagnostic(`FIFO conda_file refused after ${all.map((r) => r.ms).join(', ')} ms`);
  const logs = await cliBounded(ws, BIN, ['online-deployment', 'get-logs', '-n', 'blue', '-e', E], 10_000);
  assert.equal(logs.code, 0, `get-logs after the FIFO: ${logs.stderr}`);
  assert.match(logs.stdout, /js-model: loaded/);
  // A killed instance is still restarted (its restart reads files too).
  const before = childPids(ws.server!.pid!);
  assert.ok(before.length >= 1);
  process.kill(before[0], 'SIGKILL');
  await until('a replacement instance to serve', async () => {
    try {
      await assertServes(uri, key);
      return !childPids(ws.server!.pid!).includes(before[0]);
    } catch {
      return false;
    }
  }, 10_000, 100);
  await assertControlPlane(ws, apiUrl, E);
});

test('-f /dev/zero and other devices are refused at once, with bounded CLI memory', async (t) => {
  for (const args of [
    ['online-endpoint', 'create', '-f', '/dev/zero'],
    ['online-deployment', 'create', '-f', '/dev/zero'],
    ['online-endpoint', 'create', '-f', '/dev/urandom'],
    ['online-endpoint', 'invoke', '-n', E, '--request-file', '/dev/zero'],
  ]) {
    const r = await refused(args, /PathNotReadable/, 10_000);
    t.diagnostic(`${args.join(' ')}: refused after ${r.ms} ms, CLI peak RSS ${r.peakMiB.toFixed(0)} MiB`);
    assert.ok(r.ms < 5000, `took ${r.ms} ms`);
    assert.ok(r.peakMiB < 250, `the CLI grew to ${r.peakMiB.toFixed(0)} MiB`);
  }
  // A socket (the instance's own) is no file either.
  await assertServes(uri, key);
});

test('a symbolic-link loop as the code folder, or inside it, is a coded 400, not 500', async () => {
  const loop = join(dir, 'loop');
  symlinkSync(loop, loop); // loop → loop: ELOOP
  await refused(['online-deployment', 'create', '-f', deploymentYaml('loop1', ['code_configuration: {code: ./loop, scoring_script: score.mjs}'])], /PathNotReadable/);
  const inner = join(dir, 'code-with-loop');
  mkdirSync(inner);
  writeFileSync(join(inner, 'score.mjs'), 'export function init() {}\nexport function run(d) { return d; }\n');
  symlinkSync('..', join(inner, 'up')); // a link back to a folder being walked
  await refused(['online-deployment', 'create', '-f', deploymentYaml('loop2', ['code_configuration: {code: ./code-with-loop, scoring_script: score.mjs}'])], /PathNotReadable/);
  for (const name of ['loop1', 'loop2']) assert.notEqual((await ws.cli(['online-deployment', 'show', '-n', name, '-e', E])).code, 0, `${name} was not created`);
  await assertServes(uri, key);
});

test('a 3 MB environment variable is refused at create (ValidationFailed), not stored to fail at spawn', async () => {
  const file = deploymentYaml('bigenv', ['model: {path: model/}', 'code_configuration: {code: ./, scoring_script: score.mjs}', `environment_variables: {BIG: ${'x'.repeat(3 * 1024 * 1024)}}`]);
  await refused(['online-deployment', 'create', '-f', file], /ValidationFailed/, 20_000);
  assert.notEqual((await ws.cli(['online-deployment', 'show', '-n', 'bigenv', '-e', E])).code, 0, 'nothing was created');
  await assertServes(uri, key);
});

test('YAML loading is linear: 100k tags take about 10× the time of 10k, not 100×', async (t) => {
  const time = async (n: number): Promise<number> => {
    const file = join(dir, `tags-${n}.yml`);
    const lines = [`name: rel-tags-${n}`, 'auth_mode: key', 'tags:'];
    for (let i = 0; i < n; i++) lines.push(`  k${i}: v${i}`);
    writeFileSync(file, lines.join('\n') + '\n');
    const r = await cliBounded(ws, BIN, ['online-endpoint', 'create', '-f', file], 45_000);
    assert.ok(!r.timedOut, `${n} tags: still loading after 45 s`);
    assert.ok(r.code === 0 || /ValidationFailed/.test(r.stderr), `${n} tags: ${r.stderr.slice(0, 500)}`);
    return r.ms;
  };
  await time(1); // warm the file cache and the server
  const small = await time(10_000);
  const big = await time(100_000);
  t.diagnostic(`endpoint create with 10k tags: ${small} ms, 100k tags: ${big} ms (ratio ${(big / small).toFixed(1)})`);
  // Linear: ≤ 10× (less, as start-up is a fixed cost); quadratic: ~100×. 20× leaves room for a busy machine.
  assert.ok(big < 20 * small, `100k tags took ${big} ms, 10k took ${small} ms`);
});

test('a deeply nested JSON body to the API is a coded 400 (BodyTooDeep), and the API goes on', async () => {
  const depth = 100_000;
  const body = `{"name": "rel-deep", "tags": {"t": ${'['.repeat(depth)}${']'.repeat(depth)}}}`;
  const r = await httpRequest(`${apiUrl}/api/endpoints`, { method: 'POST', headers: { ...ws.ownerAuth, 'content-type': 'application/json' }, body });
  assert.equal(r.status, 400, r.body.slice(0, 300));
  assert.equal((JSON.parse(r.body) as { error: { code: string } }).error.code, 'BodyTooDeep');
  const objects = `{"name": "rel-deep", "tags": ${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}}`;
  const r2 = await httpRequest(`${apiUrl}/api/endpoints`, { method: 'POST', headers: { ...ws.ownerAuth, 'content-type': 'application/json' }, body: objects });
  assert.equal(r2.status, 400, r2.body.slice(0, 300));
  assert.equal((JSON.parse(r2.body) as { error: { code: string } }).error.code, 'BodyTooDeep');
  assert.notEqual((await ws.cli(['online-endpoint', 'show', '-n', 'rel-deep'])).code, 0, 'nothing was created');
  await assertControlPlane(ws, apiUrl, E);
  await assertServes(uri, key);
});
