// A backend per compute: instances of an endpoint that names `compute: azureml:<name>` go to that
// compute's backend (a Kubernetes cluster), every other one to this machine's backend. The reconciler sees
// one Backend. An instance whose compute is not attached (any more) is failed with ComputeNotFound: it
// never runs locally instead.

import { errorOf, InfergateError } from '../errors/index.js';
import type { InstancePlan, InstanceUsage } from '../ir/types.js';
import type { Backend, LogContainer, ObservedInstance } from './types.js';

export interface DispatchOptions {
  local: Backend;
  /** The compute name (`compute: azureml:<name>` as written) of an endpoint, or undefined: this machine. */
  computeOf(endpoint: string): string | undefined;
  /**
   * The backend of an attached compute; throws (or rejects with) ComputeNotFound when it is not attached.
   * Called once per compute; may be async (the Kubernetes client takes a second to load, so only a
   * workspace with a Kubernetes endpoint pays for it).
   */
  backendFor(compute: string): Backend | Promise<Backend>;
  /**
   * What the compute is now (changes when it is detached and attached again, e.g. with another kubeconfig
   * or namespace); undefined: not attached. Without it a compute's backend is made once for the process.
   */
  versionOf?(compute: string): string | undefined;
}

/** `azureml:<name>` → the compute's lower-cased name. */
const nameOf = (ref: string): string => ref.trim().replace(/^azureml:/i, '').replace(/^.*\/computes\//i, '').toLowerCase();
const key = (endpoint: string): string => endpoint.toLowerCase();

export class DispatchBackend implements Backend {
  readonly kind: Backend['kind'];
  private readonly computes = new Map<string, Backend>();
  /** The compute's version each backend was made for (DispatchOptions.versionOf). */
  private readonly versions = new Map<string, string | undefined>();
  private readonly pending = new Map<string, Promise<Backend>>();
  /** Which backend runs each instance id, and each endpoint's instances (logs after a compute is detached). */
  private readonly byId = new Map<string, Backend>();
  private readonly byEndpoint = new Map<string, Backend>();
  /** Instances refused because their compute is not attached: failed, as observe() shows them. */
  private readonly refused = new Map<string, ObservedInstance>();
  private readonly listeners: (() => void)[] = [];
  private closed = false;

  constructor(private readonly o: DispatchOptions) {
    this.kind = o.local.kind;
    o.local.onChange(() => this.changed());
    // Only the local backend samples usage (it reads procfs and cgroups); pods' usage is the cluster's.
    if (o.local.usage) this.usage = () => o.local.usage!();
  }

  usage?: () => Promise<InstanceUsage[]>;

  /** The compute backends made so far, by compute name (tests, diagnostics). */
  backends(): ReadonlyMap<string, Backend> {
    return this.computes;
  }

  private async backendOf(plan: Pick<InstancePlan, 'endpoint' | 'compute'>): Promise<Backend> {
    const ref = plan.compute ?? this.o.computeOf(plan.endpoint);
    if (ref === undefined) return this.o.local;
    const name = nameOf(ref);
    const known = this.computes.get(name);
    if (known) {
      // A compute detached and attached again gets a backend of its new settings once nothing runs on the
      // old one (detach is refused while endpoints name it, so by then nothing does).
      if (!this.o.versionOf || this.o.versionOf(name) === this.versions.get(name) || known.observe().length > 0) return known;
      this.computes.delete(name);
      for (const [endpoint, b] of this.byEndpoint) if (b === known) this.byEndpoint.delete(endpoint);
      await known.close();
    }
    let p = this.pending.get(name);
    if (!p) {
      p = (async () => {
        const version = this.o.versionOf?.(name);
        const b = await this.o.backendFor(name);
        this.computes.set(name, b);
        this.versions.set(name, version);
        b.onChange(() => {
          if (this.computes.get(name) === b) this.changed();
        });
        return b;
      })();
      this.pending.set(name, p);
      // A compute attached later gets another try.
      p.then(() => this.pending.delete(name), () => this.pending.delete(name));
    }
    return p;
  }

  observe(): ObservedInstance[] {
    if (this.closed) return [];
    const all = [...this.o.local.observe(), ...[...this.computes.values()].flatMap((b) => b.observe()), ...this.refused.values()];
    return all.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async start(id: string, plan: InstancePlan, index: number): Promise<void> {
    if (this.closed || this.byId.has(id) || this.refused.has(id)) return;
    let b: Backend;
    try {
      b = await this.backendOf(plan);
    } catch (e) {
      const err = e instanceof InfergateError ? e : errorOf('ComputeNotFound', { compute: plan.compute ?? String(this.o.computeOf(plan.endpoint)), attached: 'unknown' });
      this.refused.set(id, { id, endpoint: plan.endpoint, deployment: plan.deployment, revision: plan.revision, index, state: 'failed', restarts: 0, error: { code: err.code, message: err.message } });
      this.changed();
      return;
    }
    this.byId.set(id, b);
    this.byEndpoint.set(key(plan.endpoint), b);
    await b.start(id, plan, index);
  }

  async stop(id: string): Promise<void> {
    if (this.refused.delete(id)) return void this.changed();
    const b = this.byId.get(id);
    if (!b) return;
    this.byId.delete(id);
    await b.stop(id);
  }

  /** The backend an endpoint's instances ran on last, else the one it would run on now. */
  private async backendOfEndpoint(endpoint: string): Promise<Backend> {
    const known = this.byEndpoint.get(key(endpoint));
    if (known) return known;
    return this.backendOf({ endpoint }).catch(() => this.o.local);
  }

  async logs(endpoint: string, deployment: string, container: LogContainer, lines: number): Promise<string> {
    return (await this.backendOfEndpoint(endpoint)).logs(endpoint, deployment, container, lines);
  }

  async forget(endpoint: string, deployment: string): Promise<void> {
    await (await this.backendOfEndpoint(endpoint)).forget?.(endpoint, deployment);
  }

  note(endpoint: string, deployment: string, line: string): void {
    // Synchronous: only a backend that already runs the endpoint's instances (or the local one) gets it.
    (this.byEndpoint.get(key(endpoint)) ?? (this.o.computeOf(endpoint) === undefined ? this.o.local : undefined))?.note?.(endpoint, deployment, line);
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  private changed(): void {
    for (const l of this.listeners) l();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending.values()]);
    await Promise.allSettled([this.o.local.close(), ...[...this.computes.values()].map((b) => b.close())]);
  }
}
