// Entry points: YAML text (CLI `-f`) and plain objects (REST bodies) go through the same tree and the
// same rules; only the origin of positions differs.

import { dirname, resolve } from 'node:path';
import type { Problem } from '../errors/index.js';
import { deployment } from './deployment.js';
import { endpoint } from './endpoint.js';
import { applyOverridesToTree } from './overrides.js';
import { matchEnum, type Cx, type Kind, type Type } from './schema.js';
import { fromValue, isNull, parseYamlTree, type SNode } from './tree.js';
import type { DeploymentSpec, EndpointSpec } from './types.js';

/** A spec when there are no problems; otherwise every problem found, in document order. */
export interface LoadResult<T> {
  spec?: T;
  problems: Problem[];
}

export interface ObjectContext {
  /** Named in every problem's `file` (e.g. `PUT /endpoints/my-endpoint`). */
  source: string;
  /** Directory for relative paths; without it a relative path is a problem. */
  baseDir?: string;
  /** 'uploads' for documents from API clients: paths refused, upload references only (Cx.paths). */
  paths?: 'local' | 'uploads';
  /** With 'uploads': by key path, paths already stored for this document, accepted unchanged at that key (Cx.storedPaths). */
  storedPaths?: ReadonlyMap<string, string>;
}

interface Document<T> {
  what: 'endpoint' | 'deployment';
  type: Type<T>;
  /** The kind is decided before validation, from the document itself (contract §1.1). */
  kindOf(root: SNode): Kind;
}

const entry = (root: SNode, key: string): SNode | undefined =>
  root.kind === 'map' ? root.entries.filter((e) => e.key === key).pop()?.value : undefined;

const ENDPOINT: Document<EndpointSpec> = {
  what: 'endpoint',
  type: endpoint,
  kindOf: (root) => {
    const compute = entry(root, 'compute');
    return compute && !isNull(compute) ? 'kubernetes' : 'managed';
  },
};

const DEPLOYMENT: Document<DeploymentSpec> = {
  what: 'deployment',
  type: deployment,
  kindOf: (root) => {
    const type = entry(root, 'type');
    const kubernetes = type?.kind === 'scalar' && typeof type.value === 'string' && matchEnum(['kubernetes'], type.value);
    return kubernetes ? 'kubernetes' : 'managed';
  },
};

function byPosition(a: Problem, b: Problem): number {
  return (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0);
}

function validate<T>(doc: Document<T>, root: SNode, file: string, baseDir: string | undefined, problems: Problem[], paths?: 'local' | 'uploads', storedPaths?: ReadonlyMap<string, string>): LoadResult<T> {
  const cx: Cx = { file, ...(baseDir ? { baseDir } : {}), ...(paths ? { paths } : {}), ...(storedPaths ? { storedPaths } : {}), kind: doc.kindOf(root), what: doc.what, problems };
  const spec = doc.type.decode(root, '', cx);
  return result(spec, problems);
}

function result<T>(spec: T | undefined, problems: Problem[]): LoadResult<T> {
  problems.sort(byPosition); // stable: equal positions keep the order they were found in
  return problems.length === 0 && spec !== undefined ? { spec, problems } : { problems };
}

function loadYaml<T>(doc: Document<T>, text: string, file: string, overrides: readonly string[]): LoadResult<T> {
  const { root, problems, trusted } = parseYamlTree(text, file);
  const tree = applyOverridesToTree(root, overrides, problems);
  if (!trusted) return result<T>(undefined, problems);
  return validate(doc, tree, file, dirname(resolve(file)), problems);
}

/** Reads an endpoint YAML (`az ml online-endpoint create -f`), with `--set` overrides applied first. */
export function loadEndpointYaml(text: string, file: string, overrides: readonly string[] = []): LoadResult<EndpointSpec> {
  return loadYaml(ENDPOINT, text, file, overrides);
}

/** Reads a deployment YAML (`az ml online-deployment create -f`), with `--set` overrides applied first. */
export function loadDeploymentYaml(text: string, file: string, overrides: readonly string[] = []): LoadResult<DeploymentSpec> {
  return loadYaml(DEPLOYMENT, text, file, overrides);
}

/** Validates an endpoint given as a plain snake_case object (REST body, or a dump with overrides). */
export function parseEndpointObject(obj: unknown, ctx: ObjectContext): LoadResult<EndpointSpec> {
  return validate(ENDPOINT, fromValue(obj), ctx.source, ctx.baseDir, [], ctx.paths);
}

/** Validates a deployment given as a plain snake_case object (REST body, or a dump with overrides). */
export function parseDeploymentObject(obj: unknown, ctx: ObjectContext): LoadResult<DeploymentSpec> {
  return validate(DEPLOYMENT, fromValue(obj), ctx.source, ctx.baseDir, [], ctx.paths, ctx.storedPaths);
}
