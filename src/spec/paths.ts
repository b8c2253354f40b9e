// Local paths in specs (contract §1.1): relative ones resolve against the YAML file's directory, and must
// exist at validation time so a typo is reported with its line instead of failing later in an instance.

import { statSync, type Stats } from 'node:fs';
import { isAbsolute, normalize, relative, resolve, sep } from 'node:path';
import { errorOf, formatProblem, locatedError } from '../errors/index.js';
import { notRegular, pathError } from '../util/files.js';
import { isUploadRef } from '../util/upload-manifest.js';
import { refine, report, str, to, type Cx, type Type } from './schema.js';
import type { Origin } from './tree.js';

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

/**
 * stat() of a path a document names; undefined when it does not exist. Anything that is neither a regular
 * file nor a directory (a FIFO, a device, a socket), a symbolic-link loop or an unreadable path is thrown
 * as PathNotReadable at once, with the key's file:line:column: it is not a mistake to list with the
 * others but a path that nothing may open (opening a FIFO blocks the reader; /dev/zero never ends).
 */
function statPath(abs: string, at: () => string): Stats | undefined {
  let st: Stats;
  try {
    st = statSync(abs);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw locatedError(at(), pathError('', abs, e));
  }
  if (!st.isFile() && !st.isDirectory()) throw locatedError(at(), notRegular('', abs, st, true));
  return st;
}

/** `file:line:column: key.path: ` for an error thrown while validating (problems carry it themselves). */
function where(cx: Cx, path: string, node: Origin): string {
  return formatProblem({ file: cx.file, ...(node.pos ? { line: node.pos.line, column: node.pos.column } : {}), path, message: '' });
}

export interface LocalPathRule {
  /** A file larger than this is FileTooLarge, thrown with the key's location (conda files). */
  maxBytes?: number;
}

/** A local file or folder (or a reference, kept as written). Decodes to an absolute, normalised path. */
export function localPath(expect?: 'file' | 'folder', rule: LocalPathRule = {}): Type<string> {
  return {
    label: 'a path',
    decode(node, path, cx) {
      const s = str.decode(node, path, cx);
      if (s === undefined || isUploadRef(s)) return s;
      if (/^upload:/i.test(s)) return report(cx, path, node, `'${s}' is not an upload reference: expected upload:sha256:<64 lower-case hex digits>`);
      if (cx.paths === 'uploads') {
        // The very value the server stored at this key for this deployment (before uploads existed), sent
        // back unchanged by `update --set`: kept, never opened. At another key it is a path like any other.
        if (cx.storedPaths?.get(path) === s) return s;
        // A registered asset (azureml:name:version, azureml:name@label) is resolved by the asset registry.
        // Any other URI is refused: nothing here fetches remote locations, and a made-up one such as
        // `x://../../etc` would reach the storage initializer as a relative path.
        if (/^azureml:(?!\/\/)/.test(s)) return s;
        // The control plane opens no path a client names: running as root it would copy /etc/shadow for
        // anyone who asks, and on another machine the path means nothing. The CLI uploads the files first.
        throw locatedError(where(cx, path, node), errorOf('ServerReadsNoPath', { path: s }));
      }
      if (isReference(s)) return s;
      let abs: string;
      if (isAbsolute(s)) abs = normalize(s);
      else if (cx.baseDir) abs = resolve(cx.baseDir, s);
      else return report(cx, path, node, `relative path '${s}' cannot be resolved here (no base directory); give an absolute path`);
      // Keep no trailing separator: `model/` and `model` are the same folder.
      if (abs.length > 1 && abs.endsWith(sep)) abs = abs.slice(0, -1);
      const shown = s === abs ? `'${abs}'` : `'${s}' (${abs})`;
      const st = statPath(abs, () => where(cx, path, node));
      if (!st) return report(cx, path, node, `path ${shown} does not exist`);
      const kind = st.isDirectory() ? 'folder' : 'file';
      if (expect && kind !== expect) return report(cx, path, node, `path ${shown} is a ${kind}, expected a ${expect}`);
      if (rule.maxBytes !== undefined && kind === 'file' && st.size > rule.maxBytes) {
        throw locatedError(where(cx, path, node), errorOf('YamlFileTooLarge', { path: abs, size: st.size, key: path.split('.').pop() ?? path, limit: rule.maxBytes }));
      }
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
  if (isReference(code) || isUploadRef(code)) return undefined; // an upload's script is checked by the server once it has the tree
  const abs = resolve(code, script);
  if (escapes(relative(code, abs))) return `scoring_script must be a path inside the code folder, got '${script}'`;
  const kind = statKind(abs);
  if (kind === 'file') return undefined;
  return kind ? `scoring script '${script}' is a folder, expected a file` : `scoring script '${script}' does not exist in the code folder ${code}`;
}

/**
 * The string values of a stored deployment's document by key path (`model.path`,
 * `code_configuration.code`, ...), as validation names them (Cx.storedPaths): a stored path is accepted
 * back only at its own key, never a value stored elsewhere (an environment variable, a tag) offered as a path.
 */
export function storedPathsOf(document: unknown, prefix = '', out = new Map<string, string>()): Map<string, string> {
  if (typeof document === 'string') out.set(prefix, document);
  else if (document !== null && typeof document === 'object' && !Array.isArray(document)) {
    for (const [k, v] of Object.entries(document)) storedPathsOf(v, prefix === '' ? k : `${prefix}.${k}`, out);
  }
  return out;
}
