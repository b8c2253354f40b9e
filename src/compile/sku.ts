// Instance types → CPU and memory of one instance (contract §8.1, Azure's managed online endpoint SKU
// list; RAM from Azure's VM size specs). Pure. The docker backend turns them into cgroup limits, as
// Azure sizes each instance by its VM; Kubernetes-style `resources` quantities are parsed here too.

import type { InstancePlan } from '../ir/types.js';
import { parseQuantity } from '../spec/deployment.js';

const GIB = 1024 ** 3;

/** vCPU and GiB of RAM per SKU, lower-case names (Azure compares instance types case-insensitively). */
const SKUS = new Map<string, [number, number]>();
function add(names: string[], cpus: number[], gib: (cpus: number, i: number) => number): void {
  names.forEach((n, i) => SKUS.set(n.toLowerCase(), [cpus[i], gib(cpus[i], i)]));
}
add(['Standard_DS1_v2', 'Standard_DS2_v2', 'Standard_DS3_v2', 'Standard_DS4_v2', 'Standard_DS5_v2'], [1, 2, 4, 8, 16], (c) => c * 3.5);
for (const suffix of ['a_v4', 'as_v4']) {
  const sizes = [2, 4, 8, 16, 32, 48, 64, 96];
  add(sizes.map((n) => `Standard_D${n}${suffix}`), sizes, (c) => c * 4);
}
{
  const sizes = [2, 4, 8, 16, 32, 48];
  add(sizes.map((n) => `Standard_E${n}s_v3`), sizes, (c) => c * 8);
  add(['Standard_E64s_v3'], [64], () => 432);
}
{
  const sizes = [2, 4, 8, 16, 32, 48, 64, 72];
  add(sizes.map((n) => `Standard_F${n}s_v2`), sizes, (c) => c * 2);
}
{
  const sizes = [4, 12, 24, 36, 48];
  add(sizes.map((n) => `Standard_FX${n}mds`), sizes, (c) => c * 21);
}
for (const suffix of ['s_v2', 's_v3', 'as_v3']) {
  const sizes = [8, 16, 32, 48, 64, 80];
  add(sizes.map((n) => `Standard_L${n}${suffix}`), sizes, (c) => c * 8);
}
for (const suffix of ['s_v2', 's_v3']) add([6, 12, 24].map((n) => `Standard_NC${n}${suffix}`), [6, 12, 24], (c) => (c / 6) * 112);
add(['Standard_NC4as_T4_v3', 'Standard_NC8as_T4_v3', 'Standard_NC16as_T4_v3', 'Standard_NC64as_T4_v3'], [4, 8, 16, 64], (_c, i) => [28, 56, 110, 440][i]);
add(['Standard_NC24ads_A100_v4', 'Standard_NC48ads_A100_v4', 'Standard_NC96ads_A100_v4'], [24, 48, 96], (_c, i) => [220, 440, 880][i]);
add(['Standard_NC40ads_H100_v5', 'Standard_NC80adis_H100_v5'], [40, 80], (_c, i) => [320, 640][i]);
add(['Standard_ND96asr_v4', 'Standard_ND96amsr_A100_v4', 'Standard_ND40rs_v2', 'Standard_ND96is_H100_v5', 'Standard_ND96isr_H100_v5'], [96, 96, 40, 96, 96], (_c, i) => [900, 1900, 672, 1900, 1900][i]);
add(
  ['Standard_NV6ads_A10_v5', 'Standard_NV12ads_A10_v5', 'Standard_NV18ads_A10_v5', 'Standard_NV36ads_A10_v5', 'Standard_NV36adms_A10_v5', 'Standard_NV72ads_A10_v5'],
  [6, 12, 18, 36, 36, 72],
  (_c, i) => [55, 110, 220, 440, 880, 880][i],
);

/** The SKU's vCPUs and memory, or undefined for an instance type not in the table. */
export function skuSize(instanceType: string): { cpus: number; memoryBytes: number } | undefined {
  const s = SKUS.get(instanceType.toLowerCase());
  return s && { cpus: s[0], memoryBytes: Math.round(s[1] * GIB) };
}

/**
 * Limits of one instance: `resources.limits` win (Kubernetes-style), then `resources.requests` (a pod
 * with requests only may use that much), then the instance type's SKU.
 */
export function instanceResources(instanceType: string, resources: { requests?: Record<string, string>; limits?: Record<string, string> } | undefined): InstancePlan['resources'] {
  for (const [key, set] of [['limits', resources?.limits], ['requests', resources?.requests]] as const) {
    if (!set) continue;
    const cpus = set.cpu !== undefined ? parseQuantity(set.cpu) : undefined;
    const memoryBytes = set.memory !== undefined ? roundBytes(parseQuantity(set.memory)) : undefined;
    if (cpus !== undefined || memoryBytes !== undefined) {
      return { ...(cpus !== undefined ? { cpus } : {}), ...(memoryBytes !== undefined ? { memoryBytes } : {}), from: `resources.${key}` };
    }
  }
  const sku = skuSize(instanceType);
  return sku ? { ...sku, from: `instance_type ${instanceType}` } : { from: `instance_type ${instanceType} (not in the SKU table: no limits)` };
}

function roundBytes(n: number | undefined): number | undefined {
  return n === undefined ? undefined : Math.round(n);
}
