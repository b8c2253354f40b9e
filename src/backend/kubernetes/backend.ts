// The Kubernetes backend: instances are pods on an attached compute (docs/kubernetes.md). It applies the
// objects render.ts makes with server-side apply (field manager `infergate`) and watches the pods it made,
// mapping their status onto ObservedInstance the way Azure reports a Kubernetes deployment: ready pods
// serve; ImagePullBackOff and a failing init() are final (ImagePullLoopBackOff, UserScriptInitFailed);
// CrashLoopBackOff and OOMKilled are restarts, with the reason as the error.
//
// A revision's instances are one Deployment's pods: start() and stop() change its replicas and the list of
// instance ids it runs (an annotation), and observe() pairs the revision's pods, oldest first, with its
// ids in index order. The cluster, not this process, keeps pods running: close() stops watching and leaves
// them, and a restarted control plane adopts them (start() of the same ids applies the same objects).
//
// An environment infergate builds (conda file, build context) is built and pushed to the compute's
// registry before anything of its revision is applied (images.ts), and its pods name it by digest.

import { CoreV1Api, KubeConfig, KubernetesObjectApi, PatchStrategy, VersionApi, Watch, type KubernetesObject } from '@kubernetes/client-node';
import { errorOf, InfergateError } from '../../errors/index.js';
import type { InstanceAddress, InstancePlan } from '../../ir/types.js';
import type { Backend, LogContainer, ObservedInstance } from '../types.js';
import { buildWhat, DockerImagePublisher, needsImageBuild, type EnvironmentImagePublisher } from './images.js';
import { ANNOTATION, assetSecretName, deploymentObjectName, endpointLabels, EXIT_INIT_FAILED, FIELD_MANAGER, FRAMED_PORT, LABEL, renderDeployment, renderRoot, rootName, serviceName, type KubeObject, type RenderContext } from './render.js';

export interface KubernetesBackendOptions {
  /** The compute's name (messages, errors). */
  compute: string;
  /** The kubeconfig's content (YAML). */
  kubeconfig: string;
  /** A context of the kubeconfig; default its current-context. */
  context?: string;
  /** Default: the context's namespace, else `default`. */
  namespace?: string;
  /** This workspace's label value (render.ts RenderContext.workspace). */
  workspace: string;
  /** The control plane's URL as pods reach it. */
  controlUrl: string;
  defaultImage: string;
  registry?: string;
  /** The init container's token for one plan revision (api/instance-assets.ts issues it). */
  assetToken(plan: InstancePlan): string;
  /** Bound on each API call (default 5 s): an API server that does not answer fails the change, never hangs it. */
  callTimeoutMs?: number;
  /**
   * How often the revisions that run are applied again (default 20 min), which renews their asset tokens
   * (valid 1 h): a pod that restarts later still fetches its model and code.
   */
  refreshMs?: number;
  /** Builds and pushes environment images to `registry` (default: this machine's Docker Engine, images.ts). */
  images?: EnvironmentImagePublisher;
  log?: (line: string) => void;
}

/** Lines of image builds and pushes kept per deployment for get-logs (the pods' own logs follow them). */
const BUILD_LOG_LINES = 500;

interface Pod {
  metadata: { name: string; namespace?: string; uid?: string; labels?: Record<string, string>; creationTimestamp?: string | Date; deletionTimestamp?: string | Date; ownerReferences?: { uid: string }[] };
  spec?: { containers?: { name: string; image?: string; resources?: { limits?: Record<string, string> } }[] };
  status?: {
    phase?: string;
    podIP?: string;
    conditions?: { type: string; status: string; reason?: string; message?: string }[];
    initContainerStatuses?: ContainerStatus[];
    containerStatuses?: ContainerStatus[];
  };
}

