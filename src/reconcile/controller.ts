// Applies plan() against the store and a backend, records provisioning states, and publishes routing
// tables. One pass reconciles every endpoint; passes are coalesced (a kick during a pass runs one more
// pass after it, never two at once), and every pass reads the store afresh, so a lost kick is harmless.
//
// Scale to zero (issue 12 item 5): instance_count cannot be 0 in a deployment's spec (Azure's validation,
// kept), so a deployment held at zero is an override the controller keeps beside the spec: the count the
// autoscaler set (scaleToZero) or a request asked for (wake), for the spec's generation it was set at. A
// user's update of the deployment (a new generation) ends it, as a user's instance_count wins over
// autoscale. It is kept in memory: after a restart a deployment runs its instance_count again until the
// autoscaler finds it idle, which costs an idle instance for a while, never a request.

import type { Backend, ObservedInstance } from '../backend/types.js';
import { compileInstancePlan, compileRoutingTable, mayScaleToZero, stableJson } from '../compile/index.js';
import { errorOf, InfergateError } from '../errors/index.js';
import type { InstanceAddress, InstancePlan, RoutingTable } from '../ir/types.js';
import { assetLookup } from '../store/index.js';
import type { ProvisioningState, StateStore, StoredDeployment } from '../store/types.js';
import { deploymentKey, plan } from './plan.js';

export interface ControllerOptions {
  store: StateStore;
  backend: Backend;
  publish: (table: RoutingTable) => void;
  log?: (line: string) => void;
  /** Local endpoints: no auth, a lone deployment takes all traffic (compile/routing.ts). */
  local?: boolean;
  /** How long a serving instance stays up after leaving the routing table (default 100 ms). */
  deregistrationDelayMs?: number;
  /**
   * Deployments that may be held at zero instances besides those whose scale_settings say min_instances 0:
   * main/ answers true for a deployment whose autoscale setting has a minimum count of 0. Their requests
   * then wait for an instance instead of getting 503 (the routing table's scaleFromZero).
   */
  allowZero?: (endpoint: string, deployment: string) => boolean;
}

/** An instance count held beside the spec: valid while the spec is at `generation`. */
interface CountOverride {
  count: number;
  generation: number;
}

const DEREGISTRATION_DELAY_MS = 100;

const IN_PROGRESS: ReadonlySet<ProvisioningState> = new Set(['Creating', 'Updating', 'Scaling']);

export class Controller {
  private running = false;
  private again = false;
  private version = 0;
  private lastTable = '';
  private readonly waiters: (() => void)[] = [];
  private stopped = false;
  private readonly pendingStops = new Set<string>();
  /** By deploymentKey: counts held beside the spec (scale to zero, wake). */
  private readonly overrides = new Map<string, CountOverride>();

  constructor(private readonly o: ControllerOptions) {
    o.backend.onChange(() => this.kick());
  }

  /** Asks for a pass; resolves after a pass that started after this call has finished. */
  kick(): Promise<void> {
    const done = new Promise<void>((resolve) => this.waiters.push(resolve));
    if (this.running) this.again = true;
    else void this.loop();
    return done;
  }

  stop(): void {
    this.stopped = true;
  }

  /**
   * The number of instances the deployment is meant to run: its instance_count, or the count held beside
   * it (0 while scaled to zero). undefined when there is no such deployment. (The autoscaler's
   * Scaler.capacity.)
   */
  instanceCount(endpoint: string, deployment: string): number | undefined {
    const d = this.o.store.getDeployment(endpoint, deployment);
    return d === undefined ? undefined : this.countOf(d);
  }

  /** Whether the deployment may run no instance (min_instances 0, or ControllerOptions.allowZero). */
  mayScaleToZero(endpoint: string, deployment: string): boolean {
    const d = this.o.store.getDeployment(endpoint, deployment);
    return d !== undefined && this.allowsZero(d);
  }

  /**
   * Takes the deployment to zero instances (the autoscaler, after an idle period): its instances leave the
   * routing table and are stopped as in any scale-in (those serving finish what they have), and its
   * requests wait for wake(). Throws for a deployment that does not exist or may not scale to zero.
   * Resolves after the pass that applied it.
   */
  scaleToZero(endpoint: string, deployment: string): Promise<void> {
    const d = this.o.store.getDeployment(endpoint, deployment);
    if (d === undefined) throw errorOf('DeploymentNotFound', { endpoint, deployment });
    if (!this.allowsZero(d)) {
      throw new Error(`deployment ${endpoint}/${deployment} may not scale to zero: its scale_settings are not target_utilization with min_instances 0, and no autoscale setting allows a count of 0`);
    }
    // A create, update or scale the user asked for is under way (its generation is already stored): a count
    // held at zero for that generation would outlive it and end its rollout as Succeeded with no instance.
    if (d.status.provisioningState !== 'Succeeded') {
      throw new Error(`deployment ${endpoint}/${deployment} is not scaled to zero while it is ${d.status.provisioningState}`);
    }
    this.overrides.set(deploymentKey(endpoint, deployment), { count: 0, generation: d.generation });
    this.o.log?.(`deployment ${endpoint}/${deployment}: scaled to zero instances`);
    return this.kick();
  }

