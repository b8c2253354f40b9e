// Python scoring: WORKER_COUNT persistent worker processes (python/infergate_worker.py), each fed frames
// on its stdin and answering on its stdout (DESIGN.md "The instance protocol"; measured 0.69-0.91x a bare
// Node server, reference/perf-baselines.md F2). Worker stderr is inherited: it is the console log.
//
// The host relays frames without decoding them: a REQUEST frame's id is overwritten in place with an id
// of the chosen worker's own id space (several router connections may use the same ids), and the
// worker's RESPONSE frame gets the original id back, again in place, and is queued to the connection it
// came from. The worker builds every response header itself (it has the request's headers at hand).
//
// CANCEL from a router (its deadline passed, or its client went away) is passed on to the worker that
// has the request, in the worker's id space, and the entry is marked cancelled. The worker skips a
// request it has not started and echoes the CANCEL back (so the id is known to be free again); one it is
// running finishes and its answer is dropped here. Either way the entry leaves `pending` only when the
// worker is done with the id: ids are never reused while a worker may still answer them.
//
// Start-up: each worker's first frame is its init report (RESPONSE, id 0, JSON {"ok": ...}; documented
// in infergate_worker.py); the pool is ready only when every worker reported success.
// A worker that exits later is fatal for the instance: its in-flight requests get 502 (as INSTANCE_ERROR
// frames: the router reports them as the instance's failure, not the model's answer) and the host shuts
// down non-zero so the backend restarts the instance (a fresh init() is the only safe recovery).

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeCancel, FRAME_CANCEL, FRAME_RESPONSE, FrameReader, IdAllocator, decodeResponse } from '../protocol/frame.js';
import { PendingTable } from '../protocol/pending.js';
import { log } from './log.js';
import { FrameWriter } from '../protocol/writer.js';
import { InitFailure, messageBody, type InitFailedCode, type Peer, type Scorer } from './scorer.js';

/**
 * The worker script beside this module: dist/runtime/python/ when compiled (the build copies *.py there,
 * scripts/copy-assets.mjs), src/runtime/python/ when run from source under tsx.
 */
export const WORKER_SCRIPT = fileURLToPath(new URL('./python/infergate_worker.py', import.meta.url));

const INIT_ID = 0;
const KILL_AFTER_MS = 2000;
const JSON_HEADERS = [['content-type', 'application/json']] as const;

interface Pending {
  /** null once the peer cancelled it: the answer, if one comes, is dropped. */
  peer: Peer | null;
  /** The id the peer chose. */
  id: number;
}

export interface PythonPoolOptions {
  python: string;
  workerCount: number;
  /** cwd of the workers (AML_APP_ROOT). */
  cwd: string;
  env: NodeJS.ProcessEnv;
  /** Called with true when every live worker's stdin is over its high-water mark, false when one drained. */
  onCongestion: (congested: boolean) => void;
  /** Called once if a worker dies after start-up (the instance must be restarted). */
  onFatal: (reason: string) => void;
}

class Worker {
  readonly proc: ChildProcess;
  readonly out: FrameWriter;
  readonly pending = new PendingTable<Pending>();
  /** 1..2^32-1 (0 is the init report), never an id still pending (protocol/frame.ts IdAllocator). */
  readonly ids = new IdAllocator();
  private initialized = false;
  exited = false;
  /** Settles with the init report. */
  readonly ready: Promise<void>;
  /** Resolves when the process is gone and its stdout is closed. */
  readonly gone: Promise<void>;

