// `infergate [ml] model ...` and `infergate [ml] environment ...`: `az ml model` / `az ml environment`
// verbs and flags (create, show, list, archive, restore), so scripts that register assets before
// deploying them run with `az` replaced by `infergate`. The YAML is read and validated here (problems
// with file:line:column), the files it names uploaded (cli/uploads.ts) and the document sent with
// upload references in their place; the server stores them in the workspace's asset store (api/assets.ts).

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Command, Option } from 'commander';
import { parse as parseYaml } from 'yaml';
import { type Json } from '../client/index.js';
import { errorOf } from '../errors/index.js';
import {
  applyOverrides,
  dumpEnvironmentAsset,
  dumpModelAsset,
  loadEnvironmentYaml,
  loadModelYaml,
  parseEnvironmentObject,
  parseModelObject,
  type LoadResult,
} from '../spec/index.js';
import { collect, common, emit, fail, readYaml, serverClient, type CommonOptions } from './common.js';
import { uploadEnvironmentAsset, uploadModelAsset, withUploads } from './uploads.js';

const enc = encodeURIComponent;

/** A `key=value` override whose value is taken literally (quoted), for flags such as --description. */
const literal = (key: string, value: string): string => `${key}=${JSON.stringify(value)}`;

/** The --set overrides, then every flag that was given as a literal override of its YAML key. */
const overridesOf = (set: string[] | undefined, flags: [key: string, value: string | undefined][]): string[] => [
  ...(set ?? []),
  ...flags.flatMap(([key, value]) => (value === undefined ? [] : [literal(key, value)])),
];

/** The document of a create: the file (if any) with the flags applied on top, or the flags alone. */
function loadDocument<T>(
  what: 'model' | 'environment',
  file: string | undefined,
  overrides: string[],
  fromYaml: (text: string, path: string, overrides: string[]) => LoadResult<T>,
  fromObject: (doc: unknown, ctx: { source: string; baseDir: string }) => LoadResult<T>,
): T {
  let result: LoadResult<T>;
  if (file) {
    const { text, path } = readYaml(file);
    result = fromYaml(text, path, overrides);
  } else {
    const doc: Record<string, unknown> = {};
    const problems = applyOverrides(doc, overrides);
    result = problems.length ? { problems } : fromObject(doc, { source: 'the command line', baseDir: process.cwd() });
  }
  if (!result.spec || result.problems.length) fail(result.problems, `The ${what}`);
  return result.spec;
}

interface ListFlags extends CommonOptions {
  name?: string;
  includeArchived?: boolean;
  archivedOnly?: boolean;
  includeAnonymous?: boolean;
}

/** show, list, archive and restore are the same for both kinds. */
function sharedCommands(group: Command, kind: 'model' | 'environment'): void {
  const base = `/api/${kind}s`;

  common(group.command('show').description(`Show a ${kind} version (by --version or --label)`))
    .requiredOption('-n, --name <name>', `${kind} name`)
    .option('-v, --version <version>', 'version')
    .option('-l, --label <label>', "label: 'latest' (the newest version that is not archived)")
    .action(async (o: CommonOptions & { name: string; version?: string; label?: string }) => {
      if ((o.version === undefined) === (o.label === undefined)) throw errorOf('VersionOrLabel');
      const path = o.version !== undefined ? `${base}/${enc(o.name)}/versions/${enc(o.version)}` : `${base}/${enc(o.name)}/labels/${enc(o.label!)}`;
      emit(await serverClient(o).request<Json>('GET', path), o);
    });

  common(group.command('list').description(`List ${kind}s (the latest version of each), or with --name that ${kind}'s versions, newest first`))
    .option('-n, --name <name>', `list this ${kind}'s versions`)
    .option('--include-archived', 'include archived versions')
    .option('--archived-only', 'only archived versions')
    .option('--include-anonymous', `include the ${kind}s registered for inline definitions in deployments`)
    .action(async (o: ListFlags) => {
      const q = new URLSearchParams();
      if (o.name !== undefined) q.set('name', o.name);
      if (o.includeArchived) q.set('include_archived', 'true');
      if (o.archivedOnly) q.set('archived_only', 'true');
      if (o.includeAnonymous) q.set('include_anonymous', 'true');
      const qs = q.toString();
      emit(await serverClient(o).request<Json[]>('GET', `${base}${qs ? `?${qs}` : ''}`), o);
    });

  for (const [verb, summary] of [
    ['archive', `Archive a ${kind} version: @latest and lists skip it, its explicit version still works`],
    ['restore', `Restore an archived ${kind} version`],
  ] as const) {
    common(group.command(verb).description(summary))
      .requiredOption('-n, --name <name>', `${kind} name`)
      .requiredOption('-v, --version <version>', 'version')
      .action(async (o: CommonOptions & { name: string; version: string }) => {
        // az prints nothing on success.
        await serverClient(o).request<Json>('POST', `${base}/${enc(o.name)}/versions/${enc(o.version)}/${verb}`);
      });
  }
}

