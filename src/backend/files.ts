// Files of local instances, shared by the process and docker backends. Console logs: each instance writes
// <workspace>/logs/<endpoint>/<deployment>/<instance>/<container>.log (rotated, console-log.ts), and
// get-logs reads the live instances' files, or the most recent stopped one's when none runs.
//
// <workspace>/logs/<endpoint>/<deployment>/current is a symbolic link to the folder of the deployment's
// newest live instance (the last one started that is not failed or stopping), so that
// `tail -F <workspace>/logs/<endpoint>/<deployment>/current/inference-server.log` follows the deployment
// across restarts, scale-outs and rolling updates without looking up instance ids. When no instance runs it
// keeps naming the last one (whose logs are kept), and it goes with the deployment's logs.

import { readdir, rename, rm, stat, symlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { LogContainer } from './types.js';
import { consoleLogFiles, tailLines } from './process/console-log.js';

/**
 * Logs of instances stopped while their deployment lives on (scale-in, a rolling update's old revision,
 * a retried failure) are kept for get-logs; of those, this many per deployment stay, the oldest go. A
 * deleted deployment's logs go with it (forget()), as on Azure.
 */
export const KEEP_STOPPED_LOGS = 3;

/** The name of the link to the newest live instance's log folder, beside the instances' own folders. */
export const CURRENT_LINK = 'current';

/** The stable path of a deployment's current console log (what `tail -F` and get-logs --follow read). */
export function currentLogFile(workspace: string, endpoint: string, deployment: string, container: LogContainer): string {
  return join(workspace, 'logs', endpoint, deployment, CURRENT_LINK, `${container}.log`);
}

/**
 * Points `current` at the instance `id` (relative, so the workspace can move). Replaced by rename, so a
 * reader never finds it missing. False when the deployment's log folder does not exist yet (the instance
 * has written nothing): the caller tries again at the next change.
 */
export async function linkCurrent(workspace: string, endpoint: string, deployment: string, id: string): Promise<boolean> {
  const dir = join(workspace, 'logs', endpoint, deployment);
  const tmp = join(dir, `.${CURRENT_LINK}-${process.pid}-${id}`);
  try {
    await rm(tmp, { force: true });
    await symlink(id, tmp);
    await rename(tmp, join(dir, CURRENT_LINK));
    return true;
  } catch (e) {
    await rm(tmp, { force: true }).catch(() => {});
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}

async function byAge(dir: string): Promise<{ id: string; mtime: number }[]> {
  // Instance folders only: not the `current` link nor a link being replaced.
  const ids = (await readdir(dir).catch(() => [] as string[])).filter((id) => id !== CURRENT_LINK && !id.startsWith('.'));
  const withTimes = await Promise.all(ids.map(async (id) => ({ id, mtime: (await stat(join(dir, id)).catch(() => null))?.mtimeMs ?? 0 })));
  return withTimes.sort((a, b) => b.mtime - a.mtime);
}

/** The last `lines` lines of one container's log: every live instance (newest first), else the latest stopped one. */
export async function readDeploymentLogs(workspace: string, endpoint: string, deployment: string, container: LogContainer, lines: number, live: Set<string>, keepFiles: number): Promise<string> {
  const base = join(workspace, 'logs', endpoint, deployment);
  const all = await byAge(base);
  const chosen = all.filter((x) => live.has(x.id));
  if (chosen.length === 0 && all.length > 0) chosen.push(all[0]);
  const parts: string[] = [];
  for (const { id } of chosen) {
    // The current file and its rotated predecessors: --lines N reads across a rotation.
    const tail = await tailLines(consoleLogFiles(join(base, id, `${container}.log`), keepFiles), lines);
    parts.push(chosen.length > 1 ? `=== instance ${id} ===\n${tail}` : tail);
  }
  return parts.join('\n');
}

/** Removes the logs of stopped instances beyond KEEP_STOPPED_LOGS (the oldest first). */
export async function pruneStoppedLogs(workspace: string, endpoint: string, deployment: string, inUse: Set<string>): Promise<void> {
  const logsDir = join(workspace, 'logs', endpoint, deployment);
  const stopped = (await byAge(logsDir)).filter((x) => !inUse.has(x.id));
  for (const { id } of stopped.slice(KEEP_STOPPED_LOGS)) await rm(join(logsDir, id), { recursive: true, force: true });
}

/**
 * Deployments with files under instances/ or logs/ that `exists` does not know: deleted just before an
 * earlier server died, between the store's delete and the backend's forget().
 */
export async function unknownDeployments(workspace: string, exists: (endpoint: string, deployment: string) => boolean): Promise<[string, string][]> {
  const seen = new Map<string, [string, string]>();
  for (const tree of ['instances', 'logs']) {
    const root = join(workspace, tree);
    for (const e of await readdir(root, { withFileTypes: true }).catch(() => [])) {
      if (!e.isDirectory()) continue;
      for (const d of await readdir(join(root, e.name), { withFileTypes: true }).catch(() => [])) {
        if (d.isDirectory() && !exists(e.name, d.name)) seen.set(`${e.name}/${d.name}`, [e.name, d.name]);
      }
    }
  }
  return [...seen.values()];
}
