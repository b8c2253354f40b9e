// The Backend contract (types.ts), run against every implementation: what the reconciler relies on must
// hold for host processes now and for containers and pods later, or a deployment behaves differently
// depending on where it runs. An implementation calls backendContract() from its own test file with a
// harness; a gap it cannot close yet goes in `skip` with the reason, never into a forked copy of a test
// (Hono's router contract suite does the same, style-anchors.md §5).

import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { InstancePlan } from '../ir/types.js';
import { ProcessBackend } from './process/backend.js';
import { DockerBackend, findDockerEngine } from './docker/backend.js';
import type { Backend, ObservedInstance } from './types.js';

/** Something the backend did not create, of the kind it manages (a process, a container, a pod). */
export interface Foreign {
  alive(): Promise<boolean>;
  remove(): Promise<void>;
}

export interface BackendHarness {
  backend: Backend;
  /** Kills the instance from outside, as a crash would (SIGKILL, container kill, pod's container OOM). */
  crash(instance: ObservedInstance, pid: number): Promise<void>;
  /** Makes a thing of the backend's own kind that the backend did not start (no labels, another owner). */
  foreign(): Promise<Foreign>;
  /** Whether the process that printed `pid` from inside the instance still runs (seen from outside the backend). */
  running(pid: number): Promise<boolean>;
  cleanup(): Promise<void>;
}

export interface ContractOptions {
  /** Builds a fresh backend; `root` is a scratch folder of this run (workspace, code). */
  create(root: string): Promise<BackendHarness> | BackendHarness;
  /** Contract tests this backend does not pass yet, by name, each with why. */
  skip?: { test: string; reason: string }[];
  /** Why the whole suite cannot run on this machine (no engine, no image): every test skips, saying so. */
  unavailable?: string | false;
}

/** Scoring modules every backend can run: JavaScript, so no Python environment is needed. */
const SCRIPTS = {
  // Prints its pid, so a harness can crash the process that runs the script, and a marker per start. The
  // token is drawn once per module load, so a new one means a new process even where pids repeat (each
  // container has pid namespace of its own: its host gets the same pid at every start).
  ok: `const token = Math.random().toString(36).slice(2);\nexport function init() { console.log('contract-init pid=' + process.pid + ' token=' + token); }\nexport function run(raw) { return raw; }\n`,
  initFails: `export function init() { throw new Error('contract init failure'); }\nexport function run(raw) { return raw; }\n`,
} as const;

const PROBE = { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };
const WAIT_MS = 30_000;

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = WAIT_MS): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

