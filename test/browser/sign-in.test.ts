// `infergate studio` without a browser (runs where chromium is missing too): the real CLI against a real
// server prints a link that signs in once with its token's role, and --open hands that link to xdg-open.

import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { until, Workspace } from '../e2e/harness.js';

const ws = new Workspace('process');

before(async () => {
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

/** The session cookie the link gives, and the role the API then sees. */
async function exchange(url: string): Promise<{ cookie: string; role: string }> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  const cookie = (res.headers.get('set-cookie') ?? '').split(';')[0];
  const who = (await (await fetch(url.replace(/\/studio\/login.*$/, '/api/whoami'), { headers: { cookie } })).json()) as { role: string };
  return { cookie, role: who.role };
}

test('infergate studio prints a one-time sign-in link with the role of the token that asked', async () => {
  const owner = await ws.cli(['studio']);
  assert.equal(owner.code, 0, owner.stderr);
  const { url } = JSON.parse(readFileSync(join(ws.dir, 'server.json'), 'utf8')) as { url: string };
  assert.ok(owner.stdout.startsWith(`${url}/studio/login?code=`), owner.stdout);
  assert.equal(owner.stdout.split('\n').length, 2, 'one line: the link');
  assert.equal((await exchange(owner.stdout.trim())).role, 'owner');
  assert.equal((await fetch(owner.stdout.trim())).status, 401, 'used once already');

  const reader = JSON.parse(await ws.ok(['token', 'create', '--role', 'reader'])) as { token: string };
  const link = await ws.cli(['studio'], { env: { INFERGATE_TOKEN: reader.token } });
  assert.equal(link.code, 0, link.stderr);
  const session = await exchange(link.stdout.trim());
  assert.equal(session.role, 'reader');
  const keys = await fetch(`${url}/api/endpoints/none/credentials`, { method: 'POST', headers: { cookie: session.cookie, 'x-infergate-studio': '1' } });
  assert.equal(keys.status, 403);

  const bad = await ws.cli(['studio'], { env: { INFERGATE_TOKEN: 'igt_0000000000000000_' + '0'.repeat(64) } });
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /not valid/);
});

test('infergate studio --open hands the link to xdg-open', async () => {
  const bin = join(ws.dir, 'fake-bin');
  mkdirSync(bin, { recursive: true });
  const seen = join(ws.dir, 'opened.txt');
  writeFileSync(join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s' "$1" > '${seen}'\n`);
  chmodSync(join(bin, 'xdg-open'), 0o755);
  const r = await ws.cli(['studio', '--open'], { env: { PATH: `${bin}:${process.env.PATH ?? ''}` } });
  assert.equal(r.code, 0, r.stderr);
  const opened = await until('xdg-open to be run', async () => {
    try {
      return readFileSync(seen, 'utf8') || undefined;
    } catch {
      return undefined;
    }
  }, 10_000);
  assert.equal(opened, r.stdout.trim());
  assert.equal((await exchange(opened)).role, 'owner');
});
