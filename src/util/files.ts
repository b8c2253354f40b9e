// Reading and copying paths a user names (CLI `-f`, `--request-file`, `conda_file`, `code`, `model.path`,
// local pip entries, the storage initializer's copies). Only regular files and directories are read:
//
// - Opening a FIFO blocks until someone writes to it. In the control plane that open runs on one of
//   libuv's four file-system threads, so four FIFOs (or one, plus get-logs and the backend's own reads
//   queued behind it) stall every file operation of the server. A character device such as /dev/zero or
//   /dev/urandom never ends, so "read the whole file" grows memory until the process dies.
// - So every path is stat()ed first (stat never blocks on a FIFO), anything but a regular file or
//   directory is refused at once, and the file is then opened with O_NONBLOCK and checked again with
//   fstat() on the opened descriptor: if the path was swapped for a FIFO between the two, the open does not
//   block and the fstat sees it.
// - Every read has a limit for its kind, checked from fstat before reading, and reading stops one byte past
//   the limit anyway (a file that grows while it is read).
// - Directory walks follow symbolic links (a copy gets real files, as `cp -L` does) but refuse a link that
//   leads back to a folder being walked (a loop), a link to nothing, and any FIFO, device or socket inside:
//   a copy that silently drops or hangs on an entry would not be the folder the user named.

import { closeSync, constants, fstatSync, openSync, readSync, statSync, type Stats } from 'node:fs';
import { chmod, lstat, mkdir, open, readdir, realpath, stat, utimes, type FileHandle } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { dirname, join, sep } from 'node:path';
import { errorOf, InfergateError } from '../errors/index.js';

const MiB = 1024 * 1024;
/** Endpoint, deployment, model and environment YAML files: the largest Azure example is 3 KiB. */
export const YAML_FILE_LIMIT = 4 * MiB;
/** Conda files: a few hundred bytes in practice; pip's own requirement files are rarely over 100 KiB. */
export const CONDA_FILE_LIMIT = 1 * MiB;
/** `invoke --request-file`: the router's default body limit (`infergate server --max-body-bytes`). */
export const REQUEST_FILE_LIMIT = 100 * MiB;

const O_READ = constants.O_RDONLY | constants.O_NONBLOCK;

/** What a path is, in words, for messages ("a FIFO (named pipe)"). */
export function describeStats(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a regular file';
}

const formatBytes = (n: number): string => (n >= MiB && n % MiB === 0 ? `${n} bytes (${n / MiB} MiB)` : `${n} bytes`);

export interface FileRule {
  /** Names the path in messages: `--file`, `conda_file`, `--request-file`, `code` ... */
  what: string;
  /** Largest size read, in bytes; larger is FileTooLarge. */
  limit: number;
  /** The code for a path that does not exist (default BadArgument). */
  missing?: 'BadArgument' | 'RequestFileInvalid';
}

/** The coded error for a failed stat/open of `path` (ENOENT, ELOOP, EACCES ...). */
export function pathError(what: string, path: string, err: unknown, missing: 'BadArgument' | 'RequestFileInvalid' = 'BadArgument'): InfergateError {
  if (err instanceof InfergateError) return err;
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ENOENT' || code === 'ENOTDIR') return errorOf(missing === 'RequestFileInvalid' ? 'RequestFileMissing' : 'PathMissing', { what, path });
  if (code === 'ELOOP') return errorOf('PathLoop', { what, path });
  if (code === 'EACCES' || code === 'EPERM') return errorOf('PathPermissionDenied', { what, path, errno: code });
  if (code === 'ENAMETOOLONG') return errorOf('PathTooLong', { what, path });
  return errorOf('PathUnreadable', { what, path, reason: code ?? (err as Error).message });
}

/** PathNotReadable for something that is not a regular file (`folderToo`: nor a directory). */
export function notRegular(what: string, path: string, st: Stats, folderToo = false): InfergateError {
  return errorOf(folderToo ? 'PathNotFileOrFolder' : 'PathNotRegularFile', { what, path, kind: describeStats(st) });
}

function checkFile(rule: FileRule, path: string, st: Stats): void {
  if (!st.isFile()) throw notRegular(rule.what, path, st);
  if (st.size > rule.limit) throw tooLarge(rule, path, st.size);
}

function tooLarge(rule: FileRule, path: string, size: number, grew = false): InfergateError {
  const limit = formatBytes(rule.limit);
  return grew ? errorOf('FileGrewTooLarge', { what: rule.what, path, limit }) : errorOf('FileTooLarge', { what: rule.what, path, size: formatBytes(size), limit });
}

