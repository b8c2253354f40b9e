// The OpenAPI document's own parts (issue 14): components (the error envelope, the `show` shapes, the
// bearer scheme, shared error responses) and the responses of each operation by operationId.
//
// Documentation only. Fastify compiles `schema.response` into a serializer that drops every property the
// schema does not name, and `schema.body` into a validator that would answer before ours (ours lists every
// problem with its location). So routes keep permissive body schemas and no response schemas, and this
// file fills in requestBody and responses after @fastify/swagger has built the document (transformObject).

import type { FastifyDynamicSwaggerOptions } from '@fastify/swagger';
import { catalogue, errorOf } from '../errors/index.js';
import { yamlSchemas } from '../spec/json-schema.js';

type Json = Record<string, unknown>;

const ref = (name: string): Json => ({ $ref: `#/components/schemas/${name}` });
const str = { type: 'string' } as const;
const int = { type: 'integer' } as const;
const strMap = { type: 'object', additionalProperties: { type: 'string' } } as const;
const intMap = { type: 'object', additionalProperties: { type: 'integer', minimum: 0, maximum: 100 } } as const;
// OpenAPI 3.1 (JSON Schema 2020-12): null is a type of its own.
const nullable = (s: Json): Json => ({ ...s, type: [(s as { type: string }).type, 'null'] });
const PROVISIONING = { type: 'string', enum: ['Creating', 'Updating', 'Scaling', 'Succeeded', 'Failed', 'Deleting', 'Canceled'] } as const;
const operationError = { type: 'object', properties: { code: str, message: str }, description: 'Why the last operation failed (Azure operation error codes).' } as const;

/**
 * The YAML documents (request bodies, and the `document` routes): the JSON Schemas derived from the same
 * combinators that validate them (spec/json-schema.ts), without their `$schema` (the document's dialect
 * is OpenAPI 3.1's, JSON Schema 2020-12). A deployment is managed or Kubernetes by its endpoint.
 */
const yaml = yamlSchemas();
const embedded = (j: object): Json => {
  const { $schema: _dialect, ...rest } = j as Record<string, unknown>;
  return rest as Json;
};
export const documentSchemas: Record<'EndpointDocument' | 'DeploymentDocument' | 'ModelDocument' | 'EnvironmentDocument', Json> = {
  EndpointDocument: embedded(yaml.endpoint),
  DeploymentDocument: {
    description: 'A deployment YAML document as JSON (snake_case); file references are `upload:sha256:<manifest>` (see POST /api/blobs/missing). Managed or Kubernetes, by its endpoint.',
    anyOf: [embedded(yaml.managedDeployment), embedded(yaml.kubernetesDeployment)],
  } as Json,
  ModelDocument: embedded(yaml.model),
  EnvironmentDocument: embedded(yaml.environment),
};

const creationContext = { type: 'object', properties: { created_at: str, last_modified_at: str } } as const;

