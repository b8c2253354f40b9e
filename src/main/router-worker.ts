// One router worker (./router-workers.ts): started by the primary with node:cluster; runs the router alone,
// on the port the workers share, with the tables, TLS material and options its primary sends. It exits
// when its primary asks (after draining) or when the IPC channel closes (the primary is gone).

import { endpointMeters, type EndpointMeters } from '../telemetry/metrics.js';
import { Router } from '../router/index.js';
import type { RoutingTable } from '../ir/types.js';
import { IpcTableSource, type ToWorker } from './table-source.js';
import { IpcTrafficSink, snapshotMeters, type FromWorker, type WorkerConfig } from './router-workers.js';
import { scavengeOnMainThread } from '../util/gc.js';

const METERS_MS = 1000;

function send(m: FromWorker): void {
  if (process.connected) process.send!(m);
}

async function run(config: WorkerConfig, source: IpcTableSource): Promise<void> {
  scavengeOnMainThread(); // the router's tail (util/gc.ts)
  const endpoints = new Map<string, EndpointMeters>();
  const sink = config.trafficLog ? new IpcTrafficSink((lines, records) => send({ t: 'log', lines, records })) : undefined;
  const router = new Router({
    ...config.options,
    instanceAdmission: true,
    onDemand: (endpoint, deployment) => source.wake(endpoint, deployment),
    ...(sink !== undefined ? { trafficLog: sink } : {}),
  });
  const address = await router.listen(config.port, config.host);
  source.start((table: RoutingTable) => {
    router.setTable(table);
    for (const e of table.endpoints) if (!endpoints.has(e.name)) endpoints.set(e.name, endpointMeters(e.name));
  });
  const meters = setInterval(() => send({ t: 'meters', snap: snapshotMeters(endpoints.values()) }), METERS_MS);
  meters.unref();
  send({ t: 'listening', port: address.port });

  let closing = false;
  const close = async (): Promise<void> => {
    if (closing) return;
    closing = true;
    clearInterval(meters);
    source.close();
    // router.close() ends the traffic sink too: its last records go before the last meters.
    await router.close();
    if (process.connected) await new Promise<void>((resolve) => process.send!({ t: 'meters', snap: snapshotMeters(endpoints.values()) } satisfies FromWorker, undefined, {}, () => resolve()));
    process.exit(0);
  };
  onMessage = (m: ToWorker) => {
    if (m.t === 'table') source.push(m.table);
    else if (m.t === 'tls') router.setSecureContext(m.tls);
    else if (m.t === 'close') void close();
  };
  // The primary went away without saying so: nothing will send tables or collect records any more.
  process.on('disconnect', () => void close());
  // Signals reach the whole process group (Ctrl-C): the primary decides when workers stop.
  process.on('SIGINT', () => {});
  process.on('SIGTERM', () => void close());
}

const source = new IpcTableSource();
// Until the router is up, tables wait in the source (and a close ends the process at once).
let onMessage = (m: ToWorker): void => {
  if (m.t === 'table') source.push(m.table);
  else if (m.t === 'close') process.exit(0);
};
process.on('message', (m: ToWorker | { t: 'config'; config: WorkerConfig }) => {
  if (m.t !== 'config') return onMessage(m);
  run(m.config, source).catch((e: unknown) => {
    process.stderr.write(`router worker ${process.pid}: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
});
// Only now can the primary's messages be received (an ES module runs after its IPC channel opened).
send({ t: 'hello' });
