// The online DEPLOYMENT document: managed (contract §1.4) and Kubernetes (§1.10), with the settings of §1.7
// and data_collector of §1.9. One description for both kinds; keys that belong to one kind say so (`only`).

import { codeConfiguration, environment, model } from './assets.js';
import { nameField } from './endpoint.js';
import {
  anything,
  bool,
  compact,
  dict,
  int,
  keepAsWritten,
  list,
  num,
  oneOf,
  opt,
  refine,
  req,
  scalarString,
  str,
  stringMap,
  struct,
  text,
  schemaOf,
  to,
  withSchema,
  type Cx,
  type Type,
} from './schema.js';
import {
  DEFAULT_PROBE,
  DEFAULT_REQUEST_SETTINGS,
  type DeploymentSpec,
  type ProbeSettings,
  type RequestSettings,
  type ScaleSettings,
} from './types.js';
import { refuseUnsafeEnvironment } from './unsafe-env.js';

/** Name used when a Kubernetes deployment gives no instance_type: the cluster's default instance type (§1.10). */
export const DEFAULT_K8S_INSTANCE_TYPE = 'defaultinstancetype';
/** Instances per managed deployment (contract §1.8 quota table). */
export const MAX_MANAGED_INSTANCES = 50;
/** Longest endpoint name + deployment name on Kubernetes (contract §1.3). */
export const MAX_K8S_NAME_PAIR = 62;

// ---- request_settings, probes, scale_settings (§1.7) ---------------------------------------------------

const requestSettings: Type<Partial<RequestSettings>> = to(
  struct({
    // Managed endpoints allow 180 s, Kubernetes 300 s (contract §1.8 limits table).
    request_timeout_ms: opt(int({ min: 1, max: (cx: Cx) => (cx.kind === 'kubernetes' ? 300_000 : 180_000) })),
    max_concurrent_requests_per_instance: opt(int({ min: 1 })),
    max_queue_wait_ms: opt(int({ min: 0 })),
  }),
  (r) =>
    compact({
      requestTimeoutMs: r.request_timeout_ms,
      maxConcurrentRequestsPerInstance: r.max_concurrent_requests_per_instance,
      maxQueueWaitMs: r.max_queue_wait_ms,
    }),
);

function probe(which: 'liveness' | 'readiness'): Type<Partial<ProbeSettings>> {
  return to(
    struct(
      {
        initial_delay: opt(int({ min: 1 })),
        period: opt(int({ min: 1 })),
        timeout: opt(int({ min: 1 })),
        success_threshold: opt(int({ min: 1 })),
        failure_threshold: opt(int({ min: 1 })),
      },
      {
        check(raw, { issue }) {
          // Kubernetes (and so Azure) requires 1 for liveness: one good answer proves the process is alive.
          if (which === 'liveness' && raw.success_threshold !== undefined && raw.success_threshold !== 1) {
            issue('success_threshold', `must be 1 for liveness_probe, got ${raw.success_threshold}`);
          }
        },
      },
    ),
    (p) =>
      compact({
        initialDelay: p.initial_delay,
        period: p.period,
        timeout: p.timeout,
        successThreshold: p.success_threshold,
        failureThreshold: p.failure_threshold,
      }),
  );
}

/** Defaults for target_utilization (contract §1.7, Kubernetes deployment YAML doc). */
const TARGET_UTILIZATION_DEFAULTS = { minInstances: 1, maxInstances: 1, pollingInterval: 1, targetUtilizationPercentage: 70 };

