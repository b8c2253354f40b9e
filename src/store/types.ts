// The StateStore interface (DESIGN.md "store/"). Desired state (specs, keys, generation) and observed
// state (provisioning state, error) are written by separate methods, so the reconciler's status writes
// never race a user's spec change. Synchronous: the SQLite implementation is better-sqlite3.

import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';

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

export interface StateStore {
  getEndpoint(name: string): StoredEndpoint | undefined;
  listEndpoints(): StoredEndpoint[];
  /**
   * Inserts or replaces the endpoint's desired state (spec + keys); bumps generation; keeps createdAt.
   * A new endpoint gets `status` as given; an existing one keeps its status. Returns the stored record.
   */
  putEndpoint(spec: EndpointSpec, keys: EndpointKeys, status?: Omit<ObservedStatus, 'observedGeneration' | 'updatedAt'>): StoredEndpoint;
  /** Deletes the endpoint and all its deployments. */
  deleteEndpoint(name: string): boolean;
  setEndpointStatus(name: string, status: Omit<ObservedStatus, 'updatedAt'>): void;

  getDeployment(endpoint: string, name: string): StoredDeployment | undefined;
  /** Deployments of one endpoint (or of all endpoints), ordered by endpoint then name. */
  listDeployments(endpoint?: string): StoredDeployment[];
  putDeployment(spec: DeploymentSpec, status?: Omit<ObservedStatus, 'observedGeneration' | 'updatedAt'>): StoredDeployment;
  deleteDeployment(endpoint: string, name: string): boolean;
  setDeploymentStatus(endpoint: string, name: string, status: Omit<ObservedStatus, 'updatedAt'>): void;

  /** Runs fn atomically: every write inside commits together or not at all. */
  transaction<T>(fn: () => T): T;
  close(): void;
}