/** The response shapes, written from show.ts, assets.ts and server.ts (showToken). */
const schemas: Record<string, Json> = {
  ErrorResponse: {
    type: 'object',
    description: "Every error: a stable code from infergate's catalogue (docs/errors.md), a message, and for validation errors one detail per problem.",
    required: ['error'],
    properties: {
      error: {
        type: 'object',
        required: ['code', 'message'],
        properties: {
          code: { type: 'string', enum: Object.keys(catalogue) },
          message: str,
          details: { type: 'array', items: {} },
        },
      },
    },
  },
  ...documentSchemas,
  Endpoint: {
    type: 'object',
    description: 'What `az ml online-endpoint show` prints.',
    required: ['auth_mode', 'id', 'kind', 'location', 'mirror_traffic', 'name', 'openapi_uri', 'properties', 'provisioning_state', 'scoring_uri', 'tags', 'traffic'],
    properties: {
      auth_mode: { type: 'string', enum: ['key', 'aml_token', 'aad_token'] },
      description: str,
      id: str,
      identity: { type: 'object' },
      kind: { type: 'string', enum: ['Managed', 'K8S'] },
      location: str,
      mirror_traffic: { ...intMap, description: 'Percent of live traffic copied to each deployment (its answers are dropped).' },
      name: str,
      openapi_uri: str,
      properties: strMap,
      provisioning_state: PROVISIONING,
      public_network_access: { type: 'string', enum: ['enabled', 'disabled'] },
      compute: str,
      scoring_uri: str,
      tags: strMap,
      traffic: { ...intMap, description: 'Percent of traffic to each deployment; every deployment is listed (0 when it has none).' },
      error: operationError,
    },
  },
  Deployment: {
    description: 'What `az ml online-deployment show` prints: the deployment document with its state.',
    allOf: [
      ref('DeploymentDocument'),
      {
        type: 'object',
        required: ['creation_context', 'id', 'provisioning_state'],
        properties: {
          creation_context: creationContext,
          id: str,
          provisioning_state: PROVISIONING,
          egress_public_network_access: { type: 'string', enum: ['enabled', 'disabled'] },
          backend: { type: 'string', description: "Where instances run ('process', 'docker')." },
          error: operationError,
        },
      },
    ],
  },
  Deleted: { type: 'object', required: ['name', 'provisioning_state'], properties: { name: str, provisioning_state: { type: 'string', enum: ['Deleted'] } } },
  Credentials: {
    description: 'Keys (auth_mode key) or a token (auth_mode aml_token), as `get-credentials` prints them.',
    oneOf: [
      { type: 'object', required: ['primaryKey', 'secondaryKey'], properties: { primaryKey: str, secondaryKey: str } },
      { type: 'object', required: ['accessToken', 'expiryTimeUtc', 'tokenType'], properties: { accessToken: str, expiryTimeUtc: int, refreshAfterTimeUtc: int, tokenType: { type: 'string', enum: ['Bearer'] } } },
    ],
  },
  RegeneratedKeys: { type: 'object', required: ['key_type', 'regenerated'], properties: { key_type: { type: 'string', enum: ['primary', 'secondary'] }, regenerated: { type: 'boolean' } } },
  Info: { type: 'object', required: ['version', 'router_url', 'workspace'], properties: { version: str, router_url: str, workspace: str } },
  Health: { type: 'object', required: ['status'], properties: { status: { type: 'string', enum: ['Healthy'] } } },
  WhoAmI: { type: 'object', required: ['token_id', 'role'], properties: { token_id: str, role: { type: 'string', enum: ['reader', 'contributor', 'owner'] }, expires_at: nullable(str) } },
  Token: {
    type: 'object',
    description: 'A control-plane token as `token list` shows it: never its hash, and the secret is not stored.',
    required: ['id', 'role', 'created_at'],
    properties: { id: str, role: { type: 'string', enum: ['reader', 'contributor', 'owner'] }, description: nullable(str), created_at: str, expires_at: nullable(str), last_used_at: nullable(str) },
  },
  NewToken: { allOf: [ref('Token'), { type: 'object', required: ['token'], properties: { token: { type: 'string', description: 'The secret: shown this once only.' } } }] },
  NewTokenRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['role'],
    properties: { role: { type: 'string', enum: ['reader', 'contributor', 'owner'] }, expires_in: { type: 'string', maxLength: 32, example: '30d' }, description: { type: 'string', maxLength: 256 } },
  },
  Revoked: { type: 'object', required: ['id', 'revoked'], properties: { id: str, revoked: { type: 'boolean' } } },
  Model: {
    type: 'object',
    description: 'What `az ml model show` prints.',
    required: ['id', 'name', 'version'],
    properties: { creation_context: creationContext, description: str, flavors: { type: 'object' }, id: str, name: str, path: str, properties: strMap, stage: { type: 'string', enum: ['Development', 'Archived'] }, tags: strMap, type: str, version: str },
  },
  Environment: {
    type: 'object',
    description: 'What `az ml environment show` prints.',
    required: ['id', 'name', 'version'],
    properties: {
      build: { type: 'object', properties: { path: str, dockerfile_path: str } },
      conda_file: {},
      creation_context: creationContext,
      description: str,
      id: str,
      image: str,
      inference_config: { type: 'object' },
      name: str,
      os_type: str,
      stage: { type: 'string', enum: ['Development', 'Archived'] },
      tags: strMap,
      version: str,
    },
  },
  AssetListEntry: {
    type: 'object',
    description: 'One entry of `list`: a version (with a name filter, the Model or Environment shape) or a name with its latest_version.',
    properties: { creation_context: creationContext, description: str, id: str, latest_version: str, name: str, tags: strMap, version: str },
  },
  AutoscaleSetting: { type: 'object', description: "Azure Monitor's AutoscaleSetting, what `az monitor autoscale show` prints." },
  AutoscaleRule: { type: 'object', description: 'One rule of a profile (Azure Monitor ScaleRule), with the index `rule delete` takes.' },
  AutoscaleProfile: { type: 'object', description: 'One profile of an autoscale setting (Azure Monitor AutoscaleProfile).' },
  AutoscaleDecision: { type: 'object', description: "One decision of the autoscaler: when, which rule, the instance count before and after." },
  DeletedSetting: { type: 'object', required: ['name', 'deleted'], properties: { name: str, profile: str, deleted: { type: 'boolean' } } },
  MissingBlobs: { type: 'object', required: ['missing'], properties: { missing: { type: 'array', items: str } } },
  MissingBlobsRequest: {
    type: 'object',
    additionalProperties: false,
    required: ['sha256'],
    properties: { sha256: { type: 'array', items: { type: 'string', pattern: '^[0-9a-f]{64}$' } } },
  },
  Blob: { type: 'object', required: ['sha256', 'size', 'created'], properties: { sha256: str, size: int, created: { type: 'boolean' } } },
};