const scaleSettings: Type<ScaleSettings> = to(
  struct(
    {
      type: req(oneOf(['default', 'target_utilization'])),
      // 0: scale to zero (beyond Azure, docs/autoscale.md): requests wait for a cold start.
      min_instances: opt(int({ min: 0 })),
      max_instances: opt(int({ min: 1 })),
      polling_interval: opt(int({ min: 1 })),
      target_utilization_percentage: opt(int({ min: 1, max: 100 })),
    },
    {
      check(raw, { issue }) {
        // Azure allows target_utilization on Kubernetes only (the SDK refuses it for managed deployments with
        // "ManagedOnlineEndpoint supports DefaultScaleSettings only."); infergate's autoscaler runs it for
        // any deployment (issue 12, docs/autoscale.md).
        const min = raw.min_instances ?? TARGET_UTILIZATION_DEFAULTS.minInstances;
        const max = raw.max_instances ?? TARGET_UTILIZATION_DEFAULTS.maxInstances;
        if (raw.type === 'target_utilization' && min > max) issue('max_instances', `max_instances (${max}) must be at least min_instances (${min})`);
      },
    },
  ),
  (s): ScaleSettings =>
    // With type default the SDK drops the other keys (contract §1.7 `_set_scale_settings`).
    s.type === 'default'
      ? { type: 'default' }
      : {
          type: 'target_utilization',
          minInstances: s.min_instances ?? TARGET_UTILIZATION_DEFAULTS.minInstances,
          maxInstances: s.max_instances ?? TARGET_UTILIZATION_DEFAULTS.maxInstances,
          pollingInterval: s.polling_interval ?? TARGET_UTILIZATION_DEFAULTS.pollingInterval,
          targetUtilizationPercentage: s.target_utilization_percentage ?? TARGET_UTILIZATION_DEFAULTS.targetUtilizationPercentage,
        },
);

// ---- resources (Kubernetes only, §1.10) ----------------------------------------------------------------

const QUANTITY = /^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?[0-9]+)?$/;
const SUFFIX: Record<string, number> = {
  m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18,
  Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60,
};

/** A Kubernetes resource quantity (`0.1`, `500m`, `200Mi`, `1e3`) as a number; undefined if malformed. */
export function parseQuantity(s: string): number | undefined {
  const m = QUANTITY.exec(s.trim());
  if (!m) return undefined;
  const suffix = m[2] ?? '';
  const scale = suffix === '' ? 1 : /^[eE]/.test(suffix) ? 10 ** Number(suffix.slice(1)) : SUFFIX[suffix];
  return Number(m[1]) * scale;
}

const quantity = refine(
  scalarString,
  (s) => (parseQuantity(s) === undefined ? `'${s}' is not a Kubernetes quantity (e.g. 0.5, 500m, 1Gi)` : undefined),
  'a quantity',
  // A number is read as written (`0.5`), so only a negative one is not a quantity.
  () => ({ type: ['string', 'number'], pattern: `^\\s*${QUANTITY.source.slice(1, -1)}\\s*$`, minimum: 0 }),
);
const RESOURCE_KEYS = ['cpu', 'memory', 'nvidia.com/gpu'] as const;

const resourceList: Type<Record<string, string>> = to(struct({ cpu: opt(quantity), memory: opt(quantity), 'nvidia.com/gpu': opt(quantity) }), (r) =>
  compact({ ...r }) as Record<string, string>,
);

const resources = to(
  struct(
    { requests: opt(resourceList), limits: opt(resourceList) },
    {
      check(raw, { issue }) {
        for (const key of RESOURCE_KEYS) {
          const want = raw.requests?.[key];
          const cap = raw.limits?.[key];
          if (want !== undefined && cap !== undefined && parseQuantity(want)! > parseQuantity(cap)!) {
            issue('requests', `requests.${key} (${want}) must not be more than limits.${key} (${cap})`);
          }
        }
      },
    },
  ),
  (r) => compact({ requests: r.requests, limits: r.limits }),
);

// ---- data_collector (§1.9): validated, kept as written ---------------------------------------------

const collection = struct({
  // A string enum 'True'/'False' in the SDK; bool reads those strings and YAML booleans alike.
  enabled: opt(bool),
  data: opt(struct({ name: opt(str), path: opt(str), version: opt(int({ min: 1 })) })),
});