function modelCommands(program: Command): void {
  const group = program.command('model').description('Manage registered models (az ml model)');
  common(group.command('create').description('Register a model version (copies the file or folder into the workspace)'))
    .option('-n, --name <name>', 'model name (overrides the file)')
    .option('-v, --version <version>', 'version (default: the next integer after the highest one)')
    .option('-p, --path <path>', 'model file or folder (overrides the file)')
    .option('-f, --file <yaml>', 'model YAML (Azure ML CLI v2 schema)')
    .addOption(new Option('--type <type>', 'model type').choices(['custom_model', 'mlflow_model', 'triton_model']))
    .option('-d, --description <text>', 'description')
    .option('--set <key=value...>', 'override a YAML key before validation', collect)
    .action(async (o: CommonOptions & { name?: string; version?: string; path?: string; file?: string; type?: string; description?: string; set?: string[] }) => {
      const overrides = overridesOf(o.set, [
        ['name', o.name],
        ['version', o.version],
        ['path', o.path === undefined ? undefined : resolve(o.path)],
        ['type', o.type],
        ['description', o.description],
      ]);
      const spec = withMlflowFlavors(loadDocument('model', o.file, overrides, loadModelYaml, parseModelObject));
      const c = serverClient(o);
      emit(await c.request<Json>('POST', '/api/models', dumpModelAsset(await withUploads(c, (up) => uploadModelAsset(spec, up)))), o);
    });
  sharedCommands(group, 'model');
}

/**
 * An mlflow_model is registered with the flavors of its MLmodel file (as Azure records them), unless the
 * YAML gives its own; a folder without one is refused here, before anything is uploaded.
 */
function withMlflowFlavors<T extends { type?: string; path: string; flavors?: Record<string, unknown> }>(spec: T): T {
  if (spec.type !== 'mlflow_model' || spec.flavors !== undefined) return spec;
  const file = join(spec.path, 'MLmodel');
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    const missing = (e as NodeJS.ErrnoException).code === 'ENOENT' || (e as NodeJS.ErrnoException).code === 'ENOTDIR';
    const message = missing ? `mlflow_model '${spec.path}' has no MLmodel file (looked for ${file})` : `${file} is not a readable MLmodel file: ${(e as Error).message.split('\n')[0]}`;
    return fail([{ path: 'path', message }], 'The model');
  }
  const flavors = typeof doc === 'object' && doc !== null ? (doc as { flavors?: unknown }).flavors : undefined;
  return typeof flavors === 'object' && flavors !== null && !Array.isArray(flavors) ? { ...spec, flavors: flavors as Record<string, unknown> } : spec;
}

function environmentCommands(program: Command): void {
  const group = program.command('environment').description('Manage registered environments (az ml environment)');
  common(group.command('create').description('Register an environment version (stores its conda file in the workspace)'))
    .option('-n, --name <name>', 'environment name (overrides the file)')
    .option('-v, --version <version>', 'version (default: the next integer after the highest one)')
    .option('-f, --file <yaml>', 'environment YAML (Azure ML CLI v2 schema)')
    .option('--conda-file <path>', 'conda file (overrides the file)')
    .option('-i, --image <image>', 'Docker image (overrides the file)')
    .option('-d, --description <text>', 'description')
    .option('--set <key=value...>', 'override a YAML key before validation', collect)
    .action(async (o: CommonOptions & { name?: string; version?: string; file?: string; condaFile?: string; image?: string; description?: string; set?: string[] }) => {
      const overrides = overridesOf(o.set, [
        ['name', o.name],
        ['version', o.version],
        ['conda_file', o.condaFile === undefined ? undefined : resolve(o.condaFile)],
        ['image', o.image],
        ['description', o.description],
      ]);
      const spec = loadDocument('environment', o.file, overrides, loadEnvironmentYaml, parseEnvironmentObject);
      const c = serverClient(o);
      emit(await c.request<Json>('POST', '/api/environments', dumpEnvironmentAsset(await withUploads(c, (up) => uploadEnvironmentAsset(spec, up)))), o);
    });
  sharedCommands(group, 'environment');
}

/** Adds `model` and `environment` to the program (called from main.ts's buildProgram). */
export function assetCommands(program: Command): void {
  // `-v, --version <version>` is an option of these commands (as in az); without positional options the
  // program's own `--version` would take it wherever it stands and print infergate's version instead.
  program.enablePositionalOptions();
  modelCommands(program);
  environmentCommands(program);
}
