// What the router's stages (./stages/) read and write per request: the per-endpoint and per-deployment
// state built by Router.setTable from a RoutingTable, once per table, never per request.

import type { DeploymentRoute, EndpointRoute } from '../ir/types.js';
import type { DeploymentMeters } from '../telemetry/metrics.js';
import type { TokenVerifier } from '../util/token.js';
import type { InstanceChannel } from '../protocol/client.js';
import type { Flight } from './stages/proxy.js';

/**
 * One deployment as the router serves it. Kept across routing-table swaps (keyed by endpoint/deployment)
 * so its queue and counters survive a traffic change; only `route` and `connections` are replaced.
 */
export interface DeploymentState {
  readonly endpoint: string;
  readonly name: string;
  route: DeploymentRoute;
  /** One per ready instance: framed (our hosts) or HTTP (custom containers), one interface. */
  connections: InstanceChannel[];
  /**
   * Per-instance limit of this router's own requests; Infinity when max_concurrent_requests_per_instance
   * is 0. With instance admission: twice it (what the host runs plus what it queues).
   */
  perInstance: number;
  /**
   * Instance admission (docs/router-scale.md): several routers serve this deployment, its instances hold
   * the limits (LIMITS frame) and answer BUSY beyond them; this router does not queue (but for cold
   * requests of a deployment with no instance). False with one router, and for custom containers.
   */
  hostAdmission: boolean;
  /**
   * Azure's bound on pending requests: 2 × max_concurrent × instances (contract §4.2). With no ready
   * instance: 0 (every request is refused, 503), or, for a deployment that scales from zero, the bound of
   * one instance (requests wait for it to start).
   */
  admitLimit: number;
  /** Requests admitted and not yet answered: in flight at instances plus queued. */
  admitted: number;
  queue: Flight[];
  queueHead: number;
  /** Round-robin start among equally busy instances, so ties spread. */
  next: number;
  /**
   * When an instance of this scale-from-zero deployment was last asked for (onDemand; performance.now()),
   * 0 when not: asked once per cold start, not once per waiting request. Cleared when an instance is
   * ready, or when nothing waits any more, so a start that never came is asked for again.
   */
  demandedAt: number;
  /** Counters and gauges for /metrics (telemetry/metrics.ts), plain fields bumped here. */
  m: DeploymentMeters;
}

export type AuthType = 'Key' | 'AMLToken' | 'AADToken' | '';

export interface EndpointState {
  route: EndpointRoute;
  keyHashes: Buffer[];
  /** aml_token endpoints: the key and audience, prepared once per snapshot. */
  tokens: TokenVerifier | null;
  /** Deployments by lower-cased name, for the azureml-model-deployment header. */
  byName: Map<string, DeploymentState>;
  /** Live traffic: cumulative weights and the deployment each range selects. */
  cumulative: number[];
  targets: DeploymentState[];
  mirror: DeploymentState | null;
  mirrorPercent: number;
  authType: AuthType;
}