interface ContainerStatus {
  name: string;
  ready?: boolean;
  restartCount?: number;
  image?: string;
  state?: { waiting?: { reason?: string; message?: string }; running?: object; terminated?: { exitCode?: number; reason?: string; message?: string } };
  lastState?: { terminated?: { exitCode?: number; reason?: string; message?: string } };
}

interface Instance {
  id: string;
  plan: InstancePlan;
  index: number;
  /** Set when applying its objects failed: the instance is failed with it. */
  error?: { code: string; message: string };
}

/**
 * A KubeConfig whose API calls (not watches) are aborted after `callTimeoutMs`: client-node applies the
 * signal per request, so a cluster that stops answering fails the call and frees its socket, rather than
 * holding it (and the process) until the kernel gives up on the connection.
 */
class BoundedKubeConfig extends KubeConfig {
  callTimeoutMs = 5000;
  override async applySecurityAuthentication(context: Parameters<KubeConfig['applySecurityAuthentication']>[0]): Promise<void> {
    await super.applySecurityAuthentication(context);
    context.setSignal(AbortSignal.timeout(this.callTimeoutMs));
  }
}

/** Loads a kubeconfig's text; throws KubeconfigInvalid with why it cannot be used. */
export function loadKubeConfig(text: string, context?: string, callTimeoutMs = 5000): KubeConfig {
  const kc = new BoundedKubeConfig();
  kc.callTimeoutMs = callTimeoutMs;
  try {
    kc.loadFromString(text);
  } catch (e) {
    throw errorOf('KubeconfigInvalid', { reason: (e as Error).message.split('\n')[0] });
  }
  if (context !== undefined) {
    if (!kc.getContexts().some((c) => c.name === context)) throw errorOf('KubeconfigInvalid', { reason: `it has no context '${context}' (contexts: ${kc.getContexts().map((c) => c.name).join(', ') || 'none'})` });
    kc.setCurrentContext(context);
  }
  if (!kc.getCurrentCluster()) throw errorOf('KubeconfigInvalid', { reason: 'no current context with a cluster (set current-context or pass --context)' });
  return kc;
}

/** The namespace a compute uses: as given, else its context's, else `default`. */
export function namespaceOf(kc: KubeConfig, namespace?: string): string {
  return namespace ?? kc.getContextObject(kc.getCurrentContext())?.namespace ?? 'default';
}

/**
 * Whether the compute's API server answers (GET /version) within `timeoutMs`: resolves with its version,
 * or throws KubernetesUnaccessible saying what went wrong. Attach and endpoint create call it, so an
 * unreachable cluster fails them in seconds rather than leaving an endpoint Creating.
 */
export async function probeCompute(compute: { name: string; kubeconfig: string; context?: string }, timeoutMs = 3000): Promise<string> {
  const kc = loadKubeConfig(compute.kubeconfig, compute.context, timeoutMs);
  const server = kc.getCurrentCluster()!.server;
  try {
    const v = await within(kc.makeApiClient(VersionApi).getCode(), timeoutMs);
    return v.gitVersion;
  } catch (e) {
    throw errorOf('KubernetesUnaccessible', { compute: compute.name, server, seconds: timeoutMs / 1000, reason: reasonOf(e) });
  }
}

export class KubernetesBackend implements Backend {
  readonly kind = 'kubernetes' as const;
  readonly namespace: string;
  private readonly kc: KubeConfig;
  private readonly objects: KubernetesObjectApi;
  private readonly core: CoreV1Api;
  private readonly callTimeoutMs: number;
  private readonly instances = new Map<string, Instance>();
  private readonly pods = new Map<string, Pod>();
  /** Root ConfigMap uid per endpoint (lower-cased name). */
  private readonly roots = new Map<string, string>();
  /** Applies of one revision's Deployment run one after another (key: its object name). */
  private readonly queues = new Map<string, Promise<void>>();
  private readonly listeners: (() => void)[] = [];
  private readonly images: EnvironmentImagePublisher;
  /** The pushed image (by digest) of each revision whose environment infergate builds (key: its object name). */
  private readonly built = new Map<string, string>();
  /** Build and push output per deployment (key: endpoint/deployment, lower case), for logs(). */
  private readonly buildLogs = new Map<string, string[]>();
  private watch: AbortController | null = null;
  private watching: Promise<void> | null = null;
  private closed = false;
  private readonly log: (line: string) => void;
  private readonly refresh: NodeJS.Timeout;

