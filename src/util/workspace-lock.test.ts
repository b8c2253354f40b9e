import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { InfergateError } from '../errors/index.js';
import { lockHolderPid, lockWorkspace, LOCK_FILE } from './workspace-lock.js';
import { readHolderRecord, readServerRecord, removeServerRecord, SERVER_FILE, writeServerRecord } from './workspace.js';

const root = mkdtempSync(join(tmpdir(), 'infergate-lock-'));
after(() => rmSync(root, { recursive: true, force: true }));

async function refusal(workspace: string): Promise<InfergateError> {
  const e = await lockWorkspace(workspace, '9.9.9').then(
    () => assert.fail('a second lock was granted'),
    (err: unknown) => err,
  );
  assert.ok(e instanceof InfergateError);
  assert.equal(e.code, 'WorkspaceLocked');
  return e;
}

test('one lock per workspace, even between two callers in one process; released, it can be taken again', async () => {
  const ws = join(root, 'a');
  const lock = await lockWorkspace(ws, '1.2.3');
  const rec = readHolderRecord(ws);
  assert.equal(rec?.pid, process.pid);
  assert.equal(rec?.url, '', 'starting: no URLs yet');
  assert.equal(readServerRecord(ws), undefined, 'a starting server is not one clients can use');
  const e = await refusal(ws);
  assert.match(e.message, new RegExp(`pid ${process.pid}, starting since ${lock.startedAt}, version 1\\.2\\.3`));
  if (existsSync('/proc/locks')) assert.equal(lockHolderPid(join(ws, LOCK_FILE)), process.pid);

  writeServerRecord(ws, { pid: process.pid, url: 'http://127.0.0.1:1', routerUrl: 'http://127.0.0.1:2', startedAt: lock.startedAt, version: '1.2.3' });
  assert.match((await refusal(ws)).message, /serving at http:\/\/127\.0\.0\.1:1 \(router http:\/\/127\.0\.0\.1:2\)/);
  // The refused connections closed their descriptors of server.lock, which with plain fcntl() would drop
  // this process's lock (fcntl(2)); SQLite keeps such descriptors open until the lock goes. The kernel
  // still says we hold it:
  if (existsSync('/proc/locks')) assert.equal(lockHolderPid(join(ws, LOCK_FILE)), process.pid);

  assert.equal(removeServerRecord(ws), true);
  lock.release();
  lock.release(); // idempotent
  assert.ok(existsSync(join(ws, LOCK_FILE)), 'the lock file stays (deleting it would let two servers lock two files)');
  const again = await lockWorkspace(ws, '1.2.3');
  again.release();
});

test('a record left by a crashed server neither blocks nor is named; a record of another pid is not removed', async () => {
  const ws = join(root, 'b');
  await lockWorkspace(ws, '0').then((l) => l.release());
  // A dead pid's record (the kernel reuses pids slowly; 2^22 - 1 is beyond Linux's default pid_max).
  writeFileSync(join(ws, SERVER_FILE), JSON.stringify({ pid: 4_194_303, url: 'http://127.0.0.1:9', routerUrl: '', startedAt: 'then', version: 'old' }));
  const lock = await lockWorkspace(ws, '2');
  assert.equal(readHolderRecord(ws)?.pid, process.pid, 'the new holder overwrote it');
  lock.release();

  writeFileSync(join(ws, SERVER_FILE), JSON.stringify({ pid: 1, url: 'http://x', routerUrl: '', startedAt: 'x', version: 'x' }));
  assert.equal(removeServerRecord(ws), false);
  assert.equal(JSON.parse(readFileSync(join(ws, SERVER_FILE), 'utf8')).pid, 1);
});

test('the kernel releases the lock of a process killed with -9', async () => {
  const ws = join(root, 'c');
  const holder = spawn(
    process.execPath,
    ['--import', 'tsx', '--input-type=module', '-e', `const { lockWorkspace } = await import(${JSON.stringify(new URL('./workspace-lock.ts', import.meta.url).href)}); await lockWorkspace(${JSON.stringify(ws)}, 'x'); console.log('LOCKED'); setInterval(() => {}, 1000);`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  try {
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.on('data', (c: Buffer) => c.toString().includes('LOCKED') && resolve());
      holder.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
    });
    assert.match((await refusal(ws)).message, new RegExp(`pid ${holder.pid}, starting`));
    holder.kill('SIGKILL');
    await new Promise((r) => holder.once('exit', r));
    const lock = await lockWorkspace(ws, 'y');
    assert.equal(readHolderRecord(ws)?.pid, process.pid);
    lock.release();
  } finally {
    holder.kill('SIGKILL');
  }
});
