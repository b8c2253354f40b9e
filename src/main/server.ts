// The composition root (DESIGN.md "main/"): the only place that wires concrete implementations.
// Role all-in-one: control-plane API + router + process backend + reconciler in one process.

import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { buildApi } from '../api/index.js';
import { AuditLog } from '../api/audit.js';
import { ensureOwnerToken } from '../api/auth.js';
import { DockerBackend, findDockerEngine, ProcessBackend, type Backend } from '../backend/index.js';
import { withComputes } from './kubernetes.js';
import { Controller } from '../reconcile/index.js';
import { Autoscaler, MetricStore, Sampler } from '../autoscale/index.js';
import { ControlPlane } from '../control/index.js';
import { dumpDeployment } from '../spec/index.js';
import type { StateStore } from '../store/index.js';
import { Router } from '../router/index.js';
import { openStateStore } from '../store/index.js';
import { FileTrafficLog, setInstanceSource } from '../telemetry/index.js';
import { httpUrl, removeServerRecord, writeServerRecord } from '../util/workspace.js';
import { devNames, isLoopbackHost, loadTls, trustHint, type TlsMaterial, type TlsSource } from '../util/tls.js';
import type { Server as TlsServer } from 'node:tls';
import { errorOf } from '../errors/index.js';
import { lockWorkspace, type WorkspaceLock } from '../util/workspace-lock.js';
import { scavengeOnMainThread } from '../util/gc.js';
import { RoutingFeed, registerRoutingRoutes } from '../api/routing.js';
import { startRouterWorkers, type RouterWorkers, type WorkerConfig } from './router-workers.js';

export interface ServerOptions {
  workspace: string;
  host: string;
  /** Address of the control plane (`--api-host`); default: `host`. */
  apiHost?: string;
  /** More names the control plane answers to in the Host header (`--api-allowed-host`). */
  apiAllowedHosts?: string[];
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
  /** Router: failed authentications per client address in 10 s before 429 (default 50); 0 disables. */
  failedAuthLimit?: number;
  /** Write the per-request traffic log (<workspace>/logs/traffic.jsonl). */
  trafficLog?: boolean;
  /**
   * Router processes sharing the router port (`--router-workers`, docs/router-scale.md). 1 (default): the
   * router runs in this process, as always. More: worker processes fed this process's routing tables, with
   * admission at the instances. Local mode always runs one (its per-endpoint ports are this process's).
   */
  routerWorkers?: number;
  /** Deployments allowed per endpoint (Azure: 20). */
  maxDeploymentsPerEndpoint?: number;
  log?: (line: string) => void;
  /**
   * HTTPS on the router and the control plane (docs/security.md "TLS"): a PEM certificate and key
   * (`--tls-cert/--tls-key`), or a development CA and certificate kept in <workspace>/tls (`--tls-dev`).
   * reloadTls() (SIGHUP) reads them again.
   */
  tls?: TlsSource;
  /** Serve plain HTTP on a non-loopback address anyway (`--insecure`); refused without it. */
  insecure?: boolean;
  /**
   * Where instances run (`--backend`): `docker` needs a Docker Engine (DOCKER_HOST or
   * /var/run/docker.sock) and fails without one; `process` runs child processes; `auto` takes docker
   * when an engine answers, else process, and says which. Default here `process` (in-process tests and
   * embedders ask for docker explicitly); the CLI's `--backend` defaults to `auto`.
   */
  backend?: 'auto' | 'process' | 'docker';
  /** Autoscale: how often settings are evaluated (`--autoscale-interval`, ms; default 5000). */
  autoscaleIntervalMs?: number;
  /** Autoscale: idle time before a min_instances 0 deployment goes to zero (ms; default 30000). */
  autoscaleIdleMs?: number;
  /** docker backend: the image of an environment that names none (`--docker-image`). */
  dockerImage?: string;
  /**
   * The workspace lock, if the caller took it already (the CLI does, before it loads the server's
   * modules, so a refused server exits in about the time Node takes to start). Released on close.
   */
  lock?: WorkspaceLock;
}

export interface RunningServer {
  url: string;
  /** Where instances run: 'process' or 'docker'. */
  backend: string;
  routerUrl: string;
  /** With TLS: what to tell the user about trusting the certificate (the dev CA's file and how). */
  tlsNotice?: string;
  /** Reads the TLS certificate and key again and serves new connections with them; open ones stay up. */
  reloadTls(): Promise<void>;
  close(): Promise<void>;
}

