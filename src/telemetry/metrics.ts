// Every metric infergate exports, in one place (DESIGN.md "telemetry/"). Prometheus names follow
// Prometheus conventions; each help text names the Azure ML metric it corresponds to (contract §6), so
// dashboards and autoscale rules translate one to one.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
collectDefaultMetrics({ register: registry, prefix: 'infergate_process_' });

const ED = ['endpoint', 'deployment'] as const;

/** Azure: RequestsPerMinute (dimensions deployment, statusCode, statusCodeClass, modelStatusCode). */
export const requestsTotal = new Counter({
  name: 'infergate_requests_total',
  help: 'Scoring requests answered, by endpoint, deployment, status code and class (Azure: RequestsPerMinute).',
  labelNames: [...ED, 'status_code', 'status_code_class'] as const,
  registers: [registry],
});

/** Azure: RequestLatency, RequestLatency_P50/_P90/_P95/_P99 (ms there; seconds here, as Prometheus does). */
export const requestDuration = new Histogram({
  name: 'infergate_request_duration_seconds',
  help: 'Time from the request arriving at the router to the response sent (Azure: RequestLatency).',
  labelNames: ED,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
  registers: [registry],
});

export const modelDuration = new Histogram({
  name: 'infergate_model_duration_seconds',
  help: 'Time from the request being sent to an instance to its answer: the model\'s share of the latency (Azure traffic log: ResponseDurationMs).',
  labelNames: ED,
  buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180],
  registers: [registry],
});

export const requestsInFlight = new Gauge({
  name: 'infergate_requests_in_flight',
  help: 'Requests sent to instances and not yet answered.',
  labelNames: ED,
  registers: [registry],
});

export const requestsQueued = new Gauge({
  name: 'infergate_requests_queued',
  help: 'Requests waiting for a free instance slot (max_concurrent_requests_per_instance).',
  labelNames: ED,
  registers: [registry],
});

/** Azure: DeploymentCapacity (number of instances). */
export const readyInstances = new Gauge({
  name: 'infergate_ready_instances',
  help: 'Instances ready to serve, per deployment (Azure: DeploymentCapacity).',
  labelNames: ED,
  registers: [registry],
});

export const mirrorRequests = new Counter({
  name: 'infergate_mirror_requests_total',
  help: 'Mirror-traffic copies, by outcome: sent, answered, error (answered non-200), failed (timeout or connection lost), dropped (no free instance slot).',
  labelNames: [...ED, 'outcome'] as const,
  registers: [registry],
});

export const trafficLogDropped = new Counter({
  name: 'infergate_traffic_log_dropped_total',
  help: 'Traffic log records dropped because the write buffer was full (serving never waits for the log).',
  registers: [registry],
});

export const trafficLogWritten = new Counter({
  name: 'infergate_traffic_log_records_total',
  help: 'Traffic log records written.',
  registers: [registry],
});

export function statusClass(status: number): string {
  return status >= 500 ? '5xx' : status >= 400 ? '4xx' : status >= 300 ? '3xx' : status >= 200 ? '2xx' : '1xx';
}
