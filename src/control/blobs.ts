// The control plane's blob store (issue 9 item 6, docs/assets.md "Uploads"): where the CLI puts the files
// a document names, so that the server never opens a path its client chose. As `az ml` uploads local
// files to the workspace's storage account before it sends a deployment, the CLI asks which of its
// files' SHA-256 hashes the server lacks (`POST /api/blobs/missing`), streams only those
// (`PUT /api/blobs/<sha256>`), then the manifest of each tree (util/upload-manifest.ts), and sends the
// document with `upload:sha256:<manifest>` where the path was.
//
// Blobs live in `<workspace>/blobs/sha256/<2 hex>/<sha256>`, 0600. A PUT streams into a temporary file
// while hashing it, with a size limit checked against Content-Length before the first byte is read and
// again while reading; only a body whose SHA-256 is the name it was sent under is renamed into place, so a
// blob's name is always its content and memory stays bounded whatever the size (one stream buffer).

import { createHash, randomUUID } from 'node:crypto';
import { constants, createWriteStream, existsSync, statSync } from 'node:fs';
import { chmod, copyFile, mkdir, readFile, rename, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorOf, InfergateError } from '../errors/index.js';
import { MAX_MANIFEST_BYTES, parseManifest, parseUploadRef, type TreeManifest } from '../util/upload-manifest.js';

const GiB = 1024 * 1024 * 1024;
/** Largest single file accepted (a model checkpoint); `FileTooLarge` above it. */
export const DEFAULT_MAX_BLOB_BYTES = 16 * GiB;
/** Hashes in one `missing` question (about 6.6 MB of JSON, under the API's 10 MiB body limit). */
export const MAX_MISSING_QUERY = 100_000;

export class BlobStore {
  /** Bodies received and stored (a PUT of a blob the store had already is not counted). */
  stored = 0;

  constructor(
    readonly dir: string,
    readonly maxBlobBytes: number = DEFAULT_MAX_BLOB_BYTES,
  ) {}

  pathOf(sha256: string): string {
    return join(this.dir, 'sha256', sha256.slice(0, 2), sha256);
  }

  has(sha256: string): boolean {
    return existsSync(this.pathOf(sha256));
  }

  missing(hashes: readonly string[]): string[] {
    return [...new Set(hashes)].filter((h) => !this.has(h));
  }

  /**
   * Stores `body` under `sha256` if its bytes hash to it. `declared`: the Content-Length, refused at once
   * when over the limit. Returns whether a new blob was written (false: the store had it already).
   */
  async put(sha256: string, body: Readable, declared: number | undefined): Promise<{ created: boolean; size: number }> {
    if (declared !== undefined && declared > this.maxBlobBytes) throw this.tooLarge(sha256, declared);
    const final = this.pathOf(sha256);
    if (existsSync(final)) {
      body.resume(); // the bytes are known: drain them, the connection stays usable
      return { created: false, size: statSync(final).size };
    }
    const tmpDir = join(this.dir, '.tmp');
    await mkdir(tmpDir, { recursive: true, mode: 0o700 });
    const tmp = join(tmpDir, randomUUID());
    const h = createHash('sha256');
    let size = 0;
    const limit = this.maxBlobBytes;
    const meter = new Transform({
      transform: (chunk: Buffer, _enc, done) => {
        size += chunk.length;
        if (size > limit) return done(this.tooLarge(sha256, size));
        h.update(chunk);
        done(null, chunk);
      },
    });
    try {
      await pipeline(body, meter, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }));
      if (declared !== undefined && size !== declared) throw errorOf('BlobLengthMismatch', { sha256, size, declared });
      const got = h.digest('hex');
      if (got !== sha256) {
        throw errorOf('BlobHashMismatch', { sha256, actual: got });
      }
      await mkdir(join(this.dir, 'sha256', sha256.slice(0, 2)), { recursive: true, mode: 0o700 });
      await rename(tmp, final); // atomic: a concurrent PUT of the same blob writes the same bytes
      this.stored++;
      return { created: true, size };
    } catch (e) {
      await rm(tmp, { force: true });
      if (e instanceof InfergateError) throw e;
      const code = (e as NodeJS.ErrnoException).code;
      // The client went away mid-body (ECONNRESET, "aborted"): nothing stored, nothing to answer. The
      // error's code names it; its message is not sent (a disk error's would name our paths).
      throw errorOf('BlobIncomplete', { sha256, reason: typeof code === 'string' ? code : 'the body ended early' });
    }
  }

  private tooLarge(sha256: string, size: number): InfergateError {
    return errorOf('BlobTooLarge', { sha256, size: size > this.maxBlobBytes ? `over ${this.maxBlobBytes}` : size, limit: this.maxBlobBytes });
  }

  /** The manifest an `upload:sha256:...` reference names, checked (parseManifest), with every blob present. */
  async manifest(ref: string): Promise<TreeManifest> {
    const sha = parseUploadRef(ref);
    if (sha === undefined) throw errorOf('UploadRefInvalid', { ref });
    const file = this.pathOf(sha);
    let bytes: Buffer;
    try {
      if ((await stat(file)).size > MAX_MANIFEST_BYTES) throw errorOf('ManifestTooLarge', { ref, limit: MAX_MANIFEST_BYTES });
      bytes = await readFile(file);
    } catch (e) {
      if (e instanceof InfergateError) throw e;
      throw errorOf('UploadNotOnServer', { ref });
    }
    const m = parseManifest(bytes, ref);
    const absent = m.entries.filter((e) => e.type === 'file' && !this.has(e.sha256)).map((e) => e.path);
    if (absent.length) {
      throw errorOf('UploadIncomplete', { ref, count: absent.length, paths: `${absent.slice(0, 5).join(', ')}${absent.length > 5 ? ', ...' : ''}` });
    }
    return m;
  }

  /**
   * Writes the tree of `ref` below `into` (a folder the caller owns) and returns the path of its root:
   * folders 0755, files 0644 or 0755 (executable), content from the blob store (a reflink where the file
   * system has them). Paths were checked by parseManifest, so nothing is written outside `into`.
   */
  async materialise(ref: string, into: string): Promise<{ path: string; manifest: TreeManifest }> {
    const m = await this.manifest(ref);
    await mkdir(into, { recursive: true });
    for (const e of m.entries) {
      const dest = join(into, e.path);
      if (e.type === 'dir') {
        await mkdir(dest, { mode: 0o755 });
        continue;
      }
      const blob = this.pathOf(e.sha256);
      if ((await stat(blob)).size !== e.size) throw errorOf('UploadSizeMismatch', { ref, path: e.path, size: e.size });
      await copyFile(blob, dest, constants.COPYFILE_EXCL | constants.COPYFILE_FICLONE);
      await chmod(dest, e.executable ? 0o755 : 0o644);
    }
    return { path: join(into, m.root), manifest: m };
  }
}
