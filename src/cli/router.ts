// `infergate router --control <url>`: only the data plane (docs/router-scale.md), following a control
// plane's routing tables. Several of them (and the control plane's own router) can serve the same
// deployments: admission is then held at the instances.

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Command } from 'commander';
import { errorOf, InfergateError } from '../errors/index.js';
import { print, serverLog } from './common.js';
import { isLoopbackHost } from '../util/tls.js';

const portNumber = (v: string): number => {
  const n = Number(v);
  if (!/^\d+$/.test(v) || n > 65535) throw errorOf('PortInvalid', { flag: '--port', value: v });
  return n;
};

/** The control plane's URL, checked before anything is sent to it (a typo would only show as endless retries). */
function controlUrl(value: string): URL {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw errorOf('RouterControlUrlInvalid', { url: value });
  }
  // A password in it is not repeated in the message.
  if (u.username !== '' || u.password !== '') throw errorOf('RouterControlUrlInvalid', { url: `${u.protocol}//…@${u.host}` });
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw errorOf('RouterControlUrlInvalid', { url: value });
  return u;
}

export function routerCommand(program: Command): void {
  program
    .command('router')
    .description('Run only the router (the data plane), following the routing tables of a control plane (infergate server)')
    .requiredOption('--control <url>', "the control plane's URL (infergate server's control-plane address)")
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <port>', 'router (scoring URI) port (0: any free port)', portNumber, 8472)
    .option('--token-file <file>', 'file holding an owner token of the control plane (default: $INFERGATE_TOKEN)')
    .option('--ca-file <file>', "PEM CA to trust for an https control plane (besides the system's)")
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (chain); reloaded on SIGHUP')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert')
    .option('--traffic-log <file>', "write this router's per-request traffic log (JSON lines) to <file>")
    .option('--insecure', 'allow plain HTTP on a non-loopback --host (refused otherwise)')
    .action(async (o: { control: string; host: string; port: number; tokenFile?: string; caFile?: string; tlsCert?: string; tlsKey?: string; trafficLog?: string; insecure?: boolean }) => {
      if ((o.tlsCert === undefined) !== (o.tlsKey === undefined)) throw errorOf('TlsFlagsIncomplete');
      const control = controlUrl(o.control);
      const token = o.tokenFile !== undefined ? readFileSync(resolve(o.tokenFile), 'utf8').trim() : process.env.INFERGATE_TOKEN?.trim();
      if (token === undefined || token === '') throw errorOf('RouterTokenMissing', { control: o.control });
      const log = serverLog('text', 'info');
      // The owner token goes with every poll: over plain HTTP to another machine it crosses the network in
      // clear (the control plane there was started with --insecure; this router follows that choice, loudly).
      if (control.protocol === 'http:' && !isLoopbackHost(control.hostname)) log(`WARNING: --control ${control.origin} is plain HTTP: the owner token crosses the network unencrypted`);
      const { checkBinding } = await import('../main/server.js');
      checkBinding({ host: o.host, ...(o.tlsCert !== undefined ? { tls: { certFile: o.tlsCert, keyFile: o.tlsKey! } } : {}), ...(o.insecure ? { insecure: true } : {}) }, log);
      const { loadTlsFiles } = await import('../util/tls.js');
      const tlsFiles = o.tlsCert !== undefined ? { certFile: resolve(o.tlsCert), keyFile: resolve(o.tlsKey!) } : undefined;
      const { startRouterRole } = await import('../main/router-role.js');
      const router = await startRouterRole({
        control: o.control,
        token,
        host: o.host,
        port: o.port,
        log,
        ...(o.caFile !== undefined ? { caFile: resolve(o.caFile) } : {}),
        ...(tlsFiles !== undefined ? { tls: loadTlsFiles(tlsFiles.certFile, tlsFiles.keyFile).context } : {}),
        ...(o.trafficLog !== undefined ? { trafficLogFile: resolve(o.trafficLog) } : {}),
      });
      print(`infergate router serving ${router.url}, following ${o.control}\n`);
      if (tlsFiles !== undefined) {
        process.on('SIGHUP', () => {
          try {
            router.setSecureContext(loadTlsFiles(tlsFiles.certFile, tlsFiles.keyFile).context);
            log('SIGHUP: TLS certificate reloaded');
          } catch (e) {
            log(`SIGHUP: TLS certificate NOT reloaded, still serving the previous one: ${e instanceof InfergateError ? `(${e.code}) ${e.message}` : String(e)}`);
          }
        });
      }
      await new Promise<void>((done) => {
        const stop = (signal: string): void => {
          log(`${signal}: stopping`);
          router.close().then(done, done);
        };
        process.once('SIGTERM', () => stop('SIGTERM'));
        process.once('SIGINT', () => stop('SIGINT'));
      });
      // A long poll still open to the control plane must not keep the process up.
      process.exit(0);
    });
}
