// Router workers (docs/router-scale.md): `infergate server --router-workers N` runs the router in N worker
// processes (node:cluster) sharing the router port, each with its own connections to every instance; this
// process (the primary) keeps the control plane, the backend, the reconciler and the autoscaler, and feeds
// every worker the same routing tables. Admission then happens at the instances (RouterOptions.
// instanceAdmission), since no worker sees the others' requests.
//
// Over the IPC channel (advanced serialization: Buffers and typed arrays go as they are):
//   primary → worker  config (once), table (each one published), tls (SIGHUP), close
//   worker → primary  listening {port}; meters (each second: a snapshot of its counters, which the primary
//                     adds up into its own, so /metrics and the autoscale sampler see the sum over
//                     workers); log (traffic-log records in batches: one writer, the primary's); wake.
// A worker that dies is started again (with back-off) and gets the current table; what it counted stays
// counted, its gauges (in flight, queued, open connections) leave the sums.

import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import type { SecureContextOptions } from 'node:tls';
import type { RoutingTable } from '../ir/types.js';
import type { RouterOptions } from '../router/router.js';
import { allDeploymentMeters, connectionMeters, deploymentMeters, endpointMeters, type ConnectionMeters, type DeploymentMeters, type EndpointMeters, type FastHistogram } from '../telemetry/metrics.js';
import { TrafficLines, type FileTrafficLog, type TrafficRecord, type TrafficSink } from '../telemetry/traffic-log.js';
import type { ToWorker } from './table-source.js';

/**
 * Default worker count: one on a machine of up to two cores (the instances need the other core: a second
 * router worker there only takes CPU from the scoring code), else half the cores (the other half for
 * instances), at most 8 (past that the primary's per-second metric merge and the accept round-robin are
 * worth measuring before going further).
 */
export function defaultRouterWorkers(cores: number = availableParallelism()): number {
  return cores <= 2 ? 1 : Math.min(Math.floor(cores / 2), 8);
}

/** What a worker's router is started with: RouterOptions that can cross the IPC channel, plus where to listen. */
export interface WorkerConfig {
  port: number;
  host: string;
  options: Pick<RouterOptions, 'maxBodyBytes' | 'maxConnections' | 'maxConnectionsPerClient' | 'maxBufferedBodyBytes' | 'minBodyBytesPerSecond' | 'failedAuth' | 'tls'>;
  trafficLog: boolean;
}

export type FromWorker =
  | { t: 'hello' }
  | { t: 'listening'; port: number }
  | { t: 'meters'; snap: MeterSnapshot }
  | { t: 'log'; lines: Uint8Array; records: number }
  | { t: 'wake'; endpoint: string; deployment: string };

// ---- meters: a worker's snapshot, summed in the primary ----------------------------------------------

interface HistSnap {
  counts: Float64Array;
  sum: number;
  count: number;
}
interface DeploymentSnap {
  endpoint: string;
  deployment: string;
  live: boolean;
  inFlight: number;
  queued: number;
  ready: number;
  byStatus: Float64Array;
  req: HistSnap;
  model: HistSnap;
  mirror: Record<string, number>;
  mirrorInFlight: number;
  mirrorLatencyMs: number;
}
export interface MeterSnapshot {
  deployments: DeploymentSnap[];
  endpoints: { endpoint: string; byStatus: Float64Array }[];
  connections: { open: number; rejected: Record<string, number>; bufferedBodyBytes: number; bufferedBodyRejected: number; slowBodyCut: number; failedAuthRefused: number };
}

const hist = (h: FastHistogram): HistSnap => ({ counts: h.counts.slice(), sum: h.sum, count: h.count });

