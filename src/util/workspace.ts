// Where a workspace lives and how a client finds the server running on it.

import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

export const SERVER_FILE = 'server.json';

export interface ServerRecord {
  pid: number;
  /** Control-plane API base URL. */
  url: string;
  routerUrl: string;
  startedAt: string;
  version: string;
}

export function defaultWorkspace(env: NodeJS.ProcessEnv = process.env): string {
  return resolve(env.INFERGATE_HOME && env.INFERGATE_HOME !== '' ? env.INFERGATE_HOME : join(homedir(), '.infergate'));
}

export function readServerRecord(workspace: string): ServerRecord | undefined {
  try {
    const rec = JSON.parse(readFileSync(join(workspace, SERVER_FILE), 'utf8')) as ServerRecord;
    return isAlive(rec.pid) ? rec : undefined;
  } catch {
    return undefined;
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
