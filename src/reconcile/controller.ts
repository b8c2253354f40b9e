// Applies plan() against the store and a backend, records provisioning states, and publishes routing
// tables. One pass reconciles every endpoint; passes are coalesced (a kick during a pass runs one more
// pass after it, never two at once), and every pass reads the store afresh, so a lost kick is harmless.

import type { Backend, ObservedInstance } from '../backend/types.js';
import { compileInstancePlan, compileRoutingTable, stableJson } from '../compile/index.js';
import { InfergateError } from '../errors/index.js';
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
      if (d.status.provisioningState === 'Deleting' || endpointState.get(d.spec.endpointName) === 'Deleting') continue;
      try {
        desired.push(compileInstancePlan(d.spec, assetLookup(store)));
      } catch (e) {
        const err = e instanceof InfergateError ? { code: e.code, message: e.message } : { code: 'InternalError', message: String(e) };
        this.setDeployment(d, 'Failed', err);
      }
    }

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
    const deployments = store.listDeployments().filter((d) => d.status.provisioningState !== 'Deleting').map((d) => d.spec);
    const table = compileRoutingTable(0, { endpoints, deployments, ready, ...(this.o.local ? { local: true } : {}) });
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