  /**
   * A request is waiting for a deployment with no instance (Router onDemand): make it run at least one,
   * now. Its instance_count when that is 1 or more, else 1. Does nothing for a deployment that runs
   * instances already, or does not exist (the request then times out, or the deployment was deleted).
   * Resolves after the pass that started the instance (not when it is ready: the routing table says that).
   */
  wake(endpoint: string, deployment: string): Promise<void> {
    const d = this.o.store.getDeployment(endpoint, deployment);
    if (d === undefined || this.countOf(d) > 0) return Promise.resolve();
    const k = deploymentKey(endpoint, deployment);
    if (d.spec.instanceCount >= 1) this.overrides.delete(k);
    else this.overrides.set(k, { count: 1, generation: d.generation });
    this.o.log?.(`deployment ${endpoint}/${deployment}: a request is waiting; starting ${Math.max(1, d.spec.instanceCount)} instance(s) from zero`);
    return this.kick();
  }

  private countOf(d: StoredDeployment): number {
    const o = this.overrides.get(deploymentKey(d.spec.endpointName, d.spec.name));
    return o !== undefined && o.generation === d.generation && (o.count > 0 || this.allowsZero(d)) ? o.count : d.spec.instanceCount;
  }

  private allowsZero(d: StoredDeployment): boolean {
    return mayScaleToZero(d.spec) || (this.o.allowZero?.(d.spec.endpointName, d.spec.name) ?? false);
  }

  /** Removes a deployment's failed instances so the next pass starts them afresh. */
  async retry(endpoint: string, deployment: string): Promise<void> {
    const failed = this.o.backend.observe().filter((i) => i.endpoint === endpoint && i.deployment === deployment && i.state === 'failed');
    await Promise.all(failed.map((i) => this.o.backend.stop(i.id)));
  }

  private async loop(): Promise<void> {
    this.running = true;
    try {
      do {
        this.again = false;
        const waiting = this.waiters.splice(0);
        try {
          this.pass();
        } catch (e) {
          this.o.log?.(`reconcile pass failed: ${(e as Error).stack ?? e}`);
        }
        for (const w of waiting) w();
      } while (this.again && !this.stopped);
    } finally {
      this.running = false;
    }
  }

