// get-logs --follow's stream (followLog): new bytes in order, across a rotation and a move of `current`,
// bounded memory with a client that does not read, and its end.

import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { after, test } from 'node:test';
import { followLog, FOLLOW_POLL_MS } from './server.js';

const dir = mkdtempSync(join(tmpdir(), 'infergate-follow-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function collect(stream: Readable): { text: () => string; ended: Promise<void> } {
  let text = '';
  stream.setEncoding('utf8');
  stream.on('data', (c: string) => (text += c));
  return { text: () => text, ended: new Promise((r, j) => stream.once('end', r).once('error', j)) };
}

async function until(what: string, check: () => boolean, ms = 3_000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

test('the tail first, then appended lines from where the tail ended, across a rotation and a new current instance', async () => {
  const base = join(dir, 'dep');
  mkdirSync(join(base, 'i1'), { recursive: true });
  mkdirSync(join(base, 'i2'), { recursive: true });
  symlinkSync('i1', join(base, 'current'));
  const file = join(base, 'current', 'inference-server.log');
  writeFileSync(file, 'old 1\nold 2\n');
  const st = statSync(file);
  let alive = true;
  const c = collect(followLog('old 2\n', file, { ino: st.ino, size: st.size }, () => alive));
  await until('the tail', () => c.text() === 'old 2\n');
  appendFileSync(file, 'new 1\n');
  await until('new 1', () => c.text().endsWith('new 1\n'), FOLLOW_POLL_MS * 8);
  // Rotation (console-log.ts renames the file and opens a new one): the old file's end, then the new one.
  appendFileSync(file, 'before rotation\n');
  renameSync(file, `${file}.1`);
  writeFileSync(file, 'after rotation\n');
  await until('the rotated file', () => c.text().endsWith('after rotation\n'));
  // `current` moves to a newer instance: its file from the start.
  writeFileSync(join(base, 'i2', 'inference-server.log'), 'i2 first\n');
  symlinkSync('i2', join(base, '.tmp'));
  renameSync(join(base, '.tmp'), join(base, 'current'));
  await until('the new instance', () => c.text().endsWith('i2 first\n'));
  assert.equal(c.text(), 'old 2\nnew 1\nbefore rotation\nafter rotation\ni2 first\n', 'each line once, in order');
  alive = false; // the deployment was deleted
  await c.ended;
});

test('a client that does not read costs a bounded buffer, however fast the log grows', async () => {
  const file = join(dir, 'fast.log');
  writeFileSync(file, '');
  const stream = followLog('', file, null, () => true);
  stream.pause();
  stream.on('data', () => {}); // attached, paused: nothing is taken
  stream.pause();
  const line = 'x'.repeat(1023) + '\n';
  for (let i = 0; i < 8 * 1024; i++) appendFileSync(file, line); // 8 MiB
  await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS * 4));
  assert.ok(stream.readableLength <= 512 * 1024, `buffered ${stream.readableLength} bytes of 8 MiB`);
  stream.destroy();
  await new Promise((r) => stream.once('close', r));
});

test('a file that does not exist yet is waited for, and destroy() stops the polling', async () => {
  const file = join(dir, 'later', 'inference-server.log');
  const stream = followLog('', file, null, () => true);
  const c = collect(stream);
  await new Promise((r) => setTimeout(r, FOLLOW_POLL_MS * 2));
  mkdirSync(join(dir, 'later'));
  writeFileSync(file, 'first\n');
  await until('the file', () => c.text() === 'first\n');
  stream.destroy();
  await new Promise((r) => stream.once('close', r));
});