/** This process's router counters (a worker's), for its primary. */
export function snapshotMeters(endpoints: Iterable<EndpointMeters>): MeterSnapshot {
  const deployments: DeploymentSnap[] = [];
  for (const m of allDeploymentMeters()) {
    deployments.push({
      endpoint: m.endpoint,
      deployment: m.deployment,
      live: m.live,
      inFlight: m.inFlight,
      queued: m.queued,
      ready: m.readyInstances,
      byStatus: m.byStatus.slice(),
      req: hist(m.requestDuration),
      model: hist(m.modelDuration),
      mirror: { ...m.mirror },
      mirrorInFlight: m.mirrorInFlight,
      mirrorLatencyMs: m.mirrorLatencyMs,
    });
  }
  const c = connectionMeters;
  return {
    deployments,
    endpoints: [...endpoints].map((e) => ({ endpoint: e.endpoint, byStatus: e.byStatus.slice() })),
    connections: { open: c.open, rejected: { ...c.rejected }, bufferedBodyBytes: c.bufferedBodyBytes, bufferedBodyRejected: c.bufferedBodyRejected, slowBodyCut: c.slowBodyCut, failedAuthRefused: c.failedAuthRefused },
  };
}

const EMPTY_SNAPSHOT: MeterSnapshot = {
  deployments: [],
  endpoints: [],
  connections: { open: 0, rejected: {}, bufferedBodyBytes: 0, bufferedBodyRejected: 0, slowBodyCut: 0, failedAuthRefused: 0 },
};

function addArray(to: Float64Array, now: Float64Array, before: Float64Array | undefined): void {
  for (let i = 0; i < to.length && i < now.length; i++) to[i] += now[i] - (before?.[i] ?? 0);
}
function addHist(to: FastHistogram, now: HistSnap, before: HistSnap | undefined): void {
  addArray(to.counts, now.counts, before?.counts);
  to.sum += now.sum - (before?.sum ?? 0);
  to.count += now.count - (before?.count ?? 0);
}

/**
 * The primary's view: each worker's last snapshot. Counters grow by what a worker counted since its last
 * one; gauges are the sum of the workers' latest values (a worker gone leaves them).
 */
export class MeterMerge {
  private readonly last = new Map<number, MeterSnapshot>();

  constructor(private readonly conn: ConnectionMeters = connectionMeters) {}

  add(worker: number, snap: MeterSnapshot): void {
    const before = this.last.get(worker) ?? EMPTY_SNAPSHOT;
    const prev = new Map(before.deployments.map((d) => [`${d.endpoint}/${d.deployment}`, d]));
    for (const d of snap.deployments) {
      const p = prev.get(`${d.endpoint}/${d.deployment}`);
      const m = deploymentMeters(d.endpoint, d.deployment);
      addArray(m.byStatus, d.byStatus, p?.byStatus);
      addHist(m.requestDuration, d.req, p?.req);
      addHist(m.modelDuration, d.model, p?.model);
      for (const k of Object.keys(d.mirror) as (keyof DeploymentMeters['mirror'])[]) m.mirror[k] += d.mirror[k] - (p?.mirror[k] ?? 0);
      m.mirrorLatencyMs += d.mirrorLatencyMs - (p?.mirrorLatencyMs ?? 0);
    }
    const prevEndpoints = new Map(before.endpoints.map((e) => [e.endpoint, e.byStatus]));
    for (const e of snap.endpoints) addArray(endpointMeters(e.endpoint).byStatus, e.byStatus, prevEndpoints.get(e.endpoint));
    const c = this.conn;
    const pc = before.connections;
    for (const k of Object.keys(snap.connections.rejected) as (keyof ConnectionMeters['rejected'])[]) c.rejected[k] += snap.connections.rejected[k] - (pc.rejected[k] ?? 0);
    c.bufferedBodyRejected += snap.connections.bufferedBodyRejected - pc.bufferedBodyRejected;
    c.slowBodyCut += snap.connections.slowBodyCut - pc.slowBodyCut;
    c.failedAuthRefused += snap.connections.failedAuthRefused - pc.failedAuthRefused;
    this.last.set(worker, snap);
    this.gauges();
  }

  /** A worker is gone: its counts stay, its gauges leave the sums. */
  remove(worker: number): void {
    if (this.last.delete(worker)) this.gauges();
  }

