// The paths of a validated document, uploaded (client/uploads.ts) and replaced by `upload:sha256:`
// references before the document is sent (docs/assets.md "Uploads"): a deployment's inline model, code
// folder, conda file (with the local files its pip list names) and build context; a model's path; an
// environment's conda file and build context. The server never opens a path the CLI names.

import { existsSync } from 'node:fs';
import { dirname, isAbsolute, relative, sep } from 'node:path';
import { stringify as toYaml } from 'yaml';
import type { Client } from '../client/index.js';
import { Uploader } from '../client/uploads.js';
import { errorOf } from '../errors/index.js';
import { isReference } from '../spec/paths.js';
import type { DeploymentSpec, EnvironmentAssetSpec, ModelAssetSpec } from '../spec/types.js';
import { isLocalPipEntry, localPipPath } from '../util/conda.js';
import { CONDA_FILE_LIMIT, readUserFileSync } from '../util/files.js';
import { isUploadRef } from '../util/upload-manifest.js';
import { parseYamlData } from '../util/yaml.js';
import { Progress } from './progress.js';

/** Left out of a code folder's upload, as the server leaves them out of the snapshot (api/assets.ts). */
const SKIPPED_IN_CODE: ReadonlySet<string> = new Set(['__pycache__', '.git']);

/** Below this many bytes to send, no progress line (it would flash by). */
const PROGRESS_FROM_BYTES = 8 * 1024 * 1024;

const MiB = (n: number) => (n / (1024 * 1024)).toFixed(1);

/**
 * Runs `prepare` with an uploader for `client`, then sends what the server lacks (with a progress line on
 * a terminal when there is much to send) and returns what `prepare` made.
 */
export async function withUploads<T>(client: Client, prepare: (up: Uploader) => Promise<T>): Promise<T> {
  let progress: Progress | undefined;
  const up = new Uploader(client, (sent, total, files) => {
    if (total < PROGRESS_FROM_BYTES) return;
    progress ??= new Progress(`Uploading ${files} file${files === 1 ? '' : 's'} (${MiB(total)} MiB)`);
    progress.update(`${MiB(sent)} MiB, ${Math.floor((sent / total) * 100)}%`);
  });
  const result = await prepare(up);
  try {
    await up.flush();
  } finally {
    progress?.done();
  }
  return result;
}

const uploadable = (p: string): boolean => !isReference(p) && !isUploadRef(p);

async function pathRef(up: Uploader, p: string, what: string, skip?: ReadonlySet<string>): Promise<string> {
  return uploadable(p) ? up.tree(p, what, skip ? { skip } : {}) : p;
}

/** A deployment with its local paths uploaded. */
export async function uploadDeployment(spec: DeploymentSpec, up: Uploader): Promise<DeploymentSpec> {
  const out: DeploymentSpec = { ...spec };
  if (spec.model?.kind === 'inline') out.model = { ...spec.model, path: await pathRef(up, spec.model.path, 'model path') };
  if (spec.codeConfiguration) {
    out.codeConfiguration = { ...spec.codeConfiguration, code: await pathRef(up, spec.codeConfiguration.code, 'code', SKIPPED_IN_CODE) };
  }
  const e = spec.environment;
  if (e?.kind === 'inline') {
    out.environment = {
      ...e,
      ...(e.condaFile !== undefined ? { condaFile: await uploadConda(up, e.condaFile) } : {}),
      ...(e.build ? { build: { ...e.build, path: await pathRef(up, e.build.path, 'environment.build.path') } } : {}),
    };
  }
  return out;
}

/** A model asset document with its path uploaded. */
export async function uploadModelAsset(spec: ModelAssetSpec, up: Uploader): Promise<ModelAssetSpec> {
  return { ...spec, path: await pathRef(up, spec.path, 'model path') };
}

/** An environment asset document with its conda file and build context uploaded. */
export async function uploadEnvironmentAsset(spec: EnvironmentAssetSpec, up: Uploader): Promise<EnvironmentAssetSpec> {
  return {
    ...spec,
    ...(spec.condaFile !== undefined ? { condaFile: await uploadConda(up, spec.condaFile) } : {}),
    ...(spec.build ? { build: { ...spec.build, path: await pathRef(up, spec.build.path, 'build.path') } } : {}),
  };
}

/**
 * A conda file: uploaded as a tree holding the file and the local files its pip list names inside its
 * folder, at their places. A local entry elsewhere (absolute, `../`, `file:`) is uploaded as a tree of its
 * own and the entry becomes its `upload:sha256:` reference; the server stores it as `files/<name>` and
 * rewrites the entry to `./files/<name>`, as it did when it read such paths itself. An inline conda
 * mapping's local entries (absolute: nothing to resolve them against) are uploaded the same way.
 */
async function uploadConda(up: Uploader, conda: string | Record<string, unknown>): Promise<string | Record<string, unknown>> {
  if (typeof conda === 'string' && !uploadable(conda)) return conda;
  const baseDir = typeof conda === 'string' ? dirname(conda) : undefined;
  let text: string | undefined;
  let content: unknown;
  if (typeof conda === 'string') {
    text = readUserFileSync(conda, { what: 'conda_file', limit: CONDA_FILE_LIMIT }).toString('utf8');
    try {
      content = parseYamlData(text);
    } catch {
      content = undefined; // sent as it is: the server reports the YAML error
    }
  } else content = structuredClone(conda);
  const beside: { rel: string; abs: string }[] = [];
  let rewritten = false;
  const place = async (entry: string): Promise<string> => {
    const from = localPipPath(entry, baseDir);
    if (from === undefined) throw errorOf('PipEntryRelativeInline', { entry });
    if (!existsSync(from)) throw errorOf('PipEntryNotFound', { entry, path: from });
    const rel = baseDir ? relative(baseDir, from) : '';
    if (baseDir && rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) && !/^file:/i.test(entry.trim())) {
      beside.push({ rel: rel.split(sep).join('/'), abs: from });
      return entry;
    }
    rewritten = true;
    return up.tree(from, `conda_file pip entry '${entry}'`);
  };
  const deps = content && typeof content === 'object' && !Array.isArray(content) ? (content as { dependencies?: unknown }).dependencies : undefined;
  if (Array.isArray(deps)) {
    const next: unknown[] = [];
    for (const d of deps) {
      if (!d || typeof d !== 'object' || !Array.isArray((d as { pip?: unknown }).pip)) {
        next.push(d);
        continue;
      }
      const pip: unknown[] = [];
      for (const p of (d as { pip: unknown[] }).pip) pip.push(typeof p === 'string' && isLocalPipEntry(p) ? await place(p) : p);
      next.push({ ...(d as object), pip });
    }
    (content as { dependencies: unknown[] }).dependencies = next;
  }
  if (typeof conda !== 'string') return content as Record<string, unknown>;
  const bytes = Buffer.from(rewritten ? toYaml(content) : text!, 'utf8');
  return up.bundle(conda.split(sep).pop()!, bytes, beside, 'conda_file');
}
