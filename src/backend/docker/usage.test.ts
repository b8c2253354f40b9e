// Container usage from cgroup files: the v2 layout on a tree of files of the test's own, and (when a
// Docker Engine answers) a real busy container and a real instance of the docker backend.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type Docker from 'dockerode';
import { BASE_IMAGE, dockerCheck, dockerSkip } from '../../../test/docker/engine.js';
import type { InstancePlan } from '../../ir/types.js';
import { DockerBackend } from './backend.js';
import { CgroupUsage } from './usage.js';

const SKIP = await dockerSkip();
const root = mkdtempSync(join(tmpdir(), 'infergate-cgroup-'));
const containers: Docker.Container[] = [];
after(async () => {
  for (const c of containers) await c.remove({ force: true }).catch(() => {});
  rmSync(root, { recursive: true, force: true });
});

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('cgroup v2 (systemd driver): cpu.stat usage_usec, memory.current less inactive_file', async () => {
  const id = 'a'.repeat(64);
  const dir = join(root, 'v2', 'system.slice', `docker-${id}.scope`);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'cpu.stat'), 'usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n');
  writeFileSync(join(dir, 'memory.current'), '10485760\n');
  writeFileSync(join(dir, 'memory.stat'), 'anon 8388608\nfile 2097152\nactive_file 1048576\ninactive_file 1048576\n');
  const cg = new CgroupUsage(join(root, 'v2'));
  assert.deepEqual(await cg.read(id), { cpuSeconds: 2.5, memoryBytes: 10485760 - 1048576 });
  // v1 (cgroupfs driver): cpuacct.usage in nanoseconds, memory.usage_in_bytes less total_inactive_file.
  const v1 = join(root, 'v1');
  mkdirSync(join(v1, 'cpuacct', 'docker', id), { recursive: true });
  mkdirSync(join(v1, 'memory', 'docker', id), { recursive: true });
  writeFileSync(join(v1, 'cpuacct', 'docker', id, 'cpuacct.usage'), '1500000000\n');
  writeFileSync(join(v1, 'memory', 'docker', id, 'memory.usage_in_bytes'), '4096000\n');
  writeFileSync(join(v1, 'memory', 'docker', id, 'memory.stat'), 'cache 96000\ninactive_file 1\ntotal_inactive_file 96000\n');
  assert.deepEqual(await new CgroupUsage(v1).read(id), { cpuSeconds: 1.5, memoryBytes: 4_000_000 });
  // Gone: nothing, and not remembered.
  rmSync(dir, { recursive: true });
  assert.equal(await cg.read(id), undefined);
  assert.equal(await cg.read('b'.repeat(64)), undefined);
});

test('a real busy container: CPU time grows at most at its CPU limit, memory is what it holds', { skip: SKIP }, async () => {
  const docker = (await dockerCheck()).docker!;
  const c = await docker.createContainer({
    name: `infergate-usage-test-${randomBytes(4).toString('hex')}`,
    Image: BASE_IMAGE,
    // 64 MiB held, one thread spinning; ends on its own after 60 s should the test die.
    Cmd: ['python3', '-c', 'import time\nb = bytearray(64 * 1024 * 1024)\nfor i in range(0, len(b), 4096): b[i] = 1\nend = time.time() + 60\nwhile time.time() < end: pass\n'],
    HostConfig: { NetworkMode: 'none', Memory: 256 * 1024 * 1024, ...(availableParallelism() > 1 ? { NanoCpus: 1e9 } : {}) },
  });
  containers.push(c);
  await c.start();
  const cg = new CgroupUsage();
  const first = await until('CPU time and the 64 MiB', async () => {
    const u = await cg.read(c.id);
    return u !== undefined && u.cpuSeconds > 0.2 && u.memoryBytes > 64 * 1024 * 1024 && u;
  });
  const t0 = Date.now();
  await new Promise((r) => setTimeout(r, 1000));
  const second = (await cg.read(c.id))!;
  const rate = (second.cpuSeconds - first.cpuSeconds) / ((Date.now() - t0) / 1000);
  // At most one CPU (its quota; a loaded machine gives it less), and it does run.
  assert.ok(rate > 0 && rate < 1.15, `CPU rate ${rate}`);
  assert.ok(second.memoryBytes < 256 * 1024 * 1024, `memory ${second.memoryBytes}`);
  await c.remove({ force: true });
  assert.equal(await cg.read(c.id), undefined);
});

test('DockerBackend.usage: a serving instance, against its planned limits', { skip: SKIP }, async () => {
  const docker = (await dockerCheck()).docker!;
  const code = join(root, 'code');
  mkdirSync(code, { recursive: true });
  // init() starts a spinning thread: CPU while the instance serves.
  writeFileSync(
    join(code, 'score.py'),
    'import threading, time\n\ndef spin():\n    end = time.time() + 120\n    while time.time() < end:\n        pass\n\ndef init():\n    threading.Thread(target=spin, daemon=True).start()\n\ndef run(raw):\n    return raw\n',
  );
  const probe = { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };
  const plan: InstancePlan = {
    endpoint: 'usage-ep',
    deployment: 'blue',
    revision: 'r1',
    instanceType: 'Standard_DS1_v2',
    resources: { cpus: 1, memoryBytes: 512 * 1024 * 1024, from: 'test' },
    egress: false,
    instanceCount: 1,
    runtime: 'python',
    code: { path: code, scoringScript: 'score.py' },
    environment: { image: BASE_IMAGE },
    environmentVariables: {},
    workerCount: 1,
    requestTimeoutMs: 5000,
    livenessProbe: probe,
    readinessProbe: probe,
  };
  const workspace = join(root, 'ws');
  mkdirSync(workspace, { recursive: true });
  const backend = new DockerBackend({ workspace, docker, engine: 'test' });
  try {
    await backend.start('usage-d1', plan, 0);
    await until('the instance to be ready', async () => {
      const o = backend.observe()[0];
      if (o?.state === 'failed') throw new Error(`instance failed: ${o.error?.message}`);
      return o?.state === 'ready';
    });
    const u = await until('CPU of the spinning thread', async () => {
      const [x] = await backend.usage();
      return x !== undefined && x.cpuSeconds > 0.3 && x;
    });
    assert.equal(u.id, 'usage-d1');
    assert.equal(u.deployment, 'blue');
    assert.equal(u.cpus, Math.min(1, availableParallelism()));
    assert.equal(u.memoryLimitBytes, Math.min(512 * 1024 * 1024, totalmem()));
    assert.ok(u.memoryBytes > 5 * 1024 * 1024 && u.memoryBytes < 512 * 1024 * 1024, `memory ${u.memoryBytes}`);
  } finally {
    await backend.close();
  }
  assert.deepEqual(await backend.usage(), []);
});
