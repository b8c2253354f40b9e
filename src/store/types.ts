// The StateStore interface (DESIGN.md "store/"). Desired state (specs, keys, generation) and observed
// state (provisioning state, error) are written by separate methods, so the reconciler's status writes
// never race a user's spec change. Synchronous: the SQLite implementation is better-sqlite3.

import type { DeploymentSpec, EndpointSpec, InferenceConfig, ModelType } from '../spec/types.js';
import type { AutoscaleEvent, AutoscaleSetting } from '../spec/autoscale.js';

/** Azure's provisioning states (contract §1.11). */
export type ProvisioningState = 'Creating' | 'Updating' | 'Scaling' | 'Succeeded' | 'Failed' | 'Deleting' | 'Canceled';

export interface OperationError {
  code: string;
  message: string;
}

export interface ObservedStatus {
  provisioningState: ProvisioningState;
  error?: OperationError;
  /** The generation this status speaks of. */
  observedGeneration: number;
  updatedAt: string;
}

export interface EndpointKeys {
  primaryKey: string;
  secondaryKey: string;
  /** HMAC secret for aml_token tokens (base64url). */
  tokenSecret: string;
}

export interface StoredEndpoint {
  spec: EndpointSpec;
  keys: EndpointKeys;
  /** Increases by one with every change of spec. */
  generation: number;
  createdAt: string;
  updatedAt: string;
  status: ObservedStatus;
}

export interface StoredDeployment {
  spec: DeploymentSpec;
  generation: number;
  createdAt: string;
  updatedAt: string;
  status: ObservedStatus;
}

/** Versioned assets (DESIGN.md vocabulary): registered models and environments. */
export type AssetKind = 'model' | 'environment';

/** One registered model version. */
export interface ModelAsset {
  name: string;
  version: string;
  type: ModelType;
  /** The registered copy: `<workspace>/assets/models/<name>/<version>/<file or folder name>`. */
  path: string;
  description?: string;
  tags: Record<string, string>;
  properties: Record<string, string>;
  flavors?: Record<string, unknown>;
}

/** One registered environment version. */
export interface EnvironmentAsset {
  name: string;
  version: string;
  description?: string;
  tags: Record<string, string>;
  image?: string;
  build?: { path: string; dockerfilePath: string };
  osType: 'linux' | 'windows';
  inferenceConfig?: InferenceConfig;
  /** The conda file's content, as stored (what `show` prints). */
  conda?: Record<string, unknown>;
  /**
   * The stored copy of the conda file: `<workspace>/assets/environments/<name>/<version>/conda.yaml`, with
   * the local files its pip list names stored beside it (relative entries resolve against its folder).
   */
  condaFile?: string;
}

export interface AssetRecords {
  model: ModelAsset;
  environment: EnvironmentAsset;
}

export interface StoredAsset<K extends AssetKind = AssetKind> {
  kind: K;
  asset: AssetRecords[K];
  /** Registered for an inline definition in a deployment; left out of lists unless asked for. */
  anonymous: boolean;
  /** Archived versions are skipped by `@latest` and lists, but an explicit version still resolves. */
  archived: boolean;
  createdAt: string;
  updatedAt: string;
}

/** A reference to resolve: an explicit version, or a label (only `latest` exists); neither means latest. */
export interface AssetQuery {
  name: string;
  version?: string;
  label?: string;
}

/**
 * Control-plane roles, after Azure's built-in Owner / Contributor / Reader: each includes the ones after
 * it (docs/security.md has the table of who may do what).
 */
export type Role = 'owner' | 'contributor' | 'reader';

/**
 * A control-plane bearer token (`igt_<id>_<secret>`). Only the SHA-256 of the secret is stored: the
 * secret is shown once, when the token is created, and cannot be read back from the workspace.
 */
export interface StoredToken {
  id: string;
  role: Role;
  /** SHA-256 of the secret, lowercase hex. */
  hash: string;
  description?: string;
  createdAt: string;
  /** Absent: the token does not expire. */
  expiresAt?: string;
  lastUsedAt?: string;
}

/**
 * An autoscale setting (issue 12) and the deployment it scales, resolved from its targetResourceUri when it
 * was written: the store deletes the setting and its history with that deployment (or its endpoint).
 */
export interface StoredAutoscaleSetting {
  setting: AutoscaleSetting;
  endpoint: string;
  deployment: string;
  createdAt: string;
  updatedAt: string;
}

/** The autoscale history kept per setting: the newest events, older ones dropped as new ones come. */
export const AUTOSCALE_HISTORY_LIMIT = 500;

/**
 * An attached compute (`infergate ml compute attach`): a Kubernetes cluster that endpoints naming
 * `compute: azureml:<name>` run on. The kubeconfig is a secret: the API never shows it back.
 */
