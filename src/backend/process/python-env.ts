// Chooses the Python interpreter for an environment. This machine cannot build the conda environment
// or the image a deployment names, so we pick an installed interpreter that can import what the conda
// file lists, and say so in the log (issue #2: try $INFERGATE_PYTHON, /usr/bin/python3, python3).

import { execFile } from 'node:child_process';
import { CONDA_FILE_LIMIT, readUserFile } from '../../util/files.js';
import { parseYamlData } from '../../util/yaml.js';

export interface PythonChoice {
  python: string;
  version: string;
  /** Import names the environment needs that this interpreter lacks. */
  missing: string[];
  /** What the environment asked for, for the log. */
  wanted: string[];
  notes: string[];
}

/** Packages the instance host provides itself, or that are tooling rather than imports. */
export const PROVIDED: ReadonlySet<string> = new Set(['python', 'pip', 'setuptools', 'wheel', 'azureml-inference-server-http', 'azureml-defaults', 'inference-schema']);
/** Distribution names whose import name differs. */
const IMPORT_NAMES: Record<string, string> = {
  'scikit-learn': 'sklearn', 'pyyaml': 'yaml', 'pillow': 'PIL', 'opencv-python': 'cv2', 'opencv-python-headless': 'cv2',
  'beautifulsoup4': 'bs4', 'python-dateutil': 'dateutil', 'protobuf': 'google.protobuf', 'azure-storage-blob': 'azure.storage.blob',
  'azure-identity': 'azure.identity', 'torch': 'torch', 'tensorflow': 'tensorflow',
};

/** Package names (without versions or extras) a conda file lists, conda and pip alike, plus the Python version. */
export function condaRequirements(conda: Record<string, unknown>): { packages: string[]; pythonVersion?: string } {
  const packages: string[] = [];
  let pythonVersion: string | undefined;
  const deps = Array.isArray(conda.dependencies) ? conda.dependencies : [];
  const add = (spec: string, sep: RegExp) => {
    const name = spec.trim().split(sep)[0].replace(/\[.*$/, '').trim().toLowerCase();
    if (name === 'python') pythonVersion = spec.split(/[=<>~!]+/)[1]?.trim();
    if (name !== '') packages.push(name);
  };
  for (const d of deps) {
    if (typeof d === 'string') add(d.replace(/^[\w-]+::/, ''), /[=<>~! ]/);
    else if (d && typeof d === 'object' && Array.isArray((d as { pip?: unknown }).pip)) {
      for (const p of (d as { pip: unknown[] }).pip) if (typeof p === 'string' && !p.startsWith('-')) add(p, /[=<>~!; @]/);
    }
  }
  return { packages, ...(pythonVersion ? { pythonVersion } : {}) };
}

export function importNamesOf(packages: string[]): string[] {
  const out = new Set<string>();
  for (const p of packages) if (!PROVIDED.has(p)) out.add(IMPORT_NAMES[p] ?? p.replace(/-/g, '_'));
  return [...out];
}

export function candidateInterpreters(env: NodeJS.ProcessEnv = process.env): string[] {
  const list = [env.INFERGATE_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => typeof p === 'string' && p !== '');
  return [...new Set(list)];
}

const PROBE = 'import importlib.util,json,sys\nm=json.loads(sys.argv[1])\ndef has(n):\n  try:\n    return importlib.util.find_spec(n) is not None\n  except Exception:\n    return False\nprint(json.dumps({"v":sys.version.split()[0],"missing":[n for n in m if not has(n)]}))';

function probe(python: string, modules: string[]): Promise<{ version: string; missing: string[] } | undefined> {
  return new Promise((resolve) => {
    execFile(python, ['-c', PROBE, JSON.stringify(modules)], { timeout: 15_000 }, (err, stdout) => {
      if (err) return resolve(undefined);
      try {
        const r = JSON.parse(stdout) as { v: string; missing: string[] };
        resolve({ version: r.v, missing: r.missing });
      } catch {
        resolve(undefined);
      }
    });
  });
}

const cache = new Map<string, Promise<PythonChoice | undefined>>();

/** Picks the first candidate that imports everything, else the one missing least. Cached per input. */
export function choosePython(condaFile: string | Record<string, unknown> | undefined, candidates = candidateInterpreters()): Promise<PythonChoice | undefined> {
  const key = JSON.stringify([condaFile, candidates]);
  let hit = cache.get(key);
  if (hit === undefined) {
    hit = resolveChoice(condaFile, candidates);
    cache.set(key, hit);
    hit.catch(() => cache.delete(key));
  }
  return hit;
}

async function resolveChoice(condaFile: string | Record<string, unknown> | undefined, candidates: string[]): Promise<PythonChoice | undefined> {
  const notes: string[] = [];
  let conda: Record<string, unknown> = {};
  if (typeof condaFile === 'string') {
    try {
      conda = (parseYamlData((await readUserFile(condaFile, { what: 'conda_file', limit: CONDA_FILE_LIMIT })).toString('utf8')) ?? {}) as Record<string, unknown>;
    } catch (e) {
      notes.push(`could not read conda file ${condaFile}: ${(e as Error).message}`);
    }
  } else if (condaFile) conda = condaFile;
  const { packages, pythonVersion } = condaRequirements(conda);
  const modules = importNamesOf(packages);
  let best: PythonChoice | undefined;
  for (const python of candidates) {
    const r = await probe(python, modules);
    if (r === undefined) {
      notes.push(`${python}: not usable`);
      continue;
    }
    const choice: PythonChoice = { python, version: r.version, missing: r.missing, wanted: packages, notes };
    if (best === undefined || r.missing.length < best.missing.length) best = choice;
    if (r.missing.length === 0) break;
    notes.push(`${python} (${r.version}) lacks ${r.missing.join(', ')}`);
  }
  if (best && pythonVersion && !best.version.startsWith(pythonVersion.replace(/\.\*$/, ''))) {
    notes.push(`the environment asks for python ${pythonVersion}; using ${best.version}`);
  }
  return best;
}