const dataCollector = keepAsWritten(
  struct({
    sampling_rate: opt(num({ min: 0, max: 1 })),
    rolling_rate: opt(oneOf(['minute', 'hour', 'day', 'month', 'year'])),
    collections: opt(dict(collection)),
    request_logging: opt(struct({ capture_headers: opt(list(str)) })),
  }),
);

// ---- the document ------------------------------------------------------------------------------------

const isRegistryRef = (ref: { kind: string; uri?: string } | undefined): boolean => ref?.kind === 'uri' && !!ref.uri?.startsWith('azureml://registries/');

// ---- environment_variables ------------------------------------------------------------------------------

/**
 * Largest value of one variable, in UTF-8 bytes. Linux refuses any single `NAME=value` string over
 * MAX_ARG_STRLEN (128 KiB) and all of argv + environment over ARG_MAX with E2BIG, at spawn: a variable
 * that passes here must start, so the limits sit well under both, and are checked when the deployment is
 * created or updated instead of when an instance starts.
 */
export const MAX_ENV_VALUE_BYTES = 32 * 1024;
/** All of a deployment's variables together (`NAME=value` and its NUL, each). */
export const MAX_ENV_TOTAL_BYTES = 256 * 1024;

const envName = (k: string): string | undefined => {
  if (k === '') return 'an environment variable needs a name';
  // execve() splits each entry at its first '=' and ends it at NUL: such a name cannot be passed on.
  if (/[=\0]/.test(k)) return `environment variable name ${JSON.stringify(k)} contains ${k.includes('=') ? "'='" : 'a NUL character'}, which no process environment can hold`;
  return undefined;
};

const envValue: Type<string> = refine(
  scalarString,
  (v) => {
    if (v.includes('\0')) return 'the value contains a NUL character, which no process environment can hold';
    const bytes = Buffer.byteLength(v);
    return bytes > MAX_ENV_VALUE_BYTES ? `the value is ${bytes} bytes; at most ${MAX_ENV_VALUE_BYTES} bytes (32 KiB) per environment variable` : undefined;
  },
  undefined,
  // maxLength counts characters, each at least one byte: the byte limit itself is decode()'s.
  (base) => ({ ...base, pattern: '^[^\\u0000]*$', maxLength: MAX_ENV_VALUE_BYTES }),
);

const environmentVariables: Type<Record<string, string>> = refine(dict(envValue, envName, { minLength: 1, pattern: '^[^=\\u0000]*$' }), (vars) => {
  let total = 0;
  for (const [k, v] of Object.entries(vars)) total += Buffer.byteLength(k) + Buffer.byteLength(v) + 2;
  return total > MAX_ENV_TOTAL_BYTES ? `the variables take ${total} bytes in all; at most ${MAX_ENV_TOTAL_BYTES} bytes (256 KiB) per deployment` : undefined;
});

