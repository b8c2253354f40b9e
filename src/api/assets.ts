// The routes behind `infergate ml model ...` / `infergate ml environment ...` and what their `show` and
// `list` print. Registration, resolution of a deployment's `model:`, `environment:` and code, anonymous
// assets and the asset store itself are the service layer's (control/assets.ts): each route parses its
// request, calls one AssetRegistry method and shapes the answer.

import type { FastifyInstance } from 'fastify';
import { AssetRegistry, KIND_DIR, type AssetStoreOptions } from '../control/index.js';
import { latestOf } from '../store/index.js';
import type { AssetKind, StateStore, StoredAsset } from '../store/types.js';
import { registerUploadRoutes } from './uploads.js';

export { ANONYMOUS_ENVIRONMENT, ANONYMOUS_MODEL, AssetRegistry } from '../control/index.js';
/** The asset store's options, as buildApi takes them. */
export type AssetApiOptions = AssetStoreOptions;

// ---- what `show` and `list` print ----------------------------------------------------------------------

export interface AssetShowContext {
  /** Workspace name, for ids (as endpoint ids). */
  workspace: string;
}

const assetId = (ctx: AssetShowContext, kind: AssetKind, name: string, version?: string): string =>
  `/workspaces/${ctx.workspace}/${KIND_DIR[kind]}/${name}${version !== undefined ? `/versions/${version}` : ''}`;

const creationContext = (a: StoredAsset) => ({ created_at: a.createdAt, last_modified_at: a.updatedAt });

const sorted = (o: Record<string, unknown>): Record<string, unknown> =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined).sort(([a], [b]) => a.localeCompare(b)));

/** `az ml model show` fields. */
export function showModel(ctx: AssetShowContext, s: StoredAsset<'model'>): Record<string, unknown> {
  const m = s.asset;
  return sorted({
    creation_context: creationContext(s),
    description: m.description,
    flavors: m.flavors,
    id: assetId(ctx, 'model', m.name, m.version),
    name: m.name,
    path: m.path,
    properties: { ...m.properties },
    stage: s.archived ? 'Archived' : 'Development',
    tags: { ...m.tags },
    type: m.type,
    version: m.version,
  });
}

/** `az ml environment show` fields. */
export function showEnvironment(ctx: AssetShowContext, s: StoredAsset<'environment'>): Record<string, unknown> {
  const e = s.asset;
  const route = (r: { port: number; path: string }) => ({ port: r.port, path: r.path });
  return sorted({
    build: e.build && { path: e.build.path, dockerfile_path: e.build.dockerfilePath },
    conda_file: e.conda,
    creation_context: creationContext(s),
    description: e.description,
    id: assetId(ctx, 'environment', e.name, e.version),
    image: e.image,
    inference_config: e.inferenceConfig && {
      liveness_route: route(e.inferenceConfig.livenessRoute),
      readiness_route: route(e.inferenceConfig.readinessRoute),
      scoring_route: route(e.inferenceConfig.scoringRoute),
    },
    name: e.name,
    os_type: e.osType,
    stage: s.archived ? 'Archived' : 'Development',
    tags: { ...e.tags },
    version: e.version,
  });
}

export interface ListOptions {
  name?: string;
  includeArchived?: boolean;
  archivedOnly?: boolean;
  includeAnonymous?: boolean;
}

/**
 * `list`: with a name, that name's versions, newest first; without, one entry per name with its
 * `latest_version` (Azure's model and environment containers), by name. Archived versions are left out
 * unless asked for, and so are anonymous assets (unless asked for, or named).
 */
export function listAssets(ctx: AssetShowContext, store: StateStore, kind: AssetKind, o: ListOptions): Record<string, unknown>[] {
  const keep = (a: StoredAsset) => (o.archivedOnly ? a.archived : o.includeArchived || !a.archived);
  const show = (a: StoredAsset) => (kind === 'model' ? showModel(ctx, a as StoredAsset<'model'>) : showEnvironment(ctx, a as StoredAsset<'environment'>));
  if (o.name !== undefined) return store.listAssets(kind, o.name).filter(keep).reverse().map(show);
  const byName = new Map<string, StoredAsset[]>();
  for (const a of store.listAssets(kind)) {
    if (a.anonymous && !o.includeAnonymous) continue;
    const list = byName.get(a.asset.name) ?? [];
    list.push(a);
    byName.set(a.asset.name, list);
  }
  const out: Record<string, unknown>[] = [];
  for (const [name, versions] of byName) {
    const active = latestOf(versions);
    if (o.archivedOnly ? active !== undefined : !o.includeArchived && active === undefined) continue;
    const latest = active ?? versions[versions.length - 1];
    out.push(
      sorted({
        creation_context: { created_at: versions[0].createdAt, last_modified_at: latest.updatedAt },
        description: latest.asset.description,
        id: assetId(ctx, kind, name),
        latest_version: latest.asset.version,
        name,
        tags: { ...latest.asset.tags },
      }),
    );
  }
  return out;
}