export function backendContract(name: string, options: ContractOptions): void {
  const skipped = new Map((options.skip ?? []).map((s) => [s.test, s.reason]));
  const contractTest = (title: string, fn: () => Promise<void>) => {
    const reason = options.unavailable || skipped.get(title);
    return reason === undefined ? test(title, fn) : test(title, { skip: reason }, fn);
  };

  describe(`Backend contract: ${name}`, () => {
    let root: string;
    let h: BackendHarness;
    let b: Backend;
    let changes = 0;
    const codeDirs: Record<keyof typeof SCRIPTS, string> = { ok: '', initFails: '' };

    before(() => {
      if (options.unavailable) return;
      root = mkdtempSync(join(tmpdir(), 'infergate-contract-'));
      for (const key of Object.keys(SCRIPTS) as (keyof typeof SCRIPTS)[]) {
        codeDirs[key] = join(root, 'code', key);
        mkdirSync(codeDirs[key], { recursive: true });
        writeFileSync(join(codeDirs[key], 'score.mjs'), SCRIPTS[key]);
      }
    });
    after(() => {
      if (root) rmSync(root, { recursive: true, force: true });
    });
    let run = 0;
    beforeEach(async () => {
      if (options.unavailable) return;
      h = await options.create(join(root, `run-${++run}`));
      b = h.backend;
      changes = 0;
      b.onChange(() => changes++);
    });
    afterEach(async () => {
      if (options.unavailable) return;
      await h.backend.close();
      await h.cleanup();
    });

    const plan = (endpoint: string, deployment: string, script: keyof typeof SCRIPTS, revision = 'r1'): InstancePlan => ({
      endpoint,
      deployment,
      revision,
      instanceCount: 1,
      runtime: 'javascript',
      code: { path: codeDirs[script], scoringScript: 'score.mjs' },
      environment: {},
      instanceType: 'Standard_DS1_v2',
      // Limits a backend that enforces them applies (the docker backend's cgroups); ample for a Node host.
      resources: { cpus: 1, memoryBytes: 1024 ** 3, from: 'the contract suite' },
      egress: false,
      environmentVariables: {},
      workerCount: 1,
      requestTimeoutMs: 5000,
      livenessProbe: PROBE,
      readinessProbe: PROBE,
    });
    const observed = (id: string) => b.observe().find((i) => i.id === id);
    const stateOf = (id: string, state: ObservedInstance['state']) =>
      until(`${id} to be ${state}`, () => {
        const o = observed(id);
        if (o?.state === 'failed' && state !== 'failed') throw new Error(`${id} failed: ${o.error?.code} ${o.error?.message}`);
        return o?.state === state ? o : undefined;
      });
    /** The pid the script printed at its latest init (one line per start). */
    const scriptPids = async (endpoint: string, deployment: string) =>
      [...(await b.logs(endpoint, deployment, 'inference-server', 1000)).matchAll(/contract-init pid=(\d+)/g)].map((m) => Number(m[1]));

    contractTest('start launches an instance that becomes ready with an address, and tells onChange', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      const first = observed('ep.blue.r1.0');
      assert.ok(first, 'observe() lists an instance as soon as start() resolves');
      assert.deepEqual({ endpoint: first.endpoint, deployment: first.deployment, revision: first.revision, index: first.index }, { endpoint: 'ep', deployment: 'blue', revision: 'r1', index: 0 });
      const ready = await stateOf('ep.blue.r1.0', 'ready');
      assert.ok(ready.address, 'a ready instance has an address');
      assert.equal(ready.restarts, 0);
      assert.ok(changes >= 1, 'onChange was called');
    });

    contractTest('start of an id that exists is a no-op: same instance, no second process', async () => {
      const p = plan('ep', 'blue', 'ok');
      await b.start('ep.blue.r1.0', p, 0);
      const ready = await stateOf('ep.blue.r1.0', 'ready');
      await b.start('ep.blue.r1.0', p, 0);
      await b.start('ep.blue.r1.0', { ...p, revision: 'r2' }, 1);
      assert.equal(b.observe().length, 1);
      assert.deepEqual(observed('ep.blue.r1.0'), ready);
      assert.equal((await scriptPids('ep', 'blue')).length, 1, 'init() ran once');
    });

    contractTest('stop is idempotent: the instance leaves observe(), a second stop and a stop of an unknown id do nothing', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      await b.start('ep.green.r1.0', plan('ep', 'green', 'ok'), 0);
      await stateOf('ep.blue.r1.0', 'ready');
      await b.stop('ep.blue.r1.0');
      assert.equal(observed('ep.blue.r1.0'), undefined);
      await b.stop('ep.blue.r1.0');
      await b.stop('no.such.instance.0');
      assert.deepEqual(b.observe().map((i) => i.id), ['ep.green.r1.0'], 'the other instance is untouched');
    });

    contractTest('stop of an instance still starting ends it too', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      await b.stop('ep.blue.r1.0');
      assert.deepEqual(b.observe(), []);
    });

    contractTest('an init() failure is final: failed with UserScriptInitFailed, not restarted', async () => {
      await b.start('ep.bad.r1.0', plan('ep', 'bad', 'initFails'), 0);
      const failed = await stateOf('ep.bad.r1.0', 'failed');
      assert.equal(failed.error?.code, 'UserScriptInitFailed');
      assert.match(failed.error?.message ?? '', /contract init failure/);
      assert.equal(failed.address, undefined);
      assert.equal(failed.restarts, 0);
      assert.match(await b.logs('ep', 'bad', 'inference-server', 200), /contract init failure/, 'the traceback is in the log');
    });

    contractTest('an instance that crashes after it was ready is started again, and counted', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      const ready = await stateOf('ep.blue.r1.0', 'ready');
      const [pid] = await scriptPids('ep', 'blue');
      await h.crash(ready, pid);
      const again = await until('a restart', () => {
        const o = observed('ep.blue.r1.0');
        return o?.state === 'ready' && o.restarts === 1 ? o : undefined;
      });
      assert.ok(again.address);
      await until('the second init', async () => (await scriptPids('ep', 'blue')).length === 2);
      const tokens = [...(await b.logs('ep', 'blue', 'inference-server', 1000)).matchAll(/contract-init pid=\d+ token=(\w+)/g)].map((m) => m[1]);
      assert.equal(tokens.length, 2);
      assert.notEqual(tokens[1], tokens[0], 'a new process runs the script');
    });

    contractTest('logs: the script\'s output per container; nothing for a deployment that never ran', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      await stateOf('ep.blue.r1.0', 'ready');
      assert.match(await b.logs('ep', 'blue', 'inference-server', 100), /contract-init pid=\d+/);
      assert.notEqual((await b.logs('ep', 'blue', 'storage-initializer', 100)).trim(), '', 'the storage initializer says what it copied');
      assert.equal(await b.logs('ep', 'nothing', 'inference-server', 100), '');
      // --lines: the last lines only.
      const one = await b.logs('ep', 'blue', 'inference-server', 1);
      assert.equal(one.trimEnd().split('\n').length, 1);
    });

    contractTest('forget() removes only the deleted deployment, and nothing of a deployment that runs', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      await b.start('ep.green.r1.0', plan('ep', 'green', 'ok'), 0);
      await stateOf('ep.blue.r1.0', 'ready');
      await stateOf('ep.green.r1.0', 'ready');
      await b.stop('ep.blue.r1.0');
      await b.forget?.('ep', 'blue');
      await b.forget?.('ep', 'green'); // still running: must keep everything
      assert.equal(await b.logs('ep', 'blue', 'inference-server', 10), '');
      assert.match(await b.logs('ep', 'green', 'inference-server', 100), /contract-init/);
      assert.equal(observed('ep.green.r1.0')?.state, 'ready');
    });

    contractTest('never touches what it did not create: a foreign one outlives start, stop and close', async () => {
      const foreign = await h.foreign();
      try {
        await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
        await stateOf('ep.blue.r1.0', 'ready');
        await b.stop('ep.blue.r1.0');
        await b.close();
        assert.equal(await foreign.alive(), true);
      } finally {
        await foreign.remove();
      }
    });

    contractTest('close stops every instance; start after close and a second close do nothing', async () => {
      await b.start('ep.blue.r1.0', plan('ep', 'blue', 'ok'), 0);
      await b.start('ep.green.r1.0', plan('ep', 'green', 'ok'), 0);
      await stateOf('ep.blue.r1.0', 'ready');
      const pids = await scriptPids('ep', 'blue');
      await b.close();
      assert.deepEqual(b.observe(), []);
      await b.start('ep.red.r1.0', plan('ep', 'red', 'ok'), 0);
      assert.deepEqual(b.observe(), []);
      await b.close();
      // Checked through the harness's view of the world, not the backend's: the process is gone.
      for (const pid of pids) assert.equal(await h.running(pid), false, `script process ${pid} ended`);
    });
  });
}

