// The docker backend (issue 11; DESIGN.md "backend/"): every instance is a container on the Docker Engine,
// of the image its environment names (images.ts), as Azure runs each instance of a managed online
// deployment. Per instance:
//   1. the storage initializer copies model and code into the instance's directory on this machine
//      (backend/storage.ts, as on the process backend; Azure's storage-initializer container);
//   2. the environment image is found or built;
//   3. a container runs infergate's Python instance host (runtime/python/infergate_host.py, mounted
//      read-only) with the model and code mounted read-only, and listens on a Unix socket in a folder
//      bind-mounted from this machine: the router speaks the framed protocol to it exactly as to a
//      process instance (no port, no NAT, no HTTP hop). A custom container (BYOC: inference_config) runs
//      its image as it is, and the router forwards HTTP to its scoring route on a 127.0.0.1 port.
//
// Isolation (DESIGN.md "Instances are untrusted code"): a uid of its own (never root), read-only root
// filesystem with a private /tmp, no capabilities, no-new-privileges, no network unless the deployment
// asks for one (egress_public_network_access: enabled, or a custom container's published port, bound to
// 127.0.0.1 only), CPU and memory limits from the instance type's SKU or `resources` (compile/sku.ts),
// and nothing of this machine but its own instance directory, its socket folder and the host's code.
//
// Containers carry labels naming the workspace, endpoint, deployment, instance, revision, socket folder
// and uid. A server that stops stops its containers; one that died leaves them running, and the next
// server on the workspace adopts the ones it still wants (same instance id and revision, answering on
// their socket) and removes the rest — only ever containers labelled with its own workspace.

import { createHash, randomBytes } from 'node:crypto';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { chmod, chown, link, lstat, mkdir, readFile, readdir, rm, rmdir, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { basename, dirname, join, relative } from 'node:path';
import { createServer, type Server } from 'node:net';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import Docker from 'dockerode';
import { errorOf } from '../../errors/index.js';
import type { InstanceAddress, InstancePlan } from '../../ir/types.js';
import type { HostMessage, StorageResult } from '../../protocol/messages.js';
import { HostStdout } from '../host-stdout.js';
import { pruneStoppedLogs } from '../files.js';
import { LocalBackend } from '../local.js';
import { initializeStorage } from '../storage.js';
import type { Backend, InstanceUsage, ObservedInstance } from '../types.js';
import { ConsoleLog, type ConsoleLogOptions } from '../process/console-log.js';
import { chownTree, DEFAULT_UID_RANGE, UidPool } from '../process/isolation.js';
import { httpProbeOnce, probeOnce, startProbesWith } from '../process/probe.js';
import { RestartBackOff, RUNTIME_EXEC_ARGV } from '../process/supervisor.js';
import { EnvironmentImages, ImageError, MANAGED_LABEL } from './images.js';
import { CgroupUsage } from './usage.js';

const STOP_GRACE_S = 10;
/** Where things are inside a container (Azure's layout: /var/azureml-app holds model and code). */
const APP_DIR = '/var/azureml-app';
const RUNTIME_DIR = '/var/infergate/runtime';
const SOCKET_DIR = '/var/infergate/socket';
const PYTHON_RUNTIME = fileURLToPath(new URL('../../runtime/python/', import.meta.url));
/** The package's compiled (or, under tsx, source) tree and its node_modules: what a Node host in a container needs. */
const CODE_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const NODE_MODULES = fileURLToPath(new URL('../../../node_modules/', import.meta.url));
const HOST_EXT = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
/** How long an adopted container may take to answer its socket before it is replaced. */
const ADOPT_PROBE_MS = 10_000;

const L = {
  workspace: 'io.infergate.workspace',
  endpoint: 'io.infergate.endpoint',
  deployment: 'io.infergate.deployment',
  instance: 'io.infergate.instance',
  revision: 'io.infergate.revision',
  socket: 'io.infergate.socket',
  uid: 'io.infergate.uid',
} as const;

export const DEFAULT_DOCKER_IMAGE = 'infergate-python:bookworm';

export interface DockerBackendOptions {
  workspace: string;
  docker: Docker;
  /** Where the engine was found (for messages): DOCKER_HOST or the socket path. */
  engine: string;
  log?: (line: string) => void;
  consoleLog?: ConsoleLogOptions;
  /** The image of an environment that names none (a conda file alone); default DEFAULT_DOCKER_IMAGE. */
  defaultImage?: string;
}

interface Instance {
  observed: ObservedInstance;
  plan: InstancePlan;
  dir: string;
  logDir: string;
  /**
   * The instance's socket folder: the server's own (0700). Its `c/` is mounted at SOCKET_DIR and is the
   * container's to write; the server connects and listens only at paths in the folder itself (host.sock,
   * a hard link to the socket the host made in c/; log.sock, linked into c/), so nothing the container
   * puts in c/ (a symlink to the engine's socket, to a file the server would chmod) is followed by it.
   */
  socketDir: string;
  container: Docker.Container | null;
  log: ConsoleLog | null;
  restartTimer: NodeJS.Timeout | null;
  backOff: RestartBackOff;
  readyAt: number;
  stopping: boolean;
  stopProbes: (() => void) | null;
  uid: number;
  storage: StorageResult | null;
  /** A running container found at start-up that this instance may take over. */
  adopt: Docker.ContainerInfo | null;
  /** Busy with one container's life (launch to exit); a stop waits for it. */
  life: Promise<void> | null;
  storageChild: import('node:child_process').ChildProcess | null;
  /** Where the host in the container sends its console log (log.sock in the socket folder), for the instance's life. */
  logServer: Server | null;
  /** Resolved by stop(): what the instance's life waits for (an image build, an engine that does not answer) is not waited for any longer. */
  stopped: Promise<null>;
  markStopped: () => void;
}

/** The container's side of an instance's socket folder (mounted at SOCKET_DIR). */
function containerSide(socketDir: string): string {
  return join(socketDir, 'c');
}

/** Finds a Docker Engine: DOCKER_HOST, else /var/run/docker.sock. Resolves undefined with the reason when none answers. */
export async function findDockerEngine(env: NodeJS.ProcessEnv = process.env, timeoutMs = 3000): Promise<{ docker: Docker; where: string } | { docker?: undefined; where: string; reason: string }> {
  const where = env.DOCKER_HOST && env.DOCKER_HOST !== '' ? env.DOCKER_HOST : '/var/run/docker.sock';
  if (!env.DOCKER_HOST && !existsSync(where)) return { where, reason: 'no such socket' };
  const docker = env.DOCKER_HOST ? new Docker() : new Docker({ socketPath: where });
  try {
    await Promise.race([docker.ping(), new Promise((_, reject) => setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs).unref())]);
    return { docker, where };
  } catch (e) {
    return { where, reason: (e as Error).message };
  }
}

