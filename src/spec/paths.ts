// Local paths in specs (contract §1.1): relative ones resolve against the YAML file's directory, and must
// exist at validation time so a typo is reported with its line instead of failing later in an instance.

import { statSync } from 'node:fs';
import { isAbsolute, normalize, relative, resolve, sep } from 'node:path';
import { refine, report, str, to, type Type } from './schema.js';

/** `azureml:...`, `azureml://...`, `https://...` and other URIs name remote assets, not local paths. */
export function isReference(s: string): boolean {
  return s.startsWith('azureml:') || /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\//.test(s);
}

function statKind(p: string): 'file' | 'folder' | undefined {
  try {
    const st = statSync(p);
    return st.isDirectory() ? 'folder' : 'file';
  } catch {
    return undefined;
  }
}

/** A local file or folder (or a reference, kept as written). Decodes to an absolute, normalised path. */
export function localPath(expect?: 'file' | 'folder'): Type<string> {
  return {
    label: 'a path',
    decode(node, path, cx) {
      const s = str.decode(node, path, cx);
      if (s === undefined || isReference(s)) return s;
      let abs: string;
      if (isAbsolute(s)) abs = normalize(s);
      else if (cx.baseDir) abs = resolve(cx.baseDir, s);
      else return report(cx, path, node, `relative path '${s}' cannot be resolved here (no base directory); give an absolute path`);
      // Keep no trailing separator: `model/` and `model` are the same folder.
      if (abs.length > 1 && abs.endsWith(sep)) abs = abs.slice(0, -1);
      const kind = statKind(abs);
      const shown = s === abs ? `'${abs}'` : `'${s}' (${abs})`;
      if (!kind) return report(cx, path, node, `path ${shown} does not exist`);
      if (expect && kind !== expect) return report(cx, path, node, `path ${shown} is a ${kind}, expected a ${expect}`);
      return abs;
    },
  };
}

/**
 * The scoring script: relative to the code folder and inside it (DESIGN: paths cannot escape their base
 * directory). Normalised, with forward slashes, so `./score.py` and `score.py` are the same spec.
 */
export const scriptPath: Type<string> = to(
  refine(str, (s) => (isAbsolute(s) || escapes(normaliseScript(s)) ? `scoring_script must be a path inside the code folder, got '${s}'` : undefined)),
  (s) => normaliseScript(s),
);

const normaliseScript = (s: string): string => normalize(s).split(sep).join('/');
const escapes = (rel: string): boolean => rel === '..' || rel.startsWith('../') || rel.startsWith('..' + sep);

/** Checks that the scoring script exists inside a local code folder; a message when it does not. */
export function checkScript(code: string, script: string): string | undefined {
  if (isReference(code)) return undefined;
  const abs = resolve(code, script);
  if (escapes(relative(code, abs))) return `scoring_script must be a path inside the code folder, got '${script}'`;
  const kind = statKind(abs);
  if (kind === 'file') return undefined;
  return kind ? `scoring script '${script}' is a folder, expected a file` : `scoring script '${script}' does not exist in the code folder ${code}`;
}
