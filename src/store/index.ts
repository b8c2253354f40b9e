// The state store: the interface, its two implementations, and the workspace's default store.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { StoreOptions } from './common.js';
import { SqliteStateStore } from './sqlite.js';

export type * from './types.js';
export { AUTOSCALE_HISTORY_LIMIT } from './types.js';
export { assetAlreadyExists, INITIAL_STATUS, type Clock, type InitialStatus, type StoreOptions } from './common.js';
export { MemoryStateStore } from './memory.js';
export { migrate, SCHEMA_VERSION, SqliteStateStore } from './sqlite.js';

/** Opens `<workspaceDir>/state.db`, creating the workspace directory (owner-only: it holds keys) if needed. */
export function openStateStore(workspaceDir: string, options: StoreOptions = {}): SqliteStateStore {
  mkdirSync(workspaceDir, { recursive: true, mode: 0o700 });
  return SqliteStateStore.open(join(workspaceDir, 'state.db'), options);
}
export { assetLookup, findAsset, latestOf, nextVersion, LABELS, type AssetLookup } from './assets.js';
