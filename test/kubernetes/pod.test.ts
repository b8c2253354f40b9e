// One pod's life without a cluster: the rendered pod's storage initializer (its own command and env) fetches
// model, code and the Python host from the control plane's instance-asset route with the revision's token,
// then the rendered inference-server command runs the host with `--listen tcp:...`, and the router's
// framed client scores through TCP. Pod paths are mapped into a scratch folder; nothing else is changed.

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance } from 'fastify';
import { InstanceAssetTokens, registerInstanceAssetRoutes } from '../../src/api/instance-assets.js';
import { POD_PATHS, renderDeployment } from '../../src/backend/kubernetes/render.js';
import { compileInstancePlan } from '../../src/compile/index.js';
import { InfergateError } from '../../src/errors/index.js';
import { InstanceConnection } from '../../src/protocol/client.js';
import { decodeResponse } from '../../src/protocol/frame.js';
import { DEFAULT_PROBE, DEFAULT_REQUEST_SETTINGS, type DeploymentSpec } from '../../src/spec/types.js';
import { assetLookup, MemoryStateStore } from '../../src/store/index.js';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const PYTHON = '/usr/bin/python3';

const spec: DeploymentSpec = {
  name: 'blue',
  endpointName: 'my-endpoint',
  type: 'kubernetes',
  tags: {},
  properties: {},
  model: { kind: 'inline', path: join(HERE, 'fixtures/model/model.txt'), type: 'custom_model' },
  codeConfiguration: { code: join(HERE, 'fixtures/code'), scoringScript: 'score.py' },
  environment: { kind: 'inline', image: 'infergate-python:bookworm', osType: 'linux' },
  environmentVariables: {},
  instanceType: 'defaultinstancetype',
  instanceCount: 1,
  appInsightsEnabled: false,
  scaleSettings: { type: 'default' },
  requestSettings: { ...DEFAULT_REQUEST_SETTINGS },
  livenessProbe: { ...DEFAULT_PROBE },
  readinessProbe: { ...DEFAULT_PROBE },
  egressPublicNetworkAccess: 'enabled',
  resources: { requests: { cpu: '0.1', memory: '0.1Gi' }, limits: { cpu: '0.2', memory: '200Mi' } },
};

let app: FastifyInstance;
let url: string;
let root: string;
const tokens = new InstanceAssetTokens();
const store = new MemoryStateStore();
before(async () => {
  root = mkdtempSync(join(tmpdir(), 'ig-pod-'));
  store.putEndpoint({ name: 'my-endpoint', kind: 'kubernetes', tags: {}, properties: {}, authMode: 'key', traffic: {}, mirrorTraffic: {}, publicNetworkAccess: 'enabled', compute: 'azureml:k8s' }, { primaryKey: 'a', secondaryKey: 'b', tokenSecret: 'c' });
  store.putDeployment(spec);
  app = Fastify();
  // As api/server.ts answers: the error's own code and status.
  app.setErrorHandler((e, _req, reply) => (e instanceof InfergateError ? reply.status(e.status).send(e.toBody()) : reply.send(e)));
  registerInstanceAssetRoutes(app, { store, lookup: assetLookup(store), tokens });
  url = await app.listen({ host: '127.0.0.1', port: 0 });
});
after(async () => {
  await app.close();
  rmSync(root, { recursive: true, force: true });
});

/** The pod's paths under the scratch folder. */
const inPod = (v: string) => v.replaceAll('/var/infergate', join(root, 'pod')).replaceAll('/var/run/infergate', join(root, 'run'));
const envOf = (list: { name: string; value: string }[]): Record<string, string> => Object.fromEntries(list.map((e) => [e.name, inPod(e.value)]));

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

test('the asset route refuses a missing, foreign or expired token, and a revision that is gone', async () => {
  const plan = compileInstancePlan(spec, assetLookup(store));
  const path = `/api/instance-assets/my-endpoint/blue/${plan.revision}/code`;
  assert.equal((await fetch(url + path)).status, 401);
  const other = tokens.issue({ endpoint: 'my-endpoint', deployment: 'green', revision: plan.revision });
  assert.equal((await fetch(url + path, { headers: { authorization: `Bearer ${other}` } })).status, 401);
  const expired = tokens.issue({ endpoint: 'my-endpoint', deployment: 'blue', revision: plan.revision }, -1);
  assert.equal((await fetch(url + path, { headers: { authorization: `Bearer ${expired}` } })).status, 401);
  const stale = tokens.issue({ endpoint: 'my-endpoint', deployment: 'blue', revision: 'feedface00' });
  const gone = await fetch(url + '/api/instance-assets/my-endpoint/blue/feedface00/code', { headers: { authorization: `Bearer ${stale}` } });
  assert.equal(gone.status, 404);
  assert.equal(((await gone.json()) as { error: { code: string } }).error.code, 'ResourceNotFound');
});

