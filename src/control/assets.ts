// Versioned assets (DESIGN.md vocabulary): registered models and environments, the routes behind
// `infergate ml model ...` / `infergate ml environment ...`, and the resolution of a deployment's
// `model:` and `environment:` when it is created or updated.
//
// The asset store: `<workspace>/assets/models/<name>/<version>/<file or folder name>` holds a copy of a
// registered model, `<workspace>/assets/environments/<name>/<version>/conda.yaml` the conda file of an
// environment (with the local files its pip list names beside it), so later changes to the sources change
// no asset. Assets are immutable: a name:version is registered once; `archive` hides a version from
// `@latest` and from lists, an explicit version still resolves.
//
// Files arrive as uploads (api/uploads.ts, docs/assets.md "Uploads"): a document names a tree by
// `upload:sha256:<manifest>`, never by a path on this machine (spec/paths.ts refuses those for API
// documents). The tree is materialised from the blob store into a staging folder of ours, and everything
// below reads only that folder, so a caller can make the server copy nothing it did not send.
//
// Inline definitions in a deployment are registered anonymously, as Azure does: models as
// `azureml_anonymous:<content hash>`, environments as `CliV2AnonymousEnvironment:<content hash>` (Azure's
// own name for them). The same content gives the same version, so nothing is copied twice. Anonymous
// assets are left out of lists unless asked for (`--include-anonymous`).
//
// This is the service side (control/): api/assets.ts parses the HTTP request, calls one method here and
// shapes the answer.

import { createHash, randomUUID, type Hash } from 'node:crypto';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, relative, sep } from 'node:path';
import { stringify as toYaml } from 'yaml';
import { stableJson } from '../compile/index.js';
import { errorOf, InfergateError, validationError } from '../errors/index.js';
import { parseEnvironmentObject, parseModelObject } from '../spec/index.js';
import type { DeploymentSpec, EnvironmentAssetSpec, ModelAssetSpec } from '../spec/types.js';
import { assetAlreadyExists, assetLookup, findAsset, LABELS, nextVersion, type AssetLookup } from '../store/index.js';
import type { AssetKind, AssetRecords, EnvironmentAsset, ModelAsset, StateStore, StoredAsset } from '../store/types.js';
import { isLocalPipEntry, localPipPath } from '../util/conda.js';
import { CONDA_FILE_LIMIT, copyTree, readUserFile, streamUserFile, walkTree } from '../util/files.js';
import { isUploadRef } from '../util/upload-manifest.js';
import { parseYamlData } from '../util/yaml.js';
import { checkScript, isReference } from '../spec/paths.js';
import { BlobStore } from './blobs.js';

/** Names of the assets registered for inline definitions (Azure: anonymous assets). */
export const ANONYMOUS_MODEL = 'azureml_anonymous';
export const ANONYMOUS_ENVIRONMENT = 'CliV2AnonymousEnvironment';
/** Hex digits of the content hash used as an anonymous asset's version. */
const HASH_LENGTH = 32;

export interface AssetStoreOptions {
  /** `<workspace>/assets`. Without it nothing can be registered or uploaded. */
  assetsDir?: string;
  /** The blob store of uploads (default `<workspace>/blobs`, beside assetsDir). */
  blobsDir?: string;
  /** Largest uploaded file, in bytes (default control/blobs.ts DEFAULT_MAX_BLOB_BYTES). */
  maxUploadBytes?: number;
}

export const KIND_DIR: Record<AssetKind, string> = { model: 'models', environment: 'environments' };
const Kind = (kind: AssetKind): string => (kind === 'model' ? 'Model' : 'Environment');
export class AssetRegistry {
  /** Resolves references against the store (for compileInstancePlan). */
  readonly lookup: AssetLookup;
  /** Where uploads are kept (undefined without an asset store). */
  readonly blobs: BlobStore | undefined;

  constructor(
    private readonly store: StateStore,
    private readonly assetsDir: string | undefined,
    o: Omit<AssetStoreOptions, 'assetsDir'> = {},
  ) {
    this.lookup = assetLookup(store);
    const blobsDir = o.blobsDir ?? (assetsDir !== undefined ? join(dirname(assetsDir), 'blobs') : undefined);
    this.blobs = blobsDir !== undefined ? new BlobStore(blobsDir, o.maxUploadBytes) : undefined;
  }

