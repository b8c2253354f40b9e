// The OpenAPI document and the reference page (issue 14): a maintained validator accepts the document,
// every operation is described (operationId, tag, a success body, the error envelope), and /docs serves
// Swagger UI from the control plane itself.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileErrors, validate } from '@readme/openapi-parser';
import type { FastifyInstance } from 'fastify';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { catalogue } from '../errors/index.js';
import type { Backend } from '../backend/types.js';
import { createToken } from './auth.js';
import { operations } from './openapi.js';
import { buildApi } from './server.js';

const backend: Backend = {
  kind: 'process',
  observe: () => [],
  start: async () => {},
  stop: async () => {},
  logs: async () => '',
  onChange: () => {},
  close: async () => {},
};

let app: FastifyInstance;
let dir: string;
let owner: string;
let doc: any;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-openapi-'));
  const store = new MemoryStateStore();
  owner = createToken(store, { role: 'owner' }).token;
  const controller = new Controller({ store, backend, publish: () => {}, deregistrationDelayMs: 0 });
  app = await buildApi({
    store,
    controller,
    logs: async () => '',
    routerUrl: 'http://127.0.0.1:9999',
    workspace: 'test-ws',
    location: 'local',
    version: '1.2.3-test',
    assetsDir: join(dir, 'assets'),
  });
  const r = await app.inject({ method: 'GET', url: '/openapi.json', headers: { authorization: `Bearer ${owner}` } });
  assert.equal(r.statusCode, 200, r.body);
  doc = r.json();
});

after(async () => {
  await app.close();
  rmSync(dir, { recursive: true, force: true });
});

const METHODS = ['get', 'post', 'put', 'patch', 'delete'];
function eachOperation(): { where: string; op: any }[] {
  const out: { where: string; op: any }[] = [];
  for (const [path, ops] of Object.entries<any>(doc.paths)) for (const m of METHODS) if (ops[m]) out.push({ where: `${m.toUpperCase()} ${path}`, op: ops[m] });
  return out;
}

test('the document is valid OpenAPI (@readme/openapi-parser)', async () => {
  // The validator dereferences in place: give it a copy.
  const result = await validate(structuredClone(doc));
  assert.ok(result.valid, compileErrors(result));
  assert.equal(doc.info.version, '1.2.3-test');
});

test('every operation has a unique operationId, a known tag, a summary and a description of its success', () => {
  const ops = eachOperation();
  assert.ok(ops.length >= 45, `${ops.length} operations`);
  const tags = new Set(doc.tags.map((t: { name: string }) => t.name));
  const seen = new Set<string>();
  for (const { where, op } of ops) {
    assert.equal(typeof op.operationId, 'string', `${where} has an operationId`);
    assert.ok(!seen.has(op.operationId), `${where}: operationId ${op.operationId} is unique`);
    seen.add(op.operationId);
    assert.ok(op.operationId in operations, `${where}: ${op.operationId} is described in openapi.ts`);
    assert.ok(op.tags?.length === 1 && tags.has(op.tags[0]), `${where} has one declared tag (${op.tags})`);
    assert.ok(op.summary, `${where} has a summary`);
    const ok = Object.keys(op.responses).filter((s) => /^2/.test(s));
    assert.ok(ok.length > 0 && ok.every((s) => op.responses[s].content), `${where} describes its success body`);
  }
  // And nothing described that no route has (a renamed operationId would leave its description behind).
  assert.deepEqual(Object.keys(operations).filter((id) => !seen.has(id)), []);
});

test('errors: the envelope with every catalogue code, referenced by each operation as its routes answer them', () => {
  const envelope = doc.components.schemas.ErrorResponse;
  assert.deepEqual(envelope.properties.error.required, ['code', 'message']);
  assert.deepEqual([...envelope.properties.error.properties.code.enum].sort(), Object.keys(catalogue).sort());
  const errorRef = (op: any, status: number) => op.responses[String(status)]?.$ref as string | undefined;
  for (const { where, op } of eachOperation()) {
    assert.ok(errorRef(op, 500), `${where} has a 500`);
    for (const [status, r] of Object.entries<any>(op.responses)) {
      if (Number(status) < 400) continue;
      const shared = doc.components.responses[r.$ref.replace('#/components/responses/', '')];
      assert.equal(shared.content['application/json'].schema.$ref, '#/components/schemas/ErrorResponse', `${where} ${status}`);
    }
    const isPublic = Array.isArray(op.security) && op.security.length === 0;
    assert.equal(Boolean(errorRef(op, 401)), !isPublic, `${where}: 401 exactly when a token is needed`);
    if (!isPublic) assert.ok(errorRef(op, 429), `${where}: 429 (failed-auth limiter)`);
    assert.equal(Boolean(errorRef(op, 403)), !isPublic && op['x-infergate-role'] !== 'reader', `${where}: 403 exactly above reader`);
    if (where.includes('{')) assert.ok(errorRef(op, 404), `${where} has a 404`);
    if (op.requestBody) assert.ok(errorRef(op, 400) && errorRef(op, 413), `${where}: a body can be wrong or too large`);
  }
  const get = (path: string, m: string) => doc.paths[path][m];
  assert.ok(errorRef(get('/api/endpoints', 'post'), 409), 'create endpoint: 409 when the name is taken');
  assert.ok(errorRef(get('/api/endpoints/{name}/deployments/{deployment}', 'delete'), 409), 'DeploymentHasTraffic');
});