  constructor(pool: PythonPool, opts: PythonPoolOptions) {
    this.proc = spawn(opts.python, ['-u', WORKER_SCRIPT], {
      cwd: opts.cwd,
      env: opts.env,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    const stdin = this.proc.stdin!;
    const stdout = this.proc.stdout!;
    this.out = new FrameWriter(stdin, { onBlockedChange: () => pool.congestion(), name: `The stdin of Python worker ${this.proc.pid}` });
    // EPIPE after the worker died: the 'close' handler deals with the consequences.
    stdin.on('error', () => {});

    let resolveReady!: () => void;
    let rejectReady!: (err: InitFailure) => void;
    this.ready = new Promise<void>((res, rej) => {
      resolveReady = res;
      rejectReady = rej;
    });
    const fail = (code: InitFailedCode, message: string) => {
      if (this.initialized) return;
      this.initialized = true;
      rejectReady(new InitFailure(code, message));
    };

    const reader = new FrameReader((frame, type, id) => {
      if (type === FRAME_CANCEL) {
        // The worker dropped a cancelled request without running it: the id is free again.
        if (this.initialized) this.pending.take(id);
        return;
      }
      if (type !== FRAME_RESPONSE) return;
      if (!this.initialized) {
        if (id !== INIT_ID) return fail('UserScriptInitFailed', `Python worker ${this.proc.pid} answered before reporting init.`);
        const report = parseInitReport(frame);
        if (report.ok) {
          this.initialized = true;
          resolveReady();
        } else {
          fail(report.code, report.message);
        }
        return;
      }
      const p = this.pending.take(id);
      if (p === undefined) return; // answered already (e.g. 502 after a crash) or never asked
      if (p.peer === null || p.peer.closed) return; // cancelled, or its router went away
      frame.writeUInt32BE(p.id, 4);
      p.peer.sendFrame(frame);
    });
    stdout.on('data', (chunk: Buffer) => reader.push(chunk));

    let resolveGone!: () => void;
    this.gone = new Promise<void>((res) => (resolveGone = res));
    this.proc.on('error', (err) => {
      // spawn failed (ENOENT, EACCES): the interpreter chosen for the environment cannot run.
      this.exited = true;
      fail('UserScriptImportError', `Could not start the Python interpreter '${opts.python}': ${err.message}`);
      resolveGone();
    });
    // 'close', not 'exit': it comes after the worker's stdout is fully read, so a failure report (or an
    // answer) written just before the worker exited is never mistaken for silence.
    this.proc.on('close', (code, signal) => {
      this.exited = true;
      const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
      fail('UserScriptInitFailed', `The Python worker exited (${how}) before reporting the outcome of init(). See the console log.`);
      pool.workerExited(this, how);
      resolveGone();
    });
  }

}

function parseInitReport(frame: Buffer): { ok: true } | { ok: false; code: InitFailedCode; message: string } {
  try {
    const r = decodeResponse(frame);
    const report = JSON.parse(r.body.toString('utf8')) as { ok?: unknown; code?: unknown; message?: unknown };
    if (report.ok === true) return { ok: true };
    const code = report.code === 'UserScriptImportError' || report.code === 'UserScriptFunctionNotFound' ? report.code : 'UserScriptInitFailed';
    return { ok: false, code, message: typeof report.message === 'string' ? report.message : 'init() failed.' };
  } catch (err) {
    return { ok: false, code: 'UserScriptInitFailed', message: `The Python worker sent an unreadable init report: ${String(err)}` };
  }
}

export class PythonPool implements Scorer {
  private readonly workers: Worker[] = [];
  /** Every live worker's stdin pipe is over its high-water mark. */
  private congested = false;
  private started = false;
  private stopping = false;
  private fatal = false;

  private constructor(private readonly opts: PythonPoolOptions) {}

  /** Spawns the workers and resolves when all of them ran init(); rejects (after killing them) otherwise. */
  static async start(opts: PythonPoolOptions): Promise<PythonPool> {
    const pool = new PythonPool(opts);
    for (let i = 0; i < opts.workerCount; i++) pool.workers.push(new Worker(pool, opts));
    try {
      await Promise.all(pool.workers.map((w) => w.ready));
    } catch (err) {
      await pool.stop();
      throw err;
    }
    pool.started = true;
    for (const w of pool.workers) log('I', 'azmlinfsrv', `Worker with pid ${w.proc.pid} ready for serving traffic`);
    return pool;
  }

  get inflight(): number {
    let n = 0;
    for (const w of this.workers) n += w.pending.size;
    return n;
  }

  handle(peer: Peer, frame: Buffer, id: number): void {
    // The live worker with the fewest outstanding requests, preferring one whose stdin pipe is not full
    // (WORKER_COUNT is small: a scan is cheapest).
    const workers = this.workers;
    let best: Worker | undefined;
    for (let i = 0; i < workers.length; i++) {
      const w = workers[i];
      if (w.exited) continue;
      if (
        best === undefined ||
        (best.out.isBlocked && !w.out.isBlocked) ||
        (best.out.isBlocked === w.out.isBlocked && w.pending.size < best.pending.size)
      ) {
        best = w;
      }
    }
    if (best === undefined) {
      peer.respond(id, 503, JSON_HEADERS, messageBody('No Python worker is running.'), true);
      return;
    }
    const hostId = best.pending.add(best.ids, { peer, id });
    frame.writeUInt32BE(hostId, 4); // in place: the frame is ours (see Scorer.handle)
    best.out.push(frame);
  }

  /**
   * CANCEL from a router connection. A scan of the pending requests: CANCELs are rare (timeouts, clients
   * gone) and pending is bounded by the deployment's max_concurrent_requests_per_instance, while a
   * reverse map would cost an entry on every request.
   */
  cancel(peer: Peer, id: number): void {
    for (const w of this.workers) {
      if (w.exited) continue;
      const hostId = w.pending.findId((p) => p.peer === peer && p.id === id);
      if (hostId < 0) continue;
      w.pending.get(hostId)!.peer = null;
      w.out.push(encodeCancel(hostId));
      return;
    }
  }

  /**
   * From a worker's FrameWriter, when its stdin pipe filled up or drained. Reading from the routers pauses only
   * when every live worker is full: until then handle() sends new requests to the ones that are not.
   */
  congestion(): void {
    let live = false;
    let allBlocked = true;
    for (const w of this.workers) {
      if (w.exited) continue;
      live = true;
      if (!w.out.isBlocked) {
        allBlocked = false;
        break;
      }
    }
    const congested = live && allBlocked;
    if (congested !== this.congested) {
      this.congested = congested;
      this.opts.onCongestion(congested);
    }
  }

  workerExited(w: Worker, how: string): void {
    this.congestion(); // a dead worker's pipe will never drain: stop counting it
    if (this.stopping || !this.started) return; // start() reports failures during start-up itself
    const failed = w.pending.size;
    if (failed > 0) {
      const body = messageBody(`The scoring worker (pid ${w.proc.pid}) exited unexpectedly (${how}) while handling the request. Check the logs for more info.`);
      for (const [, p] of w.pending.drain()) p.peer?.respond(p.id, 502, JSON_HEADERS, body, true);
    }
    log('E', 'azmlinfsrv', `Python worker pid ${w.proc.pid} exited unexpectedly (${how}); ${failed} in-flight request(s) answered with 502.`);
    if (!this.fatal) {
      this.fatal = true;
      this.opts.onFatal(`Python worker pid ${w.proc.pid} exited (${how})`);
    }
  }

  /** Closes every worker's stdin (the worker finishes what it read, then exits), SIGKILL after 2 s. */
  async stop(): Promise<void> {
    this.stopping = true;
    await Promise.all(
      this.workers.map(async (w) => {
        if (w.exited) return w.gone;
        const timer = setTimeout(() => w.proc.kill('SIGKILL'), KILL_AFTER_MS);
        w.out.flush();
        w.proc.stdin?.end();
        await w.gone;
        clearTimeout(timer);
      }),
    );
  }
}
