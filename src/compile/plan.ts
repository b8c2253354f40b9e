// Pure: a deployment spec → the InstancePlan a backend runs (DESIGN.md "compile/").

import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { errorOf, type InfergateError } from '../errors/index.js';
import type { InstancePlan } from '../ir/types.js';
import { formatAssetRef } from '../spec/assets.js';
import type { AssetVersion, DeploymentSpec } from '../spec/types.js';
import { LABELS, type AssetLookup } from '../store/assets.js';
import { batchingOf, compileNoCode, type NoCodeModel } from './no-code.js';
import { instanceResources } from './sku.js';
import type { AssetQuery, EnvironmentAsset } from '../store/types.js';

const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts']);

/**
 * Builds the instance plan of a deployment. Throws InfergateError('BadArgument') for what the spec allows
 * but this backend cannot serve yet, and InfergateError('AssetNotFound') for a model or environment
 * reference that does not resolve, so the API can refuse the deployment before storing it.
 *
 * `assets` resolves registered models and environments (the workspace's asset store). The versions the
 * deployment was resolved to when it was created or updated (`spec.resolvedAssets`) win over the
 * reference as written, so `@latest` does not move under a running deployment. Without `assets` (no
 * workspace) a registered model is refused and a registered environment is kept as a reference that the
 * backend treats like an image.
 */
export function compileInstancePlan(spec: DeploymentSpec, assets?: AssetLookup, options: { compute?: string } = {}): InstancePlan {
  const where = `deployment '${spec.name}'`;
  const model = compileModel(spec, where, assets);
  const environment = compileEnvironment(spec, where, assets);
  // A custom container (inference_config) runs its image as it is: no scoring script needed (Azure's
  // custom-container examples have no code_configuration).
  const custom = environment.inferenceConfig !== undefined;
  // No scoring script and an MLflow or Triton model: infergate's own loaders serve it (docs/no-code.md).
  const noCodeType = !spec.codeConfiguration && !custom && model && (model.type === 'mlflow_model' || model.type === 'triton_model') ? model.type : undefined;
  const batching = batchingOf(spec.properties, where);
  if (batching && !noCodeType) throw errorOf('BatchingNeedsNoCode', { where });
  if (!spec.codeConfiguration && !custom && !noCodeType) {
    throw errorOf('CodeConfigurationRequired', { where });
  }
  if (spec.codeConfiguration?.code.startsWith('azureml:')) {
    throw errorOf('CodeAssetUnsupported', { where, code: spec.codeConfiguration.code });
  }
  let runtime: InstancePlan['runtime'] = 'container';
  let noCode: InstancePlan['noCode'];
  if (noCodeType) {
    noCode = compileNoCode(model!, where, batching);
    runtime = noCode.kind;
  } else if (!custom) {
    const script = spec.codeConfiguration!.scoringScript;
    const ext = extname(script).toLowerCase();
    const kind = ext === '.py' ? 'python' : JS_EXTENSIONS.has(ext) ? 'javascript' : undefined;
    if (!kind) throw errorOf('ScoringScriptKind', { where, script });
    runtime = kind;
  }

  const workerCount = Number.parseInt(spec.environmentVariables.WORKER_COUNT ?? '1', 10);
  const plan: Omit<InstancePlan, 'revision'> = {
    endpoint: spec.endpointName,
    deployment: spec.name,
    instanceCount: spec.instanceCount,
    runtime,
    ...(model ? { model: { name: model.name, version: model.version, path: model.path } } : {}),
    ...(noCode ? { noCode } : {}),
    ...(spec.codeConfiguration ? { code: { path: spec.resolvedAssets?.code?.path ?? spec.codeConfiguration.code, scoringScript: spec.codeConfiguration.scoringScript } } : {}),
    environment,
    instanceType: spec.instanceType,
    resources: instanceResources(spec.instanceType, spec.resources),
    // A network only when asked for in so many words (the docker backend's default is none; Azure's
    // default 'enabled' is what `show` prints, dump.ts).
    egress: spec.egressPublicNetworkAccess === 'enabled',
    ...(spec.modelMountPath !== undefined ? { modelMountPath: spec.modelMountPath } : {}),
    environmentVariables: { ...spec.environmentVariables },
    workerCount: Number.isFinite(workerCount) && workerCount > 0 ? workerCount : 1,
    requestTimeoutMs: spec.requestSettings.requestTimeoutMs,
    livenessProbe: { ...spec.livenessProbe },
    readinessProbe: { ...spec.readinessProbe },
    // Only where there is one, so plans (and revisions) of local deployments are what they were.
    ...(options.compute !== undefined ? { compute: computeName(options.compute) } : {}),
    ...(spec.type === 'kubernetes' && spec.resources ? { kubernetesResources: JSON.parse(JSON.stringify(spec.resources)) as NonNullable<InstancePlan['kubernetesResources']> } : {}),
  };
  return { ...plan, revision: revisionOf(plan) };
}

