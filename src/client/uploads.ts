// Uploading local files to a control plane (docs/assets.md "Uploads"; the server side is api/uploads.ts).
// As `az ml` uploads a deployment's local model, code and conda files to the workspace's storage before
// it sends the document, the CLI turns each local path into an uploaded tree: it walks the file or folder
// (regular files and folders only; a symbolic link is followed only when it stays inside the folder),
// hashes every file (SHA-256), builds the tree's manifest, asks the server which hashes it lacks, and
// streams only those. The same files a second time send nothing but the question.

import { basename } from 'node:path';
import { Readable, Transform } from 'node:stream';
import { openUserFileStream, streamUserFile, walkTree } from '../util/files.js';
import { manifestBytes, MANIFEST_FORMAT, sha256Hex, uploadRef, type ManifestEntry, type TreeManifest } from '../util/upload-manifest.js';
import { createHash } from 'node:crypto';

/** What the uploader needs of a control plane (Client has both; tests may pass their own). */
export interface BlobSink {
  blobsMissing(sha256: string[]): Promise<string[]>;
  putBlob(sha256: string, size: number, body: Readable): Promise<unknown>;
}

interface PendingBlob {
  size: number;
  open: () => Promise<Readable>;
}

/** Hashes asked about in one question (the server takes up to 100,000). */
const MISSING_BATCH = 10_000;

export interface UploadReport {
  /** Files (and manifests) the server lacked and that were sent. */
  sent: number;
  bytes: number;
  /** Files (and manifests) the server had already. */
  skipped: number;
}

export class Uploader {
  private readonly blobs = new Map<string, PendingBlob>();

  /**
   * `onProgress(sent bytes, total bytes)`: called as bytes go out (the CLI draws a progress line on a
   * terminal for large uploads).
   */
  constructor(
    private readonly sink: BlobSink,
    private readonly onProgress?: (sent: number, total: number, files: number) => void,
  ) {}

  /** A local file or folder (absolute path) as an uploaded tree; returns its `upload:sha256:` reference. */
  async tree(path: string, what: string, o: { skip?: ReadonlySet<string> } = {}): Promise<string> {
    const root = basename(path);
    const entries: ManifestEntry[] = [];
    await this.walk(path, root, what, o.skip, entries);
    return this.manifest(root, entries);
  }

  /**
   * A tree of one root file (given as bytes: a conda file the CLI may have rewritten) and local files or
   * folders beside it at relative places (the pip entries inside the conda file's folder).
   */
  async bundle(root: string, rootBytes: Buffer, beside: { rel: string; abs: string }[], what: string): Promise<string> {
    const byPath = new Map<string, ManifestEntry>();
    const sha = sha256Hex(rootBytes);
    this.blobs.set(sha, { size: rootBytes.length, open: async () => Readable.from([rootBytes]) });
    byPath.set(root, { path: root, type: 'file', sha256: sha, size: rootBytes.length, executable: false });
    for (const b of beside) {
      const parts = b.rel.split('/');
      for (let i = 1; i < parts.length; i++) {
        const dir = parts.slice(0, i).join('/');
        if (!byPath.has(dir)) byPath.set(dir, { path: dir, type: 'dir' });
      }
      const found: ManifestEntry[] = [];
      await this.walk(b.abs, b.rel, what, undefined, found);
      for (const e of found) if (!byPath.has(e.path)) byPath.set(e.path, e);
    }
    // Sorted, a folder comes before everything inside it (a prefix sorts first), as manifests require.
    const entries = [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
    return this.manifest(root, entries);
  }

  private async walk(path: string, prefix: string, what: string, skip: ReadonlySet<string> | undefined, out: ManifestEntry[]): Promise<void> {
    for await (const e of walkTree(path, { what, confine: true, ...(skip ? { skip } : {}) })) {
      const p = e.rel === '' ? prefix : `${prefix}/${e.rel}`;
      if (e.kind === 'dir') {
        out.push({ path: p, type: 'dir' });
        continue;
      }
      const h = createHash('sha256');
      const st = await streamUserFile(e.abs, e.rel === '' ? what : `${what} entry`, (chunk) => {
        h.update(chunk);
      });
      const sha = h.digest('hex');
      const abs = e.abs;
      this.blobs.set(sha, { size: st.size, open: async () => (await openUserFileStream(abs, what)).stream });
      out.push({ path: p, type: 'file', sha256: sha, size: st.size, executable: (st.mode & 0o111) !== 0 });
    }
  }

  private manifest(root: string, entries: ManifestEntry[]): string {
    const m: TreeManifest = { format: MANIFEST_FORMAT, root, entries };
    const bytes = manifestBytes(m);
    const sha = sha256Hex(bytes);
    this.blobs.set(sha, { size: bytes.length, open: async () => Readable.from([bytes]) });
    return uploadRef(sha);
  }

  /** Asks which blobs the server lacks and streams those, files before the manifests that list them. */
  async flush(): Promise<UploadReport> {
    const all = [...this.blobs.keys()];
    const missing = new Set<string>();
    for (let i = 0; i < all.length; i += MISSING_BATCH) for (const h of await this.sink.blobsMissing(all.slice(i, i + MISSING_BATCH))) missing.add(h);
    const toSend = all.filter((h) => missing.has(h));
    const total = toSend.reduce((n, h) => n + this.blobs.get(h)!.size, 0);
    let sent = 0;
    for (const h of toSend) {
      const b = this.blobs.get(h)!;
      const counter = new Transform({
        transform: (chunk: Buffer, _enc, done) => {
          sent += chunk.length;
          this.onProgress?.(sent, total, toSend.length);
          done(null, chunk);
        },
      });
      const source = await b.open();
      source.on('error', (e) => counter.destroy(e));
      await this.sink.putBlob(h, b.size, source.pipe(counter));
    }
    this.blobs.clear();
    return { sent: toSend.length, bytes: total, skipped: all.length - toSend.length };
  }
}
