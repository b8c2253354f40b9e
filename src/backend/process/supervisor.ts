// The instance supervisor: how one instance host (runtime/host, or for a .py script runtime/python/
// infergate_host.py) is started, how its messages are read, and when a host that died is started again.
// Used by the process backend for every instance and by `infergate serve` (always host.ts) for its one
// script, so the two cannot drift (issue 10: serve had a copy with other restart constants).
//
// What stays with the caller: the host's environment (storage, Python choice, isolation) and what to
// do on each outcome — the backend turns them into instance states, serve into its HTTP answers.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostMessage } from '../../protocol/messages.js';
import { HostStdout } from '../host-stdout.js';

const HERE = dirname(fileURLToPath(import.meta.url));
/**
 * Under tsx (tests from src/) the runtime is .ts and needs the tsx loader; compiled, it is plain .js. The
 * loader is named by its resolved URL: an instance host runs in its app root, from where a bare `tsx`
 * does not resolve.
 */
const EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
export const RUNTIME_EXEC_ARGV = EXT === '.ts' ? ['--import', import.meta.resolve('tsx')] : [];
/** INFERGATE_HOST_NODE_ARGS: extra Node options for instance hosts, e.g. `--cpu-prof` (bench/profile.mjs). */
const HOST_EXEC_ARGV = [...RUNTIME_EXEC_ARGV, ...(process.env.INFERGATE_HOST_NODE_ARGS ?? '').split(' ').filter(Boolean)];
const HOST_SCRIPT = join(HERE, '..', '..', 'runtime', `host${EXT}`);
export const STORAGE_SCRIPT = join(HERE, '..', '..', 'runtime', `storage-initializer${EXT}`);
/** The Python instance host, beside the runtime (scripts/copy-assets.mjs copies it into dist/). */
export const PYTHON_HOST_SCRIPT = join(HERE, '..', '..', 'runtime', 'python', 'infergate_host.py');

/**
 * Crash back-off, as Kubernetes' "Back-off restarting failed container": 0.5 s doubling to 30 s, reset
 * once the host has been ready for a minute (kubelet resets after 10 minutes of running; a local
 * instance that served for a minute is healthy enough to earn a fast restart again).
 */
export const BACKOFF_BASE_MS = 500;
export const BACKOFF_MAX_MS = 30_000;
export const STABLE_AFTER_MS = 60_000;

export class RestartBackOff {
  /** Restarts since the last reset (ObservedInstance.restarts). */
  restarts = 0;

  /** The wait before the next start of a host that died; `readyAt` is when it last became ready (0: never). */
  next(readyAt: number, now = Date.now()): number {
    if (readyAt > 0 && now - readyAt > STABLE_AFTER_MS) this.restarts = 0;
    const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.min(this.restarts, 16));
    this.restarts++;
    return delay;
  }

  reset(): void {
    this.restarts = 0;
  }
}

/** Read by ld.so or glibc when any program starts (ld.so(8), GLIBC_TUNABLES, iconv's GCONV_PATH). */
function isLoaderVariable(name: string): boolean {
  return name.startsWith('LD_') || name === 'GCONV_PATH' || name === 'GLIBC_TUNABLES';
}

/**
 * An instance host must not outlive its server. It shuts down when its IPC channel closes
 * (runtime/host.ts), but that needs its event loop: a scoring module stuck in a synchronous loop would
 * keep it, and its CPU, for ever after a kill -9 of the server. So where util-linux's setpriv can set
 * it, the host starts with PR_SET_PDEATHSIG = SIGKILL (prctl(2)): the kernel kills it the moment the
 * server dies, as the Python workers do for their host (infergate_worker.py). setpriv execs Node in
 * place (same pid, same IPC descriptor). Checked once; without it, the IPC channel is the only guard.
 */
let setpriv: string | null | undefined;
export function pdeathsigWrapper(): string | null {
  setpriv ??= ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p) && spawnSync(p, ['--pdeathsig', 'KILL', '--', 'true'], { stdio: 'ignore', timeout: 5000 }).status === 0) ?? null;
  return setpriv;
}

