// Autoscale under load (issue 12, "Tests and bench"): the real CLI and server (process backend), a scoring
// script that sleeps 30 ms per request so that concurrency builds up, and load generated here on loopback.
//
// 1. An Azure Monitor autoscale setting (min 1, max 3) with a scale-out rule on ConcurrentRequests and a
//    scale-in rule: under a constant load the deployment's instance_count grows to 3 and the new instances
//    answer (each instance reports its pid); when the load drops to a trickle it scales back to 1, the
//    trickle still answered by the instances being drained. History and get-logs show the decisions.
// 2. scale_settings target_utilization (polling 1 s, target 50 %, 2 slots per instance): a step of 5
//    concurrent requests scales out within a few seconds; when the load drops, back to 1.
// Throughout: every request answers 200, except 429 (the admission bound of 2 × slots × instances before
// the new instances are up); no 5xx, no connection error. The timings are printed as diagnostics.

import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test, type TestContext } from 'node:test';
import { FIXTURES, until, Workspace } from './harness.js';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const ws = new Workspace();
let routerUrl = '';
let yamlDir = '';
const SLEEP = JSON.stringify({ op: 'sleep', seconds: 0.03 });

/** Outcomes of a group of workers: statuses, failures other than 429, and when each instance pid first answered. */
class Load {
  private running = true;
  private readonly workers: Promise<void>[] = [];
  readonly statuses = new Map<string, number>();
  readonly failures: string[] = [];
  /** pid → ms since the test's t0 when it first answered. */
  readonly firstSeen = new Map<number, number>();
  /** ms since t0 of the last 429 (-1: none). */
  last429 = -1;
  ok = 0;

  constructor(
    private readonly uri: string,
    private readonly key: string,
    private readonly t0: number,
    workers: number,
    /** Pause after each answer: a trickle keeps the instances serving while they are scaled in. */
    private readonly pauseMs = 0,
    maxMs = 120_000,
  ) {
    const end = Date.now() + maxMs;
    for (let i = 0; i < workers; i++) this.workers.push(this.worker(end));
  }

  get total(): number {
    let n = 0;
    for (const v of this.statuses.values()) n += v;
    return n;
  }

  get count429(): number {
    return this.statuses.get('429') ?? 0;
  }

  async stop(): Promise<void> {
    this.running = false;
    await Promise.all(this.workers);
  }

  private async worker(end: number): Promise<void> {
    while (this.running && Date.now() < end) {
      let status = 'connection error';
      try {
        const r = await fetch(this.uri, { method: 'POST', headers: { authorization: `Bearer ${this.key}`, 'content-type': 'application/json' }, body: SLEEP });
        const text = await r.text();
        status = String(r.status);
        if (r.status === 200) {
          const pid = (JSON.parse(text) as { pid: number }).pid;
          if (!this.firstSeen.has(pid)) this.firstSeen.set(pid, performance.now() - this.t0);
          this.ok++;
        } else if (r.status !== 429) this.failures.push(`${r.status} ${text.slice(0, 200)}`);
        if (r.status === 429) {
          this.last429 = performance.now() - this.t0;
          // A 429 says "retry after 1 s"; 20 ms keeps the worker from spinning on the admission bound.
          await new Promise((res) => setTimeout(res, 20));
        }
      } catch (e) {
        this.failures.push(`connection error: ${(e as Error).message} ${(e as { cause?: Error }).cause?.message ?? ''}`);
      }
      this.statuses.set(status, (this.statuses.get(status) ?? 0) + 1);
      if (this.pauseMs > 0) await new Promise((res) => setTimeout(res, this.pauseMs));
    }
  }
}

/** When each instance (pid) first answered either load, ms since t0, earliest first. */
function firstAnswers(...loads: Load[]): number[] {
  const first = new Map<number, number>();
  for (const l of loads) for (const [pid, at] of l.firstSeen) first.set(pid, Math.min(at, first.get(pid) ?? Infinity));
  return [...first.values()].sort((a, b) => a - b);
}

