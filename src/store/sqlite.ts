// The embedded StateStore: one SQLite file per workspace, through better-sqlite3 (synchronous).
//
// Desired state (endpoints, deployments) and observed state (endpoint_status, deployment_status) live in
// separate tables: put* writes only the former (plus a first status row for a new record), set*Status only
// the latter, so neither can overwrite the other. Status rows hang off their record by foreign key with
// ON DELETE CASCADE, so deleting an endpoint removes its deployments and every status in one statement.
//
// The `keys` column holds secrets (the tokens table only hashes of them). Nothing here logs, and every value is a bound parameter, so SQLite
// errors never carry them either.

import { closeSync, openSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';
import type { AutoscaleEvent, AutoscaleSetting } from '../spec/autoscale.js';
import { assetAlreadyExists, assertNotPromise, autoscaleResourceTaken, deploymentNotFound, endpointNotFound, INITIAL_STATUS, timestamp, type Clock, type InitialStatus, type StoreOptions } from './common.js';
import { AUTOSCALE_HISTORY_LIMIT, type AssetKind, type AssetRecords, type EndpointKeys, type ObservedStatus, type ProvisioningState, type Role, type StateStore, type StoredAsset, type StoredAutoscaleSetting, type StoredDeployment, type StoredCompute, type StoredEndpoint, type StoredToken } from './types.js';
import { errorOf } from '../errors/index.js';

/**
 * Schema migrations, in order: MIGRATIONS[i] takes a database from version i to i + 1 (PRAGMA user_version).
 * Never edit a released entry; append a new one (e.g. `ALTER TABLE ... ADD COLUMN`).
 */
const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE endpoints (
    name        TEXT PRIMARY KEY,
    spec        TEXT NOT NULL,     -- EndpointSpec as JSON
    keys        TEXT NOT NULL,     -- EndpointKeys as JSON (secret)
    generation  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  ) STRICT;

  CREATE TABLE endpoint_status (
    endpoint            TEXT PRIMARY KEY REFERENCES endpoints(name) ON DELETE CASCADE,
    provisioning_state  TEXT NOT NULL,
    error               TEXT,      -- OperationError as JSON, or NULL
    observed_generation INTEGER NOT NULL,
    updated_at          TEXT NOT NULL
  ) STRICT;

  CREATE TABLE deployments (
    endpoint    TEXT NOT NULL REFERENCES endpoints(name) ON DELETE CASCADE,
    name        TEXT NOT NULL,
    spec        TEXT NOT NULL,     -- DeploymentSpec as JSON
    generation  INTEGER NOT NULL,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (endpoint, name)
  ) STRICT;

  CREATE TABLE deployment_status (
    endpoint            TEXT NOT NULL,
    name                TEXT NOT NULL,
    provisioning_state  TEXT NOT NULL,
    error               TEXT,
    observed_generation INTEGER NOT NULL,
    updated_at          TEXT NOT NULL,
    PRIMARY KEY (endpoint, name),
    FOREIGN KEY (endpoint, name) REFERENCES deployments(endpoint, name) ON DELETE CASCADE
  ) STRICT;
  `,
  // 2: versioned assets (models, environments). Immutable but for the archived flag; never deleted, so a
  // deployment's recorded version always resolves. rowid order is registration order.
  `
  CREATE TABLE assets (
    kind        TEXT NOT NULL CHECK (kind IN ('model', 'environment')),
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    asset       TEXT NOT NULL,     -- ModelAsset / EnvironmentAsset as JSON
    anonymous   INTEGER NOT NULL,  -- 0/1
    archived    INTEGER NOT NULL,  -- 0/1
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    PRIMARY KEY (kind, name, version)
  ) STRICT;
  `,
  // 3: control-plane tokens. `hash` is the SHA-256 of the secret; the secret itself is never stored.
  `
  CREATE TABLE tokens (
    id            TEXT PRIMARY KEY,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'contributor', 'reader')),
    hash          TEXT NOT NULL,
    description   TEXT,
    created_at    TEXT NOT NULL,
    expires_at    TEXT,
    last_used_at  TEXT
  ) STRICT;
  `,
  // 4: autoscale settings (issue 12) and their history. A setting hangs off the deployment it scales
  // (one per deployment), its events off the setting, both ON DELETE CASCADE: deleting a deployment or its
  // endpoint deletes them in the same statement. Names compare case-insensitively, as Azure's do.
  `
  CREATE TABLE autoscale_settings (
    name        TEXT PRIMARY KEY COLLATE NOCASE,
    endpoint    TEXT NOT NULL,
    deployment  TEXT NOT NULL,
    setting     TEXT NOT NULL,     -- AutoscaleSetting as JSON
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL,
    UNIQUE (endpoint, deployment),
    FOREIGN KEY (endpoint, deployment) REFERENCES deployments(endpoint, name) ON DELETE CASCADE
  ) STRICT;

  CREATE TABLE autoscale_events (
    id       INTEGER PRIMARY KEY,  -- rowid: insertion order
    setting  TEXT NOT NULL COLLATE NOCASE REFERENCES autoscale_settings(name) ON DELETE CASCADE,
    event    TEXT NOT NULL         -- AutoscaleEvent as JSON
  ) STRICT;
  CREATE INDEX autoscale_events_by_setting ON autoscale_events (setting, id);
  `,
  // 5: attached computes (issue 17). `kubeconfig` is a secret (its credentials), like endpoints.keys.
  `
  CREATE TABLE computes (
    name        TEXT PRIMARY KEY COLLATE NOCASE,
    type        TEXT NOT NULL CHECK (type IN ('kubernetes')),
    kubeconfig  TEXT NOT NULL,
    context     TEXT,
    namespace   TEXT NOT NULL,
    registry    TEXT,
    description TEXT,
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
  ) STRICT;
  `,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the schema up to SCHEMA_VERSION; each step commits together with its new user_version. */
export function migrate(db: Database.Database): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  if (current > SCHEMA_VERSION) {
    throw new Error(`The workspace database has schema version ${current}; this infergate knows up to ${SCHEMA_VERSION}. Upgrade infergate.`);
  }
  for (let version = current; version < SCHEMA_VERSION; version++) {
    db.transaction(() => {
      db.exec(MIGRATIONS[version]);
      db.pragma(`user_version = ${version + 1}`);
    }).immediate();
  }
}

interface StatusRow {
  provisioning_state: string;
  error: string | null;
  observed_generation: number;
  status_updated_at: string;
}

interface EndpointRow extends StatusRow {
  spec: string;
  keys: string;
  generation: number;
  created_at: string;
  updated_at: string;
}

interface DeploymentRow extends StatusRow {
  spec: string;
  generation: number;
  created_at: string;
  updated_at: string;
}

interface AssetRow {
  kind: string;
  asset: string;
  anonymous: number;
  archived: number;
  created_at: string;
  updated_at: string;
}

interface TokenRow {
  id: string;
  role: string;
  hash: string;
  description: string | null;
  created_at: string;
  expires_at: string | null;
  last_used_at: string | null;
}

interface ComputeRow {
  name: string;
  type: string;
  kubeconfig: string;
  context: string | null;
  namespace: string;
  registry: string | null;
  description: string | null;
  created_at: string;
  updated_at: string;
}

interface AutoscaleRow {
  name: string;
  endpoint: string;
  deployment: string;
  setting: string;
  created_at: string;
  updated_at: string;
}

interface StatusParams {
  state: string;
  error: string | null;
  observedGeneration: number;
  now: string;
}

const ENDPOINT_SELECT = `
  SELECT e.spec, e.keys, e.generation, e.created_at, e.updated_at,
         s.provisioning_state, s.error, s.observed_generation, s.updated_at AS status_updated_at
  FROM endpoints e JOIN endpoint_status s ON s.endpoint = e.name`;

const DEPLOYMENT_SELECT = `
  SELECT d.spec, d.generation, d.created_at, d.updated_at,
         s.provisioning_state, s.error, s.observed_generation, s.updated_at AS status_updated_at
  FROM deployments d JOIN deployment_status s ON s.endpoint = d.endpoint AND s.name = d.name`;

type Statements = ReturnType<typeof prepareStatements>;

function prepareStatements(db: Database.Database) {
  return {
    getEndpoint: db.prepare<[string], EndpointRow>(`${ENDPOINT_SELECT} WHERE e.name = ?`),
    listEndpoints: db.prepare<[], EndpointRow>(`${ENDPOINT_SELECT} ORDER BY e.name`),
    upsertEndpoint: db.prepare<[{ name: string; spec: string; keys: string; now: string }]>(`
      INSERT INTO endpoints (name, spec, keys, generation, created_at, updated_at)
      VALUES (@name, @spec, @keys, 1, @now, @now)
      ON CONFLICT (name) DO UPDATE SET
        spec = excluded.spec, keys = excluded.keys,
        generation = generation + 1, updated_at = excluded.updated_at`),
    // DO NOTHING keeps an existing record's status: a put never touches observed state.
    insertEndpointStatus: db.prepare<[StatusParams & { name: string }]>(`
      INSERT INTO endpoint_status (endpoint, provisioning_state, error, observed_generation, updated_at)
      VALUES (@name, @state, @error, @observedGeneration, @now)
      ON CONFLICT (endpoint) DO NOTHING`),
    updateEndpointStatus: db.prepare<[StatusParams & { name: string }]>(`
      UPDATE endpoint_status
      SET provisioning_state = @state, error = @error, observed_generation = @observedGeneration, updated_at = @now
      WHERE endpoint = @name`),
    deleteEndpoint: db.prepare<[string]>(`DELETE FROM endpoints WHERE name = ?`),
    endpointExists: db.prepare<[string], number>(`SELECT 1 FROM endpoints WHERE name = ?`).pluck(),

    getDeployment: db.prepare<[string, string], DeploymentRow>(`${DEPLOYMENT_SELECT} WHERE d.endpoint = ? AND d.name = ?`),
    listDeployments: db.prepare<[], DeploymentRow>(`${DEPLOYMENT_SELECT} ORDER BY d.endpoint, d.name`),
    listDeploymentsOf: db.prepare<[string], DeploymentRow>(`${DEPLOYMENT_SELECT} WHERE d.endpoint = ? ORDER BY d.name`),
    upsertDeployment: db.prepare<[{ endpoint: string; name: string; spec: string; now: string }]>(`
      INSERT INTO deployments (endpoint, name, spec, generation, created_at, updated_at)
      VALUES (@endpoint, @name, @spec, 1, @now, @now)
      ON CONFLICT (endpoint, name) DO UPDATE SET
        spec = excluded.spec, generation = generation + 1, updated_at = excluded.updated_at`),
    insertDeploymentStatus: db.prepare<[StatusParams & { endpoint: string; name: string }]>(`
      INSERT INTO deployment_status (endpoint, name, provisioning_state, error, observed_generation, updated_at)
      VALUES (@endpoint, @name, @state, @error, @observedGeneration, @now)
      ON CONFLICT (endpoint, name) DO NOTHING`),
    updateDeploymentStatus: db.prepare<[StatusParams & { endpoint: string; name: string }]>(`
      UPDATE deployment_status
      SET provisioning_state = @state, error = @error, observed_generation = @observedGeneration, updated_at = @now
      WHERE endpoint = @endpoint AND name = @name`),
    deleteDeployment: db.prepare<[string, string]>(`DELETE FROM deployments WHERE endpoint = ? AND name = ?`),

    getAsset: db.prepare<[string, string, string], AssetRow>(`SELECT kind, asset, anonymous, archived, created_at, updated_at FROM assets WHERE kind = ? AND name = ? AND version = ?`),
    listAssets: db.prepare<[string], AssetRow>(`SELECT kind, asset, anonymous, archived, created_at, updated_at FROM assets WHERE kind = ? ORDER BY name, rowid`),
    listAssetsOf: db.prepare<[string, string], AssetRow>(`SELECT kind, asset, anonymous, archived, created_at, updated_at FROM assets WHERE kind = ? AND name = ? ORDER BY rowid`),
    insertAsset: db.prepare<[{ kind: string; name: string; version: string; asset: string; anonymous: number; now: string }]>(`
      INSERT INTO assets (kind, name, version, asset, anonymous, archived, created_at, updated_at)
      VALUES (@kind, @name, @version, @asset, @anonymous, 0, @now, @now)
      ON CONFLICT (kind, name, version) DO NOTHING`),
    archiveAsset: db.prepare<[{ kind: string; name: string; version: string; archived: number; now: string }]>(`
      UPDATE assets SET archived = @archived, updated_at = @now WHERE kind = @kind AND name = @name AND version = @version`),

    getToken: db.prepare<[string], TokenRow>(`SELECT * FROM tokens WHERE id = ?`),
    listTokens: db.prepare<[], TokenRow>(`SELECT * FROM tokens ORDER BY rowid`),
    insertToken: db.prepare<[{ id: string; role: string; hash: string; description: string | null; now: string; expiresAt: string | null }]>(`
      INSERT INTO tokens (id, role, hash, description, created_at, expires_at) VALUES (@id, @role, @hash, @description, @now, @expiresAt)`),
    deleteToken: db.prepare<[string]>(`DELETE FROM tokens WHERE id = ?`),
    touchToken: db.prepare<[string, string]>(`UPDATE tokens SET last_used_at = ? WHERE id = ?`),

    getCompute: db.prepare<[string], ComputeRow>(`SELECT * FROM computes WHERE name = ?`),
    listComputes: db.prepare<[], ComputeRow>(`SELECT * FROM computes ORDER BY name`),
    insertCompute: db.prepare<[{ name: string; type: string; kubeconfig: string; context: string | null; namespace: string; registry: string | null; description: string | null; now: string }]>(`
      INSERT INTO computes (name, type, kubeconfig, context, namespace, registry, description, created_at, updated_at)
      VALUES (@name, @type, @kubeconfig, @context, @namespace, @registry, @description, @now, @now)
      ON CONFLICT (name) DO NOTHING`),
    deleteCompute: db.prepare<[string]>(`DELETE FROM computes WHERE name = ?`),

    getAutoscale: db.prepare<[string], AutoscaleRow>(`SELECT * FROM autoscale_settings WHERE name = ?`),
    autoscaleOf: db.prepare<[string, string], AutoscaleRow>(`SELECT * FROM autoscale_settings WHERE endpoint = ? AND deployment = ?`),
    listAutoscale: db.prepare<[], AutoscaleRow>(`SELECT * FROM autoscale_settings ORDER BY name`),
    deploymentExists: db.prepare<[string, string], number>(`SELECT 1 FROM deployments WHERE endpoint = ? AND name = ?`).pluck(),
    upsertAutoscale: db.prepare<[{ name: string; endpoint: string; deployment: string; setting: string; now: string }]>(`
      INSERT INTO autoscale_settings (name, endpoint, deployment, setting, created_at, updated_at)
      VALUES (@name, @endpoint, @deployment, @setting, @now, @now)
      ON CONFLICT (name) DO UPDATE SET
        endpoint = excluded.endpoint, deployment = excluded.deployment, setting = excluded.setting, updated_at = excluded.updated_at`),
    deleteAutoscale: db.prepare<[string]>(`DELETE FROM autoscale_settings WHERE name = ?`),
    // The stored spelling of the name, so an event written as 'MySetting' joins 'mysetting'.
    autoscaleName: db.prepare<[string], string>(`SELECT name FROM autoscale_settings WHERE name = ?`).pluck(),
    insertEvent: db.prepare<[string, string]>(`INSERT INTO autoscale_events (setting, event) VALUES (?, ?)`),
    // Keeps the newest `keep` of one setting: everything at or below the (keep+1)-th newest id goes.
    trimEvents: db.prepare<[{ setting: string; keep: number }]>(`
      DELETE FROM autoscale_events WHERE setting = @setting AND id <= (
        SELECT id FROM autoscale_events WHERE setting = @setting ORDER BY id DESC LIMIT 1 OFFSET @keep)`),
    listEvents: db.prepare<[string], string>(`SELECT event FROM autoscale_events WHERE setting = ? ORDER BY id`).pluck(),
    listNewestEvents: db.prepare<[string, number], string>(`
      SELECT event FROM (SELECT id, event FROM autoscale_events WHERE setting = ? ORDER BY id DESC LIMIT ?) ORDER BY id`).pluck(),
  };
}

export class SqliteStateStore implements StateStore {
  private readonly clock: Clock;
  /** Runs its argument in a transaction; a nested call becomes a savepoint (better-sqlite3 does this). */
  private readonly tx: (fn: () => unknown) => unknown;
  /** Prepared once when the store opens, reused for its life. */
  private readonly stmt: Statements;

  /** Opens (creating if needed) the database file and migrates it. ':memory:' works too. */
  static open(file: string, options: StoreOptions = {}): SqliteStateStore {
    // The file holds endpoint keys: create it owner-only. SQLite gives -wal and -shm the same mode.
    if (file !== ':memory:') closeSync(openSync(file, 'a', 0o600));
    const db = new Database(file);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL'); // durable across process crashes; WAL makes it safe
      db.pragma('foreign_keys = ON'); // the cascades depend on it (better-sqlite3 defaults it on; we say so anyway)
      db.pragma('busy_timeout = 5000'); // a second process (router, CLI) may hold the write lock briefly
      migrate(db);
      return new SqliteStateStore(db, options);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  private constructor(
    private readonly db: Database.Database,
    options: StoreOptions,
  ) {
    this.clock = options.clock ?? (() => new Date());
    // IMMEDIATE takes the write lock up front, so a read-then-write transaction cannot deadlock
    // with another process and fail with SQLITE_BUSY despite the busy timeout.
    this.tx = db.transaction((fn: () => unknown) => {
      const result = fn();
      assertNotPromise(result);
      return result;
    }).immediate;
    this.stmt = prepareStatements(db);
  }

  getEndpoint(name: string): StoredEndpoint | undefined {
    const row = this.stmt.getEndpoint.get(name);
    return row && toEndpoint(row);
  }

  listEndpoints(): StoredEndpoint[] {
    return this.stmt.listEndpoints.all().map(toEndpoint);
  }

  putEndpoint(spec: EndpointSpec, keys: EndpointKeys, status: InitialStatus = INITIAL_STATUS): StoredEndpoint {
    return this.transaction(() => {
      const now = timestamp(this.clock);
      this.stmt.upsertEndpoint.run({ name: spec.name, spec: JSON.stringify(spec), keys: JSON.stringify(keys), now });
      this.stmt.insertEndpointStatus.run({ name: spec.name, ...statusParams({ ...status, observedGeneration: 0 }, now) });
      return this.getEndpoint(spec.name)!;
    });
  }

  deleteEndpoint(name: string): boolean {
    return this.stmt.deleteEndpoint.run(name).changes > 0;
  }

  setEndpointStatus(name: string, status: Omit<ObservedStatus, 'updatedAt'>): void {
    // UPDATE, not upsert: a status for a record deleted meanwhile is dropped.
    this.stmt.updateEndpointStatus.run({ name, ...statusParams(status, timestamp(this.clock)) });
  }

  getDeployment(endpoint: string, name: string): StoredDeployment | undefined {
    const row = this.stmt.getDeployment.get(endpoint, name);
    return row && toDeployment(row);
  }

  listDeployments(endpoint?: string): StoredDeployment[] {
    const rows = endpoint === undefined ? this.stmt.listDeployments.all() : this.stmt.listDeploymentsOf.all(endpoint);
    return rows.map(toDeployment);
  }

  putDeployment(spec: DeploymentSpec, status: InitialStatus = INITIAL_STATUS): StoredDeployment {
    return this.transaction(() => {
      // Checked here so the caller gets our error rather than SQLite's FOREIGN KEY constraint failure.
      if (this.stmt.endpointExists.get(spec.endpointName) === undefined) throw endpointNotFound(spec.endpointName);
      const now = timestamp(this.clock);
      const key = { endpoint: spec.endpointName, name: spec.name };
      this.stmt.upsertDeployment.run({ ...key, spec: JSON.stringify(spec), now });
      this.stmt.insertDeploymentStatus.run({ ...key, ...statusParams({ ...status, observedGeneration: 0 }, now) });
      return this.getDeployment(spec.endpointName, spec.name)!;
    });
  }

  deleteDeployment(endpoint: string, name: string): boolean {
    return this.stmt.deleteDeployment.run(endpoint, name).changes > 0;
  }

  setDeploymentStatus(endpoint: string, name: string, status: Omit<ObservedStatus, 'updatedAt'>): void {
    this.stmt.updateDeploymentStatus.run({ endpoint, name, ...statusParams(status, timestamp(this.clock)) });
  }

  getAsset<K extends AssetKind>(kind: K, name: string, version: string): StoredAsset<K> | undefined {
    const row = this.stmt.getAsset.get(kind, name, version);
    return row && toAsset<K>(row);
  }

  listAssets<K extends AssetKind>(kind: K, name?: string): StoredAsset<K>[] {
    const rows = name === undefined ? this.stmt.listAssets.all(kind) : this.stmt.listAssetsOf.all(kind, name);
    return rows.map((r) => toAsset<K>(r));
  }

  putAsset<K extends AssetKind>(kind: K, asset: AssetRecords[K], options: { anonymous?: boolean } = {}): StoredAsset<K> {
    return this.transaction(() => {
      const now = timestamp(this.clock);
      const params = { kind, name: asset.name, version: asset.version, asset: JSON.stringify(asset), anonymous: options.anonymous ? 1 : 0, now };
      if (this.stmt.insertAsset.run(params).changes === 0) throw assetAlreadyExists(kind, asset.name, asset.version);
      return this.getAsset(kind, asset.name, asset.version)!;
    });
  }

  setAssetArchived(kind: AssetKind, name: string, version: string, archived: boolean): boolean {
    return this.stmt.archiveAsset.run({ kind, name, version, archived: archived ? 1 : 0, now: timestamp(this.clock) }).changes > 0;
  }

  putToken(token: Omit<StoredToken, 'createdAt' | 'lastUsedAt'>): StoredToken {
    return this.transaction(() => {
      this.stmt.insertToken.run({ id: token.id, role: token.role, hash: token.hash, description: token.description ?? null, now: timestamp(this.clock), expiresAt: token.expiresAt ?? null });
      return this.getToken(token.id)!;
    });
  }

  getToken(id: string): StoredToken | undefined {
    const row = this.stmt.getToken.get(id);
    return row && toToken(row);
  }

  listTokens(): StoredToken[] {
    return this.stmt.listTokens.all().map(toToken);
  }

  deleteToken(id: string): boolean {
    return this.stmt.deleteToken.run(id).changes > 0;
  }

  touchToken(id: string): void {
    this.stmt.touchToken.run(timestamp(this.clock), id);
  }

  getCompute(name: string): StoredCompute | undefined {
    const row = this.stmt.getCompute.get(name);
    return row && toCompute(row);
  }

  listComputes(): StoredCompute[] {
    return this.stmt.listComputes.all().map(toCompute);
  }

  putCompute(c: Omit<StoredCompute, 'createdAt' | 'updatedAt'>): StoredCompute {
    return this.transaction(() => {
      const params = { name: c.name, type: c.type, kubeconfig: c.kubeconfig, context: c.context ?? null, namespace: c.namespace, registry: c.registry ?? null, description: c.description ?? null, now: timestamp(this.clock) };
      if (this.stmt.insertCompute.run(params).changes === 0) throw errorOf('ComputeAlreadyExists', { compute: c.name });
      return this.getCompute(c.name)!;
    });
  }

  deleteCompute(name: string): boolean {
    return this.stmt.deleteCompute.run(name).changes > 0;
  }

  getAutoscaleSetting(name: string): StoredAutoscaleSetting | undefined {
    const row = this.stmt.getAutoscale.get(name);
    return row && toAutoscale(row);
  }

  listAutoscaleSettings(): StoredAutoscaleSetting[] {
    return this.stmt.listAutoscale.all().map(toAutoscale);
  }

  putAutoscaleSetting(setting: AutoscaleSetting, target: { endpoint: string; deployment: string }): StoredAutoscaleSetting {
    return this.transaction(() => {
      // Checked here so the caller gets our errors rather than SQLite's constraint failures.
      if (this.stmt.deploymentExists.get(target.endpoint, target.deployment) === undefined) {
        throw this.stmt.endpointExists.get(target.endpoint) === undefined ? endpointNotFound(target.endpoint) : deploymentNotFound(target.endpoint, target.deployment);
      }
      const holder = this.stmt.autoscaleOf.get(target.endpoint, target.deployment);
      if (holder && holder.name.toLowerCase() !== setting.name.toLowerCase()) throw autoscaleResourceTaken(target.endpoint, target.deployment, holder.name);
      this.stmt.upsertAutoscale.run({ name: setting.name, ...target, setting: JSON.stringify(setting), now: timestamp(this.clock) });
      return this.getAutoscaleSetting(setting.name)!;
    });
  }

  deleteAutoscaleSetting(name: string): boolean {
    return this.stmt.deleteAutoscale.run(name).changes > 0;
  }

  appendAutoscaleEvent(event: AutoscaleEvent): void {
    this.transaction(() => {
      const name = this.stmt.autoscaleName.get(event.setting);
      if (name === undefined) return;
      this.stmt.insertEvent.run(name, JSON.stringify(event));
      this.stmt.trimEvents.run({ setting: name, keep: AUTOSCALE_HISTORY_LIMIT });
    });
  }

  listAutoscaleEvents(setting: string, limit?: number): AutoscaleEvent[] {
    const rows = limit === undefined ? this.stmt.listEvents.all(setting) : this.stmt.listNewestEvents.all(setting, Math.max(0, Math.floor(limit)));
    return rows.map((e) => JSON.parse(e) as AutoscaleEvent);
  }

  transaction<T>(fn: () => T): T {
    return this.tx(fn) as T;
  }

  close(): void {
    this.db.close();
  }
}

function statusParams(status: Omit<ObservedStatus, 'updatedAt'>, now: string): StatusParams {
  return {
    state: status.provisioningState,
    error: status.error ? JSON.stringify({ code: status.error.code, message: status.error.message }) : null,
    observedGeneration: status.observedGeneration,
    now,
  };
}

function toStatus(row: StatusRow): ObservedStatus {
  return {
    provisioningState: row.provisioning_state as ProvisioningState,
    ...(row.error !== null ? { error: JSON.parse(row.error) } : {}),
    observedGeneration: row.observed_generation,
    updatedAt: row.status_updated_at,
  };
}

function toEndpoint(row: EndpointRow): StoredEndpoint {
  return {
    spec: JSON.parse(row.spec),
    keys: JSON.parse(row.keys),
    generation: row.generation,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    status: toStatus(row),
  };
}

function toDeployment(row: DeploymentRow): StoredDeployment {
  return {
    spec: JSON.parse(row.spec),
    generation: row.generation,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
    status: toStatus(row),
  };
}

function toToken(row: TokenRow): StoredToken {
  return {
    id: row.id,
    role: row.role as Role,
    hash: row.hash,
    ...(row.description !== null ? { description: row.description } : {}),
    createdAt: row.created_at,
    ...(row.expires_at !== null ? { expiresAt: row.expires_at } : {}),
    ...(row.last_used_at !== null ? { lastUsedAt: row.last_used_at } : {}),
  };
}

function toAsset<K extends AssetKind>(row: AssetRow): StoredAsset<K> {
  return {
    kind: row.kind as K,
    asset: JSON.parse(row.asset),
    anonymous: row.anonymous === 1,
    archived: row.archived === 1,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toCompute(row: ComputeRow): StoredCompute {
  return {
    name: row.name,
    type: row.type as StoredCompute['type'],
    kubeconfig: row.kubeconfig,
    ...(row.context !== null ? { context: row.context } : {}),
    namespace: row.namespace,
    ...(row.registry !== null ? { registry: row.registry } : {}),
    ...(row.description !== null ? { description: row.description } : {}),
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

function toAutoscale(row: AutoscaleRow): StoredAutoscaleSetting {
  return { setting: JSON.parse(row.setting), endpoint: row.endpoint, deployment: row.deployment, createdAt: row.created_at, updatedAt: row.updated_at };
}
