// The process backend: every instance is a child process on this machine (DESIGN.md "Processes").
// Per instance: a storage initializer copies model and code into the instance's own directory, then an
// instance host (runtime/host; for a .py script with WORKER_COUNT 1 the Python host, runtime/python/
// infergate_host.py, see supervisor.ts pythonHostFor) loads the scoring script and listens on its own
// Unix socket. Instances that crash after becoming ready are started again with exponential back-off;
// an init() failure is final for that revision (Azure marks the deployment Failed with ResourceNotReady/UserScriptInitFailed).

import type { ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readdirSync, rmdirSync, rmSync } from 'node:fs';
import { chmod, chown, mkdir, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { InstancePlan } from '../../ir/types.js';
import { initializeStorage } from '../storage.js';
import { pruneStoppedLogs } from '../files.js';
import { LocalBackend } from '../local.js';
import type { Backend, InstanceUsage, ObservedInstance } from '../types.js';
import { ConsoleLog, type ConsoleLogOptions } from './console-log.js';
import { startProbes } from './probe.js';
import { prepareEnvironment } from './env-builder.js';
import { choosePython } from './python-env.js';
import { pdeathsigWrapper, pythonHostFor, RestartBackOff, spawnHost, stopHost, superviseHost } from './supervisor.js';
import { processUsage } from './usage.js';
import { asInstance, chownTree, detectIsolation, instanceRoot, killAllOf, placeReachable, UidPool, type Isolation } from './isolation.js';

const STOP_GRACE_MS = 10_000;
/** The Python host's script for an mlflow deployment (no code of the user's: docs/no-code.md). */
const MLFLOW_LOADER = fileURLToPath(new URL('../../runtime/python/infergate_mlflow.py', import.meta.url));

/**
 * A no-code instance has no code folder: its entry is infergate's MLflow loader (runtime mlflow) or the
 * model file itself (runtime onnx, read by the Node host), it runs in the model folder, and its host
 * reads what to serve from INFERGATE_NO_CODE.
 */
export function noCodeEnv(plan: InstancePlan, modelDir: string, loader = MLFLOW_LOADER): Record<string, string> {
  if (plan.noCode === undefined) return {};
  return {
    INFERGATE_NO_CODE: JSON.stringify(plan.noCode),
    AML_APP_ROOT: modelDir,
    AZUREML_ENTRY_SCRIPT: plan.runtime === 'mlflow' ? loader : join(modelDir, plan.noCode.modelFile),
  };
}

interface Instance {
  observed: ObservedInstance;
  plan: InstancePlan;
  dir: string;
  logDir: string;
  socketPath: string;
  child: ChildProcess | null;
  log: ConsoleLog | null;
  restartTimer: NodeJS.Timeout | null;
  backOff: RestartBackOff;
  readyAt: number;
  stopping: boolean;
  stopProbes: (() => void) | null;
  /** The instance's own uid while isolation is on (isolation.ts), for the instance's whole life. */
  uid: number | null;
  /** Where the storage initializer put model and code, once it ran in this server's life. */
  storage: { modelDir: string; appRoot: string } | null;
}

export interface ProcessBackendOptions {
  workspace: string;
  /** Log progress lines of the backend itself (not instance output). */
  log?: (line: string) => void;
  /**
   * Rotation of each instance's console logs (inference-server.log, storage-initializer.log). Default
   * 10 MiB per file and 2 rotated files kept: at most 30 MiB per container per instance.
   */
  consoleLog?: ConsoleLogOptions;
  /** Whether and how instances run as uids of their own; detected (isolation.ts) when not given. */
  isolation?: Isolation;
}

export class ProcessBackend extends LocalBackend<Instance> implements Backend {
  readonly kind = 'process' as const;
  private readonly socketDir: string;
  /** Per deployment: the file tidying (tidy(), forget()) in progress, so it runs one at a time and launches wait for it. */
  private readonly tidying = new Map<string, Promise<void>>();
  /**
   * Socket names differ from one server's life to the next: a host of an earlier server that is still
   * shutting down unlinks its socket path as it closes, and must never unlink a new host's.
   */
  private readonly life = randomBytes(8).toString('hex');
  private closed = false;
  readonly isolation: Isolation;
  private readonly uids: UidPool | null;
  /** Real paths of instances/ and envs/ (isolated: outside the workspace, which links to them). */
  private readonly instancesDir: string;
  private readonly envsDir: string;

  /**
   * The backend owns the workspace's instances/ and logs/ trees and its socket folder: the server
   * constructs it only while holding the workspace lock (util/workspace-lock.ts), so whatever is found
   * there that no instance of this backend uses is a leftover of an earlier server (crashed, or killed
   * with -9) and is removed, never the files of a server that is running.
   */
  constructor(private readonly options: ProcessBackendOptions) {
    super(options.workspace, options.log, options.consoleLog);
    // Unix socket paths are limited to ~107 bytes, so sockets live under a short tmp path keyed by workspace.
    this.socketDir = join(tmpdir(), `infergate-${createHash('sha256').update(options.workspace).digest('hex').slice(0, 10)}`);
    mkdirSync(this.socketDir, { recursive: true, mode: 0o700 });
    // Sockets of an earlier server's instances (the hosts exit when their backend goes; a kill -9 of the
    // server leaves their socket folders behind). A host unlinks a stale file of its own name before it
    // listens anyway; this removes the ones no instance will take again.
    for (const name of readdirSync(this.socketDir)) {
      if (!/^[0-9a-f]{16}(\.sock)?$/.test(name)) continue;
      rmSync(join(this.socketDir, name), { recursive: true, force: true });
    }
    this.isolation = options.isolation ?? detectIsolation();
    if (this.isolation.on) {
      this.uids = new UidPool(this.isolation.base, this.isolation.count);
      ({ instancesDir: this.instancesDir, envsDir: this.envsDir } = placeReachable(options.workspace, instanceRoot()));
      // Instances pass through to their own socket folder (0700, theirs) and list nothing.
      chmodSync(this.socketDir, 0o711);
      const { base, count, user } = this.isolation;
      options.log?.(`instance isolation: on (each instance runs as a uid of its own from ${base}-${base + count - 1}, group ${user}; it can read its own instance directory, not the workspace)`);
    } else {
      this.uids = null;
      this.instancesDir = join(options.workspace, 'instances');
      this.envsDir = join(options.workspace, 'envs');
      options.log?.(`WARNING: instance isolation is off: ${this.isolation.reason}. Scoring scripts run as the server's own user and can read the whole workspace (state.db with every key, tokens) and every other deployment's files.`);
    }
  }

  async start(id: string, plan: InstancePlan, index: number): Promise<void> {
    if (this.closed || this.instances.has(id)) return;
    const dir = join(this.instancesDir, plan.endpoint, plan.deployment, id);
    const inst: Instance = {
      observed: { id, endpoint: plan.endpoint, deployment: plan.deployment, revision: plan.revision, index, state: 'starting', restarts: 0 },
      plan,
      dir,
      logDir: join(this.options.workspace, 'logs', plan.endpoint, plan.deployment, id),
      // A folder per instance: isolated, it is the instance's own (0700) and the socket folder is not listable.
      socketPath: join(this.socketDir, createHash('sha256').update(`${this.life}/${id}`).digest('hex').slice(0, 16), 'host.sock'),
      child: null,
      log: null,
      restartTimer: null,
      backOff: new RestartBackOff(),
      readyAt: 0,
      stopping: false,
      stopProbes: null,
      uid: this.uids?.allocate() ?? null,
      storage: null,
    };
    this.instances.set(id, inst);
    this.changed();
    void this.tidy(plan.endpoint, plan.deployment);
    void this.launch(inst);
  }

  async stop(id: string): Promise<void> {
    const inst = this.instances.get(id);
    if (inst === undefined) return;
    if (this.markStopping(inst)) this.changed();
    const child = inst.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      // Its last lines ("Instance host stopped") may still be in the pipes when it exits: wait for them
      // ('close'), but not for ever (a leftover grandchild could hold the pipe open).
      const drained = new Promise<void>((resolve) => {
        let timer: NodeJS.Timeout | undefined;
        child.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
        child.once('exit', () => (timer = setTimeout(resolve, 1000)));
      });
      await stopHost(child, STOP_GRACE_MS);
      await drained;
    }
    await inst.log?.end();
    // Whatever the instance's code left running goes before its files and its uid.
    if (this.isolation.on && inst.uid !== null) await killAllOf(this.isolation, inst.uid);
    // Files first, then the map: a start() of the same id (a retry) only begins once nothing of this
    // instance is being removed.
    await rm(inst.dir, { recursive: true, force: true });
    await rm(dirname(inst.socketPath), { recursive: true, force: true });
    if (inst.uid !== null) this.uids?.release(inst.uid);
    this.instances.delete(id);
    await this.tidy(inst.observed.endpoint, inst.observed.deployment);
    this.changed();
  }

  /**
   * A deleted deployment: removes its logs and whatever is left of its instance directories (the
   * reconciler calls this once none of its instances runs). Azure drops a deployment's logs with it.
   */
  async forget(endpoint: string, deployment: string): Promise<void> {
    await this.serially(endpoint, deployment, async () => {
      if ([...this.instances.values()].some((i) => i.observed.endpoint === endpoint && i.observed.deployment === deployment)) return;
      for (const tree of ['instances', 'logs']) {
        await rm(join(this.options.workspace, tree, endpoint, deployment), { recursive: true, force: true });
        await removeIfEmpty(join(this.options.workspace, tree, endpoint));
      }
    });
  }

  /**
   * Removes a deployment's leftovers: instance directories no instance of this backend uses (an earlier
   * server's old revisions; a directory of an id that starts again is kept, its storage is reused), and
   * logs of stopped instances beyond KEEP_STOPPED_LOGS. Empty directories go too: nothing stays behind
   * under instances/<endpoint>/<deployment>/ once its last instance stopped.
   */
  private tidy(endpoint: string, deployment: string): Promise<void> {
    return this.serially(endpoint, deployment, async () => {
      const inUse = this.idsOf(endpoint, deployment);
      const instancesDir = join(this.instancesDir, endpoint, deployment);
      for (const id of await readdir(instancesDir).catch(() => [] as string[])) {
        if (!inUse.has(id)) await rm(join(instancesDir, id), { recursive: true, force: true });
      }
      await removeIfEmpty(instancesDir);
      await removeIfEmpty(dirname(instancesDir));
      // While the server stops, every instance stops: their logs stay whole for the next start.
      if (this.closed) return;
      await pruneStoppedLogs(this.options.workspace, endpoint, deployment, inUse);
    });
  }

  /** Runs file work on one deployment's directories one at a time (tidy, forget, and launches wait for it). */
  private serially(endpoint: string, deployment: string, work: () => Promise<void>): Promise<void> {
    const k = `${endpoint}/${deployment}`;
    const next = (this.tidying.get(k) ?? Promise.resolve()).then(work).catch((e: unknown) => this.options.log?.(`tidying ${k}: ${(e as Error).message}`));
    this.tidying.set(k, next);
    void next.then(() => {
      if (this.tidying.get(k) === next) this.tidying.delete(k);
    });
    return next;
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.instances.keys()].map((id) => this.stop(id)));
    // The socket folder is this workspace's; leave nothing in /tmp (rmdir: only if it is empty, so a
    // second server on the same workspace, refused or not, never loses its sockets).
    try {
      rmdirSync(this.socketDir);
    } catch {
      // not empty or already gone
    }
  }

  private async launch(inst: Instance): Promise<void> {
    const { plan } = inst;
    // A deployment deleted and created again under the same name: its old files go first.
    await this.tidying.get(`${plan.endpoint}/${plan.deployment}`);
    if (inst.stopping) return;
    try {
      await mkdir(inst.logDir, { recursive: true });
      inst.log ??= new ConsoleLog(join(inst.logDir, 'inference-server.log'), this.consoleLog);
      // Storage initializer: a separate short-lived process, as Azure's storage-initializer container.
      const iso = this.isolation;
      if (iso.on) {
        this.writeLog(inst, `Instance isolation: running as uid ${inst.uid}, group ${iso.user} (gid ${iso.gid}); readable: this instance's directory and the Python environment, not the workspace`);
      } else {
        this.writeLog(inst, `WARNING: instance isolation is off (${iso.reason}): the scoring script runs as the server's user and can read the workspace`);
      }
      // Storage is reused by a restart in this server's life. Isolated, a directory found on disk is never
      // trusted (its owner, an earlier uid, may have changed anything in it, the marker too): filled afresh.
      if (inst.storage === null && !iso.on && existsSync(join(inst.dir, '.initialized'))) {
        inst.storage = JSON.parse(await readFile(join(inst.dir, '.initialized'), 'utf8')) as { modelDir: string; appRoot: string };
      }
      if (inst.storage === null) {
        // A directory without the marker was being filled when an earlier server died: start it afresh.
        await rm(inst.dir, { recursive: true, force: true });
        const result = await this.initializeStorage(inst);
        if (inst.stopping) return;
        if (result === undefined) return; // failed; state set
        await writeFile(join(inst.dir, '.initialized'), JSON.stringify(result));
        if (iso.on && inst.uid !== null) {
          // The instance's home and temporary files stay in its own directory, and go with it.
          await mkdir(join(inst.dir, 'home'));
          await mkdir(join(inst.dir, 'tmp'));
          await chownTree(inst.dir, inst.uid, iso.gid);
          await chmod(inst.dir, 0o700);
        }
        inst.storage = result;
      }
      const { modelDir, appRoot } = inst.storage;
      if (iso.on && inst.uid !== null) {
        const socketFolder = dirname(inst.socketPath);
        await mkdir(socketFolder, { recursive: true, mode: 0o700 });
        await chown(socketFolder, inst.uid, iso.gid);
        // Leftovers of the instance's previous run (a crash, a liveness kill) go before it starts again.
        await killAllOf(iso, inst.uid);
      } else {
        await mkdir(dirname(inst.socketPath), { recursive: true, mode: 0o700 });
      }

      const env: NodeJS.ProcessEnv = {
        PATH: process.env.PATH,
        HOME: process.env.HOME,
        LANG: process.env.LANG ?? 'C.UTF-8',
        TZ: 'UTC',
        ...plan.environmentVariables,
        INFERGATE_SOCKET: inst.socketPath,
        INFERGATE_INSTANCE_ID: inst.observed.id,
        AZUREML_MODEL_DIR: modelDir,
        AML_APP_ROOT: appRoot,
        AZUREML_ENTRY_SCRIPT: plan.code ? join(appRoot, plan.code.scoringScript) : '',
        WORKER_COUNT: String(plan.workerCount),
        ...noCodeEnv(plan, modelDir),
      };
      if (iso.on) {
        // The uid has no passwd entry: getpass.getuser() reads LOGNAME/USER first; HOME and TMPDIR are the instance's own.
        Object.assign(env, { HOME: join(inst.dir, 'home'), TMPDIR: join(inst.dir, 'tmp'), USER: iso.user, LOGNAME: iso.user });
      }
      if (plan.runtime === 'python' || plan.runtime === 'mlflow') {
        // The conda file's environment, built (or reused) where a package index or local wheels allow it.
        const built = await prepareEnvironment(plan.environment, { workspace: this.options.workspace, envsDir: this.envsDir, log: (line) => this.writeLog(inst, line) });
        if (inst.stopping) return;
        if (built) {
          this.writeLog(inst, `Python interpreter: ${built.python} (environment ${built.hash})`);
          env.INFERGATE_PYTHON = built.python;
        } else {
          const choice = await choosePython(plan.environment.condaFile);
          if (inst.stopping) return;
          if (choice === undefined) {
            const msg = 'No Python interpreter found (tried $INFERGATE_PYTHON, /usr/bin/python3, python3)';
            this.writeLog(inst, msg);
            return this.setFailed(inst, 'EnvironmentNotSatisfied', msg);
          }
          this.writeLog(inst, `Python interpreter: ${choice.python} (${choice.version})` + (choice.wanted.length ? `; environment lists ${choice.wanted.join(', ')}` : ''));
          for (const n of choice.notes) this.writeLog(inst, n);
          if (choice.missing.length) this.writeLog(inst, `WARNING: ${choice.python} cannot import ${choice.missing.join(', ')}; the scoring script may fail`);
          env.INFERGATE_PYTHON = choice.python;
        }
      }
      this.spawnHost(inst, env);
    } catch (e) {
      this.writeLog(inst, `instance failed to start: ${(e as Error).stack ?? e}`);
      this.setFailed(inst, 'ResourceNotReady', (e as Error).message);
    }
  }

  private async initializeStorage(inst: Instance): Promise<{ modelDir: string; appRoot: string } | undefined> {
    await mkdir(inst.dir, { recursive: true, mode: 0o711 });
    if (this.isolation.on) {
      // instances/<endpoint>/<deployment>/: instances pass through to their own directory, list nothing
      // (explicit chmod: a server umask of 077 would have made them 0700).
      await chmod(dirname(inst.dir), 0o711);
      await chmod(dirname(dirname(inst.dir)), 0o711);
      await chmod(inst.dir, 0o700);
    }
    const outcome = await initializeStorage(inst.plan, inst.dir, join(inst.logDir, 'storage-initializer.log'), this.consoleLog, (child) => (inst.child = child));
    if (outcome.ok) return outcome.result;
    if (!inst.stopping) this.setFailed(inst, 'StorageInitializerFailed', outcome.message);
    return undefined;
  }

  private spawnHost(inst: Instance, env: NodeJS.ProcessEnv): void {
    const iso = this.isolation;
    const wrapper = iso.on ? iso.setpriv : pdeathsigWrapper();
    const child = spawnHost({
      env,
      cwd: env.AML_APP_ROOT!,
      wrapper,
      // A .py script with WORKER_COUNT 1: the Python host runs it in its own process, no Node relay hop
      // (supervisor.ts pythonHostFor says when; INFERGATE_PYTHON_HOST=node keeps runtime/host.ts).
      python: pythonHostFor(env, wrapper),
      ...(iso.on && inst.uid !== null ? { drop: asInstance(iso, inst.uid) } : {}),
    });
    inst.child = child;
    // Read as fast as the host writes, never paused: its stdout is a pipe it writes synchronously, so a
    // full pipe would stall its serving (ConsoleLog drops what the disk cannot take instead). stdout
    // reaches the log through superviseHost, which takes the Python host's message line out of it.
    const log = inst.log!;
    const write = (c: Buffer) => log.write(c);
    child.stderr!.on('data', write);
    child.once('exit', () => {
      if (inst.child === child) inst.child = null;
      inst.stopProbes?.();
      inst.stopProbes = null;
    });
    superviseHost(
      child,
      {
        onReady: () => {
          inst.readyAt = Date.now();
          inst.observed.state = 'ready';
          delete inst.observed.error;
          inst.observed.address = { instanceId: inst.observed.id, transport: 'framed', socketPath: inst.socketPath };
          this.watch(inst, child);
          this.changed();
        },
        onInitFailed: (code, message) => this.setFailed(inst, code, message),
        onExit: (exit) => {
          if (exit.kind === 'init-failed') return; // final; state set by onInitFailed
          const { code, signal } = exit;
          if (exit.kind === 'exited-before-ready' && code === 3) {
            // Exit 3 without a message: the host could not even load; final, like azmlinfsrv's exit 3.
            return this.setFailed(inst, 'ResourceNotReady', `instance exited with code 3 during start-up; see get-logs`);
          }
          // Crash: restart with back-off (Azure: "Back-off restarting failed container").
          const delay = inst.backOff.next(inst.readyAt);
          inst.observed.restarts = inst.backOff.restarts;
          inst.observed.state = 'restarting';
          inst.observed.error = { code: 'ResourceNotReady', message: `instance exited (${signal ?? `code ${code}`}); restarting in ${delay} ms` };
          delete inst.observed.address;
          this.writeLog(inst, `BackOff: instance exited (${signal ?? `code ${code}`}); restarting in ${delay} ms (restart ${inst.observed.restarts})`);
          this.changed();
          inst.restartTimer = setTimeout(() => {
            inst.restartTimer = null;
            if (inst.stopping || this.closed) return;
            inst.observed.state = 'starting';
            this.changed();
            void this.launch(inst);
          }, delay);
        },
      },
      () => inst.stopping || this.closed,
      write,
    );
  }

  /** CPU and memory of the serving instances (ready or unready: their host runs, init() is done), from procfs. */
  usage(): Promise<InstanceUsage[]> {
    const roots = [];
    for (const inst of this.instances.values()) {
      const { state } = inst.observed;
      const pid = inst.child?.pid;
      if ((state === 'ready' || state === 'unready') && pid !== undefined && inst.child!.exitCode === null) {
        roots.push({ id: inst.observed.id, endpoint: inst.observed.endpoint, deployment: inst.observed.deployment, pid, resources: inst.plan.resources });
      }
    }
    return processUsage(roots);
  }

  /** Probes for a ready instance: readiness moves it in and out of traffic, liveness restarts it. */
  private watch(inst: Instance, child: ChildProcess): void {
    inst.stopProbes?.();
    const address = { instanceId: inst.observed.id, transport: 'framed', socketPath: inst.socketPath } as const;
    inst.stopProbes = startProbes(inst.socketPath, inst.plan.livenessProbe, inst.plan.readinessProbe, this.probeCallbacks(inst, () => inst.child === child, address, () => child.kill('SIGKILL')));
  }

}

/** rmdir: removes a directory only if it is empty (another instance's files are never touched). */
async function removeIfEmpty(dir: string): Promise<void> {
  await rmdir(dir).catch(() => {});
}
