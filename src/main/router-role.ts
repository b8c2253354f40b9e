// Role router (DESIGN.md "main/", docs/router-scale.md): only the data plane. `infergate router --control
// <url>` follows the routing tables of a control plane (HttpTableSource: a long poll, back-off while the
// control plane is away, the last good table served meanwhile), wakes deployments scaled to zero through
// it, and admits at the instances (it is one of several routers by construction).
//
// The instance addresses in a table are what the control plane's backend wrote: Unix sockets on its
// machine, so a router role runs on the same machine for now (Kubernetes adds TCP addresses).

import type { SecureContextOptions } from 'node:tls';
import { Router, type RouterOptions } from '../router/index.js';
import { FileTrafficLog } from '../telemetry/index.js';
import { httpUrl } from '../util/workspace.js';
import { scavengeOnMainThread } from '../util/gc.js';
import { HttpTableSource, type TableSource } from './table-source.js';

export interface RouterRoleOptions {
  /** The control plane's URL. */
  control: string;
  /** An owner token of that control plane (routing tables carry key hashes and token secrets). */
  token: string;
  caFile?: string;
  host: string;
  port: number;
  tls?: SecureContextOptions;
  /** Where to write this router's traffic log (JSON lines); none by default. */
  trafficLogFile?: string;
  router?: Pick<RouterOptions, 'maxBodyBytes' | 'maxConnections' | 'maxConnectionsPerClient' | 'maxBufferedBodyBytes' | 'minBodyBytesPerSecond' | 'failedAuth'>;
  /** Tests: the table source's back-off. */
  backoffMs?: number;
  log?: (line: string) => void;
}

export interface RunningRouter {
  url: string;
  port: number;
  /** The version of the table being served (0: none yet). */
  readonly version: number;
  setSecureContext(tls: SecureContextOptions): void;
  close(): Promise<void>;
}

export async function startRouterRole(o: RouterRoleOptions): Promise<RunningRouter> {
  scavengeOnMainThread(); // the router's tail (util/gc.ts)
  const log = o.log ?? (() => {});
  const source: TableSource = new HttpTableSource({ control: o.control, token: o.token, ...(o.caFile !== undefined ? { caFile: o.caFile } : {}), ...(o.backoffMs !== undefined ? { backoffMs: o.backoffMs, maxBackoffMs: o.backoffMs * 8 } : {}), log });
  const router = new Router({
    ...o.router,
    instanceAdmission: true,
    onDemand: (endpoint, deployment) => source.wake(endpoint, deployment).catch((e: unknown) => log((e as Error).message)),
    ...(o.trafficLogFile !== undefined ? { trafficLog: new FileTrafficLog(o.trafficLogFile) } : {}),
    ...(o.tls !== undefined ? { tls: o.tls } : {}),
  });
  const address = await router.listen(o.port, o.host);
  let first = true;
  source.start((table) => {
    router.setTable(table);
    if (first) log(`routing table ${table.version} from ${o.control}: ${table.endpoints.length} endpoint(s)`);
    first = false;
  });
  return {
    url: httpUrl(o.host, address.port, o.tls !== undefined),
    port: address.port,
    get version() {
      return router.version;
    },
    setSecureContext: (tls) => router.setSecureContext(tls),
    async close() {
      source.close();
      await router.close();
    },
  };
}
