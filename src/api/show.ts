// What `show` returns: Azure CLI's fields (contract §2.4, §1.11). The REST API answers with these shapes,
// so `infergate ... show` prints the server's answer as it is.

import { dumpDeployment, dumpEndpoint } from '../spec/index.js';
import type { StoredDeployment, StoredEndpoint } from '../store/types.js';

export interface ShowContext {
  /** Router base URL, e.g. http://127.0.0.1:8471 */
  routerUrl: string;
  workspace: string;
  location: string;
  /** Where instances run ('process', 'docker'): `online-deployment show` says so (infergate's own field). */
  backend?: string;
}

/** Where an endpoint is scored, when not on the shared router (local endpoints have a port each). */
export type ScoringUriOf = (endpoint: string) => Promise<string>;

export function endpointId(ctx: ShowContext, name: string): string {
  return `/workspaces/${ctx.workspace}/onlineEndpoints/${name}`;
}

export function scoringUri(ctx: ShowContext, name: string): string {
  return `${ctx.routerUrl}/endpoints/${name}/score`;
}

export function showEndpoint(ctx: ShowContext, e: StoredEndpoint, deployments: StoredDeployment[], ownScoringUri?: string): Record<string, unknown> {
  const doc = dumpEndpoint(e.spec);
  const id = endpointId(ctx, e.spec.name);
  // `show` re-adds 0 for every deployment with neither live nor mirror traffic (contract §2.4).
  const traffic: Record<string, number> = { ...e.spec.traffic };
  for (const d of deployments) {
    const n = d.spec.name.toLowerCase();
    if (!(n in traffic) && !(n in e.spec.mirrorTraffic)) traffic[n] = 0;
  }
  const out: Record<string, unknown> = {
    auth_mode: e.spec.authMode,
    ...(e.spec.description !== undefined ? { description: e.spec.description } : {}),
    id,
    ...(doc.identity !== undefined ? { identity: doc.identity } : {}),
    kind: e.spec.kind === 'kubernetes' ? 'K8S' : 'Managed',
    location: ctx.location,
    mirror_traffic: { ...e.spec.mirrorTraffic },
    name: e.spec.name,
    openapi_uri: ownScoringUri ? ownScoringUri.replace(/\/score$/, '/swagger.json') : `${ctx.routerUrl}/endpoints/${e.spec.name}/swagger.json`,
    properties: {
      ...e.spec.properties,
      'azureml.onlineendpointid': id.toLowerCase(),
      createdAt: e.createdAt,
      lastModifiedAt: e.updatedAt,
    },
    provisioning_state: e.status.provisioningState,
    ...(e.spec.kind === 'managed' ? { public_network_access: e.spec.publicNetworkAccess } : { compute: e.spec.compute }),
    scoring_uri: ownScoringUri ?? scoringUri(ctx, e.spec.name),
    tags: { ...e.spec.tags },
    traffic,
  };
  if (e.status.error) out.error = e.status.error;
  return out;
}

export function showDeployment(ctx: ShowContext, d: StoredDeployment): Record<string, unknown> {
  const doc = dumpDeployment(d.spec);
  delete doc.$schema;
  const out: Record<string, unknown> = {
    ...doc,
    creation_context: { created_at: d.createdAt, last_modified_at: d.updatedAt },
    id: `${endpointId(ctx, d.spec.endpointName)}/deployments/${d.spec.name}`,
    provisioning_state: d.status.provisioningState,
  };
  // Azure shows its default when the YAML did not set it; the stored spec keeps "not written" (the
  // docker backend gives a network only to deployments that ask for one in so many words).
  if (d.spec.type === 'managed') out.egress_public_network_access ??= 'enabled';
  if (ctx.backend !== undefined) out.backend = ctx.backend;
  if (d.status.error) out.error = d.status.error;
  return Object.fromEntries(Object.entries(out).sort(([a], [b]) => a.localeCompare(b)));
}
