// Builds the Python environment a conda file describes, where that can be done: a virtual environment
// made by `/usr/bin/python3 -m venv --system-site-packages` (so Debian's own packages, e.g. scikit-learn,
// stay importable) and `python -m pip install` of the conda file's pip list and conda packages.
//
// Environments are cached by content hash under `<workspace>/envs/<hash>/` and reused by every instance and
// deployment that asks for the same packages (the hash covers the package list, the bytes of local wheels,
// and the base interpreter). The instance log says which: "building environment <hash>" or "reusing
// environment <hash>".
//
// "Where that can be done" = every pip entry is a local file (installed with --no-index), or pip succeeds
// against the package index it is configured with, asked to give up quickly (--timeout 5 --retries 0).
// When it does not, the log says why and the caller falls back to picking a host interpreter
// (python-env.ts), as before environments were built. A failure is remembered for a while, so instances
// that start after it do not each wait for pip again.
//
// `image:`: the process backend never runs images (the docker backend does, backend/docker/); the
// scoring script runs on the host and the log says so.

import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, realpathSync, statSync } from 'node:fs';
import { chmod, mkdir, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { InstancePlan } from '../../ir/types.js';
import { condaDependencies, isLocalPipEntry, localPipPath } from '../../util/conda.js';
import { CONDA_FILE_LIMIT, describeStats, readUserFile, streamUserFile } from '../../util/files.js';
import { parseYamlData } from '../../util/yaml.js';
import { shareTree } from './isolation.js';
import { PROVIDED } from './python-env.js';

export interface BuiltEnvironment {
  /** The environment's interpreter: `<workspace>/envs/<hash>/bin/python`. */
  python: string;
  hash: string;
}

export interface EnvironmentOptions {
  workspace: string;
  /** Where environments are built (default <workspace>/envs; isolated instances reach them elsewhere: isolation.ts). */
  envsDir?: string;
  /** A line for the instance log. */
  log: (line: string) => void;
  /** Interpreter the virtual environments are made from (default /usr/bin/python3, else python3 on PATH). */
  basePython?: string;
  env?: NodeJS.ProcessEnv;
}

/** Marker written last: a folder without it is a build that did not finish. */
const READY = '.infergate-ready';
/** Bumped when the way environments are built changes, so old ones are not reused. */
const BUILD_FORMAT = 'infergate-venv-1';
/** How long a failed build is not tried again (per server process). */
const RETRY_FAILED_AFTER_MS = 10 * 60_000;
const PIP_TIMEOUT_MS = 20 * 60_000;

interface Requirements {
  /** pip install arguments, in order: requirement specs, absolute paths of local files, options. */
  args: string[];
  /** Local files among args (absolute). */
  local: string[];
  /** Everything in args is a local file: installed with --no-index. */
  allLocal: boolean;
  /** Entries left to the instance host or that are tooling (python, pip, azureml-inference-server-http ...). */
  skipped: string[];
  pythonVersion?: string;
  problems: string[];
}

const failures = new Map<string, { at: number; reason: string }>();
const inflight = new Map<string, Promise<{ ok: true } | { ok: false; reason: string }>>();
/**
 * Prepares the environment of a Python instance. Returns the interpreter of a built (or reused) virtual
 * environment, or undefined when there is nothing to build or it cannot be built: the caller then picks a
 * host interpreter. Never throws.
 */
export async function prepareEnvironment(environment: InstancePlan['environment'], o: EnvironmentOptions): Promise<BuiltEnvironment | undefined> {
  try {
    if (environment.image !== undefined) await logImage(environment.image, o.log);
    if (environment.condaFile === undefined) return undefined;
    const env = o.env ?? process.env;
    if (env.INFERGATE_BUILD_ENVIRONMENTS === '0') {
      o.log('INFERGATE_BUILD_ENVIRONMENTS=0: not building the conda environment');
      return undefined;
    }
    if (env.INFERGATE_PYTHON) {
      o.log(`INFERGATE_PYTHON is set (${env.INFERGATE_PYTHON}): using it instead of building the conda environment`);
      return undefined;
    }
    const reqs = await readRequirements(environment.condaFile);
    for (const p of reqs.problems) o.log(`environment: ${p}; using a host interpreter`);
    if (reqs.problems.length) return undefined;
    if (reqs.args.length === 0) return undefined; // nothing beyond what the host provides
    const base = o.basePython ?? defaultBasePython();
    const hash = await environmentHash(base, reqs);
    const dir = join(o.envsDir ?? join(o.workspace, 'envs'), hash);
    const python = join(dir, 'bin', 'python');
    const describe = `${reqs.args.length} requirement${reqs.args.length === 1 ? '' : 's'}: ${reqs.args.map((a) => (reqs.local.includes(a) ? basename(a) : a)).join(' ')}`;

    if (existsSync(join(dir, READY))) {
      o.log(`reusing environment ${hash} (${dir}; ${describe})`);
      return { python, hash };
    }
    const failed = failures.get(hash);
    if (failed && Date.now() - failed.at < RETRY_FAILED_AFTER_MS) {
      o.log(`environment ${hash} could not be built ${Math.round((Date.now() - failed.at) / 1000)} s ago (${failed.reason}); using a host interpreter`);
      return undefined;
    }
    let build = inflight.get(hash);
    if (build) {
      o.log(`waiting for environment ${hash}, which another instance is building`);
    } else {
      o.log(`building environment ${hash} in ${dir} from ${base} (${describe})`);
      if (reqs.skipped.length) o.log(`environment ${hash}: not installing ${reqs.skipped.join(', ')} (provided by infergate's instance host, or tooling)`);
      if (reqs.pythonVersion) o.log(`environment ${hash}: the conda file asks for python ${reqs.pythonVersion}; the environment uses ${base}`);
      build = buildEnvironment(base, dir, reqs, env);
      inflight.set(hash, build);
      void build.finally(() => inflight.delete(hash));
    }
    const started = Date.now();
    const result = await build;
    if (!result.ok) {
      failures.set(hash, { at: Date.now(), reason: result.reason });
      o.log(`environment ${hash} could not be built: ${result.reason}; falling back to a host interpreter`);
      return undefined;
    }
    failures.delete(hash);
    o.log(`environment ${hash} is ready (${((Date.now() - started) / 1000).toFixed(1)} s): ${python}`);
    return { python, hash };
  } catch (e) {
    o.log(`environment: ${(e as Error).message}; using a host interpreter`);
    return undefined;
  }
}

async function logImage(image: string, log: (line: string) => void): Promise<void> {
  if (image.startsWith('azureml:')) {
    log(`environment ${image} is a curated or registry environment, which this machine cannot fetch: running the scoring script on the host`);
  } else {
    // The process backend never runs images; the docker backend does (server --backend docker|auto).
    log(`process backend: running the scoring script on the host, not in image ${image} (a server started with --backend docker runs it in the image)`);
  }
}

function defaultBasePython(): string {
  return existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
}

/** `numpy=2.3.1` → `numpy==2.3.1`; `conda-forge::scipy>=1.10` → `scipy>=1.10`; build strings dropped. */
export function condaToPip(spec: string): string {
  const s = spec.trim().replace(/^[\w.-]+::/, '');
  const m = /^([A-Za-z0-9_.-]+(?:\[[^\]]*\])?)\s*(.*)$/.exec(s);
  if (!m) return s;
  const [, name, rest] = m;
  if (rest === '') return name;
  if (/^[<>!~]/.test(rest) || rest.startsWith('==')) return `${name}${rest.split(/\s+/)[0]}`;
  // conda's `=1.2` (and `=1.2=build`, `1.2`): that version.
  const version = rest.replace(/^=/, '').split(/[=\s]/)[0];
  return version ? `${name}==${version}` : name;
}