const errorContent = { 'application/json': { schema: ref('ErrorResponse') } };
/** Shared error responses, by status. */
const errorResponses: Record<string, [name: string, description: string, headers?: Json]> = {
  400: ['BadRequest', 'The request or its document has problems (BadArgument, ValidationFailed, InvalidTraffic ...); details lists each with its location.'],
  401: ['Unauthorized', 'No valid bearer token (missing, malformed, unknown, revoked or expired).', { 'WWW-Authenticate': { schema: str } }],
  403: ['Forbidden', "The token's role does not allow this operation (owner > contributor > reader)."],
  404: ['NotFound', 'The endpoint, deployment, asset, setting or token named in the path does not exist.'],
  409: ['Conflict', 'The name is taken, another operation is in progress, or the change breaks a rule (DeploymentHasTraffic ...).'],
  413: ['PayloadTooLarge', 'The request body is larger than the limit.'],
  421: ['MisdirectedRequest', "The Host header is not one of the control plane's own names (DNS rebinding protection)."],
  429: ['TooManyRequests', 'Too many failed authentications from this client address.', { 'Retry-After': { schema: int } }],
  500: ['InternalError', 'An unexpected error; the answer carries the request id, the server log the details.'],
};

const responses: Record<string, Json> = Object.fromEntries(
  Object.values(errorResponses).map(([name, description, headers]) => [name, { description, content: errorContent, ...(headers ? { headers } : {}) }]),
);

/** What an operation answers when it succeeds, and what else it can say. */
interface OperationDoc {
  /** Success status and body: a component name, an array of one (`['Endpoint']`), 'text' or a schema. */
  ok: [status: number, body: string | [string] | 'text' | Json, description?: string][];
  /** The request body, a component name (documentation only: the route's own schema is permissive). */
  body?: string;
  /** The operation can answer 409 (a name taken, an operation in progress, a rule broken). */
  conflict?: boolean;
}

const changeOf = (body: string): Pick<OperationDoc, 'body' | 'conflict'> => ({ body, conflict: true });

const assetOperations = (Kind: 'Model' | 'Environment'): Record<string, OperationDoc> => ({
  [`list${Kind}s`]: { ok: [[200, ['AssetListEntry']]] },
  [`register${Kind}`]: { ok: [[201, Kind]], ...changeOf(`${Kind}Document`) },
  [`show${Kind}Version`]: { ok: [[200, Kind]] },
  [`show${Kind}ByLabel`]: { ok: [[200, Kind]] },
  [`archive${Kind}Version`]: { ok: [[200, Kind]] },
  [`restore${Kind}Version`]: { ok: [[200, Kind]] },
});

