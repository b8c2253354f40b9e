// Tools for the reliability suite (issue 8): raw sockets that misbehave on purpose, the server process's
// fd count and RSS from /proc, a seeded PRNG for the fuzz, and the "still serves" checks every attack ends
// with. Loopback only. Clients may come from other loopback addresses (127.0.0.2, ...: Linux routes the
// whole 127/8 to lo), so a test can be several "client addresses" at once, as the per-client limit sees.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { EXAMPLES, FIXTURES, SAMPLE_ANSWER, until, type CliResult, type Workspace } from '../e2e/harness.js';

export const SAMPLE_REQUEST = readFileSync(join(EXAMPLES, 'model-1', 'sample-request.json'));

/** Open file descriptors of a process (Linux). */
export function fdCount(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** A field of /proc/<pid>/status in MiB (VmRSS, VmHWM). */
export function vmMiB(pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS'): number {
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no ${field} for ${pid}`);
  return Number(m[1]) / 1024;
}

/** Resets VmHWM to the current RSS (proc(5): clear_refs, value 5), so VmHWM is the peak from now on. */
export function resetPeak(pid: number): void {
  writeFileSync(`/proc/${pid}/clear_refs`, '5');
}

/** Waits until the process's fd count is back within `slack` of `baseline`; returns the count. */
export async function fdsSettle(pid: number, baseline: number, slack: number, timeoutMs = 8000): Promise<number> {
  let last = fdCount(pid);
  try {
    await until(`fds of ${pid} back near ${baseline}`, async () => (last = fdCount(pid)) <= baseline + slack, timeoutMs, 100);
  } catch {
    assert.fail(`fd count of the server is ${last} ${timeoutMs} ms after the attack (baseline ${baseline}, allowed +${slack})`);
  }
  return last;
}

/** mulberry32: a small seeded PRNG, so a failing fuzz run can be repeated with its printed seed. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface RawOutcome {
  /** Everything the server sent. */
  data: Buffer;
  /** The status of the first response, 0 if none. */
  status: number;
  /** The server closed (FIN or RST) before we gave up. */
  closedByServer: boolean;
  error?: string;
}

export function statusOf(data: Buffer): number {
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(data.subarray(0, 16).toString('latin1'));
  return m ? Number(m[1]) : 0;
}

/**
 * One connection: writes `chunks` (with `gapMs` between them), then half-closes if `end`, and waits up to
 * `waitMs` for the server to close. Destroys the socket in any case: nothing outlives the call.
 */
export function rawExchange(port: number, chunks: Buffer[], o: { end?: boolean; waitMs?: number; gapMs?: number; localAddress?: string } = {}): Promise<RawOutcome> {
  return new Promise((resolve) => {
    const parts: Buffer[] = [];
    let closedByServer = false;
    let error: string | undefined;
    let done = false;
    const sock = connect({ port, host: '127.0.0.1', ...(o.localAddress ? { localAddress: o.localAddress } : {}) });
    const finish = () => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      const data = Buffer.concat(parts);
      resolve({ data, status: statusOf(data), closedByServer, ...(error ? { error } : {}) });
    };
    const timer = setTimeout(finish, o.waitMs ?? 2000);
    sock.on('data', (c: Buffer) => parts.push(c));
    sock.on('end', () => {
      closedByServer = true;
      finish();
    });
    sock.on('error', (e: NodeJS.ErrnoException) => {
      error = e.code ?? e.message;
      if (e.code === 'ECONNRESET' || e.code === 'EPIPE') closedByServer = true;
      finish();
    });
    sock.on('connect', async () => {
      for (let i = 0; i < chunks.length && !done; i++) {
        if (i > 0 && o.gapMs) await new Promise((r) => setTimeout(r, o.gapMs));
        if (!done) sock.write(chunks[i]);
      }
      if (o.end && !done) sock.end();
    });
  });
}

/** Runs `count` jobs, at most `width` at a time. */
export async function pool<T>(count: number, width: number, job: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array(count);
  let next = 0;
  await Promise.all(Array.from({ length: Math.min(width, count) }, async () => {
    while (next < count) {
      const i = next++;
      out[i] = await job(i);
    }
  }));
  return out;
}

/** Opens a connection and resolves once it is connected (or failed); the caller destroys it. */
export function openSocket(port: number, localAddress?: string): Promise<Socket> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1', ...(localAddress ? { localAddress } : {}) });
    s.on('error', () => {});
    s.once('connect', () => resolve(s));
    s.once('error', () => resolve(s));
    s.once('close', () => resolve(s));
  });
}

export interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** One HTTP request on a fresh connection (no keep-alive pool, so the test holds no socket afterwards). */
export function httpRequest(url: string, o: { method?: string; headers?: Record<string, string | string[]>; body?: Buffer | string; localAddress?: string; timeoutMs?: number } = {}): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: o.method ?? 'GET', headers: o.headers ?? {}, agent: false, ...(o.localAddress ? { localAddress: o.localAddress } : {}), timeout: o.timeoutMs ?? 10_000 }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (c: Buffer) => parts.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer in ${o.timeoutMs ?? 10_000} ms`)));
    req.on('error', reject);
    req.end(o.body);
  });
}

