import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { STORAGE_RESULT_PREFIX, type StorageResult } from '../protocol/messages.js';
import { initializeStorage } from './storage-initializer.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SCRIPT = join(ROOT, 'src/runtime/storage-initializer.ts');
const MODEL_1 = join(ROOT, 'examples/azureml/model-1/model');
const CODE_1 = join(ROOT, 'examples/azureml/model-1/onlinescoring');

let tmp: string;

/** Runs the storage initializer as the backend does: a program with a request file. */
function runInitializer(request: unknown): { status: number | null; stdout: string; stderr: string } {
  const file = join(tmp, `request-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(request));
  const r = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, file], { cwd: ROOT, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function resultOf(stdout: string): StorageResult {
  const lines = stdout.trimEnd().split('\n');
  const last = lines[lines.length - 1];
  assert.ok(last.startsWith(STORAGE_RESULT_PREFIX), `last line is the result: ${last}`);
  return JSON.parse(last.slice(STORAGE_RESULT_PREFIX.length)) as StorageResult;
}

describe('storage initializer', () => {
  before(() => {
    tmp = mkdtempSync(join(tmpdir(), 'infergate-storage-'));
  });
  after(() => rmSync(tmp, { recursive: true, force: true }));

  it("copies model and code into Azure's layout and prints what it did", () => {
    const instanceDir = join(tmp, 'blue-0');
    const r = runInitializer({ instanceDir, model: { name: 'sklearn-model', version: '1', path: MODEL_1 }, code: { path: CODE_1 } });
    assert.equal(r.status, 0, r.stderr);
    const result = resultOf(r.stdout);
    assert.deepEqual(result, {
      modelDir: join(instanceDir, 'azureml-models/sklearn-model/1'),
      appRoot: join(instanceDir, 'azureml-app/onlinescoring'),
    });
    // The folder name is kept: Azure's score.py joins AZUREML_MODEL_DIR with "model/sklearn_regression_model.pkl".
    const pkl = join(result.modelDir, 'model/sklearn_regression_model.pkl');
    assert.deepEqual(readFileSync(pkl), readFileSync(join(MODEL_1, 'sklearn_regression_model.pkl')));
    assert.equal(readFileSync(join(result.appRoot, 'score.py'), 'utf8'), readFileSync(join(CODE_1, 'score.py'), 'utf8'));
    // One line per step with what, from, to, files, bytes, ms; log-line format.
    assert.match(r.stdout, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} I \[\d+\] storage-initializer - Copied model sklearn-model:1 from \S+model-1\/model to \S+\/azureml-models\/sklearn-model\/1\/model: 1 file, 756 bytes, [\d.]+ ms$/m);
    assert.match(r.stdout, /Copied code from \S+onlinescoring to \S+azureml-app\/onlinescoring: 1 file, \d+ bytes, [\d.]+ ms$/m);
  });

  it('copies a single-file model under its own name, and dereferences links', async () => {
    const src = join(tmp, 'src-file');
    mkdirSync(join(src, 'code'), { recursive: true });
    writeFileSync(join(src, 'weights.bin'), Buffer.alloc(1000, 7));
    writeFileSync(join(src, 'real.py'), 'x = 1\n');
    symlinkSync(join(src, 'real.py'), join(src, 'code', 'linked.py'));
    const lines: string[] = [];
    const result = await initializeStorage(
      { instanceDir: join(tmp, 'i2'), model: { name: 'w', version: '3', path: join(src, 'weights.bin') }, code: { path: join(src, 'code') } },
      (l) => lines.push(l),
    );
    assert.equal(statSync(join(result.modelDir, 'weights.bin')).size, 1000);
    const linked = join(result.appRoot, 'linked.py');
    assert.ok(statSync(linked).isFile());
    assert.equal(readFileSync(linked, 'utf8'), 'x = 1\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0], /1 file, 1000 bytes/);
  });

  it('replaces an earlier copy when the instance restarts', async () => {
    const instanceDir = join(tmp, 'i3');
    const src = join(tmp, 'src3');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'a.txt'), 'a');
    await initializeStorage({ instanceDir, code: { path: src } });
    rmSync(join(src, 'a.txt'));
    writeFileSync(join(src, 'b.txt'), 'b');
    const result = await initializeStorage({ instanceDir, code: { path: src } });
    assert.ok(!existsSync(join(result.appRoot, 'a.txt')));
    assert.ok(existsSync(join(result.appRoot, 'b.txt')));
    assert.equal(result.modelDir, ''); // no model asked for
  });

  it('exits 1 with a clear reason when a source is missing', () => {
    const r = runInitializer({ instanceDir: join(tmp, 'i4'), model: { name: 'm', version: '1', path: join(tmp, 'nope') } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /E \[\d+\] storage-initializer - Storage initialization failed: The model m:1 path \S+nope does not exist\./);
    assert.doesNotMatch(r.stdout, /STORAGE_RESULT/);
  });

  it('refuses names that would escape the instance directory', () => {
    const r = runInitializer({ instanceDir: join(tmp, 'i5'), model: { name: '..', version: '1', path: MODEL_1 } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /model\.name "\.\." cannot be used as a folder name/);
    const r2 = runInitializer({ instanceDir: join(tmp, 'i5'), model: { name: 'm', version: '../../x', path: MODEL_1 } });
    assert.equal(r2.status, 1);
  });

  it('refuses a model or code path that is not absolute (a made-up URI would resolve against its working directory)', () => {
    const r = runInitializer({ instanceDir: join(tmp, 'rel-0'), model: { name: 'm', version: '1', path: 'x://../../../../etc/hostname' } });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /model\.path "x:\/\/\.\.\/\.\.\/\.\.\/\.\.\/etc\/hostname" is not an absolute path/);
    assert.equal(existsSync(join(tmp, 'rel-0', 'azureml-models')), false);
    const c = runInitializer({ instanceDir: join(tmp, 'rel-1'), code: { path: 'code/../..' } });
    assert.equal(c.status, 1);
    assert.match(c.stderr, /code\.path "code\/\.\.\/\.\." is not an absolute path/);
  });

  it('exits 1 on an unreadable request', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', SCRIPT, join(tmp, 'missing.json')], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Cannot read the request/);
  });

  it('refuses a symbolic-link loop, a FIFO or a device inside the model folder, naming it, at once (fs.cp recursed or hung)', () => {
    const model = join(tmp, 'hostile-model');
    mkdirSync(join(model, 'inner'), { recursive: true });
    writeFileSync(join(model, 'weights.bin'), 'w');
    symlinkSync('..', join(model, 'inner', 'up'));
    const request = { instanceDir: join(tmp, 'hostile-0'), model: { name: 'm', version: '1', path: model } };
    const t0 = performance.now();
    let r = runInitializer(request);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Storage initialization failed: \(PathNotReadable\) '.*inner\/up' \(inside model .*hostile-model\) is a symbolic-link loop/);
    rmSync(join(model, 'inner', 'up'));
    spawnSync('mkfifo', [join(model, 'inner', 'pipe')]);
    r = runInitializer(request);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\(PathNotReadable\) '.*inner\/pipe' \(inside model .*\) is a FIFO \(named pipe\)/);
    rmSync(join(model, 'inner', 'pipe'));
    symlinkSync('/dev/zero', join(model, 'zero'));
    r = runInitializer(request);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /\(PathNotReadable\) '.*hostile-model\/zero' \(inside model .*\) is a character device/);
    assert.ok(performance.now() - t0 < 15_000);
  });
});
