// The composition root (DESIGN.md "main/"): the only place that wires concrete implementations.
// Role all-in-one: control-plane API + router + process backend + reconciler in one process.

import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { buildApi } from '../api/index.js';
import { ProcessBackend } from '../backend/index.js';
import { InfergateError } from '../errors/index.js';
import { Controller } from '../reconcile/index.js';
import { Router } from '../router/index.js';
import { openStateStore } from '../store/index.js';
import { FileTrafficLog } from '../telemetry/index.js';
import { httpUrl, readServerRecord, SERVER_FILE, type ServerRecord } from '../util/workspace.js';

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
  /** Write the per-request traffic log (<workspace>/logs/traffic.jsonl). */
  trafficLog?: boolean;
  /** Deployments allowed per endpoint (Azure: 20). */
  maxDeploymentsPerEndpoint?: number;
  log?: (line: string) => void;
}

export interface RunningServer {
  url: string;
  routerUrl: string;
  close(): Promise<void>;
}

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  const log = o.log ?? (() => {});
  mkdirSync(o.workspace, { recursive: true });
  const running = readServerRecord(o.workspace);
  if (running && running.pid !== process.pid) {
    throw new InfergateError('OperationInProgress', `Another infergate server (pid ${running.pid}) already serves workspace ${o.workspace} at ${running.url}.`);
  }

  const store = openStateStore(o.workspace);
  const backend = new ProcessBackend({ workspace: o.workspace, log });
  const router = new Router({
    ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}),
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
  const record: ServerRecord = { pid: process.pid, url, routerUrl, startedAt: new Date().toISOString(), version: VERSION };
  writeFileSync(join(o.workspace, SERVER_FILE), JSON.stringify(record, null, 2));

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
        controller.stop();
        await api.close();
        await router.close();
        await backend.close();
        store.close();
        rmSync(join(o.workspace, SERVER_FILE), { force: true });
      })()),
  };
}
