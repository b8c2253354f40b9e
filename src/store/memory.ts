// In-memory StateStore for unit tests. Behaves like the SQLite store in every way the contract suite
// checks: records are copied in and out, transactions roll back on throw, nested transactions act as
// savepoints (an inner throw undoes only the inner writes).

import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';
import type { AutoscaleEvent, AutoscaleSetting } from '../spec/autoscale.js';
import { assetAlreadyExists, assertNotPromise, autoscaleResourceTaken, deploymentNotFound, endpointNotFound, INITIAL_STATUS, timestamp, type Clock, type InitialStatus, type StoreOptions } from './common.js';
import { AUTOSCALE_HISTORY_LIMIT, type AssetKind, type AssetRecords, type EndpointKeys, type ObservedStatus, type StateStore, type StoredAsset, type StoredAutoscaleSetting, type StoredDeployment, type StoredCompute, type StoredEndpoint, type StoredToken } from './types.js';
import { errorOf } from '../errors/index.js';

interface State {
  endpoints: Map<string, StoredEndpoint>;
  /** Keyed by deploymentKey(endpoint, name). */
  deployments: Map<string, StoredDeployment>;
  /** Keyed by assetKey(kind, name, version); a Map keeps insertion (registration) order. */
  assets: Map<string, StoredAsset>;
  /** Keyed by id; a Map keeps creation order. */
  tokens: Map<string, StoredToken>;
  /** Keyed by the lower-cased name (names compare case-insensitively, as SQLite's NOCASE column does). */
  autoscale: Map<string, StoredAutoscaleSetting>;
  /** Keyed as `autoscale`; oldest first. */
  events: Map<string, AutoscaleEvent[]>;
  /** Keyed by the lower-cased name, as `autoscale`. */
  computes: Map<string, StoredCompute>;
}

const assetKey = (kind: AssetKind, name: string, version: string): string => `${kind}\0${name}\0${version}`;

// A NUL cannot occur in a name, so the key is unambiguous.
const deploymentKey = (endpoint: string, name: string): string => `${endpoint}\0${name}`;

