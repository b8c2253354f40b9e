// Issue 9 item 6, as a user and an attacker would see it: the CLI uploads the files a YAML names and the
// server reads no path a client names. Real server, real CLI, loopback only.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EXAMPLES, FIXTURES, SAMPLE_ANSWER, Workspace } from './harness.js';
import { resetPeak, vmMiB } from '../reliability/attack.js';

const ws = new Workspace();
let apiUrl = '';
let pid = 0;

before(async () => {
  apiUrl = (await ws.startServer()).url;
  pid = ws.server!.pid!;
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-20_000));
  await ws.dispose();
});

/** PUT /api/blobs/... requests the server has answered, from its audit log (one line per change). */
function blobPuts(): number {
  const file = join(ws.dir, 'logs', 'audit.jsonl');
  if (!existsSync(file)) return 0;
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { method: string; route: string | null })
    .filter((e) => e.method === 'PUT' && e.route === '/api/blobs/:sha256').length;
}

async function settledPuts(): Promise<number> {
  // The audit log is written asynchronously: wait until the count stops moving.
  let last = -1;
  for (let i = 0; i < 40; i++) {
    const n = blobPuts();
    if (n === last) return n;
    last = n;
    await new Promise((r) => setTimeout(r, 50));
  }
  return last;
}

