// A fake Kubernetes API server on loopback: the REST paths infergate's Kubernetes backend uses, and
// nothing more. There is no real API server on our machines (reference/dependencies.md finding 8), so tests
// play the cluster through it: the fake's Deployment controller makes pods, and a test marks them ready,
// crashes them, OOM-kills them or fails their image pulls.
//
// Served: discovery (/version, /api/v1, /apis/<group>/<version>), get, list (labelSelector: k=v,k=v),
// server-side apply (PATCH application/apply-patch+yaml with fieldManager; create or merge), delete (with
// garbage collection through ownerReferences, as the real collector does in the background), watch
// (?watch=true from a resourceVersion; 410 Gone when it is older than the kept history) and pod logs.

import { randomBytes, randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';

export interface Obj {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; ownerReferences?: { uid: string; kind: string; name: string }[]; creationTimestamp?: string; managedFields?: { manager: string; operation: string }[]; generateName?: string };
  [key: string]: any;
}

interface Resource {
  group: string;
  version: string;
  plural: string;
  kind: string;
  namespaced: boolean;
}

const RESOURCES: Resource[] = [
  { group: '', version: 'v1', plural: 'configmaps', kind: 'ConfigMap', namespaced: true },
  { group: '', version: 'v1', plural: 'secrets', kind: 'Secret', namespaced: true },
  { group: '', version: 'v1', plural: 'services', kind: 'Service', namespaced: true },
  { group: '', version: 'v1', plural: 'pods', kind: 'Pod', namespaced: true },
  { group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false },
  { group: 'apps', version: 'v1', plural: 'deployments', kind: 'Deployment', namespaced: true },
  { group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true },
  { group: 'discovery.k8s.io', version: 'v1', plural: 'endpointslices', kind: 'EndpointSlice', namespaced: true },
];

export interface RequestRecord {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType?: string;
}

interface Event {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: Resource;
  object: Obj;
}

/** The most watch events kept; a watch from before them gets 410 Gone, as from a compacted etcd. */
const HISTORY = 2000;

export class FakeApiServer {
  private server: Server;
  private rv = 1;
  private readonly objects = new Map<string, { resource: Resource; object: Obj }>();
  private events: Event[] = [];
  private readonly watchers = new Set<{ resource: Resource; namespace?: string; selector: Record<string, string>; res: ServerResponse }>();
  private readonly logs = new Map<string, string>();
  /** Every request, in order (tests check the paths, content types and field managers used). */
  readonly requests: RequestRecord[] = [];
  /** When set, every request must carry it as a Bearer token. */
  token: string | undefined;
  /** Pod IPs handed out: <podNetwork>N. A test that runs pods on this machine uses loopback ones (127.x.y.). */
  podNetwork = '10.244.0.';
  private nextIp = 2;
  url = '';

  constructor() {
    this.server = createServer((req, res) => void this.handle(req, res));
  }

