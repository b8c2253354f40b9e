// Every metric infergate exports, in one place (DESIGN.md "telemetry/"). Prometheus names follow
// Prometheus conventions; each help text names the Azure ML metric it corresponds to (contract §6), so
// dashboards and autoscale rules translate one to one.

import { Counter, Registry, collectDefaultMetrics } from 'prom-client';

export const registry = new Registry();
// No prefix: process_* and nodejs_* are the names every Node.js dashboard and alert already uses.
collectDefaultMetrics({ register: registry });

const ED = ['endpoint', 'deployment'] as const;

// ---- per-deployment meters: bumped on the router's hot path, exported at scrape time ----------------
//
// prom-client's labelled children validate and hash their label values on every inc()/observe() (a string
// built per call). The router does five of those per request, so it counts into plain fields of a
// DeploymentMeters instead, and the metrics below read them when /metrics is scraped.

/** Upper bounds (seconds) of both latency histograms. */
export const LATENCY_BUCKETS: readonly number[] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 180];

/** A fixed-bucket histogram: observe() is a scan and three additions, nothing allocated. */
export class FastHistogram {
  /** Non-cumulative counts per bucket; the last slot is +Inf. */
  readonly counts = new Float64Array(LATENCY_BUCKETS.length + 1);
  sum = 0;
  count = 0;

  observe(seconds: number): void {
    let i = 0;
    while (i < LATENCY_BUCKETS.length && seconds > LATENCY_BUCKETS[i]) i++;
    this.counts[i]++;
    this.sum += seconds;
    this.count++;
  }
}

export const MIRROR_OUTCOMES = ['sent', 'answered', 'error', 'failed', 'dropped'] as const;
export type MirrorOutcome = (typeof MIRROR_OUTCOMES)[number];

/** Everything the router counts for one deployment. */
export class DeploymentMeters {
  /** Requests sent to instances and not yet answered. */
  inFlight = 0;
  /** Requests waiting for a free instance slot. */
  queued = 0;
  readyInstances = 0;
  /** Answered requests by status code (index = code). */
  readonly byStatus = new Float64Array(600);
  readonly requestDuration = new FastHistogram();
  readonly modelDuration = new FastHistogram();
  /** Mirror copies by outcome ('answered' and 'error' both got an answer; 'error' a non-200 one). */
  readonly mirror: Record<MirrorOutcome, number> = { sent: 0, answered: 0, error: 0, failed: 0, dropped: 0 };
  mirrorInFlight = 0;
  /** Sum of the mirror answers' latencies (ms), for a mean. */
  mirrorLatencyMs = 0;
  /**
   * Mean CPU and memory use of the deployment's serving instances, percent of their limits (written by
   * the autoscale sampler, src/autoscale/metrics.ts, each second); NaN while nothing was measured.
   */
  cpuUtilizationPercent = NaN;
  memoryUtilizationPercent = NaN;
  /** False once the deployment is gone: its gauges are no longer exported, its counters are. */
  live = true;

  constructor(
    readonly endpoint: string,
    readonly deployment: string,
  ) {}
}

const meters = new Map<string, DeploymentMeters>();

/** The meters of a deployment (the same object for as long as the process runs). */
export function deploymentMeters(endpoint: string, deployment: string): DeploymentMeters {
  const key = `${endpoint}/${deployment}`;
  let m = meters.get(key);
  if (m === undefined) {
    m = new DeploymentMeters(endpoint, deployment);
    meters.set(key, m);
  }
  m.live = true;
  return m;
}

/**
 * What the router answers for an endpoint before a deployment is selected (auth: 401). Kept apart from
 * DeploymentMeters so that the autoscale sampler and the per-deployment gauges never see a deployment ''.
 */
export class EndpointMeters {
  /** Answered requests by status code (index = code). */
  readonly byStatus = new Float64Array(600);

  constructor(readonly endpoint: string) {}
}

const endpointMetersByName = new Map<string, EndpointMeters>();

