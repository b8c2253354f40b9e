// Pieces both StateStore implementations share, so they cannot drift apart in behaviour.

import { errorOf, type InfergateError } from '../errors/index.js';
import type { ObservedStatus } from './types.js';

/** Injected by tests that need distinct or fixed timestamps; production uses the wall clock. */
export type Clock = () => Date;

export interface StoreOptions {
  clock?: Clock;
}

export type InitialStatus = Omit<ObservedStatus, 'observedGeneration' | 'updatedAt'>;

/** What a new endpoint or deployment reports until the reconciler has looked at it. */
export const INITIAL_STATUS: InitialStatus = { provisioningState: 'Creating' };

/** ISO-8601 UTC with milliseconds, e.g. 2026-04-17T16:55:44.738Z. */
export function timestamp(clock: Clock): string {
  return clock().toISOString();
}

export function endpointNotFound(name: string): InfergateError {
  return errorOf('EndpointNotFound', { endpoint: name });
}

/** better-sqlite3 refuses async transaction functions (the commit would run before the awaits); so do we. */
export function assertNotPromise(result: unknown): void {
  if (result !== null && typeof result === 'object' && typeof (result as { then?: unknown }).then === 'function') {
    throw new TypeError('Transaction function cannot return a promise');
  }
}

export function assetAlreadyExists(kind: 'model' | 'environment', name: string, version: string): InfergateError {
  const Kind = kind === 'model' ? 'Model' : 'Environment';
  return errorOf('AssetAlreadyExists', { Kind, name, version });
}

export function deploymentNotFound(endpoint: string, deployment: string): InfergateError {
  return errorOf('DeploymentNotFound', { deployment, endpoint });
}

export function autoscaleResourceTaken(endpoint: string, deployment: string, existing: string): InfergateError {
  return errorOf('AutoscaleResourceTaken', { resource: `Deployment '${deployment}' of endpoint '${endpoint}'`, existing });
}