/** Every operation of the control plane, by operationId (the test checks that each route has one here). */
export const operations: Record<string, OperationDoc> = {
  getHealth: { ok: [[200, 'Health']] },
  getInfo: { ok: [[200, 'Info']] },
  listEndpoints: { ok: [[200, ['Endpoint']]] },
  createEndpoint: { ok: [[201, 'Endpoint']], ...changeOf('EndpointDocument') },
  showEndpoint: { ok: [[200, 'Endpoint']] },
  getEndpointDocument: { ok: [[200, 'EndpointDocument']] },
  updateEndpoint: { ok: [[200, 'Endpoint']], ...changeOf('EndpointDocument') },
  deleteEndpoint: { ok: [[200, 'Deleted', 'Deleted at once'], [202, 'Endpoint', 'Deletion started (deployments are stopping)']], conflict: true },
  getEndpointCredentials: { ok: [[200, 'Credentials']] },
  regenerateEndpointKeys: {
    ok: [[200, 'RegeneratedKeys']],
    body: 'RegenerateKeysRequest',
    conflict: true,
  },
  listDeployments: { ok: [[200, ['Deployment']]] },
  createDeployment: { ok: [[201, 'Deployment']], ...changeOf('DeploymentDocument') },
  showDeployment: { ok: [[200, 'Deployment']] },
  getDeploymentDocument: { ok: [[200, 'DeploymentDocument']] },
  updateDeployment: { ok: [[200, 'Deployment']], ...changeOf('DeploymentDocument') },
  deleteDeployment: { ok: [[200, 'Deleted', 'Deleted at once'], [202, 'Deployment', 'Deletion started (instances are stopping)']], conflict: true },
  getDeploymentLogs: { ok: [[200, 'text', 'The log text; with follow=true, the tail and then new lines as they come (chunked)']] },
  whoAmI: { ok: [[200, 'WhoAmI']] },
  listTokens: { ok: [[200, ['Token']]] },
  createToken: { ok: [[201, 'NewToken']], body: 'NewTokenRequest' },
  deleteToken: { ok: [[200, 'Revoked']] },
  ...assetOperations('Model'),
  ...assetOperations('Environment'),
  findMissingBlobs: { ok: [[200, 'MissingBlobs']], body: 'MissingBlobsRequest' },
  uploadBlob: { ok: [[200, 'Blob', 'The server had it already'], [201, 'Blob', 'Stored']] },
  listAutoscaleSettings: { ok: [[200, ['AutoscaleSetting']]] },
  createAutoscaleSetting: { ok: [[201, 'AutoscaleSetting']], ...changeOf('AutoscaleSettingRequest') },
  showAutoscaleSetting: { ok: [[200, 'AutoscaleSetting']] },
  updateAutoscaleSetting: { ok: [[200, 'AutoscaleSetting']], body: 'AutoscaleSettingUpdate' },
  deleteAutoscaleSetting: { ok: [[200, 'DeletedSetting']] },
  listAutoscaleRules: { ok: [[200, ['AutoscaleRule']]] },
  createAutoscaleRule: { ok: [[201, 'AutoscaleRule']], body: 'AutoscaleRuleRequest' },
  deleteAutoscaleRules: { ok: [[200, 'DeletedSetting']] },
  listAutoscaleProfiles: { ok: [[200, ['AutoscaleProfile']]] },
  createAutoscaleProfile: { ok: [[201, 'AutoscaleProfile']], ...changeOf('AutoscaleProfileRequest') },
  showAutoscaleProfile: { ok: [[200, 'AutoscaleProfile']] },
  deleteAutoscaleProfile: { ok: [[200, 'DeletedSetting']] },
  getAutoscaleHistory: { ok: [[200, ['AutoscaleDecision']]] },
  getMetrics: { ok: [[200, 'text', 'Prometheus text exposition format']] },
  listComputes: { ok: [[200, ['Compute']]] },
  showCompute: { ok: [[200, 'Compute']] },
  attachCompute: { ok: [[201, 'Compute']], ...changeOf('ComputeAttachRequest') },
  detachCompute: { ok: [[200, 'DetachedCompute']], conflict: true },
};

schemas.Compute = {
  type: 'object',
  description: 'An attached Kubernetes compute, what `az ml compute show` prints (never its kubeconfig).',
  properties: { id: str, name: str, type: { type: 'string', enum: ['kubernetes'] }, provisioning_state: str, namespace: str, description: str, properties: { type: 'object', properties: { server: str, context: str, registry: str } }, created_on: str },
};
schemas.ComputeAttachRequest = {
  type: 'object',
  description: "`az ml compute attach`'s flags in snake_case; `kubeconfig` is the file's content (stored as a credential).",
  required: ['name', 'kubeconfig'],
  properties: { name: str, type: { type: 'string', enum: ['kubernetes'] }, kubeconfig: str, context: str, namespace: str, registry: str, description: str },
};
schemas.DetachedCompute = { type: 'object', required: ['name', 'detached'], properties: { name: str, detached: { type: 'boolean' } } };