test('the CLI uploads model and code; the deployment scores; the same files again upload nothing', async () => {
  const dir = ws.scratch(join(FIXTURES, 'js-model'), 'uploaded');
  const yml = (name: string) => {
    writeFileSync(join(dir, `${name}.yml`), `name: ${name}\nendpoint_name: up-ep\nmodel: {path: model/}\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n`);
    return join(dir, `${name}.yml`);
  };
  const blueYml = yml('blue');
  const greenYml = yml('green');
  await ws.ok(['online-endpoint', 'create', '-n', 'up-ep']);
  const before = await settledPuts();
  await ws.ok(['online-deployment', 'create', '-f', blueYml, '--all-traffic']);
  const first = await settledPuts();
  assert.ok(first - before >= 3, `model, code and their manifests were uploaded (${first - before} PUTs)`);
  const answer = await ws.ok(['online-endpoint', 'invoke', '-n', 'up-ep', '-r', join(EXAMPLES, 'model-1', 'sample-request.json')]);
  assert.ok(answer.includes(SAMPLE_ANSWER.slice(1, 20)), answer);
  // green: other YAML file (it is part of the code folder, so one new file and the code manifest), same model.
  await ws.ok(['online-deployment', 'create', '-f', greenYml]);
  const second = await settledPuts();
  assert.ok(second - first <= 2, `only the new YAML file and the code folder's manifest were sent (${second - first} PUTs)`);
  // And the very same files a third time: nothing at all.
  await ws.ok(['online-deployment', 'update', '-f', greenYml]);
  assert.equal(await settledPuts(), second, 'an update with unchanged files uploads nothing');
  const shown = JSON.parse(await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', 'up-ep'])) as { model: { path: string }; code_configuration: { code: string } };
  assert.match(shown.model.path, /^upload:sha256:[0-9a-f]{64}$/);
  assert.match(shown.code_configuration.code, /^upload:sha256:[0-9a-f]{64}$/);
  // A scale without -f sends the stored deployment back as it is: the edited folder is not read again.
  const greenCode = () => ws.ok(['online-deployment', 'show', '-n', 'green', '-e', 'up-ep', '-o', 'tsv', '--query', 'code_configuration.code']);
  const codeBefore = await greenCode();
  writeFileSync(join(dir, 'score.mjs'), `${readFileSync(join(dir, 'score.mjs'), 'utf8')}\n// edited after the deployment\n`);
  await ws.ok(['online-deployment', 'update', '-n', 'green', '-e', 'up-ep', '--set', 'instance_count=2']);
  assert.equal(await settledPuts(), second, 'update --set without -f uploads nothing');
  assert.equal(await greenCode(), codeBefore, 'and keeps the code snapshot');
});

test('the API refuses a document naming /etc/shadow (or any path); nothing is copied', async () => {
  for (const [url, body] of [
    ['/api/models', { name: 'stolen', path: '/etc/shadow' }],
    ['/api/environments', { name: 'stolen', image: 'python:3.12', conda_file: '/etc/shadow' }],
  ] as const) {
    const res = await fetch(apiUrl + url, { method: 'POST', headers: { ...ws.ownerAuth, 'content-type': 'application/json' }, body: JSON.stringify(body) });
    const json = (await res.json()) as { error: { code: string; message: string } };
    assert.equal(res.status, 400);
    assert.equal(json.error.code, 'BadArgument');
    assert.match(json.error.message, /'\/etc\/shadow' is a file system path; the server reads no path a client names/);
  }
  assert.ok(!existsSync(join(ws.dir, 'assets', 'models', 'stolen')));
  // A blob whose body does not hash to its name is refused and not kept.
  const fake = '0'.repeat(64);
  const put = await fetch(`${apiUrl}/api/blobs/${fake}`, { method: 'PUT', headers: { ...ws.ownerAuth, 'content-type': 'application/octet-stream' }, body: 'not those bytes' });
  assert.equal(put.status, 400);
  assert.equal(((await put.json()) as { error: { code: string } }).error.code, 'BadArgument');
  assert.ok(!existsSync(join(ws.dir, 'blobs', 'sha256', '00', fake)));
});

test('a symbolic link leading out of the uploaded folder is refused by the CLI, naming the entry; nothing is sent', async () => {
  const model = join(ws.dir, 'scratch', 'linky-model');
  mkdirSync(model, { recursive: true });
  writeFileSync(join(model, 'weights.json'), '{}');
  writeFileSync(join(ws.dir, 'scratch', 'secret.txt'), 'outside');
  symlinkSync(join(ws.dir, 'scratch', 'secret.txt'), join(model, 'leak.txt'));
  const before = await settledPuts();
  const r = await ws.cli(['model', 'create', '-n', 'linky', '-p', model]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /PathNotReadable/);
  assert.match(r.stderr, /'leak\.txt' \(inside model path .*linky-model\) is a symbolic link to .*secret\.txt, outside the folder being uploaded/);
  assert.equal(await settledPuts(), before);
  // A link that stays inside the folder is followed (a real file in the upload).
  symlinkSync('weights.json', join(model, 'alias.json'));
  writeFileSync(join(ws.dir, 'scratch', 'secret.txt'), 'outside');
  const inside = join(ws.dir, 'scratch', 'inside-model');
  mkdirSync(inside);
  writeFileSync(join(inside, 'weights.json'), '{"w":1}');
  symlinkSync('weights.json', join(inside, 'alias.json'));
  const ok = JSON.parse(await ws.ok(['model', 'create', '-n', 'inside', '-p', inside])) as { path: string };
  assert.equal(readFileSync(join(ok.path, 'alias.json'), 'utf8'), '{"w":1}');
});

test('a 100 MB model uploads with bounded server memory and arrives intact', async () => {
  const model = join(ws.dir, 'scratch', 'big-model');
  mkdirSync(model, { recursive: true });
  // Large enough that buffering it whole (or twice: hash, then copy) would show plainly above the garbage
  // a streamed copy leaves for the next GC (about 30 MiB measured for 50 MiB).
  const bytes = randomBytes(100 * 1024 * 1024);
  writeFileSync(join(model, 'weights.bin'), bytes);
  const sha = createHash('sha256').update(bytes).digest('hex');
  const rssBefore = vmMiB(pid);
  resetPeak(pid);
  const t0 = performance.now();
  const shown = JSON.parse(await ws.ok(['model', 'create', '-n', 'big', '-p', model])) as { path: string };
  const ms = performance.now() - t0;
  const peak = vmMiB(pid, 'VmHWM');
  console.log(`# 100 MB model create: ${ms.toFixed(0)} ms, server RSS ${rssBefore.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB (+${(peak - rssBefore).toFixed(0)})`);
  assert.ok(peak - rssBefore < 50, `the server streamed the upload (peak grew ${(peak - rssBefore).toFixed(0)} MiB for a 100 MiB file)`);
  assert.equal(createHash('sha256').update(readFileSync(join(shown.path, 'weights.bin'))).digest('hex'), sha);
  assert.ok(existsSync(join(ws.dir, 'blobs', 'sha256', sha.slice(0, 2), sha)), 'kept in the blob store under its hash');
});
