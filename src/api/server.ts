// The control-plane REST API (DESIGN.md "api/"). Request bodies are the Azure ML YAML documents as JSON
// (snake_case, the shape users already know; file paths absolute); responses are what `az ml ... show`
// prints. Errors are `{ "error": { "code", "message", "details" } }` with codes from the one catalogue.

import { randomBytes, randomUUID } from 'node:crypto';
import swagger from '@fastify/swagger';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { compileInstancePlan } from '../compile/index.js';
import { InfergateError, validationError } from '../errors/index.js';
import type { Controller } from '../reconcile/index.js';
import { dumpDeployment, dumpEndpoint, parseDeploymentObject, parseEndpointObject } from '../spec/index.js';
import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';
import type { EndpointKeys, Role, StateStore, StoredDeployment, StoredEndpoint, StoredToken } from '../store/types.js';
import { registry } from '../telemetry/metrics.js';
import { issueToken } from '../util/token.js';
import { MAX_NESTING } from '../util/yaml.js';
import { showDeployment, showEndpoint, type ScoringUriOf, type ShowContext } from './show.js';
import { AssetRegistry, registerAssetRoutes, type AssetApiOptions } from './assets.js';
import type { AuditLog } from './audit.js';
import { allowedHostNames, createToken, FailedAuthLimiter, installAccessControl, parseDuration, ROLES } from './auth.js';

export interface ApiOptions extends ShowContext, AssetApiOptions {
  store: StateStore;
  controller: Controller;
  logs: (endpoint: string, deployment: string, container: 'inference-server' | 'storage-initializer', lines: number) => Promise<string>;
  version: string;
  /** Local mode: each endpoint's own scoring URI (contract §2.4). */
  scoringUriOf?: ScoringUriOf;
  /** Azure's limit is 20 deployments per endpoint (contract §1.8). */
  maxDeploymentsPerEndpoint?: number;
  /** Serve HTTPS with this certificate and key (PEM); `app.server.setSecureContext()` swaps them (SIGHUP). */
  https?: import('node:tls').SecureContextOptions;
  /** Connection limits and timeouts of the API's HTTP server (defaults: API_HTTP_LIMITS). */
  http?: Partial<ApiHttpLimits>;
  /** The address the API listens on (its own name in the Host check); default 127.0.0.1. */
  apiHost?: string;
  /** More names the Host header may carry (`--api-allowed-host`: a DNS name or proxy name of this machine). */
  allowedHosts?: readonly string[];
  /** Where every change and credential read is recorded (`<workspace>/logs/audit.jsonl`). */
  audit?: AuditLog;
  /** The server log: details of 500s (the client gets only a request id), refused routes. */
  log?: (line: string) => void;
  /** Failed authentications allowed per client address in a window before 429 (default 20 a minute). */
  failedAuth?: { maxFailures?: number; windowMs?: number };
  /** Clock for token expiry (tests). */
  now?: () => number;
}

/**
 * The control plane's HTTP server against clients that connect and stall or send garbage. Node's own
 * defaults (headers 60 s, request 300 s, checked every 30 s, unlimited connections) would let a header
 * slowloris hold fds for minutes; these cut it within seconds, in the spirit of nginx's
 * client_header_timeout / client_body_timeout and Kestrel's RequestHeadersTimeout and MaxConcurrentConnections.
 */
export interface ApiHttpLimits {
  /** Whole header section, from the connection's first byte (Node `headersTimeout`). */
  headersTimeoutMs: number;
  /** Whole request, headers and body (Node `requestTimeout`); bodies are at most bodyLimitBytes. */
  requestTimeoutMs: number;
  /** How often Node checks the two above (Node `connectionsCheckingInterval`). */
  checkIntervalMs: number;
  /**
   * A socket with no traffic either way (Fastify `connectionTimeout`). Long: a create that copies a large
   * model into the asset store sends nothing until it is done.
   */
  idleTimeoutMs: number;
  /** An idle keep-alive connection is closed after this (Node's default; Fastify's is 72 s). */
  keepAliveTimeoutMs: number;
  /** Requests served on one connection before it is closed (Fastify `maxRequestsPerSocket`). */
  maxRequestsPerSocket: number;
  /** Connections at once; more are closed as they arrive (net.Server `maxConnections`). */
  maxConnections: number;
  /** Largest request body (JSON documents; the files they name are read by path, not sent). */
  bodyLimitBytes: number;
}

