// The control-plane REST API (DESIGN.md "api/"). Request bodies are the Azure ML YAML documents as JSON
// (snake_case, the shape users already know; file paths absolute); responses are what `az ml ... show`
// prints. Errors are `{ "error": { "code", "message", "details" } }` with codes from the one catalogue.

import { randomUUID } from 'node:crypto';
import { constants } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import swagger from '@fastify/swagger';
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance, type FastifyReply } from 'fastify';
import { ControlPlane, type ControlPlaneOptions } from '../control/index.js';
import { errorOf, InfergateError } from '../errors/index.js';
import { dumpDeployment, dumpEndpoint } from '../spec/index.js';
import { SCHEMA_NAMES, yamlSchemas, type SchemaName } from '../spec/json-schema.js';
import type { Role, StoredDeployment, StoredEndpoint, StoredToken } from '../store/types.js';
import { registry } from '../telemetry/metrics.js';
import { MAX_NESTING } from '../util/yaml.js';
import { showDeployment, showEndpoint, type ScoringUriOf, type ShowContext } from './show.js';
import { registerAssetRoutes, type AssetApiOptions } from './assets.js';
import { registerAutoscaleRoutes } from './autoscale.js';
import { registerComputeRoutes, type ComputeApiOptions } from './computes.js';
import { registerInstanceAssetRoutes, type InstanceAssetTokens } from './instance-assets.js';
import { registerStudio } from './studio.js';
import { registerReferencePage, swaggerOptions } from './openapi.js';
import type { AuditLog } from './audit.js';
import { allowedHostNames, createToken, FailedAuthLimiter, installAccessControl, parseDuration, ROLES } from './auth.js';

export interface ApiOptions extends ShowContext, AssetApiOptions, ControlPlaneOptions, Pick<ComputeApiOptions, 'checkCompute'> {
  /** Kubernetes computes: signs the storage initializer's asset tokens (api/instance-assets.ts); the route is served with it. */
  instanceAssetTokens?: InstanceAssetTokens;
  version: string;
  /** Local mode: each endpoint's own scoring URI (contract §2.4). */
  scoringUriOf?: ScoringUriOf;
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
  /**
   * The server log: details of 500s (the client gets only a request id), refused routes, and the access
   * log (one line per request) when there is no `logger`. A function that carries a pino logger as its
   * `logger` property (cli/common.ts serverLog) gives the API that logger too.
   */
  log?: ((line: string) => void) & { logger?: FastifyBaseLogger };
  /** A pino logger: Fastify's own, and the access log as structured records in the server log's stream. */
  logger?: FastifyBaseLogger;
  /**
   * The workspace's logs/ folder, where get-logs --follow finds each deployment's `current` console log
   * (backend/files.ts). Default: logs/ beside assetsDir (both are in the workspace).
   */
  logsDir?: string;
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

/**
 * The coded answer to one of Fastify's own client errors (schema validation, body parsing, limits), by its
 * FST_ERR code. Schema problems are listed from Ajv's per-field results (`body must have required
 * property 'role'`), which describe the request, not the server.
 */
function clientErrorOf(e: { validation?: { instancePath?: string; message?: string }[]; validationContext?: string; statusCode?: number; code?: string }, contentType: string | undefined, bodyLimit: number): InfergateError {
  if (e.validation) {
    const where = e.validationContext ?? 'request';
    return errorOf('RequestBodyInvalid', { problems: e.validation.map((v) => `${where}${v.instancePath ?? ''} ${v.message ?? 'is not valid'}`).join('; ') });
  }
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return errorOf('BodyTooLarge', { limit: bodyLimit });
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return errorOf('JsonMalformed');
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return errorOf('JsonBodyEmpty');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return errorOf('MediaTypeUnsupported', { contentType: contentType ?? '' });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return errorOf('RequestMalformed', { reason: 'the body is not as long as its Content-Length' });
  }
  // A 413 by another way than the parser (Content-Length over the limit) is still BodyTooLarge.
  if (e.statusCode === 413) return errorOf('BodyTooLarge', { limit: bodyLimit });
  // JSON with a __proto__ or constructor.prototype key (secure-json-parse refuses it) and the rest.
  return errorOf('RequestMalformed', { reason: e.code ?? `HTTP ${e.statusCode ?? 400}` });
}

/** get-logs --follow: how often a follower looks at its file, and the most it reads per look. */
export const FOLLOW_POLL_MS = 250;
const FOLLOW_CHUNK_BYTES = 256 * 1024;

