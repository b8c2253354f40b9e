// Reading a conda file's dependency lists (contract §1.6, §9.1): conda packages (`numpy=2.3.1`) and the
// pip list (`- pip: [joblib, ./wheels/pkg-1.0-py3-none-any.whl]`). Shared by the control plane (which
// stores the local files a pip list names when an environment is registered) and the process backend
// (which builds a virtual environment from the lists).

import { isAbsolute, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface CondaDependencies {
  /** Conda package specs as written (`numpy=2.3.1`, `conda-forge::scipy`), `pip` itself included. */
  conda: string[];
  /** pip entries as written: requirement specs, local files, and options (`--extra-index-url ...`). */
  pip: string[];
}

/** The dependency lists of a parsed conda file; anything malformed is skipped. */
export function condaDependencies(conda: unknown): CondaDependencies {
  const out: CondaDependencies = { conda: [], pip: [] };
  const deps = conda && typeof conda === 'object' ? (conda as { dependencies?: unknown }).dependencies : undefined;
  if (!Array.isArray(deps)) return out;
  for (const d of deps) {
    if (typeof d === 'string' || typeof d === 'number') out.conda.push(String(d).trim());
    else if (d && typeof d === 'object' && Array.isArray((d as { pip?: unknown }).pip)) {
      for (const p of (d as { pip: unknown[] }).pip) if (typeof p === 'string' || typeof p === 'number') out.pip.push(String(p).trim());
    }
  }
  return out;
}

const ARCHIVE = /\.(whl|tar\.gz|tgz|tar\.bz2|zip)$/i;

/**
 * Whether a pip entry names a local file or folder rather than a package on an index: `./x.whl`,
 * `../dist/pkg.tar.gz`, `/abs/path`, `file:///...`, or a bare archive name (`pkg-1.0-py3-none-any.whl`).
 */
export function isLocalPipEntry(entry: string): boolean {
  const s = entry.trim();
  if (s === '' || s.startsWith('-')) return false;
  if (/^file:/i.test(s)) return true;
  if (s.startsWith('./') || s.startsWith('../') || s.startsWith('/') || s === '.' || s === '..') return true;
  // A URL (https://.../pkg.whl) or a requirement with a version or marker is not a local file.
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(s) || /[=<>!~;@ ]/.test(s)) return false;
  return ARCHIVE.test(s);
}

/** The absolute path a local pip entry names; relative ones resolve against `baseDir` (the conda file's folder). */
export function localPipPath(entry: string, baseDir: string | undefined): string | undefined {
  const s = entry.trim();
  const p = /^file:/i.test(s) ? (s.startsWith('file://') ? fileURLToPath(s) : s.slice('file:'.length)) : s;
  if (isAbsolute(p)) return resolve(p);
  return baseDir === undefined ? undefined : resolve(baseDir, p);
}