  /**
   * Runs `use` with a materialiser of uploads: each `upload:sha256:` reference it is given is written from
   * the blob store into a staging folder of ours and its root path returned; every folder is removed when
   * `use` is done. `expect`: the root must be a file or a folder (code folders, conda files).
   */
  private async staged<T>(use: (materialise: Materialise) => Promise<T>): Promise<T> {
    const folders: string[] = [];
    const materialise: Materialise = async (ref, what, expect) => {
      if (!isUploadRef(ref)) {
        // The API's parse refuses paths (spec/paths.ts); this is the same rule for any other caller.
        throw errorOf('NotAnUpload', { what, ref });
      }
      if (!this.assetsDir || !this.blobs) throw errorOf('NoAssetStore', { what: 'uploads', done: 'used' });
      const tmp = join(this.assetsDir, '.tmp', randomUUID());
      folders.push(tmp);
      const { path, manifest } = await this.blobs.materialise(ref, tmp);
      const rootIsDir = manifest.entries.find((e) => e.path === manifest.root)!.type === 'dir';
      if (expect && rootIsDir !== (expect === 'folder')) throw errorOf('UploadKindMismatch', { what, ref, actual: rootIsDir ? 'folder' : 'file', expected: expect });
      return path;
    };
    try {
      return await use(materialise);
    } finally {
      for (const f of folders) await rm(f, { recursive: true, force: true });
    }
  }

  /** Registers the model or environment a request body describes (its YAML as JSON, files as uploads). */
  async registerDocument(kind: AssetKind, body: unknown): Promise<StoredAsset> {
    if (kind === 'model') {
      const { spec, problems } = parseModelObject(body, { source: 'request body', paths: 'uploads' });
      if (!spec || problems.length) throw validationError(problems, 'The model');
      return this.registerModel(spec);
    }
    const { spec, problems } = parseEnvironmentObject(body, { source: 'request body', paths: 'uploads' });
    if (!spec || problems.length) throw validationError(problems, 'The environment');
    return this.registerEnvironment(spec);
  }

  /** One registered version, archived or not (an explicit version always resolves). */
  version<K extends AssetKind>(kind: K, name: string, version: string): StoredAsset<K> {
    const found = this.store.getAsset(kind, name, version);
    if (!found) throw assetNotFound(kind, name, version);
    return found;
  }

  /** The version a label names (`latest`: the newest version not archived). */
  byLabel<K extends AssetKind>(kind: K, name: string, label: string): StoredAsset<K> {
    const found = findAsset(this.store, kind, { name, label });
    if (!found) throw assetNotFound(kind, name, undefined, label);
    return found;
  }

  /** Archives (hidden from `@latest` and lists) or restores a version; returns it as it is now. */
  setArchived<K extends AssetKind>(kind: K, name: string, version: string, archived: boolean): StoredAsset<K> {
    this.version(kind, name, version);
    this.store.setAssetArchived(kind, name, version, archived);
    return this.version(kind, name, version);
  }

  /** Registers a model version: the uploaded file or folder, copied into the asset store. */
  async registerModel(spec: ModelAssetSpec, options: { anonymous?: boolean } = {}): Promise<StoredAsset<'model'>> {
    return this.staged(async (materialise) => this.registerModelFrom(spec, await materialise(spec.path, 'model path'), options));
  }

  private async registerModelFrom(spec: ModelAssetSpec, local: string, options: { anonymous?: boolean }): Promise<StoredAsset<'model'>> {
    const name = basename(local);
    return this.commit('model', spec.name, spec.version, options.anonymous === true, async (tmp) => {
      // A tree we materialised: regular files and folders only (api/uploads.ts).
      await copyTree(local, join(tmp, name), { what: 'model path' });
    }, (version, dir): ModelAsset => compactRecord({
      name: spec.name,
      version,
      type: spec.type,
      path: join(dir, name),
      description: spec.description,
      tags: { ...spec.tags },
      properties: { ...spec.properties },
      flavors: spec.flavors,
    }));
  }

  /** Registers an environment version: stores its conda file and the local files its pip list names. */
  async registerEnvironment(spec: EnvironmentAssetSpec, options: { anonymous?: boolean } = {}): Promise<StoredAsset<'environment'>> {
    return this.staged(async (materialise) => this.registerEnvironmentWith(spec, await storedConda(spec.condaFile, materialise), await storedBuild(spec.build, materialise), options));
  }