const json = async (args: string[]): Promise<Json> => JSON.parse(await ws.ok(args)) as Json;

async function instanceCount(e: string, d: string): Promise<number> {
  return Number((await ws.ok(['online-deployment', 'show', '-e', e, '-n', d, '-o', 'tsv', '--query', 'instance_count'])).trim());
}

/** Waits for the deployment's instance_count (as `show` prints it) to reach `want`; returns the ms since t0. */
async function countReaches(e: string, d: string, want: number, t0: number, timeoutMs: number): Promise<number> {
  await until(`${e}/${d} instance_count ${want}`, async () => (await instanceCount(e, d)) === want, timeoutMs, 100);
  return performance.now() - t0;
}

/** One endpoint whose deployment `blue` (all traffic) runs the sleeping fixture; returns its scoring URI and key. */
async function deploy(e: string, extraYaml: string[]): Promise<{ uri: string; key: string }> {
  const file = join(yamlDir, `${e}.yml`);
  writeFileSync(
    file,
    [
      'name: blue',
      `endpoint_name: ${e}`,
      'code_configuration:',
      `  code: ${join(FIXTURES, 'py-behaviours')}`,
      '  scoring_script: score.py',
      'instance_type: Standard_DS3_v2',
      ...extraYaml,
      '',
    ].join('\n'),
  );
  await ws.ok(['online-endpoint', 'create', '-n', e]);
  await ws.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', e, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  return { uri: `${routerUrl}/endpoints/${e}/score`, key };
}

function ms(n: number): string {
  return `${(n / 1000).toFixed(1)} s`;
}

function assertNoFailures(t: TestContext, name: string, load: Load): void {
  t.diagnostic(`${name}: ${load.total} requests, ${load.ok} × 200, ${load.count429} × 429, statuses ${JSON.stringify(Object.fromEntries(load.statuses))}`);
  assert.deepEqual(load.failures.slice(0, 10), [], `${name}: ${load.failures.length} failed requests other than 429`);
  assert.equal(load.total, load.ok + load.count429);
}

before(async () => {
  ({ routerUrl } = await ws.startServer(['--autoscale-interval', '1']));
  yamlDir = join(ws.dir, 'scratch', 'yaml');
  mkdirSync(yamlDir, { recursive: true });
});