schemas.RegenerateKeysRequest = { type: 'object', properties: { key_type: { type: 'string', enum: ['primary', 'secondary'], default: 'primary' } } };
schemas.AutoscaleSettingRequest = {
  type: 'object',
  description: "`az monitor autoscale create`'s flags in snake_case.",
  required: ['name', 'resource', 'count'],
  properties: { name: str, resource: { type: 'string', description: 'The deployment id' }, min_count: int, max_count: int, count: int, disabled: { type: 'boolean' }, tags: strMap },
};
schemas.AutoscaleSettingUpdate = { type: 'object', description: "enabled, tags, the default profile's min_count, max_count, count." };
schemas.AutoscaleRuleRequest = {
  type: 'object',
  required: ['condition', 'scale'],
  properties: { condition: { type: 'string', example: 'CpuUtilizationPercentage > 70 avg 5m' }, scale: { type: 'string', example: 'out 2' }, cooldown: int, resource: str, timegrain: str, profile_name: str },
};
schemas.AutoscaleProfileRequest = { type: 'object', description: 'A recurring (recurrence, timezone, start hh:mm) or fixed-date (start, end, timezone) profile, `name` and counts.' };

const SECURITY_SCHEME = 'bearerAuth';

/** The operations' tags, in the order the reference page shows them. */
export const TAGS = [
  { name: 'endpoints', description: 'Online endpoints: create, update, keys and tokens, traffic and mirror traffic.' },
  { name: 'deployments', description: "Deployments under an endpoint, and their instances' logs." },
  { name: 'models', description: 'Registered models (az ml model).' },
  { name: 'environments', description: 'Registered environments (az ml environment).' },
  { name: 'uploads', description: 'Files that documents refer to as upload:sha256:<manifest>.' },
  { name: 'autoscale', description: 'Autoscale settings of deployments (az monitor autoscale).' },
  { name: 'computes', description: 'Attached Kubernetes computes (az ml compute), where endpoints with compute: azureml:<name> run.' },
  { name: 'instances', description: "What instances on a Kubernetes compute fetch (their revision's own token, no control-plane token)." },
  { name: 'tokens', description: 'Control-plane tokens (owner only) and whoami.' },
  { name: 'server', description: 'Health, version, metrics.' },
] as const;

type Operation = Json & { operationId?: string; requestBody?: Json; parameters?: unknown[]; security?: unknown[]; responses?: Json };

function bodyContent(body: string | [string] | 'text' | Json): Json {
  if (body === 'text') return { 'text/plain': { schema: str } };
  const schema = typeof body === 'string' ? ref(body) : Array.isArray(body) ? { type: 'array', items: ref(body[0]) } : body;
  return { 'application/json': { schema } };
}

/** Fills in each operation's responses and request body from `operations` (see the top of this file). */
function describeOperations(doc: Json): Json {
  const paths = (doc.paths ?? {}) as Record<string, Record<string, Operation>>;
  for (const [path, ops] of Object.entries(paths)) {
    for (const op of Object.values(ops)) {
      const d = op.operationId !== undefined ? operations[op.operationId] : undefined;
      if (d === undefined) continue; // the test names every operation without a description
      const out: Json = {};
      for (const [status, body, description] of d.ok) out[String(status)] = { description: description ?? 'Success', content: bodyContent(body) };
      if (d.body !== undefined && op.requestBody !== undefined) op.requestBody = { required: true, content: bodyContent(d.body) };
      const role = op['x-infergate-role'];
      const errors = new Set<number>([500]);
      if (op.requestBody !== undefined || (op.parameters?.length ?? 0) > 0) errors.add(400);
      if (role !== 'public') for (const s of [401, 421, 429]) errors.add(s);
      if (role !== 'public' && role !== 'reader') errors.add(403);
      if (path.includes('{')) errors.add(404);
      if (d.conflict) errors.add(409);
      if (op.requestBody !== undefined) errors.add(413);
      for (const s of [...errors].sort()) out[String(s)] = { $ref: `#/components/responses/${errorResponses[s][0]}` };
      op.responses = out;
    }
  }
  return doc;
}

/** @fastify/swagger's options: document info, components, tags, the bearer scheme for every route but public ones. */
export function swaggerOptions(version: string): FastifyDynamicSwaggerOptions {
  return {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'infergate control plane',
        version,
        description:
          'Endpoints and deployments, Azure ML managed online endpoint compatible. Request bodies are the Azure ML YAML documents as JSON; ' +
          'answers are what `az ml ... show` prints. Every error is `{"error": {"code", "message", "details"}}` with a code from docs/errors.md. ' +
          'Scoring is not here: it is on the router, at each endpoint\'s scoring URI.',
      },
      tags: [...TAGS],
      components: {
        schemas: schemas as never,
        responses: responses as never,
        securitySchemes: { [SECURITY_SCHEME]: { type: 'http', scheme: 'bearer', description: 'A control-plane token (owner.token in the workspace, or `infergate token create`).' } },
      },
      security: [{ [SECURITY_SCHEME]: [] }],
    },
    // The route's access role goes into the document (x-infergate-role); public routes need no token.
    transform: ({ schema, url, route }) => {
      const role = (route.config as { role?: string } | undefined)?.role;
      const s: Json = { ...(schema as Json), 'x-infergate-role': role ?? 'public' };
      if (role === 'public') s.security = [];
      return { schema: s as never, url };
    },
    transformObject: (documentObject) => describeOperations((documentObject as { openapiObject: Json }).openapiObject) as never,
  };
}