  /**
   * `build`: the uploaded Docker build context, stored as the asset's `build/` folder (the docker
   * backend builds from it), as the conda file is stored as its `conda.yaml`.
   */
  private async registerEnvironmentWith(spec: EnvironmentAssetSpec, conda: StoredConda | undefined, build: string | undefined, options: { anonymous?: boolean }): Promise<StoredAsset<'environment'>> {
    return this.commit('environment', spec.name, spec.version, options.anonymous === true, async (tmp) => {
      if (build !== undefined) await copyTree(build, join(tmp, 'build'), { what: 'build.path' });
      if (!conda) return;
      await writeFile(join(tmp, 'conda.yaml'), conda.text);
      for (const f of conda.files) await copyTree(f.from, join(tmp, f.to), { what: 'conda_file pip entry' });
    }, (version, dir): EnvironmentAsset => compactRecord({
      name: spec.name,
      version,
      description: spec.description,
      tags: { ...spec.tags },
      image: spec.image,
      build: spec.build && (build !== undefined ? { ...spec.build, path: join(dir, 'build') } : spec.build),
      osType: spec.osType,
      inferenceConfig: spec.inferenceConfig,
      conda: conda?.content,
      condaFile: conda ? join(dir, 'conda.yaml') : undefined,
    }));
  }

  /**
   * Resolves a deployment's model and environment and records the versions in `resolvedAssets`:
   * registered references to the version they name now (`@latest` is fixed here, until the next update),
   * inline definitions to an anonymous asset registered for them. A reference that does not resolve is
   * left unrecorded; compileInstancePlan then refuses it with AssetNotFound.
   */
  async resolveDeployment(spec: DeploymentSpec, previous?: DeploymentSpec): Promise<DeploymentSpec> {
    const { resolvedAssets: _ignored, ...rest } = spec;
    const resolved: NonNullable<DeploymentSpec['resolvedAssets']> = {};
    // `previous`: an update from the stored document (`update --set ...` without -f). As Azure's CLI then
    // sends the deployment it read back, with its assets already resolved, a reference left as it was
    // keeps what it resolved to: @latest does not move and the code is not read again.
    const kept = previous?.resolvedAssets;
    const same = (a: unknown, b: unknown) => stableJson(a) === stableJson(b);
    if (kept?.model && same(previous!.model, spec.model)) resolved.model = kept.model;
    if (kept?.environment && same(previous!.environment, spec.environment)) resolved.environment = kept.environment;
    if (kept?.code && previous!.codeConfiguration?.code === spec.codeConfiguration?.code) resolved.code = kept.code;
    const m = spec.model;
    if (resolved.model) {
      // kept
    } else if (m?.kind === 'registered') {
      const found = findAsset(this.store, 'model', m);
      if (found) resolved.model = { name: found.asset.name, version: found.asset.version };
    } else if (m?.kind === 'inline' && isUploadRef(m.path)) {
      // (A remote path, azureml://... or https://..., is left to compileInstancePlan, as before.)
      resolved.model = await this.staged(async (materialise) => {
        const local = await materialise(m.path, 'model.path');
        const version = await anonymousModelVersion(local, m.type);
        const a = await this.registerModelFrom(
          compactRecord({ name: ANONYMOUS_MODEL, version, path: m.path, type: m.type, description: m.description, tags: m.tags ?? {}, properties: m.properties ?? {}, flavors: m.flavors }),
          local,
          { anonymous: true },
        );
        return { name: a.asset.name, version: a.asset.version };
      });
    }
    const e = spec.environment;
    if (resolved.environment) {
      // kept
    } else if (e?.kind === 'registered') {
      const found = findAsset(this.store, 'environment', e);
      if (found) resolved.environment = { name: found.asset.name, version: found.asset.version };
    } else if (e?.kind === 'inline' && this.assetsDir) {
      // Azure ignores an inline environment's name and version for the anonymous registration.
      const env: EnvironmentAssetSpec = compactRecord({ name: ANONYMOUS_ENVIRONMENT, tags: e.tags ?? {}, description: e.description, image: e.image, condaFile: e.condaFile, build: e.build, osType: e.osType, inferenceConfig: e.inferenceConfig });
      resolved.environment = await this.staged(async (materialise) => {
        const conda = await storedConda(env.condaFile, materialise);
        const version = await anonymousEnvironmentVersion(env, conda);
        const a = await this.registerEnvironmentWith({ ...env, version }, conda, await storedBuild(env.build, materialise), { anonymous: true });
        return { name: a.asset.name, version: a.asset.version };
      });
    }
    const cc = spec.codeConfiguration;
    if (!resolved.code && cc !== undefined && !isReference(cc.code)) {
      resolved.code = await this.staged(async (materialise) => {
        const local = await materialise(cc.code, 'code_configuration.code', 'folder');
        // The CLI checked the script in the user's folder; the server checks it in what arrived.
        const problem = checkScript(local, cc.scoringScript);
        if (problem) throw errorOf('ScoringScriptInvalid', { problem: problem.replace(local, cc.code) });
        return this.snapshotCode(local);
      });
    }
    return Object.keys(resolved).length ? { ...rest, resolvedAssets: resolved } : rest;
  }

