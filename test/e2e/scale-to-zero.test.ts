// Scale to zero (issue 12 item 5): a deployment that keeps no instance answers its next request with 200,
// the request waiting (queued, within request_timeout_ms) while an instance starts — never 404 or 503.
//
// Two tests:
// 1. The pieces wired as main/server.ts wires them (Router with onDemand → Controller.wake, the process
//    backend, Azure's model-1 with a real Python instance), driven to zero through the controller's own
//    entry point (scaleToZero), as the autoscaler does after an idle period. Prints the cold-start time
//    (zero instances → first 200), median of 5: bench P7's cold-start figure.
// 2. The user's path, with the real CLI and server: a deployment with scale_settings target_utilization
//    min_instances 0 is taken to zero by the autoscaler when idle (no request at all), and the first
//    request after that answers 200. Needs the server's wiring of issue 12 (autoscaler + router onDemand).

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { ProcessBackend } from '../../src/backend/index.js';
import { Controller } from '../../src/reconcile/index.js';
import { Router } from '../../src/router/router.js';
import { loadDeploymentYaml, loadEndpointYaml } from '../../src/spec/load.js';
import { MemoryStateStore } from '../../src/store/memory.js';
import { curl, EXAMPLES, SAMPLE_ANSWER, until, Workspace } from './harness.js';

const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');
const KEY = 'scale-to-zero-test-primary-key-000000';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
}

test('in process: a deployment scaled to zero answers its next request with 200 while an instance starts; cold start median of 5', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-zero-'));
  const store = new MemoryStateStore();
  const backend = new ProcessBackend({ workspace: dir });
  const wakes: string[] = [];
  let controller: Controller | undefined;
  const router = new Router({
    failedAuth: false,
    // As main/server.ts connects them: a request finding no instance asks the controller for one.
    onDemand: (e, d) => {
      wakes.push(`${e}/${d}`);
      return controller!.wake(e, d);
    },
  });
  controller = new Controller({ store, backend, publish: (t) => router.setTable(t) });
  try {
    const port = (await router.listen(0, '127.0.0.1')).port;
    const efile = join(SAMPLE, 'endpoint.yml');
    const endpoint = { ...loadEndpointYaml(readFileSync(efile, 'utf8'), efile).spec!, name: 'zero-ep', traffic: { blue: 100 } };
    store.putEndpoint(endpoint, { primaryKey: KEY, secondaryKey: `${KEY}-2`, tokenSecret: 'c2VjcmV0' }, { provisioningState: 'Succeeded' });
    const dfile = join(SAMPLE, 'blue-deployment.yml');
    // Azure's default request_timeout_ms (5 s) holds a cold start of model-1 here; 30 s keeps a loaded CI
    // machine from turning a slow start into a 408.
    const loaded = loadDeploymentYaml(readFileSync(dfile, 'utf8'), dfile, ['request_settings.request_timeout_ms=30000']);
    assert.deepEqual(loaded.problems, []);
    // min_instances 0 on the parsed spec: the loop and router are under test here, not the YAML rules.
    store.putDeployment(
      { ...loaded.spec!, endpointName: 'zero-ep', scaleSettings: { type: 'target_utilization', minInstances: 0, maxInstances: 2, pollingInterval: 1, targetUtilizationPercentage: 70 } },
      { provisioningState: 'Creating' },
    );
    const uri = `http://127.0.0.1:${port}/endpoints/zero-ep/score`;
    const auth = { Authorization: `Bearer ${KEY}`, 'Content-Type': 'application/json' };
    await controller.kick();
    const first = await until('the first instance to answer', async () => {
      const r = await curl(uri, auth, REQUEST);
      return r.status === 200 ? r : undefined;
    }, 60_000);
    assert.equal(first.body, SAMPLE_ANSWER);

    const running = () => backend.observe().filter((i) => i.deployment === 'blue').length;
    const coldStarts: number[] = [];
    const wakesBefore = wakes.length;
    for (let round = 0; round < 5; round++) {
      await controller.scaleToZero('zero-ep', 'blue');
      await until('every instance to be gone', async () => running() === 0, 30_000, 20);
      const t0 = performance.now();
      const r = await curl(uri, auth, REQUEST);
      const ms = performance.now() - t0;
      assert.equal(r.status, 200, `round ${round}: ${r.body}`);
      assert.equal(r.body, SAMPLE_ANSWER);
      coldStarts.push(ms);
    }
    assert.equal(wakes.length - wakesBefore, 5, `one wake per cold start: ${wakes.join(', ')}`);
    console.log(`# cold start from zero to first 200 (process backend, model-1): median ${median(coldStarts).toFixed(0)} ms of ${coldStarts.map((x) => x.toFixed(0)).join(', ')}`);
  } finally {
    controller.stop();
    await router.close();
    await backend.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

const ws = new Workspace();
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('CLI: a min_instances 0 deployment is taken to zero when idle, and the first request after that answers 200', async () => {
  const { url, routerUrl } = await ws.startServer();
  const E = 'endpt-zero';
  const dir = ws.scratch(join(EXAMPLES, 'model-1'), 'model-1');
  const yml = join(dir, 'zero-deployment.yml');
  writeFileSync(
    yml,
    [
      'name: blue',
      `endpoint_name: ${E}`,
      'model:',
      '  path: model/',
      'code_configuration:',
      '  code: onlinescoring/',
      '  scoring_script: score.py',
      'environment:',
      '  conda_file: environment/conda.yaml',
      '  image: mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest',
      'instance_type: Standard_DS3_v2',
      'instance_count: 1',
      'scale_settings:',
      '  type: target_utilization',
      '  min_instances: 0',
      '  max_instances: 2',
      '  polling_interval: 1',
      '  target_utilization_percentage: 70',
      'request_settings:',
      '  request_timeout_ms: 30000',
      '',
    ].join('\n'),
  );
  await ws.ok(['online-endpoint', 'create', '-n', E, '-f', join(SAMPLE, 'endpoint.yml')]);
  await ws.ok(['online-deployment', 'create', '-n', 'blue', '-e', E, '-f', yml, '--all-traffic']);
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = `${routerUrl}/endpoints/${E}/score`;
  const auth = { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' };
  const warm = await curl(uri, auth, REQUEST);
  assert.equal(warm.status, 200, warm.body);

  // Idle: the autoscaler takes the deployment to zero. The router says how many instances serve it.
  const ready = () => ws.metric('infergate_ready_instances', { endpoint: E, deployment: 'blue' });
  await until('the deployment to scale to zero', async () => (await ready()) === 0, 60_000, 200);
  assert.ok(url);

  const t0 = performance.now();
  const r = await curl(uri, auth, REQUEST);
  const ms = performance.now() - t0;
  assert.equal(r.status, 200, r.body);
  assert.equal(r.body, SAMPLE_ANSWER);
  console.log(`# CLI: cold start from zero to first 200: ${ms.toFixed(0)} ms`);
  assert.ok((await ready()) >= 1, 'an instance serves it now');
  assert.equal(await ws.metric('infergate_requests_total', { endpoint: E, deployment: 'blue', status_code: '503' }), 0, 'no 503 for the cold start');
});