  constructor(private readonly o: KubernetesBackendOptions) {
    this.kc = loadKubeConfig(o.kubeconfig, o.context, o.callTimeoutMs ?? 5000);
    this.namespace = namespaceOf(this.kc, o.namespace);
    this.objects = KubernetesObjectApi.makeApiClient(this.kc);
    this.core = this.kc.makeApiClient(CoreV1Api);
    this.callTimeoutMs = o.callTimeoutMs ?? 5000;
    this.log = o.log ?? (() => {});
    this.images = o.images ?? new DockerImagePublisher();
    this.refresh = setInterval(() => this.reapply(), o.refreshMs ?? 20 * 60_000);
    this.refresh.unref();
  }

  /**
   * Applies every revision that runs again (fresh asset tokens; objects someone changed are set back). A
   * refresh that fails is logged and tried again next time: the pods still run, so their instances are not
   * failed for an API server that did not answer for a moment.
   */
  private reapply(): void {
    const plans = new Map<string, InstancePlan>();
    for (const i of this.instances.values()) plans.set(deploymentObjectName(i.plan), i.plan);
    for (const plan of plans.values()) this.applyRevision(plan, true).catch(() => {});
  }

  private get selector(): string {
    return `${LABEL.managedBy}=infergate,${LABEL.workspace}=${this.o.workspace}`;
  }

  private context(plan?: InstancePlan): RenderContext {
    const uid = plan && this.roots.get(plan.endpoint.toLowerCase());
    return {
      namespace: this.namespace,
      workspace: this.o.workspace,
      controlUrl: this.o.controlUrl,
      defaultImage: this.o.defaultImage,
      ...(this.o.registry !== undefined ? { registry: this.o.registry } : {}),
      ...(plan && uid ? { owner: { name: rootName(plan.endpoint), uid } } : {}),
    };
  }

  // ---- Backend