  /**
   * Azure uploads a deployment's code folder as an anonymous code asset at every create and update: the
   * running deployment does not see later edits, and an update after an edit rolls out new instances.
   * Same here: the folder is copied to `<assets>/code/<content hash>/<folder name>` (the folder name is
   * kept, it names AML_APP_ROOT), and the plan runs that copy. Python's `__pycache__` and `.git` are left
   * out of the hash and the copy, so running the script locally does not make a new version.
   */
  private async snapshotCode(path: string): Promise<{ version: string; path: string }> {
    const name = basename(path);
    const h = createHash('sha256');
    h.update(`code ${name}\0`);
    await hashPath(h, path, 'code', SKIPPED_IN_CODE);
    const version = h.digest('hex').slice(0, HASH_LENGTH);
    const dir = join(this.assetsDir!, 'code', version);
    const target = join(dir, name);
    if (!existsSync(target)) {
      const tmp = join(this.assetsDir!, '.tmp', randomUUID());
      try {
        await copyTree(path, join(tmp, name), { what: 'code', skip: SKIPPED_IN_CODE });
        mkdirSync(dirname(dir), { recursive: true });
        try {
          renameSync(tmp, dir);
        } catch (err) {
          // Another create with the same code won the race; its copy is the same content.
          if (!existsSync(target)) throw err;
        }
      } finally {
        await rm(tmp, { recursive: true, force: true });
      }
    }
    return { version, path: target };
  }

  /**
   * The one way a version enters the asset store: files are staged in a temporary folder, then the version
   * is chosen (explicit, or the next integer), the folder renamed into place and the record written, all in
   * one synchronous transaction, so two registrations cannot take the same version. An anonymous asset
   * that exists already is returned as it is (same content, same version).
   */
  private async commit<K extends AssetKind>(
    kind: K,
    name: string,
    explicitVersion: string | undefined,
    anonymous: boolean,
    stage: (tmp: string) => Promise<void>,
    record: (version: string, dir: string) => AssetRecords[K],
  ): Promise<StoredAsset<K>> {
    const root = this.assetsDir;
    if (!root) throw errorOf('NoAssetStore', { what: 'assets', done: 'registered' });
    const existing = (version: string) => this.store.getAsset(kind, name, version);
    if (explicitVersion !== undefined && existing(explicitVersion)) {
      if (anonymous) return existing(explicitVersion)!;
      throw assetAlreadyExists(kind, name, explicitVersion);
    }
    const tmp = join(root, '.tmp', randomUUID());
    await mkdir(tmp, { recursive: true });
    try {
      await stage(tmp);
      return this.store.transaction(() => {
        const version = explicitVersion ?? nextVersion(this.store.listAssets(kind, name).map((a) => a.asset.version));
        const found = existing(version);
        if (found && anonymous) return found;
        if (found) throw assetAlreadyExists(kind, name, version);
        const dir = join(root, KIND_DIR[kind], name, version);
        // A folder without a record is left over from a crash between rename and insert: replace it.
        rmSync(dir, { recursive: true, force: true });
        mkdirSync(dirname(dir), { recursive: true });
        renameSync(tmp, dir);
        try {
          return this.store.putAsset(kind, record(version, dir), { anonymous });
        } catch (err) {
          rmSync(dir, { recursive: true, force: true });
          throw err;
        }
      });
    } finally {
      await rm(tmp, { recursive: true, force: true });
    }
  }
}


