// Issue 8 part 2, the symptom itself: a second `infergate server` on a workspace that is serving must be
// refused without touching anything — before the lock, it started the same instance (same socket path and
// directory), and stopping it deleted the first one's server.json and instance directory, after which the
// survivor answered 429 to every request while reporting a ready instance. (The lock's own behaviour —
// simultaneous starts, kill -9 releasing it, --local — is in workspace-lock.test.ts.)

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, Workspace } from '../e2e/harness.js';
import { assertControlPlane, assertServes, deployJsModel, fdCount } from './attack.js';

const ws = new Workspace();
const E = 'rel-second';
let apiUrl = '';

before(async () => {
  ({ url: apiUrl } = await ws.startServer());
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-20_000));
  await ws.dispose();
});

/** Every file under the workspace's instances/ with its size and mtime: what a second server must not change. */
function instanceTree(): string[] {
  const root = join(ws.dir, 'instances');
  return (readdirSync(root, { recursive: true }) as string[])
    .sort()
    .map((p) => {
      const st = statSync(join(root, p));
      return `${p} ${st.isDirectory() ? 'dir' : st.size} ${st.mtimeMs}`;
    });
}

test('a second server on a serving workspace is refused, and the first serves on as before', async (t) => {
  const { uri, key } = await deployJsModel(ws, E, '{max_concurrent_requests_per_instance: 4}', 2);
  for (let i = 0; i < 3; i++) await assertServes(uri, key);
  const holder = ws.server!.pid!;
  const record = readFileSync(join(ws.dir, 'server.json'), 'utf8');
  const tree = instanceTree();
  const fds = fdCount(holder);

  // Three at once, as a careless script might start them; each is refused, and each exits.
  const refusals = await Promise.all(Array.from({ length: 3 }, () => new Promise<{ code: number | null; err: string; ms: number }>((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [BIN, 'server', '--port', '0', '--router-port', '0'], { env: ws.env, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    child.once('exit', (code) => (clearTimeout(timer), resolve({ code, err, ms: Date.now() - t0 })));
  })));
  t.diagnostic(`second servers refused after ${refusals.map((r) => r.ms).join(', ')} ms`);
  for (const r of refusals) {
    assert.notEqual(r.code, 0, r.err);
    assert.notEqual(r.code, null, 'refused, not killed by the time limit');
    assert.match(r.err, /WorkspaceLocked/);
    assert.match(r.err, new RegExp(`\\b${holder}\\b`), `names the holder's pid: ${r.err}`);
  }
  // Nothing of the holder's changed: its record, its instance files; and it serves (not 429) from both instances.
  assert.equal(readFileSync(join(ws.dir, 'server.json'), 'utf8'), record);
  assert.deepEqual(instanceTree(), tree);
  for (let i = 0; i < 10; i++) await assertServes(uri, key);
  await assertControlPlane(ws, apiUrl, E);
  assert.ok(fdCount(holder) <= fds + 8, `the holder's fds: ${fds} → ${fdCount(holder)}`);
});