test('storage initializer → Python host on TCP → framed client: the rendered pod serves', { timeout: 60_000 }, async () => {
  const plan = compileInstancePlan(spec, assetLookup(store));
  const token = tokens.issue({ endpoint: 'my-endpoint', deployment: 'blue', revision: plan.revision });
  const [, deployment] = renderDeployment(plan, { namespace: 'ml', workspace: 'ws', controlUrl: url, defaultImage: 'x' }, token) as any[];
  const pod = deployment.spec.template.spec;
  mkdirSync(join(root, 'run'), { recursive: true });
  writeFileSync(join(root, 'run', 'token'), token);

  // The init container, as rendered (python3 -c FETCH_SCRIPT), with the token file where the Secret is mounted.
  const init = pod.initContainers[0];
  // Not spawnSync: the asset route is served by this very process.
  const fetched = await new Promise<{ status: number | null; stdout: string; stderr: string }>((resolve) => {
    const p = execFile(PYTHON, init.command.slice(1), { env: { ...envOf(init.env), INFERGATE_TOKEN_FILE: join(root, 'run', 'token'), PATH: process.env.PATH }, timeout: 30_000 }, (e, stdout, stderr) =>
      resolve({ status: e ? (p.exitCode ?? -1) : 0, stdout, stderr }));
  });
  assert.equal(fetched.status, 0, fetched.stderr);
  assert.match(fetched.stdout, /storage-initializer: model ->/);

  // The inference-server container, as rendered, on a free loopback port instead of 0.0.0.0:5001.
  const port = await freePort();
  const c = pod.containers[0];
  const args = c.command.slice(1).map((a: string) => inPod(a.replace('tcp:0.0.0.0:5001', `tcp:127.0.0.1:${port}`)));
  const env: Record<string, string> = { ...envOf(c.env), INFERGATE_LISTEN: `tcp:127.0.0.1:${port}`, PATH: process.env.PATH! };
  assert.equal(env.AZUREML_MODEL_DIR, join(root, 'pod', 'models', plan.model!.name, plan.model!.version));
  const host = spawn(PYTHON, args, { cwd: inPod(POD_PATHS.app), env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  host.stdout.on('data', (d: Buffer) => (out += d));
  host.stderr.on('data', (d: Buffer) => (err += d));
  try {
    const end = Date.now() + 30_000;
    while (!out.includes('"type": "ready"') && !out.includes('"type":"ready"')) {
      if (host.exitCode !== null || Date.now() > end) throw new Error(`host not ready: ${out}\n${err}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.match(err, new RegExp(`Listening on tcp:127\\.0\\.0\\.1:${port}`));
    assert.match(err, /pod-init model=weights-v1/);
    const conn = new InstanceConnection({ host: '127.0.0.1', port });
    const answer = await new Promise<ReturnType<typeof decodeResponse>>((resolve, reject) => {
      conn.send('POST', '/score', ['content-type', 'application/json'], 'rid-1', Buffer.from('{"data": [1, 2]}'), {
        deadline: performance.now() + 10_000,
        onResponse: (frame) => resolve(decodeResponse(Buffer.from(frame))),
        onFailure: (why) => reject(new Error(why)),
      });
    });
    conn.close();
    assert.equal(answer.status, 200);
    assert.deepEqual(JSON.parse(answer.body.toString()), { model: 'weights-v1', input: { data: [1, 2] } });
  } finally {
    if (host.exitCode === null && host.signalCode === null) {
      const exited = new Promise((r) => host.once('exit', r));
      host.kill('SIGTERM');
      await exited;
    }
  }
});

test('the Python host refuses a --listen that is not tcp:HOST:PORT, with its bad-config exit code', async () => {
  const host = fileURLToPath(new URL('../../src/runtime/python/infergate_host.py', import.meta.url));
  for (const bad of ['tcp:0.0.0.0', 'udp:1.2.3.4:5', 'tcp:0.0.0.0:70000']) {
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const p = execFile(PYTHON, [host, '--listen', bad], { env: { PATH: process.env.PATH, AZUREML_ENTRY_SCRIPT: 'score.py' }, timeout: 10_000 }, (_e, _out, stderr) => resolve({ code: p.exitCode, stderr }));
    });
    assert.equal(r.code, 2, bad);
    assert.match(r.stderr, /is not tcp:HOST:PORT/);
  }
});
