// Where a workspace lives and how a client finds the server running on it.
//
// server.json names the server that holds the workspace lock (workspace-lock.ts). The lock decides who
// runs; this file only says who that is and where it listens, so a record left by a crashed server is
// harmless: the next server overwrites it. It is written twice, each time whole (write + rename, so a
// reader never sees half a record): right after the lock is won with the pid and no URLs yet
// ("starting"), then with the URLs once both ports listen.

import { chmodSync, mkdirSync, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const SERVER_FILE = 'server.json';
/** The workspace's local owner token (docs/security.md): 0600, in a 0700 workspace. */
export const OWNER_TOKEN_FILE = 'owner.token';

export interface ServerRecord {
  pid: number;
  /** Control-plane API base URL; '' while the server is starting. */
  url: string;
  /** '' while the server is starting. */
  routerUrl: string;
  startedAt: string;
  version: string;
  /** Where its instances run: 'process' or 'docker' (`--backend`). */
  backend?: string;
  /**
   * With TLS: a CA file the CLI on this machine trusts for `url` and `routerUrl` (the --tls-dev CA, or a
   * self-signed --tls-cert), so it needs no --cacert (util/tls.ts).
   */
  caFile?: string;
}

export function defaultWorkspace(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.INFERGATE_HOME && env.INFERGATE_HOME !== '' ? env.INFERGATE_HOME : join(homedir(), '.infergate'));
}

/** The record of a server that serves the workspace (it listens; its process is alive). */
export function readServerRecord(workspace: string): ServerRecord | undefined {
  const rec = readHolderRecord(workspace);
  return rec && rec.url !== '' ? rec : undefined;
}

/** The record of a live server on the workspace, starting or serving. */
export function readHolderRecord(workspace: string): ServerRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(workspace, SERVER_FILE), 'utf8')) as ServerRecord;
    return typeof rec.pid === 'number' && isAlive(rec.pid) ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** Writes server.json whole (never half a record for a reader). Only the lock holder calls this. */
export function writeServerRecord(workspace: string, rec: ServerRecord): void {
  const file = join(workspace, SERVER_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  // 0600: the server's alone (instances pass through the workspace by name: backend/process/isolation.ts).
  writeFileSync(tmp, JSON.stringify(rec, null, 2), { mode: 0o600 });
  renameSync(tmp, file);
}

/**
 * Removes server.json if, and only if, it still names process `pid`: a server never removes a record it
 * did not write. Returns whether it removed it.
 */
export function removeServerRecord(workspace: string, pid: number = process.pid): boolean {
  const file = join(workspace, SERVER_FILE);
  try {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as Partial<ServerRecord>;
    if (rec.pid !== pid) return false;
    unlinkSync(file);
    return true;
  } catch {
    return false;
  }
}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** `http://host:port` (`https://` when `secure`), with IPv6 hosts bracketed. */
export function httpUrl(host: string, port: number, secure = false): string {
  return `${secure ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/**
 * Makes the workspace directory owner-only, creating it 0700 if needed: it holds state.db (endpoint
 * keys), owner.token and the audit log. An existing directory made by an older version is tightened:
 * group read/write and every "other" bit go. Group search (x) is kept: instance isolation grants it to
 * the instances' group so that they can reach their own instance directory (traverse, not list), also
 * through a workspace that contains another one (`<home>/local`).
 */
export function secureWorkspaceDir(workspace: string): void {
  mkdirSync(workspace, { recursive: true, mode: 0o700 });
  const mode = statSync(workspace).mode & 0o777;
  const tight = (mode & 0o010) | 0o700;
  if (mode !== tight) chmodSync(workspace, tight);
}

/** The owner token beside server.json, or undefined when there is none or it cannot be read by this user. */
export function readOwnerToken(workspace: string): string | undefined {
  try {
    const text = readFileSync(join(workspace, OWNER_TOKEN_FILE), 'utf8').trim();
    return text === '' ? undefined : text;
  } catch {
    return undefined;
  }
}

/** Writes owner.token whole (write + rename) and owner-only (0600) from its first byte. */
export function writeOwnerToken(workspace: string, token: string): void {
  const file = join(workspace, OWNER_TOKEN_FILE);
  const tmp = `${file}.${process.pid}.tmp`;
  rmSync(tmp, { force: true }); // a tmp file left by a crash would keep its old mode
  writeFileSync(tmp, token + '\n', { mode: 0o600, flag: 'wx' });
  renameSync(tmp, file);
}
