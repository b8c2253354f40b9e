// `model` and `environment` in a deployment (contract §1.5, §1.6): each is either a reference string
// (`azureml:name:version`, `azureml:name@label`, `azureml://registries/...`, an ARM id) or an inline
// mapping. `code_configuration` lives here too: it is the third asset a deployment points at.

import { CONDA_FILE_LIMIT } from '../util/files.js';
import { localPath as localPathOnly, checkScript, scriptPath, type LocalPathRule } from './paths.js';
import {
  anyMap,
  byShape,
  compact,
  int,
  oneOf,
  opt,
  report,
  req,
  str,
  stringMap,
  struct,
  text,
  to,
  versionString,
  schemaOf,
  anyCase,
  withSchema,
  type Type,
} from './schema.js';
import type { EnvironmentRef, InferenceRoute, ModelRef } from './types.js';

/**
 * paths.ts's localPath with its schema: a non-empty string. Whether the file or folder exists is decode()'s
 * (it depends on the machine).
 */
export const localPath = (expect?: 'file' | 'folder', rule?: LocalPathRule): Type<string> => withSchema(localPathOnly(expect, rule), () => schemaOf(str));

type AssetRef = Extract<ModelRef, { kind: 'registered' | 'uri' }>;

const ARM_ID = /^(azureml:)?\/subscriptions\//i;
const REGISTERED = /^azureml:([A-Za-z0-9][A-Za-z0-9_.-]*)(?::([A-Za-z0-9_.-]+)|@([A-Za-z0-9_.-]+))?$/;

/** Reads an asset reference string; undefined when it is not one. */
export function parseAssetRef(s: string): AssetRef | undefined {
  if (s.startsWith('azureml://') || ARM_ID.test(s)) return { kind: 'uri', uri: s };
  const m = REGISTERED.exec(s);
  // `azureml:name` alone is allowed: the default (latest) version (ArmVersionedStr allow_default_version).
  return m ? compact({ kind: 'registered' as const, name: m[1], version: m[2], label: m[3] }) : undefined;
}

/** The reference string for a registered/uri asset: the inverse of parseAssetRef. */
export function formatAssetRef(ref: AssetRef): string {
  if (ref.kind === 'uri') return ref.uri;
  return `azureml:${ref.name}${ref.version !== undefined ? `:${ref.version}` : ref.label !== undefined ? `@${ref.label}` : ''}`;
}

/** What parseAssetRef reads, as a pattern (JSON Schema patterns take no flags: the ARM id's /i is spelt out). */
const ASSET_REF_PATTERN =
  `^(?:azureml://|(?:${anyCase('azureml:')})?/${anyCase('subscriptions')}/|` +
  'azureml:[A-Za-z0-9][A-Za-z0-9_.-]*(?::[A-Za-z0-9_.-]+|@[A-Za-z0-9_.-]+)?$)';

function assetRef(what: 'model' | 'environment'): Type<AssetRef> {
  return {
    label: `a ${what} reference`,
    schema: () => ({ type: 'string', pattern: ASSET_REF_PATTERN }),
    decode(node, path, cx) {
      const s = str.decode(node, path, cx);
      if (s === undefined) return undefined;
      return (
        parseAssetRef(s) ??
        report(
          cx,
          path,
          node,
          `'${s}' is not a ${what} reference (azureml:<name>:<version>, azureml:<name>@<label>, azureml://registries/..., ` +
            `or an ARM id); a local ${what} is written as a mapping, e.g. {${what === 'model' ? 'path: ./model' : 'image: ..., conda_file: ./conda.yaml'}}`,
        )
      );
    },
  };
}

// ---- model (§1.5) --------------------------------------------------------------------------------------

export const MODEL_TYPES = ['custom_model', 'mlflow_model', 'triton_model'] as const;