/**
 * Plain HTTP only on loopback: anything else would expose the control plane's tokens and the endpoints'
 * keys to the network in clear (Kestrel and Docker warn likewise; Azure serves only HTTPS). `--insecure`
 * overrides, with a warning.
 */
export function checkBinding(o: Pick<ServerOptions, 'host' | 'apiHost' | 'tls' | 'insecure'>, log: (line: string) => void): void {
  if (o.tls !== undefined) return;
  const exposed = [o.host, o.apiHost ?? o.host].filter((h) => !isLoopbackHost(h));
  if (exposed.length === 0) return;
  const where = [...new Set(exposed)].join(', ');
  if (!o.insecure) {
    throw errorOf('PlainHttpExposed', { where });
  }
  log(`WARNING: --insecure: serving plain HTTP on ${where}; tokens, endpoint keys and scoring requests cross the network unencrypted`);
}

/** The backend `--backend` asks for; auto: docker when an engine answers (DOCKER_HOST, /var/run/docker.sock), else process. */
async function chooseBackend(o: ServerOptions, log: (line: string) => void): Promise<(ProcessBackend | DockerBackend) & Backend> {
  const want = o.backend ?? 'process';
  if (want !== 'process') {
    const engine = await findDockerEngine();
    if (engine.docker) return new DockerBackend({ workspace: o.workspace, docker: engine.docker, engine: engine.where, log, ...(o.dockerImage ? { defaultImage: o.dockerImage } : {}) });
    if (want === 'docker') throw errorOf('ContainerEngineUnavailable', { where: engine.where, reason: engine.reason });
    log(`backend: process (--backend auto: no Docker Engine answers at ${engine.where}: ${engine.reason})`);
  }
  return new ProcessBackend({ workspace: o.workspace, log });
}

/** Whether an autoscale setting scales the deployment with a profile whose minimum is 0 (scale to zero). */
function autoscaleMinimumIsZero(store: StateStore, endpoint: string, deployment: string): boolean {
  return store.listAutoscaleSettings().some((s) => s.endpoint === endpoint && s.deployment === deployment && s.setting.enabled && s.setting.profiles.some((p) => Number(p.capacity.minimum) === 0));
}

export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export async function startServer(o: ServerOptions): Promise<RunningServer> {
  // The workspace lock comes before anything else: a second server on this workspace is refused
  // (WorkspaceLocked) before it opens the store, binds a port, or touches an instance directory or socket.
  const lock = o.lock ?? (await lockWorkspace(o.workspace, VERSION));
  if (lock.workspace !== o.workspace) throw new Error(`the lock given is for ${lock.workspace}, not ${o.workspace}`);
  try {
    checkBinding(o, o.log ?? (() => {}));
    return await serve(o, lock, lock.startedAt);
  } catch (e) {
    removeServerRecord(o.workspace);
    lock.release();
    throw e;
  }
}

