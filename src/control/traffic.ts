// Azure's traffic rules (contract §3), checked against the deployments that exist. spec/ checked the
// values themselves (integers 0-100, live traffic summing to 0 or 100); these are the rules that need the
// store: a rule may name only a deployment of the endpoint that is not being deleted, one deployment cannot
// take live and mirror traffic at once, and nothing can point anywhere when the endpoint is created.

import { errorOf } from '../errors/index.js';
import type { EndpointSpec } from '../spec/types.js';
import type { StoredDeployment, StoredEndpoint } from '../store/types.js';

/** At create: deployments must exist before traffic can point at them (Azure refuses the same). */
export function checkTrafficAtCreate(spec: EndpointSpec): void {
  if (Object.keys(spec.traffic).length || Object.keys(spec.mirrorTraffic).length) throw errorOf('TrafficAtCreate');
}

/** At update: every rule names a deployment of the endpoint, and none has live and mirror traffic. */
export function checkTraffic(spec: EndpointSpec, deployments: readonly StoredDeployment[]): void {
  const names = new Set(deployments.filter((d) => d.status.provisioningState !== 'Deleting').map((d) => d.spec.name.toLowerCase()));
  const problems: string[] = [];
  for (const n of Object.keys(spec.traffic)) if (!names.has(n)) problems.push(`traffic names deployment '${n}', which does not exist in endpoint '${spec.name}'`);
  for (const n of Object.keys(spec.mirrorTraffic)) {
    if (!names.has(n)) problems.push(`mirror_traffic names deployment '${n}', which does not exist in endpoint '${spec.name}'`);
    if ((spec.traffic[n] ?? 0) > 0) problems.push(`deployment '${n}' cannot get both live traffic and mirror traffic`);
  }
  if (problems.length) throw errorOf('TrafficRulesBroken', { problems: problems.join('; ') });
}

/** The live and mirror percentages an endpoint gives a deployment (traffic keys are lower-case). */
export function trafficOf(endpoint: StoredEndpoint, deployment: string): { live: number; mirror: number } {
  const lower = deployment.toLowerCase();
  return { live: endpoint.spec.traffic[lower] ?? 0, mirror: endpoint.spec.mirrorTraffic[lower] ?? 0 };
}

/** Azure refuses to delete a deployment that still takes live or mirror traffic: set it to 0 first. */
export function checkDeletable(endpoint: StoredEndpoint, deployment: string): void {
  const { live, mirror } = trafficOf(endpoint, deployment);
  if (live > 0 || mirror > 0) throw errorOf('DeploymentHasTraffic', { deployment, live, mirror });
}