export interface StoredCompute {
  name: string;
  type: 'kubernetes';
  /** The kubeconfig file's content (YAML), as attached. */
  kubeconfig: string;
  /** The kubeconfig context to use; absent: its current-context. */
  context?: string;
  /** Where infergate creates its objects; default `default`... or the context's namespace. */
  namespace: string;
  /** A registry the cluster pulls from, where environment images are pushed (by digest). */
  registry?: string;
  description?: string;
  createdAt: string;
  updatedAt: string;
}

export interface StateStore {
  getEndpoint(name: string): StoredEndpoint | undefined;
  listEndpoints(): StoredEndpoint[];
  /**
   * Inserts or replaces the endpoint's desired state (spec + keys); bumps generation; keeps createdAt.
   * A new endpoint gets `status` as given; an existing one keeps its status. Returns the stored record.
   */
  putEndpoint(spec: EndpointSpec, keys: EndpointKeys, status?: Omit<ObservedStatus, 'observedGeneration' | 'updatedAt'>): StoredEndpoint;
  /** Deletes the endpoint and all its deployments (and their autoscale settings and history). */
  deleteEndpoint(name: string): boolean;
  setEndpointStatus(name: string, status: Omit<ObservedStatus, 'updatedAt'>): void;

  getDeployment(endpoint: string, name: string): StoredDeployment | undefined;
  /** Deployments of one endpoint (or of all endpoints), ordered by endpoint then name. */
  listDeployments(endpoint?: string): StoredDeployment[];
  putDeployment(spec: DeploymentSpec, status?: Omit<ObservedStatus, 'observedGeneration' | 'updatedAt'>): StoredDeployment;
  /** Deletes the deployment, and the autoscale setting that scales it with its history. */
  deleteDeployment(endpoint: string, name: string): boolean;
  setDeploymentStatus(endpoint: string, name: string, status: Omit<ObservedStatus, 'updatedAt'>): void;

  getAsset<K extends AssetKind>(kind: K, name: string, version: string): StoredAsset<K> | undefined;
  /** Versions of one name, or of every name (ordered by name), each name's in the order they were registered. */
  listAssets<K extends AssetKind>(kind: K, name?: string): StoredAsset<K>[];
  /**
   * Registers a new version (not archived). Assets are immutable: an existing name:version throws
   * InfergateError('AssetAlreadyExists') and writes nothing.
   */
  putAsset<K extends AssetKind>(kind: K, asset: AssetRecords[K], options?: { anonymous?: boolean }): StoredAsset<K>;
  /** Archives (true) or restores (false) a version; false when there is no such version. */
  setAssetArchived(kind: AssetKind, name: string, version: string, archived: boolean): boolean;

  /** Adds a control-plane token; an existing id throws (ids are random, so that is a bug) and writes nothing. */
  putToken(token: Omit<StoredToken, 'createdAt' | 'lastUsedAt'>): StoredToken;
  /** One lookup by primary key: the id is in the token's text, so authentication never scans. */
  getToken(id: string): StoredToken | undefined;
  /** Every token, oldest first. */
  listTokens(): StoredToken[];
  /** Revokes (deletes) a token; says whether it existed. The next request with it is refused. */
  deleteToken(id: string): boolean;
  /** Records that the token was just used (`token list` shows it). */
  touchToken(id: string): void;

  /** Autoscale setting names compare case-insensitively, as Azure's resource names do. */
  getAutoscaleSetting(name: string): StoredAutoscaleSetting | undefined;
  /** Every setting, by name. */
  listAutoscaleSettings(): StoredAutoscaleSetting[];
  /**
   * Inserts or replaces (by name) a setting that scales `target`. A deployment that does not exist throws
   * DeploymentNotFound (EndpointNotFound for its endpoint); a deployment another setting scales throws
   * AutoscaleResourceTaken (one setting per resource); either writes nothing.
   */
  putAutoscaleSetting(setting: AutoscaleSetting, target: { endpoint: string; deployment: string }): StoredAutoscaleSetting;
  /** Deletes a setting and its history; says whether it existed. */
  deleteAutoscaleSetting(name: string): boolean;
  /** Adds a decision to `event.setting`'s history, keeping the newest AUTOSCALE_HISTORY_LIMIT; dropped when the setting is gone. */
  appendAutoscaleEvent(event: AutoscaleEvent): void;
  /** A setting's history, oldest first: all kept, or the newest `limit`. */
  listAutoscaleEvents(setting: string, limit?: number): AutoscaleEvent[];

  /** Compute names compare case-insensitively, as Azure's resource names do. */
  getCompute(name: string): StoredCompute | undefined;
  /** Every attached compute, by name. */
  listComputes(): StoredCompute[];
  /** Attaches a compute; a name attached already throws ComputeAlreadyExists and writes nothing. */
  putCompute(compute: Omit<StoredCompute, 'createdAt' | 'updatedAt'>): StoredCompute;
  /** Detaches a compute; says whether it was attached. */
  deleteCompute(name: string): boolean;

  /** Runs fn atomically: every write inside commits together or not at all. */
  transaction<T>(fn: () => T): T;
  close(): void;
}
