// Model and environment asset documents: what `az ml model create -f model.yml` and
// `az ml environment create -f environment.yml` read (contract §1.5 ModelSchema, §1.6 environment keys),
// and back. Same tree, same rules and same problem reporting as the endpoint and deployment documents.

import { dirname, resolve } from 'node:path';
import type { Problem } from '../errors/index.js';
import { ENVIRONMENT_FIELDS, IN_CONDA_FILE, localPath, MODEL_TYPES } from './assets.js';
import { dumpEnvironmentFields, nonEmpty } from './dump.js';
import type { LoadResult, ObjectContext } from './load.js';
import { applyOverridesToTree } from './overrides.js';
import { isReference } from './paths.js';
import { anyMap, compact, oneOf, opt, refine, req, str, stringMap, struct, text, to, versionString, type Cx, type Type } from './schema.js';
import { fromValue, parseYamlTree, type SNode } from './tree.js';
import type { EnvironmentAssetSpec, ModelAssetSpec } from './types.js';

/** Azure's asset names: letters, digits, '-', '_' and '.', starting with a letter or digit. */
export const ASSET_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
export const MAX_ASSET_NAME_LENGTH = 255;
/** Versions are explicit strings; they name a folder in the asset store, so the same characters as names. */
export const MAX_ASSET_VERSION_LENGTH = 64;

/** The problem with an asset name, or undefined when it is fine. */
export function validateAssetName(name: string): string | undefined {
  if (name.length > MAX_ASSET_NAME_LENGTH || !ASSET_NAME_PATTERN.test(name)) {
    return `asset name '${name}' is not valid: use letters, digits, '-', '_' and '.', start with a letter or digit, at most ${MAX_ASSET_NAME_LENGTH} characters`;
  }
  return undefined;
}

/** The problem with an asset version, or undefined when it is fine. */
export function validateAssetVersion(version: string): string | undefined {
  if (version.length > MAX_ASSET_VERSION_LENGTH || !ASSET_NAME_PATTERN.test(version)) {
    return `asset version '${version}' is not valid: use letters, digits, '-', '_' and '.', start with a letter or digit, at most ${MAX_ASSET_VERSION_LENGTH} characters`;
  }
  return undefined;
}

const assetName: Type<string> = refine(str, validateAssetName, 'an asset name', (base) => ({ ...base, maxLength: MAX_ASSET_NAME_LENGTH, pattern: ASSET_NAME_PATTERN.source }));
// `version: 1` is a number: its digits always fit the pattern, so only strings are checked.
const assetVersion: Type<string> = refine(versionString, validateAssetVersion, 'an asset version', (base) => ({
  ...base,
  maxLength: MAX_ASSET_VERSION_LENGTH,
  pattern: ASSET_NAME_PATTERN.source,
  minimum: 0,
}));

/** A local path to register: references (azureml://..., https://...) name remote data this machine cannot copy. */
const localAssetPath: Type<string> = refine(localPath(), (p) =>
  isReference(p) ? `'${p}' is a remote location; only a local file or folder can be registered here` : undefined,
);

// ---- model ---------------------------------------------------------------------------------------------

export const modelDocument: Type<ModelAssetSpec> = to(
  struct({
    $schema: opt(text),
    name: req(assetName),
    version: opt(assetVersion),
    path: req(localAssetPath),
    type: opt(oneOf(MODEL_TYPES)),
    description: opt(text),
    tags: opt(stringMap),
    properties: opt(stringMap),
    flavors: opt(anyMap),
    // What `model show` prints, so a saved `show -o yaml` can be registered again as a new version.
    stage: opt(text),
    id: opt(text),
    creation_context: opt(anyMap),
  }),
  (m): ModelAssetSpec =>
    compact({
      name: m.name,
      version: m.version,
      path: m.path,
      type: m.type ?? 'custom_model',
      description: m.description,
      tags: m.tags ?? {},
      properties: m.properties ?? {},
      flavors: m.flavors,
    }),
);

// ---- environment ---------------------------------------------------------------------------------------

