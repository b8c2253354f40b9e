// The provisioning states the control plane sets when a change is accepted (contract §1.11). The
// controller (reconcile/) moves them on to Succeeded or Failed when the change has been carried out; the
// service layer sets only the first state of each operation, by these rules:
//
//   create                     → Creating
//   update, new revision       → Updating
//   update, same revision      → Scaling   (only instance_count or scale settings changed: no new instances
//                                            of a new revision, Azure's "Scaling")
//   update of a Failed one     → Updating  (even with nothing changed: the update is the retry)
//   delete                     → Deleting  (an endpoint's deployments with it)
//
// and nothing but a delete is accepted while a resource is Deleting (OperationInProgress), as Azure
// answers a change to an endpoint or deployment that is being deleted.

import { errorOf } from '../errors/index.js';
import type { ProvisioningState, StoredDeployment, StoredEndpoint } from '../store/types.js';

export const STATE_ON_CREATE: ProvisioningState = 'Creating';
export const STATE_ON_DELETE: ProvisioningState = 'Deleting';

/** The state a deployment update starts in. */
export function deploymentUpdateState(current: ProvisioningState, sameRevision: boolean): ProvisioningState {
  return sameRevision && current !== 'Failed' ? 'Scaling' : 'Updating';
}

/** An update of a Failed deployment retries it: the controller forgets its backoff. */
export function updateRetries(current: ProvisioningState): boolean {
  return current === 'Failed';
}

/** Refuses a change (anything but delete) to an endpoint that is being deleted. */
export function checkEndpointChangeable(e: StoredEndpoint): void {
  if (e.status.provisioningState === STATE_ON_DELETE) throw errorOf('EndpointBeingDeleted', { endpoint: e.spec.name });
}

/** Refuses a change (anything but delete) to a deployment that is being deleted. */
export function checkDeploymentChangeable(d: StoredDeployment): void {
  if (d.status.provisioningState === STATE_ON_DELETE) throw errorOf('DeploymentBeingDeleted', { deployment: d.spec.name });
}
