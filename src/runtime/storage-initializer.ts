// The storage initializer: `node dist/runtime/storage-initializer.js <request.json>` (protocol/messages.ts).
//
// Azure runs a `storage-initializer` container before the inference server, which downloads the model
// and code into the container; infergate copies them into the instance directory instead, so an instance
// never reads the user's working files while it serves (they may change under it) and the layout the
// scoring script sees is Azure's (contract §1.5):
//   <instanceDir>/azureml-models/<name>/<version>/<basename of model path>   AZUREML_MODEL_DIR = .../<version>
//   <instanceDir>/azureml-app/<basename of code path>/                       AML_APP_ROOT
// so Azure's `os.path.join(os.getenv("AZUREML_MODEL_DIR"), "model/sklearn_regression_model.pkl")` works.
//
// Output: one line per step (what, from, to, files, bytes, ms), then `STORAGE_RESULT {json}` as the last
// line of stdout. A request without a model (or code) gets "" for modelDir (appRoot), as azmlinfsrv's
// default for an unset AZUREML_MODEL_DIR is "". Exit 0, or 1 with the reason on stderr.
// Running it again for the same instance directory (an instance restart) replaces the earlier copy.

import { mkdir, readFile, rm, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { copyTree } from '../util/files.js';
import { STORAGE_RESULT_PREFIX, type StorageRequest, type StorageResult } from '../protocol/messages.js';
import { formatLogLine } from '../protocol/log.js';

const LOGGER = 'storage-initializer';

class StorageError extends Error {}

/** A name or version becomes one path segment: it must not be able to climb out of the instance directory. */
function segment(what: string, value: unknown): string {
  if (typeof value !== 'string' || value === '' || value === '.' || value === '..' || /[/\\\0]/.test(value)) {
    throw new StorageError(`${what} ${JSON.stringify(value)} cannot be used as a folder name.`);
  }
  return value;
}

function parseRequest(raw: unknown): StorageRequest {
  if (raw === null || typeof raw !== 'object') throw new StorageError('The request is not a JSON object.');
  const r = raw as Record<string, unknown>;
  if (typeof r.instanceDir !== 'string' || r.instanceDir === '') throw new StorageError('The request has no instanceDir.');
  const req: StorageRequest = { instanceDir: resolve(r.instanceDir) };
  if (r.model !== undefined && r.model !== null) {
    const m = r.model as Record<string, unknown>;
    if (typeof m.path !== 'string' || m.path === '') throw new StorageError('model.path is missing.');
    if (!isAbsolute(m.path)) throw new StorageError(`model.path ${JSON.stringify(m.path)} is not an absolute path (the backend gives the asset store's).`);
    req.model = { name: segment('model.name', m.name), version: segment('model.version', m.version), path: resolve(m.path) };
  }
  if (r.code !== undefined && r.code !== null) {
    const c = r.code as Record<string, unknown>;
    if (typeof c.path !== 'string' || c.path === '') throw new StorageError('code.path is missing.');
    if (!isAbsolute(c.path)) throw new StorageError(`code.path ${JSON.stringify(c.path)} is not an absolute path (the backend gives the code snapshot's).`);
    req.code = { path: resolve(c.path) };
  }
  return req;
}

/** Copies `from` (file or folder) to `to`, replacing what was there; returns a one-line report. */
async function copyStep(what: string, from: string, to: string, log: (line: string) => void): Promise<void> {
  try {
    await stat(from);
  } catch {
    throw new StorageError(`The ${what} path ${from} does not exist.`);
  }
  const t0 = performance.now();
  await rm(to, { recursive: true, force: true });
  await mkdir(dirname(to), { recursive: true });
  // Real files for links (the instance never reads back into the user's working tree); a FIFO, device,
  // socket, link to nothing or link loop inside refuses the copy with its path, where fs.cp would hang
  // on a FIFO, copy /dev/zero forever or recurse until ELOOP (util/files.ts).
  let counts: { files: number; bytes: number };
  try {
    counts = await copyTree(from, to, { what: what.split(' ')[0], preserveTimestamps: true });
  } catch (err) {
    // util/files.ts refuses with coded errors (PathNotReadable); runtime/ does not import errors/ itself.
    if (err instanceof Error && err.name === 'InfergateError') throw new StorageError(`(${(err as Error & { code: string }).code}) ${err.message}`);
    throw err;
  }
  const { files, bytes } = counts;
  const ms = (performance.now() - t0).toFixed(1);
  log(`Copied ${what} from ${from} to ${to}: ${files} file${files === 1 ? '' : 's'}, ${bytes} bytes, ${ms} ms`);
}

/** Does the copies a request asks for and returns where they are. `log` gets one line per step. */
export async function initializeStorage(request: StorageRequest, log: (line: string) => void = () => {}): Promise<StorageResult> {
  const req = parseRequest(request);
  const result: StorageResult = { modelDir: '', appRoot: '' };
  if (req.model) {
    const { name, version, path } = req.model;
    const modelDir = join(req.instanceDir, 'azureml-models', name, version);
    await copyStep(`model ${name}:${version}`, path, join(modelDir, basename(path)), log);
    result.modelDir = modelDir;
  }
  if (req.code) {
    const appRoot = join(req.instanceDir, 'azureml-app', basename(req.code.path));
    await copyStep('code', req.code.path, appRoot, log);
    result.appRoot = appRoot;
  }
  return result;
}

async function main(argv: string[]): Promise<number> {
  const file = argv[2];
  if (!file) {
    process.stderr.write('usage: storage-initializer <request.json>\n');
    return 1;
  }
  const t0 = performance.now();
  const out = (line: string) => process.stdout.write(formatLogLine('I', LOGGER, line));
  try {
    let raw: unknown;
    try {
      raw = JSON.parse(await readFile(file, 'utf8'));
    } catch (err) {
      throw new StorageError(`Cannot read the request ${file}: ${(err as Error).message}`);
    }
    const result = await initializeStorage(raw as StorageRequest, out);
    out(`Storage initialized in ${(performance.now() - t0).toFixed(1)} ms`);
    process.stdout.write(`${STORAGE_RESULT_PREFIX}${JSON.stringify(result)}\n`);
    return 0;
  } catch (err) {
    const reason = err instanceof StorageError ? err.message : (err as Error).stack ?? String(err);
    process.stderr.write(formatLogLine('E', LOGGER, `Storage initialization failed: ${reason}`));
    return 1;
  }
}

// Run as a program (not when imported by a test or the backend).
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv).then((code) => {
    process.exitCode = code;
  });
}
