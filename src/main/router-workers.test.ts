// The primary's sum of its router workers' meters (router-workers.ts MeterMerge): counters grow by what each
// worker counted since its previous snapshot, gauges are the sum of the workers' latest values, ready
// instances one table's count, and a worker that is gone keeps its counts but leaves the gauges.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConnectionMeters, DeploymentMeters, deploymentMeters, endpointMeters, FastHistogram } from '../telemetry/metrics.js';
import { defaultRouterWorkers, MeterMerge, type MeterSnapshot } from './router-workers.js';

function snapshot(o: { ok: number; refused: number; inFlight: number; ready: number; latencies: number[]; open: number; unauthorized: number }): MeterSnapshot {
  const m = new DeploymentMeters('mm', 'blue');
  m.byStatus[200] = o.ok;
  m.byStatus[429] = o.refused;
  m.inFlight = o.inFlight;
  m.readyInstances = o.ready;
  for (const s of o.latencies) m.requestDuration.observe(s);
  const hist = (h: FastHistogram) => ({ counts: h.counts.slice(), sum: h.sum, count: h.count });
  const unselected = new Float64Array(600);
  unselected[401] = o.unauthorized;
  return {
    deployments: [{ endpoint: 'mm', deployment: 'blue', live: true, inFlight: m.inFlight, queued: 0, ready: m.readyInstances, byStatus: m.byStatus, req: hist(m.requestDuration), model: hist(m.modelDuration), mirror: { ...m.mirror }, mirrorInFlight: 0, mirrorLatencyMs: 0 }],
    endpoints: [{ endpoint: 'mm', byStatus: unselected }],
    connections: { open: o.open, rejected: { max_connections: 0, max_connections_per_client: 0 }, bufferedBodyBytes: 0, bufferedBodyRejected: 0, slowBodyCut: 0, failedAuthRefused: 0 },
  };
}

test('MeterMerge: counters add up each worker\'s growth, gauges are sums of the latest values', () => {
  const conn = new ConnectionMeters();
  const merge = new MeterMerge(conn);
  const m = deploymentMeters('mm', 'blue');
  merge.add(1, snapshot({ ok: 10, refused: 1, inFlight: 3, ready: 2, latencies: [0.001, 0.002], open: 4, unauthorized: 1 }));
  merge.add(2, snapshot({ ok: 5, refused: 0, inFlight: 2, ready: 2, latencies: [0.5], open: 1, unauthorized: 0 }));
  // Worker 1 again: 10 → 12 answered; its latest gauge replaces its earlier one.
  merge.add(1, snapshot({ ok: 12, refused: 1, inFlight: 1, ready: 2, latencies: [0.001, 0.002, 0.003], open: 2, unauthorized: 2 }));
  assert.equal(m.byStatus[200], 17);
  assert.equal(m.byStatus[429], 1);
  assert.equal(m.requestDuration.count, 4);
  assert.ok(Math.abs(m.requestDuration.sum - 0.506) < 1e-9);
  assert.equal(m.inFlight, 3, 'in flight: 1 (worker 1 now) + 2 (worker 2)');
  assert.equal(m.readyInstances, 2, 'one table, not a sum');
  assert.equal(conn.open, 3);
  assert.equal(endpointMeters('mm').byStatus[401], 2);
  // Worker 2 is gone: what it counted stays, its gauges leave the sums.
  merge.remove(2);
  assert.equal(m.byStatus[200], 17);
  assert.equal(m.inFlight, 1);
  assert.equal(conn.open, 2);
});

test('default router workers: 1 on up to 2 cores, else half the cores, at most 8', () => {
  assert.deepEqual([1, 2, 3, 4, 8, 16, 64].map(defaultRouterWorkers), [1, 1, 1, 2, 4, 8, 8]);
});
