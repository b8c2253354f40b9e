// `--local`: Azure's local endpoints (contract §2.4, deploy-local-endpoint.sh): in containers when a Docker
// Engine answers (the server's --backend auto), as processes otherwise. The
// commands talk to a server of their own on the workspace's `local/` folder, started in the background
// on first use and left running (as Azure leaves its containers running); `infergate server
// --workspace <home>/local --local-mode` is the same thing in the foreground.

import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { errorOf } from '../errors/index.js';
import { defaultWorkspace, readHolderRecord, readOwnerToken, readServerRecord } from '../util/workspace.js';

const BIN = fileURLToPath(new URL('../../bin/infergate.js', import.meta.url));
const START_TIMEOUT_MS = 20_000;
/** How long a refused server's command waits for the winner to name itself before it gives up. */
const HOLDER_GRACE_MS = 2_000;

export function localWorkspace(home = defaultWorkspace()): string {
  return join(home, 'local');
}

/**
 * The local server's control-plane URL, starting the server if none runs. Several `--local` commands
 * may arrive at once: each may start a server, the workspace lock lets exactly one of them run, and the
 * others (refused with WorkspaceLocked) wait for the winner's server.json like the rest: every command
 * ends up talking to the one server.
 */
export async function localServerUrl(home?: string): Promise<string> {
  const workspace = localWorkspace(home);
  const running = readServerRecord(workspace);
  if (running) return running.url;
  mkdirSync(workspace, { recursive: true });
  const logFile = join(workspace, 'server.log');
  let child: ChildProcess | undefined;
  /** Since when ours has exited and nobody was seen holding the workspace. */
  let orphanedSince = 0;
  const end = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < end) {
    const rec = readServerRecord(workspace);
    if (rec) {
      // Azure's local endpoints run in Docker; ours do when an engine answers (--backend auto), else
      // as processes: say which, once, when this command started the server.
      if (child !== undefined && process.stderr.isTTY && rec.backend) {
        process.stderr.write(rec.backend === 'docker' ? 'Local endpoints run in containers (Docker Engine found).\n' : `Local endpoints run as processes (no Docker Engine answered; see ${logFile}).\n`);
      }
      return rec.url;
    }
    // No live server, starting or serving: start one (once). If ours exited and nobody holds the
    // workspace for a while, it failed for a reason of its own, which is in the log. Not at once: the
    // server that beat ours to the lock writes its record a moment after winning it.
    if (readHolderRecord(workspace) === undefined) {
      if (child === undefined) child = spawnLocalServer(workspace, logFile);
      else if (child.exitCode !== null) {
        orphanedSince ||= Date.now();
        if (Date.now() - orphanedSince > HOLDER_GRACE_MS) break;
      }
    } else orphanedSince = 0;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw errorOf('LocalServerDidNotStart', { logFile });
}

/**
 * The local server and its owner token (`<home>/local/owner.token`): its control plane is authenticated
 * like any other; only its endpoints' scoring URIs take no key (Azure's local endpoints).
 */
export async function localServer(home?: string): Promise<{ url: string; token?: string }> {
  const url = await localServerUrl(home);
  const token = readOwnerToken(localWorkspace(home));
  return token !== undefined ? { url, token } : { url };
}

function spawnLocalServer(workspace: string, logFile: string): ChildProcess {
  const log = openSync(logFile, 'a');
  if (process.stderr.isTTY) process.stderr.write(`Starting the local infergate server (workspace ${workspace}) ...\n`);
  const child = spawn(process.execPath, [BIN, 'server', '--workspace', workspace, '--local-mode', '--port', '0', '--router-port', '0'], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  closeSync(log); // the child has its own copy
  child.unref();
  return child;
}
