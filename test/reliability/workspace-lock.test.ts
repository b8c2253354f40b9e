// Issue 8: one server per workspace, decided by an OS-level lock (src/util/workspace-lock.ts). Real
// `infergate server` processes from dist/ (npm run build first), loopback only, bounded in count and time.

import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { alive, BIN, childPids, EXAMPLES, FIXTURES, SAMPLE_ANSWER, until, Workspace } from '../e2e/harness.js';

const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');

interface Started {
  child: ChildProcess;
  spawnedAt: number;
  out: string;
  err: string;
  /** Resolves with 'serving' once it printed its URLs, or with its exit code. */
  outcome: Promise<{ serving: true; at: number } | { serving: false; code: number | null; at: number }>;
}

function server(ws: Workspace): Started {
  const child = spawn(process.execPath, [BIN, 'server', '--workspace', ws.dir, '--port', '0', '--router-port', '0'], { env: ws.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const s: Started = { child, spawnedAt: Date.now(), out: '', err: '', outcome: undefined as never };
  s.outcome = new Promise((resolve) => {
    child.stdout!.on('data', (c: Buffer) => {
      s.out += c.toString();
      if (s.out.includes('router:')) resolve({ serving: true, at: Date.now() });
    });
    child.stderr!.on('data', (c: Buffer) => (s.err += c.toString()));
    child.once('exit', (code) => resolve({ serving: false, code, at: Date.now() }));
  });
  return s;
}

async function stop(s: Started, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const exited = new Promise((r) => s.child.once('exit', r));
  s.child.kill(signal);
  await exited;
}

const workspaces: Workspace[] = [];
const servers: Started[] = [];
after(async () => {
  for (const s of servers) await stop(s, 'SIGKILL');
  for (const w of workspaces) await w.dispose();
});

function workspace(): Workspace {
  const w = new Workspace();
  workspaces.push(w);
  return w;
}

test('two servers started at the same moment on one workspace: exactly one serves, the other is refused at once naming it', async () => {
  const refusals: number[] = [];
  for (let round = 0; round < 3; round++) {
    const ws = workspace();
    const a = server(ws);
    const b = server(ws); // no delay
    servers.push(a, b);
    const [ra, rb] = await Promise.all([a.outcome, b.outcome]);
    assert.equal([ra, rb].filter((r) => r.serving).length, 1, `exactly one serves:\nA ${a.out}${a.err}\nB ${b.out}${b.err}`);
    const [winner, loser, lost] = ra.serving ? [a, b, rb] : [b, a, ra];
    assert.equal(lost.serving, false);
    if (lost.serving) continue;
    assert.equal(lost.code, 1);
    assert.match(loser.err, new RegExp(`^ERROR: \\(WorkspaceLocked\\) .*pid ${winner.child.pid}\\b`, 'm'));
    // Refused before it loads the server's modules: ~0.3 s against a serving server and ~0.5 s in a
    // simultaneous start on an idle 2-core machine; the bound leaves room for a loaded CI run.
    assert.ok(lost.at - loser.spawnedAt < 5000, `refused after ${lost.at - loser.spawnedAt} ms`);
    refusals.push(lost.at - loser.spawnedAt);
    // The loser touched nothing of the winner's: its record names the winner, which still serves.
    const rec = JSON.parse(readFileSync(join(ws.dir, 'server.json'), 'utf8')) as { pid: number; url: string };
    assert.equal(rec.pid, winner.child.pid);
    assert.equal(await ws.ok(['online-endpoint', 'list', '-o', 'tsv']), '', 'the winner serves its control plane');

    // A third one, against a server that serves: refused with its URL and start time.
    const c = server(ws);
    servers.push(c);
    const rc = await c.outcome;
    assert.equal(rc.serving, false);
    assert.match(c.err, new RegExp(`WorkspaceLocked\\) .*pid ${winner.child.pid}, serving at ${rec.url.replace(/[.]/g, '\\.')} .* since \\d{4}-`));
    await stop(winner);
    assert.equal(existsSync(join(ws.dir, 'server.json')), false, 'a clean stop removes its own record');
  }
  console.log(`# second server refused after ${refusals.join(', ')} ms (from spawn to exit)`);
});

test('kill -9 of the server: its instances exit, the lock is free, a new server re-provisions and serves', async () => {
  const ws = workspace();
  const first = server(ws);
  servers.push(first);
  assert.equal((await first.outcome).serving, true, first.err);
  const E = 'endpt-lock-kill';
  assert.equal((await ws.cli(['online-endpoint', 'create', '-n', E])).code, 0);
  const dir = ws.scratch(join(FIXTURES, 'js-model'), 'js-model');
  writeFileSync(join(dir, 'deployment.yml'), ['name: blue', `endpoint_name: ${E}`, 'model:', '  path: model/', 'code_configuration:', '  code: ./', '  scoring_script: score.mjs', 'instance_type: Standard_DS3_v2', 'instance_count: 2', ''].join('\n'));
  const dep = await ws.cli(['online-deployment', 'create', '-f', join(dir, 'deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
  const hosts = childPids(first.child.pid!);
  assert.equal(hosts.length, 2, 'two instance hosts');

  first.child.kill('SIGKILL');
  await new Promise((r) => first.child.once('exit', r));
  // They hold an IPC channel to the server and, where setpriv exists, die with it (PR_SET_PDEATHSIG).
  await until('the instance hosts of the killed server to exit', async () => hosts.every((p) => !alive(p)), 10_000);
  assert.ok(existsSync(join(ws.dir, 'server.json')), 'the killed server could not remove its record');

  // The stale record does not block: the lock decides, and the kernel released it.
  const second = server(ws);
  servers.push(second);
  assert.equal((await second.outcome).serving, true, second.err);
  const show = JSON.parse(await ws.ok(['online-deployment', 'show', '-n', 'blue', '-e', E])) as { provisioning_state: string };
  assert.equal(show.provisioning_state, 'Succeeded');
  const invoke = await until('the re-provisioned instances to answer', async () => {
    const r = await ws.cli(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST, '-o', 'tsv']);
    return r.code === 0 ? r : undefined;
  });
  assert.equal(invoke.stdout, SAMPLE_ANSWER + '\n');
  assert.equal(childPids(second.child.pid!).length, 2);

  // Delete leaves nothing of the deployment behind: no instance folders, no logs (Azure: gone with it).
  await ws.ok(['online-endpoint', 'delete', '-n', E, '--yes']);
  assert.equal(existsSync(join(ws.dir, 'instances', E)), false);
  assert.equal(existsSync(join(ws.dir, 'logs', E)), false);
  await stop(second);
});

test('two --local commands at once: one local server starts, both commands succeed against it', async () => {
  const ws = workspace();
  const [a, b] = await Promise.all([ws.cli(['online-endpoint', 'create', '--local', '-n', 'endpt-local-a']), ws.cli(['online-endpoint', 'create', '--local', '-n', 'endpt-local-b'])]);
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  const list = JSON.parse(await ws.ok(['online-endpoint', 'list', '--local'])) as { name: string }[];
  assert.deepEqual(list.map((e) => e.name).sort(), ['endpt-local-a', 'endpt-local-b']);
  const rec = JSON.parse(readFileSync(join(ws.dir, 'local', 'server.json'), 'utf8')) as { pid: number };
  assert.ok(alive(rec.pid));
  // At most one other server was started, and it was refused.
  const log = readFileSync(join(ws.dir, 'local', 'server.log'), 'utf8');
  assert.equal((log.match(/serving workspace/g) ?? []).length, 1, log);
});
