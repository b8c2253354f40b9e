// Contract tests of the control-plane REST API: fastify's inject() against buildApi wired to a
// MemoryStateStore, a real Controller, and a fake Backend whose instances the test makes ready or failed.

import { afterEach, beforeEach, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Backend, LogContainer, ObservedInstance } from '../backend/types.js';
import { sha256Hex } from '../compile/routing.js';
import type { InstancePlan, RoutingTable } from '../ir/types.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { verifyToken } from '../util/token.js';
import type { InfergateError } from '../errors/index.js';
import type { EndpointSpec } from '../spec/types.js';
import type { ProvisioningState, StoredDeployment } from '../store/types.js';
import { createToken } from './auth.js';
import { injectSink, uploadedDeployment, uploadedEnvironment, uploadedModel } from '../cli/uploads-testing.js';
import { buildApi } from './server.js';
import { checkTraffic } from '../control/index.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const jsModel = join(root, 'test/fixtures/js-model');

// ---------------------------------------------------------------------------------------------------
// A backend that runs nothing: it records what it is asked and lets the test move instances along.

class FakeBackend implements Backend {
  readonly kind = 'process' as const;
  readonly started: string[] = [];
  readonly stopped: string[] = [];
  readonly instances = new Map<string, ObservedInstance>();
  readonly logCalls: { endpoint: string; deployment: string; container: LogContainer; lines: number }[] = [];
  private listeners: (() => void)[] = [];

  observe(): ObservedInstance[] {
    return [...this.instances.values()].map((i) => ({ ...i }));
  }

  async start(id: string, plan: InstancePlan, index: number): Promise<void> {
    if (this.instances.has(id)) return;
    this.started.push(id);
    this.instances.set(id, { id, endpoint: plan.endpoint, deployment: plan.deployment, revision: plan.revision, index, state: 'starting', restarts: 0 });
    this.changed();
  }

  async stop(id: string): Promise<void> {
    this.stopped.push(id);
    if (this.instances.delete(id)) this.changed();
  }