export const API_HTTP_LIMITS: ApiHttpLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  checkIntervalMs: 1_000,
  idleTimeoutMs: 10 * 60_000,
  keepAliveTimeoutMs: 5_000,
  maxRequestsPerSocket: 1_000,
  maxConnections: 1_024,
  bodyLimitBytes: 10 * 1024 * 1024,
};

/**
 * The deepest nesting of arrays and objects in JSON text, stopping as soon as it passes `limit`. One
 * linear pass, no recursion: it runs before JSON.parse, so that nothing after it (validation walks,
 * fromValue, --set overrides) recurses through 100,000 levels and ends in a RangeError (a 500).
 */
export function jsonNestingExceeds(text: string, limit: number): boolean {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: the next character is escaped
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > limit) return true;
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return false;
}

export function newKeys(): EndpointKeys {
  return { primaryKey: randomBytes(24).toString('base64url'), secondaryKey: randomBytes(24).toString('base64url'), tokenSecret: randomBytes(32).toString('base64url') };
}

const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;
const depParams = { type: 'object', properties: { name: { type: 'string' }, deployment: { type: 'string' } }, required: ['name', 'deployment'] } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const tokenParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;

/** What `token list` shows of a token: never its hash, and the secret is not stored at all. */
function showToken(t: StoredToken): Record<string, unknown> {
  return {
    id: t.id,
    role: t.role,
    description: t.description ?? null,
    created_at: t.createdAt,
    expires_at: t.expiresAt ?? null,
    last_used_at: t.lastUsedAt ?? null,
  };
}

// Route access (config.role), after Azure's built-in roles: reader reads (never keys or tokens),
// contributor changes endpoints, deployments and assets and reads keys, owner also manages tokens.
const READ = { role: 'reader' } as const;
const CHANGE = { role: 'contributor' } as const;
const CREDENTIAL = { role: 'contributor', credential: true } as const;
const OWNER = { role: 'owner' } as const;

