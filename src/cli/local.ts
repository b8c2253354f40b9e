// `--local`: Azure's local endpoints (contract §2.4, deploy-local-endpoint.sh) without Docker. The
// commands talk to a server of their own on the workspace's `local/` folder, started in the background
// on first use and left running (as Azure leaves its containers running); `infergate server
// --workspace <home>/local --local-mode` is the same thing in the foreground.

import { spawn } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { InfergateError } from '../errors/index.js';
import { defaultWorkspace, readServerRecord } from '../util/workspace.js';

const BIN = fileURLToPath(new URL('../../bin/infergate.js', import.meta.url));
const START_TIMEOUT_MS = 20_000;

export function localWorkspace(home = defaultWorkspace()): string {
  return join(home, 'local');
}

/** The local server's control-plane URL, starting the server if none runs. */
export async function localServerUrl(home?: string): Promise<string> {
  const workspace = localWorkspace(home);
  const running = readServerRecord(workspace);
  if (running) return running.url;
  mkdirSync(workspace, { recursive: true });
  const logFile = join(workspace, 'server.log');
  const log = openSync(logFile, 'a');
  if (process.stderr.isTTY) process.stderr.write(`Starting the local infergate server (workspace ${workspace}) ...\n`);
  const child = spawn(process.execPath, [BIN, 'server', '--workspace', workspace, '--local-mode', '--port', '0', '--router-port', '0'], {
    detached: true,
    stdio: ['ignore', log, log],
  });
  child.unref();
  const end = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < end) {
    const rec = readServerRecord(workspace);
    if (rec) return rec.url;
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new InfergateError('ServerNotFound', `The local infergate server did not start; see ${logFile}`);
}