  async logs(endpoint: string, deployment: string, container: LogContainer, lines: number): Promise<string> {
    this.logCalls.push({ endpoint, deployment, container, lines });
    return `${container} log of ${endpoint}/${deployment}\n`;
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  async close(): Promise<void> {}

  /** Every starting instance of the deployment becomes ready (with a socket address) or failed. */
  mark(endpoint: string, deployment: string, state: 'ready' | 'failed', error?: { code: string; message: string }): number {
    let n = 0;
    for (const i of this.instances.values()) {
      if (i.endpoint !== endpoint || i.deployment !== deployment || i.state !== 'starting') continue;
      i.state = state;
      if (state === 'ready') i.address = { instanceId: i.id, transport: 'framed', socketPath: `/tmp/fake/${i.id}.sock` };
      if (error) i.error = error;
      n++;
    }
    this.changed();
    return n;
  }

  private changed(): void {
    for (const l of this.listeners) queueMicrotask(l);
  }
}

// ---------------------------------------------------------------------------------------------------
// Fixture: a fresh store, backend, controller and app per test

let store: MemoryStateStore;
let backend: FakeBackend;
let controller: Controller;
let app: FastifyInstance;
let tables: RoutingTable[];

const ROUTER = 'http://127.0.0.1:9999';

/** Every call below is the owner's; access control itself is tested in access.test.ts. */
let ownerToken: string;
/** The workspace's asset store and blob store (uploads) live under it. */
let workspaceDir: string;

beforeEach(async () => {
  workspaceDir = mkdtempSync(join(tmpdir(), 'infergate-api-'));
  store = new MemoryStateStore();
  ownerToken = createToken(store, { role: 'owner' }).token;
  backend = new FakeBackend();
  tables = [];
  controller = new Controller({ store, backend, publish: (t) => tables.push(t), deregistrationDelayMs: 0 });
  app = await buildApi({
    store,
    controller,
    logs: (e, d, c, n) => backend.logs(e, d, c, n),
    routerUrl: ROUTER,
    workspace: 'test-ws',
    location: 'local',
    version: '0.0.0-test',
    assetsDir: join(workspaceDir, 'assets'),
  });
});

afterEach(async () => {
  controller.stop();
  await app.close();
  rmSync(workspaceDir, { recursive: true, force: true });
});

/** As the CLI does: the paths of model, environment and deployment documents are uploaded before they are sent. */
async function asCli(url: string, payload: unknown): Promise<unknown> {
  if (payload === undefined || typeof payload !== 'object') return payload;
  const sink = injectSink(app, ownerToken);
  if (/^\/api\/models\/?$/.test(url)) return uploadedModel(sink, payload as Record<string, unknown>);
  if (/^\/api\/environments\/?$/.test(url)) return uploadedEnvironment(sink, payload as Record<string, unknown>);
  if (/\/deployments(\/[^/?]+)?(\?.*)?$/.test(url)) return uploadedDeployment(sink, payload as Record<string, unknown>);
  return payload;
}

async function call(method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: unknown) {
  payload = await asCli(url, payload);
  const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ownerToken}` }, ...(payload !== undefined ? { payload: payload as object } : {}) });
  let json: any;
  try {
    json = res.json();
  } catch {
    json = undefined;
  }
  return { status: res.statusCode, json, text: res.body, headers: res.headers };
}

const endpointDoc = (name = 'my-endpoint', extra: Record<string, unknown> = {}) => ({ name, auth_mode: 'key', ...extra });

const deploymentDoc = (name = 'blue', endpoint = 'my-endpoint', extra: Record<string, unknown> = {}) => ({
  name,
  endpoint_name: endpoint,
  model: { path: join(jsModel, 'model') },
  code_configuration: { code: jsModel, scoring_script: 'score.mjs' },
  instance_type: 'Standard_DS3_v2',
  instance_count: 1,
  ...extra,
});

/** Lets queued backend change notifications and deregistration timers run their controller passes. */
async function settle(): Promise<void> {
  for (let i = 0; i < 4; i++) {
    await sleep(1);
    await controller.kick();
  }
}

async function createEndpoint(name = 'my-endpoint', extra: Record<string, unknown> = {}) {
  const r = await call('POST', '/api/endpoints', endpointDoc(name, extra));
  assert.equal(r.status, 201, r.text);
  return r;
}

async function createReadyDeployment(name = 'blue', endpoint = 'my-endpoint', extra: Record<string, unknown> = {}) {
  const r = await call('POST', `/api/endpoints/${endpoint}/deployments`, deploymentDoc(name, endpoint, extra));
  assert.equal(r.status, 201, r.text);
  await settle();
  assert.ok(backend.mark(endpoint, name, 'ready') > 0);
  await settle();
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Endpoints

test('create endpoint: 201 with the fields az ml online-endpoint show prints', async () => {
  const r = await call('POST', '/api/endpoints', endpointDoc('my-endpoint', { description: 'd', tags: { team: 'ml' } }));
  assert.equal(r.status, 201);
  const e = r.json;
  assert.equal(e.name, 'my-endpoint');
  assert.equal(e.auth_mode, 'key');
  assert.equal(e.scoring_uri, `${ROUTER}/endpoints/my-endpoint/score`);
  assert.equal(e.openapi_uri, `${ROUTER}/endpoints/my-endpoint/swagger.json`);
  assert.equal(e.provisioning_state, 'Succeeded');
  assert.deepEqual(e.traffic, {});
  assert.deepEqual(e.mirror_traffic, {});
  assert.equal(e.kind, 'Managed');
  assert.equal(e.location, 'local');
  assert.equal(e.description, 'd');
  assert.deepEqual(e.tags, { team: 'ml' });
  assert.equal(e.id, '/workspaces/test-ws/onlineEndpoints/my-endpoint');
  assert.equal(e.public_network_access, 'enabled');
  assert.equal(e.properties['azureml.onlineendpointid'], '/workspaces/test-ws/onlineendpoints/my-endpoint');
  // No secret in show.
  const stored = store.getEndpoint('my-endpoint')!;
  assert.ok(!r.text.includes(stored.keys.primaryKey) && !r.text.includes(stored.keys.tokenSecret));
  // show and list give the same.
  assert.deepEqual((await call('GET', '/api/endpoints/my-endpoint')).json, e);
  assert.deepEqual((await call('GET', '/api/endpoints')).json, [e]);
  // The router got a table with the endpoint and its key hashes.
  const last = tables.at(-1)!;
  assert.deepEqual(last.endpoints.map((x) => x.name), ['my-endpoint']);
  assert.deepEqual(last.endpoints[0].keyHashes, [sha256Hex(stored.keys.primaryKey), sha256Hex(stored.keys.secondaryKey)]);
});

test('a duplicate endpoint is 409 EndpointAlreadyExists', async () => {
  await createEndpoint();
  const r = await call('POST', '/api/endpoints', endpointDoc());
  assert.equal(r.status, 409);
  assert.equal(r.json.error.code, 'EndpointAlreadyExists');
  assert.match(r.json.error.message, /my-endpoint/);
});

test('traffic at creation is 400 InvalidTraffic, and nothing is stored', async () => {
  for (const extra of [{ traffic: { blue: 100 } }, { mirror_traffic: { blue: 10 } }]) {
    const r = await call('POST', '/api/endpoints', endpointDoc('my-endpoint', extra));
    assert.equal(r.status, 400);
    assert.equal(r.json.error.code, 'InvalidTraffic');
  }
  const show = await call('GET', '/api/endpoints/my-endpoint');
  assert.equal(show.status, 404);
  assert.equal(show.json.error.code, 'EndpointNotFound');
  assert.equal(store.listEndpoints().length, 0);
});

test('a bad document is 400 ValidationFailed with every problem in details', async () => {
  const r = await call('POST', '/api/endpoints', { name: 'x', auth_mode: 'password', colour: 'blue' });
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'ValidationFailed');
  const details = r.json.error.details as { path: string; message: string; file: string }[];
  assert.ok(Array.isArray(details));
  assert.deepEqual(details.map((d) => d.path).sort(), ['auth_mode', 'colour', 'name']);
  assert.ok(details.every((d) => d.file === 'request body' && typeof d.message === 'string' && d.message.length > 0));
  assert.match(r.json.error.message, /3 problems/);
  // Not an object at all.
  const notObject = await call('POST', '/api/endpoints', [1, 2]);
  assert.equal(notObject.status, 400);
  assert.equal(store.listEndpoints().length, 0);
});

test("auth_mode aad_token is refused with BadArgument", async () => {
  const r = await call('POST', '/api/endpoints', endpointDoc('my-endpoint', { auth_mode: 'aad_token' }));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'BadArgument');
});

test('unknown endpoint: 404 EndpointNotFound on show, update, delete and deployments', async () => {
  for (const [method, url, body] of [
    ['GET', '/api/endpoints/nope', undefined],
    ['PUT', '/api/endpoints/nope', endpointDoc('nope')],
    ['DELETE', '/api/endpoints/nope', undefined],
    ['GET', '/api/endpoints/nope/deployments', undefined],
    ['POST', '/api/endpoints/nope/credentials', undefined],
  ] as const) {
    const r = await call(method, url, body);
    assert.equal(r.status, 404, `${method} ${url}`);
    assert.equal(r.json.error.code, 'EndpointNotFound');
  }
});

// ---------------------------------------------------------------------------------------------------
// Deployments

test('deployment create: 201 Creating, instances started; Succeeded once the backend says ready', async () => {
  await createEndpoint();
  const r = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', 'my-endpoint', { instance_count: 2 }));
  assert.equal(r.status, 201, r.text);
  assert.equal(r.json.provisioning_state, 'Creating');
  assert.equal(r.json.name, 'blue');
  assert.equal(r.json.endpoint_name, 'my-endpoint');
  assert.equal(r.json.instance_count, 2);
  assert.equal(r.json.id, '/workspaces/test-ws/onlineEndpoints/my-endpoint/deployments/blue');
  await settle();
  assert.equal(backend.started.length, 2);
  assert.ok(backend.started.every((id) => id.startsWith('my-endpoint.blue.')));
  assert.deepEqual(backend.started.map((id) => id.split('.').at(-1)).sort(), ['0', '1']);
  assert.equal((await call('GET', '/api/endpoints/my-endpoint/deployments/blue')).json.provisioning_state, 'Creating');

  backend.mark('my-endpoint', 'blue', 'ready');
  await settle();
  const shown = await call('GET', '/api/endpoints/my-endpoint/deployments/blue');
  assert.equal(shown.json.provisioning_state, 'Succeeded');
  assert.equal(shown.json.error, undefined);
  // The endpoint shows the new deployment at 0%; the router knows both ready instances.
  assert.deepEqual((await call('GET', '/api/endpoints/my-endpoint')).json.traffic, { blue: 0 });
  const route = tables.at(-1)!.endpoints[0];
  assert.deepEqual(route.deployments.map((d) => [d.name, d.instances.length]), [['blue', 2]]);
  assert.deepEqual(route.traffic, []);
  // Listed.
  assert.deepEqual((await call('GET', '/api/endpoints/my-endpoint/deployments')).json.map((d: any) => d.name), ['blue']);
});

test('an instance that fails init() makes the deployment Failed with its error', async () => {
  await createEndpoint();
  await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc());
  await settle();
  backend.mark('my-endpoint', 'blue', 'failed', { code: 'UserScriptInitFailed', message: 'Traceback: boom' });
  await settle();
  const shown = await call('GET', '/api/endpoints/my-endpoint/deployments/blue');
  assert.equal(shown.json.provisioning_state, 'Failed');
  assert.deepEqual(shown.json.error, { code: 'UserScriptInitFailed', message: 'Traceback: boom' });
});

test('deployment documents: validation, unsupported scripts, duplicates and name mismatches', async () => {
  await createEndpoint();
  // An upload that never happened (a well-formed reference, nothing behind it).
  const missing = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', 'my-endpoint', { model: { path: `upload:sha256:${'0'.repeat(64)}` } }));
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error.code, 'BadArgument');
  assert.match(missing.json.error.message, /is not on this server: upload its files and manifest first/);
  const malformed = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', 'my-endpoint', { model: { path: 'upload:sha256:xyz' }, code_configuration: { code: `upload:sha256:${'1'.repeat(64)}`, scoring_script: 'score.mjs' } }));
  assert.equal(malformed.json.error.code, 'ValidationFailed');
  assert.deepEqual(malformed.json.error.details.map((d: any) => d.path), ['model.path']);
  // Valid YAML for Azure, but not something infergate runs: refused before anything is stored.
  const noCode = await call('POST', '/api/endpoints/my-endpoint/deployments', { ...deploymentDoc(), code_configuration: undefined });
  assert.equal(noCode.status, 400);
  assert.equal(noCode.json.error.code, 'BadArgument');
  const wrongEndpoint = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', 'other-endpoint'));
  assert.equal(wrongEndpoint.status, 400);
  assert.equal(wrongEndpoint.json.error.code, 'BadArgument');
  assert.equal(store.listDeployments().length, 0);
  assert.equal(backend.started.length, 0);

  await createReadyDeployment('blue');
  const dup = await call('POST', '/api/endpoints/my-endpoint/deployments', deploymentDoc('BLUE'));
  assert.equal(dup.status, 409);
  assert.equal(dup.json.error.code, 'DeploymentAlreadyExists');
  const unknown = await call('GET', '/api/endpoints/my-endpoint/deployments/green');
  assert.equal(unknown.status, 404);
  assert.equal(unknown.json.error.code, 'DeploymentNotFound');
});

test('updating only instance_count scales (Scaling), without replacing running instances', async () => {
  await createEndpoint();
  await createReadyDeployment('blue');
  const first = backend.started[0];
  const r = await call('PUT', '/api/endpoints/my-endpoint/deployments/blue', deploymentDoc('blue', 'my-endpoint', { instance_count: 2 }));
  assert.equal(r.status, 200, r.text);
  assert.equal(r.json.instance_count, 2);
  assert.equal(r.json.provisioning_state, 'Scaling');
  await settle();
  assert.equal(backend.started.length, 2);
  assert.equal(backend.started[1], first.replace(/\.0$/, '.1'));
  assert.equal(backend.stopped.length, 0);
  backend.mark('my-endpoint', 'blue', 'ready');
  await settle();
  assert.equal((await call('GET', '/api/endpoints/my-endpoint/deployments/blue')).json.provisioning_state, 'Succeeded');
});

test('two updates prepared at once: one is saved, the other is refused (409) instead of saving over it', async () => {
  await createEndpoint();
  await createReadyDeployment('blue');
  const [a, b] = await Promise.all([
    call('PUT', '/api/endpoints/my-endpoint/deployments/blue', deploymentDoc('blue', 'my-endpoint', { instance_count: 2 })),
    call('PUT', '/api/endpoints/my-endpoint/deployments/blue', deploymentDoc('blue', 'my-endpoint', { instance_count: 3 })),
  ]);
  const statuses = [a.status, b.status].sort();
  assert.deepEqual(statuses, [200, 409], `${a.text}\n${b.text}`);
  const [won, lost] = a.status === 200 ? [a, b] : [b, a];
  assert.equal(lost.json.error.code, 'OperationInProgress');
  assert.match(lost.json.error.message, /changed by another request \(or the autoscaler\) while this update was being prepared; nothing was saved/);
  assert.equal((await call('GET', '/api/endpoints/my-endpoint/deployments/blue')).json.instance_count, won.json.instance_count);
});

// ---------------------------------------------------------------------------------------------------
// Traffic

test('traffic update: applied and published; a missing deployment or live+mirror on one deployment is InvalidTraffic', async () => {
  await createEndpoint();
  await createReadyDeployment('blue');
  await createReadyDeployment('green');

  const ok = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 90, green: 10 } }));
  assert.equal(ok.status, 200, ok.text);
  assert.deepEqual(ok.json.traffic, { blue: 90, green: 10 });
  assert.equal(ok.json.provisioning_state, 'Succeeded');
  assert.deepEqual(tables.at(-1)!.endpoints[0].traffic, [
    { deployment: 'blue', weight: 90 },
    { deployment: 'green', weight: 10 },
  ]);

  const missing = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 50, ghost: 50 } }));
  assert.equal(missing.status, 400);
  assert.equal(missing.json.error.code, 'InvalidTraffic');
  assert.match(missing.json.error.message, /ghost/);

  // Live and mirror traffic on one deployment is caught by the document's own rules, with the YAML path.
  const both = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 100 }, mirror_traffic: { blue: 10 } }));
  assert.equal(both.status, 400);
  assert.equal(both.json.error.code, 'ValidationFailed');
  assert.deepEqual(
    both.json.error.details.map((d: any) => [d.path, d.message]),
    [['mirror_traffic', "deployment 'blue' cannot receive both live and mirror traffic"]],
  );
  const sum = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 50, green: 10 } }));
  assert.equal(sum.json.error.code, 'ValidationFailed');

  const mirrorMissing = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 100 }, mirror_traffic: { ghost: 10 } }));
  assert.equal(mirrorMissing.json.error.code, 'InvalidTraffic');

  // Refused updates change nothing.
  assert.deepEqual((await call('GET', '/api/endpoints/my-endpoint')).json.traffic, { blue: 90, green: 10 });

  const mirror = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 100 }, mirror_traffic: { green: 10 } }));
  assert.equal(mirror.status, 200, mirror.text);
  assert.deepEqual(mirror.json.mirror_traffic, { green: 10 });
  assert.deepEqual(tables.at(-1)!.endpoints[0].mirror, { deployment: 'green', percent: 10 });
});

test('checkTraffic: deployments that do not exist (or are being deleted), live and mirror on one deployment', () => {
  const spec = (traffic: Record<string, number>, mirrorTraffic: Record<string, number> = {}) =>
    ({ name: 'ep', kind: 'managed', tags: {}, properties: {}, authMode: 'key', traffic, mirrorTraffic, publicNetworkAccess: 'enabled' }) as EndpointSpec;
  const dep = (name: string, provisioningState: ProvisioningState = 'Succeeded') =>
    ({ spec: { name, endpointName: 'ep' }, generation: 1, createdAt: '', updatedAt: '', status: { provisioningState, observedGeneration: 1, updatedAt: '' } }) as StoredDeployment;
  const code = (f: () => void) => {
    try {
      f();
      return 'ok';
    } catch (e) {
      return (e as InfergateError).code;
    }
  };
  // Traffic keys are lower-cased; deployment names keep their case.
  assert.equal(code(() => checkTraffic(spec({ blue: 90, green: 10 }), [dep('Blue'), dep('green')])), 'ok');
  assert.equal(code(() => checkTraffic(spec({ blue: 100 }), [])), 'InvalidTraffic');
  assert.equal(code(() => checkTraffic(spec({ blue: 100 }), [dep('blue', 'Deleting')])), 'InvalidTraffic');
  assert.equal(code(() => checkTraffic(spec({ blue: 100 }, { green: 10 }), [dep('blue')])), 'InvalidTraffic');
  assert.equal(code(() => checkTraffic(spec({ blue: 100 }, { blue: 10 }), [dep('blue')])), 'InvalidTraffic');
  assert.equal(code(() => checkTraffic(spec({ blue: 100 }, { green: 10 }), [dep('blue'), dep('green')])), 'ok');
});

test('an update naming another endpoint is BadArgument', async () => {
  await createEndpoint();
  const r = await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('other-endpoint'));
  assert.equal(r.status, 400);
  assert.equal(r.json.error.code, 'BadArgument');
});

test('deleting a deployment with live or mirror traffic is 409 DeploymentHasTraffic; at 0% it is deleted', async () => {
  await createEndpoint();
  await createReadyDeployment('blue');
  await createReadyDeployment('green');
  await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 100 }, mirror_traffic: { green: 10 } }));

  for (const name of ['blue', 'green']) {
    const r = await call('DELETE', `/api/endpoints/my-endpoint/deployments/${name}`);
    assert.equal(r.status, 409, name);
    assert.equal(r.json.error.code, 'DeploymentHasTraffic');
  }
  assert.equal(backend.stopped.length, 0);

  await call('PUT', '/api/endpoints/my-endpoint', endpointDoc('my-endpoint', { traffic: { blue: 100 } }));
  const del = await call('DELETE', '/api/endpoints/my-endpoint/deployments/green');
  assert.ok(del.status === 200 || del.status === 202, del.text);
  await settle();
  assert.equal(backend.stopped.filter((id) => id.startsWith('my-endpoint.green.')).length, 1);
  await settle();
  assert.equal((await call('GET', '/api/endpoints/my-endpoint/deployments/green')).status, 404);
  assert.deepEqual(tables.at(-1)!.endpoints[0].deployments.map((d) => d.name), ['blue']);
});

test('deleting an endpoint removes it and all its deployments', async () => {
  await createEndpoint();
  await createReadyDeployment('blue');
  const r = await call('DELETE', '/api/endpoints/my-endpoint');
  assert.ok(r.status === 200 || r.status === 202, r.text);
  await settle();
  await settle();
  assert.equal((await call('GET', '/api/endpoints/my-endpoint')).status, 404);
  assert.equal(store.listDeployments().length, 0);
  assert.equal(backend.instances.size, 0);
  assert.deepEqual(tables.at(-1)!.endpoints, []);
});

// ---------------------------------------------------------------------------------------------------
// Credentials

test('credentials: keys for a key endpoint, a verifiable token for an aml_token endpoint', async () => {
  await createEndpoint('key-endpoint');
  await createEndpoint('token-endpoint', { auth_mode: 'aml_token' });

  const keys = await call('POST', '/api/endpoints/key-endpoint/credentials');
  assert.equal(keys.status, 200);
  const stored = store.getEndpoint('key-endpoint')!.keys;
  assert.deepEqual(keys.json, { primaryKey: stored.primaryKey, secondaryKey: stored.secondaryKey });
  assert.ok(stored.primaryKey.length >= 32 && stored.primaryKey !== stored.secondaryKey);

  const token = await call('POST', '/api/endpoints/token-endpoint/credentials');
  assert.equal(token.status, 200);
  assert.equal(token.json.tokenType, 'Bearer');
  const secret = store.getEndpoint('token-endpoint')!.keys.tokenSecret;
  assert.equal(verifyToken(token.json.accessToken, 'token-endpoint', secret), true);
  assert.equal(verifyToken(token.json.accessToken, 'key-endpoint', secret), false);
  const nowS = Date.now() / 1000;
  assert.ok(token.json.expiryTimeUtc > nowS && token.json.refreshAfterTimeUtc > nowS && token.json.refreshAfterTimeUtc < token.json.expiryTimeUtc);

  // The router table carries the secret for the token endpoint and no key hashes.
  const route = tables.at(-1)!.endpoints.find((e) => e.name === 'token-endpoint')!;
  assert.equal(route.authMode, 'aml_token');
  assert.deepEqual(route.keyHashes, []);
  assert.equal(route.tokenSecret, secret);
});

test('regenerate-keys changes only the chosen key, and the router gets the new hash', async () => {
  await createEndpoint();
  const before = store.getEndpoint('my-endpoint')!.keys;

  const r = await call('POST', '/api/endpoints/my-endpoint/regenerate-keys', { key_type: 'secondary' });
  assert.equal(r.status, 200, r.text);
  const mid = store.getEndpoint('my-endpoint')!.keys;
  assert.equal(mid.primaryKey, before.primaryKey);
  assert.notEqual(mid.secondaryKey, before.secondaryKey);
  assert.equal(mid.tokenSecret, before.tokenSecret);
  assert.deepEqual(tables.at(-1)!.endpoints[0].keyHashes, [sha256Hex(mid.primaryKey), sha256Hex(mid.secondaryKey)]);

  const p = await call('POST', '/api/endpoints/my-endpoint/regenerate-keys', { key_type: 'Primary' });
  assert.equal(p.status, 200, p.text);
  const after = store.getEndpoint('my-endpoint')!.keys;
  assert.notEqual(after.primaryKey, mid.primaryKey);
  assert.equal(after.secondaryKey, mid.secondaryKey);
  assert.deepEqual((await call('POST', '/api/endpoints/my-endpoint/credentials')).json, { primaryKey: after.primaryKey, secondaryKey: after.secondaryKey });
});

test('regenerate-keys: a bad key type is KeyTypeInvalid; a token endpoint is NotKeyAuth', async () => {
  await createEndpoint();
  const before = store.getEndpoint('my-endpoint')!.keys;
  const bad = await call('POST', '/api/endpoints/my-endpoint/regenerate-keys', { key_type: 'tertiary' });
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'KeyTypeInvalid');
  assert.deepEqual(store.getEndpoint('my-endpoint')!.keys, before);

  await createEndpoint('token-endpoint', { auth_mode: 'aml_token' });
  const notKey = await call('POST', '/api/endpoints/token-endpoint/regenerate-keys', { key_type: 'primary' });
  assert.equal(notKey.status, 400);
  assert.equal(notKey.json.error.code, 'NotKeyAuth');
});

// ---------------------------------------------------------------------------------------------------
// Logs, routes, OpenAPI

test('logs: the chosen container from the backend; a bad container is BadArgument', async () => {
  await createEndpoint();
  await createReadyDeployment('blue');
  const r = await call('GET', '/api/endpoints/my-endpoint/deployments/blue/logs?container=storage-initializer&lines=20');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain/);
  assert.equal(r.text, 'storage-initializer log of my-endpoint/blue\n');
  assert.deepEqual(backend.logCalls.at(-1), { endpoint: 'my-endpoint', deployment: 'blue', container: 'storage-initializer', lines: 20 });
  await call('GET', '/api/endpoints/my-endpoint/deployments/blue/logs');
  assert.deepEqual(backend.logCalls.at(-1), { endpoint: 'my-endpoint', deployment: 'blue', container: 'inference-server', lines: 5000 });

  const bad = await call('GET', '/api/endpoints/my-endpoint/deployments/blue/logs?container=sidecar');
  assert.equal(bad.status, 400);
  assert.equal(bad.json.error.code, 'BadArgument');
  assert.match(bad.json.error.message, /sidecar/);
  const badLines = await call('GET', '/api/endpoints/my-endpoint/deployments/blue/logs?lines=-1');
  assert.equal(badLines.status, 400);
  assert.equal(backend.logCalls.length, 2);
});

test('an unknown route is 404 RouteNotFound', async () => {
  for (const [method, url] of [
    ['GET', '/api/nothing'],
    ['POST', '/api/endpoints/my-endpoint/frobnicate'],
    ['DELETE', '/api/endpoints'],
  ] as const) {
    const r = await call(method, url);
    assert.equal(r.status, 404, `${method} ${url}`);
    assert.equal(r.json.error.code, 'RouteNotFound');
    assert.match(r.json.error.message, new RegExp(`${method} `));
  }
});

test('/openapi.json lists the API routes', async () => {
  const r = await call('GET', '/openapi.json');
  assert.equal(r.status, 200);
  const doc = r.json;
  assert.match(doc.openapi, /^3\./);
  assert.equal(doc.info.version, '0.0.0-test');
  const paths = Object.keys(doc.paths);
  for (const p of [
    '/api/info',
    '/api/endpoints',
    '/api/endpoints/{name}',
    '/api/endpoints/{name}/credentials',
    '/api/endpoints/{name}/regenerate-keys',
    '/api/endpoints/{name}/deployments',
    '/api/endpoints/{name}/deployments/{deployment}',
    '/api/endpoints/{name}/deployments/{deployment}/logs',
  ]) {
    assert.ok(paths.includes(p), `${p} in ${paths.join(', ')}`);
  }
  assert.ok(!paths.includes('/openapi.json'), 'the document itself is hidden');
  assert.deepEqual(Object.keys(doc.paths['/api/endpoints']).sort(), ['get', 'post']);
  assert.deepEqual(Object.keys(doc.paths['/api/endpoints/{name}']).sort(), ['delete', 'get', 'put']);
  assert.equal(doc.paths['/api/endpoints'].post.summary, 'Create an endpoint');
});

test('/api/info', async () => {
  const r = await call('GET', '/api/info');
  assert.deepEqual(r.json, { version: '0.0.0-test', router_url: ROUTER, workspace: 'test-ws' });
});

test('the server reads no path a client names: absolute and relative paths in API documents are refused (issue 9)', async () => {
  await createEndpoint();
  const raw = async (method: 'POST' | 'PUT', url: string, payload: object) => {
    const res = await app.inject({ method, url, headers: { authorization: `Bearer ${ownerToken}` }, payload });
    return { status: res.statusCode, json: res.json() as any };
  };
  const shadow = '/etc/shadow';
  const attempts: [string, object][] = [
    ['/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', 'my-endpoint', { model: { path: shadow } })],
    ['/api/endpoints/my-endpoint/deployments', deploymentDoc('blue', 'my-endpoint', { model: { path: '../../etc' } })],
    ['/api/endpoints/my-endpoint/deployments', { ...deploymentDoc(), code_configuration: { code: '/etc', scoring_script: 'passwd' } }],
    ['/api/endpoints/my-endpoint/deployments', { ...deploymentDoc(), model: undefined, code_configuration: { code: `upload:sha256:${'1'.repeat(64)}`, scoring_script: 'score.py' }, environment: { image: 'python:3.11', conda_file: shadow } }],
    ['/api/models', { name: 'stolen', path: shadow }],
    ['/api/environments', { name: 'stolen', image: 'python:3.11', conda_file: shadow }],
  ];
  for (const [url, doc] of attempts) {
    const r = await raw('POST', url, doc);
    assert.equal(r.status, 400, JSON.stringify(r.json));
    assert.equal(r.json.error.code, 'BadArgument', JSON.stringify(r.json));
    assert.match(r.json.error.message, /is a file system path; the server reads no path a client names/);
  }
  // An inline conda mapping naming a local wheel by path: refused too (the CLI uploads such entries).
  const wheel = await raw('POST', '/api/environments', { name: 'stolen', image: 'python:3.11', conda_file: { dependencies: [{ pip: ['/etc/shadow.whl'] }] } });
  assert.equal(wheel.status, 400);
  assert.match(wheel.json.error.message, /names a local path that was not uploaded/);
  // pip options and direct references that make pip (run by the server) read a server path: refused.
  for (const entry of ['-r /etc/shadow', '--find-links /var/lib/secret', '-e /root/project', 'proj @ file:///root/project']) {
    const r = await raw('POST', '/api/environments', { name: 'stolen', image: 'python:3.11', conda_file: { dependencies: [{ pip: [entry] }] } });
    assert.equal(r.status, 400, `${entry}: ${JSON.stringify(r.json)}`);
    assert.match(r.json.error.message, /is refused: pip would read a path on the server/);
  }
  assert.equal(store.listDeployments().length, 0);
  assert.equal(store.listAssets('model').length + store.listAssets('environment').length, 0);
  const assets = join(workspaceDir, 'assets');
  assert.ok(!existsSync(join(assets, 'models')) && !existsSync(join(assets, 'environments')), 'nothing copied into the asset store');
  assert.deepEqual(existsSync(join(assets, '.tmp')) ? readdirSync(join(assets, '.tmp')) : [], []);
  // An index URL is pip fetching, not reading: kept.
  const index = await raw('POST', '/api/environments', { name: 'indexed', image: 'python:3.11', conda_file: { dependencies: [{ pip: ['--extra-index-url https://pypi.example/simple', 'numpy'] }] } });
  assert.equal(index.status, 201, JSON.stringify(index.json));
});