after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('autoscale setting: ConcurrentRequests > 2 scales out to 3 under load, the new instances serve, back to 1 when the load drops; no failure but 429', async (t) => {
  const E = 'endpt-as-load';
  let servedAt: number[] = [];
  // 4 slots per instance: one instance has 4 requests in flight under 6 workers, over the rule's 2.
  const { uri, key } = await deploy(E, ['instance_count: 1', 'request_settings:', '  max_concurrent_requests_per_instance: 4', '  request_timeout_ms: 30000']);
  const id = (await ws.ok(['ml', 'online-deployment', 'show', '-e', E, '-n', 'blue', '-o', 'tsv', '--query', 'id'])).trim();
  const NAME = 'as-load';
  await ws.ok(['monitor', 'autoscale', 'create', '--name', NAME, '--resource', id, '--min-count', '1', '--max-count', '3', '--count', '1']);
  await ws.ok(['monitor', 'autoscale', 'rule', 'create', '--autoscale-name', NAME, '--condition', 'ConcurrentRequests > 2 avg 10s', '--scale', 'out', '1', '--cooldown', '3s']);
  await ws.ok(['monitor', 'autoscale', 'rule', 'create', '--autoscale-name', NAME, '--condition', 'ConcurrentRequests < 1 avg 10s', '--scale', 'in', '1', '--cooldown', '3s']);
  assert.equal(await instanceCount(E, 'blue'), 1);

  const t0 = performance.now();
  const t0Wall = Date.now();
  // The trickle runs from start to end: it is what the instances being drained at scale-in still serve.
  const trickle = new Load(uri, key, t0, 1, 50);
  const heavy = new Load(uri, key, t0, 6);
  let stopped = false;
  try {
    const toTwo = await countReaches(E, 'blue', 2, t0, 40_000);
    const toThree = await countReaches(E, 'blue', 3, t0, 40_000);
    // Each instance is its own Python process: three pids answering means the new instances serve.
    await until('three instances answering', async () => firstAnswers(heavy, trickle).length >= 3, 30_000, 50);
    const served = firstAnswers(heavy, trickle);
    t.diagnostic(`scale out under 6 concurrent requests: instance_count 2 after ${ms(toTwo)}, 3 after ${ms(toThree)}; first answers of the 3 instances at ${served.map(ms).join(', ')}`);
    servedAt = served;
    // Load under way at 3 instances for a while longer: the count stays at the maximum.
    const mark = heavy.ok;
    await until('more answers at 3 instances', async () => heavy.ok >= mark + 100, 30_000, 50);
    assert.equal(await instanceCount(E, 'blue'), 3);

    await heavy.stop();
    stopped = true;
    const tStop = performance.now();
    await countReaches(E, 'blue', 2, tStop, 40_000);
    const toOne = await countReaches(E, 'blue', 1, tStop, 40_000);
    t.diagnostic(`scale in after the load dropped to a trickle: instance_count 1 after ${ms(toOne)}`);
    // The trickle after the last scale-in: the remaining instance answers it.
    const after = trickle.ok;
    await until('the trickle answered after the scale-in', async () => trickle.ok >= after + 5, 15_000, 50);
  } finally {
    if (!stopped) await heavy.stop();
    await trickle.stop();
  }
  assertNoFailures(t, 'heavy load', heavy);
  assertNoFailures(t, 'trickle', trickle);
  // 1 instance × 4 slots admits 8 pending requests, more than the 7 workers: no 429 at all here.
  assert.equal(heavy.count429 + trickle.count429, 0);

  // The history: both scale-outs and both scale-ins, with the rule and the value it read.
  const history = (await json(['monitor', 'autoscale', 'history', '-n', NAME])) as unknown as Json[];
  const scaled = history.filter((h) => h.outcome === 'scaled').map((h) => [h.from, h.to, h.rule]);
  assert.deepEqual(scaled, [
    [1, 2, 'ConcurrentRequests > 2 avg 10s'],
    [2, 3, 'ConcurrentRequests > 2 avg 10s'],
    [3, 2, 'ConcurrentRequests < 1 avg 10s'],
    [2, 1, 'ConcurrentRequests < 1 avg 10s'],
  ], JSON.stringify(history, null, 1));
  const decided = history.filter((h) => h.outcome === 'scaled').map((h) => Date.parse(h.time) - t0Wall);
  t.diagnostic(`scale-out decisions at ${ms(decided[0])} and ${ms(decided[1])} after the load started (window 10 s, cooldown 3 s); a new instance served ${ms(servedAt[1] - decided[0])} and ${ms(servedAt[2] - decided[1])} after its decision`);
  for (const h of history.filter((x) => x.outcome === 'scaled')) {
    assert.equal(typeof h.value, 'number', JSON.stringify(h));
    assert.ok(h.to > h.from ? h.value > 2 : h.value < 1, JSON.stringify(h));
    assert.match(h.message, /ConcurrentRequests/);
  }
  // At 3 instances the scale-out rule kept firing: the history says the maximum held it back.
  assert.ok(history.some((h) => h.outcome === 'limited' && h.from === 3 && h.to === 3), JSON.stringify(history, null, 1));

  // get-logs: the autoscaler's lines in the deployment's console log.
  const logs = await ws.ok(['online-deployment', 'get-logs', '-e', E, '-n', 'blue', '--lines', '500']);
  assert.match(logs, new RegExp(`autoscale ${NAME}: scaled 1 → 2 — scale out 1 → 2 by rule 'ConcurrentRequests > 2 avg 10s'`));
  assert.match(logs, new RegExp(`autoscale ${NAME}: scaled 2 → 1 — scale in 2 → 1 by rule 'ConcurrentRequests < 1 avg 10s'`));
});