/** The meters of an endpoint's answers given before selection (the same object for as long as the process runs). */
export function endpointMeters(endpoint: string): EndpointMeters {
  let m = endpointMetersByName.get(endpoint);
  if (m === undefined) {
    m = new EndpointMeters(endpoint);
    endpointMetersByName.set(endpoint, m);
  }
  return m;
}

/** Every deployment's meters, deleted deployments' too (`live` false); read by the autoscale sampler. */
export function allDeploymentMeters(): Iterable<DeploymentMeters> {
  return meters.values();
}

interface MetricValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A metric whose values are computed at scrape time, in the shape prom-client's registry reads. */
function collected(name: string, help: string, type: 'counter' | 'gauge' | 'histogram', values: () => MetricValue[]): void {
  registry.registerMetric({
    name,
    help,
    type,
    aggregator: 'sum',
    get: async () => ({ name, help, type, values: values(), aggregator: 'sum' }),
    reset: () => {},
  } as unknown as Parameters<Registry['registerMetric']>[0]);
}

const ed = (m: DeploymentMeters) => ({ endpoint: m.endpoint, deployment: m.deployment });

/** A gauge per live deployment; a NaN value (nothing measured yet) leaves the deployment out. */
function gauge(name: string, help: string, read: (m: DeploymentMeters) => number): void {
  collected(name, help, 'gauge', () => {
    const out: MetricValue[] = [];
    for (const m of meters.values()) {
      const value = m.live ? read(m) : NaN;
      if (!Number.isNaN(value)) out.push({ labels: ed(m), value });
    }
    return out;
  });
}

function histogram(name: string, help: string, read: (m: DeploymentMeters) => FastHistogram): void {
  collected(name, help, 'histogram', () => {
    const out: MetricValue[] = [];
    for (const m of meters.values()) {
      const h = read(m);
      if (h.count === 0 && !m.live) continue;
      let cumulative = 0;
      for (let i = 0; i <= LATENCY_BUCKETS.length; i++) {
        cumulative += h.counts[i];
        out.push({ metricName: `${name}_bucket`, labels: { ...ed(m), le: i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i] : '+Inf' }, value: cumulative });
      }
      out.push({ metricName: `${name}_sum`, labels: ed(m), value: h.sum }, { metricName: `${name}_count`, labels: ed(m), value: h.count });
    }
    return out;
  });
}

/**
 * Azure: RequestsPerMinute (dimensions deployment, statusCode, statusCodeClass, modelStatusCode).
 * Answers given before a deployment is selected (401 from auth) carry deployment="" (UNSELECTED).
 */
export const UNSELECTED = '';
collected('infergate_requests_total', 'Scoring requests answered, by endpoint, deployment, status code and class (Azure: RequestsPerMinute). deployment is empty for answers given before one is selected (401: no valid key or token).', 'counter', () => {
  const out: MetricValue[] = [];
  const add = (labels: { endpoint: string; deployment: string }, byStatus: Float64Array) => {
    for (let code = 100; code < byStatus.length; code++) {
      const n = byStatus[code];
      if (n > 0) out.push({ labels: { ...labels, status_code: String(code), status_code_class: statusClass(code) }, value: n });
    }
  };
  for (const m of meters.values()) add(ed(m), m.byStatus);
  for (const m of endpointMetersByName.values()) add({ endpoint: m.endpoint, deployment: UNSELECTED }, m.byStatus);
  return out;
});

