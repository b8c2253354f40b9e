// The blob store of uploads (api/uploads.ts) and the manifests it materialises (util/upload-manifest.ts):
// a blob is kept only under its own hash and within the size limit; a manifest cannot write outside the
// folder the server chose, nor anything but regular files and folders.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, test } from 'node:test';
import { InfergateError } from '../errors/index.js';
import { manifestBytes, MANIFEST_FORMAT, parseManifest, uploadRef, type TreeManifest } from '../util/upload-manifest.js';
import { BlobStore } from './uploads.js';

let dir: string;
let blobs: BlobStore;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');
const body = (...chunks: (Buffer | string)[]) => Readable.from(chunks.map((c) => Buffer.from(c)));
const code = (e: unknown) => (e as InfergateError).code;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-blobs-'));
  blobs = new BlobStore(join(dir, 'blobs'), 1024);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function putManifest(m: TreeManifest): Promise<string> {
  const bytes = manifestBytes(m);
  await blobs.put(sha(bytes), body(bytes), bytes.length);
  return uploadRef(sha(bytes));
}

test('a blob is stored only under its own SHA-256, once, 0600; a wrong body or an oversize one leaves nothing', async () => {
  const h = sha('hello world');
  assert.deepEqual(blobs.missing([h, h]), [h]);
  assert.deepEqual(await blobs.put(h, body('hello ', 'world'), 11), { created: true, size: 11 });
  assert.equal(readFileSync(blobs.pathOf(h), 'utf8'), 'hello world');
  assert.equal(statSync(blobs.pathOf(h)).mode & 0o777, 0o600);
  assert.deepEqual(blobs.missing([h]), []);
  assert.deepEqual(await blobs.put(h, body('hello world'), 11), { created: false, size: 11 }, 'the second PUT stores nothing');
  assert.equal(blobs.stored, 1);

  const other = sha('something else');
  await assert.rejects(blobs.put(other, body('not it'), 6), (e) => code(e) === 'BadArgument' && /SHA-256 is/.test((e as Error).message));
  await assert.rejects(blobs.put(other, body('x'.repeat(2000)), 2000), (e) => code(e) === 'FileTooLarge', 'refused from Content-Length');
  await assert.rejects(blobs.put(other, body('x'.repeat(600), 'x'.repeat(600)), undefined), (e) => code(e) === 'FileTooLarge', 'refused while reading');
  await assert.rejects(blobs.put(other, body('short'), 10), (e) => code(e) === 'BadArgument', 'fewer bytes than Content-Length');
  assert.ok(!blobs.has(other));
  assert.deepEqual(readdirSync(join(dir, 'blobs', '.tmp')), [], 'no temporary file is left');
});

test('a tree is materialised from its manifest: folders, files with their executable bit, nothing else', async () => {
  const a = Buffer.from('weights');
  const s = Buffer.from('#!/bin/sh\n');
  await blobs.put(sha(a), body(a), a.length);
  await blobs.put(sha(s), body(s), s.length);
  const ref = await putManifest({
    format: MANIFEST_FORMAT,
    root: 'model',
    entries: [
      { path: 'model', type: 'dir' },
      { path: 'model/sub', type: 'dir' },
      { path: 'model/sub/w.bin', type: 'file', sha256: sha(a), size: a.length, executable: false },
      { path: 'model/run.sh', type: 'file', sha256: sha(s), size: s.length, executable: true },
    ],
  });
  const out = join(dir, 'stage');
  const { path } = await blobs.materialise(ref, out);
  assert.equal(path, join(out, 'model'));
  assert.equal(readFileSync(join(path, 'sub', 'w.bin'), 'utf8'), 'weights');
  assert.equal(statSync(join(path, 'run.sh')).mode & 0o777, 0o755);
  assert.equal(statSync(join(path, 'sub', 'w.bin')).mode & 0o777, 0o644);
  assert.ok(lstatSync(join(path, 'sub', 'w.bin')).isFile());
});

test('manifests that would write outside the staging folder, or anything but files and folders, are refused', async () => {
  const a = Buffer.from('x');
  await blobs.put(sha(a), body(a), 1);
  const file = (path: string) => ({ path, type: 'file' as const, sha256: sha(a), size: 1, executable: false });
  const bad: [string, unknown][] = [
    ['parent', { format: MANIFEST_FORMAT, root: 'm', entries: [{ path: 'm', type: 'dir' }, file('m/../../escape')] }],
    ['absolute', { format: MANIFEST_FORMAT, root: 'm', entries: [file('/etc/cron.d/x')] }],
    ['root outside', { format: MANIFEST_FORMAT, root: '..', entries: [file('..')] }],
    ['symlink', { format: MANIFEST_FORMAT, root: 'm', entries: [{ path: 'm', type: 'symlink', target: '/etc' }] }],
    ['folder missing', { format: MANIFEST_FORMAT, root: 'm', entries: [file('m/x')] }],
    ['twice', { format: MANIFEST_FORMAT, root: 'm', entries: [file('m'), file('m')] }],
    ['backslash', { format: MANIFEST_FORMAT, root: 'm', entries: [file('m\\\\..\\\\x')] }],
    ['format', { format: 'other', root: 'm', entries: [file('m')] }],
  ];
  for (const [what, m] of bad) {
    assert.throws(() => parseManifest(Buffer.from(JSON.stringify(m)), 'ref'), (e) => code(e) === 'BadArgument', what);
  }
  // Through the store: refused before anything is written.
  const ref = await putManifest(bad[0][1] as TreeManifest);
  await assert.rejects(blobs.materialise(ref, join(dir, 'stage')), (e) => code(e) === 'BadArgument');
  assert.ok(!existsSync(join(dir, 'escape')));
  // A manifest whose files were never uploaded is named incomplete.
  const incomplete = await putManifest({ format: MANIFEST_FORMAT, root: 'f', entries: [{ path: 'f', type: 'file', sha256: sha('never sent'), size: 10, executable: false }] });
  await assert.rejects(blobs.materialise(incomplete, join(dir, 'stage2')), /is incomplete: 1 file\(s\) were not uploaded \(f\)/);
});
