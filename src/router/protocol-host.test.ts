// The instance protocol end to end: the router in front of a real instance host (src/runtime/host.ts
// forked as the process backend forks it) running a Python scoring script that records its runs
// (src/protocol/testdata/py-records/score.py). Issue 10's defects 1 and 3.

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sha256Hex } from '../compile/routing.js';
import type { DeploymentRoute, EndpointRoute } from '../ir/types.js';
import type { HostMessage } from '../protocol/messages.js';
import { Router } from './router.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOST = join(ROOT, 'src/runtime/host.ts');
const APP = join(ROOT, 'src/protocol/testdata/py-records');
const KEY = 'protocol-host-test-key-0123456789';

let tmp: string;
let child: ChildProcess;
let exited: Promise<unknown>;
let socketPath: string;

before(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'ig-protocol-host-'));
  socketPath = join(tmp, 'host.sock');
  child = fork(HOST, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    // WORKER_COUNT 1: one Python worker, so a second request waits for the first at the host.
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socketPath, AZUREML_ENTRY_SCRIPT: 'score.py', AML_APP_ROOT: APP, INFERGATE_PYTHON: '/usr/bin/python3', WORKER_COUNT: '1' },
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  exited = new Promise((res) => child.on('exit', res));
  const first = await new Promise<HostMessage>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`host not ready in 30 s\n${stderr}`)), 30_000);
    child.once('message', (m: HostMessage) => {
      clearTimeout(t);
      resolve(m);
    });
  });
  assert.equal(first.type, 'ready', stderr);
});

after(async () => {
  child.kill('SIGTERM');
  await exited;
  rmSync(tmp, { recursive: true, force: true });
});

function endpoint(over: Partial<DeploymentRoute>): EndpointRoute {
  return {
    name: 'ep',
    authMode: 'key',
    keyHashes: [sha256Hex(KEY)],
    deployments: [
      {
        name: 'blue',
        requestTimeoutMs: 30_000,
        maxConcurrentRequestsPerInstance: 0,
        maxQueueWaitMs: 10_000,
        scaleFromZero: false,
        instances: [{ instanceId: 'blue-0', transport: 'framed', socketPath }],
        ...over,
      },
    ],
    traffic: [{ deployment: 'blue', weight: 100 }],
    mirror: null,
  };
}

async function startRouter(ep: EndpointRoute): Promise<{ router: Router; port: number }> {
  const router = new Router({});
  router.setTable({ version: 1, endpoints: [ep] });
  return { router, port: (await router.listen(0, '127.0.0.1')).port };
}

function score(port: number, body: object, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const req = request(
      { host: '127.0.0.1', port, path: '/endpoints/ep/score', method: 'POST', headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json', ...headers } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, body: text }));
      },
    );
    req.on('error', reject);
    req.end(data);
  });
}

const runs = (file: string): string[] => {
  try {
    return readFileSync(file, 'utf8').split('\n').filter(Boolean);
  } catch {
    return [];
  }
};

async function until(cond: () => boolean, what: string, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

test('a 300-character header name reaches the scoring script: 200, not a corrupt frame reported as 424', { timeout: 60_000 }, async () => {
  const { router, port } = await startRouter(endpoint({}));
  try {
    const name = 'x-' + 'n'.repeat(298);
    const r = await score(port, { name: 'h' }, { [name]: 'v' });
    // Before issue 10 (u8 name length) the host could not decode the frame: 400 → the router's 424.
    assert.equal(r.status, 200, r.body);
    assert.deepEqual(JSON.parse(r.body), { name: 'h', longest_header: 300 });
  } finally {
    await router.close();
  }
});

test('CANCEL: a request queued at the host that times out (408) is never run; the running one finishes, its answer discarded', { timeout: 60_000 }, async () => {
  // Two slots per instance, so the router sends both to the host, where the one Python worker runs a
  // first and b waits behind it. Both pass their 1 s deadline while a sleeps 2.5 s.
  const { router, port } = await startRouter(endpoint({ requestTimeoutMs: 1000, maxConcurrentRequestsPerInstance: 2 }));
  const record = join(tmp, 'runs-cancel');
  try {
    const a = score(port, { name: 'a', sleep: 2.5, record });
    await until(() => runs(record).includes('a'), 'a to start');
    const b = score(port, { name: 'b', record });
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.status, 408, ra.body);
    assert.equal(rb.status, 408, rb.body);
    // c goes to the same worker after a; by the time it is answered, b was either run or dropped. A
    // longer deadline from here on (a new routing table), so c waits out the rest of a's run. c's 200
    // also shows both slots were given back (a and b: timed out, cancelled).
    router.setTable({ version: 2, endpoints: [endpoint({ requestTimeoutMs: 30_000, maxConcurrentRequestsPerInstance: 2 })] });
    const rc = await score(port, { name: 'c', record });
    assert.equal(rc.status, 200, rc.body);
    // Before issue 10 the host ignored CANCEL: ['a', 'b', 'c'].
    assert.deepEqual(runs(record), ['a', 'c']);
    const [rd, re] = await Promise.all([score(port, { name: 'd' }), score(port, { name: 'e' })]);
    assert.deepEqual([rd.status, re.status], [200, 200]);
  } finally {
    await router.close();
  }
});