  observe(): ObservedInstance[] {
    if (this.closed) return [];
    const out: ObservedInstance[] = [];
    const byRevision = new Map<string, Pod[]>();
    for (const inst of this.instances.values()) {
      const name = deploymentObjectName(inst.plan);
      let pods = byRevision.get(name);
      if (!pods) {
        pods = this.podsOf(inst.plan);
        byRevision.set(name, pods);
      }
      const position = this.idsOf(name).indexOf(inst.id);
      out.push(this.observed(inst, pods[position]));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async start(id: string, plan: InstancePlan, index: number): Promise<void> {
    if (this.closed || this.instances.has(id)) return;
    this.instances.set(id, { id, plan, index });
    this.ensureWatch();
    this.changed();
    await this.applyRevision(plan);
  }

  async stop(id: string): Promise<void> {
    const inst = this.instances.get(id);
    if (!inst) return;
    this.instances.delete(id);
    this.changed();
    await this.applyRevision(inst.plan);
  }

  async logs(endpoint: string, deployment: string, container: LogContainer, lines: number): Promise<string> {
    const pods = [...this.pods.values()]
      .filter((p) => p.metadata.labels?.[LABEL.endpoint] === endpointLabels(this.o, endpoint)[LABEL.endpoint] && p.metadata.labels?.[LABEL.deployment]?.toLowerCase() === deployment.toLowerCase())
      .sort((a, b) => time(b.metadata.creationTimestamp) - time(a.metadata.creationTimestamp));
    const parts: string[] = [];
    const built = container === 'inference-server' ? this.buildLogs.get(`${endpoint}/${deployment}`.toLowerCase()) : undefined;
    if (built?.length) parts.push(built.join('\n') + '\n');
    for (const p of pods) {
      try {
        const text = await within(this.core.readNamespacedPodLog({ name: p.metadata.name, namespace: this.namespace, container, tailLines: lines }), this.callTimeoutMs);
        if (text) parts.push(String(text));
      } catch {
        // A pod that is gone, or whose container has not started, has no log yet.
      }
    }
    const all = parts.join('').split('\n');
    if (all.at(-1) === '') all.pop();
    return all.length ? all.slice(-lines).join('\n') + '\n' : '';
  }

  async forget(endpoint: string, deployment: string): Promise<void> {
    const same = (i: Instance) => i.plan.endpoint.toLowerCase() === endpoint.toLowerCase();
    if ([...this.instances.values()].some((i) => same(i) && i.plan.deployment.toLowerCase() === deployment.toLowerCase())) return;
    const ep = endpointLabels(this.o, endpoint)[LABEL.endpoint];
    const dep = deployment.toLowerCase();
    const ours = async (apiVersion: string, kind: string) =>
      (await this.call(this.objects.list(apiVersion, kind, this.namespace, undefined, undefined, undefined, undefined, `${this.selector},${LABEL.endpoint}=${ep}`))).items.filter((o) => o.metadata?.labels?.[LABEL.deployment]?.toLowerCase() === dep);
    this.buildLogs.delete(`${endpoint}/${deployment}`.toLowerCase());
    for (const [apiVersion, kind] of [['apps/v1', 'Deployment'], ['v1', 'Secret'], ['v1', 'Service'], ['policy/v1', 'PodDisruptionBudget']] as const) {
      for (const obj of await ours(apiVersion, kind)) await this.remove({ apiVersion, kind, metadata: { name: obj.metadata!.name!, namespace: this.namespace } });
    }
    // The endpoint's last deployment: its root goes too (an endpoint's later deployment makes a new one).
    if (![...this.instances.values()].some(same)) {
      await this.remove({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: rootName(endpoint), namespace: this.namespace } });
      this.roots.delete(endpoint.toLowerCase());
    }
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.refresh);
    this.watch?.abort();
    await Promise.allSettled([...this.queues.values()]);
    this.instances.clear();
  }

  // ---- applying

  /** Apply (or delete) the revision's objects so its Deployment runs the ids started now. */
  private applyRevision(plan: InstancePlan, refresh = false): Promise<void> {
    const name = deploymentObjectName(plan);
    const prev = this.queues.get(name) ?? Promise.resolve();
    const next = prev.then(() => this.applyNow(plan, name, refresh));
    const settled = next.catch(() => {});
    this.queues.set(name, settled);
    void settled.then(() => {
      if (this.queues.get(name) === settled) this.queues.delete(name);
    });
    return next;
  }