// ---- routes ----------------------------------------------------------------------------------------

const assetParams = { type: 'object', properties: { name: { type: 'string' }, version: { type: 'string' } }, required: ['name', 'version'] } as const;
const labelParams = { type: 'object', properties: { name: { type: 'string' }, label: { type: 'string' } }, required: ['name', 'label'] } as const;
const listQuery = {
  type: 'object',
  properties: { name: { type: 'string' }, include_archived: { type: 'boolean' }, archived_only: { type: 'boolean' }, include_anonymous: { type: 'boolean' } },
} as const;
const anyObject = { type: 'object', additionalProperties: true } as const;

/** Registers `/api/models`, `/api/environments` and the uploads they and deployments refer to (`/api/blobs`). */
export function registerAssetRoutes(app: FastifyInstance, o: AssetShowContext & { store: StateStore }, registry: AssetRegistry): void {
  const { store } = o;
  registerUploadRoutes(app, registry.blobs);
  for (const kind of ['model', 'environment'] as const) {
    const base = `/api/${KIND_DIR[kind]}`;
    const Kind = kind === 'model' ? 'Model' : 'Environment';
    const show = (a: StoredAsset) => (kind === 'model' ? showModel(o, a as StoredAsset<'model'>) : showEnvironment(o, a as StoredAsset<'environment'>));

    app.get(base, { config: { role: 'reader' }, schema: { operationId: `list${Kind}s`, tags: [`${kind}s`], summary: `List ${kind}s (or one ${kind}'s versions)`, querystring: listQuery } }, async (req) => {
      const q = req.query as { name?: string; include_archived?: boolean; archived_only?: boolean; include_anonymous?: boolean };
      return listAssets(o, store, kind, {
        ...(q.name !== undefined ? { name: q.name } : {}),
        includeArchived: q.include_archived === true,
        archivedOnly: q.archived_only === true,
        includeAnonymous: q.include_anonymous === true,
      });
    });

    app.post(base, { config: { role: 'contributor' }, schema: { operationId: `register${Kind}`, tags: [`${kind}s`], summary: `Register a ${kind} version (the ${kind} YAML as JSON; files as upload:sha256:<manifest> references, see POST /api/blobs/missing)`, body: anyObject } }, async (req, reply) =>
      reply.status(201).send(show(await registry.registerDocument(kind, req.body))));

    app.get(`${base}/:name/versions/:version`, { config: { role: 'reader' }, schema: { operationId: `show${Kind}Version`, tags: [`${kind}s`], summary: `Show a ${kind} version`, params: assetParams } }, async (req) => {
      const { name, version } = req.params as { name: string; version: string };
      return show(registry.version(kind, name, version));
    });

    app.get(`${base}/:name/labels/:label`, { config: { role: 'reader' }, schema: { operationId: `show${Kind}ByLabel`, tags: [`${kind}s`], summary: `Show the ${kind} version a label names (latest)`, params: labelParams } }, async (req) => {
      const { name, label } = req.params as { name: string; label: string };
      return show(registry.byLabel(kind, name, label));
    });

    for (const [verb, archived] of [['archive', true], ['restore', false]] as const) {
      app.post(`${base}/:name/versions/:version/${verb}`, { config: { role: 'contributor' }, schema: { operationId: `${verb}${Kind}Version`, tags: [`${kind}s`], summary: `${verb === 'archive' ? 'Archive' : 'Restore'} a ${kind} version`, params: assetParams } }, async (req) => {
        const { name, version } = req.params as { name: string; version: string };
        return show(registry.setArchived(kind, name, version, archived));
      });
    }
  }
}