/**
 * Which host runs a .py scoring script (issue 13): the interpreter to run infergate_host.py under, or
 * null for the Node host (runtime/host.ts, which relays to infergate_worker.py processes).
 *
 * With WORKER_COUNT=1 (the default) the Python host runs the script in its own process ("direct mode",
 * docs/protocol.md): no Node relay hop, 1.6-1.8x the Node host's sequential throughput and less than half
 * the CPU per request. It is not chosen:
 * - without the setpriv wrapper: a Python host has no IPC channel, so PR_SET_PDEATHSIG is its only way to
 *   die with the server (kill -9 of the server); host.ts has the IPC guard ('disconnect') besides;
 * - for WORKER_COUNT > 1: the Python host's relay measured 0.85-0.95x host.ts's (docs/protocol.md; and
 *   0.65x sequential, 0.74x at 64 in flight in bench/python-host.mjs on 2026-12-01), so host.ts stays the relay;
 * - for an mlflow deployment with batching (max_batch_size > 1): only host.ts batches (MlflowBatcher);
 * - with INFERGATE_PYTHON_HOST=node in the server's environment: the old path, kept for comparison;
 * - without INFERGATE_PYTHON (the backend always sets it for a Python deployment): host.ts's default.
 * The environment is the one host.ts would get; infergate_host.py passes the same variables on to the
 * script (absolute AML_APP_ROOT and AZUREML_ENTRY_SCRIPT, SCORING_TIMEOUT_MS) as host.ts gives its workers.
 */
export function pythonHostFor(env: NodeJS.ProcessEnv, wrapper: string | null): string | null {
  if (process.env.INFERGATE_PYTHON_HOST === 'node' || !wrapper) return null;
  const python = env.INFERGATE_PYTHON;
  const entry = env.AZUREML_ENTRY_SCRIPT ?? '';
  if (!python || !entry.toLowerCase().endsWith('.py')) return null;
  if ((env.WORKER_COUNT ?? '1') !== '1') return null;
  if (env.INFERGATE_NO_CODE) {
    try {
      const noCode = JSON.parse(env.INFERGATE_NO_CODE) as { kind?: string; batching?: { maxBatchSize?: number } };
      if (noCode.kind !== 'mlflow' || (noCode.batching?.maxBatchSize ?? 1) > 1) return null;
    } catch {
      return null; // host.ts reports what is wrong with it
    }
  }
  return python;
}

/** Hosts whose HostMessage comes as a stdout line (HOST_MESSAGE_PREFIX), not over IPC: the Python host. */
const messagesOnStdout = new WeakSet<ChildProcess>();

export interface SpawnHostOptions {
  /** The host's whole environment (runtime/contract.ts lists what it reads). */
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** setpriv to run through (null: fork directly); default: the parent-death wrapper when available. */
  wrapper?: string | null;
  /** setpriv arguments that drop to the instance's uid (isolation.ts asInstance), before --pdeathsig. */
  drop?: string[];
  /**
   * Run the Python instance host (infergate_host.py) under this interpreter instead of the Node host
   * (pythonHostFor decides; it needs `wrapper`). Its HostMessage is a stdout line: superviseHost reads it.
   */
  python?: string | null;
}

/**
 * Starts an instance host: stdout and stderr piped (its console log), and for the Node host an IPC
 * channel for HostMessage.
 */