  private async applyNow(plan: InstancePlan, name: string, refresh: boolean): Promise<void> {
    let ids = this.idsOf(name);
    try {
      // Built before anything is applied: a pod never names an image that does not exist (yet).
      const environmentImage = ids.length > 0 ? await this.environmentImage(plan, name) : undefined;
      // Instances stopped during a build (minutes) are not applied.
      ids = this.idsOf(name);
      if (ids.length === 0) {
        this.built.delete(name);
        await this.remove({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: this.namespace } });
        await this.remove({ apiVersion: 'v1', kind: 'Secret', metadata: { name: assetSecretName(plan), namespace: this.namespace } });
        return;
      }
      await this.ensureRoot(plan.endpoint);
      const objects = renderDeployment(plan, { ...this.context(plan), instances: ids, ...(environmentImage !== undefined ? { environmentImage } : {}) }, this.o.assetToken(plan));
      for (const obj of objects) await this.apply(obj);
      // An instance stopped while this applied is gone from the map (the next apply in the queue drops it).
      for (const id of ids) {
        const inst = this.instances.get(id);
        if (inst) delete inst.error;
      }
    } catch (e) {
      const err = e instanceof InfergateError ? e : errorOf('KubernetesApplyFailed', { object: `the objects of ${plan.endpoint}/${plan.deployment}`, compute: this.o.compute, reason: reasonOf(e) });
      this.log(`kubernetes: ${err.message}`);
      if (refresh) throw err;
      for (const id of ids) {
        const inst = this.instances.get(id);
        if (inst) inst.error = { code: err.code, message: err.message };
      }
      this.changed();
      throw err;
    }
    this.changed();
  }

  /** The revision's built and pushed image, or undefined when its environment is used as written. */
  private async environmentImage(plan: InstancePlan, name: string): Promise<string | undefined> {
    if (!needsImageBuild(plan.environment)) return undefined;
    const known = this.built.get(name);
    if (known !== undefined) return known;
    const request = { compute: this.o.compute, endpoint: plan.endpoint, deployment: plan.deployment };
    if (this.o.registry === undefined) throw errorOf('KubernetesImageNeedsRegistry', { ...request, what: buildWhat(plan.environment) });
    const key = `${plan.endpoint}/${plan.deployment}`.toLowerCase();
    const log = (line: string) => {
      const lines = this.buildLogs.get(key) ?? [];
      lines.push(line);
      if (lines.length > BUILD_LOG_LINES) lines.splice(0, lines.length - BUILD_LOG_LINES);
      this.buildLogs.set(key, lines);
      this.log(`kubernetes: ${plan.endpoint}/${plan.deployment}: ${line}`);
    };
    const image = await this.images.publish(plan.environment, this.o.registry, this.o.defaultImage, request, log);
    this.built.set(name, image);
    return image;
  }

  private async ensureRoot(endpoint: string): Promise<void> {
    if (this.roots.has(endpoint.toLowerCase())) return;
    const root = await this.apply(renderRoot(this.context(), endpoint));
    this.roots.set(endpoint.toLowerCase(), root.metadata!.uid!);
  }

  private async apply(obj: KubeObject): Promise<KubernetesObject> {
    try {
      return await this.call(this.objects.patch(obj as KubernetesObject, undefined, undefined, FIELD_MANAGER, true, PatchStrategy.ServerSideApply));
    } catch (e) {
      throw errorOf('KubernetesApplyFailed', { object: `${obj.kind} ${this.namespace}/${obj.metadata.name}`, compute: this.o.compute, reason: reasonOf(e) });
    }
  }

  private async remove(obj: Pick<KubeObject, 'apiVersion' | 'kind' | 'metadata'>): Promise<void> {
    try {
      await this.call(this.objects.delete(obj as KubernetesObject, undefined, undefined, undefined, undefined, 'Background'));
    } catch (e) {
      if (statusOf(e) === 404) return;
      throw errorOf('KubernetesApplyFailed', { object: `${obj.kind} ${this.namespace}/${obj.metadata.name} (delete)`, compute: this.o.compute, reason: reasonOf(e) });
    }
  }

  private call<T>(p: Promise<T>): Promise<T> {
    return within(p, this.callTimeoutMs);
  }

  // ---- watching

  private ensureWatch(): void {
    if (this.watching || this.closed) return;
    this.watching = this.watchLoop();
  }

  /** List, then watch from the list's resourceVersion; on any end (410 Gone, a dropped stream), again. */
  private async watchLoop(): Promise<void> {
    let backoff = 100;
    while (!this.closed) {
      try {
        const list = await this.call(this.objects.list<KubernetesObject>('v1', 'Pod', this.namespace, undefined, undefined, undefined, undefined, this.selector));
        this.pods.clear();
        for (const p of list.items) this.pods.set(p.metadata!.name!, p as Pod);
        this.changed();
        const since = Date.now();
        await new Promise<void>((resolve) => {
          void new Watch(this.kc)
            .watch(
              `/api/v1/namespaces/${this.namespace}/pods`,
              { labelSelector: this.selector, resourceVersion: list.metadata?.resourceVersion, allowWatchBookmarks: true },
              (type, obj: Pod) => {
                if (type === 'ERROR') return void this.watch?.abort();
                if (type === 'BOOKMARK') return;
                if (type === 'DELETED') this.pods.delete(obj.metadata.name);
                else this.pods.set(obj.metadata.name, obj);
                this.changed();
              },
              () => resolve(),
            )
            .then((c) => {
              this.watch = c;
              if (this.closed) c.abort();
            }, () => resolve());
        });
        // A watch that ends at once (refused, an ERROR event, a proxy closing streams) waits before the
        // next list, as a failed list does: never a tight list-and-watch loop against the API server.
        if (Date.now() - since < 1000 && !this.closed) {
          await sleep(backoff);
          backoff = Math.min(backoff * 2, 5000);
        } else backoff = 100;
      } catch (e) {
        if (this.closed) return;
        this.log(`kubernetes: watching pods on compute '${this.o.compute}' failed (${reasonOf(e)}); retrying`);
        await sleep(backoff);
        backoff = Math.min(backoff * 2, 5000);
      }
    }
  }

  // ---- mapping pods to instances

  private idsOf(deploymentName: string): string[] {
    return [...this.instances.values()]
      .filter((i) => deploymentObjectName(i.plan) === deploymentName)
      .sort((a, b) => a.index - b.index)
      .map((i) => i.id);
  }

  private podsOf(plan: InstancePlan): Pod[] {
    const name = deploymentObjectName(plan);
    return [...this.pods.values()]
      .filter((p) => p.metadata.deletionTimestamp === undefined && p.metadata.labels?.[LABEL.revision] === plan.revision && (p.metadata.name.startsWith(name.slice(0, 50)) || p.metadata.labels?.[LABEL.deployment] === plan.deployment))
      .filter((p) => p.metadata.labels?.[LABEL.endpoint] === endpointLabels(this.o, plan.endpoint)[LABEL.endpoint])
      .sort((a, b) => time(a.metadata.creationTimestamp) - time(b.metadata.creationTimestamp) || (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  private observed(inst: Instance, pod: Pod | undefined): ObservedInstance {
    const base = { id: inst.id, endpoint: inst.plan.endpoint, deployment: inst.plan.deployment, revision: inst.plan.revision, index: inst.index };
    if (inst.error) return { ...base, state: 'failed', restarts: 0, error: inst.error };
    if (!pod) return { ...base, state: 'starting', restarts: 0 };
    const s = podState(pod, inst);
    return { ...base, ...s };
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }
}

/** What a pod's status means for its instance, as Azure reports a Kubernetes deployment's pods. */
export function podState(pod: Pod, inst: Pick<Instance, 'id' | 'plan'>): Pick<ObservedInstance, 'state' | 'restarts' | 'address' | 'error'> {
  const main = pod.status?.containerStatuses?.find((c) => c.name === 'inference-server');
  const init = pod.status?.initContainerStatuses?.find((c) => c.name === 'storage-initializer');
  const restarts = main?.restartCount ?? 0;
  const waiting = main?.state?.waiting;
  const last = main?.lastState?.terminated ?? main?.state?.terminated;
  const image = main?.image ?? pod.spec?.containers?.find((c) => c.name === 'inference-server')?.image ?? inst.plan.environment.image ?? '';
  const custom = inst.plan.runtime === 'container';
  for (const c of [init, main]) {
    const w = c?.state?.waiting;
    if (w && ['ErrImagePull', 'ImagePullBackOff', 'InvalidImageName'].includes(w.reason ?? '')) {
      const e = errorOf('PodImagePullFailed', { instance: inst.id, image: c!.image ?? image, reason: w.reason!, message: w.message ?? '' });
      return { state: 'failed', restarts, error: { code: e.code, message: e.message } };
    }
  }
  const initEnd = init?.lastState?.terminated ?? init?.state?.terminated;
  if (initEnd && (initEnd.exitCode ?? 0) !== 0) {
    const why = initEnd.message?.trim() || `exit code ${initEnd.exitCode} (${initEnd.reason ?? 'Error'})`;
    return { state: 'failed', restarts, error: { code: 'StorageInitializerFailed', message: `The storage initializer of instance ${inst.id} could not fetch the model and code from the control plane: ${why}` } };
  }
  // infergate's host exits with EXIT_INIT_FAILED when init() raised: final, as locally (no restart loop).
  if (!custom && last?.exitCode === EXIT_INIT_FAILED) {
    return { state: 'failed', restarts: 0, error: { code: 'UserScriptInitFailed', message: last.message?.trim() || `init() of ${inst.id} raised an error (see get-logs)` } };
  }
  if (main?.ready && pod.status?.podIP) {
    return { state: 'ready', restarts, address: addressOf(inst, pod.status.podIP) };
  }
  if (last?.reason === 'OOMKilled') {
    const limit = pod.spec?.containers?.find((c) => c.name === 'inference-server')?.resources?.limits?.memory ?? 'no limit';
    const e = errorOf('PodOomKilled', { instance: inst.id, limit, restarts });
    return { state: 'restarting', restarts, error: { code: e.code, message: e.message } };
  }
  if (waiting?.reason === 'CrashLoopBackOff' || (last && restarts > 0 && !main?.ready)) {
    const e = errorOf('PodCrashLoop', { instance: inst.id, restarts, message: last?.message?.trim() || `exit code ${last?.exitCode ?? '?'} (${last?.reason ?? 'Error'})` });
    return { state: 'restarting', restarts, error: { code: e.code, message: e.message } };
  }
  if (main?.state?.running) return { state: restarts > 0 ? 'unready' : 'starting', restarts };
  return { state: 'starting', restarts };
}

/** The address routers reach a ready pod at: infergate's hosts speak the framed protocol over TCP. */
function addressOf(inst: Pick<Instance, 'id' | 'plan'>, ip: string): InstanceAddress {
  if (inst.plan.runtime === 'container') {
    const s = inst.plan.environment.inferenceConfig!.scoring;
    return { instanceId: inst.id, transport: 'http', host: ip, port: s.port, path: s.path };
  }
  return { instanceId: inst.id, transport: 'framed-tcp', host: ip, port: FRAMED_PORT };
}

export { serviceName, ANNOTATION };

function time(t: string | Date | undefined): number {
  return t === undefined ? 0 : new Date(t).getTime();
}

/** Resolves or rejects as `p`, or rejects with a timeout after `ms`. */
export function within<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

function statusOf(e: unknown): number | undefined {
  const x = e as { code?: number; statusCode?: number; response?: { statusCode?: number } };
  return x.code ?? x.statusCode ?? x.response?.statusCode;
}

function reasonOf(e: unknown): string {
  const x = e as { code?: number | string; body?: unknown; message?: string; cause?: { code?: string; message?: string } };
  if (typeof x.body === 'string') {
    try {
      const status = JSON.parse(x.body) as { message?: string; reason?: string };
      if (status.message) return `HTTP ${x.code}: ${status.message}`;
    } catch {
      // not a Status
    }
  }
  if (x.body && typeof x.body === 'object' && 'message' in x.body) return `HTTP ${x.code}: ${(x.body as { message: string }).message}`;
  const cause = x.cause?.code ?? (x as { errno?: string }).errno;
  const msg = (x.message ?? String(e)).split('\n')[0].slice(0, 300);
  return cause && !msg.includes(cause) ? `${msg} (${cause})` : msg;
}

/** A backoff pause that does not keep the process alive after close(). */
function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms).unref());
}