export class DockerBackend extends LocalBackend<Instance> implements Backend {
  readonly kind = 'docker' as const;
  private readonly docker: Docker;
  private readonly images: EnvironmentImages;
  private readonly workspaceLabel: string;
  private readonly socketBase: string;
  private readonly uids: UidPool | null;
  private readonly root = typeof process.getuid === 'function' && process.getuid() === 0;
  private readonly cpus = availableParallelism();
  /** Containers of an earlier server of this workspace, by instance id, until adopted or removed. */
  private readonly adoptable = new Map<string, Docker.ContainerInfo>();
  private readonly cgroups = new CgroupUsage();
  private closed = false;

  constructor(private readonly options: DockerBackendOptions) {
    super(options.workspace, options.log, options.consoleLog);
    this.docker = options.docker;
    this.images = new EnvironmentImages(this.docker);
    this.workspaceLabel = createHash('sha256').update(options.workspace).digest('hex').slice(0, 16);
    this.socketBase = privateFolder(join(tmpdir(), `infergate-docker-${this.workspaceLabel.slice(0, 10)}`), options.log);
    // Root gives every instance a uid of its own from the instance range (isolation.ts), as the process
    // backend does; without root the engine still runs containers, as nobody.
    this.uids = this.root ? new UidPool(DEFAULT_UID_RANGE.base, DEFAULT_UID_RANGE.count) : null;
    options.log?.(`backend: docker (engine at ${options.engine}); instances run as containers: own uid, read-only root filesystem, no capabilities, no network unless asked for, CPU and memory limits from the instance type`);
  }

  /**
   * At start-up: containers of an earlier server of this workspace. Those of deployments that no longer
   * exist, and stopped ones, are removed now; running ones wait for start() of the same instance id and
   * revision to take them over (removeUnadopted() removes what was not). Socket folders no container
   * uses are removed.
   */
  async adopt(exists: (endpoint: string, deployment: string) => boolean): Promise<void> {
    const found = await this.docker.listContainers({ all: true, filters: { label: [`${L.workspace}=${this.workspaceLabel}`] } });
    // Socket folders stay while a container may still run with them mounted (one the engine did not
    // remove): a recursive removal races a live container that swaps a folder for a symlink.
    const keep = new Set<string>();
    for (const c of found) {
      const l = c.Labels;
      // A socket folder is only ever one of ours (labels are anyone's to write who can reach the engine):
      // a label naming another path makes the container a stranger to remove, never a path to delete.
      const ours = typeof l[L.socket] === 'string' && dirname(l[L.socket]) === this.socketBase && /^[0-9a-f]{16}$/.test(basename(l[L.socket]));
      if (!ours) delete l[L.socket];
      // The uid a taken-over instance keeps (and a replacement container runs as): only one this server
      // would have given, never root because a label says so.
      const uidOk = this.uidAllowed(l[L.uid]);
      if (ours && uidOk && c.State === 'running' && exists(l[L.endpoint], l[L.deployment])) {
        this.adoptable.set(l[L.instance], c);
        this.uids?.reserve(Number(l[L.uid]));
      } else if (!(await this.removeContainer(c.Id, `container ${c.Names[0] ?? c.Id} of an earlier server (${c.State})`)) && ours) keep.add(l[L.socket]);
    }
    for (const c of this.adoptable.values()) keep.add(c.Labels[L.socket]);
    for (const name of readdirSync(this.socketBase)) {
      const dir = join(this.socketBase, name);
      if (!keep.has(dir)) rmSync(dir, { recursive: true, force: true });
    }
    if (this.adoptable.size > 0) this.options.log?.(`found ${this.adoptable.size} running container(s) of an earlier server; adopting those still wanted`);
  }

