// Issue 13 (docs/router-scale.md): `infergate router --control` keeps serving when its control plane goes
// away, and follows it again when it comes back. The real router command and a real instance host (from
// dist/, as the process backend runs it); the control plane is the real routing route (api/routing.ts) on a
// Fastify server of this test's own, so it can be killed and started again on the same port without
// taking the instance down with it (an infergate server stops its instances when it stops).

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import Fastify, { type FastifyInstance } from 'fastify';
import { RoutingFeed, registerRoutingRoutes } from '../../src/api/routing.js';
import type { RoutingTable } from '../../src/ir/types.js';
import { BIN, FIXTURES, ROOT, run, until } from './harness.js';

const KEY = 'router-role-test-key-0123456789abcdef';
const tmp = mkdtempSync(join(tmpdir(), 'ig-router-role-'));
const socketPath = join(tmp, 'host.sock');
const children: ChildProcess[] = [];
let control: FastifyInstance | null = null;
let controlPort = 0;
let routerBase = '';
let routerLog = '';
/** What the control plane does on POST /routing/v1/wake (the scale-from-zero test sets it). */
let onWake: (endpoint: string, deployment: string) => void = () => {};
let feed: RoutingFeed;

function table(version: number, traffic: Record<string, number>, zero: 'none' | 'cold' | 'warm' = 'none'): RoutingTable {
  const deployment = (name: string) => ({ name, requestTimeoutMs: 10_000, maxConcurrentRequestsPerInstance: 4, maxQueueWaitMs: 10_000, scaleFromZero: false, instances: [{ instanceId: `i-${name}`, transport: 'framed' as const, socketPath }] });
  // A deployment scaled to zero: no instance until the control plane is asked for one.
  const zeroes = zero === 'none' ? [] : [{ ...deployment('zero'), scaleFromZero: true, instances: zero === 'cold' ? [] : deployment('zero').instances }];
  return {
    version,
    endpoints: [
      {
        name: 'rrole',
        authMode: 'key',
        keyHashes: [createHash('sha256').update(KEY).digest('hex')],
        deployments: [deployment('blue'), deployment('green'), ...zeroes],
        traffic: Object.entries(traffic).map(([d, weight]) => ({ deployment: d, weight })),
        mirror: null,
      },
    ],
  };
}

/** A control plane serving `t` at /routing/v1/tables (a new feed: a new epoch, as a restarted server has). */
async function startControl(t: RoutingTable, port: number): Promise<void> {
  feed = new RoutingFeed();
  feed.publish(t);
  const app = Fastify();
  registerRoutingRoutes(app, { feed, wake: async (e, d) => onWake(e, d) });
  // Long polls end when it closes (the server does the same before closing its API).
  app.addHook('preClose', async () => feed.close());
  await app.listen({ port, host: '127.0.0.1' });
  controlPort = (app.server.address() as { port: number }).port;
  control = app;
}

async function stopControl(): Promise<void> {
  const app = control!;
  control = null;
  // As a killed process: open connections (the router's long poll) are cut, not drained.
  app.server.closeAllConnections();
  await app.close();
}

async function scoreOnce(): Promise<{ status: number; deployment: string | null }> {
  return scoreAs();
}

async function scoreAs(pin?: string): Promise<{ status: number; deployment: string | null }> {
  const r = await fetch(`${routerBase}/endpoints/rrole/score`, { method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...(pin ? { 'azureml-model-deployment': pin } : {}) }, body: '{}' });
  await r.arrayBuffer();
  return { status: r.status, deployment: r.headers.get('azureml-model-deployment') };
}