/** Writes an upload into a staging folder and returns its root (AssetRegistry.staged). */
type Materialise = (ref: string, what: string, expect?: 'file' | 'folder') => Promise<string>;

/** Drops undefined fields, so records compare equal however they were built. */
function compactRecord<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

// ---- conda files ---------------------------------------------------------------------------------------

interface StoredConda {
  /** The content as stored (local pip entries that pointed outside the conda file's folder rewritten). */
  content: Record<string, unknown>;
  /** The text written to the asset's conda.yaml. */
  text: string;
  /** Local files to store beside it: `to` is relative to the asset folder. */
  files: { from: string; to: string }[];
}

/**
 * What to store for a conda file. Local pip entries (wheels, sdists, project folders) are stored with the
 * asset: an entry inside the conda file's folder keeps its relative place (`./wheels/x.whl`; the CLI
 * uploads it in the conda file's tree), an entry that is itself an upload (`upload:sha256:...`: the CLI's
 * form for a file outside that folder, absolute, `file:`, or named by an inline conda mapping) is stored
 * as `files/<name>` and the entry rewritten to `./files/<name>`, as such entries always were, so the
 * environment's content hash is what it was when the server read them from the user's disk. Any other
 * local entry is refused: it would name a path on the server.
 */
/** The uploaded build context, materialised (a folder); undefined without one. */
async function storedBuild(build: EnvironmentAssetSpec['build'], materialise: Materialise): Promise<string | undefined> {
  if (build === undefined || !isUploadRef(build.path)) return undefined;
  return materialise(build.path, 'build.path', 'folder');
}

async function storedConda(condaFile: string | Record<string, unknown> | undefined, materialise: Materialise): Promise<StoredConda | undefined> {
  if (condaFile === undefined) return undefined;
  let content: Record<string, unknown>;
  let text: string | undefined;
  let baseDir: string | undefined;
  if (typeof condaFile === 'string') {
    const local = await materialise(condaFile, 'conda_file', 'file');
    // Our own copy, but still read with the limit for conda files: the upload could be any size.
    text = (await readUserFile(local, { what: 'conda_file', limit: CONDA_FILE_LIMIT })).toString('utf8');
    let parsed: unknown;
    try {
      parsed = parseYamlData(text);
    } catch (e) {
      if (e instanceof InfergateError) throw e; // our own limits (util/yaml.ts): already coded and worded
      // The parser's code and position, not its message: a message is the library's wording (yaml's
      // YAMLParseError: code BAD_INDENT ..., linePos), a code and a position are the user's to act on.
      const y = e as { code?: unknown; linePos?: { line: number; col: number }[] };
      throw errorOf('CondaFileNotYaml', { ref: condaFile, problem: typeof y.code === 'string' ? y.code : 'unparseable', line: y.linePos?.[0]?.line ?? 1, column: y.linePos?.[0]?.col ?? 1 });
    }
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw errorOf('CondaFileNotMapping', { ref: condaFile });
    content = parsed as Record<string, unknown>;
    baseDir = dirname(local);
  } else {
    content = structuredClone(condaFile);
  }
  const pipLists = (): unknown[][] =>
    Array.isArray(content.dependencies)
      ? content.dependencies.filter((d): d is { pip: unknown[] } => !!d && typeof d === 'object' && Array.isArray((d as { pip?: unknown }).pip)).map((d) => d.pip)
      : [];
  const uploaded = new Map<string, string>();
  for (const list of pipLists()) {
    for (const p of list) if (typeof p === 'string' && isUploadRef(p.trim()) && !uploaded.has(p.trim())) uploaded.set(p.trim(), await materialise(p.trim(), 'conda_file pip entry'));
  }
  const files: { from: string; to: string }[] = [];
  const taken = new Set<string>();
  let rewritten = false;
  const place = (entry: string): string => {
    const upload = uploaded.get(entry.trim());
    if (upload === undefined) {
      const from = localPipPath(entry, baseDir);
      const rel = baseDir && from !== undefined ? relative(baseDir, from) : '';
      if (!baseDir || from === undefined || rel === '' || rel.startsWith('..') || isAbsolute(rel) || /^file:/i.test(entry.trim())) {
        throw errorOf('PipEntryNotUploaded', { entry });
      }
      if (!existsSync(from)) throw errorOf('PipEntryMissing', { entry, path: rel });
      files.push({ from, to: rel });
      taken.add(rel);
      return entry;
    }
    let to = join('files', basename(upload));
    for (let i = 2; taken.has(to); i++) to = join('files', String(i), basename(upload));
    taken.add(to);
    files.push({ from: upload, to });
    rewritten = true;
    return './' + to.split(sep).join('/');
  };
  const deps = content.dependencies;
  if (Array.isArray(deps)) {
    content.dependencies = deps.map((d) => {
      if (!d || typeof d !== 'object' || !Array.isArray((d as { pip?: unknown }).pip)) return d;
      return {
        ...(d as object),
        pip: (d as { pip: unknown[] }).pip.map((p) => {
          if (typeof p !== 'string') return p;
          if (isUploadRef(p.trim()) || isLocalPipEntry(p)) return place(p);
          if (readsServerPath(p)) throw errorOf('PipEntryRefused', { entry: p });
          return p;
        }),
      };
    });
  }
  return { content, text: text !== undefined && !rewritten ? text : toYaml(content), files };
}

