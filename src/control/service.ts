// The control plane's operations on endpoints and deployments: what `infergate ml online-endpoint ...` and
// `online-deployment ...` do, whatever carries the request. The REST handlers (api/server.ts) parse the
// HTTP request, call one method here and shape the answer; the rules live here and in the files beside
// this one (traffic.ts: Azure's traffic rules; provisioning.ts: the states a change starts in; assets.ts:
// the asset registry), so a second front end (a gRPC or in-process API) would enforce the same ones.
//
// Each change parses its document once and compiles the instance plan once: the plan compiled to refuse
// what validates but cannot run here is the one whose revision decides between Updating and Scaling, and
// its revision is remembered with the stored generation, so the next update does not compile the stored
// deployment again (only the first update after a restart does).

import { randomBytes } from 'node:crypto';
import { compileInstancePlan } from '../compile/index.js';
import { errorOf, validationError } from '../errors/index.js';
import type { Controller } from '../reconcile/index.js';
import { dumpDeployment, parseDeploymentObject, parseEndpointObject, storedPathsOf } from '../spec/index.js';
import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';
import type { EndpointKeys, StateStore, StoredDeployment, StoredEndpoint } from '../store/types.js';
import { issueToken } from '../util/token.js';
import { AssetRegistry, type AssetStoreOptions } from './assets.js';
import { checkDeploymentChangeable, checkEndpointChangeable, deploymentUpdateState, STATE_ON_CREATE, STATE_ON_DELETE, updateRetries } from './provisioning.js';
import { checkDeletable, checkTraffic, checkTrafficAtCreate } from './traffic.js';

/** Azure's limit of deployments per endpoint (contract §1.8). */
export const MAX_DEPLOYMENTS_PER_ENDPOINT = 20;

export type LogContainer = 'inference-server' | 'storage-initializer';

export interface ControlPlaneOptions extends AssetStoreOptions {
  store: StateStore;
  controller: Controller;
  /** Reads a deployment's console or storage-initializer log (the backend's). */
  logs: (endpoint: string, deployment: string, container: LogContainer, lines: number) => Promise<string>;
  /** Default MAX_DEPLOYMENTS_PER_ENDPOINT. */
  maxDeploymentsPerEndpoint?: number;
}

export function newKeys(): EndpointKeys {
  return { primaryKey: randomBytes(24).toString('base64url'), secondaryKey: randomBytes(24).toString('base64url'), tokenSecret: randomBytes(32).toString('base64url') };
}

/** `regenerate-keys --key-type`: Azure's two keys, and `token` (infergate's: the aml_token signing key). */
export type KeyType = 'primary' | 'secondary' | 'token';

/** What a delete left: the resource while the controller removes it (202), or nothing (200, gone). */
export type Deleted<T> = { left: T } | { left: undefined; name: string };

export class ControlPlane {
  readonly store: StateStore;
  readonly assets: AssetRegistry;
  private readonly controller: Controller;
  private readonly maxDeployments: number;
  /** The plan revision of each stored deployment generation compiled here (key `endpoint/deployment`). */
  private readonly revisions = new Map<string, { generation: number; revision: string }>();

  constructor(private readonly o: ControlPlaneOptions) {
    this.store = o.store;
    this.controller = o.controller;
    this.maxDeployments = o.maxDeploymentsPerEndpoint ?? MAX_DEPLOYMENTS_PER_ENDPOINT;
    this.assets = new AssetRegistry(o.store, o.assetsDir, o);
  }

  // ---- reads

  endpoints(): StoredEndpoint[] {
    return this.store.listEndpoints();
  }

  endpoint(name: string): StoredEndpoint {
    const e = this.store.getEndpoint(name);
    if (!e) throw errorOf('EndpointNotFound', { endpoint: name });
    return e;
  }

  deployments(endpoint: string): StoredDeployment[] {
    this.endpoint(endpoint);
    return this.store.listDeployments(endpoint);
  }

  deployment(endpoint: string, name: string): StoredDeployment {
    const d = this.store.getDeployment(endpoint, name);
    if (d) return d;
    this.endpoint(endpoint);
    throw errorOf('DeploymentNotFound', { deployment: name, endpoint });
  }

  /** Keys (key auth) or a fresh token (aml_token auth), as `get-credentials` prints them. */
  credentials(endpoint: string): { primaryKey: string; secondaryKey: string } | ReturnType<typeof issueToken> {
    const e = this.endpoint(endpoint);
    if (e.spec.authMode === 'key') return { primaryKey: e.keys.primaryKey, secondaryKey: e.keys.secondaryKey };
    return issueToken(e.spec.name, e.keys.tokenSecret);
  }

