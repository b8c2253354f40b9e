// Where a workspace lives and how a client finds the server running on it.
//
// server.json names the server that holds the workspace lock (workspace-lock.ts). The lock decides who
// runs; this file only says who that is and where it listens, so a record left by a crashed server is
// harmless: the next server overwrites it. It is written twice, each time whole (write + rename, so a
// reader never sees half a record): right after the lock is won with the pid and no URLs yet
// ("starting"), then with the URLs once both ports listen.

import { readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const SERVER_FILE = 'server.json';

export interface ServerRecord {
  pid: number;
  /** Control-plane API base URL; '' while the server is starting. */
  url: string;
  /** '' while the server is starting. */
  routerUrl: string;
  startedAt: string;
  version: string;
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
  writeFileSync(tmp, JSON.stringify(rec, null, 2));
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

/** `http://host:port`, with IPv6 hosts bracketed. */
export function httpUrl(host: string, port: number): string {
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}
