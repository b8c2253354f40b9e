// The Backend contract (types.ts), run against every implementation: what the reconciler relies on must
// hold for host processes now and for containers and pods later, or a deployment behaves differently
// depending on where it runs. An implementation calls backendContract() from its own test file with a
// harness; a gap it cannot close yet goes in `skip` with the reason, never into a forked copy of a test
// (Hono's router contract suite does the same, style-anchors.md §5).
//
// This module registers no suite of its own, so a test file importing it runs only the suites it calls
// (contract.test.ts: process and docker; test/kubernetes/contract.test.ts: Kubernetes). `-testing`: left
// out of the build and the package (tsconfig.build.json), like the other test helpers under src/.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, test } from 'node:test';
import type { InstancePlan } from '../ir/types.js';
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
