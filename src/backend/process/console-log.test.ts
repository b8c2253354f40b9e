import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ConsoleLog, consoleLogFiles, tailLines } from './console-log.js';

const dir = mkdtempSync(join(tmpdir(), 'infergate-console-log-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const line = (i: number) => `line ${String(i).padStart(6, '0')} ${'x'.repeat(40)}\n`;

test('rotates by size, keeps keepFiles old files, and the tail reads across the rotation boundary', async () => {
  const file = join(dir, 'rot', 'inference-server.log');
  const log = new ConsoleLog(file, { maxFileBytes: 4096, keepFiles: 2 });
  const total = 1000; // 54 bytes a line: ~54 kB through 4 kB files
  for (let i = 0; i < total; i++) log.write(line(i));
  await log.end();
  const files = consoleLogFiles(file, 2);
  for (const f of files) {
    assert.ok(existsSync(f), `${f} exists`);
    assert.ok(statSync(f).size <= 4096, `${f} is ${statSync(f).size} bytes`);
  }
  assert.equal(existsSync(`${file}.3`), false, 'no more than keepFiles rotated files');
  // Nothing is lost or reordered inside what is kept: the three files hold consecutive lines.
  const kept = [...files].reverse().map((f) => readFileSync(f, 'utf8')).join('');
  const nums = kept.trimEnd().split('\n').map((l) => Number(l.slice(5, 11)));
  assert.equal(nums[nums.length - 1], total - 1);
  nums.forEach((n, i) => assert.equal(n, nums[0] + i));

  const current = readFileSync(file, 'utf8').trimEnd().split('\n').length;
  const want = current + 10; // more than the current file has: the rest comes from <file>.1
  const tail = await tailLines(files, want);
  const got = tail.trimEnd().split('\n');
  assert.equal(got.length, want);
  assert.deepEqual(got, Array.from({ length: want }, (_, i) => line(total - want + i).trimEnd()));
  assert.equal(await tailLines(files, 1), line(total - 1));
  assert.equal(await tailLines(files, 0), '');
  // Asking for more than is kept gives all that is kept.
  assert.equal((await tailLines(files, 1_000_000)).trimEnd().split('\n').length, nums.length);
});

test('a line split by a rotation is whole again in the tail; a log without a final newline shows its last line', async () => {
  const file = join(dir, 'split', 'x.log');
  const log = new ConsoleLog(file, { maxFileBytes: 10, keepFiles: 1 });
  log.write('first-half-of-a-line'); // over the limit on its own: written to an empty file, never rotated away unseen
  log.write('-second-half\nlast');
  await log.end();
  assert.equal(readFileSync(`${file}.1`, 'utf8'), 'first-half-of-a-line');
  assert.equal(await tailLines(consoleLogFiles(file, 1), 2), 'first-half-of-a-line-second-half\nlast\n');
});

test('an existing file keeps growing from its size (a restarted instance appends)', async () => {
  const file = join(dir, 'append', 'x.log');
  const a = new ConsoleLog(file, { maxFileBytes: 100, keepFiles: 1 });
  a.write('a'.repeat(60) + '\n');
  await a.end();
  const b = new ConsoleLog(file, { maxFileBytes: 100, keepFiles: 1 });
  b.write('b'.repeat(60) + '\n'); // 61 + 61 > 100: rotates first
  await b.end();
  assert.equal(readFileSync(`${file}.1`, 'utf8'), 'a'.repeat(60) + '\n');
  assert.equal(readFileSync(file, 'utf8'), 'b'.repeat(60) + '\n');
});

test('output the disk cannot take is dropped beyond maxPendingBytes and the log says so', async () => {
  const file = join(dir, 'drop', 'x.log');
  const log = new ConsoleLog(file, { maxPendingBytes: 1024 });
  // All in one turn of the event loop: nothing is written yet, so everything past 1 kB is pending.
  for (let i = 0; i < 100; i++) log.write(line(i));
  assert.ok(log.pendingBytes > 0 && log.pendingBytes <= 1024, `${log.pendingBytes} bytes pending`);
  // Once the file has taken what was kept, the next write is accepted again (with the note first).
  for (const end = Date.now() + 5000; log.pendingBytes > 0 && Date.now() < end; ) await new Promise((r) => setTimeout(r, 5));
  log.write('after\n');
  await log.end();
  const text = readFileSync(file, 'utf8');
  assert.ok(text.length < 100 * 54, `${text.length} bytes were kept`);
  assert.match(text, /\[infergate: \d+ bytes of console output dropped: the log file could not keep up\]\nafter\n$/);
});

test('the tail skips what is not a regular file (a FIFO would block the read for ever)', async () => {
  const file = join(dir, 'fifo', 'x.log');
  const log = new ConsoleLog(file, {});
  log.write('real\n');
  await log.end();
  execFileSync('mkfifo', [`${file}.1`]);
  writeFileSync(`${file}.2`, 'older\n');
  const started = Date.now();
  assert.equal(await tailLines(consoleLogFiles(file, 2), 5), 'older\nreal\n');
  assert.ok(Date.now() - started < 1000);
});
