// The routes behind `infergate monitor autoscale ...` (issue 12). Bodies are az's flags in snake_case
// (`{ "name", "resource", "min_count", ... }`, `{ "condition": "CpuUtilizationPercentage > 70 avg 5m",
// "scale": "out 2" }`), parsed and validated by autoscale/settings.ts, so the CLI and any other client get
// the same errors; answers are Azure Monitor's AutoscaleSetting JSON, what `az monitor autoscale show` prints.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { AutoscaleSettings, type CreateProfileRequest, type CreateRuleRequest, type CreateSettingRequest, type UpdateSettingRequest } from '../autoscale/settings.js';
import type { StateStore } from '../store/types.js';

export interface AutoscaleApiOptions {
  store: StateStore;
  /** The workspace's name, as resource ids carry it. */
  workspace: string;
  location: string;
}

const READ = { role: 'reader' } as const;
const CHANGE = { role: 'contributor' } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;
const profileParams = { type: 'object', properties: { name: { type: 'string' }, profile: { type: 'string' } }, required: ['name', 'profile'] } as const;
const profileQuery = { type: 'object', properties: { profile: { type: 'string' } } } as const;

type P = { name: string };

/** The audit line names the setting a change concerns (auth.ts records req.auditTarget). */
function audited(req: FastifyRequest, name: unknown): void {
  if (typeof name === 'string' && name !== '') req.auditTarget = { ...req.auditTarget, autoscale_setting: name.slice(0, 256) };
}

export function registerAutoscaleRoutes(app: FastifyInstance, o: AutoscaleApiOptions): AutoscaleSettings {
  const settings = new AutoscaleSettings(o);
  const base = '/api/autoscale';

  app.get(base, { config: READ, schema: { operationId: 'listAutoscaleSettings', tags: ['autoscale'], summary: 'List autoscale settings (az monitor autoscale list)' } }, async () => settings.list());

  app.post(base, { config: CHANGE, schema: { operationId: 'createAutoscaleSetting', tags: ['autoscale'], summary: 'Create an autoscale setting for a deployment: name, resource (the deployment id), min_count, max_count, count', body: anyObject } }, async (req, reply) => {
    const body = req.body as CreateSettingRequest;
    audited(req, body.name);
    return reply.status(201).send(settings.create(body));
  });

  app.get(`${base}/:name`, { config: READ, schema: { operationId: 'showAutoscaleSetting', tags: ['autoscale'], summary: 'Show an autoscale setting', params: nameParams } }, async (req) => settings.get((req.params as P).name));

  app.patch(`${base}/:name`, { config: CHANGE, schema: { operationId: 'updateAutoscaleSetting', tags: ['autoscale'], summary: "Update an autoscale setting: enabled, tags, the default profile's counts", params: nameParams, body: anyObject } }, async (req) => {
    const { name } = req.params as P;
    audited(req, name);
    return settings.update(name, req.body as UpdateSettingRequest);
  });

  app.delete(`${base}/:name`, { config: CHANGE, schema: { operationId: 'deleteAutoscaleSetting', tags: ['autoscale'], summary: 'Delete an autoscale setting and its history', params: nameParams } }, async (req) => {
    const { name } = req.params as P;
    audited(req, name);
    settings.delete(name);
    return { name, deleted: true };
  });

  // ---- rules
  app.get(`${base}/:name/rules`, { config: READ, schema: { operationId: 'listAutoscaleRules', tags: ['autoscale'], summary: "A profile's rules, each with the index rule delete takes", params: nameParams, querystring: profileQuery } }, async (req) =>
    settings.listRules((req.params as P).name, (req.query as { profile?: string }).profile));

  app.post(`${base}/:name/rules`, { config: CHANGE, schema: { operationId: 'createAutoscaleRule', tags: ['autoscale'], summary: 'Add a rule: condition, scale, cooldown, resource, timegrain, profile_name', params: nameParams, body: anyObject } }, async (req, reply) => {
    const { name } = req.params as P;
    audited(req, name);
    return reply.status(201).send(settings.createRule(name, req.body as CreateRuleRequest));
  });

  app.delete(`${base}/:name/rules`, {
    config: CHANGE,
    schema: {
      operationId: 'deleteAutoscaleRules', tags: ['autoscale'], summary: "Delete rules by index (comma-separated, or '*' for all)",
      params: nameParams,
      querystring: { type: 'object', properties: { index: { type: 'string' }, profile: { type: 'string' } }, required: ['index'] },
    },
  }, async (req) => {
    const { name } = req.params as P;
    const q = req.query as { index: string; profile?: string };
    audited(req, name);
    settings.deleteRules(name, { ...(q.profile !== undefined ? { profile_name: q.profile } : {}), index: q.index.trim() === '*' ? '*' : q.index.split(',') });
    return { name, deleted: true };
  });

  // ---- profiles
  app.get(`${base}/:name/profiles`, { config: READ, schema: { operationId: 'listAutoscaleProfiles', tags: ['autoscale'], summary: "An autoscale setting's profiles", params: nameParams } }, async (req) => settings.listProfiles((req.params as P).name));

  app.post(`${base}/:name/profiles`, { config: CHANGE, schema: { operationId: 'createAutoscaleProfile', tags: ['autoscale'], summary: 'Add a recurring (recurrence, timezone, start hh:mm) or fixed-date (start, end, timezone) profile', params: nameParams, body: anyObject } }, async (req, reply) => {
    const { name } = req.params as P;
    audited(req, name);
    return reply.status(201).send(settings.createProfile(name, req.body as CreateProfileRequest));
  });

  app.get(`${base}/:name/profiles/:profile`, { config: READ, schema: { operationId: 'showAutoscaleProfile', tags: ['autoscale'], summary: 'Show a profile', params: profileParams } }, async (req) => {
    const { name, profile } = req.params as { name: string; profile: string };
    return settings.showProfile(name, profile);
  });

  app.delete(`${base}/:name/profiles/:profile`, { config: CHANGE, schema: { operationId: 'deleteAutoscaleProfile', tags: ['autoscale'], summary: 'Delete a profile (not the default one)', params: profileParams } }, async (req) => {
    const { name, profile } = req.params as { name: string; profile: string };
    audited(req, name);
    settings.deleteProfile(name, profile);
    return { name, profile, deleted: true };
  });

  // ---- history
  app.get(`${base}/:name/history`, {
    config: READ,
    schema: { operationId: 'getAutoscaleHistory', tags: ['autoscale'], summary: "The autoscaler's decisions for this setting, oldest first", params: nameParams, querystring: { type: 'object', properties: { limit: { type: 'integer', minimum: 0 } } } },
  }, async (req) => settings.history((req.params as P).name, (req.query as { limit?: number }).limit));

  return settings;
}