/** Azure: RequestLatency, RequestLatency_P50/_P90/_P95/_P99 (ms there; seconds here, as Prometheus does). */
histogram('infergate_request_duration_seconds', 'Time from the request arriving at the router to the response sent (Azure: RequestLatency).', (m) => m.requestDuration);
histogram('infergate_model_duration_seconds', "Time from the request being sent to an instance to its answer: the model's share of the latency (Azure traffic log: ResponseDurationMs).", (m) => m.modelDuration);
gauge('infergate_requests_in_flight', 'Requests sent to instances and not yet answered.', (m) => m.inFlight);
gauge('infergate_requests_queued', 'Requests waiting for a free instance slot (max_concurrent_requests_per_instance).', (m) => m.queued);
/** Azure: DeploymentCapacity (number of instances). */
gauge('infergate_ready_instances', 'Instances ready to serve, per deployment (Azure: DeploymentCapacity).', (m) => m.readyInstances);
gauge('infergate_cpu_utilization_percent', "Mean CPU use of the deployment's serving instances over the last second, percent of each instance's CPUs: its limit or instance type, at most this machine's cores (Azure: CpuUtilizationPercentage).", (m) => m.cpuUtilizationPercent);
gauge('infergate_memory_utilization_percent', "Mean memory use of the deployment's serving instances, percent of each instance's memory limit or instance type, at most this machine's memory (Azure: CpuMemoryUtilizationPercentage; autoscale rules: MemoryUtilizationPercentage).", (m) => m.memoryUtilizationPercent);

// ---- per-instance CPU and memory: handed over by the autoscale sampler, which already turns the
// backend's cumulative CPU time into a rate (src/autoscale/metrics.ts) ---------------------------------

/** One instance's use of its limits, as the sampler computed it in its last sample. */
export interface InstanceUtilization {
  /** The instance id (backend ObservedInstance.id). */
  instance: string;
  endpoint: string;
  deployment: string;
  /** CPU time ÷ wall time ÷ the instance's CPUs, percent; NaN on its first reading (no rate yet). */
  cpuPercent: number;
  /** Resident memory ÷ its memory limit, percent; NaN without a limit. */
  memoryPercent: number;
  /** Resident memory, bytes. */
  memoryBytes: number;
}

let instanceUtilization: readonly InstanceUtilization[] = [];

/**
 * Replaces every instance's figures with one sample's: an instance left out (stopped, deleted) is no
 * longer exported. Called once per sample, so nothing per instance outlives its instance.
 */
export function setInstanceUtilization(instances: readonly InstanceUtilization[]): void {
  instanceUtilization = instances;
}

function instanceGauge(name: string, help: string, read: (u: InstanceUtilization) => number): void {
  collected(name, help, 'gauge', () => {
    const out: MetricValue[] = [];
    for (const u of instanceUtilization) {
      const value = read(u);
      if (Number.isFinite(value)) out.push({ labels: { endpoint: u.endpoint, deployment: u.deployment, instance: u.instance }, value });
    }
    return out;
  });
}

instanceGauge('infergate_instance_cpu_utilization_percent', "CPU use of one instance over the last second, percent of its CPUs (its limit or instance type, at most this machine's cores).", (u) => u.cpuPercent);
instanceGauge('infergate_instance_memory_utilization_percent', "Resident memory of one instance, percent of its memory limit or instance type's memory.", (u) => u.memoryPercent);
instanceGauge('infergate_instance_memory_bytes', 'Resident memory of one instance (a container: cgroup usage less inactive page cache, as docker stats).', (u) => u.memoryBytes);

// ---- instance states and restarts: read at scrape time from the backend ------------------------------

/** The fields of backend ObservedInstance these metrics read (telemetry may not import backend). */
export interface InstanceObservation {
  id: string;
  endpoint: string;
  deployment: string;
  state: string;
  restarts: number;
}

export const INSTANCE_STATES = ['starting', 'ready', 'unready', 'restarting', 'failed', 'stopping'] as const;

let observeInstances: (() => readonly InstanceObservation[]) | null = null;

/** Where the instance metrics come from (the server passes `() => backend.observe()`); null stops them. */
export function setInstanceSource(source: (() => readonly InstanceObservation[]) | null): void {
  observeInstances = source;
}

function observed(): readonly InstanceObservation[] {
  try {
    return observeInstances === null ? [] : observeInstances();
  } catch {
    // A scrape must not fail because the backend could not answer; the series go missing instead.
    return [];
  }
}

