// How the CLI picks its server and token (docs/security.md, "Using the CLI from another machine").

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { writeOwnerToken, writeServerRecord } from '../util/workspace.js';
import { resolveServer } from './client.js';
import { readConfig, writeConfig } from './config.js';

let dir: string;
let ws: string;
const LOCAL = 'http://127.0.0.1:8470';
const OWNER = `igt_${'a'.repeat(16)}_${'b'.repeat(64)}`;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-client-'));
  ws = join(dir, 'ws');
  mkdirSync(ws, { mode: 0o700 });
  // A live server (this process's pid) on the workspace, and its owner token.
  writeServerRecord(ws, { pid: process.pid, url: LOCAL, routerUrl: 'http://127.0.0.1:8471', startedAt: '', version: 'test' });
  writeOwnerToken(ws, OWNER);
});
after(() => rmSync(dir, { recursive: true, force: true }));

const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => ({ HOME: join(dir, 'home'), INFERGATE_CONFIG: join(dir, 'config.json'), ...extra });

test('the workspace named by INFERGATE_HOME: its server.json and the owner.token beside it', () => {
  assert.deepEqual(resolveServer({}, env({ INFERGATE_HOME: ws })), { url: LOCAL, token: OWNER });
  assert.deepEqual(resolveServer({ workspace: ws }, env()), { url: LOCAL, token: OWNER });
});

test('INFERGATE_TOKEN wins over owner.token', () => {
  assert.deepEqual(resolveServer({}, env({ INFERGATE_HOME: ws, INFERGATE_TOKEN: 'igt_x' })), { url: LOCAL, token: 'igt_x' });
});

test('--server: the owner token only if the workspace server.json names that very server', () => {
  assert.deepEqual(resolveServer({ server: `${LOCAL}/` }, env({ INFERGATE_HOME: ws })), { url: LOCAL, token: OWNER });
  assert.deepEqual(resolveServer({ server: 'https://elsewhere.example:8470' }, env({ INFERGATE_HOME: ws })), { url: 'https://elsewhere.example:8470' });
  assert.deepEqual(resolveServer({}, env({ INFERGATE_HOME: ws, INFERGATE_URL: 'https://elsewhere.example:8470', INFERGATE_TOKEN: 't' })), { url: 'https://elsewhere.example:8470', token: 't' });
});

test('login: its server and token when no workspace is named; a named workspace still wins; the file is 0600', () => {
  const file = writeConfig({ server: 'https://gpu.example:8470', token: 'igt_login' }, env());
  try {
    assert.equal((statSync(file).mode & 0o777).toString(8), '600');
    assert.deepEqual(readConfig(env()), { server: 'https://gpu.example:8470', token: 'igt_login' });
    assert.deepEqual(resolveServer({}, env()), { url: 'https://gpu.example:8470', token: 'igt_login' });
    assert.deepEqual(resolveServer({ server: 'https://gpu.example:8470' }, env()), { url: 'https://gpu.example:8470', token: 'igt_login' });
    assert.deepEqual(resolveServer({}, env({ INFERGATE_HOME: ws })), { url: LOCAL, token: OWNER });
  } finally {
    rmSync(file);
  }
});

test('nothing running and no login: ServerNotFound naming login', () => {
  assert.throws(() => resolveServer({}, env()), /ServerNotFound|No infergate server .*login/);
  writeFileSync(join(dir, 'config.json'), '{not json');
  assert.throws(() => resolveServer({}, env()), /No infergate server/);
  rmSync(join(dir, 'config.json'));
});