export async function buildApi(o: ApiOptions): Promise<FastifyInstance> {
  const limits = { ...API_HTTP_LIMITS, ...o.http };
  const log = o.log ?? (() => {});
  const app = Fastify({
    logger: false,
    // Unguessable, so a request id in an answer says nothing about the server's other traffic.
    genReqId: () => randomUUID(),
    bodyLimit: limits.bodyLimitBytes,
    connectionTimeout: limits.idleTimeoutMs,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    maxRequestsPerSocket: limits.maxRequestsPerSocket,
    http: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs },
    // HTTPS (util/tls.ts): Fastify then builds https.createServer(options.https) and ignores `http`, so the
    // same limits go along. The http.Server type is kept: an https.Server is one.
    ...(o.https ? ({ https: { headersTimeout: limits.headersTimeoutMs, connectionsCheckingInterval: limits.checkIntervalMs, ...o.https } } as object) : {}),
    // A URL Fastify cannot decode, answered in our error shape rather than Fastify's.
    frameworkErrors: (error, _req, reply) => {
      void (reply as FastifyReply).status(400).send({ error: { code: 'BadArgument', message: error.message } });
    },
  });
  app.server.maxConnections = limits.maxConnections;
  // Before any route: from here on a route without config.role cannot be registered (auth.ts).
  installAccessControl(app, {
    store: o.store,
    hosts: allowedHostNames(o.apiHost ?? '127.0.0.1', o.allowedHosts),
    limiter: new FailedAuthLimiter(o.failedAuth?.maxFailures, o.failedAuth?.windowMs, undefined, o.now),
    audit: o.audit,
    log,
    ...(o.now ? { now: o.now } : {}),
  });
  // JSON bodies: nesting checked before parsing (jsonNestingExceeds), then Fastify's own parser (which
  // refuses __proto__ keys and answers malformed JSON with a 400).
  const parseJson = app.getDefaultJsonParser('error', 'ignore');
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (req, body, done) => {
    if (jsonNestingExceeds(body as string, MAX_NESTING)) {
      done(new InfergateError('BodyTooDeep', `The JSON request body nests arrays or objects more than ${MAX_NESTING} levels deep.`), undefined);
      return;
    }
    parseJson(req, body as string, done);
  });
  await app.register(swagger, {
    openapi: {
      info: { title: 'infergate control plane', version: o.version, description: 'Endpoints and deployments, Azure ML managed online endpoint compatible.' },
    },
  });

  app.setErrorHandler((error, req, reply) => {
    if (error instanceof InfergateError) return reply.status(error.status).send(error.toBody());
    const e = error as { validation?: unknown; statusCode?: number; message: string; code?: string };
    if (e.validation || (e.statusCode && e.statusCode < 500)) {
      // Fastify's own 4xx: malformed or empty JSON (400), an unsupported Content-Type (415), a body over
      // the limit or a bad Content-Length (413, 400): the client's mistake, coded, never a 500.
      const code = e.statusCode === 413 ? 'BodyTooLarge' : 'BadArgument';
      return reply.status(e.statusCode ?? 400).send({ error: { code, message: e.message } });
    }
    // A stack overflow is input too deep for a walk that recurses (a guard missed it): still the client's.
    if (error instanceof RangeError && /call stack/.test(error.message)) {
      return reply.status(400).send({ error: { code: 'BodyTooDeep', message: 'The request is nested too deeply to process.' } });
    }
    // Anything else is ours: the client gets a coded message and the request id, never the error's own
    // message or stack (they can name paths, SQL or internals); the server log gets the details.
    log(`request ${req.id} ${req.method} ${req.routeOptions.url ?? req.url}: internal error: ${(error as Error).stack ?? e.message}`);
    return reply.status(500).send({
      error: { code: 'InternalError', message: `An unexpected error occurred in the control plane (request id ${req.id}); the details are in the server log.`, details: [{ request_id: req.id }] },
    });
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send({ error: { code: 'RouteNotFound', message: `No route ${req.method} ${req.url}` } }));

  const { store, controller } = o;
  const assets = new AssetRegistry(store, o.assetsDir, o); // o: blobsDir, maxUploadBytes (api/uploads.ts)
  const endpointOr404 = (name: string): StoredEndpoint => {
    const e = store.getEndpoint(name);
    if (!e) throw new InfergateError('EndpointNotFound', `Endpoint '${name}' not found.`);
    return e;
  };
  const deploymentOr404 = (endpoint: string, name: string): StoredDeployment => {
    const d = store.getDeployment(endpoint, name);
    if (!d) throw new InfergateError('DeploymentNotFound', `Deployment '${name}' not found in endpoint '${endpoint}'.`);
    return d;
  };
  const showE = async (e: StoredEndpoint) => showEndpoint(o, e, store.listDeployments(e.spec.name), o.scoringUriOf ? await o.scoringUriOf(e.spec.name) : undefined);
  const parseEndpoint = (body: unknown): EndpointSpec => {
    const { spec, problems } = parseEndpointObject(body, { source: 'request body' });
    if (!spec || problems.length) throw validationError(problems, 'The endpoint');
    if (spec.authMode === 'aad_token') {
      throw new InfergateError('BadArgument', "auth_mode 'aad_token' needs Microsoft Entra ID, which infergate does not use; use 'key' or 'aml_token'.");
    }
    return spec;
  };
  const parseDeployment = async (body: unknown, previous?: DeploymentSpec): Promise<DeploymentSpec> => {
    // No server paths (spec/paths.ts), except, for `update --set` without -f, those the server stored
    // itself for this deployment before uploads existed: unchanged, they are kept and never opened.
    const storedPaths = previous ? stringsOf(previous) : undefined;
    const { spec, problems } = parseDeploymentObject(body, { source: 'request body', paths: 'uploads', ...(storedPaths ? { storedPaths } : {}) });
    if (!spec || problems.length) throw validationError(problems, 'The deployment');
    const resolved = await assets.resolveDeployment(spec, previous); // model/environment/code versions recorded now (api/assets.ts)
    compileInstancePlan(resolved, assets.lookup); // refuses what validates but cannot run here, before anything is stored
    return resolved;
  };

  app.get('/healthz', { config: { role: 'public' }, schema: { summary: 'Liveness of the control plane (no token needed)' } }, async () => ({ status: 'Healthy' }));

  app.get('/api/info', { config: READ, schema: { summary: 'Server version and where the router listens' } }, async () => ({
    version: o.version,
    router_url: o.routerUrl,
    workspace: o.workspace,
  }));

  // ---- endpoints
  app.get('/api/endpoints', { config: READ, schema: { summary: 'List endpoints' } }, async () => Promise.all(store.listEndpoints().map(showE)));

  app.post('/api/endpoints', { config: CHANGE, schema: { summary: 'Create an endpoint', body: anyObject } }, async (req, reply) => {
    const spec = parseEndpoint(req.body);
    if (store.getEndpoint(spec.name)) {
      throw new InfergateError('EndpointAlreadyExists', `Endpoint '${spec.name}' already exists. If you want to update it, use 'infergate ml online-endpoint update'.`);
    }
    // Deployments must exist before traffic can point at them (contract §3).
    if (Object.keys(spec.traffic).length || Object.keys(spec.mirrorTraffic).length) {
      throw new InfergateError('InvalidTraffic', "traffic and mirror_traffic can't be set when an endpoint is created; create the deployments first, then use 'online-endpoint update --traffic'.");
    }
    store.putEndpoint(spec, newKeys(), { provisioningState: 'Creating' });
    await controller.kick();
    return reply.status(201).send(await showE(endpointOr404(spec.name)));
  });

  app.get('/api/endpoints/:name', { config: READ, schema: { summary: 'Show an endpoint', params: nameParams } }, async (req) => showE(endpointOr404((req.params as { name: string }).name)));

  app.get('/api/endpoints/:name/document', { config: READ, schema: { summary: 'The endpoint as a YAML-shaped document (for update)', params: nameParams } }, async (req) =>
    dumpEndpoint(endpointOr404((req.params as { name: string }).name).spec));

  app.put('/api/endpoints/:name', { config: CHANGE, schema: { summary: 'Update an endpoint (whole document)', params: nameParams, body: anyObject } }, async (req) => {
    const { name } = req.params as { name: string };
    const current = endpointOr404(name);
    if (current.status.provisioningState === 'Deleting') throw new InfergateError('OperationInProgress', `Endpoint '${name}' is being deleted.`);
    const spec = parseEndpoint(req.body);
    if (spec.name !== name) throw new InfergateError('BadArgument', `The document names endpoint '${spec.name}' but the request is for '${name}'.`);
    checkTraffic(spec, store.listDeployments(name));
    store.transaction(() => {
      store.putEndpoint(spec, current.keys);
      store.setEndpointStatus(name, { provisioningState: 'Updating', observedGeneration: current.generation });
    });
    await controller.kick();
    return showE(endpointOr404(name));
  });

  app.delete('/api/endpoints/:name', { config: CHANGE, schema: { summary: 'Delete an endpoint and all its deployments', params: nameParams } }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const e = endpointOr404(name);
    store.transaction(() => {
      store.setEndpointStatus(name, { provisioningState: 'Deleting', observedGeneration: e.generation });
      for (const d of store.listDeployments(name)) store.setDeploymentStatus(name, d.spec.name, { provisioningState: 'Deleting', observedGeneration: d.generation });
    });
    await controller.kick();
    const left = store.getEndpoint(name);
    return reply.status(left ? 202 : 200).send(left ? await showE(left) : { name, provisioning_state: 'Deleted' });
  });

  app.post('/api/endpoints/:name/credentials', { config: CREDENTIAL, schema: { summary: 'Keys (key auth) or a token (aml_token auth)', params: nameParams } }, async (req) => {
    const e = endpointOr404((req.params as { name: string }).name);
    if (e.spec.authMode === 'key') return { primaryKey: e.keys.primaryKey, secondaryKey: e.keys.secondaryKey };
    return issueToken(e.spec.name, e.keys.tokenSecret);
  });

  app.post('/api/endpoints/:name/regenerate-keys', { config: CREDENTIAL, schema: { summary: 'Regenerate the primary or secondary key', params: nameParams, body: anyObject } }, async (req) => {
    const e = endpointOr404((req.params as { name: string }).name);
    const keyType = String((req.body as { key_type?: unknown } | undefined)?.key_type ?? 'primary').toLowerCase();
    // `token` is infergate's addition (Azure has no verb for it): it rotates an aml_token endpoint's signing
    // key, so every token issued before stops working at once (util/token.ts).
    if (keyType === 'token') {
      if (e.spec.authMode === 'key') throw new InfergateError('BadArgument', `Endpoint '${e.spec.name}' uses keys: --key-type token rotates the token signing key of aml_token endpoints.`);
    } else if (keyType !== 'primary' && keyType !== 'secondary') throw new InfergateError('KeyTypeInvalid', "Key type must be 'primary' or 'secondary'.");
    else if (e.spec.authMode !== 'key') throw new InfergateError('NotKeyAuth', `Endpoint '${e.spec.name}' does not use keys for authentication. Its token signing key is rotated with --key-type token.`);
    const fresh = newKeys();
    const keys: EndpointKeys = { ...e.keys, ...(keyType === 'primary' ? { primaryKey: fresh.primaryKey } : keyType === 'secondary' ? { secondaryKey: fresh.secondaryKey } : { tokenSecret: fresh.tokenSecret }) };
    store.transaction(() => {
      store.putEndpoint(e.spec, keys);
    });
    await controller.kick();
    return { key_type: keyType, regenerated: true };
  });

  // ---- deployments
  app.get('/api/endpoints/:name/deployments', { config: READ, schema: { summary: 'List deployments', params: nameParams } }, async (req) => {
    const { name } = req.params as { name: string };
    endpointOr404(name);
    return store.listDeployments(name).map((d) => showDeployment(o, d));
  });

  app.post('/api/endpoints/:name/deployments', { config: CHANGE, schema: { summary: 'Create a deployment', params: nameParams, body: anyObject } }, async (req, reply) => {
    const { name } = req.params as { name: string };
    const e = endpointOr404(name);
    if (e.status.provisioningState === 'Deleting') throw new InfergateError('OperationInProgress', `Endpoint '${name}' is being deleted.`);
    const spec = await parseDeployment(req.body);
    if (spec.endpointName !== name) throw new InfergateError('BadArgument', `The document names endpoint '${spec.endpointName}' but the request is for '${name}'.`);
    const existing = store.listDeployments(name);
    if (existing.some((d) => d.spec.name.toLowerCase() === spec.name.toLowerCase())) {
      throw new InfergateError('DeploymentAlreadyExists', `Deployment '${spec.name}' already exists in endpoint '${name}'. If you want to update it, use 'infergate ml online-deployment update'.`);
    }
    const max = o.maxDeploymentsPerEndpoint ?? 20;
    if (existing.length >= max) throw new InfergateError('TooManyDeployments', `Endpoint '${name}' has ${existing.length} deployments, the most allowed (${max}).`);
    store.putDeployment(spec, { provisioningState: 'Creating' });
    await controller.kick();
    return reply.status(201).send(showDeployment(o, deploymentOr404(name, spec.name)));
  });

  app.get('/api/endpoints/:name/deployments/:deployment', { config: READ, schema: { summary: 'Show a deployment', params: depParams } }, async (req) => {
    const { name, deployment } = req.params as { name: string; deployment: string };
    endpointOr404(name);
    return showDeployment(o, deploymentOr404(name, deployment));
  });

  app.get('/api/endpoints/:name/deployments/:deployment/document', { config: READ, schema: { summary: 'The deployment as a YAML-shaped document (for update)', params: depParams } }, async (req) => {
    const { name, deployment } = req.params as { name: string; deployment: string };
    return dumpDeployment(deploymentOr404(name, deployment).spec);
  });

  app.put('/api/endpoints/:name/deployments/:deployment', {
    config: CHANGE,
    schema: {
      summary: 'Update a deployment (whole document)',
      params: depParams,
      body: anyObject,
      querystring: { type: 'object', properties: { keep_assets: { type: 'string', enum: ['true', 'false'], description: 'the document is the stored one with overrides: references left as they were keep their resolved versions and code snapshot' } } },
    },
  }, async (req) => {
    const { name, deployment } = req.params as { name: string; deployment: string };
    endpointOr404(name);
    const current = deploymentOr404(name, deployment);
    if (current.status.provisioningState === 'Deleting') throw new InfergateError('OperationInProgress', `Deployment '${deployment}' is being deleted.`);
    // keep_assets=true: the document is the stored one with overrides (CLI update without -f).
    const keep = (req.query as { keep_assets?: string }).keep_assets === 'true';
    const spec = await parseDeployment(req.body, keep ? current.spec : undefined);
    if (spec.endpointName !== name || spec.name !== current.spec.name) {
      throw new InfergateError('BadArgument', `The document names deployment '${spec.endpointName}/${spec.name}' but the request is for '${name}/${current.spec.name}'.`);
    }
    const scaleOnly = compileInstancePlan(spec, assets.lookup).revision === compileInstancePlan(current.spec, assets.lookup).revision;
    const stored = store.transaction(() => {
      const d = store.putDeployment(spec);
      store.setDeploymentStatus(name, spec.name, { provisioningState: scaleOnly && current.status.provisioningState !== 'Failed' ? 'Scaling' : 'Updating', observedGeneration: current.generation });
      return d;
    });
    // Updating a Failed deployment retries it, even with nothing changed.
    if (current.status.provisioningState === 'Failed') await controller.retry(name, spec.name);
    await controller.kick();
    return showDeployment(o, deploymentOr404(name, stored.spec.name));
  });

  app.delete('/api/endpoints/:name/deployments/:deployment', { config: CHANGE, schema: { summary: 'Delete a deployment', params: depParams } }, async (req, reply) => {
    const { name, deployment } = req.params as { name: string; deployment: string };
    const e = endpointOr404(name);
    const d = deploymentOr404(name, deployment);
    const lower = d.spec.name.toLowerCase();
    if ((e.spec.traffic[lower] ?? 0) > 0 || (e.spec.mirrorTraffic[lower] ?? 0) > 0) {
      throw new InfergateError('DeploymentHasTraffic', `Deployment '${d.spec.name}' has traffic (${e.spec.traffic[lower] ?? 0}% live, ${e.spec.mirrorTraffic[lower] ?? 0}% mirror); set it to 0 with 'online-endpoint update --traffic' before deleting it.`);
    }
    store.setDeploymentStatus(name, d.spec.name, { provisioningState: 'Deleting', observedGeneration: d.generation });
    await controller.kick();
    const left = store.getDeployment(name, d.spec.name);
    return reply.status(left ? 202 : 200).send(left ? showDeployment(o, left) : { name: d.spec.name, provisioning_state: 'Deleted' });
  });

  app.get('/api/endpoints/:name/deployments/:deployment/logs', {
    config: READ,
    schema: {
      summary: "A deployment's console or storage-initializer log",
      params: depParams,
      querystring: { type: 'object', properties: { container: { type: 'string' }, lines: { type: 'integer', minimum: 0 } } },
    },
  }, async (req, reply) => {
    const { name, deployment } = req.params as { name: string; deployment: string };
    const q = req.query as { container?: string; lines?: number };
    endpointOr404(name);
    const d = deploymentOr404(name, deployment);
    const container = (q.container ?? 'inference-server').toLowerCase();
    if (container !== 'inference-server' && container !== 'storage-initializer') {
      throw new InfergateError('BadArgument', `Invalid container type '${q.container}'. Supported container types are inference-server and storage-initializer`);
    }
    const text = await o.logs(name, d.spec.name, container, q.lines ?? 5000);
    return reply.type('text/plain; charset=utf-8').send(text);
  });

  // ---- control-plane tokens (owner only; `whoami` for any valid token)
  app.get('/api/whoami', { config: READ, schema: { summary: 'The token this request authenticated with (id, role, expiry)' } }, async (req) => {
    const t = store.getToken(req.principal!.id);
    return { token_id: req.principal!.id, role: req.principal!.role, expires_at: t?.expiresAt ?? null };
  });

  app.get('/api/tokens', { config: OWNER, schema: { summary: 'List control-plane tokens (never their secrets)' } }, async () => store.listTokens().map(showToken));

  app.post('/api/tokens', {
    config: OWNER,
    schema: {
      summary: 'Create a control-plane token; the answer is the only time its secret is shown',
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['role'],
        properties: { role: { type: 'string', enum: [...ROLES] }, expires_in: { type: 'string', maxLength: 32 }, description: { type: 'string', maxLength: 256 } },
      },
    },
  }, async (req, reply) => {
    const body = req.body as { role: Role; expires_in?: string; description?: string };
    const expiresInSeconds = body.expires_in !== undefined ? parseDuration(body.expires_in) : undefined;
    const { token, record } = createToken(store, {
      role: body.role,
      ...(expiresInSeconds !== undefined ? { expiresInSeconds } : {}),
      ...(body.description !== undefined ? { description: body.description } : {}),
    }, o.now?.());
    req.auditTarget = { target_token: record.id, target_role: record.role };
    return reply.status(201).send({ ...showToken(record), token });
  });

  app.delete('/api/tokens/:id', { config: OWNER, schema: { summary: 'Revoke a control-plane token (at once)', params: tokenParams } }, async (req) => {
    const { id } = req.params as { id: string };
    if (!store.deleteToken(id)) throw new InfergateError('BadArgument', `No token with id '${id}' (see 'infergate token list').`);
    return { id, revoked: true };
  });

  registerAssetRoutes(app, o, assets);
  app.get('/openapi.json', { config: READ, schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { config: READ, schema: { summary: 'Prometheus metrics (requests, latency, queue, instances, mirror traffic)' } }, async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()));
  return app;
}

