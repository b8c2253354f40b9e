// Instance usage from procfs on real processes: a tree whose only busy process is a grandchild of the
// root (as a Python worker's child would be), and the backend's usage() of a real instance.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import type { InstancePlan } from '../../ir/types.js';
import { ProcessBackend } from './backend.js';
import { parseRss, parseStat, processUsage } from './usage.js';

const root = mkdtempSync(join(tmpdir(), 'infergate-usage-'));
/** Process groups the tests started (detached roots): killed whole, grandchildren too. */
const groups: number[] = [];
after(() => {
  for (const g of groups) killGroup(g);
  rmSync(root, { recursive: true, force: true });
});

function killGroup(pgid: number): void {
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // already gone
  }
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** A busy loop that ends on its own, so that nothing spins on if the test dies. */
const BUSY = 'const end = Date.now() + 20000; while (Date.now() < end) {}';

test('parseStat: fields counted from the last parenthesis of the command name', () => {
  const s = parseStat('1234 (we) ird (name) S 77 1234 1234 0 -1 4194304 100 0 0 0 250 50 7 3 20 0 1 0 100 1000 100');
  assert.deepEqual(s, { ppid: 77, ticks: 250 + 50 + 7 + 3 });
  assert.equal(parseRss('Name:\tx\nVmRSS:\t  2048 kB\n'), 2048 * 1024);
  assert.equal(parseRss('Name:\tkthreadd\n'), 0);
});

test('processUsage: the CPU of a busy grandchild counts to its root; memory is the tree RSS', async () => {
  // root (idle) → child (idle) → grandchild (busy)
  const rootProc = spawn(process.execPath, ['-e', `const c = require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(`require('child_process').spawn(process.execPath, ['-e', ${JSON.stringify(BUSY)}], {stdio: 'inherit'}); setInterval(() => {}, 1000)`)}], {stdio: 'inherit'}); setInterval(() => {}, 1000)`], { stdio: 'ignore', detached: true });
  groups.push(rootProc.pid!);
  const r = { id: 'i0', endpoint: 'ep', deployment: 'blue', pid: rootProc.pid!, resources: { cpus: 1, memoryBytes: 2 ** 40 } };
  // A second of CPU: well above what the root's own Node start-up costs (0.1-0.2 s here, more under load),
  // so only the busy grandchild can account for it.
  const first = await until('the tree to use CPU', async () => {
    const [u] = await processUsage([r]);
    return u !== undefined && u.cpuSeconds > 1 && u;
  });
  // The grandchild is in the tree: root's own stat alone shows almost nothing.
  const own = parseStat(readFileSync(`/proc/${rootProc.pid}/stat`, 'utf8'))!;
  assert.ok(own.ticks / 100 < first.cpuSeconds / 2, `root alone ${own.ticks} ticks, tree ${first.cpuSeconds} s`);
  // Three Node processes: tens of MB resident.
  assert.ok(first.memoryBytes > 3 * 10 * 1024 * 1024, `RSS ${first.memoryBytes}`);
  assert.equal(first.cpus, 1);
  assert.equal(first.memoryLimitBytes, totalmem()); // at most the machine's
  // Over 0.5 s of wall time the busy grandchild adds CPU time: up to one CPU's worth, less on a loaded
  // machine (this one has other test suites running), never more than the machine has.
  const t0 = Date.now();
  await new Promise((resolve) => setTimeout(resolve, 500));
  const [second] = await processUsage([r]);
  const rate = (second.cpuSeconds - first.cpuSeconds) / ((Date.now() - t0) / 1000);
  assert.ok(rate > 0 && rate < Math.min(1.3, availableParallelism()), `CPU rate ${rate}`);
  // No planned limits: the machine's.
  const [m] = await processUsage([{ ...r, resources: {} }]);
  assert.equal(m.cpus, availableParallelism());
  // A root that is gone gives no entry.
  killGroup(rootProc.pid!);
  await until('the root to go', async () => (await processUsage([r])).length === 0);
});

const PROBE = { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };

test('ProcessBackend.usage: a serving instance with a busy child process of its scoring module', async () => {
  const code = join(root, 'code');
  mkdirSync(code, { recursive: true });
  // init() starts a busy child, as a scoring module with a worker pool would. Stop kills it (isolated:
  // every process of the instance's uid), else it ends on its own.
  writeFileSync(
    join(code, 'score.mjs'),
    `import { spawn } from 'node:child_process';\nexport function init() {\n  spawn(process.execPath, ['-e', ${JSON.stringify(BUSY)}], { stdio: 'ignore' });\n}\nexport function run(raw) { return raw; }\n`,
  );
  const plan: InstancePlan = {
    endpoint: 'usage-ep',
    deployment: 'blue',
    revision: 'r1',
    instanceType: 'Standard_DS1_v2',
    resources: { cpus: 1, memoryBytes: 3.5 * 1024 ** 3, from: 'test' },
    egress: false,
    instanceCount: 1,
    runtime: 'javascript',
    code: { path: code, scoringScript: 'score.mjs' },
    environment: {},
    environmentVariables: {},
    workerCount: 1,
    requestTimeoutMs: 5000,
    livenessProbe: PROBE,
    readinessProbe: PROBE,
  };
  const backend = new ProcessBackend({ workspace: join(root, 'ws') });
  try {
    // Nothing serving yet: nothing to read.
    assert.deepEqual(await backend.usage(), []);
    await backend.start('usage-1', plan, 0);
    await until('the instance to be ready', async () => backend.observe()[0]?.state === 'ready');
    const u = await until('CPU of the busy child', async () => {
      const [x] = await backend.usage();
      return x !== undefined && x.cpuSeconds > 0.3 && x;
    });
    assert.equal(u.id, 'usage-1');
    assert.equal(u.endpoint, 'usage-ep');
    assert.equal(u.deployment, 'blue');
    assert.equal(u.cpus, 1);
    assert.equal(u.memoryLimitBytes, Math.min(3.5 * 1024 ** 3, totalmem()));
    assert.ok(u.memoryBytes > 20 * 1024 * 1024, `RSS ${u.memoryBytes}`);
  } finally {
    await backend.close();
  }
  assert.deepEqual(await backend.usage(), []);
});
