// The composition root (DESIGN.md "main/"): the only place that wires concrete implementations.
// Role all-in-one: control-plane API + router + process backend + reconciler in one process.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { buildApi } from '../api/index.js';
import { ProcessBackend } from '../backend/index.js';
import { Controller } from '../reconcile/index.js';
import { Router } from '../router/index.js';
import { openStateStore } from '../store/index.js';
import { FileTrafficLog } from '../telemetry/index.js';
import { httpUrl, removeServerRecord, writeServerRecord } from '../util/workspace.js';
import { lockWorkspace, type WorkspaceLock } from '../util/workspace-lock.js';

export interface ServerOptions {
  workspace: string;
  host: string;
  port: number;
  routerPort: number;
  /**
   * Local mode (`--local` commands): no auth, each endpoint scored at http://localhost:<port>/score on a
   * port of its own, location `local` — Azure's local endpoints without Docker (contract §2.4).
   */
  local?: boolean;
  /** Largest scoring request body (bytes). */
  maxBodyBytes?: number;
  /** Router: open client connections allowed (503 beyond), and per client address (429 beyond). */
  maxConnections?: number;
  maxConnectionsPerClient?: number;
  /** Router: request-body bytes buffered at once across all connections (503 + Retry-After beyond). */
  maxBufferedBodyBytes?: number;
  /** Router: minimum request-body rate after a 5 s grace (408 below it); 0 disables. */
  minBodyBytesPerSecond?: number;
  /** Write the per-request traffic log (<workspace>/logs/traffic.jsonl). */
  trafficLog?: boolean;
  /** Deployments allowed per endpoint (Azure: 20). */
  maxDeploymentsPerEndpoint?: number;
  log?: (line: string) => void;
  /**
   * The workspace lock, if the caller took it already (the CLI does, before it loads the server's
   * modules, so a refused server exits in about the time Node takes to start). Released on close.
   */
  lock?: WorkspaceLock;
}

export interface RunningServer {
  url: string;
  routerUrl: string;
  close(): Promise<void>;
}

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  // The workspace lock comes before anything else: a second server on this workspace is refused
  // (WorkspaceLocked) before it opens the store, binds a port, or touches an instance directory or socket.
  const lock = o.lock ?? (await lockWorkspace(o.workspace, VERSION));
  if (lock.workspace !== o.workspace) throw new Error(`the lock given is for ${lock.workspace}, not ${o.workspace}`);
  try {
    return await serve(o, lock, lock.startedAt);
  } catch (e) {
    removeServerRecord(o.workspace);
    lock.release();
    throw e;
  }
}

async function serve(o: ServerOptions, lock: WorkspaceLock, startedAt: string): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  const store = openStateStore(o.workspace);
  const backend = new ProcessBackend({ workspace: o.workspace, log });
  // Files of deployments deleted just before an earlier server died (store deleted, files not yet).
  const stored = new Set(store.listDeployments().map((d) => `${d.spec.endpointName}/${d.spec.name}`));
  await backend.forgetUnknown((endpoint, deployment) => stored.has(`${endpoint}/${deployment}`));
  const router = new Router({
    ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}),
    ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
    ...(o.maxConnectionsPerClient !== undefined ? { maxConnectionsPerClient: o.maxConnectionsPerClient } : {}),
    ...(o.maxBufferedBodyBytes !== undefined ? { maxBufferedBodyBytes: o.maxBufferedBodyBytes } : {}),
    ...(o.minBodyBytesPerSecond !== undefined ? { minBodyBytesPerSecond: o.minBodyBytesPerSecond } : {}),
    ...(o.trafficLog !== false ? { trafficLog: new FileTrafficLog(join(o.workspace, 'logs', 'traffic.jsonl')) } : {}),
    ...(o.local ? { endpointListeners: { host: o.host } } : {}),
  });
  const routerAddress = await router.listen(o.routerPort, o.host);
  const routerUrl = httpUrl(o.host, routerAddress.port);
  const controller = new Controller({ store, backend, publish: (t) => router.setTable(t), log, ...(o.local ? { local: true } : {}) });
  const api = await buildApi({
    store,
    controller,
    logs: (e, d, c, n) => backend.logs(e, d, c, n),
    routerUrl,
    workspace: basename(o.workspace),
    assetsDir: join(o.workspace, 'assets'),
    location: o.local ? 'local' : hostname(),
    ...(o.local ? { scoringUriOf: async (name: string) => `http://localhost:${await router.endpointPort(name)}/score` } : {}),
    version: VERSION,
    ...(o.maxDeploymentsPerEndpoint !== undefined ? { maxDeploymentsPerEndpoint: o.maxDeploymentsPerEndpoint } : {}),
  });
  await api.listen({ port: o.port, host: o.host });
  const apiPort = (api.server.address() as { port: number }).port;
  const url = httpUrl(o.host, apiPort);
  writeServerRecord(o.workspace, { pid: process.pid, url, routerUrl, startedAt, version: VERSION });

  // After a restart every stored endpoint and deployment is provisioned again (nothing is lost).
  const endpoints = store.listEndpoints().length;
  const deployments = store.listDeployments().length;
  if (endpoints > 0) log(`restoring ${endpoints} endpoint(s) and ${deployments} deployment(s) from ${join(o.workspace, 'state.db')}`);
  await controller.kick();

  let closing: Promise<void> | undefined;
  return {
    url,
    routerUrl,
    close: () =>
      (closing ??= (async () => {
        try {
          controller.stop();
          await api.close();
          await router.close();
          await backend.close();
          store.close();
        } finally {
          // Only our own record (the lock guarantees no other server wrote one meanwhile; the check
          // keeps that true whatever happens), and the lock last of all.
          removeServerRecord(o.workspace);
          lock.release();
        }
      })()),
  };
}