/**
 * The text of get-logs --follow: `first` (the tail), then what is appended to `file` from `start` on (the
 * file's identity and size when the tail was read). One follower costs one poll every FOLLOW_POLL_MS and
 * at most one chunk in memory: it reads only when the client has taken what it was given (pull-based
 * stream), so a slow client slows the follower, never grows a buffer. When the path names another file
 * (the log rotated, or `current` moved to a newer instance), the old file is read to its end and the new
 * one from its start. Ends when `alive()` says the deployment is gone, or when destroyed.
 */
export function followLog(first: string, file: string, start: { ino: number; size: number } | null, alive: () => boolean): Readable {
  let fh: FileHandle | null = null;
  let ino = 0;
  let pos = 0;
  let timer: NodeJS.Timeout | null = null;
  let pulling = false;
  let done = false;
  const buf = Buffer.allocUnsafe(FOLLOW_CHUNK_BYTES);
  const later = () => {
    timer = setTimeout(() => {
      timer = null;
      void pull();
    }, FOLLOW_POLL_MS);
  };
  const finish = () => {
    if (done) return;
    done = true;
    stream.push(null);
  };
  const pull = async (): Promise<void> => {
    if (pulling || timer || done || stream.destroyed) return;
    pulling = true;
    try {
      if (!alive()) return finish();
      if (fh === null) {
        try {
          fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
        } catch {
          return later(); // no instance has written yet
        }
        const st = await fh.stat();
        ino = st.ino;
        pos = start !== null && start.ino === st.ino ? Math.min(start.size, st.size) : 0;
        start = null;
      }
      const { bytesRead } = await fh.read(buf, 0, buf.length, pos);
      if (done || stream.destroyed) return;
      if (bytesRead > 0) {
        pos += bytesRead;
        // A copy: buf is read into again. push() false: wait for read() to ask again.
        if (stream.push(Buffer.from(buf.subarray(0, bytesRead)))) setImmediate(() => void pull());
        return;
      }
      const now = await stat(file).catch(() => null);
      if (now !== null && (now.ino !== ino || now.size < pos)) {
        // What was appended to the old file between our last read and its rotation comes first: read it
        // to its end (the read above may have come just before those lines), then go on with the new one.
        const rest = await fh.read(buf, 0, buf.length, pos);
        if (done || stream.destroyed) return;
        if (rest.bytesRead > 0) {
          pos += rest.bytesRead;
          if (stream.push(Buffer.from(buf.subarray(0, rest.bytesRead)))) setImmediate(() => void pull());
          return;
        }
        await fh.close();
        fh = null;
        setImmediate(() => void pull());
        return;
      }
      later();
    } catch (e) {
      stream.destroy(e as Error);
    } finally {
      pulling = false;
    }
  };
  const stream = new Readable({
    read: () => void pull(),
    destroy: (err, cb) => {
      done = true;
      if (timer) clearTimeout(timer);
      const h = fh;
      fh = null;
      (h ? h.close() : Promise.resolve()).then(() => cb(err), () => cb(err));
    },
  });
  if (first !== '') stream.push(first);
  return stream;
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
  const logger = o.logger ?? o.log?.logger;
  const app = Fastify({
    // Fastify's per-request lines are off: the access log below is ours (route, status, ms, token id).
    ...(logger ? { loggerInstance: logger, logController: new LogController({ disableRequestLogging: true }) } : { logger: false }),
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
    frameworkErrors: (_error, req, reply) => {
      void (reply as FastifyReply).status(400).send(errorOf('UrlMalformed', { url: req.url }).toBody());
    },
  });
  app.server.maxConnections = limits.maxConnections;
  // The access log: every control-plane request, in the server log's stream. The route's pattern, never
  // its URL (a query string could carry anything), and the token's id, never the token.
  app.addHook('onResponse', async (req, reply) => {
    const record = {
      method: req.method,
      route: req.is404 ? null : (req.routeOptions.url ?? null),
      status: reply.statusCode,
      ms: Math.round(reply.elapsedTime * 10) / 10,
      token_id: req.principal?.id ?? null,
    };
    if (logger) req.log.info({ access: record }, 'request');
    else log(`${record.method} ${record.route ?? '(no route)'} ${record.status} ${record.ms} ms token=${record.token_id ?? '-'} req=${req.id}`);
  });
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
      done(errorOf('BodyTooDeep', { limit: MAX_NESTING }), undefined);
      return;
    }
    parseJson(req, body as string, done);
  });
  await app.register(swagger, swaggerOptions(o.version));

  app.setErrorHandler((error, req, reply) => {
    if (error instanceof InfergateError) return reply.status(error.status).send(error.toBody());
    const e = error as { validation?: { instancePath?: string; message?: string }[]; validationContext?: string; statusCode?: number; message: string; code?: string };
    if (e.validation || (e.statusCode && e.statusCode < 500)) {
      // Fastify's own 4xx: malformed or empty JSON (400), an unsupported Content-Type (415), a body over
      // the limit or a bad Content-Length (413, 400): the client's mistake, coded, never a 500. The answer
      // is one of our templates, never Fastify's message (Fastify words can change between versions).
      return reply.status(e.statusCode ?? 400).send(clientErrorOf(e, req.headers['content-type'], limits.bodyLimitBytes).toBody());
    }
    // A stack overflow is input too deep for a walk that recurses (a guard missed it): still the client's.
    if (error instanceof RangeError && /call stack/.test(error.message)) return reply.status(400).send(errorOf('NestedTooDeeply').toBody());
    // Anything else is ours: the client gets a coded message and the request id, never the error's own
    // message or stack (they can name paths, SQL or internals); the server log gets the details.
    log(`request ${req.id} ${req.method} ${req.routeOptions.url ?? req.url}: internal error: ${(error as Error).stack ?? e.message}`);
    return reply.status(500).send(errorOf('InternalError', { requestId: req.id }, [{ request_id: req.id }]).toBody());
  });
  app.setNotFoundHandler((req, reply) => reply.status(404).send(errorOf('RouteNotFound', { method: req.method, url: req.url }).toBody()));

  const { store } = o;
  // get-logs --follow streams: ended (cleanly, so clients see the end of the text) when the server closes.
  const followers = new Set<Readable>();
  app.addHook('preClose', async () => {
    for (const f of followers) f.push(null);
  });
  const logsDir = o.logsDir ?? (o.assetsDir ? join(dirname(o.assetsDir), 'logs') : undefined);
  const currentLogFileOf = (endpoint: string, deployment: string, container: string): string => {
    if (logsDir === undefined) throw errorOf('LogFollowUnavailable');
    // The layout of backend/files.ts (currentLogFile): <logs>/<endpoint>/<deployment>/current/<container>.log.
    return join(logsDir, endpoint, deployment, 'current', `${container}.log`);
  };
  // The service layer (control/): every rule of endpoints, deployments, traffic and assets is there; each
  // handler below parses the HTTP request, calls one of its methods and shapes the answer.
  const control = new ControlPlane(o); // o: store, controller, logs, maxDeploymentsPerEndpoint, assetsDir, blobsDir, maxUploadBytes
  const showE = async (e: StoredEndpoint) => showEndpoint(o, e, store.listDeployments(e.spec.name), o.scoringUriOf ? await o.scoringUriOf(e.spec.name) : undefined);
  const showD = (d: StoredDeployment) => showDeployment(o, d);
  if (o.instanceAssetTokens) registerInstanceAssetRoutes(app, { store, lookup: control.assets.lookup, tokens: o.instanceAssetTokens });
  type P = { name: string };
  type DP = { name: string; deployment: string };
  // Before the endpoint routes: its hook checks the compute an endpoint or deployment change names.
  registerComputeRoutes(app, o);

  app.get('/healthz', { config: { role: 'public' }, schema: { operationId: 'getHealth', tags: ['server'], summary: 'Liveness of the control plane (no token needed)' } }, async () => ({ status: 'Healthy' }));

  app.get('/api/info', { config: READ, schema: { operationId: 'getInfo', tags: ['server'], summary: 'Server version and where the router listens' } }, async () => ({
    version: o.version,
    router_url: o.routerUrl,
    workspace: o.workspace,
  }));

  // ---- endpoints
  app.get('/api/endpoints', { config: READ, schema: { operationId: 'listEndpoints', tags: ['endpoints'], summary: 'List endpoints' } }, async () => Promise.all(control.endpoints().map(showE)));

  app.post('/api/endpoints', { config: CHANGE, schema: { operationId: 'createEndpoint', tags: ['endpoints'], summary: 'Create an endpoint', body: anyObject } }, async (req, reply) =>
    reply.status(201).send(await showE(await control.createEndpoint(req.body))));

  app.get('/api/endpoints/:name', { config: READ, schema: { operationId: 'showEndpoint', tags: ['endpoints'], summary: 'Show an endpoint', params: nameParams } }, async (req) => showE(control.endpoint((req.params as P).name)));

  app.get('/api/endpoints/:name/document', { config: READ, schema: { operationId: 'getEndpointDocument', tags: ['endpoints'], summary: 'The endpoint as a YAML-shaped document (for update)', params: nameParams } }, async (req) =>
    dumpEndpoint(control.endpoint((req.params as P).name).spec));

  app.put('/api/endpoints/:name', { config: CHANGE, schema: { operationId: 'updateEndpoint', tags: ['endpoints'], summary: 'Update an endpoint (whole document)', params: nameParams, body: anyObject } }, async (req) =>
    showE(await control.updateEndpoint((req.params as P).name, req.body)));

  app.delete('/api/endpoints/:name', { config: CHANGE, schema: { operationId: 'deleteEndpoint', tags: ['endpoints'], summary: 'Delete an endpoint and all its deployments', params: nameParams } }, async (req, reply) => {
    const r = await control.deleteEndpoint((req.params as P).name);
    return r.left ? reply.status(202).send(await showE(r.left)) : reply.status(200).send({ name: r.name, provisioning_state: 'Deleted' });
  });

  app.post('/api/endpoints/:name/credentials', { config: CREDENTIAL, schema: { operationId: 'getEndpointCredentials', tags: ['endpoints'], summary: 'Keys (key auth) or a token (aml_token auth)', params: nameParams } }, async (req) =>
    control.credentials((req.params as P).name));

  app.post('/api/endpoints/:name/regenerate-keys', { config: CREDENTIAL, schema: { operationId: 'regenerateEndpointKeys', tags: ['endpoints'], summary: 'Regenerate the primary or secondary key', params: nameParams, body: anyObject } }, async (req) => {
    const keyType = String((req.body as { key_type?: unknown } | undefined)?.key_type ?? 'primary');
    return { key_type: await control.regenerateKeys((req.params as P).name, keyType), regenerated: true };
  });

  // ---- deployments
  app.get('/api/endpoints/:name/deployments', { config: READ, schema: { operationId: 'listDeployments', tags: ['deployments'], summary: 'List deployments', params: nameParams } }, async (req) =>
    control.deployments((req.params as P).name).map(showD));

  app.post('/api/endpoints/:name/deployments', { config: CHANGE, schema: { operationId: 'createDeployment', tags: ['deployments'], summary: 'Create a deployment', params: nameParams, body: anyObject } }, async (req, reply) =>
    reply.status(201).send(showD(await control.createDeployment((req.params as P).name, req.body))));

  app.get('/api/endpoints/:name/deployments/:deployment', { config: READ, schema: { operationId: 'showDeployment', tags: ['deployments'], summary: 'Show a deployment', params: depParams } }, async (req) => {
    const { name, deployment } = req.params as DP;
    return showD(control.deployment(name, deployment));
  });

  app.get('/api/endpoints/:name/deployments/:deployment/document', { config: READ, schema: { operationId: 'getDeploymentDocument', tags: ['deployments'], summary: 'The deployment as a YAML-shaped document (for update)', params: depParams } }, async (req) => {
    const { name, deployment } = req.params as DP;
    return dumpDeployment(control.deployment(name, deployment).spec);
  });

  app.put('/api/endpoints/:name/deployments/:deployment', {
    config: CHANGE,
    schema: {
      operationId: 'updateDeployment', tags: ['deployments'], summary: 'Update a deployment (whole document)',
      params: depParams,
      body: anyObject,
      querystring: { type: 'object', properties: { keep_assets: { type: 'string', enum: ['true', 'false'], description: 'the document is the stored one with overrides: references left as they were keep their resolved versions and code snapshot' } } },
    },
  }, async (req) => {
    const { name, deployment } = req.params as DP;
    const keepAssets = (req.query as { keep_assets?: string }).keep_assets === 'true';
    return showD(await control.updateDeployment(name, deployment, req.body, keepAssets));
  });

  app.delete('/api/endpoints/:name/deployments/:deployment', { config: CHANGE, schema: { operationId: 'deleteDeployment', tags: ['deployments'], summary: 'Delete a deployment', params: depParams } }, async (req, reply) => {
    const { name, deployment } = req.params as DP;
    const r = await control.deleteDeployment(name, deployment);
    return r.left ? reply.status(202).send(showD(r.left)) : reply.status(200).send({ name: r.name, provisioning_state: 'Deleted' });
  });

  app.get('/api/endpoints/:name/deployments/:deployment/logs', {
    config: READ,
    schema: {
      operationId: 'getDeploymentLogs', tags: ['deployments'], summary: "A deployment's console or storage-initializer log",
      params: depParams,
      querystring: {
        type: 'object',
        properties: {
          container: { type: 'string' },
          lines: { type: 'integer', minimum: 0 },
          follow: { type: 'boolean', description: 'after the tail, stream new lines of the newest live instance (chunked) until the client or the server goes' },
        },
      },
    },
  }, async (req, reply) => {
    const { name, deployment } = req.params as DP;
    const q = req.query as { container?: string; lines?: number; follow?: boolean };
    if (!q.follow) return reply.type('text/plain; charset=utf-8').send(await control.logs(name, deployment, q.container, q.lines ?? 5000));
    // Where the current file is before the tail is read: a line written in between is shown twice rather
    // than lost.
    const d = control.deployment(name, deployment);
    const container = (q.container ?? 'inference-server').toLowerCase();
    const file = currentLogFileOf(d.spec.endpointName, d.spec.name, container);
    const start = await stat(file).catch(() => null);
    const tail = await control.logs(name, deployment, q.container, q.lines ?? 5000);
    const alive = () => store.getDeployment(d.spec.endpointName, d.spec.name) !== undefined;
    const stream = followLog(tail === '' || tail.endsWith('\n') ? tail : `${tail}\n`, file, start ? { ino: start.ino, size: start.size } : null, alive);
    followers.add(stream);
    stream.once('close', () => followers.delete(stream));
    // A quiet log is no idle connection: the client waits for lines as long as it likes.
    req.raw.socket.setTimeout(0);
    req.raw.once('close', () => stream.destroy());
    return reply.type('text/plain; charset=utf-8').header('cache-control', 'no-store').send(stream);
  });

  // ---- control-plane tokens (owner only; `whoami` for any valid token)
  app.get('/api/whoami', { config: READ, schema: { operationId: 'whoAmI', tags: ['tokens'], summary: 'The token this request authenticated with (id, role, expiry)' } }, async (req) => {
    const t = store.getToken(req.principal!.id);
    return { token_id: req.principal!.id, role: req.principal!.role, expires_at: t?.expiresAt ?? null };
  });

  app.get('/api/tokens', { config: OWNER, schema: { operationId: 'listTokens', tags: ['tokens'], summary: 'List control-plane tokens (never their secrets)' } }, async () => store.listTokens().map(showToken));

  app.post('/api/tokens', {
    config: OWNER,
    schema: {
      operationId: 'createToken', tags: ['tokens'], summary: 'Create a control-plane token; the answer is the only time its secret is shown',
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

  app.delete('/api/tokens/:id', { config: OWNER, schema: { operationId: 'deleteToken', tags: ['tokens'], summary: 'Revoke a control-plane token (at once)', params: tokenParams } }, async (req) => {
    const { id } = req.params as { id: string };
    if (!store.deleteToken(id)) throw errorOf('TokenNotFound', { id });
    return { id, revoked: true };
  });

  registerAssetRoutes(app, o, control.assets);
  await registerStudio(app, { store, control, showEndpoint: showE, ...(o.https ? { https: true } : {}), ...(o.now ? { now: o.now } : {}) });
  registerAutoscaleRoutes(app, { store, workspace: o.workspace, location: o.location });
  // The YAML documents' JSON Schemas: public, like the schemas any editor fetches by URL, so no token.
  const schemas = yamlSchemas();
  app.get('/schemas/:file', { config: { role: 'public' }, schema: { hide: true } }, async (req, reply) => {
    const { file } = req.params as { file: string };
    const name = file.slice(0, -'.json'.length) as SchemaName;
    if (!file.endsWith('.json') || !SCHEMA_NAMES.includes(name)) throw errorOf('RouteNotFound', { method: req.method, url: req.url });
    return reply.type('application/schema+json; charset=utf-8').send(JSON.stringify(schemas[name], null, 2) + '\n');
  });
  app.get('/openapi.json', { config: READ, schema: { hide: true } }, async () => app.swagger());
  await registerReferencePage(app);
  app.get('/metrics', { config: READ, schema: { operationId: 'getMetrics', tags: ['server'], summary: 'Prometheus metrics (requests, latency, queue, instances, mirror traffic)' } }, async (_req, reply) =>
    reply.type(registry.contentType).send(await registry.metrics()));
  return app;
}