// ---- content hashes (anonymous versions) ---------------------------------------------------------------

/** Folders that are not part of a deployment's code: Python's bytecode cache, a git checkout's history. */
const SKIPPED_IN_CODE: ReadonlySet<string> = new Set(['__pycache__', '.git']);

/**
 * SHA-256 of a file or folder tree: relative paths and contents, in a fixed order (the order and the
 * bytes hashed are those of the copy, util/files.ts walkTree, so the same content keeps its version).
 */
async function hashPath(h: Hash, path: string, what: string, skip?: ReadonlySet<string>): Promise<void> {
  for await (const e of walkTree(path, { what, ...(skip ? { skip } : {}) })) {
    if (e.kind === 'dir') {
      h.update(`dir ${e.rel}\0`);
      continue;
    }
    h.update(`file ${e.rel}\0`);
    await streamUserFile(e.abs, what, (chunk) => {
      h.update(chunk);
    });
    h.update('\0');
  }
}

async function anonymousModelVersion(path: string, type: string): Promise<string> {
  const h = createHash('sha256');
  // The file or folder name is part of the model: it is preserved under AZUREML_MODEL_DIR.
  h.update(`model ${type} ${basename(path)}\0`);
  await hashPath(h, path, 'model path');
  return h.digest('hex').slice(0, HASH_LENGTH);
}

async function anonymousEnvironmentVersion(env: EnvironmentAssetSpec, conda: StoredConda | undefined): Promise<string> {
  const h = createHash('sha256');
  h.update(stableJson({ image: env.image, build: env.build, osType: env.osType, inferenceConfig: env.inferenceConfig, conda: conda?.content }));
  for (const f of conda?.files ?? []) {
    h.update(`\0${f.to}\0`);
    await hashPath(h, f.from, 'conda_file pip entry');
  }
  return h.digest('hex').slice(0, HASH_LENGTH);
}

/** The AssetNotFound of a version, an unknown label, or a label no version carries now. */
export function assetNotFound(kind: AssetKind, name: string, version: string | undefined, label?: string): InfergateError {
  if (version !== undefined) return errorOf('AssetVersionNotFound', { Kind: Kind(kind), kind, name, version });
  if (label !== undefined && !(LABELS as readonly string[]).includes(label)) return errorOf('AssetLabelUnknown', { label, kind, name });
  return errorOf('AssetLabelUnresolved', { Kind: Kind(kind), kind, name, label: label ?? 'latest' });
}

/**
 * A pip list entry that makes pip (run by the server, as its user) read a path on the server: options
 * other than an index or host (`-r /etc/shadow`, `-e /project`, `--find-links /dir`, `-c file`), and
 * direct references to local files (`name @ file:///...`). Index URLs are kept: pip fetches them.
 */
export function readsServerPath(entry: string): boolean {
  const s = entry.trim();
  if (s.startsWith('-')) return !/^(--index-url|--extra-index-url|-i)(\s+|=)https?:\/\/\S+$|^--trusted-host(\s+|=)[\w.:-]+$|^--pre$/.test(s);
  return /@\s*file:/i.test(s) || /^file:/i.test(s);
}