  private gauges(): void {
    const sums = new Map<string, { inFlight: number; queued: number; ready: number; mirrorInFlight: number; live: boolean }>();
    let open = 0;
    let buffered = 0;
    for (const s of this.last.values()) {
      open += s.connections.open;
      buffered += s.connections.bufferedBodyBytes;
      for (const d of s.deployments) {
        const key = `${d.endpoint}/${d.deployment}`;
        const g = sums.get(key) ?? { inFlight: 0, queued: 0, ready: 0, mirrorInFlight: 0, live: false };
        g.inFlight += d.inFlight;
        g.queued += d.queued;
        g.mirrorInFlight += d.mirrorInFlight;
        // Every worker has the same table: the ready instances are one worker's count, not a sum.
        g.ready = Math.max(g.ready, d.ready);
        g.live ||= d.live;
        sums.set(key, g);
      }
    }
    for (const m of allDeploymentMeters()) {
      const g = sums.get(`${m.endpoint}/${m.deployment}`);
      m.inFlight = g?.inFlight ?? 0;
      m.queued = g?.queued ?? 0;
      m.readyInstances = g?.ready ?? 0;
      m.mirrorInFlight = g?.mirrorInFlight ?? 0;
      m.live = g?.live ?? false;
    }
    this.conn.open = open;
    this.conn.bufferedBodyBytes = buffered;
  }
}

// ---- a worker's traffic log: records to the primary in batches ---------------------------------------

/**
 * One writer for the traffic log (the primary's FileTrafficLog, rotation included): a worker formats its
 * records into off-heap lines as they come (telemetry/traffic-log.ts TrafficLines) and sends the bytes
 * every 100 ms. Sending the record objects instead kept every one alive on the worker's heap until the
 * batch left (promoted, then collected by mark-compacts) and made the primary deserialize them: 16 µs
 * per request in the workers and 6 in the primary in the bench, against 6.5 in a single router.
 */
export class IpcTrafficSink implements TrafficSink {
  private readonly lines: TrafficLines;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly send: (lines: Uint8Array, records: number) => void,
    bufferBytes = 4 * 1024 * 1024,
  ) {
    this.lines = new TrafficLines(bufferBytes);
    this.timer = setInterval(() => this.flush(), 100).unref();
  }

  record(r: TrafficRecord): void {
    this.lines.format(r);
  }

  flush(): void {
    // A copy (~60 KB per 100 ms at 1k req/s): the buffer taken takes lines again after the next take, and
    // process.send() may hold a message back (while a handle is in flight) instead of serialising it at once.
    const taken = this.lines.take();
    if (taken !== null) this.send(Buffer.from(taken.bytes), taken.records);
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    this.flush();
  }
}

// ---- the primary -------------------------------------------------------------------------------------

export interface RouterWorkersOptions extends WorkerConfig {
  count: number;
  /** Where the workers' traffic-log records go (the primary's file); null: none. */
  trafficLog: boolean;
  sink: FileTrafficLog | null;
  wake(endpoint: string, deployment: string): void;
  log(line: string): void;
}

export interface RouterWorkers {
  /** The router port the workers share. */
  readonly port: number;
  setTable(table: RoutingTable): void;
  setSecureContext(tls: SecureContextOptions): void;
  /** Worker process ids (tests, logs). */
  pids(): number[];
  close(): Promise<void>;
}

const WORKER_ENTRY = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './router-worker.ts' : './router-worker.js', import.meta.url));
const CLOSE_WAIT_MS = 10_000;