  private pass(): void {
    const { store, backend } = this.o;
    const endpoints = store.listEndpoints();
    const deployments = store.listDeployments();
    const endpointState = new Map(endpoints.map((e) => [e.spec.name, e.status.provisioningState]));

    const desired: InstancePlan[] = [];
    const stored = new Map<string, StoredDeployment>();
    for (const d of deployments) {
      const k = deploymentKey(d.spec.endpointName, d.spec.name);
      stored.set(k, d);
      let held = this.overrides.get(k);
      // A count held for an older spec (the user updated the deployment since) ends here, and so does a
      // zero that is no longer allowed (its autoscale setting was disabled, deleted or given a minimum
      // above 0): its requests would get 503 from a deployment nothing wakes any more.
      if (held !== undefined && (held.generation !== d.generation || (held.count === 0 && !this.allowsZero(d)))) {
        this.overrides.delete(k);
        held = undefined;
      }
      if (d.status.provisioningState === 'Deleting' || endpointState.get(d.spec.endpointName) === 'Deleting') continue;
      try {
        const p = compileInstancePlan(d.spec, assetLookup(store));
        // instanceCount is not part of the revision (compile/plan.ts), so a held count never restarts anything.
        desired.push(held !== undefined ? { ...p, instanceCount: held.count } : p);
      } catch (e) {
        const err = e instanceof InfergateError ? { code: e.code, message: e.message } : { code: 'InternalError', message: String(e) };
        this.setDeployment(d, 'Failed', err);
      }
    }

    for (const k of this.overrides.keys()) if (!stored.has(k)) this.overrides.delete(k);

    const observed = backend.observe();
    const { actions, progress } = plan(desired, observed);
    const readyIds = new Set(observed.filter((i) => i.state === 'ready').map((i) => i.id));
    const stopping = new Set<string>();
    for (const a of actions) {
      if (a.kind === 'start') {
        void backend.start(a.id, a.plan, a.index).catch((e) => this.o.log?.(`start ${a.id}: ${e}`));
        continue;
      }
      stopping.add(a.id);
      const stop = () => void backend.stop(a.id).catch((e) => this.o.log?.(`stop ${a.id}: ${e}`));
      // A serving instance leaves the routing table first (published below, in this same pass) and is
      // stopped a moment later, so no request is sent to it after it began to shut down; it then finishes
      // the ones it has. That is what makes scale-in and rolling updates lose no request.
      if (readyIds.has(a.id)) this.deregistering(a.id, stop);
      else stop();
    }

    // Provisioning states, as Azure shows them.
    for (const [k, p] of progress) {
      const d = stored.get(k)!;
      const state = d.status.provisioningState;
      if (p.phase === 'failed' && state !== 'Failed') this.setDeployment(d, 'Failed', p.error);
      else if (p.phase === 'ready' && (IN_PROGRESS.has(state) || (state === 'Failed' && d.status.observedGeneration !== d.generation))) this.setDeployment(d, 'Succeeded');
      else if (IN_PROGRESS.has(state) && p.crashLoop && p.failedOperation) {
        // A create or update whose new instances keep crashing never becomes ready: the operation fails
        // (Azure: ResourceNotReady, "Back-off restarting failed container"), so `create`/`update` return
        // with the reason instead of waiting for ever. An older revision keeps serving (plan.ts); the
        // crashing instance goes on restarting with back-off, and a later update replaces it.
        this.setDeployment(d, 'Failed', p.crashLoop);
      }
      else if (state === 'Succeeded' && d.status.error?.code !== p.crashLoop?.code) {
        // A serving deployment stays Succeeded, as Azure's does, but says why an instance keeps restarting.
        this.setDeployment(d, 'Succeeded', p.crashLoop);
      }
    }

    // Deletions finish when nothing of the deployment runs any more.
    const running = new Set(observed.map((o) => deploymentKey(o.endpoint, o.deployment)));
    for (const d of deployments) {
      const k = deploymentKey(d.spec.endpointName, d.spec.name);
      const deleting = d.status.provisioningState === 'Deleting' || endpointState.get(d.spec.endpointName) === 'Deleting';
      if (deleting && !running.has(k)) {
        store.deleteDeployment(d.spec.endpointName, d.spec.name);
        void backend.forget?.(d.spec.endpointName, d.spec.name);
      }
    }
    for (const e of endpoints) {
      const state = e.status.provisioningState;
      if (state === 'Deleting') {
        if (store.listDeployments(e.spec.name).length === 0) store.deleteEndpoint(e.spec.name);
      } else if (IN_PROGRESS.has(state)) {
        store.setEndpointStatus(e.spec.name, { provisioningState: 'Succeeded', observedGeneration: e.generation });
      }
    }

    this.publish(observed, stopping, endpointState);
  }

  private deregistering(id: string, stop: () => void): void {
    if (this.pendingStops.has(id)) return;
    this.pendingStops.add(id);
    setTimeout(() => {
      this.pendingStops.delete(id);
      stop();
    }, this.o.deregistrationDelayMs ?? DEREGISTRATION_DELAY_MS).unref();
  }

  private publish(observed: ObservedInstance[], stopping: Set<string>, endpointState: Map<string, ProvisioningState>): void {
    const { store } = this.o;
    const ready = new Map<string, InstanceAddress[]>();
    for (const o of [...observed].sort((a, b) => a.id.localeCompare(b.id))) {
      if (o.state !== 'ready' || o.address === undefined || stopping.has(o.id)) continue;
      const k = deploymentKey(o.endpoint, o.deployment);
      const list = ready.get(k) ?? [];
      list.push(o.address);
      ready.set(k, list);
    }
    const endpoints = store.listEndpoints().filter((e) => endpointState.get(e.spec.name) !== 'Deleting' && e.status.provisioningState !== 'Deleting');
    const live = store.listDeployments().filter((d) => d.status.provisioningState !== 'Deleting');
    const deployments = live.map((d) => d.spec);
    const allowZero = this.o.allowZero;
    const scaleFromZero = allowZero ? new Set(live.filter((d) => allowZero(d.spec.endpointName, d.spec.name)).map((d) => deploymentKey(d.spec.endpointName, d.spec.name))) : undefined;
    const table = compileRoutingTable(0, { endpoints, deployments, ready, ...(scaleFromZero ? { scaleFromZero } : {}), ...(this.o.local ? { local: true } : {}) });
    const text = stableJson(table.endpoints);
    if (text === this.lastTable) return;
    this.lastTable = text;
    this.o.publish({ ...table, version: ++this.version });
  }

  private setDeployment(d: StoredDeployment, state: ProvisioningState, error?: { code: string; message: string }): void {
    this.o.store.setDeploymentStatus(d.spec.endpointName, d.spec.name, {
      provisioningState: state,
      ...(error ? { error } : {}),
      observedGeneration: d.generation,
    });
    this.o.log?.(`deployment ${d.spec.endpointName}/${d.spec.name}: ${state}${error ? ` (${error.code}: ${firstLine(error.message)})` : ''}`);
  }
}

function firstLine(s: string): string {
  const i = s.indexOf('\n');
  return i < 0 ? s : s.slice(0, i) + ' ...';
}