const packageName = (spec: string): string =>
  spec
    .trim()
    .replace(/^[\w.-]+::/, '')
    .split(/[=<>~!;@ \s]/)[0]
    .replace(/\[.*$/, '')
    .toLowerCase();

/** The pip arguments a conda file asks for. */
export async function readRequirements(condaFile: string | Record<string, unknown>): Promise<Requirements> {
  const out: Requirements = { args: [], local: [], allLocal: true, skipped: [], problems: [] };
  let content: unknown = condaFile;
  let baseDir: string | undefined;
  if (typeof condaFile === 'string') {
    baseDir = dirname(condaFile);
    try {
      // Regular file, 1 MiB, non-blocking open: this runs in the server process (util/files.ts).
      content = parseYamlData((await readUserFile(condaFile, { what: 'conda_file', limit: CONDA_FILE_LIMIT })).toString('utf8'));
    } catch (e) {
      out.problems.push(`could not read conda file ${condaFile}: ${(e as Error).message}`);
      return out;
    }
  }
  const deps = condaDependencies(content);
  const add = (arg: string, local = false) => {
    out.args.push(arg);
    if (local) out.local.push(arg);
    else out.allLocal = false;
  };
  for (const c of deps.conda) {
    const name = packageName(c);
    if (name === 'python') {
      const v = /^[\w.-]+::/.test(c) ? c.replace(/^[\w.-]+::/, '') : c;
      const version = v.replace(/^python\s*/i, '').replace(/^[=<>!~]+/, '').split(/[=\s,]/)[0];
      if (version) out.pythonVersion = version;
      continue;
    }
    if (name === '' || PROVIDED.has(name)) {
      if (name) out.skipped.push(c);
      continue;
    }
    add(condaToPip(c));
  }
  for (const p of deps.pip) {
    if (p.startsWith('-')) {
      // pip options in the list (`--extra-index-url URL`, `--pre`): passed on as written.
      for (const part of p.split(/\s+/).filter(Boolean)) {
        out.args.push(part);
      }
      out.allLocal = false;
      continue;
    }
    if (isLocalPipEntry(p)) {
      const abs = localPipPath(p, baseDir);
      if (abs === undefined) out.problems.push(`pip entry '${p}' is a relative path in an inline conda mapping`);
      else if (!existsSync(abs)) out.problems.push(`pip entry '${p}' names ${abs}, which does not exist`);
      else {
        const st = statSync(abs);
        if (st.isFile() || st.isDirectory()) add(abs, true);
        else out.problems.push(`pip entry '${p}' names ${abs}, which is ${describeStats(st)}, not a file or folder`);
      }
      continue;
    }
    const name = packageName(p);
    if (PROVIDED.has(name)) {
      out.skipped.push(p);
      continue;
    }
    add(p);
  }
  return out;
}

async function fileDigest(path: string): Promise<string> {
  const h = createHash('sha256');
  // Refuses (and so hashes as a folder) anything but a regular file, without blocking on a FIFO.
  await streamUserFile(path, 'pip entry', (c) => {
    h.update(c);
  });
  return h.digest('hex');
}

/** The cache key: the base interpreter, and the requirements with local files by name and content. */
async function environmentHash(base: string, reqs: Requirements): Promise<string> {
  const h = createHash('sha256');
  let real = base;
  try {
    real = realpathSync(base);
  } catch {
    /* python3 on PATH */
  }
  h.update(`${BUILD_FORMAT}\0${real}\0`);
  for (const a of reqs.args) {
    if (reqs.local.includes(a)) {
      // A folder (a local project) is hashed by name only: pip builds it afresh anyway.
      const digest = await fileDigest(a).catch(() => 'folder');
      h.update(`local ${basename(a)} ${digest}\0`);
    } else h.update(`${a}\0`);
  }
  return h.digest('hex').slice(0, 16);
}

interface Run {
  code: number | null;
  output: string;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeout: number): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout, maxBuffer: 32 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
      const why = err && code === -1 ? `\n${(err as Error).message}` : '';
      resolve({ code, output: `${stdout}${stderr}${why}` });
    });
  });
}

