// The control plane's access model end to end (issue 9), through the real CLI and curl against a real
// server: the local CLI works with no step of its own (owner.token), the attacks from the issue are
// refused (credentials without a token, Host: evil.example), tokens are created, used remotely
// (--server + INFERGATE_TOKEN, or login), expire and are revoked at once, and after the walkthrough the
// audit log names every change while no log holds a key or a token secret.

import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { BIN, run, Workspace } from './harness.js';

const ws = new Workspace();
let url = '';
const home = mkdtempSync(join(tmpdir(), 'infergate-e2e-home-'));

before(async () => {
  ({ url } = await ws.startServer());
});

after(async () => {
  await ws.dispose();
  rmSync(home, { recursive: true, force: true });
});

/** The real curl against the control plane: status and body. */
async function curlApi(method: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const args = ['-sS', '-X', method, `${url}${path}`, '-w', '\n%{http_code}'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const r = await run('curl', args);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

/** The CLI as a remote user: --server and INFERGATE_TOKEN, and no workspace of the server's. */
const remote = (token: string, args: string[]) => ws.cli([...args, '--server', url], { env: { INFERGATE_HOME: home, INFERGATE_TOKEN: token } });

let key = '';
const secrets: string[] = [];

test('the first start creates owner.token (0600) in an owner-only workspace, and the CLI uses it with no extra step', async () => {
  assert.equal((statSync(join(ws.dir, 'owner.token')).mode & 0o777).toString(8), '600');
  // Owner-only; instance isolation may add group search (x) for the instances' group, nothing else.
  const mode = statSync(ws.dir).mode & 0o777;
  assert.equal(mode & 0o767, 0o700, `workspace mode ${mode.toString(8)}`);
  assert.match(ws.ownerToken, /^igt_[0-9a-f]{16}_[0-9a-f]{64}$/);
  secrets.push(ws.ownerToken.split('_')[2]);
  await ws.ok(['online-endpoint', 'create', '-n', 'sec-ep']);
  key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', 'sec-ep', '-o', 'tsv', '--query', 'primaryKey'])).trim();
  assert.ok(key.length >= 32);
  secrets.push(key);
});

test("the issue's attacks: credentials without a token → 401; a DNS-rebound Host → 421; /metrics and /openapi.json need a token", async () => {
  const creds = await curlApi('POST', '/api/endpoints/sec-ep/credentials');
  assert.equal(creds.status, 401, creds.body);
  assert.equal(JSON.parse(creds.body).error.code, 'Unauthorized');
  assert.ok(!creds.body.includes(key));
  const rebound = await curlApi('GET', '/api/endpoints', { host: 'evil.example', authorization: `Bearer ${ws.ownerToken}` });
  assert.equal(rebound.status, 421);
  assert.equal(JSON.parse(rebound.body).error.code, 'HostNotAllowed');
  for (const path of ['/metrics', '/openapi.json', '/api/info']) assert.equal((await curlApi('GET', path)).status, 401, path);
  assert.equal((await curlApi('GET', '/healthz')).status, 200, 'the health check needs none');
});

test('token create (shown once) / list (never the secret) / use remotely / revoke at once, through the real CLI', async () => {
  const created = JSON.parse(await ws.ok(['token', 'create', '--role', 'reader', '--expires-in', '30d', '--description', 'dashboards']));
  assert.match(created.token, /^igt_/);
  secrets.push(created.token.split('_')[2]);
  const listed = await ws.ok(['token', 'list']);
  assert.ok(!listed.includes(created.token.split('_')[2]), 'token list shows no secret');
  const mine = (JSON.parse(listed) as { id: string; role: string; description: string; expires_at: string }[]).find((t) => t.id === created.id)!;
  assert.deepEqual([mine.role, mine.description], ['reader', 'dashboards']);
  assert.ok(Date.parse(mine.expires_at) > Date.now() + 29 * 86400_000);

  // A reader elsewhere: lists and shows, never reads keys, never changes anything.
  const list = await remote(created.token, ['online-endpoint', 'list', '-o', 'tsv', '--query', '[].name']);
  assert.equal(list.code, 0, list.stderr);
  assert.equal(list.stdout.trim(), 'sec-ep');
  const keys = await remote(created.token, ['online-endpoint', 'get-credentials', '-n', 'sec-ep']);
  assert.equal(keys.code, 1);
  assert.match(keys.stderr, /^ERROR: \(Forbidden\) .*role 'reader'/);
  assert.ok(!keys.stdout.includes(key));
  const del = await remote(created.token, ['online-endpoint', 'delete', '-n', 'sec-ep', '--yes']);
  assert.match(del.stderr, /\(Forbidden\)/);
  const tokens = await remote(created.token, ['token', 'list']);
  assert.match(tokens.stderr, /\(Forbidden\)/);

  // Without a token, from a machine that does not have the workspace: told what to do.
  const none = await ws.cli(['online-endpoint', 'list', '--server', url], { env: { INFERGATE_HOME: home } });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /\(Unauthorized\).*INFERGATE_TOKEN/);

  const revoked = await ws.ok(['token', 'revoke', created.id]);
  assert.equal(JSON.parse(revoked).revoked, true);
  const after = await remote(created.token, ['online-endpoint', 'list']);
  assert.equal(after.code, 1);
  assert.match(after.stderr, /\(Unauthorized\).*revoked/);
});

test('a token that expires is refused from that moment', async () => {
  const created = JSON.parse(await ws.ok(['token', 'create', '--role', 'contributor', '--expires-in', '2s']));
  secrets.push(created.token.split('_')[2]);
  assert.equal((await remote(created.token, ['online-endpoint', 'show', '-n', 'sec-ep'])).code, 0);
  await new Promise((r) => setTimeout(r, Date.parse(created.expires_at) - Date.now() + 100));
  const late = await remote(created.token, ['online-endpoint', 'show', '-n', 'sec-ep']);
  assert.equal(late.code, 1);
  assert.match(late.stderr, /\(Unauthorized\).*expired/);
});

test('login checks the token, saves server and token 0600, and later commands use them; logout forgets them', async () => {
  const contributor = JSON.parse(await ws.ok(['token', 'create', '--role', 'contributor', '--description', 'laptop'])).token as string;
  secrets.push(contributor.split('_')[2]);
  // A user with no workspace of their own (HOME without ~/.infergate, no INFERGATE_HOME).
  const env: NodeJS.ProcessEnv = { ...ws.env, HOME: home };
  delete env.INFERGATE_HOME;
  const cli = (args: string[], extra: NodeJS.ProcessEnv = {}) => run(process.execPath, [BIN, ...args], { ...env, ...extra });
  const bad = await cli(['login', '--server', url, '--token', `igt_${'0'.repeat(16)}_${'0'.repeat(64)}`]);
  assert.equal(bad.code, 1, 'a wrong token is not saved');
  assert.match(bad.stderr, /Unauthorized/);
  const login = await cli(['login', '--server', url], { INFERGATE_TOKEN: contributor });
  assert.equal(login.code, 0, login.stderr);
  const saved = JSON.parse(login.stdout) as { role: string; config: string };
  assert.equal(saved.role, 'contributor');
  assert.equal((statSync(saved.config).mode & 0o777).toString(8), '600');
  const shown = await cli(['online-endpoint', 'show', '-n', 'sec-ep', '-o', 'tsv', '--query', 'name']);
  assert.equal(shown.stdout.trim(), 'sec-ep', shown.stderr);
  assert.equal((await cli(['logout'])).code, 0);
  const after = await cli(['online-endpoint', 'show', '-n', 'sec-ep']);
  assert.equal(after.code, 1);
  assert.match(after.stderr, /ServerNotFound/);
});

test('after the walkthrough the audit log names each change, and no log holds a key or a token secret', async () => {
  await ws.ok(['online-endpoint', 'regenerate-keys', '-n', 'sec-ep', '--key-type', 'secondary']);
  secrets.push((await ws.ok(['online-endpoint', 'get-credentials', '-n', 'sec-ep', '-o', 'tsv', '--query', 'secondaryKey'])).trim());
  await ws.ok(['online-endpoint', 'delete', '-n', 'sec-ep', '--yes']);
  await ws.stopServer(); // flushes the audit log
  const auditFile = join(ws.dir, 'logs', 'audit.jsonl');
  assert.equal((statSync(auditFile).mode & 0o777).toString(8), '600');
  const audit = readFileSync(auditFile, 'utf8');
  const lines = audit.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const seen = (method: string, route: string, status: number, role: string | null) => lines.some((l) => l.method === method && l.route === route && l.status === status && l.role === role);
  assert.ok(seen('POST', '/api/endpoints', 201, 'owner'), 'endpoint create');
  assert.ok(seen('POST', '/api/endpoints/:name/credentials', 200, 'owner'), 'credential read');
  assert.ok(seen('POST', '/api/endpoints/:name/credentials', 401, null), 'the unauthenticated attempt');
  assert.ok(seen('POST', '/api/endpoints/:name/credentials', 403, 'reader'), 'the reader refused');
  assert.ok(seen('POST', '/api/tokens', 201, 'owner') && seen('DELETE', '/api/tokens/:id', 200, 'owner'), 'token create and revoke');
  assert.ok(seen('POST', '/api/endpoints/:name/regenerate-keys', 200, 'owner'), 'key regeneration');
  assert.ok(seen('DELETE', '/api/endpoints/:name', 200, 'owner') || seen('DELETE', '/api/endpoints/:name', 202, 'owner'), 'endpoint delete');
  assert.ok(lines.every((l) => typeof l.time === 'string' && 'token_id' in l && typeof l.status === 'number'));
  const logs = { audit, server: ws.serverLog, traffic: readIf(join(ws.dir, 'logs', 'traffic.jsonl')) };
  for (const [name, text] of Object.entries(logs)) for (const s of secrets) assert.ok(!text.includes(s), `a secret in the ${name} log`);
});

test('--api-host binds the control plane apart from the router; --api-allowed-host adds a name it answers to', async () => {
  const other = new Workspace();
  try {
    const rec = await other.startServer(['--host', '127.0.0.2', '--api-host', '127.0.0.1', '--api-allowed-host', 'infergate.proxy.example']);
    assert.match(rec.url, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.match(rec.routerUrl, /^http:\/\/127\.0\.0\.2:\d+$/);
    const auth = `Bearer ${other.ownerToken}`;
    const via = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: infergate.proxy.example', '-H', `Authorization: ${auth}`, `${rec.url}/api/info`]);
    assert.equal(via.stdout, '200');
    const evil = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', 'Host: evil.example', '-H', `Authorization: ${auth}`, `${rec.url}/api/info`]);
    assert.equal(evil.stdout, '421');
    assert.equal((await other.cli(['online-endpoint', 'list'])).code, 0);
  } finally {
    await other.dispose();
  }
});

function readIf(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch {
    return '';
  }
}
