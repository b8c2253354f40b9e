// Uploaded trees (docs/assets.md "Uploads"): how the CLI hands a model, code folder or conda file to a
// control plane that never reads a path its client names (issue 9, item 6). As `az` uploads local files
// to the workspace's storage account before it sends the document, the CLI uploads each file it names to
// the server's content-addressed blob store and sends, in place of the path, a reference to a manifest:
//
//   upload:sha256:<64 hex digits>        (the SHA-256 of the manifest's own bytes, itself a blob)
//
// The manifest lists a tree below a virtual base folder. `root` is the top-level entry the document
// meant (the model file or folder, the code folder, the conda file); a conda file's tree also holds the
// local files its pip list names, at their places relative to it. A single file is a one-entry tree.
// Shared by the CLI (which builds manifests) and the control plane (which validates and materialises them).

import { createHash } from 'node:crypto';
import { errorOf } from '../errors/index.js';

export const MANIFEST_FORMAT = 'infergate-tree/1';

export interface ManifestFile {
  path: string;
  type: 'file';
  sha256: string;
  size: number;
  /** Any execute bit set on the source: materialised 0755, else 0644 (git's rule: modes are not kept). */
  executable: boolean;
}

export interface ManifestDir {
  path: string;
  type: 'dir';
}

export type ManifestEntry = ManifestFile | ManifestDir;

export interface TreeManifest {
  format: typeof MANIFEST_FORMAT;
  /** The top-level entry the reference stands for. */
  root: string;
  /** Every folder and file, a folder before anything inside it, in walk order (the content hash's order). */
  entries: ManifestEntry[];
}

const SHA256 = /^[0-9a-f]{64}$/;
const REF = /^upload:sha256:([0-9a-f]{64})$/;

export const isSha256 = (s: unknown): s is string => typeof s === 'string' && SHA256.test(s);

/** The reference a document carries for an uploaded tree. */
export const uploadRef = (manifestSha256: string): string => `upload:sha256:${manifestSha256}`;

/** The manifest hash of an `upload:sha256:...` reference; undefined for anything else. */
export function parseUploadRef(s: string): string | undefined {
  return REF.exec(s)?.[1];
}

export const isUploadRef = (s: string): boolean => REF.test(s);

/** The manifest's bytes: JSON with keys in a fixed order, so the same tree always has the same hash. */
export function manifestBytes(m: TreeManifest): Buffer {
  const entries = m.entries.map((e) =>
    e.type === 'dir' ? { path: e.path, type: e.type } : { path: e.path, type: e.type, sha256: e.sha256, size: e.size, executable: e.executable },
  );
  return Buffer.from(JSON.stringify({ format: m.format, root: m.root, entries }));
}

export const sha256Hex = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** Entries in one manifest (a tree with more is refused: its materialisation would exhaust inodes first). */
export const MAX_MANIFEST_ENTRIES = 200_000;
/** The manifest blob itself. */
export const MAX_MANIFEST_BYTES = 64 * 1024 * 1024;
/** One path inside a tree (Linux PATH_MAX). */
const MAX_PATH = 4096;

/** A relative path of '/'-separated names, none empty, '.', '..', or holding NUL or a backslash. */
function badPath(p: unknown): string | undefined {
  if (typeof p !== 'string' || p === '') return 'an empty path';
  if (p.length > MAX_PATH) return `a path longer than ${MAX_PATH} characters`;
  if (p.startsWith('/')) return `an absolute path '${p}'`;
  for (const seg of p.split('/')) {
    if (seg === '' || seg === '.' || seg === '..') return `the path '${p}', which is not a plain relative path`;
    if (/[\0\\]/.test(seg)) return `the path ${JSON.stringify(p)}, which holds a NUL or a backslash`;
  }
  return undefined;
}

/**
 * Parses and checks a manifest received from a client: every path plain and relative (no `..`, nothing
 * absolute), each folder listed before its contents, no path twice, hashes and sizes well-formed, and the
 * root a top-level entry. Anything else is BadArgument: the server writes only inside the folder it chose.
 */
export function parseManifest(bytes: Buffer, ref: string): TreeManifest {
  const bad = (why: string) => errorOf('ManifestInvalid', { ref, problem: why });
  let m: unknown;
  try {
    m = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw bad('it is not JSON');
  }
  const o = m as Partial<TreeManifest>;
  if (!o || typeof o !== 'object' || o.format !== MANIFEST_FORMAT) throw bad(`format must be '${MANIFEST_FORMAT}'`);
  if (!Array.isArray(o.entries) || o.entries.length === 0) throw bad('it lists no entries');
  if (o.entries.length > MAX_MANIFEST_ENTRIES) throw bad(`it lists ${o.entries.length} entries, more than ${MAX_MANIFEST_ENTRIES}`);
  const rootWhy = badPath(o.root);
  if (rootWhy || o.root!.includes('/')) throw bad(`root must be one top-level name, got ${rootWhy ?? `'${o.root}'`}`);
  const dirs = new Set<string>();
  const seen = new Set<string>();
  const entries: ManifestEntry[] = [];
  for (const e of o.entries as unknown[]) {
    const x = e as Partial<Omit<ManifestFile, 'type'>> & { type?: unknown };
    if (!x || typeof x !== 'object') throw bad('an entry is not an object');
    const why = badPath(x.path);
    if (why) throw bad(`an entry has ${why}`);
    const path = x.path!;
    if (seen.has(path)) throw bad(`'${path}' is listed twice`);
    const slash = path.lastIndexOf('/');
    if (slash > 0 && !dirs.has(path.slice(0, slash))) throw bad(`'${path}' comes before its folder '${path.slice(0, slash)}'`);
    seen.add(path);
    if (x.type === 'dir') {
      dirs.add(path);
      entries.push({ path, type: 'dir' });
    } else if (x.type === 'file') {
      if (!isSha256(x.sha256)) throw bad(`'${path}' has no valid sha256`);
      if (typeof x.size !== 'number' || !Number.isSafeInteger(x.size) || x.size < 0) throw bad(`'${path}' has no valid size`);
      entries.push({ path, type: 'file', sha256: x.sha256, size: x.size, executable: x.executable === true });
    } else throw bad(`'${path}' has type ${JSON.stringify(x.type)}; only 'file' and 'dir' are accepted`);
  }
  if (!seen.has(o.root!)) throw bad(`the root '${o.root}' is not one of its entries`);
  return { format: MANIFEST_FORMAT, root: o.root!, entries };
}