  async start(): Promise<string> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', r));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
    return this.url;
  }

  async close(): Promise<void> {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  /** A kubeconfig (YAML) for this server with a token user. */
  kubeconfig(namespace = 'default', token = this.token ?? 'test-token'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      // Plain HTTP on loopback: client-node then needs insecure-skip-tls-verify (a real cluster has TLS).
      `- name: fake\n  cluster:\n    server: ${this.url}\n    insecure-skip-tls-verify: true`,
      'users:',
      `- name: infergate\n  user:\n    token: ${token}`,
      'contexts:',
      `- name: fake\n  context:\n    cluster: fake\n    user: infergate\n    namespace: ${namespace}`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  // ---- what tests read and do (the cluster's side)

  list(kind: string, namespace?: string, selector: Record<string, string> = {}): Obj[] {
    return [...this.objects.values()]
      .filter((e) => e.resource.kind === kind && (namespace === undefined || e.object.metadata.namespace === namespace) && matches(e.object, selector))
      .map((e) => structuredClone(e.object))
      .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  }

  get(kind: string, namespace: string, name: string): Obj | undefined {
    const r = RESOURCES.find((x) => x.kind === kind)!;
    const e = this.objects.get(key(r, namespace, name));
    return e && structuredClone(e.object);
  }

  /** Changes a pod's status as its kubelet would report it. */
  setPodStatus(name: string, namespace: string, status: Record<string, unknown>): void {
    const r = RESOURCES.find((x) => x.kind === 'Pod')!;
    const e = this.objects.get(key(r, namespace, name));
    if (!e) throw new Error(`no pod ${namespace}/${name}`);
    const object = { ...structuredClone(e.object), status: { ...e.object.status, ...structuredClone(status) } };
    this.store(r, object, 'MODIFIED');
    if (object.metadata.labels?.['infergate.io/deployment']) this.syncSlices(namespace);
  }

  /**
   * Plays the simplest kubelet: every new pod (of `namespace`, else any) gets what `play` does to it, by
   * default ready(). Returns how to stop it.
   */
  playKubelet(play: (pod: Obj) => void = (pod) => this.ready(pod), namespace?: string): { stop(): Promise<void> } {
    let stopped = false;
    const seen = new Set<string>();
    const loop = (async () => {
      while (!stopped) {
        for (const p of this.list('Pod', namespace)) {
          if (seen.has(p.metadata.name)) continue;
          seen.add(p.metadata.name);
          play(p);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
      },
    };
  }

  /** The pod's containers run and pass their readiness probe. */
  ready(pod: Obj, restarts?: number): void {
    const count = restarts ?? pod.status?.containerStatuses?.[0]?.restartCount ?? 0;
    this.setPodStatus(pod.metadata.name, pod.metadata.namespace!, {
      phase: 'Running',
      podIP: pod.status?.podIP,
      conditions: [{ type: 'Ready', status: 'True' }],
      initContainerStatuses: [{ name: 'storage-initializer', ready: true, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } }],
      containerStatuses: [{ name: 'inference-server', ready: true, restartCount: count, state: { running: { startedAt: new Date().toISOString() } } }],
    });
  }

  /** The container exits (`reason` Error, or OOMKilled) and the kubelet backs off before the next start. */
  crash(pod: Obj, opts: { reason?: 'Error' | 'OOMKilled'; exitCode?: number; message?: string } = {}): void {
    const restarts = (pod.status?.containerStatuses?.[0]?.restartCount ?? 0) + 1;
    const terminated = { exitCode: opts.exitCode ?? (opts.reason === 'OOMKilled' ? 137 : 1), reason: opts.reason ?? 'Error', ...(opts.message ? { message: opts.message } : {}) };
    this.setPodStatus(pod.metadata.name, pod.metadata.namespace!, {
      phase: 'Running',
      conditions: [{ type: 'Ready', status: 'False' }],
      containerStatuses: [{ name: 'inference-server', ready: false, restartCount: restarts, state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off restarting failed container' } }, lastState: { terminated } }],
    });
  }

  /** The image cannot be pulled: ErrImagePull, then ImagePullBackOff. */
  imagePullFails(pod: Obj, reason: 'ErrImagePull' | 'ImagePullBackOff' = 'ImagePullBackOff'): void {
    const image = pod.spec.containers[0].image;
    this.setPodStatus(pod.metadata.name, pod.metadata.namespace!, {
      phase: 'Pending',
      containerStatuses: [{ name: 'inference-server', ready: false, restartCount: 0, image, state: { waiting: { reason, message: `Back-off pulling image "${image}"` } } }],
    });
  }

  appendLog(pod: Obj, container: string, text: string): void {
    const k = `${pod.metadata.namespace}/${pod.metadata.name}/${container}`;
    this.logs.set(k, (this.logs.get(k) ?? '') + text);
  }

  // ---- HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://x');
    const query = Object.fromEntries(url.searchParams);
    this.requests.push({ method: req.method ?? '', path: url.pathname, query, ...(req.headers['content-type'] ? { contentType: req.headers['content-type'] } : {}) });
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    try {
      if (this.token !== undefined && req.headers.authorization !== `Bearer ${this.token}`) return status(res, 401, 'Unauthorized', 'Unauthorized');
      const p = url.pathname.replace(/\/+$/, '');
      if (p === '/version') return json(res, 200, { major: '1', minor: '27', gitVersion: 'v1.27.1-fake' });
      if (p === '/api') return json(res, 200, { kind: 'APIVersions', versions: ['v1'] });
      if (p === '/apis') return json(res, 200, { kind: 'APIGroupList', apiVersion: 'v1', groups: [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))].map((g) => ({ name: g, versions: [{ groupVersion: `${g}/v1`, version: 'v1' }] })) });
      const m = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?(?:\/([^/]+))?(?:\/([^/]+))?(?:\/(log))?$/.exec(p);
      if (!m) return status(res, 404, 'NotFound', `the server could not find the requested resource (${p})`);
      const group = m[1] ? '' : m[2];
      const version = m[1] ?? m[3];
      let namespace: string | undefined = m[4];
      let plural = m[5];
      let name = m[6];
      // /api/v1/namespaces/<ns> is the namespace itself.
      if (namespace !== undefined && plural === undefined) {
        plural = 'namespaces';
        name = namespace;
        namespace = undefined;
      }
      if (plural === undefined) {
        return json(res, 200, { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: group ? `${group}/${version}` : version, resources: RESOURCES.filter((r) => r.group === group && r.version === version).map((r) => ({ name: r.plural, singularName: r.kind.toLowerCase(), namespaced: r.namespaced, kind: r.kind, verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'] })) });
      }
      const resource = RESOURCES.find((r) => r.group === group && r.version === version && r.plural === plural);
      if (!resource) return status(res, 404, 'NotFound', `the server could not find the requested resource (${plural})`);
      if (m[7] === 'log') return this.podLog(res, namespace!, name!, query);
      switch (req.method) {
        case 'GET':
          if (name !== undefined) {
            const e = this.objects.get(key(resource, namespace, name));
            return e ? json(res, 200, e.object) : status(res, 404, 'NotFound', `${plural} "${name}" not found`);
          }
          if (query.watch === 'true' || query.watch === '1') return this.watch(req, res, resource, namespace, parseSelector(query.labelSelector), query.resourceVersion);
          return json(res, 200, { apiVersion: group ? `${group}/${version}` : version, kind: `${resource.kind}List`, metadata: { resourceVersion: String(this.rv) }, items: this.list(resource.kind, namespace, parseSelector(query.labelSelector)) });
        case 'PATCH': {
          if (req.headers['content-type'] !== 'application/apply-patch+yaml') return status(res, 415, 'UnsupportedMediaType', `only server-side apply is served, not ${req.headers['content-type']}`);
          if (!query.fieldManager) return status(res, 422, 'Invalid', 'fieldManager is required for apply patch');
          const patch = parseYaml(body) as Obj;
          if (patch.kind !== resource.kind || patch.metadata?.name !== name) return status(res, 400, 'BadRequest', 'the object does not match the URL');
          return json(res, 200, this.apply(resource, namespace, patch, query.fieldManager));
        }
        case 'DELETE': {
          const e = this.objects.get(key(resource, namespace, name!));
          if (!e) return status(res, 404, 'NotFound', `${plural} "${name}" not found`);
          this.remove(resource, e.object);
          return json(res, 200, { kind: 'Status', apiVersion: 'v1', status: 'Success', details: { name, kind: plural, uid: e.object.metadata.uid } });
        }
        default:
          return status(res, 405, 'MethodNotAllowed', `${req.method} is not served by the fake`);
      }
    } catch (e) {
      return status(res, 500, 'InternalError', String(e));
    }
  }

  /** Where pod logs come from when set (a kubelet that runs the pods); else what appendLog() wrote. */
  logSource: ((namespace: string, pod: string, container: string) => Promise<string>) | undefined;

  private async podLog(res: ServerResponse, namespace: string, name: string, query: Record<string, string>): Promise<void> {
    if (!this.objects.has(`/v1/pods/${namespace}/${name}`)) return status(res, 404, 'NotFound', `pods "${name}" not found`);
    const container = query.container ?? 'inference-server';
    const text = this.logSource ? await this.logSource(namespace, name, container) : (this.logs.get(`${namespace}/${name}/${container}`) ?? '');
    const tail = query.tailLines !== undefined ? Number(query.tailLines) : undefined;
    const lines = text.split('\n');
    if (lines.at(-1) === '') lines.pop();
    const out = tail !== undefined ? lines.slice(-tail) : lines;
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end(out.length ? out.join('\n') + '\n' : '');
  }

  private watch(req: IncomingMessage, res: ServerResponse, resource: Resource, namespace: string | undefined, selector: Record<string, string>, from: string | undefined): void {
    const since = from === undefined || from === '' || from === '0' ? this.rv : Number(from);
    const oldest = this.events[0]?.rv ?? this.rv;
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // As an API server does: headers at once, not with the first event. client-node's Watch hands back its
    // AbortController only once they arrive, so a watch without events could not be stopped before.
    res.flushHeaders();
    if (since < oldest - 1 || this.expireWatches > 0) {
      if (this.expireWatches > 0) this.expireWatches--;
      res.end(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', apiVersion: 'v1', status: 'Failure', reason: 'Expired', code: 410, message: `too old resource version: ${since} (${oldest})` } }) + '\n');
      return;
    }
    const w = { resource, namespace, selector, res };
    for (const e of this.events) if (e.rv > since) this.send(w, e);
    this.watchers.add(w);
    req.on('close', () => this.watchers.delete(w));
  }

  private send(w: { resource: Resource; namespace?: string; selector: Record<string, string>; res: ServerResponse }, e: Event): void {
    if (e.resource !== w.resource) return;
    if (w.namespace !== undefined && e.object.metadata.namespace !== w.namespace) return;
    if (!matches(e.object, w.selector)) return;
    w.res.write(JSON.stringify({ type: e.type, object: e.object }) + '\n');
  }

  /** Ends every open watch, as an API server does when it restarts or times a watch out. */
  dropWatches(): void {
    for (const w of this.watchers) w.res.end();
    this.watchers.clear();
  }

  /** Forgets the watch history, so a watch from an old resourceVersion gets 410 Gone. */
  compact(): void {
    this.events = [];
  }

  /** The next `n` watches get 410 Gone whatever their resourceVersion (history compacted meanwhile). */
  expireWatches = 0;

  // ---- storage and the controllers the fake plays

  private store(resource: Resource, object: Obj, type: Event['type']): Obj {
    object.metadata.resourceVersion = String(++this.rv);
    this.objects.set(key(resource, object.metadata.namespace, object.metadata.name), { resource, object });
    const e: Event = { rv: this.rv, type, resource, object: structuredClone(object) };
    this.events.push(e);
    if (this.events.length > HISTORY) this.events.splice(0, this.events.length - HISTORY);
    for (const w of this.watchers) this.send(w, e);
    return object;
  }

  private apply(resource: Resource, namespace: string | undefined, patch: Obj, manager: string): Obj {
    const k = key(resource, namespace, patch.metadata.name);
    const existing = this.objects.get(k)?.object;
    const managed = [{ manager, operation: 'Apply' }];
    let object: Obj;
    if (!existing) {
      object = { ...structuredClone(patch), metadata: { ...structuredClone(patch.metadata), namespace, uid: randomUUID(), creationTimestamp: new Date().toISOString(), managedFields: managed } };
      if (resource.kind === 'Secret' && object.stringData) {
        object.data = Object.fromEntries(Object.entries(object.stringData as Record<string, string>).map(([a, b]) => [a, Buffer.from(b).toString('base64')]));
        delete object.stringData;
      }
    } else {
      // Apply owns what it sends: its fields replace ours; status and identity stay the server's.
      object = { ...structuredClone(existing), ...structuredClone(patch), metadata: { ...existing.metadata, ...structuredClone(patch.metadata), uid: existing.metadata.uid, creationTimestamp: existing.metadata.creationTimestamp, managedFields: managed }, ...(existing.status ? { status: existing.status } : {}) };
      if (resource.kind === 'Secret' && object.stringData) {
        object.data = Object.fromEntries(Object.entries(object.stringData as Record<string, string>).map(([a, b]) => [a, Buffer.from(b).toString('base64')]));
        delete object.stringData;
      }
    }
    this.store(resource, object, existing ? 'MODIFIED' : 'ADDED');
    if (resource.kind === 'Deployment') this.syncDeployment(object);
    if (resource.kind === 'Service') this.syncSlices(namespace!);
    return structuredClone(object);
  }

  private remove(resource: Resource, object: Obj): void {
    this.objects.delete(key(resource, object.metadata.namespace, object.metadata.name));
    this.store(resource, object, 'DELETED');
    this.objects.delete(key(resource, object.metadata.namespace, object.metadata.name));
    // The garbage collector: everything this object owned goes too (background propagation).
    for (const e of [...this.objects.values()]) {
      if (e.object.metadata.ownerReferences?.some((o) => o.uid === object.metadata.uid)) this.remove(e.resource, e.object);
    }
    if (resource.kind === 'Pod' || resource.kind === 'Service') this.syncSlices(object.metadata.namespace!);
  }

  /** The Deployment (and ReplicaSet) controller: as many pods as replicas, the newest removed first. */
  private syncDeployment(d: Obj): void {
    const pods = this.list('Pod', d.metadata.namespace, d.spec.selector.matchLabels).filter((p) => p.metadata.ownerReferences?.some((o) => o.uid === d.metadata.uid));
    const want = d.spec.replicas ?? 1;
    const podResource = RESOURCES.find((r) => r.kind === 'Pod')!;
    pods.sort((a, b) => (a.metadata.creationTimestamp! < b.metadata.creationTimestamp! ? -1 : a.metadata.creationTimestamp! > b.metadata.creationTimestamp! ? 1 : a.metadata.name < b.metadata.name ? -1 : 1));
    for (let i = pods.length; i < want; i++) {
      const name = `${d.metadata.name.slice(0, 50)}-${randomBytes(3).toString('hex').slice(0, 5)}`;
      const pod: Obj = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: d.metadata.namespace, uid: randomUUID(), labels: { ...d.spec.template.metadata.labels }, ownerReferences: [{ apiVersion: 'apps/v1', kind: 'Deployment', name: d.metadata.name, uid: d.metadata.uid!, controller: true } as any], creationTimestamp: new Date(Date.now() + i).toISOString() },
        spec: structuredClone(d.spec.template.spec),
        status: { phase: 'Pending', podIP: `${this.podNetwork}${this.nextIp++}`, containerStatuses: [{ name: 'inference-server', ready: false, restartCount: 0, state: { waiting: { reason: 'PodInitializing' } } }] },
      };
      this.store(podResource, pod, 'ADDED');
    }
    for (const extra of pods.slice(want).reverse()) this.remove(podResource, extra);
  }

  /** The EndpointSlice controller: one slice per Service, listing its pods' IPs and readiness. */
  private syncSlices(namespace: string): void {
    const sliceResource = RESOURCES.find((r) => r.kind === 'EndpointSlice')!;
    for (const svc of this.list('Service', namespace)) {
      const pods = this.list('Pod', namespace, svc.spec.selector ?? {});
      const endpoints = pods.map((p) => ({ addresses: [p.status?.podIP], conditions: { ready: p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True') ?? false }, targetRef: { kind: 'Pod', name: p.metadata.name, namespace } }));
      const name = `${svc.metadata.name}-slice`;
      const existing = this.objects.get(key(sliceResource, namespace, name))?.object;
      if (existing && JSON.stringify(existing.endpoints) === JSON.stringify(endpoints)) continue;
      const slice: Obj = {
        apiVersion: 'discovery.k8s.io/v1',
        kind: 'EndpointSlice',
        metadata: { name, namespace, uid: existing?.metadata.uid ?? randomUUID(), labels: { ...svc.metadata.labels, 'kubernetes.io/service-name': svc.metadata.name }, ownerReferences: [{ uid: svc.metadata.uid!, kind: 'Service', name: svc.metadata.name }], creationTimestamp: existing?.metadata.creationTimestamp ?? new Date().toISOString() },
        addressType: 'IPv4',
        endpoints,
        ports: svc.spec.ports?.map((p: any) => ({ name: p.name, port: p.targetPort ?? p.port, protocol: 'TCP' })),
      };
      this.store(sliceResource, slice, existing ? 'MODIFIED' : 'ADDED');
    }
  }
}

function key(r: Resource, namespace: string | undefined, name: string): string {
  return `${r.group}/${r.version}/${r.plural}/${r.namespaced ? namespace : ''}/${name}`;
}

function parseSelector(s: string | undefined): Record<string, string> {
  if (!s) return {};
  return Object.fromEntries(s.split(',').map((kv) => kv.split('=').map((x) => x.trim()) as [string, string]));
}

function matches(o: Obj, selector: Record<string, string>): boolean {
  return Object.entries(selector).every(([k, v]) => o.metadata.labels?.[k] === v);
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
}
