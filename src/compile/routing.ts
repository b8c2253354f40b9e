// Pure: endpoints + deployments + ready instances → the RoutingTable the router serves from.

import { createHash } from 'node:crypto';
import { batchingOf } from './no-code.js';
import type { DeploymentRoute, EndpointRoute, InstanceAddress, RoutingTable } from '../ir/types.js';
import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';
import type { EndpointKeys } from '../store/types.js';

export interface RoutingInput {
  endpoints: { spec: EndpointSpec; keys: EndpointKeys }[];
  deployments: DeploymentSpec[];
  /** Ready instances per `${endpoint}/${deployment}`, in a stable order. */
  ready: ReadonlyMap<string, InstanceAddress[]>;
  /**
   * Local endpoints (`--local`): no auth, and an endpoint with one deployment and no traffic rules sends
   * everything to it, as Azure's local mode serves its single container.
   */
  local?: boolean;
  /**
   * Deployments (`${endpoint}/${deployment}`) that may be held at zero instances besides those whose
   * scale_settings say min_instances 0: the controller's autoscale hook (reconcile/controller.ts allowZero).
   */
  scaleFromZero?: ReadonlySet<string>;
}

/** scale_settings target_utilization with min_instances 0: the deployment may keep no instance when idle. */
export function mayScaleToZero(d: DeploymentSpec): boolean {
  return d.scaleSettings.type === 'target_utilization' && d.scaleSettings.minInstances === 0;
}

/**
 * Requests let through to one instance at a time. A batching deployment (docs/no-code.md) gets at least its
 * max_batch_size: an instance can only merge requests the router lets reach it together.
 */
function concurrencyOf(d: DeploymentSpec): number {
  const own = d.requestSettings.maxConcurrentRequestsPerInstance;
  try {
    const batching = batchingOf(d.properties, '');
    return batching ? Math.max(own, batching.maxBatchSize) : own;
  } catch {
    return own; // refused when the deployment was stored; never stops a routing table
  }
}

export function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

export function compileRoutingTable(version: number, input: RoutingInput): RoutingTable {
  const byEndpoint = new Map<string, DeploymentSpec[]>();
  for (const d of input.deployments) {
    const list = byEndpoint.get(d.endpointName) ?? [];
    list.push(d);
    byEndpoint.set(d.endpointName, list);
  }
  const endpoints: EndpointRoute[] = input.endpoints
    .map(({ spec, keys }) => {
      const deployments: DeploymentRoute[] = (byEndpoint.get(spec.name) ?? [])
        .map((d) => ({
          name: d.name,
          requestTimeoutMs: d.requestSettings.requestTimeoutMs,
          maxConcurrentRequestsPerInstance: concurrencyOf(d),
          maxQueueWaitMs: d.requestSettings.maxQueueWaitMs,
          scaleFromZero: mayScaleToZero(d) || (input.scaleFromZero?.has(`${spec.name}/${d.name}`) ?? false),
          instances: input.ready.get(`${spec.name}/${d.name}`) ?? [],
        }))
        .sort((a, b) => byCodePoint(a.name, b.name));
      // Traffic keys are stored lower-cased (Azure strips zeros and lower-cases, contract §2.4), while a
      // deployment keeps the case it was created with.
      const known = new Map(deployments.map((d) => [d.name.toLowerCase(), d.name]));
      let traffic = Object.entries(spec.traffic)
        .filter(([name, weight]) => weight > 0 && known.has(name.toLowerCase()))
        .map(([name, weight]) => ({ deployment: known.get(name.toLowerCase())!, weight }))
        .sort((a, b) => byCodePoint(a.deployment, b.deployment));
      if (input.local && traffic.length === 0 && Object.keys(spec.traffic).length === 0 && deployments.length === 1) {
        traffic = [{ deployment: deployments[0].name, weight: 100 }];
      }
      const mirrorEntry = Object.entries(spec.mirrorTraffic).find(([name, p]) => p > 0 && known.has(name.toLowerCase()));
      return {
        name: spec.name,
        authMode: input.local ? ('none' as const) : spec.authMode,
        keyHashes: !input.local && spec.authMode === 'key' ? [sha256Hex(keys.primaryKey), sha256Hex(keys.secondaryKey)] : [],
        ...(!input.local && spec.authMode !== 'key' ? { tokenSecret: keys.tokenSecret } : {}),
        deployments,
        traffic,
        mirror: mirrorEntry ? { deployment: known.get(mirrorEntry[0].toLowerCase())!, percent: mirrorEntry[1] } : null,
      };
    })
    .sort((a, b) => byCodePoint(a.name, b.name));
  return { version, endpoints };
}

/** Code-point order, the same on every machine (localeCompare depends on the locale). */
function byCodePoint(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
