// Reading and copying user paths: only regular files and directories, with limits, never blocking on a FIFO.
// Real FIFOs (mkfifo), a real Unix socket, /dev/zero and real symbolic-link loops.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, constants, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { InfergateError } from '../errors/index.js';
import { copyTree, readUserFile, readUserFileSync, streamUserFile, walkTree } from './files.js';

let dir: string;
let fifo: string;
let sock: string;
let server: Server;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-files-'));
  fifo = join(dir, 'fifo');
  execFileSync('mkfifo', [fifo]);
  sock = join(dir, 'sock');
  server = createServer();
  await new Promise<void>((r) => server.listen(sock, r));
});

after(async () => {
  // A reader stuck on the FIFO (only if the code under test regressed) is released by a writer.
  try {
    closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
  } catch {
    /* no reader: nothing to release */
  }
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

function coded(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof InfergateError, `expected an InfergateError, got ${e}`);
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  };
}

const rule = { what: '--file', limit: 1024 };

test('a FIFO, a character device and a socket are PathNotReadable at once, sync and async', async () => {
  const t0 = performance.now();
  for (const [path, kind] of [
    [fifo, /a FIFO \(named pipe\)/],
    ['/dev/zero', /a character device/],
    [sock, /a socket/],
  ] as const) {
    assert.throws(() => readUserFileSync(path, rule), coded('PathNotReadable', new RegExp(`--file '${path}' is ${kind.source}`)));
    await assert.rejects(readUserFile(path, rule), coded('PathNotReadable', kind));
    await assert.rejects(streamUserFile(path, 'model path', () => {}), coded('PathNotReadable', kind));
  }
  assert.ok(performance.now() - t0 < 2000, 'refused without waiting for a writer');
});

test('a symbolic-link loop is PathNotReadable, a missing file the caller\'s code, a directory PathNotReadable', async () => {
  symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'));
  symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'));
  assert.throws(() => readUserFileSync(join(dir, 'loop-a'), rule), coded('PathNotReadable', /symbolic-link loop \(ELOOP\)/));
  await assert.rejects(readUserFile(join(dir, 'loop-a'), rule), coded('PathNotReadable', /symbolic-link loop/));
  assert.throws(() => readUserFileSync(join(dir, 'nope.yml'), rule), coded('BadArgument', /--file: No such file or directory: '.*nope\.yml'/));
  assert.throws(() => readUserFileSync(join(dir, 'nope.json'), { ...rule, missing: 'RequestFileInvalid' }), coded('RequestFileInvalid', /No such file/));
  await assert.rejects(readUserFile(dir, rule), coded('PathNotReadable', /is a directory, not a regular file/));
});

test('a file over its limit is FileTooLarge from fstat, naming the size and the limit; at the limit it is read', async () => {
  const big = join(dir, 'big.yml');
  writeFileSync(big, Buffer.alloc(1025, 0x61));
  assert.throws(() => readUserFileSync(big, rule), coded('FileTooLarge', /--file '.*big\.yml' is 1025 bytes; the limit is 1024 bytes/));
  await assert.rejects(readUserFile(big, rule), coded('FileTooLarge', /1025 bytes/));
  const exact = join(dir, 'exact.yml');
  writeFileSync(exact, Buffer.alloc(1024, 0x62));
  assert.equal(readUserFileSync(exact, rule).length, 1024);
  assert.equal((await readUserFile(exact, rule)).length, 1024);
  assert.throws(() => readUserFileSync(big, { what: 'conda_file', limit: 512 }), coded('FileTooLarge', /conda_file/));
});

test('walkTree follows links in name order, and refuses a link back to an ancestor, a dangling link and a FIFO inside', async () => {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'sub'), { recursive: true });
  writeFileSync(join(tree, 'b.txt'), 'b');
  writeFileSync(join(tree, 'sub', 'a.txt'), 'a');
  symlinkSync(join(tree, 'b.txt'), join(tree, 'link.txt'));
  mkdirSync(join(tree, '__pycache__'));
  writeFileSync(join(tree, '__pycache__', 'x.pyc'), 'x');
  const seen: string[] = [];
  for await (const e of walkTree(tree, { what: 'code', skip: new Set(['__pycache__']) })) seen.push(`${e.kind} ${e.rel}`);
  assert.deepEqual(seen, ['dir ', 'file b.txt', 'file link.txt', 'dir sub', 'file sub/a.txt']);

  const walk = async (root: string) => {
    for await (const _ of walkTree(root, { what: 'code' })) {
      /* drain */
    }
  };
  const loop = join(dir, 'loop-tree');
  mkdirSync(join(loop, 'inner'), { recursive: true });
  symlinkSync('..', join(loop, 'inner', 'up'));
  await assert.rejects(walk(loop), coded('PathNotReadable', /inner\/up' \(inside code .*\) is a symbolic-link loop/));

  const dangling = join(dir, 'dangling-tree');
  mkdirSync(dangling);
  symlinkSync(join(dir, 'nothing-here'), join(dangling, 'gone'));
  await assert.rejects(walk(dangling), coded('PathNotReadable', /gone' \(inside code .*\) is a symbolic link to a path that does not exist/));

  const special = join(dir, 'special-tree');
  mkdirSync(special);
  symlinkSync(fifo, join(special, 'pipe'));
  symlinkSync('/dev/zero', join(special, 'zero'));
  await assert.rejects(walk(special), coded('PathNotReadable', /pipe' \(inside code .*\) is a FIFO/));
  rmSync(join(special, 'pipe'));
  await assert.rejects(walk(special), coded('PathNotReadable', /zero' \(inside code .*\) is a character device/));
});

test('copyTree copies real files with their modes and counts them; a refused tree names the entry', async () => {
  const src = join(dir, 'model');
  mkdirSync(join(src, 'nested'), { recursive: true });
  writeFileSync(join(src, 'weights.bin'), Buffer.alloc(3000, 1));
  writeFileSync(join(src, 'nested', 'run.sh'), '#!/bin/sh\n', { mode: 0o755 });
  symlinkSync(join(src, 'weights.bin'), join(src, 'alias.bin'));
  const to = join(dir, 'out', 'deeper', 'model');
  const counts = await copyTree(src, to, { what: 'model path', preserveTimestamps: true });
  assert.deepEqual(counts, { files: 3, bytes: 6010 });
  assert.deepEqual(readdirSync(to).sort(), ['alias.bin', 'nested', 'weights.bin']);
  assert.equal(readFileSync(join(to, 'alias.bin')).length, 3000);
  assert.equal(execFileSync('stat', ['-c', '%a', join(to, 'nested', 'run.sh')]).toString().trim(), '755');

  symlinkSync('/dev/zero', join(src, 'zero'));
  const t0 = performance.now();
  await assert.rejects(copyTree(src, join(dir, 'out2'), { what: 'model path' }), coded('PathNotReadable', /zero' \(inside model path .*\) is a character device/));
  assert.ok(performance.now() - t0 < 2000);
  assert.ok(!existsSync(join(dir, 'out2', 'zero')), 'nothing is read from the device');
});
