// The storage initializer as every local backend runs it (Azure's storage-initializer container): a
// short-lived process that copies a deployment's model and code into an instance directory and logs
// what it did to the instance's storage-initializer.log. The process backend's instances read the copy
// in place; the docker backend mounts it read-only into the container.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { InstancePlan } from '../ir/types.js';
import { STORAGE_RESULT_PREFIX, type StorageResult } from '../protocol/messages.js';
import { ConsoleLog, type ConsoleLogOptions } from './process/console-log.js';
import { RUNTIME_EXEC_ARGV, STORAGE_SCRIPT } from './process/supervisor.js';

export type StorageOutcome = { ok: true; result: StorageResult } | { ok: false; message: string };

/**
 * Copies `plan`'s model and code below `instanceDir` (created 0711 if missing). `onChild` gets the
 * process, so a stop can kill it. Never throws for the copy's own failures: they come back as a message.
 */
export async function initializeStorage(
  plan: Pick<InstancePlan, 'model' | 'code'>,
  instanceDir: string,
  logFile: string,
  consoleLog: Required<ConsoleLogOptions>,
  onChild: (child: ChildProcess | null) => void,
): Promise<StorageOutcome> {
  await mkdir(instanceDir, { recursive: true, mode: 0o711 });
  const requestFile = join(instanceDir, 'storage-request.json');
  await writeFile(requestFile, JSON.stringify({ instanceDir, ...(plan.model ? { model: plan.model } : {}), ...(plan.code ? { code: { path: plan.code.path } } : {}) }));
  const log = new ConsoleLog(logFile, consoleLog);
  const child = spawn(process.execPath, [...RUNTIME_EXEC_ARGV, STORAGE_SCRIPT, requestFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  onChild(child);
  let out = '';
  let err = '';
  child.stdout!.on('data', (c: Buffer) => {
    out += c.toString();
    log.write(c);
  });
  child.stderr!.on('data', (c: Buffer) => {
    err += c.toString();
    log.write(c);
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  onChild(null);
  await log.end();
  if (code !== 0) return { ok: false, message: `storage initializer failed: ${err.trim() || `exit code ${code}`}` };
  const line = out.split('\n').find((l) => l.startsWith(STORAGE_RESULT_PREFIX));
  if (!line) return { ok: false, message: 'storage initializer printed no result' };
  return { ok: true, result: JSON.parse(line.slice(STORAGE_RESULT_PREFIX.length)) as StorageResult };
}