/** The lines that say why pip (or venv) failed, shortened for one log line. */
function reasonOf(output: string, fallback: string): string {
  const lines = output.split('\n').map((l) => l.trim()).filter(Boolean);
  const errors = lines.filter((l) => /^(ERROR|error):/.test(l) || /Error:/.test(l));
  const picked = (errors.length ? errors : lines.slice(-2)).slice(-3).join(' | ');
  return (picked || fallback).slice(0, 600);
}

async function buildEnvironment(base: string, dir: string, reqs: Requirements, parentEnv: NodeJS.ProcessEnv): Promise<{ ok: true } | { ok: false; reason: string }> {
  const env: NodeJS.ProcessEnv = { ...parentEnv, PIP_NO_INPUT: '1', PIP_DISABLE_PIP_VERSION_CHECK: '1' };
  delete env.PYTHONPATH;
  delete env.PYTHONHOME;
  const logFile = `${dir}.log`;
  const transcript: string[] = [];
  const fail = async (reason: string) => {
    // The transcript may name an index URL with its credentials: the server's alone (instances reach envs/).
    await writeFile(logFile, transcript.join('\n'), { mode: 0o600 }).catch(() => {});
    await rm(dir, { recursive: true, force: true });
    return { ok: false as const, reason };
  };
  await rm(dir, { recursive: true, force: true });
  await mkdir(dirname(dir), { recursive: true });
  // Without pip first: the system's pip (Debian python3-pip) is importable through the system site
  // packages, which saves the seconds ensurepip takes. If it is not there, make the venv again with pip.
  let r = await run(base, ['-m', 'venv', '--system-site-packages', '--without-pip', dir], env, 60_000);
  transcript.push(`$ ${base} -m venv --system-site-packages --without-pip ${dir}`, r.output);
  if (r.code !== 0) return fail(`${base} -m venv failed (install Debian's python3-venv): ${reasonOf(r.output, `exit ${r.code}`)}`);
  const python = join(dir, 'bin', 'python');
  r = await run(python, ['-m', 'pip', '--version'], env, 60_000);
  if (r.code !== 0) {
    r = await run(base, ['-m', 'venv', '--system-site-packages', '--clear', dir], env, 120_000);
    transcript.push(`$ ${base} -m venv --system-site-packages --clear ${dir}`, r.output);
    if (r.code !== 0) return fail(`no pip: neither ${base} -m pip nor ensurepip works (install Debian's python3-pip or python3-venv): ${reasonOf(r.output, `exit ${r.code}`)}`);
  }
  // pip runs as the server's user. Building a source distribution runs its setup.py (or build backend):
  // a deployment's code, as root when the server is root, outside every instance's isolation. Wheels
  // are only unpacked, so as root only wheels are installed; a package with no wheel fails the build,
  // which the log says, and the instance falls back to a host interpreter.
  const wheelsOnly = typeof process.getuid === 'function' && process.getuid() === 0 ? ['--only-binary=:all:'] : [];
  // A local archive or folder named directly is built whatever --only-binary says (pip builds what it is
  // given): as root, only local wheels.
  const sources = wheelsOnly.length > 0 ? reqs.local.filter((a) => !/\.whl$/i.test(a)) : [];
  if (sources.length > 0) return fail(`${sources.map((a) => basename(a)).join(', ')}: not a wheel; building a source distribution runs its code as the server's user (root), so only wheels are installed (build the wheel, e.g. pip wheel, and list it instead)`);
  const args = ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--timeout', '5', '--retries', '0', ...wheelsOnly, ...(reqs.allLocal ? ['--no-index'] : []), ...reqs.args];
  r = await run(python, args, env, PIP_TIMEOUT_MS);
  transcript.push(`$ ${python} ${args.join(' ')}`, r.output);
  if (r.code !== 0) {
    const why = reasonOf(r.output, `exit ${r.code}`);
    return fail(reqs.allLocal ? `pip could not install the local files: ${why}` : `pip could not install from the package index (not reachable, or no matching version): ${why}`);
  }
  await writeFile(logFile, transcript.join('\n'), { mode: 0o600 });
  await chmod(logFile, 0o600); // one left by an earlier build keeps its mode otherwise
  // Every instance that uses it reads it, under a uid of its own (isolation.ts), whatever the server's umask.
  await shareTree(dir);
  await writeFile(join(dir, READY), JSON.stringify({ base, requirements: reqs.args, builtAt: new Date().toISOString() }, null, 2) + '\n');
  return { ok: true };
}