/** Reads a regular file, whole, synchronously (the CLI). Throws PathNotReadable, FileTooLarge, or `missing`. */
export function readUserFileSync(path: string, rule: FileRule): Buffer {
  let fd: number;
  try {
    checkFile(rule, path, statSync(path));
    fd = openSync(path, O_READ);
  } catch (e) {
    throw pathError(rule.what, path, e, rule.missing);
  }
  try {
    checkFile(rule, path, fstatSync(fd));
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      // One byte past the limit tells a file that grew since fstat from one that is exactly at it.
      const chunk = Buffer.allocUnsafe(Math.min(MiB, rule.limit + 1 - total));
      const n = readSync(fd, chunk, 0, chunk.length, null);
      if (n === 0) break;
      chunks.push(n === chunk.length ? chunk : chunk.subarray(0, n));
      total += n;
      if (total > rule.limit) throw tooLarge(rule, path, total, true);
    }
    return Buffer.concat(chunks, total);
  } finally {
    closeSync(fd);
  }
}

/** Opens a regular file without blocking (O_NONBLOCK) and checks the descriptor itself. */
async function openRegular(path: string, rule: FileRule): Promise<{ handle: FileHandle; st: Stats }> {
  let handle: FileHandle;
  try {
    checkFile(rule, path, await stat(path));
    handle = await open(path, O_READ);
  } catch (e) {
    throw pathError(rule.what, path, e, rule.missing);
  }
  try {
    const st = await handle.stat();
    checkFile(rule, path, st);
    return { handle, st };
  } catch (e) {
    await handle.close();
    throw e;
  }
}

/** Reads a regular file, whole (the control plane, the backend). Never blocks a libuv thread on a FIFO. */
export async function readUserFile(path: string, rule: FileRule): Promise<Buffer> {
  const { handle } = await openRegular(path, rule);
  try {
    const chunks: Buffer[] = [];
    let total = 0;
    for (;;) {
      const chunk = Buffer.allocUnsafe(Math.min(MiB, rule.limit + 1 - total));
      const { bytesRead } = await handle.read(chunk, 0, chunk.length, null);
      if (bytesRead === 0) break;
      chunks.push(bytesRead === chunk.length ? chunk : chunk.subarray(0, bytesRead));
      total += bytesRead;
      if (total > rule.limit) throw tooLarge(rule, path, total, true);
    }
    return Buffer.concat(chunks, total);
  } finally {
    await handle.close();
  }
}

/** Feeds a regular file's bytes (as fstat sized them when it was opened) to `sink`, in order. */
export async function streamUserFile(path: string, what: string, sink: (chunk: Buffer) => void | Promise<void>): Promise<Stats> {
  const { handle, st } = await openRegular(path, { what, limit: Number.MAX_SAFE_INTEGER });
  try {
    const buf = Buffer.allocUnsafe(MiB);
    // Up to the size at open: a file that keeps growing (a log) cannot make the copy endless.
    for (let left = st.size; left > 0; ) {
      const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, left), null);
      if (bytesRead === 0) break;
      left -= bytesRead;
      await sink(buf.subarray(0, bytesRead));
    }
    return st;
  } finally {
    await handle.close();
  }
}

// ---- trees ---------------------------------------------------------------------------------------------

export interface TreeEntry {
  /** Path below the root, with '/' ('' for the root itself). */
  rel: string;
  /** Absolute path as walked (through any symbolic links). */
  abs: string;
  kind: 'file' | 'dir';
}

export interface WalkOptions {
  /** Names the root in messages (`code`, `model path` ...). */
  what: string;
  /** Entry names left out at every level below the root (`__pycache__`, `.git`). */
  skip?: ReadonlySet<string>;
  /**
   * Follow a symbolic link below the root only when it leads inside the root (uploads: a link in a model
   * folder to `/etc/shadow` or `~/.ssh` must not send that file to a server; the root itself may be a link).
   */
  confine?: boolean;
}

/**
 * A file or a folder tree in a fixed order (the root, then each folder's entries sorted by name, depth
 * first), following symbolic links. Throws PathNotReadable for a FIFO, device or socket anywhere in it, a
 * link to nothing, and a link that leads back to a folder being walked (which would never end).
 */
