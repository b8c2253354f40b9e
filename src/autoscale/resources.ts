// Resource ids as the CLI prints them (i12-common): a deployment's `online-deployment show --query id`,
// `/workspaces/<ws>/onlineEndpoints/<endpoint>/deployments/<deployment>`, and an endpoint's
// `properties."azureml.onlineendpointid"`, `/workspaces/<ws>/onlineendpoints/<endpoint>` (lower-case).
// Azure compares resource ids case-insensitively, so every comparison here does too.

import type { ResourceRef } from './types.js';

export interface ParsedResourceId extends ResourceRef {
  workspace: string;
}

const RESOURCE_ID = /^\/workspaces\/([^/]+)\/onlineendpoints\/([^/]+)(?:\/deployments\/([^/]+))?\/?$/i;

/** The workspace, endpoint and (for a deployment id) deployment an id names; undefined when it is not one. */
export function parseResourceId(id: string): ParsedResourceId | undefined {
  const m = RESOURCE_ID.exec(id.trim());
  if (!m) return undefined;
  return { workspace: m[1], endpoint: m[2], ...(m[3] !== undefined ? { deployment: m[3] } : {}) };
}

/** `online-deployment show --query id`. */
export const deploymentResourceId = (workspace: string, endpoint: string, deployment: string): string =>
  `/workspaces/${workspace}/onlineEndpoints/${endpoint}/deployments/${deployment}`;

/** `properties."azureml.onlineendpointid"` (Azure prints it lower-case). */
export const endpointResourceId = (workspace: string, endpoint: string): string => `/workspaces/${workspace}/onlineendpoints/${endpoint}`.toLowerCase();

export const sameResourceId = (a: string, b: string): boolean => a.trim().replace(/\/$/, '').toLowerCase() === b.trim().replace(/\/$/, '').toLowerCase();

/** The id an autoscale setting has: `/workspaces/<ws>/autoscalesettings/<name>`. */
export const settingResourceId = (workspace: string, name: string): string => `/workspaces/${workspace}/autoscalesettings/${name}`;
