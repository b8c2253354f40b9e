// The REST API as the studio calls it: the same routes as the CLI, authenticated by the session cookie
// the sign-in link set. Every change carries X-Infergate-Studio (the server refuses a cookie-only change).

import { sha256 } from './sha256.js';

export type Json = Record<string, any>;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown[],
  ) {
    super(message);
  }
}

export async function api<T = Json>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { 'x-infergate-studio': '1' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, credentials: 'same-origin', ...(body !== undefined ? { body: JSON.stringify(body) } : {}) });
  const text = await res.text();
  // The session ended (expired, signed out elsewhere, token revoked): the frame asks again who we are and
  // shows the sign-in hint, which stops every page's polling rather than failing (and counting) each second.
  if (res.status === 401 && path !== '/api/whoami') dispatchEvent(new Event(SIGNED_OUT));
  if (!res.ok) {
    let e: { error?: { code?: string; message?: string; details?: unknown[] } } = {};
    try {
      e = JSON.parse(text);
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, e.error?.code ?? `HTTP ${res.status}`, e.error?.message ?? text, e.error?.details);
  }
  return (text === '' ? undefined : JSON.parse(text)) as T;
}

export const enc = encodeURIComponent;

export const SIGNED_OUT = 'infergate-studio-signed-out';

/** A tree chosen in the browser, uploaded as the CLI uploads one (docs/assets.md "Uploads"): its reference. */
export async function uploadTree(files: File[], single: boolean): Promise<string> {
  const hex = (b: ArrayBuffer) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
  // crypto.subtle exists only in a secure context (sha256.ts says why the stand-in is there).
  const sha = async (data: ArrayBuffer) => hex(globalThis.crypto?.subtle ? await crypto.subtle.digest('SHA-256', data) : sha256(new Uint8Array(data)).buffer as ArrayBuffer);
  const entries: Array<Record<string, unknown>> = [];
  const blobs = new Map<string, File>();
  let root: string;
  if (single) {
    const f = files[0];
    root = f.name;
    const h = await sha(await f.arrayBuffer());
    blobs.set(h, f);
    entries.push({ path: f.name, type: 'file', sha256: h, size: f.size, executable: false });
  } else {
    // webkitRelativePath is "<chosen folder>/<sub>/<file>": the folder is the tree's root.
    const paths = files.map((f) => ({ f, path: (f as File & { webkitRelativePath: string }).webkitRelativePath || f.name })).filter((x) => !/(^|\/)(__pycache__|\.git)(\/|$)/.test(x.path));
    paths.sort((a, b) => (a.path < b.path ? -1 : 1));
    root = paths[0]?.path.split('/')[0] ?? 'upload';
    const dirs = new Set<string>();
    for (const { f, path } of paths) {
      const parts = path.split('/');
      for (let i = 1; i < parts.length; i++) {
        const d = parts.slice(0, i).join('/');
        if (!dirs.has(d)) {
          dirs.add(d);
          entries.push({ path: d, type: 'dir' });
        }
      }
      const h = await sha(await f.arrayBuffer());
      blobs.set(h, f);
      entries.push({ path, type: 'file', sha256: h, size: f.size, executable: false });
    }
  }
  const manifest = new TextEncoder().encode(JSON.stringify({ format: 'infergate-tree/1', root, entries }));
  const manifestSha = await sha(manifest.buffer as ArrayBuffer);
  const { missing } = await api<{ missing: string[] }>('POST', '/api/blobs/missing', { sha256: [...blobs.keys(), manifestSha] });
  for (const h of missing) {
    const body = h === manifestSha ? manifest : blobs.get(h)!;
    const res = await fetch(`/api/blobs/${h}`, { method: 'PUT', headers: { 'content-type': 'application/octet-stream', 'x-infergate-studio': '1' }, body, credentials: 'same-origin' });
    if (!res.ok) throw new ApiError(res.status, 'UploadFailed', await res.text());
  }
  return `upload:sha256:${manifestSha}`;
}
