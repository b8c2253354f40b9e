// The instance supervisor: how one instance host (runtime/host) is started, how its IPC messages are
// read, and when a host that died is started again. Used by the process backend for every instance and
// by `infergate serve` for its one script, so the two cannot drift (issue 10: serve had a copy with
// other restart constants).
//
// What stays with the caller: the host's environment (storage, Python choice, isolation) and what to
// do on each outcome — the backend turns them into instance states, serve into its HTTP answers.

import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { HostMessage } from '../../protocol/messages.js';

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

export interface SpawnHostOptions {
  /** The host's whole environment (runtime/contract.ts lists what it reads). */
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** setpriv to run through (null: fork directly); default: the parent-death wrapper when available. */
  wrapper?: string | null;
  /** setpriv arguments that drop to the instance's uid (isolation.ts asInstance), before --pdeathsig. */
  drop?: string[];
}

/** Starts an instance host: stdout and stderr piped (its console log), an IPC channel for HostMessage. */
export function spawnHost({ env, cwd, wrapper = pdeathsigWrapper(), drop = [] }: SpawnHostOptions): ChildProcess {
  const stdio: ['ignore', 'pipe', 'pipe', 'ipc'] = ['ignore', 'pipe', 'pipe', 'ipc'];
  if (!wrapper) return fork(HOST_SCRIPT, [], { env, cwd, execArgv: HOST_EXEC_ARGV, stdio });
  // setpriv drops to the instance's uid (when isolating), then sets the parent-death signal (after the
  // change of credentials, which would clear it), then execs Node. setpriv itself runs as the server's
  // user (root when isolating): variables that steer the dynamic loader or libc (a deployment may opt in
  // to LD_* with its allow tag, spec/unsafe-env.ts) must not reach it, or LD_PRELOAD would run the
  // deployment's code as root. They are set again by env(1), which setpriv execs after dropping.
  const loaderVars = Object.keys(env).filter(isLoaderVariable);
  const wrapperEnv = loaderVars.length === 0 ? env : Object.fromEntries(Object.entries(env).filter(([k]) => !isLoaderVariable(k)));
  const reapply = loaderVars.length === 0 ? [] : ['/usr/bin/env', ...loaderVars.map((k) => `${k}=${env[k] ?? ''}`)];
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

/** Reads a host's messages and classifies its exit; `stopping` tells a stop asked for from a death. */
export function superviseHost(child: ChildProcess, events: HostEvents, stopping: () => boolean): void {
  let ready = false;
  let initFailed = false;
  child.on('message', (m: Partial<HostMessage>) => {
    if (m.type === 'ready') {
      ready = true;
      events.onReady(m.pid ?? child.pid ?? 0);
    } else if (m.type === 'init-failed') {
      initFailed = true;
      events.onInitFailed(m.code ?? 'UserScriptInitFailed', m.message ?? 'init() failed');
    }
  });
  child.once('exit', (code, signal) => {
    if (stopping()) return;
    if (initFailed) events.onExit({ kind: 'init-failed' });
    else if (!ready) events.onExit({ kind: 'exited-before-ready', code, signal });
    else events.onExit({ kind: 'crashed', code, signal });
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