  /** After the first reconcile: containers of an earlier server that no instance took over go. */
  async removeUnadopted(): Promise<void> {
    const left = [...this.adoptable.values()];
    this.adoptable.clear();
    for (const c of left) {
      this.uids?.release(Number(c.Labels[L.uid]));
      const gone = await this.removeContainer(c.Id, `container ${c.Names[0] ?? c.Id} of an earlier server (instance ${c.Labels[L.instance]} is no longer wanted)`);
      if (gone) rmSync(c.Labels[L.socket], { recursive: true, force: true }); // checked in adopt(): a folder under socketBase
    }
  }

  async start(id: string, plan: InstancePlan, index: number): Promise<void> {
    if (this.closed || this.instances.has(id)) return;
    const candidate = this.adoptable.get(id);
    const adopt = candidate && candidate.Labels[L.revision] === plan.revision ? candidate : null;
    if (candidate) this.adoptable.delete(id);
    if (candidate && !adopt) this.uids?.release(Number(candidate.Labels[L.uid]));
    let markStopped!: () => void;
    const stopped = new Promise<null>((resolve) => (markStopped = () => resolve(null)));
    const inst: Instance = {
      observed: { id, endpoint: plan.endpoint, deployment: plan.deployment, revision: plan.revision, index, state: 'starting', restarts: 0 },
      plan,
      dir: join(this.options.workspace, 'instances', plan.endpoint, plan.deployment, id),
      logDir: join(this.options.workspace, 'logs', plan.endpoint, plan.deployment, id),
      socketDir: adopt?.Labels[L.socket] ?? join(this.socketBase, createHash('sha256').update(`${randomBytes(8).toString('hex')}/${id}`).digest('hex').slice(0, 16)),
      container: adopt ? this.docker.getContainer(adopt.Id) : null,
      log: null,
      restartTimer: null,
      backOff: new RestartBackOff(),
      readyAt: 0,
      stopping: false,
      stopProbes: null,
      uid: adopt?.Labels[L.uid] ? Number(adopt.Labels[L.uid]) : (this.uids?.allocate() ?? 65534),
      storage: null,
      adopt,
      life: null,
      storageChild: null,
      logServer: null,
      stopped,
      markStopped,
    };
    // In the map before anything is awaited: a stop() that comes meanwhile finds the instance to stop.
    this.instances.set(id, inst);
    this.changed();
    void this.tidy(plan.endpoint, plan.deployment);
    const stale = candidate && !adopt ? this.removeContainer(candidate.Id, `container of ${id} from an earlier server (another revision)`) : Promise.resolve(true);
    inst.life = stale.then(() => (adopt ? this.takeOver(inst) : this.launch(inst))).catch((e: unknown) => {
      this.writeLog(inst, `instance failed: ${(e as Error).stack ?? e}`);
      this.setFailed(inst, 'ResourceNotReady', (e as Error).message);
    });
  }

  async stop(id: string): Promise<void> {
    const inst = this.instances.get(id);
    if (inst === undefined) return;
    if (this.markStopping(inst)) {
      inst.storageChild?.kill('SIGKILL');
      inst.markStopped();
      this.changed();
    }
    // SIGTERM to the host (docker stop), which lets in-flight requests finish; SIGKILL after the grace.
    if (inst.container) await inst.container.stop({ t: STOP_GRACE_S }).catch(() => {});
    await inst.life;
    // A follow() that was past its own stopping check when the stop came may have set one.
    if (inst.restartTimer) clearTimeout(inst.restartTimer);
    const gone = inst.container ? await this.removeContainer(inst.container.id, null) : true;
    await new Promise<void>((resolve) => (inst.logServer ? inst.logServer.close(() => resolve()) : resolve()));
    if (!gone) this.writeLog(inst, `the engine did not remove container ${inst.container!.id}; its socket folder ${inst.socketDir} is left for the next server`);
    await inst.log?.end();
    await rm(inst.dir, { recursive: true, force: true });
    if (gone) await rm(inst.socketDir, { recursive: true, force: true });
    if (this.uids) this.uids.release(inst.uid);
    this.instances.delete(id);
    await this.tidy(inst.observed.endpoint, inst.observed.deployment);
    this.changed();
  }