/** The sample request scores exactly Azure's sample answer (from `localAddress` if given). */
export async function assertServes(uri: string, key: string, localAddress?: string): Promise<void> {
  const r = await httpRequest(uri, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: SAMPLE_REQUEST, ...(localAddress ? { localAddress } : {}) });
  assert.equal(r.status, 200, `scoring after the attack: ${r.status} ${r.body}`);
  assert.equal(r.body, SAMPLE_ANSWER);
}

/** The control plane answers: its info route, and the CLI listing endpoints. */
export async function assertControlPlane(ws: Workspace, apiUrl: string, endpoint: string): Promise<void> {
  const info = await httpRequest(`${apiUrl}/api/info`, { headers: ws.ownerAuth });
  assert.equal(info.status, 200, `control plane after the attack: ${info.status} ${info.body}`);
  const shown = await ws.cli(['online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'provisioning_state']);
  assert.equal(shown.stdout, 'Succeeded\n', shown.stderr);
}

/** Creates an endpoint with the JS linear model (Azure's model-1 answers) as deployment `blue`; returns its scoring URI and key. */
export async function deployJsModel(ws: Workspace, endpoint: string, requestSettings = '{max_concurrent_requests_per_instance: 8}', instanceCount = 1): Promise<{ uri: string; key: string; dir: string }> {
  const dir = ws.scratch(join(FIXTURES, 'js-model'), `js-model-${endpoint}`);
  writeFileSync(join(dir, 'blue.yml'), `name: blue\nendpoint_name: ${endpoint}\nmodel: {path: model/}\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: ${instanceCount}\nrequest_settings: ${requestSettings}\n`);
  await ws.ok(['online-endpoint', 'create', '-n', endpoint]);
  await ws.ok(['online-deployment', 'create', '-f', join(dir, 'blue.yml'), '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', endpoint, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = (await ws.ok(['online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  return { uri, key, dir };
}

export interface BoundedRun extends CliResult {
  ms: number;
  /** Highest RSS of the process seen while it ran (MiB, sampled every 20 ms). */
  peakMiB: number;
  timedOut: boolean;
}

/** Runs the CLI with a time limit (killed beyond it), sampling its RSS. */
export function cliBounded(ws: Workspace, bin: string, args: string[], timeoutMs: number): Promise<BoundedRun> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [bin, ...args], { env: ws.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let peakMiB = 0;
    let timedOut = false;
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const sample = setInterval(() => {
      try {
        peakMiB = Math.max(peakMiB, vmMiB(child.pid!));
      } catch {
        /* exited */
      }
    }, 20);
    const killer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code) => {
      clearInterval(sample);
      clearTimeout(killer);
      resolve({ code: code ?? 1, stdout, stderr, ms: Date.now() - t0, peakMiB, timedOut });
    });
  });
}

/** Runs a command with a time limit. */
export function runBounded(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult & { ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}
