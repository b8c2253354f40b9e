// Issue 8 part 5: a Python worker killed mid-request is an infrastructure failure — 502/503, as Azure's
// front end answers when the container goes away — never 424, which says the model itself failed and
// would send the client looking for a bug in its score.py.

import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { childPids, FIXTURES, until, Workspace } from '../e2e/harness.js';
import { httpRequest, type Answer } from './attack.js';

const ws = new Workspace();
const E = 'rel-worker';
let uri = '';
let key = '';

before(async () => {
  await ws.startServer();
  const dir = ws.scratch(join(FIXTURES, 'py-behaviours'), 'py-behaviours');
  writeFileSync(join(dir, 'd.yml'), `name: blue\nendpoint_name: ${E}\ncode_configuration: {code: ./, scoring_script: score.py}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings: {max_concurrent_requests_per_instance: 2, request_timeout_ms: 10000}\n`);
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  await ws.ok(['online-deployment', 'create', '-f', join(dir, 'd.yml'), '--all-traffic']);
  key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  uri = (await ws.ok(['online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-20_000));
  await ws.dispose();
});

function score(body: unknown): Promise<Answer> {
  return httpRequest(uri, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: JSON.stringify(body), timeoutMs: 20_000 });
}

/**
 * The processes that run score.py: Python workers under a Node instance host (children of children of
 * the server), or, with WORKER_COUNT 1 on the process backend, the Python instance host itself.
 */
function pythonWorkers(): number[] {
  const hosts = childPids(ws.server!.pid!);
  return [...hosts, ...hosts.flatMap(childPids)].filter((p) => {
    try {
      return /infergate_(worker|host)\.py/.test(readFileSync(`/proc/${p}/cmdline`, 'utf8'));
    } catch {
      return false;
    }
  });
}

test('kill -9 of a Python worker mid-request: 502/503, never 424; a replacement serves', async (t) => {
  const first = await score({ op: 'pid' });
  assert.equal(first.status, 200, first.body);
  const workerPid = (JSON.parse(first.body) as { pid: number }).pid;
  assert.ok(pythonWorkers().includes(workerPid), `worker ${workerPid} among ${pythonWorkers().join(' ')}`);

  const inFlight = [score({ op: 'sleep', seconds: 4, announce: 'worker-kill sleeping' }), score({ op: 'sleep', seconds: 4, announce: 'worker-kill sleeping' })];
  // Killed once it holds a request (its console-log line), not after a guessed time.
  await until('the worker to hold a request', async () => (await ws.ok(['online-deployment', 'get-logs', '-e', E, '-n', 'blue', '--lines', '200'])).includes('worker-kill sleeping'), 10_000, 50);
  const killedAt = Date.now();
  process.kill(workerPid, 'SIGKILL');
  const answers = await Promise.all(inFlight);
  t.diagnostic(`in flight at the kill: ${answers.map((a) => `${a.status} ${a.body.slice(0, 120)}`).join(' | ')}`);
  for (const a of answers) {
    assert.notEqual(a.status, 424, `a dead worker is not a model error: ${a.body}`);
    // The worker sleeps 4 s, so none of them can have been answered by it: the request it held fails
    // with 502/503; one still queued may be retried on the replacement (200 from a new pid).
    if (a.status === 200) assert.notEqual((JSON.parse(a.body) as { pid: number }).pid, workerPid);
    else assert.ok(a.status === 502 || a.status === 503, `${a.status} ${a.body}`);
  }
  assert.ok(answers.some((a) => a.status === 502 || a.status === 503), 'the request the worker held failed');
  const replacement = await until('a replacement worker to serve', async () => {
    const r = await score({ op: 'pid' });
    return r.status === 200 ? (JSON.parse(r.body) as { pid: number }).pid : undefined;
  }, 20_000, 100);
  assert.notEqual(replacement, workerPid);
  t.diagnostic(`replacement worker ${replacement} served ${Date.now() - killedAt} ms after the kill`);
});

test('a worker that exits by itself mid-request (os._exit) is also 502/503, not 424', async () => {
  const r = await score({ op: 'die' });
  assert.notEqual(r.status, 424, r.body);
  assert.ok(r.status === 502 || r.status === 503, `${r.status} ${r.body}`);
  await until('a replacement worker to serve', async () => (await score({ op: 'pid' })).status === 200, 20_000, 100);
});
