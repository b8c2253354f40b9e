// Issue 14 parts 4 and 5 through the real CLI and a real server: get-logs --follow, the stable `current`
// path of a deployment's log, the server log as JSON lines with the control-plane access log, and az's
// exit codes and messages.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readlinkSync, realpathSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, EXAMPLES, until, Workspace } from './harness.js';

const ws = new Workspace();
const E = 'endpt-e2e-logs';
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');

before(async () => {
  await ws.startServer(['--log-format', 'json']);
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', E])).code, 0);
  const dep = await ws.cli(['online-deployment', 'create', '-n', 'blue', '-e', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('logs/<endpoint>/<deployment>/current names the live instance: its console log is at a path that does not change', async () => {
  const current = join(ws.dir, 'logs', E, 'blue', 'current');
  const id = await until('the current link', async () => {
    try {
      return readlinkSync(current);
    } catch {
      return undefined;
    }
  });
  assert.doesNotMatch(id, /\//, 'relative: the workspace can move');
  assert.match(readFileSync(join(current, 'inference-server.log'), 'utf8'), /Init complete/);
  // get-logs lists instance folders only: the link is not taken for a stopped instance.
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E]);
  assert.doesNotMatch(logs, /=== instance/);
  // A new instance (instance_count 2) leaves the link on a live one.
  await ws.ok(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'instance_count=2']);
  await until('current to name the newest instance', async () => readlinkSync(current) !== id);
  assert.match(realpathSync(current), new RegExp(`/logs/${E}/blue/[^/]+$`));
  await ws.ok(['online-deployment', 'update', '-n', 'blue', '-e', E, '--set', 'instance_count=1']);
});

test('get-logs --follow prints the tail, then each new line as it is written, and ends when the server stops', async (t) => {
  const child = spawn(process.execPath, [BIN, 'online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', '3', '--follow'], { env: ws.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  try {
    await until('the tail', async () => out.split('\n').length > 3);
    const before = (out.match(/request received/g) ?? []).length;
    const t0 = Date.now();
    await ws.ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST]);
    await until('the new line', async () => (out.match(/request received/g) ?? []).length > before, 5_000, 20);
    const seen = Date.now() - t0;
    t.diagnostic(`invoke → the line on the follower's stdout: ${seen} ms (the invoke CLI itself included)`);
    assert.ok(seen < 3_000, `a new line reached the follower in ${seen} ms`);
    // Twice more: each new line once, in order.
    await ws.ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST]);
    await ws.ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST]);
    await until('two more lines', async () => (out.match(/request received/g) ?? []).length === before + 3, 5_000, 20);
    assert.equal(child.exitCode, null, 'still following');
  } finally {
    const code = await ws.stopServer();
    assert.equal(code, 0, ws.serverLog);
  }
  assert.equal(await exited, 0, err);
  await ws.startServer(['--log-format', 'json']);
});

test('the server log is JSON lines with an access log: method, route, status, ms and token id, never the token', async () => {
  await ws.ok(['online-endpoint', 'show', '-n', E]);
  const missing = await ws.cli(['online-endpoint', 'show', '-n', 'no-such-endpoint']);
  assert.equal(missing.code, 3);
  const token = ws.ownerToken;
  const records = ws.serverLog.split('\n').filter(Boolean).map((line) => {
    try {
      return JSON.parse(line) as Record<string, unknown>;
    } catch {
      assert.fail(`not a JSON line: ${line}`);
    }
  });
  assert.ok(records.every((r) => typeof r.level === 'number' && typeof r.time === 'string' && typeof r.msg === 'string'));
  const access = records.filter((r) => r.access !== undefined).map((r) => r.access as Record<string, unknown>);
  const shown = access.find((a) => a.method === 'GET' && a.route === '/api/endpoints/:name' && a.status === 200);
  assert.ok(shown, JSON.stringify(access.slice(-5)));
  assert.equal(typeof shown.ms, 'number');
  assert.match(String(shown.token_id), /\S/);
  assert.ok(access.some((a) => a.route === '/api/endpoints/:name' && a.status === 404));
  assert.ok(!ws.serverLog.includes(token), 'the owner token never appears in the server log');
});

test("az's exit codes and messages through the real CLI: 3 not found, 2 a bad flag value, 1 a missing file", async () => {
  const noEndpoint = await ws.cli(['online-endpoint', 'show', '-n', 'no-such-endpoint']);
  assert.equal(noEndpoint.code, 3, noEndpoint.stderr);
  assert.match(noEndpoint.stderr, /^ERROR: \(EndpointNotFound\) /);
  const noDeployment = await ws.cli(['online-deployment', 'get-logs', '-n', 'green', '-e', E]);
  assert.equal(noDeployment.code, 3, noDeployment.stderr);
  assert.match(noDeployment.stderr, /^ERROR: \(DeploymentNotFound\) /);
  const follow404 = await ws.cli(['online-deployment', 'get-logs', '-n', 'green', '-e', E, '--follow']);
  assert.equal(follow404.code, 3, follow404.stderr);

  const lines = await ws.cli(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--lines', 'abc']);
  assert.equal(lines.code, 2);
  assert.equal(lines.stderr, "ERROR: (BadArgument) --lines must be a whole number of at least 0, not 'abc'\n");
  assert.doesNotMatch(lines.stderr, /NaN/);
  const unknownFlag = await ws.cli(['online-endpoint', 'show', '-n', E, '--no-such-flag']);
  assert.equal(unknownFlag.code, 2);

  const missing = join(ws.dir, 'no-such-endpoint.yml');
  for (const args of [['online-endpoint', 'create', '-f', missing], ['online-deployment', 'create', '-f', missing], ['online-endpoint', 'invoke', '-n', E, '-r', missing]]) {
    const r = await ws.cli(args);
    assert.equal(r.code, 1, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, /^ERROR: \((BadArgument|RequestFileInvalid)\) --(file|request-file): No such file or directory: '.*no-such-endpoint\.yml'\n$/);
    assert.doesNotMatch(r.stderr, /ENOENT|\n\s+at /);
  }
});