function compileModel(spec: DeploymentSpec, where: string, assets: AssetLookup | undefined): NoCodeModel | undefined {
  const m = spec.model;
  if (!m) return undefined;
  const pin = spec.resolvedAssets?.model;
  if (m.kind === 'uri') {
    throw errorOf('ModelOutsideWorkspace', { where, uri: m.uri });
  }
  if (m.kind === 'registered') {
    const ref = formatAssetRef(m);
    if (!assets) throw errorOf('RegisteredModelWithoutStore', { where, ref });
    const query: AssetQuery = pin ?? m;
    const asset = assets.model(query);
    if (!asset) throw assetNotFound(where, 'model', ref, query);
    return { name: asset.name, version: asset.version, path: asset.path, type: asset.type };
  }
  // Inline: registered anonymously when the deployment was stored; the registered copy is what runs, so a
  // later change to the source folder does not change the deployment. Azure mounts inline models at
  // azureml-models/<name>/<version>; scripts never depend on the name (they use AZUREML_MODEL_DIR).
  const stored = pin && assets ? assets.model(pin) : undefined;
  if (pin && assets && !stored) throw assetNotFound(where, 'model', `${m.path} (registered as ${pin.name}:${pin.version})`, pin);
  return { name: m.name ?? `${spec.endpointName}-${spec.name}-model`, version: m.version ?? '1', path: stored?.path ?? m.path, type: m.type ?? 'custom_model' };
}

function compileEnvironment(spec: DeploymentSpec, where: string, assets: AssetLookup | undefined): InstancePlan['environment'] {
  const e = spec.environment;
  if (!e) return {};
  const pin = spec.resolvedAssets?.environment;
  // A curated or registry environment names packages we cannot see: the backend runs it on the host
  // interpreter. With its version or label in the reference, a new version still needs new instances.
  if (e.kind === 'uri') return { image: e.uri };
  if (e.kind === 'registered') {
    const ref = formatAssetRef(e);
    if (!assets) return { image: ref };
    const query: AssetQuery = pin ?? e;
    const asset = assets.environment(query);
    if (!asset) throw assetNotFound(where, 'environment', ref, query);
    return environmentOf(asset);
  }
  const stored = pin && assets ? assets.environment(pin) : undefined;
  if (pin && assets && !stored) throw assetNotFound(where, 'environment', `inline environment (registered as ${pin.name}:${pin.version})`, pin);
  if (stored) return environmentOf(stored);
  return environmentOf({ condaFile: e.condaFile, image: e.image, build: e.build, inferenceConfig: e.inferenceConfig });
}

function environmentOf(asset: Pick<EnvironmentAsset, 'image' | 'build' | 'inferenceConfig'> & { condaFile?: string | Record<string, unknown>; conda?: Record<string, unknown> }): InstancePlan['environment'] {
  const condaFile = asset.condaFile ?? asset.conda;
  const ic = asset.inferenceConfig;
  return {
    ...(condaFile !== undefined ? { condaFile } : {}),
    ...(asset.image !== undefined ? { image: asset.image } : {}),
    ...(asset.build !== undefined ? { build: { path: asset.build.path, dockerfilePath: asset.build.dockerfilePath } } : {}),
    ...(ic !== undefined ? { inferenceConfig: { liveness: { ...ic.livenessRoute }, readiness: { ...ic.readinessRoute }, scoring: { ...ic.scoringRoute } } } : {}),
  };
}

function assetNotFound(where: string, kind: 'model' | 'environment', ref: string, query: AssetQuery | AssetVersion): InfergateError {
  const q = query as AssetQuery;
  let why: string;
  if (q.version !== undefined) why = `no ${kind} ${q.name} version ${q.version} is registered`;
  else if (q.label !== undefined && !(LABELS as readonly string[]).includes(q.label)) why = `label '${q.label}' does not exist (labels: ${LABELS.join(', ')})`;
  else why = `no ${kind} ${q.name} is registered, or every version of it is archived (@latest skips archived versions)`;
  return errorOf('AssetUnresolved', { where, kind, ref, reason: why, name: q.name });
}

/**
 * What needs new instances when it changes: everything in the plan except the instance count (a scale
 * changes how many run, not what they run), the request timeout (the router enforces it) and the compute.
 */
export function revisionOf(plan: Omit<InstancePlan, 'revision'>): string {
  // The compute: where instances run, not what they run (an endpoint's compute cannot change on update).
  const { instanceCount: _count, requestTimeoutMs: _timeout, compute: _compute, ...identity } = plan;
  return createHash('sha256').update(stableJson(identity)).digest('hex').slice(0, 10);
}

export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(stableJson).join(',') + ']';
  const keys = Object.keys(value as object).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + stableJson((value as Record<string, unknown>)[k])).join(',') + '}';
}

/** The compute's name from an endpoint's `compute` (`azureml:<name>`, its ARM id, or the bare name), lower-cased. */
export function computeName(ref: string): string {
  return ref.trim().replace(/^azureml:/i, '').replace(/^.*\/computes\//i, '').toLowerCase();
}

/** Instance ids are stable per (deployment, revision, index) so that reconciling is idempotent. */
export function instanceId(plan: Pick<InstancePlan, 'endpoint' | 'deployment' | 'revision'>, index: number): string {
  return `${plan.endpoint}.${plan.deployment}.${plan.revision}.${index}`;
}

export function scriptName(plan: InstancePlan): string {
  return plan.code ? basename(plan.code.scoringScript) : '';
}
