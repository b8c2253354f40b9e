// The interfaces the autoscaler is built from (issue 12), so that metrics, engine, runner and the
// server's wiring are separate parts: the engine is pure (settings + metric readings + clock → a
// decision); the runner applies decisions through a Scaler that main/ provides (an ordinary
// instance_count change, which drains on scale-in); metrics come from a MetricReader fed by samplers
// (router meters, instance CPU and memory).

/** A resource the rules name: a deployment (`online-deployment show --query id`) or an endpoint. */
export interface ResourceRef {
  endpoint: string;
  /** Absent for an endpoint's own metrics (RequestLatency of the endpoint, contract §7.2). */
  deployment?: string;
}

/** Metric names, Azure's (contract §6) plus infergate's own. */
export const METRICS = [
  'CpuUtilizationPercentage',
  'MemoryUtilizationPercentage',
  'RequestLatency',
  'RequestsPerMinute',
  'DeploymentCapacity',
  'ConcurrentRequests',
  'QueuedRequests',
] as const;
export type MetricName = (typeof METRICS)[number];

/** Time series the rules read. Times are epoch milliseconds. */
export interface MetricReader {
  /** Samples of one metric of one resource with from <= time <= to, oldest first. */
  series(resource: ResourceRef, metric: MetricName, from: number, to: number): ReadonlyArray<readonly [number, number]>;
}

/** How decisions take effect: main/ implements it on the control plane. */
export interface Scaler {
  /** The deployment's instance_count now, or undefined when it does not exist. */
  capacity(endpoint: string, deployment: string): number | undefined;
  /** Sets instance_count (an ordinary scale: new instances start, scale-in drains). */
  scale(endpoint: string, deployment: string, count: number, reason: string): Promise<void>;
  /** A line of the autoscaler's own in the deployment's console log (get-logs). */
  note(endpoint: string, deployment: string, line: string): void;
}

/** The clock the engine and runner read (tests inject one). */
export type Clock = () => number;