collected('infergate_instances', 'Instances per deployment by state: starting, ready, unready (readiness probe failing), restarting (crashed, waiting for its back-off), failed (gave up), stopping.', 'gauge', () => {
  const counts = new Map<string, { endpoint: string; deployment: string; byState: Map<string, number> }>();
  for (const o of observed()) {
    const key = `${o.endpoint}/${o.deployment}`;
    let c = counts.get(key);
    if (c === undefined) counts.set(key, (c = { endpoint: o.endpoint, deployment: o.deployment, byState: new Map() }));
    c.byState.set(o.state, (c.byState.get(o.state) ?? 0) + 1);
  }
  const out: MetricValue[] = [];
  for (const c of counts.values()) {
    // Every state, zeros too: an alert on state="restarting" then resolves instead of losing its series.
    for (const state of INSTANCE_STATES) out.push({ labels: { endpoint: c.endpoint, deployment: c.deployment, state }, value: c.byState.get(state) ?? 0 });
  }
  return out;
});

collected('infergate_instance_restarts', 'Times an instance crashed and was started again since it last served for a minute (the crash back-off count, as Kubernetes restartCount with its reset). A crash loop keeps it climbing.', 'gauge', () =>
  observed().map((o) => ({ labels: { endpoint: o.endpoint, deployment: o.deployment, instance: o.id }, value: o.restarts })),
);

collected('infergate_mirror_requests_total', 'Mirror-traffic copies, by outcome: sent, answered, error (answered non-200), failed (timeout or connection lost), dropped (no free instance slot).', 'counter', () => {
  const out: MetricValue[] = [];
  for (const m of meters.values()) {
    if (MIRROR_OUTCOMES.every((o) => m.mirror[o] === 0)) continue;
    for (const o of MIRROR_OUTCOMES) out.push({ labels: { ...ed(m), outcome: o }, value: m.mirror[o] });
  }
  return out;
});

// ---- the router's client connections (router/http1.ts counts into this one object) ------------------

export const CONNECTION_REJECT_REASONS = ['max_connections', 'max_connections_per_client'] as const;
export type ConnectionRejectReason = (typeof CONNECTION_REJECT_REASONS)[number];

/** Plain fields bumped by the router's HTTP servers (all of them: the router port and local endpoints' ports). */
export class ConnectionMeters {
  /** Client connections open now. */
  open = 0;
  readonly rejected: Record<ConnectionRejectReason, number> = { max_connections: 0, max_connections_per_client: 0 };
  /** Request-body bytes the router holds now (declared bodies count from their headers on). */
  bufferedBodyBytes = 0;
  /** Requests answered 503 before their body was read because the buffered bytes would pass the cap. */
  bufferedBodyRejected = 0;
  /** Requests cut with 408 because their body arrived slower than the minimum rate. */
  slowBodyCut = 0;
  /** Scoring requests answered 429 because their client address failed authentication too often. */
  failedAuthRefused = 0;
}

export const connectionMeters = new ConnectionMeters();

collected('infergate_connections_open', 'Client connections open at the router.', 'gauge', () => [{ labels: {}, value: connectionMeters.open }]);
collected('infergate_connections_rejected_total', 'Client connections refused at accept: max_connections (503, the router-wide limit) or max_connections_per_client (429, one client address over its limit).', 'counter', () =>
  CONNECTION_REJECT_REASONS.map((r) => ({ labels: { reason: r }, value: connectionMeters.rejected[r] })),
);
collected('infergate_request_body_buffered_bytes', 'Request-body bytes the router holds in memory now (bounded by --max-buffered-body-mb).', 'gauge', () => [{ labels: {}, value: connectionMeters.bufferedBodyBytes }]);
collected('infergate_requests_rejected_total', 'Requests refused by the router before reaching a deployment: buffered_body_cap (503: the buffered request bodies would pass the cap), slow_body (408: body slower than the minimum rate), failed_auth (429: the client address failed authentication too often, --failed-auth-limit).', 'counter', () => [
  { labels: { reason: 'buffered_body_cap' }, value: connectionMeters.bufferedBodyRejected },
  { labels: { reason: 'slow_body' }, value: connectionMeters.slowBodyCut },
  { labels: { reason: 'failed_auth' }, value: connectionMeters.failedAuthRefused },
]);

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