  async forget(endpoint: string, deployment: string): Promise<void> {
    if ([...this.instances.values()].some((i) => i.observed.endpoint === endpoint && i.observed.deployment === deployment)) return;
    for (const tree of ['instances', 'logs']) {
      await rm(join(this.options.workspace, tree, endpoint, deployment), { recursive: true, force: true });
      await rmdir(join(this.options.workspace, tree, endpoint)).catch(() => {});
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.instances.keys()].map((id) => this.stop(id)));
    await this.removeUnadopted();
    await rmdir(this.socketBase).catch(() => {});
  }

  /** Instance directories no instance uses any more, and logs of stopped instances beyond what is kept. */
  private async tidy(endpoint: string, deployment: string): Promise<void> {
    const inUse = this.idsOf(endpoint, deployment);
    const dir = join(this.options.workspace, 'instances', endpoint, deployment);
    for (const id of await readdir(dir).catch(() => [] as string[])) if (!inUse.has(id)) await rm(join(dir, id), { recursive: true, force: true });
    await rmdir(dir).catch(() => {});
    if (!this.closed) await pruneStoppedLogs(this.options.workspace, endpoint, deployment, inUse);
  }

  /** True once the container is gone (removed now, or already); false when the engine did not answer. */
  private async removeContainer(id: string, why: string | null): Promise<boolean> {
    if (why) this.options.log?.(`removing ${why}`);
    return this.docker.getContainer(id).remove({ force: true }).then(
      () => true,
      (e: unknown) => (e as { statusCode?: number }).statusCode === 404,
    );
  }

  private uidAllowed(label: string | undefined): boolean {
    if (label === undefined || !/^[0-9]+$/.test(label)) return false;
    const uid = Number(label);
    return this.uids ? uid >= DEFAULT_UID_RANGE.base && uid < DEFAULT_UID_RANGE.base + DEFAULT_UID_RANGE.count : uid === 65534;
  }

  /** Storage, image, container: one instance from nothing to running (ready comes from the host's own line). */
  private async launch(inst: Instance): Promise<void> {
    const { plan } = inst;
    await mkdir(inst.logDir, { recursive: true });
    inst.log ??= new ConsoleLog(join(inst.logDir, 'inference-server.log'), this.consoleLog);
    this.writeLog(inst, `backend: docker (engine at ${this.options.engine}); instance runs as uid ${inst.uid} in a container`);
    if (inst.storage === null && (plan.model || plan.code)) {
      await rm(inst.dir, { recursive: true, force: true });
      const outcome = await initializeStorage(plan, inst.dir, join(inst.logDir, 'storage-initializer.log'), this.consoleLog, (c) => (inst.storageChild = c));
      if (inst.stopping) return;
      if (!outcome.ok) return this.setFailed(inst, 'StorageInitializerFailed', outcome.message);
      inst.storage = outcome.result;
      // The container reads its files as its own uid: they are its, and no other instance's.
      if (this.root) await chownTree(inst.dir, inst.uid, inst.uid);
      else await chmod(inst.dir, 0o755);
      await writeFile(join(inst.dir, '.initialized'), JSON.stringify(outcome.result));
    }
    let image: string | null;
    try {
      // A build (or an engine that stops answering) is not the stop's to wait for: it goes on for other
      // instances of the same environment, and this one leaves.
      const resolving = this.images.resolve(plan.environment, this.options.defaultImage ?? DEFAULT_DOCKER_IMAGE, (line) => this.writeLog(inst, line));
      resolving.catch(() => {});
      image = await Promise.race([resolving, inst.stopped]);
    } catch (e) {
      if (!(e instanceof ImageError)) throw e;
      this.writeLog(inst, e.message);
      return this.setFailed(inst, e.error.code, e.message);
    }
    if (inst.stopping || image === null) return;
    await mkdir(inst.socketDir, { recursive: true, mode: 0o700 });
    const side = containerSide(inst.socketDir);
    await mkdir(side, { recursive: true, mode: 0o700 });
    if (this.root) await chown(side, inst.uid, inst.uid);
    else await chmod(side, 0o777);
    await this.listenForLogs(inst);
    await this.run(inst, image);
  }

  /**
   * The console log's own channel: the Python host relays its stderr (and its workers') to log.sock in
   * the socket folder (infergate_host.py LogRelay) rather than through the engine's logging, which cost
   * more CPU per log line than the scoring (docker/process was 0.36 on Azure's model-1, which logs two
   * lines per request). Kept for the instance's life: a restarted container, or the server that adopts
   * one, is found at the same path. The container can remove the file but reach nothing of ours with it.
   */
  private async listenForLogs(inst: Instance): Promise<void> {
    if (!inst.logServer) await this.listenForLogsAt(inst, join(inst.socketDir, 'log.sock'));
    // The container sees it as a hard link in its side of the folder (a restarted container, or the one
    // before it, may have removed it). What it put there is removed, never followed.
    const inside = join(containerSide(inst.socketDir), 'log.sock');
    await rm(inside, { force: true }).catch(() => {});
    await link(join(inst.socketDir, 'log.sock'), inside).catch((e: Error) => this.writeLog(inst, `the console log socket cannot be offered to the container: ${e.message}`));
  }

  /** Listens in the server's own folder, where nothing of the container's can be in the way of the chmod. */
  private async listenForLogsAt(inst: Instance, path: string): Promise<void> {
    await rm(path, { force: true });
    const server = createServer((socket) => {
      socket.on('data', (chunk: Buffer) => inst.log?.write(chunk));
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    server.on('error', () => {});
    await chmod(path, 0o666);
    inst.logServer = server;
  }

  private containerSpec(inst: Instance, image: string): Docker.ContainerCreateOptions {
    const { plan } = inst;
    const inside = (hostPath: string) => `${APP_DIR}/${relative(inst.dir, hostPath).split('\\').join('/')}`;
    const binds: string[] = [];
    const env: Record<string, string> = { LANG: 'C.UTF-8', TZ: 'UTC', HOME: '/tmp', PYTHONDONTWRITEBYTECODE: '1', ...plan.environmentVariables };
    const storage = inst.storage;
    if (storage?.modelDir) {
      const modelDir = plan.modelMountPath ?? inside(storage.modelDir);
      binds.push(`${storage.modelDir}:${modelDir}:ro`);
      env.AZUREML_MODEL_DIR = modelDir;
    }
    let cmd: string[] | undefined;
    const exposed: Record<string, object> = {};
    const ports: Record<string, { HostIp: string; HostPort: string }[]> = {};
    if (plan.runtime === 'container') {
      const ic = plan.environment.inferenceConfig!;
      for (const r of [ic.scoring, ic.liveness, ic.readiness]) {
        exposed[`${r.port}/tcp`] = {};
        ports[`${r.port}/tcp`] = [{ HostIp: '127.0.0.1', HostPort: '' }];
      }
    } else {
      // A no-code deployment has no code folder: it runs in the model folder (docs/no-code.md).
      const appRoot = plan.noCode ? (env.AZUREML_MODEL_DIR ?? RUNTIME_DIR) : inside(storage!.appRoot);
      if (!plan.noCode) binds.push(`${storage!.appRoot}:${appRoot}:ro`);
      binds.push(`${containerSide(inst.socketDir)}:${SOCKET_DIR}`);
      Object.assign(env, {
        INFERGATE_SOCKET: `${SOCKET_DIR}/host.sock`,
        INFERGATE_INSTANCE_ID: inst.observed.id,
        AML_APP_ROOT: appRoot,
        AZUREML_ENTRY_SCRIPT: plan.code ? `${appRoot}/${plan.code.scoringScript}` : '',
        WORKER_COUNT: String(plan.workerCount),
      });
      if (plan.noCode) {
        env.INFERGATE_NO_CODE = JSON.stringify(plan.noCode);
        env.AZUREML_ENTRY_SCRIPT = plan.runtime === 'mlflow' ? `${RUNTIME_DIR}/infergate_mlflow.py` : `${appRoot}/${plan.noCode.modelFile}`;
      }
      if (plan.runtime === 'python' || plan.runtime === 'mlflow') {
        binds.push(`${PYTHON_RUNTIME}:${RUNTIME_DIR}:ro`);
        env.INFERGATE_LOG_SOCKET = `${SOCKET_DIR}/log.sock`;
        cmd = ['python3', '-u', `${RUNTIME_DIR}/infergate_host.py`];
      } else {
        // The Node instance host at the same paths as on this machine (its imports, and tsx under
        // tests, resolve by absolute path): the package's code and node_modules, read-only.
        binds.push(`${CODE_ROOT}:${CODE_ROOT}:ro`);
        if (existsSync(NODE_MODULES)) binds.push(`${NODE_MODULES}:${NODE_MODULES}:ro`);
        cmd = ['node', ...RUNTIME_EXEC_ARGV, join(CODE_ROOT, 'runtime', `host${HOST_EXT}`)];
      }
    }
    const custom = plan.runtime === 'container';
    const { cpus, memoryBytes } = plan.resources;
    return {
      name: this.containerName(inst),
      Image: image,
      ...(cmd ? { Cmd: cmd, Entrypoint: [] } : {}),
      Env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
      ...(!custom && storage ? { WorkingDir: plan.noCode ? env.AML_APP_ROOT : inside(storage.appRoot) } : {}),
      User: `${inst.uid}:${inst.uid}`,
      Labels: {
        [MANAGED_LABEL]: 'true',
        [L.workspace]: this.workspaceLabel,
        [L.endpoint]: plan.endpoint,
        [L.deployment]: plan.deployment,
        [L.instance]: inst.observed.id,
        [L.revision]: plan.revision,
        [L.socket]: inst.socketDir,
        [L.uid]: String(inst.uid),
      },
      ...(custom ? { ExposedPorts: exposed } : {}),
      HostConfig: {
        Binds: binds,
        Tmpfs: { '/tmp': 'rw,nosuid,nodev,size=256m' },
        ReadonlyRootfs: true,
        CapDrop: ['ALL'],
        SecurityOpt: ['no-new-privileges'],
        NetworkMode: custom || plan.egress ? 'bridge' : 'none',
        ...(custom ? { PortBindings: ports } : {}),
        Init: true,
        PidsLimit: 4096,
        ...(memoryBytes !== undefined ? { Memory: memoryBytes, MemorySwap: memoryBytes } : {}),
        // A quota of the whole machine limits nothing and still costs CFS bandwidth accounting (and
        // throttling bursts): set one only when it is smaller than the machine.
        ...(cpus !== undefined && cpus < this.cpus ? { NanoCpus: Math.round(cpus * 1e9) } : {}),
      },
    };
  }

  private containerName(inst: Instance): string {
    return `infergate-${this.workspaceLabel.slice(0, 8)}-${inst.observed.id}`.replace(/[^a-zA-Z0-9_.-]/g, '-');
  }

  /** Creates and starts the container, then follows it until it exits (the instance's life). */
  private async run(inst: Instance, image: string): Promise<void> {
    const spec = this.containerSpec(inst, image);
    const { plan } = inst;
    const limits = plan.resources.memoryBytes !== undefined || plan.resources.cpus !== undefined
      ? `${plan.resources.cpus !== undefined ? (plan.resources.cpus < this.cpus ? `${plan.resources.cpus} CPU` : `${plan.resources.cpus} CPU (all ${this.cpus} of this machine: no quota)`) : 'no CPU limit'}, ${plan.resources.memoryBytes !== undefined ? mib(plan.resources.memoryBytes) : 'no memory limit'} (${plan.resources.from})`
      : `no limits (${plan.resources.from})`;
    this.writeLog(inst, `container ${spec.name}: image ${image}; ${limits}; network ${spec.HostConfig!.NetworkMode}`);
    await this.docker.getContainer(spec.name!).remove({ force: true }).catch(() => {}); // a leftover of the same name
    let container: Docker.Container;
    try {
      container = await this.docker.createContainer(spec);
      inst.container = container;
      if (inst.stopping) return;
      await container.start();
    } catch (e) {
      const reason = dockerMessage(e);
      this.writeLog(inst, `container failed to start: ${reason}`);
      if (/executable file not found|no such file or directory/i.test(reason) && plan.runtime !== 'container') {
        const which = plan.runtime === 'python' || plan.runtime === 'mlflow' ? 'PythonMissingInImage' : plan.runtime === 'onnx' ? 'NodeMissingForOnnx' : 'NodeMissingInImage';
        const err = errorOf(which, { image: plan.environment.image ?? image });
        this.writeLog(inst, err.message);
        return this.setFailed(inst, err.code, err.message);
      }
      const err = errorOf('ContainerStartFailed', { instance: inst.observed.id, reason });
      return this.setFailed(inst, err.code, err.message);
    }
    await this.follow(inst, container, 0);
  }

  /** An earlier server's container: ready again once it answers on its socket (or HTTP route), else replaced. */
  private async takeOver(inst: Instance): Promise<void> {
    await mkdir(inst.logDir, { recursive: true });
    inst.log = new ConsoleLog(join(inst.logDir, 'inference-server.log'), this.consoleLog);
    await this.listenForLogs(inst);
    this.writeLog(inst, `adopting container ${inst.adopt!.Names[0] ?? inst.adopt!.Id} of an earlier server`);
    const stored = await readFile(join(inst.dir, '.initialized'), 'utf8').catch(() => null);
    if (stored) inst.storage = JSON.parse(stored) as StorageResult;
    const container = inst.container!;
    const deadline = Date.now() + ADOPT_PROBE_MS;
    let address: InstanceAddress | undefined;
    let ok = false;
    while (!ok && !inst.stopping && Date.now() < deadline) {
      address = await this.addressOf(inst, container);
      ok = address !== undefined && (address.transport === 'http' ? await httpProbeOnce(address.host, address.port, inst.plan.environment.inferenceConfig!.readiness.path, 2000) : address.transport === 'framed' && (await probeOnce(address.socketPath, 2000)));
      if (!ok) await sleep(250);
    }
    if (inst.stopping) return;
    if (!ok) {
      this.writeLog(inst, 'the adopted container does not answer; replacing it');
      await this.removeContainer(container.id, null);
      inst.container = null;
      inst.adopt = null;
      return this.launch(inst);
    }
    inst.adopt = null;
    this.ready(inst, container, address!);
    await this.follow(inst, container, Math.floor(Date.now() / 1000));
  }

  /** CPU and memory of the serving containers (ready or unready), from their cgroups on this machine. */
  async usage(): Promise<InstanceUsage[]> {
    const serving = [...this.instances.values()].filter((i) => i.container !== null && (i.observed.state === 'ready' || i.observed.state === 'unready'));
    this.cgroups.retain(new Set(serving.map((i) => i.container!.id)));
    const machineMemory = totalmem();
    const out: InstanceUsage[] = [];
    await Promise.all(
      serving.map(async (inst) => {
        const u = await this.cgroups.read(inst.container!.id);
        if (u === undefined) return;
        const { cpus, memoryBytes } = inst.plan.resources;
        const { id, endpoint, deployment } = inst.observed;
        // As containerSpec sets them: a CPU count of the machine's or more is no quota at all.
        out.push({ id, endpoint, deployment, ...u, cpus: Math.min(cpus ?? this.cpus, this.cpus), memoryLimitBytes: Math.min(memoryBytes ?? machineMemory, machineMemory) });
      }),
    );
    return out;
  }

  /** Where the router reaches the instance: its socket, or (custom container) the published scoring port. */
  private async addressOf(inst: Instance, container: Docker.Container): Promise<InstanceAddress | undefined> {
    if (inst.plan.runtime !== 'container') {
      const socketPath = await this.linkHostSocket(inst);
      return socketPath === undefined ? undefined : { instanceId: inst.observed.id, transport: 'framed', socketPath };
    }
    const scoring = inst.plan.environment.inferenceConfig!.scoring;
    const port = await this.publishedPort(container, scoring.port);
    return port === undefined ? undefined : { instanceId: inst.observed.id, transport: 'http', host: '127.0.0.1', port, path: scoring.path };
  }

  /**
   * The host's socket as the server reaches it: a hard link, in the server's own folder, to the socket
   * the host made in the container's side. link() does not follow a symlink the container put there, so
   * the link is the host's socket or it is refused; and what the container does to its side afterwards
   * cannot move the router's or the probes' connections elsewhere on this machine.
   */
  private async linkHostSocket(inst: Instance): Promise<string | undefined> {
    const path = join(inst.socketDir, 'host.sock');
    await rm(path, { force: true });
    const made = await link(join(containerSide(inst.socketDir), 'host.sock'), path).then(
      () => true,
      (e: NodeJS.ErrnoException) => e.code === 'EEXIST', // a concurrent call linked it
    );
    if (made && (await lstat(path).catch(() => null))?.isSocket()) return path;
    await rm(path, { force: true });
    return undefined;
  }

  private async publishedPort(container: Docker.Container, port: number): Promise<number | undefined> {
    const info = await container.inspect().catch(() => null);
    const binding = info?.NetworkSettings.Ports?.[`${port}/tcp`]?.find((b) => b.HostIp === '127.0.0.1');
    return binding ? Number(binding.HostPort) : undefined;
  }

  private ready(inst: Instance, container: Docker.Container, address: InstanceAddress): void {
    if (inst.stopping || inst.container !== container) return;
    inst.readyAt = Date.now();
    inst.observed.state = 'ready';
    delete inst.observed.error;
    inst.observed.address = address;
    this.watch(inst, container, address);
    this.changed();
  }

  /** Probes of a ready instance: readiness moves it in and out of traffic, liveness restarts it. */
  private watch(inst: Instance, container: Docker.Container, address: InstanceAddress): void {
    inst.stopProbes?.();
    const ic = inst.plan.environment.inferenceConfig;
    const framed = (timeoutMs: number) => (address.transport === 'framed' ? probeOnce(address.socketPath, timeoutMs) : Promise.resolve(false));
    const live = address.transport === 'http' && ic ? (t: number) => this.httpRoute(container, ic.liveness, t) : framed;
    const ready = address.transport === 'http' && ic ? (t: number) => this.httpRoute(container, ic.readiness, t) : framed;
    const kill = () => void container.kill({ signal: 'SIGKILL' }).catch(() => {});
    inst.stopProbes = startProbesWith(live, ready, inst.plan.livenessProbe, inst.plan.readinessProbe, this.probeCallbacks(inst, () => inst.container === container, address, kill));
  }

  private readonly routePorts = new WeakMap<Docker.Container, Map<number, number>>();
  private async httpRoute(container: Docker.Container, route: { port: number; path: string }, timeoutMs: number): Promise<boolean> {
    let ports = this.routePorts.get(container);
    if (!ports) this.routePorts.set(container, (ports = new Map()));
    let port = ports.get(route.port);
    if (port === undefined) {
      port = await this.publishedPort(container, route.port);
      if (port === undefined) return false;
      ports.set(route.port, port);
    }
    return httpProbeOnce('127.0.0.1', port, route.path, timeoutMs);
  }

  /**
   * Copies the container's output to the console log (the host's own message line is taken out), marks
   * the instance ready or failed from it, and on exit decides: final failure, or restart with back-off.
   */
  private async follow(inst: Instance, container: Docker.Container, since: number): Promise<void> {
    const log = inst.log!;
    let message: HostMessage | undefined;
    const out = new PassThrough();
    const err = new PassThrough();
    const lines = new HostStdout((m) => {
      message = m as HostMessage;
      if (message.type === 'ready') {
        void this.addressOf(inst, container).then((a) => {
          if (a) return this.ready(inst, container, a);
          if (inst.plan.runtime === 'container' || inst.stopping || inst.container !== container) return;
          const e = errorOf('ContainerStartFailed', { instance: inst.observed.id, reason: `it said it was ready, but ${SOCKET_DIR}/host.sock is not a socket` });
          this.writeLog(inst, e.message);
          this.setFailed(inst, e.code, e.message);
        });
      }
      else this.setFailed(inst, message.code, message.message);
    }, (chunk) => log.write(chunk));
    out.on('data', (chunk: Buffer) => lines.write(chunk));
    // The start of stderr, kept to tell why a container exited before its host said anything: with
    // Init (tini as pid 1) a missing interpreter is not a create/start error but tini's own line and 127.
    let early = '';
    err.on('data', (chunk: Buffer) => {
      if (early.length < 4096) early += chunk.toString('utf8');
      log.write(chunk);
    });
    const stream = (await container.logs({ follow: true, stdout: true, stderr: true, since })) as unknown as NodeJS.ReadableStream;
    this.docker.modem.demuxStream(stream, out, err);
    const ended = new Promise<void>((resolve) => {
      stream.on('end', resolve);
      stream.on('close', resolve);
      stream.on('error', () => resolve());
    });
    if (inst.plan.runtime === 'container' && since === 0) void this.waitForRoute(inst, container);
    const exit = (await container.wait().catch((e: unknown) => ({ StatusCode: -1, Error: { Message: dockerMessage(e) } }))) as { StatusCode: number; Error?: { Message?: string } | null };
    await Promise.race([ended, sleep(1000)]);
    lines.end();
    inst.stopProbes?.();
    inst.stopProbes = null;
    if (inst.stopping || this.closed || inst.container !== container) return;
    const info = await container.inspect().catch(() => null);
    const oom = info?.State.OOMKilled === true;
    const code = exit.StatusCode;
    await this.removeContainer(container.id, null);
    inst.container = null;
    if (message?.type === 'init-failed') return; // final; state set from its message
    const missing = message === undefined && code === 127 && inst.plan.runtime !== 'container' ? /exec (\S+) failed: No such file or directory/.exec(early) : null;
    if (missing) {
      // The image has no interpreter for the host (a JavaScript module on Azure's Python-only images):
      // final, as restarting the same image cannot find it.
      const e = errorOf(inst.plan.runtime === 'python' || inst.plan.runtime === 'mlflow' ? 'PythonMissingInImage' : inst.plan.runtime === 'onnx' ? 'NodeMissingForOnnx' : 'NodeMissingInImage', { image: inst.plan.environment.image ?? (info?.Config.Image ?? '') });
      this.writeLog(inst, e.message);
      return this.setFailed(inst, e.code, e.message);
    }
    const wasReady = inst.readyAt > 0 && message?.type === 'ready' || since > 0;
    if (!wasReady && !oom && code === 3) {
      return this.setFailed(inst, 'ResourceNotReady', 'instance exited with code 3 during start-up; see get-logs');
    }
    const delay = inst.backOff.next(inst.readyAt);
    inst.observed.restarts = inst.backOff.restarts;
    inst.observed.state = 'restarting';
    delete inst.observed.address;
    let text: string;
    if (oom) {
      const e = errorOf('ContainerOomKilled', { instance: inst.observed.id, limit: inst.plan.resources.memoryBytes !== undefined ? mib(inst.plan.resources.memoryBytes) : 'the machine', source: inst.plan.resources.from, delay, restarts: inst.observed.restarts });
      inst.observed.error = { code: e.code, message: e.message };
      text = e.message;
    } else {
      text = `BackOff: instance exited (code ${code}); restarting in ${delay} ms (restart ${inst.observed.restarts})`;
      inst.observed.error = { code: 'ResourceNotReady', message: `instance exited (code ${code}); restarting in ${delay} ms` };
    }
    this.writeLog(inst, text);
    this.changed();
    inst.restartTimer = setTimeout(() => {
      inst.restartTimer = null;
      if (inst.stopping || this.closed) return;
      inst.readyAt = 0;
      inst.observed.state = 'starting';
      this.changed();
      inst.life = this.launch(inst).catch((e: unknown) => {
        this.writeLog(inst, `instance failed: ${(e as Error).stack ?? e}`);
        this.setFailed(inst, 'ResourceNotReady', (e as Error).message);
      });
    }, delay);
  }

  /** A custom container has no host to say it is ready: its readiness route does, once it answers. */
  private async waitForRoute(inst: Instance, container: Docker.Container): Promise<void> {
    const ic = inst.plan.environment.inferenceConfig!;
    await sleep(inst.plan.readinessProbe.initialDelay * 1000);
    while (!inst.stopping && inst.container === container && inst.observed.state === 'starting') {
      if (await this.httpRoute(container, ic.readiness, inst.plan.readinessProbe.timeout * 1000)) {
        const address = await this.addressOf(inst, container);
        if (address) this.ready(inst, container, address);
        return;
      }
      await sleep(250);
    }
  }
}

/**
 * `path` made (0711) or found as this user's own folder, writable by no one else; else (a folder of that
 * name someone else made first in the shared temporary directory, or a symlink) a fresh one next to it.
 * The server creates, chowns and connects to paths in it as root.
 */
function privateFolder(path: string, log?: (line: string) => void): string {
  mkdirSync(path, { recursive: true, mode: 0o711 });
  const st = lstatSync(path);
  const me = typeof process.getuid === 'function' ? process.getuid() : st.uid;
  if (st.isDirectory() && !st.isSymbolicLink() && st.uid === me && (st.mode & 0o022) === 0) return path;
  const fresh = mkdtempSync(`${path}-`);
  log?.(`${path} is not this user's own folder (owner ${st.uid}, mode ${(st.mode & 0o7777).toString(8)}); using ${fresh} for instance sockets`);
  return fresh;
}

function mib(bytes: number): string {
  return bytes >= 1024 ** 3 && bytes % 1024 ** 3 === 0 ? `${bytes / 1024 ** 3} GiB` : `${Math.round(bytes / 1024 / 1024)} MiB`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The Engine's own words for a failed call (its JSON `message`), else the error's. */
function dockerMessage(e: unknown): string {
  const json = (e as { json?: { message?: string } }).json;
  return (json?.message ?? (e as Error).message ?? String(e)).trim();
}