  async logs(endpoint: string, deployment: string, container: string | undefined, lines: number): Promise<string> {
    const d = this.deployment(endpoint, deployment);
    const c = (container ?? 'inference-server').toLowerCase();
    if (c !== 'inference-server' && c !== 'storage-initializer') throw errorOf('ContainerTypeInvalid', { container: container ?? '' });
    return this.o.logs(endpoint, d.spec.name, c, lines);
  }

  // ---- endpoints

  async createEndpoint(document: unknown): Promise<StoredEndpoint> {
    const spec = parseEndpoint(document);
    if (this.store.getEndpoint(spec.name)) throw errorOf('EndpointAlreadyExists', { endpoint: spec.name });
    checkTrafficAtCreate(spec);
    this.store.putEndpoint(spec, newKeys(), { provisioningState: STATE_ON_CREATE });
    await this.controller.kick();
    return this.endpoint(spec.name);
  }

  async updateEndpoint(name: string, document: unknown): Promise<StoredEndpoint> {
    const current = this.endpoint(name);
    checkEndpointChangeable(current);
    const spec = parseEndpoint(document);
    if (spec.name !== name) throw errorOf('DocumentNameMismatch', { kind: 'endpoint', named: spec.name, requested: name });
    checkTraffic(spec, this.store.listDeployments(name));
    this.store.transaction(() => {
      this.store.putEndpoint(spec, current.keys);
      this.store.setEndpointStatus(name, { provisioningState: 'Updating', observedGeneration: current.generation });
    });
    await this.controller.kick();
    return this.endpoint(name);
  }

  async deleteEndpoint(name: string): Promise<Deleted<StoredEndpoint>> {
    const e = this.endpoint(name);
    this.store.transaction(() => {
      this.store.setEndpointStatus(name, { provisioningState: STATE_ON_DELETE, observedGeneration: e.generation });
      for (const d of this.store.listDeployments(name)) this.store.setDeploymentStatus(name, d.spec.name, { provisioningState: STATE_ON_DELETE, observedGeneration: d.generation });
    });
    await this.controller.kick();
    const left = this.store.getEndpoint(name);
    return left ? { left } : { left: undefined, name };
  }

  async regenerateKeys(name: string, keyTypeText: string): Promise<KeyType> {
    const e = this.endpoint(name);
    const keyType = keyTypeText.toLowerCase();
    // `token` is infergate's addition (Azure has no verb for it): it rotates an aml_token endpoint's signing
    // key, so every token issued before stops working at once (util/token.ts).
    if (keyType === 'token') {
      if (e.spec.authMode === 'key') throw errorOf('TokenKeyOfKeyEndpoint', { endpoint: e.spec.name });
    } else if (keyType !== 'primary' && keyType !== 'secondary') throw errorOf('KeyTypeInvalid');
    else if (e.spec.authMode !== 'key') throw errorOf('NotKeyAuth', { endpoint: e.spec.name });
    const fresh = newKeys();
    const keys: EndpointKeys = { ...e.keys, ...(keyType === 'primary' ? { primaryKey: fresh.primaryKey } : keyType === 'secondary' ? { secondaryKey: fresh.secondaryKey } : { tokenSecret: fresh.tokenSecret }) };
    this.store.transaction(() => {
      this.store.putEndpoint(e.spec, keys);
    });
    await this.controller.kick();
    return keyType;
  }

  // ---- deployments

  async createDeployment(endpoint: string, document: unknown): Promise<StoredDeployment> {
    const e = this.endpoint(endpoint);
    checkEndpointChangeable(e);
    const { spec, revision } = await this.parseDeployment(document);
    if (spec.endpointName !== endpoint) throw errorOf('DocumentNameMismatch', { kind: 'endpoint', named: spec.endpointName, requested: endpoint });
    const existing = this.store.listDeployments(endpoint);
    if (existing.some((d) => d.spec.name.toLowerCase() === spec.name.toLowerCase())) throw errorOf('DeploymentAlreadyExists', { deployment: spec.name, endpoint });
    if (existing.length >= this.maxDeployments) throw errorOf('TooManyDeployments', { endpoint, count: existing.length, max: this.maxDeployments });
    const stored = this.store.putDeployment(spec, { provisioningState: STATE_ON_CREATE });
    this.remember(stored, revision);
    await this.controller.kick();
    return this.deployment(endpoint, spec.name);
  }