test('target_utilization (polling 1 s, target 50 %, 2 slots per instance): 5 concurrent requests scale out within seconds, back to 1 when the load drops; no failure but 429', async (t) => {
  const E = 'endpt-tu-load';
  const { uri, key } = await deploy(E, [
    'scale_settings:',
    '  type: target_utilization',
    '  min_instances: 1',
    '  max_instances: 3',
    '  polling_interval: 1',
    '  target_utilization_percentage: 50',
    'request_settings:',
    '  max_concurrent_requests_per_instance: 2',
    '  request_timeout_ms: 30000',
  ]);
  // Without instance_count the deployment starts at min_instances.
  assert.equal(await instanceCount(E, 'blue'), 1);

  const t0 = performance.now();
  const trickle = new Load(uri, key, t0, 1, 50);
  const heavy = new Load(uri, key, t0, 5);
  let served: number[] = [];
  let stopped = false;
  try {
    // 1 instance × 2 slots at 5 concurrent: (2 in flight + 2 queued) ÷ 2 = 200 % ≥ 50 % → 3 (max) at once.
    const toThree = await countReaches(E, 'blue', 3, t0, 15_000);
    await until('three instances answering', async () => firstAnswers(heavy, trickle).length >= 3, 30_000, 50);
    served = firstAnswers(heavy, trickle);
    t.diagnostic(`target_utilization load step (5 concurrent): instance_count 3 after ${ms(toThree)}; a new instance serving after ${ms(served[1])}, all 3 after ${ms(served[2])}`);
    assert.ok(toThree < 10_000, `scale-out took ${ms(toThree)}`);
    assert.ok(served[1] < 10_000, `the first new instance served after ${ms(served[1])} (goal ≤ 10 s)`);
    const mark = heavy.ok;
    await until('more answers at 3 instances', async () => heavy.ok >= mark + 100, 30_000, 50);
    assert.equal(await instanceCount(E, 'blue'), 3);

    await heavy.stop();
    stopped = true;
    const tStop = performance.now();
    const toOne = await countReaches(E, 'blue', 1, tStop, 30_000);
    t.diagnostic(`target_utilization scale in after the load dropped to a trickle: instance_count 1 after ${ms(toOne)}`);
    const after = trickle.ok;
    await until('the trickle answered after the scale-in', async () => trickle.ok >= after + 5, 15_000, 50);
  } finally {
    if (!stopped) await heavy.stop();
    await trickle.stop();
  }
  assertNoFailures(t, 'heavy load', heavy);
  assertNoFailures(t, 'trickle', trickle);
  // 429s come only from the admission bound of one instance (2 × 2 slots for 6 workers), before the new
  // instances serve; 3 instances admit 12.
  const last429 = Math.max(heavy.last429, trickle.last429);
  t.diagnostic(`last 429 at ${ms(last429)}; the 3rd instance first answered at ${ms(served[2])}`);
  assert.ok(last429 < served[2], `a 429 at ${ms(last429)}, after all 3 instances served (${ms(served[2])})`);

  const logs = await ws.ok(['online-deployment', 'get-logs', '-e', E, '-n', 'blue', '--lines', '500']);
  // 1 → 3 at once, or 1 → 2 → 3 when the first poll's window still held samples from before the step.
  assert.match(logs, /autoscale endpt-tu-load\/blue: scaled 1 → [23] — scale out 1 → [23]: utilization \d/);
  assert.match(logs, /autoscale endpt-tu-load\/blue: scaled [23] → 1 — scale in [23] → 1 after 3 polls below: utilization/);
});
