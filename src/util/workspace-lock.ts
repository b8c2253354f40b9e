// The workspace lock: one infergate server per workspace, decided by the kernel rather than by a pid file.
//
// Node has no flock(2), so the lock is an SQLite database of its own, `<workspace>/server.lock`, opened
// with `locking_mode = EXCLUSIVE` and an exclusive transaction held open for the server's whole life
// (busy timeout 0: a second server is refused at once, never queued). SQLite's unix VFS takes POSIX
// fcntl() record locks, which
//   - the kernel drops when the holding process dies, however it dies (kill -9, OOM): no stale lock;
//   - are taken atomically, so of N servers started at the same moment exactly one wins;
//   - work on local filesystems and on NFS with lockd.
// SQLite adds what fcntl lacks: two connections of one process conflict too (its per-inode lock table),
// and a refused connection's close does not drop the holder's lock (it keeps that descriptor open).
// Measured on this machine: a refused server exits ~0.2 s after it is spawned (Node's start-up).
// Two rules follow from fcntl semantics. The lock file is never deleted (a waiter could otherwise lock
// an unlinked inode while a newcomer locks a fresh file: two winners). And nothing in the holder's
// process may open and close server.lock with plain fs calls: closing ANY descriptor of a file drops
// all of a process's fcntl locks on it. That is why the holder's identity (pid, URLs, start time) is in
// a separate file, server.json (workspace.ts), written only after the lock is won.
//
// Loaded only by the server (it pulls in the native SQLite module), not by CLI commands that merely
// read server.json.

import { mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { errorOf } from '../errors/index.js';
import { readHolderRecord, removeServerRecord, writeServerRecord, type ServerRecord } from './workspace.js';

export const LOCK_FILE = 'server.lock';

/** Tries before a server is refused (a few ms apart: see lockWorkspace). */
const LOCK_ATTEMPTS = 5;
/** How long a refused server waits for the winner's server.json to name it (it is written right after the lock). */
const HOLDER_RECORD_WAIT_MS = 300;

export interface WorkspaceLock {
  readonly workspace: string;
  readonly file: string;
  /** When the lock was won: the server's start time in server.json. */
  readonly startedAt: string;
  /** Releases the lock (idempotent). The file stays, on purpose (see above). */
  release(): void;
}

/**
 * Takes the workspace's exclusive lock or throws WorkspaceLocked naming the server that holds it, and
 * writes the holder's record at once (pid, start time, `version`; no URLs yet) so that a server refused
 * a moment later can name this one.
 */
export async function lockWorkspace(workspace: string, version: string): Promise<WorkspaceLock> {
  mkdirSync(workspace, { recursive: true, mode: 0o700 });
  const file = join(workspace, LOCK_FILE);
  let db: Database.Database | undefined;
  for (let attempt = 1; ; attempt++) {
    try {
      db = new Database(file, { timeout: 0 });
      db.pragma('locking_mode = EXCLUSIVE');
      // No rollback journal file next to the lock: nothing is ever written to this database.
      db.pragma('journal_mode = MEMORY');
      db.exec('BEGIN EXCLUSIVE');
      break;
    } catch (e) {
      db?.close();
      db = undefined;
      const code = (e as { code?: string }).code;
      if (code !== 'SQLITE_BUSY' && code !== 'SQLITE_LOCKED') throw errorOf('WorkspaceLockFailed', { file, reason: (e as Error).message });
      // Two servers started at the same moment can each hold the SHARED lock that reading the file
      // takes (kept in exclusive locking mode) and so refuse each other: both let go and try again after
      // a random pause, and one of them wins. A server that really holds the lock keeps refusing.
      if (attempt >= LOCK_ATTEMPTS) throw errorOf('WorkspaceLocked', { workspace, holder: await describeHolder(workspace, file) });
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
    }
  }
  const held = db;
  let released = false;
  const lock: WorkspaceLock = {
    workspace,
    file,
    startedAt: new Date().toISOString(),
    release() {
      if (released) return;
      released = true;
      held.close(); // closes the descriptor: the kernel drops the lock
    },
  };
  try {
    writeServerRecord(workspace, { pid: process.pid, url: '', routerUrl: '', startedAt: lock.startedAt, version });
  } catch (e) {
    removeServerRecord(workspace);
    lock.release();
    throw e;
  }
  return lock;
}

/** Who holds the lock, for the WorkspaceLocked message: pid, URL and start time when they can be trusted. */
async function describeHolder(workspace: string, file: string): Promise<string> {
  // The kernel's word first (Linux): the pid that holds the lock now. server.json is trusted only when it
  // names that pid, so a record left by a crashed server (or a reused pid) never names the wrong process.
  const pid = lockHolderPid(file);
  let rec: ServerRecord | undefined;
  const end = Date.now() + HOLDER_RECORD_WAIT_MS;
  for (;;) {
    rec = readHolderRecord(workspace);
    if (rec && (pid === undefined || rec.pid === pid)) break;
    rec = undefined;
    if (Date.now() >= end) break;
    await new Promise((r) => setTimeout(r, 10));
  }
  return rec
    ? rec.url
      ? `pid ${rec.pid}, serving at ${rec.url} (router ${rec.routerUrl}) since ${rec.startedAt}, version ${rec.version}`
      : `pid ${rec.pid}, starting since ${rec.startedAt}, version ${rec.version}`
    : pid !== undefined
      ? `pid ${pid}`
      : 'a process that has not written server.json';
}

/**
 * The pid holding a POSIX lock on `file`, from /proc/locks (Linux), or undefined where that cannot be
 * read. Lines look like `1: POSIX  ADVISORY  WRITE 6531 fe:00:2146943 1073741824 1073742335`; blocked
 * waiters have `->` and are skipped.
 */
export function lockHolderPid(file: string): number | undefined {
  let text: string;
  let dev: bigint;
  let ino: bigint;
  try {
    const st = statSync(file, { bigint: true });
    dev = st.dev;
    ino = st.ino;
    text = readFileSync('/proc/locks', 'utf8');
  } catch {
    return undefined;
  }
  // glibc's major()/minor() of st_dev; /proc/locks prints them in hex.
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  for (const line of text.split('\n')) {
    if (line.includes('->')) continue;
    const m = /^\d+:\s+POSIX\s+\S+\s+\S+\s+(\d+)\s+([0-9a-f]+):([0-9a-f]+):(\d+)\s/.exec(line);
    if (m && BigInt(m[4]) === ino && BigInt(`0x${m[2]}`) === major && BigInt(`0x${m[3]}`) === minor) return Number(m[1]);
  }
  return undefined;
}