  /** `keepAssets`: the document is the stored one with overrides (CLI `update --set` without -f). */
  async updateDeployment(endpoint: string, name: string, document: unknown, keepAssets: boolean): Promise<StoredDeployment> {
    this.endpoint(endpoint);
    const current = this.deployment(endpoint, name);
    checkDeploymentChangeable(current);
    const { spec, revision } = await this.parseDeployment(document, keepAssets ? current.spec : undefined);
    if (spec.endpointName !== endpoint || spec.name !== current.spec.name) {
      throw errorOf('DocumentNameMismatch', { kind: 'deployment', named: `${spec.endpointName}/${spec.name}`, requested: `${endpoint}/${current.spec.name}` });
    }
    const state = deploymentUpdateState(current.status.provisioningState, revision === this.revisionOf(current));
    const stored = this.store.transaction(() => {
      // parseDeployment awaited (uploads, asset resolution): another update — a user's, or the
      // autoscaler's instance_count change — may have been saved meanwhile. Saving over it would lose it.
      if (this.store.getDeployment(endpoint, current.spec.name)?.generation !== current.generation) {
        throw errorOf('DeploymentChangedMeanwhile', { deployment: current.spec.name, endpoint });
      }
      const d = this.store.putDeployment(spec);
      this.store.setDeploymentStatus(endpoint, spec.name, { provisioningState: state, observedGeneration: current.generation });
      return d;
    });
    this.remember(stored, revision);
    if (updateRetries(current.status.provisioningState)) await this.controller.retry(endpoint, spec.name);
    await this.controller.kick();
    return this.deployment(endpoint, stored.spec.name);
  }

  async deleteDeployment(endpoint: string, name: string): Promise<Deleted<StoredDeployment>> {
    const e = this.endpoint(endpoint);
    const d = this.deployment(endpoint, name);
    checkDeletable(e, d.spec.name);
    this.store.setDeploymentStatus(endpoint, d.spec.name, { provisioningState: STATE_ON_DELETE, observedGeneration: d.generation });
    await this.controller.kick();
    const left = this.store.getDeployment(endpoint, d.spec.name);
    if (!left) this.revisions.delete(`${endpoint}/${d.spec.name}`.toLowerCase());
    return left ? { left } : { left: undefined, name: d.spec.name };
  }

  // ---- one parse and one compile per change

  /**
   * Parses a deployment document, resolves its assets (model, environment and code versions are recorded
   * now, control/assets.ts) and compiles its instance plan, which refuses what validates but cannot run
   * here before anything is stored. No server paths (spec/paths.ts), except, for `update --set` without
   * -f, those the server stored itself for this deployment before uploads existed: unchanged, they are
   * kept and never opened.
   */
  private async parseDeployment(document: unknown, previous?: DeploymentSpec): Promise<{ spec: DeploymentSpec; revision: string }> {
    const storedPaths = previous ? storedPathsOf(dumpDeployment(previous)) : undefined;
    const { spec, problems } = parseDeploymentObject(document, { source: 'request body', paths: 'uploads', ...(storedPaths ? { storedPaths } : {}) });
    if (!spec || problems.length) throw validationError(problems, 'The deployment');
    const resolved = await this.assets.resolveDeployment(spec, previous);
    return { spec: resolved, revision: compileInstancePlan(resolved, this.assets.lookup).revision };
  }

  private remember(d: StoredDeployment, revision: string): void {
    this.revisions.set(`${d.spec.endpointName}/${d.spec.name}`.toLowerCase(), { generation: d.generation, revision });
  }

  /** The plan revision of the stored deployment: remembered from its change, compiled only if unknown. */
  private revisionOf(d: StoredDeployment): string {
    const known = this.revisions.get(`${d.spec.endpointName}/${d.spec.name}`.toLowerCase());
    if (known && known.generation === d.generation) return known.revision;
    const revision = compileInstancePlan(d.spec, this.assets.lookup).revision;
    this.remember(d, revision);
    return revision;
  }
}

function parseEndpoint(document: unknown): EndpointSpec {
  const { spec, problems } = parseEndpointObject(document, { source: 'request body' });
  if (!spec || problems.length) throw validationError(problems, 'The endpoint');
  if (spec.authMode === 'aad_token') throw errorOf('AadTokenUnsupported');
  return spec;
}
