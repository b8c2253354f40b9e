// Specs back to the snake_case document of contract §1: the inverse of load, so that
// parse(dump(spec)) deep-equals spec. The API and CLI send specs this way and apply `--set` to an
// existing resource (GET, dump, override, parse). Only keys with values are written; paths are absolute.

import { formatAssetRef } from './assets.js';
import { compact } from './schema.js';
import type { DeploymentSpec, EndpointSpec, EnvironmentRef, ModelRef, ProbeSettings, ScaleSettings } from './types.js';

type Doc = Record<string, unknown>;

/** A copy of a map, or undefined when it is empty (defaults come back on parse). */
export const nonEmpty = <T>(m: Record<string, T> | undefined): Record<string, T> | undefined => (m && Object.keys(m).length ? { ...m } : undefined);

export function dumpEndpoint(spec: EndpointSpec): Doc {
  return compact({
    name: spec.name,
    description: spec.description,
    tags: nonEmpty(spec.tags),
    properties: nonEmpty(spec.properties),
    auth_mode: spec.authMode,
    identity: spec.identity
      ? compact({
          type: spec.identity.type,
          user_assigned_identities: spec.identity.userAssignedIdentities?.map((u) => ({ resource_id: u.resourceId })),
        })
      : undefined,
    traffic: nonEmpty(spec.traffic),
    mirror_traffic: nonEmpty(spec.mirrorTraffic),
    // Managed only (contract §1.3).
    public_network_access: spec.kind === 'managed' ? spec.publicNetworkAccess : undefined,
    compute: spec.compute,
  });
}

function dumpModel(m: ModelRef): unknown {
  if (m.kind !== 'inline') return formatAssetRef(m);
  return compact({
    path: m.path,
    name: m.name,
    version: m.version,
    type: m.type,
    description: m.description,
    tags: nonEmpty(m.tags),
    properties: nonEmpty(m.properties),
    flavors: m.flavors && structuredClone(m.flavors),
  });
}

function dumpEnvironment(e: EnvironmentRef): unknown {
  if (e.kind !== 'inline') return formatAssetRef(e);
  return compact({ ...dumpEnvironmentFields(e), datastore: e.datastore });
}

/** The keys an inline environment and an environment asset document share, back in snake_case. */
export function dumpEnvironmentFields(e: Omit<Extract<EnvironmentRef, { kind: 'inline' }>, 'kind' | 'datastore'>): Doc {
  const route = (r: { port: number; path: string }) => ({ port: r.port, path: r.path });
  return compact({
    name: e.name,
    version: e.version,
    description: e.description,
    tags: nonEmpty(e.tags),
    image: e.image,
    conda_file: typeof e.condaFile === 'object' ? structuredClone(e.condaFile) : e.condaFile,
    build: e.build && { path: e.build.path, dockerfile_path: e.build.dockerfilePath },
    os_type: e.osType,
    inference_config: e.inferenceConfig && {
      liveness_route: route(e.inferenceConfig.livenessRoute),
      readiness_route: route(e.inferenceConfig.readinessRoute),
      scoring_route: route(e.inferenceConfig.scoringRoute),
    },
  });
}

function dumpScale(s: ScaleSettings): Doc {
  if (s.type === 'default') return { type: 'default' };
  return {
    type: s.type,
    min_instances: s.minInstances,
    max_instances: s.maxInstances,
    polling_interval: s.pollingInterval,
    target_utilization_percentage: s.targetUtilizationPercentage,
  };
}

const dumpProbe = (p: ProbeSettings): Doc => ({
  initial_delay: p.initialDelay,
  period: p.period,
  timeout: p.timeout,
  success_threshold: p.successThreshold,
  failure_threshold: p.failureThreshold,
});

export function dumpDeployment(spec: DeploymentSpec): Doc {
  return compact({
    name: spec.name,
    endpoint_name: spec.endpointName,
    type: spec.type,
    description: spec.description,
    tags: nonEmpty(spec.tags),
    properties: nonEmpty(spec.properties),
    model: spec.model && dumpModel(spec.model),
    model_mount_path: spec.modelMountPath,
    code_configuration: spec.codeConfiguration && { code: spec.codeConfiguration.code, scoring_script: spec.codeConfiguration.scoringScript },
    environment: spec.environment && dumpEnvironment(spec.environment),
    environment_variables: nonEmpty(spec.environmentVariables),
    instance_type: spec.instanceType,
    instance_count: spec.instanceCount,
    app_insights_enabled: spec.appInsightsEnabled,
    scale_settings: dumpScale(spec.scaleSettings),
    request_settings: {
      request_timeout_ms: spec.requestSettings.requestTimeoutMs,
      max_concurrent_requests_per_instance: spec.requestSettings.maxConcurrentRequestsPerInstance,
      max_queue_wait_ms: spec.requestSettings.maxQueueWaitMs,
    },
    liveness_probe: dumpProbe(spec.livenessProbe),
    readiness_probe: dumpProbe(spec.readinessProbe),
    // Managed only (contract §1.4).
    egress_public_network_access: spec.type === 'managed' ? spec.egressPublicNetworkAccess : undefined,
    resources: spec.resources && compact({ requests: nonEmpty(spec.resources.requests), limits: nonEmpty(spec.resources.limits) }),
    data_collector: spec.dataCollector && structuredClone(spec.dataCollector),
  });
}