before(async () => {
  // The instance: the instance host the process backend runs, on the js-dataplane scoring module.
  const host = spawn(process.execPath, [join(ROOT, 'dist', 'runtime', 'host.js')], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socketPath, INFERGATE_INSTANCE_ID: 'rrole-0', AZUREML_ENTRY_SCRIPT: 'score.mjs', AML_APP_ROOT: join(FIXTURES, 'js-dataplane') },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(host);
  let hostOut = '';
  host.stdout!.on('data', (c: Buffer) => (hostOut += c.toString()));
  await until('the instance host to be ready', async () => hostOut.includes('"type":"ready"'), 30_000);

  await startControl(table(7, { blue: 100 }), 0);
  const router = spawn(process.execPath, [BIN, 'router', '--control', `http://127.0.0.1:${controlPort}`, '--port', '0'], { env: { ...process.env, INFERGATE_TOKEN: 'igt_unused_by_this_stand_in' }, stdio: ['ignore', 'pipe', 'pipe'] });
  children.push(router);
  let out = '';
  router.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  router.stderr!.on('data', (c: Buffer) => (routerLog += c.toString()));
  routerBase = await until('the router to serve', async () => /serving (http:\/\/\S+),/.exec(out)?.[1], 15_000);
  await until('the router to have the first table', async () => (await scoreOnce()).status === 200, 15_000);
});

after(async () => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
  await control?.close();
  if (process.exitCode) console.error(routerLog);
  rmSync(tmp, { recursive: true, force: true });
});

test('the router serves its last table while the control plane is away, and follows it again when it is back', async () => {
  assert.deepEqual(await scoreOnce(), { status: 200, deployment: 'blue' });
  const port = controlPort;
  await stopControl();
  // The router noticed (its poll failed) and goes on serving the table it has.
  await until('the router to notice the control plane is gone', async () => /serving the last routing table/.test(routerLog), 15_000);
  for (let i = 0; i < 20; i++) assert.deepEqual(await scoreOnce(), { status: 200, deployment: 'blue' }, `request ${i} without a control plane`);

  // Back on the same port, restarted: its versions start again (lower than the router's 7), and the
  // traffic moved to green meanwhile.
  const back = Date.now();
  await startControl(table(1, { green: 100 }), port);
  await until('the traffic change to reach the router', async () => (await scoreOnce()).deployment === 'green', 10_000, 50);
  const took = Date.now() - back;
  assert.ok(took < 8000, `the router followed the control plane ${took} ms after it came back`);
  assert.match(routerLog, /answers again/);
});

test('a cold request for a deployment scaled to zero asks the control plane for an instance, and is served once it comes', async () => {
  const woken: string[] = [];
  // The control plane answers the wake-up as the controller does: a table where the deployment has an instance.
  onWake = (endpoint, deployment) => {
    woken.push(`${endpoint}/${deployment}`);
    setTimeout(() => feed.publish(table(3, { green: 100 }, 'warm')), 200);
  };
  feed.publish(table(2, { green: 100 }, 'cold'));
  await until('the router to have the table with the cold deployment', async () => (await scoreAs('zero')).status !== 404, 10_000, 50);
  // That probe request was itself a cold one: it waited for the instance and was served.
  const r = await scoreAs('zero');
  assert.deepEqual(r, { status: 200, deployment: 'zero' });
  assert.deepEqual([...new Set(woken)], ['rrole/zero']);
});

test('a --control that is not a control plane URL is refused at once, a password in it not repeated', async () => {
  const env = { ...process.env, INFERGATE_TOKEN: 'igt_unused_by_this_stand_in' };
  const bad = await run(process.execPath, [BIN, 'router', '--control', 'ftp://127.0.0.1:1', '--port', '0'], env);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /--control 'ftp:\/\/127\.0\.0\.1:1' is not the URL of a control plane/);
  const secret = await run(process.execPath, [BIN, 'router', '--control', 'http://admin:hunter2@127.0.0.1:1', '--port', '0'], env);
  assert.notEqual(secret.code, 0);
  assert.match(secret.stderr, /is not the URL of a control plane/);
  assert.doesNotMatch(secret.stderr + secret.stdout, /hunter2/);
});