async function serve(o: ServerOptions, lock: WorkspaceLock, startedAt: string): Promise<RunningServer> {
  scavengeOnMainThread(); // the router's tail (util/gc.ts)
  const log = o.log ?? (() => {});
  const apiHost = o.apiHost ?? o.host;
  // TLS material first: a bad certificate or key is refused before anything starts.
  const tlsNames = devNames([o.host, apiHost]);
  let tls: TlsMaterial | undefined = o.tls !== undefined ? await loadTls(o.tls, o.workspace, tlsNames) : undefined;
  const secure = tls !== undefined;
  // A wildcard bind names no host a certificate can be checked against: URLs name the machine instead.
  const urlHost = (h: string): string => (secure && (h === '0.0.0.0' || h === '::') ? hostname() : h);
  const store = openStateStore(o.workspace);
  const local = await chooseBackend(o, log);
  // Kubernetes computes (issue 17, main/kubernetes.ts): endpoints naming `compute: azureml:<name>` run
  // on that cluster, the rest on `local`. Pods reach the control plane at INFERGATE_CONTROL_URL.
  let apiUrl = '';
  const computes = withComputes({ local, store, workspaceName: basename(o.workspace), controlUrl: () => process.env.INFERGATE_CONTROL_URL ?? apiUrl, log });
  const backend = computes.backend;
  // /metrics reads instance states and restarts at scrape time (infergate_instances, infergate_instance_restarts).
  setInstanceSource(() => backend.observe());
  // Files of deployments deleted just before an earlier server died (store deleted, files not yet).
  const stored = new Set(store.listDeployments().map((d) => `${d.spec.endpointName}/${d.spec.name}`));
  const known = (endpoint: string, deployment: string) => stored.has(`${endpoint}/${deployment}`);
  await local.forgetUnknown(known);
  // Containers an earlier server left running (it died): adopted by the first reconcile, or removed.
  if (local instanceof DockerBackend) await local.adopt(known);
  // The controller is made after the router (it publishes to it); a cold request wakes it (scale to zero).
  let controller: Controller | undefined;
  const wake = (endpoint: string, deployment: string): unknown => controller?.wake(endpoint, deployment).catch((e: unknown) => log(`waking ${endpoint}/${deployment}: ${(e as Error).message}`));
  // What crosses to router workers too: plain data, no functions.
  const routerOptions: WorkerConfig['options'] = {
    ...(o.maxBodyBytes !== undefined ? { maxBodyBytes: o.maxBodyBytes } : {}),
    ...(o.maxConnections !== undefined ? { maxConnections: o.maxConnections } : {}),
    ...(o.maxConnectionsPerClient !== undefined ? { maxConnectionsPerClient: o.maxConnectionsPerClient } : {}),
    ...(o.maxBufferedBodyBytes !== undefined ? { maxBufferedBodyBytes: o.maxBufferedBodyBytes } : {}),
    ...(o.minBodyBytesPerSecond !== undefined ? { minBodyBytesPerSecond: o.minBodyBytesPerSecond } : {}),
    ...(o.failedAuthLimit !== undefined ? { failedAuth: o.failedAuthLimit === 0 ? (false as const) : { failures: o.failedAuthLimit } } : {}),
    ...(tls !== undefined ? { tls: tls.context } : {}),
  };
  const trafficSink = o.trafficLog !== false ? new FileTrafficLog(join(o.workspace, 'logs', 'traffic.jsonl')) : undefined;
  const workerCount = o.local ? 1 : Math.max(1, o.routerWorkers ?? 1);
  let router: Router | undefined;
  let workers: RouterWorkers | undefined;
  let routerPort: number;
  if (workerCount > 1) {
    workers = await startRouterWorkers({ count: workerCount, port: o.routerPort, host: o.host, options: routerOptions, trafficLog: trafficSink !== undefined, sink: trafficSink ?? null, wake, log });
    routerPort = workers.port;
  } else {
    router = new Router({
      ...routerOptions,
      onDemand: wake,
      ...(trafficSink !== undefined ? { trafficLog: trafficSink } : {}),
      ...(o.local ? { endpointListeners: { host: o.host } } : {}),
    });
    routerPort = (await router.listen(o.routerPort, o.host)).port;
  }
  // Routers that run apart (`infergate router --control`) follow the same tables (api/routing.ts).
  const feed = new RoutingFeed();
  const dataPlane = { setTable: (t: import('../ir/types.js').RoutingTable) => (router ?? workers!).setTable(t), setSecureContext: (c: import('node:tls').SecureContextOptions) => (router ?? workers!).setSecureContext(c) };
  const routerUrl = httpUrl(urlHost(o.host), routerPort, secure);
  const ctl = new Controller({
    store,
    backend,
    publish: (t) => {
      dataPlane.setTable(t);
      feed.publish(t);
    },
    log,
    ...(o.local ? { local: true } : {}),
    // An autoscale setting whose profiles allow a minimum of 0 may take its deployment to zero instances.
    allowZero: (endpoint, deployment) => autoscaleMinimumIsZero(store, endpoint, deployment),
  });
  controller = ctl;
  // The local owner token (owner.token beside server.json, 0600): the CLI on this machine uses it.
  ensureOwnerToken(store, o.workspace);
  const audit = new AuditLog(join(o.workspace, 'logs', 'audit.jsonl'), log);
  const api = await buildApi({
    apiHost,
    logsDir: join(o.workspace, 'logs'),
    ...(o.apiAllowedHosts ? { allowedHosts: o.apiAllowedHosts } : {}),
    audit,
    log,
    store,
    controller: ctl,
    logs: (e, d, c, n) => backend.logs(e, d, c, n),
    routerUrl,
    workspace: basename(o.workspace),
    assetsDir: join(o.workspace, 'assets'),
    location: o.local ? 'local' : hostname(),
    backend: backend.kind,
    ...(o.local && router !== undefined ? { scoringUriOf: async (name: string) => `${secure ? 'https' : 'http'}://localhost:${await router!.endpointPort(name)}/score` } : {}),
    ...(tls !== undefined ? { https: tls.context } : {}),
    version: VERSION,
    checkCompute: computes.checkCompute,
    instanceAssetTokens: computes.instanceAssetTokens,
    ...(o.maxDeploymentsPerEndpoint !== undefined ? { maxDeploymentsPerEndpoint: o.maxDeploymentsPerEndpoint } : {}),
  });
  registerRoutingRoutes(api, { feed, wake: (endpoint, deployment) => ctl.wake(endpoint, deployment) });
  await api.listen({ port: o.port, host: apiHost });
  const apiPort = (api.server.address() as { port: number }).port;
  const url = httpUrl(urlHost(apiHost), apiPort, secure);
  apiUrl = url;
  writeServerRecord(o.workspace, { pid: process.pid, url, routerUrl, startedAt, version: VERSION, backend: backend.kind, ...(tls?.caFile !== undefined ? { caFile: tls.caFile } : {}) });

  // After a restart every stored endpoint and deployment is provisioned again (nothing is lost).
  const endpoints = store.listEndpoints().length;
  const deployments = store.listDeployments().length;
  if (endpoints > 0) log(`restoring ${endpoints} endpoint(s) and ${deployments} deployment(s) from ${join(o.workspace, 'state.db')}`);
  await ctl.kick();
  if (local instanceof DockerBackend) await local.removeUnadopted();

  // Autoscale (docs/autoscale.md): metrics sampled every second, settings and target_utilization
  // evaluated every few seconds; a scale is an ordinary instance_count change (drains on scale-in).
  const metrics = new MetricStore();
  const sampler = new Sampler({ store: metrics, log, ...(backend.usage ? { usage: () => backend.usage!() } : {}) });
  sampler.start();
  const control = new ControlPlane({ store, controller: ctl, logs: (e, d, c, n) => backend.logs(e, d, c, n) });
  const autoscaler = new Autoscaler({
    store,
    metrics,
    log,
    ...(o.autoscaleIntervalMs !== undefined ? { intervalMs: o.autoscaleIntervalMs } : {}),
    ...(o.autoscaleIdleMs !== undefined ? { idleMs: o.autoscaleIdleMs } : {}),
    scaler: {
      capacity: (endpoint, deployment) => ctl.instanceCount(endpoint, deployment),
      scale: async (endpoint, deployment, count) => {
        if (count === 0) return ctl.scaleToZero(endpoint, deployment);
        const doc = dumpDeployment(control.deployment(endpoint, deployment).spec);
        await control.updateDeployment(endpoint, deployment, { ...doc, instance_count: count }, true);
      },
      note: (endpoint, deployment, line) => backend.note?.(endpoint, deployment, line),
    },
  });
  autoscaler.start();

  let closing: Promise<void> | undefined;
  let reloading: Promise<void> | undefined;
  const reloadTls = async (): Promise<void> => {
    if (o.tls === undefined) return;
    const next = await loadTls(o.tls, o.workspace, tlsNames);
    // Both listeners or neither: a certificate that fails to load keeps the old one serving (nginx's
    // reload does the same), and the error goes to the caller (the SIGHUP handler logs it).
    dataPlane.setSecureContext(next.context);
    (api.server as unknown as TlsServer).setSecureContext(next.context);
    tls = next;
    log(`TLS: serving the certificate in ${next.certFile} to new connections`);
  };
  return {
    url,
    backend: backend.kind,
    routerUrl,
    ...(tls !== undefined && 'dev' in o.tls! && tls.caFile !== undefined ? { tlsNotice: trustHint(tls.caFile) } : {}),
    reloadTls: () => (reloading ??= reloadTls().finally(() => (reloading = undefined))),
    close: () =>
      (closing ??= (async () => {
        try {
          await autoscaler.stop();
          await sampler.stop();
          ctl.stop();
          feed.close();
          await api.close();
          await audit.close();
          if (router !== undefined) await router.close();
          else {
            await workers!.close();
            await trafficSink?.close();
          }
          await backend.close();
          store.close();
          setInstanceSource(null);
        } finally {
          // Only our own record (the lock guarantees no other server wrote one meanwhile; the check
          // keeps that true whatever happens), and the lock last of all.
          removeServerRecord(o.workspace);
          lock.release();
        }
      })()),
  };
}