export async function startRouterWorkers(o: RouterWorkersOptions): Promise<RouterWorkers> {
  if (!cluster.isPrimary) throw new Error('router workers are started by the primary process');
  // execArgv as this process's (tsx's loader in tests); advanced serialization keeps Buffers and arrays.
  cluster.setupPrimary({ exec: WORKER_ENTRY, serialization: 'advanced' });
  const merge = new MeterMerge();
  const workers = new Map<number, Worker>();
  let table: RoutingTable | null = null;
  let tls = o.options.tls;
  let closing = false;
  let restarts = 0;

  // Every worker asks for the configured port, 0 included: cluster shares one listening handle per
  // (address, port asked for), so they all get the port the first bind chose.
  const config = (): WorkerConfig => ({ port: o.port, host: o.host, options: { ...o.options, ...(tls !== undefined ? { tls } : {}) }, trafficLog: o.sink !== null });

  const fork = (): Promise<{ port: number; pid: number }> => {
    const w = cluster.fork({ INFERGATE_ROUTER_WORKER: '1' });
    workers.set(w.id, w);
    let exited = false;
    const listening = new Promise<number>((resolve, reject) => {
      w.on('message', (m: FromWorker) => {
        switch (m.t) {
          case 'hello':
            // Started while closing: the close sent before its hello was lost (see below).
            if (closing) {
              w.send({ t: 'close' } satisfies ToWorker);
              break;
            }
            // An ES module worker listens for messages only once its module has run: what came before is lost.
            w.send({ t: 'config', config: config() });
            if (table !== null) w.send({ t: 'table', table } satisfies ToWorker);
            break;
          case 'listening':
            resolve(m.port);
            break;
          case 'meters':
            merge.add(w.id, m.snap);
            // Its last snapshot may be read after 'exit': its counts stay, its gauges must not.
            if (exited) merge.remove(w.id);
            break;
          case 'log':
            o.sink?.appendLines(m.lines, m.records);
            break;
          case 'wake':
            o.wake(m.endpoint, m.deployment);
            break;
        }
      });
      w.once('exit', (code, signal) => {
        exited = true;
        workers.delete(w.id);
        merge.remove(w.id);
        reject(new Error(`router worker ${w.process.pid} exited (${signal ?? code}) before listening`));
        if (closing) return;
        // A worker that dies is replaced; quickly at first, then at most one every 5 s.
        const delay = Math.min(100 * 2 ** restarts++, 5000);
        o.log(`router worker ${w.process.pid} exited (${signal ?? `code ${code}`}); starting another in ${delay} ms`);
        setTimeout(() => {
          if (!closing) fork().then((next) => o.log(`router worker ${next.pid} started in place of ${w.process.pid}`), (e: unknown) => o.log((e as Error).message));
        }, delay).unref();
      });
    });
    return listening.then((port) => {
      restarts = 0;
      return { port, pid: w.process.pid ?? 0 };
    });
  };

  let port: number;
  try {
    const started = await Promise.all(Array.from({ length: o.count }, () => fork()));
    port = started[0].port;
  } catch (e) {
    closing = true;
    for (const w of workers.values()) w.process.kill('SIGKILL');
    throw e;
  }
  o.log(`router: ${o.count} workers on port ${port} (pids ${[...workers.values()].map((w) => w.process.pid).join(', ')})`);

  const broadcast = (m: ToWorker): void => {
    for (const w of workers.values()) if (w.isConnected()) w.send(m);
  };
  return {
    port,
    setTable(t) {
      table = t;
      broadcast({ t: 'table', table: t });
    },
    setSecureContext(next) {
      tls = next;
      broadcast({ t: 'tls', tls: next });
    },
    pids: () => [...workers.values()].map((w) => w.process.pid ?? 0),
    async close() {
      closing = true;
      const gone = [...workers.values()].map(
        (w) =>
          new Promise<void>((resolve) => {
            if (w.isDead() && !w.isConnected()) return resolve();
            const timer = setTimeout(() => w.process.kill('SIGKILL'), CLOSE_WAIT_MS).unref();
            // Gone once it exited and its IPC channel is read to the end: its last traffic-log records and
            // meters (sent just before it exits) may come after 'exit', and the sink is closed after this.
            let pending = (w.isDead() ? 0 : 1) + (w.isConnected() ? 1 : 0);
            const one = (): void => {
              if (--pending > 0) return;
              clearTimeout(timer);
              resolve();
            };
            if (!w.isDead()) w.once('exit', one);
            if (w.isConnected()) w.once('disconnect', one);
            if (w.isConnected()) w.send({ t: 'close' } satisfies ToWorker);
            else w.process.kill('SIGTERM');
          }),
      );
      await Promise.all(gone);
    },
  };
}