test('security: a bearer scheme for every route, none for the health check', () => {
  assert.deepEqual(doc.components.securitySchemes.bearerAuth, { type: 'http', scheme: 'bearer', description: doc.components.securitySchemes.bearerAuth.description });
  assert.deepEqual(doc.security, [{ bearerAuth: [] }]);
  assert.deepEqual(doc.paths['/healthz'].get.security, []);
  const publicOps = eachOperation().filter(({ op }) => Array.isArray(op.security) && op.security.length === 0);
  assert.deepEqual(publicOps.map((o) => o.where), ['GET /healthz']);
  assert.equal(doc.paths['/api/tokens'].post['x-infergate-role'], 'owner');
});

test('the show shapes and request bodies are described', () => {
  const schemas = doc.components.schemas;
  for (const field of ['auth_mode', 'scoring_uri', 'traffic', 'mirror_traffic', 'provisioning_state']) assert.ok(schemas.Endpoint.properties[field], `Endpoint.${field}`);
  const depExtra = schemas.Deployment.allOf[1].properties;
  for (const field of ['creation_context', 'id', 'provisioning_state']) assert.ok(depExtra[field], `Deployment.${field}`);
  const ok = (path: string, m: string, status: string) => doc.paths[path][m].responses[status].content['application/json'].schema;
  assert.deepEqual(ok('/api/endpoints/{name}', 'get', '200'), { $ref: '#/components/schemas/Endpoint' });
  assert.deepEqual(ok('/api/endpoints', 'get', '200'), { type: 'array', items: { $ref: '#/components/schemas/Endpoint' } });
  assert.deepEqual(ok('/api/endpoints/{name}/deployments', 'post', '201'), { $ref: '#/components/schemas/Deployment' });
  assert.deepEqual(ok('/api/endpoints/{name}/credentials', 'post', '200'), { $ref: '#/components/schemas/Credentials' });
  assert.deepEqual(ok('/api/tokens', 'get', '200'), { type: 'array', items: { $ref: '#/components/schemas/Token' } });
  const body = (path: string, m: string) => doc.paths[path][m].requestBody.content['application/json'].schema;
  assert.deepEqual(body('/api/endpoints', 'post'), { $ref: '#/components/schemas/EndpointDocument' });
  assert.deepEqual(body('/api/endpoints/{name}/deployments/{deployment}', 'put'), { $ref: '#/components/schemas/DeploymentDocument' });
  assert.deepEqual(body('/api/models', 'post'), { $ref: '#/components/schemas/ModelDocument' });
  assert.ok(doc.paths['/api/endpoints/{name}/deployments/{deployment}/logs'].get.responses['200'].content['text/plain']);
});

test('document schemas are documentation only: our validator still answers, with every problem located', async () => {
  // An endpoint document with two problems: Fastify's Ajv would stop at the first and word it its way.
  const r = await app.inject({ method: 'POST', url: '/api/endpoints', headers: { authorization: `Bearer ${owner}` }, payload: { name: '-bad-', auth_mode: 'nope' } });
  assert.equal(r.statusCode, 400);
  const e = r.json().error;
  assert.equal(e.code, 'ValidationFailed');
  assert.ok(Array.isArray(e.details) && e.details.length >= 2, r.body);
});

test('/docs: the reference page, from the control plane itself, with its scripts served locally', async () => {
  const page = await app.inject({ method: 'GET', url: '/docs' });
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.match(page.body, /<div id="swagger-ui">/);
  const srcs = [...page.body.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
  assert.ok(srcs.length >= 4);
  for (const src of srcs) {
    assert.ok(src.startsWith('/docs/static/'), `${src} is served here (no CDN)`);
    const r = await app.inject({ method: 'GET', url: src });
    assert.equal(r.statusCode, 200, src);
    assert.ok(r.rawPayload.length > 0, src);
  }
  const init = await app.inject({ method: 'GET', url: '/docs/static/init.js' });
  assert.match(init.body, /url: '\/openapi\.json'/);
  // The page is public, the document it shows is not.
  assert.equal((await app.inject({ method: 'GET', url: '/openapi.json' })).statusCode, 401);
  assert.equal((await app.inject({ method: 'GET', url: '/docs/static/..%2f..%2fpackage.json' })).statusCode, 404);
  assert.equal((await app.inject({ method: 'GET', url: '/docs/static/index.html' })).statusCode, 404);
});