const inlineModel = to(
  struct({
    path: req(localPath()),
    name: opt(str),
    version: opt(versionString),
    type: opt(oneOf(MODEL_TYPES)),
    description: opt(text),
    tags: opt(stringMap),
    properties: opt(stringMap),
    flavors: opt(anyMap),
  }),
  (m): ModelRef =>
    compact({
      kind: 'inline' as const,
      path: m.path,
      name: m.name,
      version: m.version,
      type: m.type ?? 'custom_model',
      description: m.description,
      tags: m.tags,
      properties: m.properties,
      flavors: m.flavors,
    }),
);

export const model: Type<ModelRef> = byShape('a model reference or an inline model mapping', { scalar: assetRef('model'), map: inlineModel });

// ---- environment (§1.6) --------------------------------------------------------------------------------

const route: Type<InferenceRoute> = to(struct({ port: req(int({ min: 1, max: 65535 })), path: req(str) }), (r) => ({ port: r.port, path: r.path }));

export const inferenceConfig = to(
  // All three routes are required when inference_config is given (custom containers).
  struct({ liveness_route: req(route), readiness_route: req(route), scoring_route: req(route) }),
  (c) => ({ livenessRoute: c.liveness_route, readinessRoute: c.readiness_route, scoringRoute: c.scoring_route }),
);

export const build = to(struct({ path: req(localPath('folder')), dockerfile_path: opt(str) }), (b) => ({
  path: b.path,
  dockerfilePath: b.dockerfile_path ?? 'Dockerfile',
}));

/** `conda_file`: a path (relative to the YAML file) or the conda file's content given inline. */
export const condaFile = byShape('a conda file path or an inline conda mapping', {
  // Checked from stat here, so the CLI says so before sending anything; the server reads at most this much.
  scalar: localPath('file', { maxBytes: CONDA_FILE_LIMIT }),
  map: anyMap,
});

export const IN_CONDA_FILE = "belongs in the conda file (conda_file), not directly under 'environment'";

/** The keys of an environment, inline under a deployment's `environment:` and as an asset document. */
export const ENVIRONMENT_FIELDS = {
  description: opt(text),
  tags: opt(stringMap),
  image: opt(str),
  conda_file: opt(condaFile),
  build: opt(build),
  os_type: opt(oneOf(['linux', 'windows'])),
  inference_config: opt(inferenceConfig),
  datastore: opt(str),
};

const inlineEnvironment = to(
  struct(
    {
      name: opt(str),
      version: opt(versionString),
      ...ENVIRONMENT_FIELDS,
    },
    {
      deny: { channels: `'channels' ${IN_CONDA_FILE}`, dependencies: `'dependencies' ${IN_CONDA_FILE}` },
      check(_raw, { has, issue }) {
        if (has('image') && has('build')) issue('build', "'image' and 'build' cannot both be given: an environment is either an image or a build context");
        if (!has('image') && !has('build')) issue(null, "an inline environment needs 'image' or 'build'");
      },
    },
  ),
  (e): EnvironmentRef =>
    compact({
      kind: 'inline' as const,
      name: e.name,
      version: e.version,
      description: e.description,
      tags: e.tags,
      image: e.image,
      condaFile: e.conda_file,
      build: e.build,
      osType: e.os_type ?? 'linux',
      inferenceConfig: e.inference_config,
      datastore: e.datastore,
    }),
);

export const environment: Type<EnvironmentRef> = byShape('an environment reference or an inline environment mapping', {
  scalar: assetRef('environment'),
  map: inlineEnvironment,
});

// ---- code_configuration (§1.4) -------------------------------------------------------------------------

export const codeConfiguration = to(
  struct(
    { code: req(localPath('folder')), scoring_script: req(scriptPath) },
    {
      check(raw, { issue }) {
        const problem = raw.code !== undefined && raw.scoring_script !== undefined ? checkScript(raw.code, raw.scoring_script) : undefined;
        if (problem) issue('scoring_script', problem);
      },
    },
  ),
  (c) => ({ code: c.code, scoringScript: c.scoring_script }),
);