/** Whether a process of this machine exists (EPERM: it does, under another uid). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

backendContract('ProcessBackend', {
  create(root) {
    const backend = new ProcessBackend({ workspace: join(root, 'workspace') });
    return {
      backend,
      // The script runs in the instance host itself (JavaScript): SIGKILL is a crash the host cannot catch.
      async crash(_instance, pid) {
        process.kill(pid, 'SIGKILL');
      },
      // Another Node process of this user that no backend started, as a second program on the machine.
      async foreign() {
        const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
        await once(child, 'spawn');
        return {
          alive: async () => child.exitCode === null && child.signalCode === null && isAlive(child.pid!),
          remove: async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGKILL');
            await once(child, 'exit');
          },
        };
      },
      running: async (pid) => isAlive(pid),
      async cleanup() {},
    };
  },
});

// The docker backend runs the same JavaScript modules in containers. Azure's images (and the local base
// image, infergate-python:bookworm) have no Node, so the suite runs on that image with this machine's
// `node` binary added (this machine is Debian bookworm too; the base image has its libstdc++). No engine
// or no base image: the suite skips, saying why, unless INFERGATE_REQUIRE_DOCKER=1 (CI), where it fails.
const BASE_IMAGE = 'infergate-python:bookworm';
const engine = await findDockerEngine();
const dockerUnavailable = await (async (): Promise<string | false> => {
  let reason: string | false = false;
  if (!engine.docker) reason = `no Docker Engine answers at ${engine.where}: ${engine.reason}`;
  else if (!(await engine.docker.getImage(BASE_IMAGE).inspect().then(() => true, () => false))) reason = `the image ${BASE_IMAGE} is missing (scripts/setup.sh builds it)`;
  if (reason && process.env.INFERGATE_REQUIRE_DOCKER === '1') throw new Error(`INFERGATE_REQUIRE_DOCKER=1 but ${reason}`);
  return reason;
})();
const NODE_IMAGE = `infergate-contract-node:${randomBytes(4).toString('hex')}`;
let nodeImage: Promise<void> | undefined;
/** Builds NODE_IMAGE once: BASE_IMAGE + this machine's node binary. */
function buildNodeImage(): Promise<void> {
  nodeImage ??= (async () => {
    const context = mkdtempSync(join(tmpdir(), 'infergate-contract-image-'));
    try {
      const { copyFileSync } = await import('node:fs');
      copyFileSync(process.execPath, join(context, 'node'));
      writeFileSync(join(context, 'Dockerfile'), `FROM ${BASE_IMAGE}\nCOPY node /usr/local/bin/node\n`);
      await promisify(execFile)('docker', ['build', '-q', '-t', NODE_IMAGE, context]);
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
  })();
  return nodeImage;
}
after(async () => {
  if (nodeImage && engine.docker) await engine.docker.getImage(NODE_IMAGE).remove({ force: true }).catch(() => {});
});

backendContract('DockerBackend', {
  unavailable: dockerUnavailable,
  async create(root) {
    const docker = engine.docker!;
    await buildNodeImage();
    const workspace = join(root, 'workspace');
    mkdirSync(workspace, { recursive: true });
    const backend = new DockerBackend({ workspace, docker, engine: engine.where, defaultImage: NODE_IMAGE });
    // The backend's workspace label (sha256 of the workspace path): what tells its containers from others.
    const label = `io.infergate.workspace=${createHash('sha256').update(workspace).digest('hex').slice(0, 16)}`;
    const ours = (all = false) => docker.listContainers({ all, filters: { label: [label] } });
    const foreignNames: string[] = [];
    return {
      backend,
      // `docker kill` of the instance's container, as the kernel or an operator would: no stop, no grace.
      async crash(instance) {
        const [c] = (await ours()).filter((x) => x.Labels['io.infergate.instance'] === instance.id);
        assert.ok(c, `a container runs for ${instance.id}`);
        await docker.getContainer(c.Id).kill({ signal: 'SIGKILL' });
      },
      // A container of the same image the backend did not make: no labels, a name of its own.
      async foreign() {
        const name = `infergate-contract-foreign-${randomBytes(4).toString('hex')}`;
        foreignNames.push(name);
        const c = await docker.createContainer({ name, Image: BASE_IMAGE, Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none', AutoRemove: false } });
        await c.start();
        return {
          alive: async () => (await c.inspect().catch(() => null))?.State.Running === true,
          remove: async () => void (await c.remove({ force: true }).catch(() => {})),
        };
      },
      // A pid from inside a container means nothing outside it: the script's process runs while a
      // container of this backend's workspace does (one per instance, the script in it).
      running: async () => (await ours()).length > 0,
      async cleanup() {
        for (const c of await ours(true)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
        for (const n of foreignNames) await docker.getContainer(n).remove({ force: true }).catch(() => {});
      },
    };
  },
});