export async function* walkTree(root: string, o: WalkOptions): AsyncGenerator<TreeEntry> {
  // Each pending entry carries the identities (dev:ino) of the folders above it, to recognise a loop.
  const pending: { abs: string; rel: string; above: ReadonlySet<string> }[] = [{ abs: root, rel: '', above: new Set() }];
  let realRoot: string | undefined;
  while (pending.length) {
    const { abs, rel, above } = pending.pop()!;
    const inside = rel === '' ? '' : ` (inside ${o.what} ${root})`;
    if (o.confine && rel !== '') {
      if (realRoot === undefined) {
        try {
          realRoot = await realpath(root);
        } catch (e) {
          throw pathError(o.what, root, e);
        }
      }
      await checkConfined(abs, rel, realRoot, inside);
    }
    let st: Stats;
    try {
      st = await stat(abs);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      // readdir listed it, so ENOENT here is a symbolic link whose target is missing.
      if (rel !== '' && code === 'ENOENT') throw errorOf('LinkDangling', { path: abs, inside });
      throw pathError(rel === '' ? o.what : `${o.what} entry`, abs, e);
    }
    if (st.isFile()) {
      yield { rel, abs, kind: 'file' };
      continue;
    }
    if (!st.isDirectory()) throw errorOf('CopyNotFileOrFolder', { path: abs, inside, kind: describeStats(st) });
    const id = `${st.dev}:${st.ino}`;
    if (above.has(id)) throw errorOf('LinkLoop', { path: abs, inside });
    yield { rel, abs, kind: 'dir' };
    let names: string[];
    try {
      names = await readdir(abs);
    } catch (e) {
      throw pathError(rel === '' ? o.what : `${o.what} entry`, abs, e);
    }
    const below = new Set(above).add(id);
    names.sort();
    // Pushed in reverse so that they come off the stack in name order.
    for (let i = names.length - 1; i >= 0; i--) {
      if (o.skip?.has(names[i])) continue;
      pending.push({ abs: join(abs, names[i]), rel: rel ? `${rel}/${names[i]}` : names[i], above: below });
    }
  }
}

/** A symbolic link below an uploaded root must resolve inside it (WalkOptions.confine). */
async function checkConfined(abs: string, rel: string, realRoot: string, inside: string): Promise<void> {
  let l: Stats;
  try {
    l = await lstat(abs);
  } catch {
    return; // gone since readdir: the stat that follows reports it
  }
  if (!l.isSymbolicLink()) return;
  let target: string;
  try {
    target = await realpath(abs);
  } catch {
    return; // a dangling link or a loop: the stat that follows reports it with its own message
  }
  if (target === realRoot || target.startsWith(realRoot.endsWith(sep) ? realRoot : realRoot + sep)) return;
  throw errorOf('LinkOutsideUpload', { path: rel, inside, target });
}

/** A read stream of a regular file opened without blocking (O_NONBLOCK, fstat-checked), and its size. */
export async function openUserFileStream(path: string, what: string): Promise<{ stream: Readable; size: number }> {
  const { handle, st } = await openRegular(path, { what, limit: Number.MAX_SAFE_INTEGER });
  // Up to the size at open, as streamUserFile: a growing file cannot make the stream endless.
  if (st.size === 0) {
    await handle.close();
    return { stream: Readable.from([]), size: 0 };
  }
  return { stream: handle.createReadStream({ start: 0, end: st.size - 1 }), size: st.size };
}

/**
 * Copies a file or folder to `to` (which must not exist), as walkTree sees it: real files for links, modes
 * kept, timestamps too with `preserveTimestamps`. Returns the number of files and bytes copied.
 */
export async function copyTree(from: string, to: string, o: WalkOptions & { preserveTimestamps?: boolean }): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  await mkdir(dirname(to), { recursive: true });
  for await (const e of walkTree(from, o)) {
    const dest = e.rel === '' ? to : join(to, e.rel);
    if (e.kind === 'dir') {
      await mkdir(dest, { recursive: e.rel === '' });
      continue;
    }
    const out = await open(dest, 'wx');
    let st: Stats;
    try {
      st = await streamUserFile(e.abs, e.rel === '' ? o.what : `${o.what} entry`, async (chunk) => {
        await out.write(chunk);
      });
    } finally {
      await out.close();
    }
    await chmod(dest, st.mode & 0o7777);
    if (o.preserveTimestamps) await utimes(dest, st.atime, st.mtime);
    files++;
    bytes += st.size;
  }
  return { files, bytes };
}