export const environmentDocument: Type<EnvironmentAssetSpec> = to(
  struct(
    {
      $schema: opt(text),
      name: req(assetName),
      version: opt(assetVersion),
      ...ENVIRONMENT_FIELDS,
      id: opt(text),
      creation_context: opt(anyMap),
      stage: opt(text),
    },
    {
      deny: { channels: `'channels' ${IN_CONDA_FILE}`, dependencies: `'dependencies' ${IN_CONDA_FILE}` },
      check(_raw, { has, issue }) {
        // Azure: "Docker image or Dockerfile is required for environments".
        if (has('image') && has('build')) issue('build', "'image' and 'build' cannot both be given: an environment is either an image or a build context");
        if (!has('image') && !has('build')) issue(null, "an environment needs 'image' or 'build' (a Docker image, or a build context with a Dockerfile)");
      },
    },
  ),
  (e): EnvironmentAssetSpec =>
    compact({
      name: e.name,
      version: e.version,
      description: e.description,
      tags: e.tags ?? {},
      image: e.image,
      condaFile: e.conda_file,
      build: e.build,
      osType: e.os_type ?? 'linux',
      inferenceConfig: e.inference_config,
    }),
);

// ---- entry points --------------------------------------------------------------------------------------

interface AssetDocument<T> {
  what: 'model' | 'environment';
  type: Type<T>;
}

const MODEL: AssetDocument<ModelAssetSpec> = { what: 'model', type: modelDocument };
const ENVIRONMENT: AssetDocument<EnvironmentAssetSpec> = { what: 'environment', type: environmentDocument };

function validate<T>(doc: AssetDocument<T>, root: SNode, file: string, baseDir: string | undefined, problems: Problem[], paths?: 'local' | 'uploads'): LoadResult<T> {
  const cx: Cx = { file, ...(baseDir ? { baseDir } : {}), ...(paths ? { paths } : {}), kind: 'managed', what: doc.what, problems };
  const spec = doc.type.decode(root, '', cx);
  problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
  return problems.length === 0 && spec !== undefined ? { spec, problems } : { problems };
}

function loadYaml<T>(doc: AssetDocument<T>, text: string, file: string, overrides: readonly string[]): LoadResult<T> {
  const { root, problems, trusted } = parseYamlTree(text, file);
  const tree = applyOverridesToTree(root, overrides, problems);
  if (!trusted) return { problems };
  return validate(doc, tree, file, dirname(resolve(file)), problems);
}

/** Reads a model YAML (`az ml model create -f`), with `--set` overrides applied first. */
export function loadModelYaml(text: string, file: string, overrides: readonly string[] = []): LoadResult<ModelAssetSpec> {
  return loadYaml(MODEL, text, file, overrides);
}

/** Reads an environment YAML (`az ml environment create -f`), with `--set` overrides applied first. */
export function loadEnvironmentYaml(text: string, file: string, overrides: readonly string[] = []): LoadResult<EnvironmentAssetSpec> {
  return loadYaml(ENVIRONMENT, text, file, overrides);
}

/** Validates a model given as a plain snake_case object (REST body, or flags turned into a document). */
export function parseModelObject(obj: unknown, ctx: ObjectContext): LoadResult<ModelAssetSpec> {
  return validate(MODEL, fromValue(obj), ctx.source, ctx.baseDir, [], ctx.paths);
}

/** Validates an environment given as a plain snake_case object. */
export function parseEnvironmentObject(obj: unknown, ctx: ObjectContext): LoadResult<EnvironmentAssetSpec> {
  return validate(ENVIRONMENT, fromValue(obj), ctx.source, ctx.baseDir, [], ctx.paths);
}


/** The model document back (paths absolute): the inverse of parseModelObject. */
export function dumpModelAsset(spec: ModelAssetSpec): Record<string, unknown> {
  return compact({
    name: spec.name,
    version: spec.version,
    path: spec.path,
    type: spec.type,
    description: spec.description,
    tags: nonEmpty(spec.tags),
    properties: nonEmpty(spec.properties),
    flavors: spec.flavors && structuredClone(spec.flavors),
  });
}

/** The environment document back (paths absolute): the inverse of parseEnvironmentObject. */
export function dumpEnvironmentAsset(spec: EnvironmentAssetSpec): Record<string, unknown> {
  return dumpEnvironmentFields(spec);
}
