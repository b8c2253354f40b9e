// instanceResources: the limits one instance gets (contract §8.1 SKU table, Kubernetes-style resources).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { instanceResources, skuSize } from './sku.js';

const GIB = 1024 ** 3;
const MIB = 1024 ** 2;

test('Standard_DS3_v2 is 4 vCPUs and 14 GiB, as Azure sizes that VM', () => {
  assert.deepEqual(instanceResources('Standard_DS3_v2', undefined), { cpus: 4, memoryBytes: 14 * GIB, from: 'instance_type Standard_DS3_v2' });
});

test('instance types compare case-insensitively, and `from` names the type as written', () => {
  for (const name of ['standard_ds3_v2', 'STANDARD_DS3_V2', 'Standard_ds3_V2']) {
    assert.deepEqual(instanceResources(name, undefined), { cpus: 4, memoryBytes: 14 * GIB, from: `instance_type ${name}` });
  }
});

test('a few other rows of the table: fractional GiB round to whole bytes', () => {
  assert.deepEqual(skuSize('Standard_DS1_v2'), { cpus: 1, memoryBytes: Math.round(3.5 * GIB) });
  assert.deepEqual(skuSize('Standard_F2s_v2'), { cpus: 2, memoryBytes: 4 * GIB });
  assert.deepEqual(skuSize('Standard_E64s_v3'), { cpus: 64, memoryBytes: 432 * GIB });
  assert.deepEqual(skuSize('Standard_NC4as_T4_v3'), { cpus: 4, memoryBytes: 28 * GIB });
});

test('an instance type not in the table gives no limits, and `from` says so', () => {
  const r = instanceResources('Standard_Nope_v9', undefined);
  assert.deepEqual(r, { from: 'instance_type Standard_Nope_v9 (not in the SKU table: no limits)' });
  assert.equal(skuSize('Standard_Nope_v9'), undefined);
  // A Kubernetes instance type is a name the cluster defines, not a SKU.
  assert.equal(instanceResources('defaultinstancetype', undefined).cpus, undefined);
});

test('resources.limits win over requests and over the SKU', () => {
  const r = instanceResources('Standard_DS3_v2', { requests: { cpu: '250m', memory: '32Mi' }, limits: { cpu: '500m', memory: '64Mi' } });
  assert.deepEqual(r, { cpus: 0.5, memoryBytes: 64 * MIB, from: 'resources.limits' });
});

test('requests only: the instance may use what it requests', () => {
  assert.deepEqual(instanceResources('Standard_DS3_v2', { requests: { cpu: '1.5', memory: '1Gi' } }), { cpus: 1.5, memoryBytes: GIB, from: 'resources.requests' });
});

test('limits with only one of cpu and memory give only that one (the SKU does not fill the other in)', () => {
  assert.deepEqual(instanceResources('Standard_DS3_v2', { limits: { memory: '512Mi' } }), { memoryBytes: 512 * MIB, from: 'resources.limits' });
  assert.deepEqual(instanceResources('Standard_DS3_v2', { limits: { cpu: '2' }, requests: { memory: '1Gi' } }), { cpus: 2, from: 'resources.limits' });
});

test('decimal memory suffixes and fractional byte counts round to whole bytes', () => {
  assert.deepEqual(instanceResources('x', { limits: { memory: '1G' } }), { memoryBytes: 1e9, from: 'resources.limits' });
  assert.deepEqual(instanceResources('x', { limits: { memory: '1.5Ki' } }), { memoryBytes: 1536, from: 'resources.limits' });
});

test('resources with neither cpu nor memory (a GPU count only) fall back to the SKU', () => {
  assert.deepEqual(instanceResources('Standard_DS3_v2', { limits: { 'nvidia.com/gpu': '1' } }), { cpus: 4, memoryBytes: 14 * GIB, from: 'instance_type Standard_DS3_v2' });
  assert.deepEqual(instanceResources('Standard_DS3_v2', {}), { cpus: 4, memoryBytes: 14 * GIB, from: 'instance_type Standard_DS3_v2' });
});
