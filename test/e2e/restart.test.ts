// Nothing is lost: after a server restart every endpoint, deployment, key and traffic rule is back and
// the instances are started again.

import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { curl, EXAMPLES, SAMPLE_ANSWER, until, Workspace } from './harness.js';

const ws = new Workspace();
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('after a restart the endpoint still answers with the same key', async () => {
  await ws.startServer();
  const E = 'endpt-restart';
  const SAMPLE = join(EXAMPLES, 'managed', 'sample');
  const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', E, '-f', join(SAMPLE, 'endpoint.yml')])).code, 0);
  const dep = await ws.cli(['online-deployment', 'create', '-n', 'blue', '-e', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
  const key = (await ws.cli(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
  const before = (await ws.cli(['online-endpoint', 'show', '-n', E])).stdout;

  assert.equal(await ws.stopServer(), 0, 'SIGTERM stops the server cleanly');
  // Instances stopped with it, and their socket folder is gone (backend/process: <tmp>/infergate-<hash>).
  const socketDir = join(tmpdir(), `infergate-${createHash('sha256').update(ws.dir).digest('hex').slice(0, 10)}`);
  assert.equal(existsSync(socketDir), false, `${socketDir} is left behind`);
  const { routerUrl } = await ws.startServer();

  const afterShow = JSON.parse((await ws.cli(['online-endpoint', 'show', '-n', E])).stdout) as Record<string, unknown>;
  const beforeShow = JSON.parse(before) as Record<string, unknown>;
  assert.deepEqual(afterShow.traffic, beforeShow.traffic);
  assert.equal(afterShow.auth_mode, beforeShow.auth_mode);
  assert.equal((await ws.cli(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim(), key);
  const uri = `${routerUrl}/endpoints/${E}/score`;
  const answer = await until('the restored instance to answer', async () => {
    const r = await curl(uri, { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, REQUEST);
    return r.status === 200 ? r : undefined;
  });
  assert.equal(answer.body, SAMPLE_ANSWER);
});
