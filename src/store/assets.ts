// Asset version rules shared by every StateStore user: the next version of a name, what `@latest`
// means, and reference resolution (`azureml:name:version`, `azureml:name@latest`).

import type { AssetKind, AssetQuery, AssetRecords, StateStore, StoredAsset } from './types.js';

const INTEGER = /^[0-9]+$/;

/**
 * The version a new registration without one gets, as Azure's auto-increment does: the next integer after
 * the highest integer version ("1" for a new name). Versions that are not integers ("v2", "1.5") are skipped.
 */
export function nextVersion(versions: readonly string[]): string {
  let highest = 0n;
  for (const v of versions) if (INTEGER.test(v) && BigInt(v) > highest) highest = BigInt(v);
  return String(highest + 1n);
}

/** `@latest`: the most recently registered version that is not archived (Azure's creation-time order). */
export function latestOf<K extends AssetKind>(versions: readonly StoredAsset<K>[]): StoredAsset<K> | undefined {
  for (let i = versions.length - 1; i >= 0; i--) if (!versions[i].archived) return versions[i];
  return undefined;
}

/** The labels a reference may use. */
export const LABELS = ['latest'] as const;

/** The version a reference names; undefined when there is none (archived versions still resolve by number). */
export function findAsset<K extends AssetKind>(store: StateStore, kind: K, query: AssetQuery): StoredAsset<K> | undefined {
  if (query.version !== undefined) return store.getAsset(kind, query.name, query.version);
  if (query.label !== undefined && !(LABELS as readonly string[]).includes(query.label)) return undefined;
  return latestOf(store.listAssets(kind, query.name));
}

/** What compile/ needs to turn references into paths: reads the store afresh on every call. */
export interface AssetLookup {
  model(query: AssetQuery): AssetRecords['model'] | undefined;
  environment(query: AssetQuery): AssetRecords['environment'] | undefined;
}

export function assetLookup(store: StateStore): AssetLookup {
  return {
    model: (q) => findAsset(store, 'model', q)?.asset,
    environment: (q) => findAsset(store, 'environment', q)?.asset,
  };
}