// ---- the API reference page (/docs) --------------------------------------------------------------------

/**
 * Swagger UI's files, from @fastify/swagger-ui's vendored copy (served from here: the page works offline).
 * Not its plugin: the plugin's routes cannot declare a role (auth.ts refuses them at registration), and its
 * copy of the document would be readable without a token, mapping the API for anyone who asks.
 */
const UI_FILES: Record<string, string> = {
  'index.css': 'text/css; charset=utf-8',
  'swagger-ui.css': 'text/css; charset=utf-8',
  'swagger-ui-bundle.js': 'application/javascript; charset=utf-8',
  'swagger-ui-standalone-preset.js': 'application/javascript; charset=utf-8',
  'favicon-32x32.png': 'image/png',
};

const PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>infergate control plane API</title>
<link rel="stylesheet" href="/docs/static/swagger-ui.css">
<link rel="stylesheet" href="/docs/static/index.css">
<link rel="icon" type="image/png" href="/docs/static/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/static/swagger-ui-bundle.js"></script>
<script src="/docs/static/swagger-ui-standalone-preset.js"></script>
<script src="/docs/static/init.js"></script>
</body>
</html>
`;

// The document needs a token like every other route. It comes from the page's fragment (/docs#token=...,
// never sent to the server nor logged), else a prompt, and stays in this tab's sessionStorage only.
const INIT = `(function () {
  var m = /(?:^#|&)token=([^&]+)/.exec(location.hash);
  if (m) { sessionStorage.setItem('infergate-token', decodeURIComponent(m[1])); history.replaceState(null, '', location.pathname); }
  var token = sessionStorage.getItem('infergate-token') || window.prompt('infergate control-plane token (owner.token in the workspace, or infergate token create)') || '';
  if (token) sessionStorage.setItem('infergate-token', token);
  var ui = SwaggerUIBundle({
    url: '/openapi.json',
    dom_id: '#swagger-ui',
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: 'StandaloneLayout',
    requestInterceptor: function (req) {
      if (token && !req.headers.Authorization && new URL(req.url, location.href).origin === location.origin) req.headers.Authorization = 'Bearer ' + token;
      return req;
    },
  });
  if (token) ui.preauthorizeApiKey('${SECURITY_SCHEME}', token);
})();
`;

/** Registers GET /docs (Swagger UI, public: it holds no data) and its files; the document it shows is /openapi.json. */
export async function registerReferencePage(app: import('fastify').FastifyInstance): Promise<void> {
  const { createRequire } = await import('node:module');
  const { readFile } = await import('node:fs/promises');
  const { dirname, join } = await import('node:path');
  const dir = join(dirname(createRequire(import.meta.url).resolve('@fastify/swagger-ui/package.json')), 'static');
  const files = new Map<string, Buffer>();
  for (const name of Object.keys(UI_FILES)) files.set(name, await readFile(join(dir, name)));
  const config = { role: 'public' } as const;
  const html = (_req: unknown, reply: import('fastify').FastifyReply) => reply.type('text/html; charset=utf-8').send(PAGE);
  app.get('/docs', { config, schema: { hide: true } }, html);
  app.get('/docs/', { config, schema: { hide: true } }, html);
  app.get('/docs/static/init.js', { config, schema: { hide: true } }, async (_req, reply) => reply.type('application/javascript; charset=utf-8').send(INIT));
  app.get('/docs/static/:file', { config, schema: { hide: true } }, async (req, reply) => {
    const name = (req.params as { file: string }).file;
    const body = Object.hasOwn(UI_FILES, name) ? files.get(name) : undefined;
    if (body === undefined) return reply.status(404).send(errorOf('RouteNotFound', { method: req.method, url: req.url }).toBody());
    return reply.type(UI_FILES[name]).header('cache-control', 'public, max-age=86400').send(body);
  });
}