/** Azure's traffic rules against the deployments that exist (contract §3); spec/ checked the values. */
export function checkTraffic(spec: EndpointSpec, deployments: StoredDeployment[]): void {
  const names = new Set(deployments.filter((d) => d.status.provisioningState !== 'Deleting').map((d) => d.spec.name.toLowerCase()));
  const problems: string[] = [];
  for (const n of Object.keys(spec.traffic)) if (!names.has(n)) problems.push(`traffic names deployment '${n}', which does not exist in endpoint '${spec.name}'`);
  for (const n of Object.keys(spec.mirrorTraffic)) {
    if (!names.has(n)) problems.push(`mirror_traffic names deployment '${n}', which does not exist in endpoint '${spec.name}'`);
    if ((spec.traffic[n] ?? 0) > 0) problems.push(`deployment '${n}' cannot get both live traffic and mirror traffic`);
  }
  if (problems.length) throw new InfergateError('InvalidTraffic', problems.join('; '));
}

/** Every string value in a stored spec (its recorded paths among them). */
function stringsOf(value: unknown, out = new Set<string>()): Set<string> {
  if (typeof value === 'string') out.add(value);
  else if (Array.isArray(value)) for (const v of value) stringsOf(v, out);
  else if (value !== null && typeof value === 'object') for (const v of Object.values(value)) stringsOf(v, out);
  return out;
}
