// The exposition /metrics serves (issue 14 part 3): standard process_* / nodejs_* names, answers given
// before selection in the requests counter, per-instance CPU and memory, instance states and restarts.
// The registry is the process's own, so every test uses names of its own.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allDeploymentMeters, deploymentMeters, endpointMeters, registry, setInstanceSource, setInstanceUtilization, UNSELECTED } from './metrics.js';

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of the text exposition format (label values here hold no escaped quotes). */
async function scrape(): Promise<Sample[]> {
  const out: Sample[] = [];
  for (const line of (await registry.metrics()).split('\n')) {
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m === null) continue;
    const labels: Record<string, string> = {};
    for (const l of (m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

const having = (samples: Sample[], name: string, labels: Record<string, string>) =>
  samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));

test('process and Node.js metrics carry their standard names, with no prefix of ours', async () => {
  const text = await registry.metrics();
  for (const name of ['process_cpu_seconds_total', 'process_resident_memory_bytes', 'process_start_time_seconds', 'nodejs_eventloop_lag_seconds', 'nodejs_heap_size_used_bytes', 'nodejs_gc_duration_seconds']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'), name);
  }
  assert.doesNotMatch(text, /infergate_process_|process_process_/);
  // Every family of ours is infergate_*, and nothing else appears besides the standard two.
  for (const m of text.matchAll(/^# TYPE (\S+) /gm)) assert.match(m[1], /^(infergate|process|nodejs)_/);
});

test('answers given before selection are counted per endpoint with deployment ""', async () => {
  const m = endpointMeters('auth-ep');
  assert.equal(endpointMeters('auth-ep'), m, 'one object per endpoint');
  m.byStatus[401] += 3;
  m.byStatus[429]++;
  deploymentMeters('auth-ep', 'blue').byStatus[200] += 2;
  const samples = await scrape();
  const unselected = having(samples, 'infergate_requests_total', { endpoint: 'auth-ep', deployment: UNSELECTED });
  assert.deepEqual(
    unselected.map((s) => [s.labels.status_code, s.labels.status_code_class, s.value]).sort(),
    [
      ['401', '4xx', 3],
      ['429', '4xx', 1],
    ],
  );
  assert.equal(having(samples, 'infergate_requests_total', { endpoint: 'auth-ep', deployment: 'blue', status_code: '200' })[0]?.value, 2);
  // Not a deployment: no gauges (a "no ready instance" alert would fire on it) and no autoscale series.
  assert.deepEqual(having(samples, 'infergate_ready_instances', { endpoint: 'auth-ep', deployment: '' }), []);
  assert.ok(![...allDeploymentMeters()].some((d) => d.endpoint === 'auth-ep' && d.deployment === ''));
});

test('per-instance CPU and memory: what the last sample handed over, nothing measured left out', async () => {
  setInstanceUtilization([
    { instance: 'util-ep-blue-0', endpoint: 'util-ep', deployment: 'blue', cpuPercent: 37.5, memoryPercent: 12, memoryBytes: 256 * 2 ** 20 },
    { instance: 'util-ep-blue-1', endpoint: 'util-ep', deployment: 'blue', cpuPercent: NaN, memoryPercent: 20, memoryBytes: 400 * 2 ** 20 },
  ]);
  let samples = await scrape();
  const cpu = having(samples, 'infergate_instance_cpu_utilization_percent', { endpoint: 'util-ep' });
  assert.deepEqual(cpu.map((s) => [s.labels.deployment, s.labels.instance, s.value]), [['blue', 'util-ep-blue-0', 37.5]]);
  const mem = having(samples, 'infergate_instance_memory_utilization_percent', { endpoint: 'util-ep' });
  assert.deepEqual(mem.map((s) => [s.labels.instance, s.value]), [
    ['util-ep-blue-0', 12],
    ['util-ep-blue-1', 20],
  ]);
  assert.equal(having(samples, 'infergate_instance_memory_bytes', { instance: 'util-ep-blue-1' })[0]?.value, 400 * 2 ** 20);

  // The next sample without instance 1 (stopped): its series go.
  setInstanceUtilization([{ instance: 'util-ep-blue-0', endpoint: 'util-ep', deployment: 'blue', cpuPercent: 50, memoryPercent: 13, memoryBytes: 1 }]);
  samples = await scrape();
  assert.deepEqual(having(samples, 'infergate_instance_memory_bytes', { instance: 'util-ep-blue-1' }), []);
  assert.equal(having(samples, 'infergate_instance_cpu_utilization_percent', { instance: 'util-ep-blue-0' })[0]?.value, 50);
  setInstanceUtilization([]);
  assert.deepEqual(having(await scrape(), 'infergate_instance_cpu_utilization_percent', { endpoint: 'util-ep' }), []);
});

test('instance states (zeros included) and restarts come from the instance source at scrape time', async (t) => {
  t.after(() => setInstanceSource(null));
  let observed = [
    { id: 'st-ep-blue-0', endpoint: 'st-ep', deployment: 'blue', state: 'ready', restarts: 0 },
    { id: 'st-ep-blue-1', endpoint: 'st-ep', deployment: 'blue', state: 'restarting', restarts: 4 },
    { id: 'st-ep-green-0', endpoint: 'st-ep', deployment: 'green', state: 'ready', restarts: 0 },
  ];
  setInstanceSource(() => observed);
  let samples = await scrape();
  const blue = having(samples, 'infergate_instances', { endpoint: 'st-ep', deployment: 'blue' });
  assert.deepEqual(Object.fromEntries(blue.map((s) => [s.labels.state, s.value])), { starting: 0, ready: 1, unready: 0, restarting: 1, failed: 0, stopping: 0 });
  assert.equal(having(samples, 'infergate_instances', { endpoint: 'st-ep', deployment: 'green', state: 'ready' })[0]?.value, 1);
  assert.equal(having(samples, 'infergate_instance_restarts', { instance: 'st-ep-blue-1' })[0]?.value, 4);

  // Read live: the next scrape sees what the backend sees then.
  observed = [{ id: 'st-ep-blue-1', endpoint: 'st-ep', deployment: 'blue', state: 'ready', restarts: 5 }];
  samples = await scrape();
  assert.equal(having(samples, 'infergate_instances', { endpoint: 'st-ep', deployment: 'blue', state: 'restarting' })[0]?.value, 0);
  assert.deepEqual(having(samples, 'infergate_instances', { endpoint: 'st-ep', deployment: 'green' }), []);
  assert.equal(having(samples, 'infergate_instance_restarts', { instance: 'st-ep-blue-1' })[0]?.value, 5);

  // A backend that throws costs the scrape these series, not the scrape.
  setInstanceSource(() => {
    throw new Error('backend gone');
  });
  samples = await scrape();
  assert.deepEqual(having(samples, 'infergate_instances', { endpoint: 'st-ep' }), []);
  assert.ok(samples.some((s) => s.name === 'process_cpu_seconds_total'));
});
