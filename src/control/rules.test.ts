// The service layer's rules on their own, without HTTP: the states a change starts in, when a deployment
// can be deleted, and what traffic an endpoint may name at create (the HTTP side is api/server.test.ts).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { InfergateError } from '../errors/index.js';
import type { EndpointSpec } from '../spec/types.js';
import type { ProvisioningState, StoredDeployment, StoredEndpoint } from '../store/types.js';
import { checkDeletable, checkDeploymentChangeable, checkEndpointChangeable, checkTrafficAtCreate, deploymentUpdateState, trafficOf } from './index.js';

const endpoint = (traffic: Record<string, number>, mirrorTraffic: Record<string, number> = {}, state: ProvisioningState = 'Succeeded') =>
  ({ spec: { name: 'my-endpoint', traffic, mirrorTraffic } as unknown as EndpointSpec, status: { provisioningState: state } }) as unknown as StoredEndpoint;

const thrown = (f: () => void): InfergateError | undefined => {
  try {
    f();
    return undefined;
  } catch (e) {
    assert.ok(e instanceof InfergateError);
    return e;
  }
};

test('an update starts in Scaling only when the revision is unchanged and the deployment has not failed', () => {
  const table: [ProvisioningState, boolean, ProvisioningState][] = [
    ['Succeeded', true, 'Scaling'],
    ['Succeeded', false, 'Updating'],
    ['Updating', true, 'Scaling'],
    ['Failed', true, 'Updating'],
    ['Failed', false, 'Updating'],
  ];
  for (const [current, same, want] of table) assert.equal(deploymentUpdateState(current, same), want, `${current}, same revision ${same}`);
});

test('a deployment with live or mirror traffic cannot be deleted; traffic keys are matched without case', () => {
  assert.deepEqual(trafficOf(endpoint({ blue: 100 }), 'Blue'), { live: 100, mirror: 0 });
  const live = thrown(() => checkDeletable(endpoint({ blue: 100 }), 'Blue'));
  assert.equal(live?.code, 'DeploymentHasTraffic');
  assert.equal(live?.message, "Deployment 'Blue' has traffic (100% live, 0% mirror); set it to 0 with 'online-endpoint update --traffic' before deleting it.");
  assert.equal(thrown(() => checkDeletable(endpoint({ blue: 100 }, { green: 10 }), 'green'))?.code, 'DeploymentHasTraffic');
  assert.equal(thrown(() => checkDeletable(endpoint({ blue: 100, green: 0 }), 'green')), undefined);
});

test('nothing can point at a deployment when an endpoint is created; a resource being deleted takes no change', () => {
  assert.equal(thrown(() => checkTrafficAtCreate(endpoint({ blue: 0 }).spec))?.code, 'InvalidTraffic');
  assert.equal(thrown(() => checkTrafficAtCreate(endpoint({}, { blue: 10 }).spec))?.code, 'InvalidTraffic');
  assert.equal(thrown(() => checkTrafficAtCreate(endpoint({}).spec)), undefined);
  assert.equal(thrown(() => checkEndpointChangeable(endpoint({}, {}, 'Deleting')))?.code, 'OperationInProgress');
  assert.equal(thrown(() => checkEndpointChangeable(endpoint({}, {}, 'Failed'))), undefined);
  const d = (state: ProvisioningState) => ({ spec: { name: 'blue' }, status: { provisioningState: state } }) as unknown as StoredDeployment;
  assert.equal(thrown(() => checkDeploymentChangeable(d('Deleting')))?.message, "Deployment 'blue' is being deleted.");
  assert.equal(thrown(() => checkDeploymentChangeable(d('Creating'))), undefined);
});