// Specs and keys go in and out as JSON copies: the caller can never alias stored state, and optional
// fields set to undefined vanish exactly as they do in the SQLite store's JSON columns.
const copy = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class MemoryStateStore implements StateStore {
  private state: State = { endpoints: new Map(), deployments: new Map(), assets: new Map(), tokens: new Map(), autoscale: new Map(), events: new Map(), computes: new Map() };
  private readonly clock: Clock;

  constructor(options: StoreOptions = {}) {
    this.clock = options.clock ?? (() => new Date());
  }

  getEndpoint(name: string): StoredEndpoint | undefined {
    const found = this.state.endpoints.get(name);
    return found && copy(found);
  }

  listEndpoints(): StoredEndpoint[] {
    return [...this.state.endpoints.values()]
      .sort((a, b) => byString(a.spec.name, b.spec.name))
      .map((e) => copy(e));
  }

  putEndpoint(spec: EndpointSpec, keys: EndpointKeys, status: InitialStatus = INITIAL_STATUS): StoredEndpoint {
    const now = timestamp(this.clock);
    const existing = this.state.endpoints.get(spec.name);
    const record: StoredEndpoint = {
      spec: copy(spec),
      keys: copy(keys),
      generation: (existing?.generation ?? 0) + 1,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
      status: existing?.status ?? newStatus(status, now),
    };
    this.state.endpoints.set(spec.name, record);
    return copy(record);
  }

  deleteEndpoint(name: string): boolean {
    if (!this.state.endpoints.delete(name)) return false;
    for (const [key, d] of this.state.deployments) {
      if (d.spec.endpointName === name) this.state.deployments.delete(key);
    }
    this.dropAutoscale((s) => s.endpoint === name);
    return true;
  }

  setEndpointStatus(name: string, status: Omit<ObservedStatus, 'updatedAt'>): void {
    const record = this.state.endpoints.get(name);
    // A status for a record deleted meanwhile is dropped, as the SQLite UPDATE drops it.
    if (record) record.status = observed(status, timestamp(this.clock));
  }

  getDeployment(endpoint: string, name: string): StoredDeployment | undefined {
    const found = this.state.deployments.get(deploymentKey(endpoint, name));
    return found && copy(found);
  }

  listDeployments(endpoint?: string): StoredDeployment[] {
    return [...this.state.deployments.values()]
      .filter((d) => endpoint === undefined || d.spec.endpointName === endpoint)
      .sort((a, b) => byString(a.spec.endpointName, b.spec.endpointName) || byString(a.spec.name, b.spec.name))
      .map((d) => copy(d));
  }

  putDeployment(spec: DeploymentSpec, status: InitialStatus = INITIAL_STATUS): StoredDeployment {
    if (!this.state.endpoints.has(spec.endpointName)) throw endpointNotFound(spec.endpointName);
    const now = timestamp(this.clock);
    const key = deploymentKey(spec.endpointName, spec.name);
    const existing = this.state.deployments.get(key);
    const record: StoredDeployment = {
      spec: copy(spec),
      generation: (existing?.generation ?? 0) + 1,
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
      status: existing?.status ?? newStatus(status, now),
    };
    this.state.deployments.set(key, record);
    return copy(record);
  }

  deleteDeployment(endpoint: string, name: string): boolean {
    if (!this.state.deployments.delete(deploymentKey(endpoint, name))) return false;
    this.dropAutoscale((s) => s.endpoint === endpoint && s.deployment === name);
    return true;
  }

  /** As SQLite's ON DELETE CASCADE: the settings of a deleted deployment go, with their history. */
  private dropAutoscale(which: (s: StoredAutoscaleSetting) => boolean): void {
    for (const [key, s] of this.state.autoscale) {
      if (!which(s)) continue;
      this.state.autoscale.delete(key);
      this.state.events.delete(key);
    }
  }

  setDeploymentStatus(endpoint: string, name: string, status: Omit<ObservedStatus, 'updatedAt'>): void {
    const record = this.state.deployments.get(deploymentKey(endpoint, name));
    if (record) record.status = observed(status, timestamp(this.clock));
  }

  getAsset<K extends AssetKind>(kind: K, name: string, version: string): StoredAsset<K> | undefined {
    const found = this.state.assets.get(assetKey(kind, name, version)) as StoredAsset<K> | undefined;
    return found && copy(found);
  }

  listAssets<K extends AssetKind>(kind: K, name?: string): StoredAsset<K>[] {
    const all = [...this.state.assets.values()].filter((a) => a.kind === kind && (name === undefined || a.asset.name === name)) as StoredAsset<K>[];
    // Stable sort: versions of one name keep their registration order.
    return all.sort((a, b) => byString(a.asset.name, b.asset.name)).map((a) => copy(a));
  }

  putAsset<K extends AssetKind>(kind: K, asset: AssetRecords[K], options: { anonymous?: boolean } = {}): StoredAsset<K> {
    const key = assetKey(kind, asset.name, asset.version);
    if (this.state.assets.has(key)) throw assetAlreadyExists(kind, asset.name, asset.version);
    const now = timestamp(this.clock);
    const record: StoredAsset<K> = { kind, asset: copy(asset), anonymous: options.anonymous === true, archived: false, createdAt: now, updatedAt: now };
    this.state.assets.set(key, record as StoredAsset);
    return copy(record);
  }

  setAssetArchived(kind: AssetKind, name: string, version: string, archived: boolean): boolean {
    const record = this.state.assets.get(assetKey(kind, name, version));
    if (!record) return false;
    record.archived = archived;
    record.updatedAt = timestamp(this.clock);
    return true;
  }

  putToken(token: Omit<StoredToken, 'createdAt' | 'lastUsedAt'>): StoredToken {
    // As the SQLite PRIMARY KEY refuses it: an id is never reused.
    if (this.state.tokens.has(token.id)) throw new Error(`UNIQUE constraint failed: tokens.id`);
    const record: StoredToken = {
      id: token.id,
      role: token.role,
      hash: token.hash,
      ...(token.description !== undefined ? { description: token.description } : {}),
      createdAt: timestamp(this.clock),
      ...(token.expiresAt !== undefined ? { expiresAt: token.expiresAt } : {}),
    };
    this.state.tokens.set(token.id, record);
    return copy(record);
  }

  getToken(id: string): StoredToken | undefined {
    const found = this.state.tokens.get(id);
    return found && copy(found);
  }

  listTokens(): StoredToken[] {
    return [...this.state.tokens.values()].map((t) => copy(t));
  }

  deleteToken(id: string): boolean {
    return this.state.tokens.delete(id);
  }

  touchToken(id: string): void {
    const record = this.state.tokens.get(id);
    if (record) record.lastUsedAt = timestamp(this.clock);
  }

  getCompute(name: string): StoredCompute | undefined {
    const found = this.state.computes.get(name.toLowerCase());
    return found && copy(found);
  }

  listComputes(): StoredCompute[] {
    return [...this.state.computes.entries()].sort(([a], [b]) => byString(a, b)).map(([, c]) => copy(c));
  }

  putCompute(c: Omit<StoredCompute, 'createdAt' | 'updatedAt'>): StoredCompute {
    const key = c.name.toLowerCase();
    if (this.state.computes.has(key)) throw errorOf('ComputeAlreadyExists', { compute: c.name });
    const now = timestamp(this.clock);
    const record = copy({ ...c, createdAt: now, updatedAt: now });
    this.state.computes.set(key, record);
    return copy(record);
  }

  deleteCompute(name: string): boolean {
    return this.state.computes.delete(name.toLowerCase());
  }

  getAutoscaleSetting(name: string): StoredAutoscaleSetting | undefined {
    const found = this.state.autoscale.get(name.toLowerCase());
    return found && copy(found);
  }

  listAutoscaleSettings(): StoredAutoscaleSetting[] {
    // SQLite's ORDER BY on a NOCASE column: case-insensitive order.
    return [...this.state.autoscale.entries()].sort(([a], [b]) => byString(a, b)).map(([, s]) => copy(s));
  }

  putAutoscaleSetting(setting: AutoscaleSetting, target: { endpoint: string; deployment: string }): StoredAutoscaleSetting {
    if (!this.state.deployments.has(deploymentKey(target.endpoint, target.deployment))) {
      throw this.state.endpoints.has(target.endpoint) ? deploymentNotFound(target.endpoint, target.deployment) : endpointNotFound(target.endpoint);
    }
    const key = setting.name.toLowerCase();
    for (const [k, s] of this.state.autoscale) {
      if (k !== key && s.endpoint === target.endpoint && s.deployment === target.deployment) throw autoscaleResourceTaken(target.endpoint, target.deployment, s.setting.name);
    }
    const now = timestamp(this.clock);
    const existing = this.state.autoscale.get(key);
    const record: StoredAutoscaleSetting = { setting: copy(setting), endpoint: target.endpoint, deployment: target.deployment, createdAt: existing?.createdAt ?? now, updatedAt: now };
    this.state.autoscale.set(key, record);
    return copy(record);
  }

  deleteAutoscaleSetting(name: string): boolean {
    const key = name.toLowerCase();
    this.state.events.delete(key);
    return this.state.autoscale.delete(key);
  }

  appendAutoscaleEvent(event: AutoscaleEvent): void {
    const key = event.setting.toLowerCase();
    if (!this.state.autoscale.has(key)) return;
    const events = this.state.events.get(key) ?? [];
    events.push(copy(event));
    if (events.length > AUTOSCALE_HISTORY_LIMIT) events.splice(0, events.length - AUTOSCALE_HISTORY_LIMIT);
    this.state.events.set(key, events);
  }

  listAutoscaleEvents(setting: string, limit?: number): AutoscaleEvent[] {
    const events = this.state.events.get(setting.toLowerCase()) ?? [];
    return copy(limit === undefined ? events : events.slice(Math.max(0, events.length - Math.max(0, Math.floor(limit)))));
  }

  transaction<T>(fn: () => T): T {
    // Every level takes its own snapshot, which gives nested calls savepoint semantics like SQLite's.
    const snapshot = structuredClone(this.state);
    try {
      const result = fn();
      assertNotPromise(result);
      return result;
    } catch (err) {
      this.state = snapshot;
      throw err;
    }
  }

  close(): void {
    // Nothing to release.
  }
}

function newStatus(initial: InitialStatus, now: string): ObservedStatus {
  return observed({ ...initial, observedGeneration: 0 }, now);
}

/** Copies only the known fields, so a caller's object is never aliased and `error` is absent when unset. */
function observed(status: Omit<ObservedStatus, 'updatedAt'>, now: string): ObservedStatus {
  return {
    provisioningState: status.provisioningState,
    ...(status.error ? { error: { code: status.error.code, message: status.error.message } } : {}),
    observedGeneration: status.observedGeneration,
    updatedAt: now,
  };
}
