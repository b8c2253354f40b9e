// Pure: a deployment spec → the InstancePlan a backend runs (DESIGN.md "compile/").

import { createHash } from 'node:crypto';
import { basename, extname } from 'node:path';
import { InfergateError } from '../errors/index.js';
import type { InstancePlan } from '../ir/types.js';
import { formatAssetRef } from '../spec/assets.js';
import type { DeploymentSpec } from '../spec/types.js';

const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts']);

/**
 * Builds the instance plan of a deployment. Throws InfergateError('BadArgument') for what the spec allows
 * but this backend cannot serve yet, so the API can refuse the deployment before storing it.
 */
export function compileInstancePlan(spec: DeploymentSpec): InstancePlan {
  const where = `deployment '${spec.name}'`;
  if (!spec.codeConfiguration) {
    throw new InfergateError('BadArgument', `${where}: code_configuration is required (no-code MLflow and custom-container deployments are not supported yet)`);
  }
  if (spec.codeConfiguration.code.startsWith('azureml:')) {
    throw new InfergateError('BadArgument', `${where}: code '${spec.codeConfiguration.code}' refers to a registered code asset; give a local folder`);
  }
  const script = spec.codeConfiguration.scoringScript;
  const ext = extname(script).toLowerCase();
  const runtime = ext === '.py' ? 'python' : JS_EXTENSIONS.has(ext) ? 'javascript' : undefined;
  if (!runtime) {
    throw new InfergateError('BadArgument', `${where}: scoring_script '${script}' must be a Python (.py) or JavaScript/TypeScript (.js, .mjs, .cjs, .ts, .mts) file`);
  }

  let model: InstancePlan['model'];
  if (spec.model) {
    if (spec.model.kind !== 'inline') {
      const ref = spec.model.kind === 'uri' ? spec.model.uri : `azureml:${spec.model.name}${spec.model.version ? ':' + spec.model.version : '@' + spec.model.label}`;
      throw new InfergateError('BadArgument', `${where}: model '${ref}' refers to a registered model; registered assets are not supported yet, give model.path`);
    }
    // Azure mounts inline models at azureml-models/<name>/<version>; an anonymous model gets a
    // generated name, which scripts never depend on (they use AZUREML_MODEL_DIR).
    model = { name: spec.model.name ?? `${spec.endpointName}-${spec.name}-model`, version: spec.model.version ?? '1', path: spec.model.path };
  }

  let environment: InstancePlan['environment'] = {};
  if (spec.environment) {
    if (spec.environment.kind !== 'inline') {
      // With its version or label: a new environment version needs new instances (the revision changes).
      const ref = formatAssetRef(spec.environment);
      // A curated or registered environment names packages we cannot see: run on the host interpreter.
      environment = { image: ref };
    } else {
      environment = {
        ...(spec.environment.condaFile !== undefined ? { condaFile: spec.environment.condaFile } : {}),
        ...(spec.environment.image !== undefined ? { image: spec.environment.image } : {}),
      };
    }
  }

  const workerCount = Number.parseInt(spec.environmentVariables.WORKER_COUNT ?? '1', 10);
  const plan: Omit<InstancePlan, 'revision'> = {
    endpoint: spec.endpointName,
    deployment: spec.name,
    instanceCount: spec.instanceCount,
    runtime,
    ...(model ? { model } : {}),
    code: { path: spec.codeConfiguration.code, scoringScript: script },
    environment,
    environmentVariables: { ...spec.environmentVariables },
    workerCount: Number.isFinite(workerCount) && workerCount > 0 ? workerCount : 1,
    requestTimeoutMs: spec.requestSettings.requestTimeoutMs,
    livenessProbe: { ...spec.livenessProbe },
    readinessProbe: { ...spec.readinessProbe },
  };
  return { ...plan, revision: revisionOf(plan) };
}

/**
 * What needs new instances when it changes: everything in the plan except the instance count (a scale
 * changes how many run, not what they run) and the request timeout (the router enforces it).
 */
function revisionOf(plan: Omit<InstancePlan, 'revision'>): string {
  const { instanceCount: _count, requestTimeoutMs: _timeout, ...identity } = plan;
  return createHash('sha256').update(stableJson(identity)).digest('hex').slice(0, 10);
}

export function stableJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return '[' + value.map(stableJson).join(',') + ']';
  const keys = Object.keys(value as object).sort();
  return '{' + keys.map((k) => JSON.stringify(k) + ':' + stableJson((value as Record<string, unknown>)[k])).join(',') + '}';
}

/** Instance ids are stable per (deployment, revision, index) so that reconciling is idempotent. */
export function instanceId(plan: Pick<InstancePlan, 'endpoint' | 'deployment' | 'revision'>, index: number): string {
  return `${plan.endpoint}.${plan.deployment}.${plan.revision}.${index}`;
}

export function scriptName(plan: InstancePlan): string {
  return plan.code ? basename(plan.code.scoringScript) : '';
}
