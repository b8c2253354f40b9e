// `infergate studio`: prints (and with --open opens) a link that signs a browser in to the studio with
// a one-time code, as Jupyter prints its token URL. The code is asked of the server with the CLI's own
// token and stands for it: a reader's link gives a reader's studio (docs/studio.md).

import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { Client, resolveServer } from '../client/index.js';
import { trustCaFile } from '../util/tls.js';
import { print } from './common.js';

/** Starts the desktop's opener; a machine without one (a server over SSH) just has the printed link. */
function openInBrowser(url: string): void {
  try {
    const child = spawn('xdg-open', [url], { stdio: 'ignore', detached: true });
    child.on('error', () => process.stderr.write('Could not run xdg-open: open the link above yourself.\n'));
    child.unref();
  } catch {
    process.stderr.write('Could not run xdg-open: open the link above yourself.\n');
  }
}

export function studioCommand(program: Command): void {
  program
    .command('studio')
    .description('Print a link that signs a browser in to the studio web UI (one use, expires in 2 minutes), with the role of your token')
    .option('--open', 'also open the link in the desktop browser (xdg-open)')
    .option('--server <url>', 'control-plane URL (default: $INFERGATE_URL, or the server running for the workspace)')
    .option('--cacert <file>', 'also trust this PEM CA certificate for an https:// server')
    .option('--workspace <dir>', 'workspace directory used to find the server (default: $INFERGATE_HOME or ~/.infergate)')
    .action(async (o: { open?: boolean; server?: string; cacert?: string; workspace?: string }) => {
      if (o.cacert) trustCaFile(resolve(o.cacert));
      const t = resolveServer({ ...(o.server ? { server: o.server } : {}), ...(o.workspace ? { workspace: o.workspace } : {}) });
      const c = new Client(t.url, t.token);
      const r = await c.request<{ path: string; expires_in_seconds: number }>('POST', '/studio/v1/sign-in-codes');
      const url = `${t.url}${r.path}`;
      print(`${url}\n`);
      if (process.stderr.isTTY) process.stderr.write(`Open the link within ${r.expires_in_seconds} s; it signs in one browser, once.\n`);
      if (o.open) openInBrowser(url);
    });
}