const deploymentDocument = struct(
  {
    $schema: opt(text),
    name: req(nameField('deployment')),
    endpoint_name: { ...req(nameField('endpoint')), doc: 'The endpoint this deployment belongs to.' },
    type: opt(oneOf(['managed', 'kubernetes'])),
    description: opt(text),
    tags: opt(stringMap),
    properties: opt(stringMap),
    model: opt(model, { doc: 'A registered model (azureml:<name>:<version>) or an inline one ({path: ./model}).' }),
    model_mount_path: opt(str),
    code_configuration: opt(codeConfiguration, { doc: 'The scoring code: a folder (code) and the script in it that defines init() and run() (scoring_script).' }),
    environment: opt(environment, { doc: 'A registered environment (azureml:<name>:<version>) or an inline one (an image, or a build context).' }),
    environment_variables: opt(environmentVariables),
    // Optional on Kubernetes: the cluster's default instance type (§1.10).
    instance_type: { type: str, required: 'managed', doc: 'The VM size (e.g. Standard_DS3_v2); on Kubernetes the cluster\'s instance type, its default when absent.' },
    // Required with default scale settings (rule below); target_utilization starts at min_instances.
    instance_count: opt(int({ min: 1, max: (cx: Cx) => (cx.kind === 'managed' ? MAX_MANAGED_INSTANCES : undefined) }), {
      doc: 'How many instances serve the deployment; required unless scale_settings is target_utilization.',
    }),
    app_insights_enabled: opt(bool),
    scale_settings: opt(scaleSettings),
    request_settings: opt(requestSettings),
    liveness_probe: opt(probe('liveness')),
    readiness_probe: opt(probe('readiness')),
    egress_public_network_access: opt(oneOf(['enabled', 'disabled']), { only: 'managed' }),
    resources: opt(resources, { only: 'kubernetes' }),
    data_collector: opt(dataCollector),
    // Accepted, meaningless here: SDK-only experimental flag, and the output keys `show` prints (§1.4),
    // so a saved `show -o yaml` can be applied again.
    private_network_connection: opt(bool),
    id: opt(anything),
    provisioning_state: opt(anything),
    creation_context: opt(anything),
  },
  {
    check(raw, { has, issue, cx }) {
      const scaleType = has('scale_settings') ? raw.scale_settings?.type : 'default';
      if (scaleType === 'default' && !has('instance_count')) {
        issue('instance_count', cx.kind === 'managed' ? "missing required key 'instance_count'" : "missing required key 'instance_count' (required with default scale settings)");
      }
      if (cx.kind !== 'kubernetes') return;
      if (raw.name !== undefined && raw.endpoint_name !== undefined && raw.name.length + raw.endpoint_name.length > MAX_K8S_NAME_PAIR) {
        issue('name', `on Kubernetes the endpoint name and the deployment name together must be at most ${MAX_K8S_NAME_PAIR} characters long`);
      }
      // The SDK refuses registry assets for Kubernetes deployments (exit_if_registry_assets, §1.10).
      if (isRegistryRef(raw.model)) issue('model', 'registry models are not supported on Kubernetes deployments');
      if (isRegistryRef(raw.environment)) issue('environment', 'registry environments are not supported on Kubernetes deployments');
    },
  },
);

// unsafe-env.ts knows no schemas; its rule depends on the tags (an opt-in), so it stays decode()'s.
const checkedDocument = withSchema(refuseUnsafeEnvironment(deploymentDocument), (_base, sx) => schemaOf(deploymentDocument, sx));

export const deployment: Type<DeploymentSpec> = to(checkedDocument, (d, cx): DeploymentSpec => {
  const scale = d.scale_settings ?? { type: 'default' };
  return compact({
    name: d.name,
    endpointName: d.endpoint_name,
    type: cx.kind,
    description: d.description,
    tags: d.tags ?? {},
    properties: d.properties ?? {},
    model: d.model,
    modelMountPath: d.model_mount_path,
    codeConfiguration: d.code_configuration,
    environment: d.environment,
    environmentVariables: d.environment_variables ?? {},
    instanceType: d.instance_type ?? DEFAULT_K8S_INSTANCE_TYPE,
    // target_utilization without instance_count starts at min_instances (one instance when that is 0:
    // the autoscaler takes it to zero once idle).
    instanceCount: d.instance_count ?? (scale.type === 'target_utilization' ? Math.max(1, scale.minInstances) : 1),
    appInsightsEnabled: d.app_insights_enabled ?? false,
    scaleSettings: scale,
    requestSettings: { ...DEFAULT_REQUEST_SETTINGS, ...d.request_settings },
    livenessProbe: { ...DEFAULT_PROBE, ...d.liveness_probe },
    readinessProbe: { ...DEFAULT_PROBE, ...d.readiness_probe },
    ...(d.egress_public_network_access !== undefined ? { egressPublicNetworkAccess: d.egress_public_network_access } : {}),
    resources: d.resources,
    dataCollector: d.data_collector,
  });
});