export function spawnHost({ env, cwd, wrapper = pdeathsigWrapper(), drop = [], python = null }: SpawnHostOptions): ChildProcess {
  const stdio: ['ignore', 'pipe', 'pipe', 'ipc'] = ['ignore', 'pipe', 'pipe', 'ipc'];
  if (python && !wrapper) throw new Error('the Python instance host needs the setpriv wrapper (PR_SET_PDEATHSIG): it has no IPC channel');
  if (!wrapper) return fork(HOST_SCRIPT, [], { env, cwd, execArgv: HOST_EXEC_ARGV, stdio });
  // setpriv drops to the instance's uid (when isolating), then sets the parent-death signal (after the
  // change of credentials, which would clear it), then execs Node. setpriv itself runs as the server's
  // user (root when isolating): variables that steer the dynamic loader or libc (a deployment may opt in
  // to LD_* with its allow tag, spec/unsafe-env.ts) must not reach it, or LD_PRELOAD would run the
  // deployment's code as root. They are set again by env(1), which setpriv execs after dropping.
  const loaderVars = Object.keys(env).filter(isLoaderVariable);
  const wrapperEnv = loaderVars.length === 0 ? env : Object.fromEntries(Object.entries(env).filter(([k]) => !isLoaderVariable(k)));
  const reapply = loaderVars.length === 0 ? [] : ['/usr/bin/env', ...loaderVars.map((k) => `${k}=${env[k] ?? ''}`)];
  if (python) {
    // -u as host.ts starts its workers. No IPC channel: the HostMessage is a stdout line, and the
    // parent-death signal set by setpriv (kept across its exec) is what ends it with the server.
    const child = spawn(wrapper, [...drop, '--pdeathsig', 'KILL', '--', ...reapply, python, '-u', PYTHON_HOST_SCRIPT], { env: wrapperEnv, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    messagesOnStdout.add(child);
    return child;
  }
  return spawn(wrapper, [...drop, '--pdeathsig', 'KILL', '--', ...reapply, process.execPath, ...HOST_EXEC_ARGV, HOST_SCRIPT], { env: wrapperEnv, cwd, stdio });
}

/** How a supervised host ended. */
export type HostExit =
  /** It sent init-failed: final for this script (Azure: ResourceNotReady / UserScriptInitFailed). */
  | { kind: 'init-failed' }
  /** It exited before it was ready without saying why; `code` 3 is azmlinfsrv's "cannot load" exit. */
  | { kind: 'exited-before-ready'; code: number | null; signal: NodeJS.Signals | null }
  /** It was ready and died (a crash, a worker that died, a liveness kill): start it again after `delay`. */
  | { kind: 'crashed'; code: number | null; signal: NodeJS.Signals | null };

export interface HostEvents {
  onReady(pid: number): void;
  onInitFailed(code: string, message: string): void;
  /** Not called for a host the caller is stopping (`stopping()` true when it exits). */
  onExit(exit: HostExit): void;
}

/** The host's exit code for an unusable environment (protocol/messages.ts): the server's doing, not the script's. */
const EXIT_BAD_CONFIG = 2;
/** How long an exited Python host's stdout may stay open (a fork of the script holding it) before its exit is judged. */
const STDOUT_DRAIN_MS = 1000;

/**
 * Reads a host's messages and classifies its exit; `stopping` tells a stop asked for from a death.
 * `stdout`, when given, gets the host's stdout (its console log, with stderr): for the Python host
 * without its HostMessage line, which is taken out here as the docker backend does.
 */
export function superviseHost(child: ChildProcess, events: HostEvents, stopping: () => boolean, stdout?: (chunk: Buffer) => void): void {
  let ready = false;
  let initFailed = false;
  const onMessage = (m: Partial<HostMessage>) => {
    if (ready || initFailed) return; // exactly one is sent; anything after it is not the host's
    if (m.type === 'ready') {
      ready = true;
      events.onReady(m.pid ?? child.pid ?? 0);
    } else if (m.type === 'init-failed') {
      initFailed = true;
      events.onInitFailed(m.code ?? 'UserScriptInitFailed', m.message ?? 'init() failed');
    }
  };
  const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
    if (stopping()) return;
    if (initFailed) events.onExit({ kind: 'init-failed' });
    else if (!ready) events.onExit({ kind: 'exited-before-ready', code, signal });
    else events.onExit({ kind: 'crashed', code, signal });
  };
  if (!messagesOnStdout.has(child)) {
    if (stdout) child.stdout!.on('data', stdout);
    child.on('message', onMessage);
    child.once('exit', onExit);
    return;
  }
  // The Python host: its message is a line on stdout. An exit is judged once stdout is read to its end
  // ('exit' can come first), so an init-failed written just before exit 3 is never taken for silence.
  let ended = false;
  let exited: [number | null, NodeJS.Signals | null] | null = null;
  const lines = new HostStdout(onMessage, (chunk) => stdout?.(chunk));
  const out = child.stdout!;
  out.on('data', (chunk: Buffer) => lines.write(chunk));
  let judged = false;
  const judge = () => {
    if (judged || exited === null) return;
    judged = true;
    clearTimeout(drainTimer);
    lines.end();
    const [code, signal] = exited;
    if (!ready && !initFailed && code !== EXIT_BAD_CONFIG && !stopping()) {
      // In direct mode the script runs in the host's process: a script that ends it during import or
      // init() (os._exit, a crash in native code, the OOM killer) leaves no message. host.ts reports its
      // worker's death then as init-failed (python-pool.ts), final, not a restart: so is this.
      const how = signal !== null ? `signal ${signal}` : `exit code ${code}`;
      onMessage({ type: 'init-failed', code: 'UserScriptInitFailed', message: `The Python worker exited (${how}) before reporting the outcome of init(). See the console log.` });
    }
    onExit(code, signal);
  };
  let drainTimer: NodeJS.Timeout | undefined;
  out.once('close', () => {
    ended = true;
    judge();
  });
  child.once('exit', (code, signal) => {
    exited = [code, signal];
    if (ended) judge();
    else drainTimer = setTimeout(judge, STDOUT_DRAIN_MS);
  });
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process exited (at once if it already had). */
export function stopHost(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
