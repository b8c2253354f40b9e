// Keys and tokens never appear in logs, the traffic log, the audit log, the server's output, or any
// process's arguments or environment (issue 9 §5). A walkthrough as a user and an attacker would do it —
// key and aml_token endpoints, good and bad credentials, get-credentials, regenerate-keys (and the token
// signing key) — then every file of the workspace but the secret stores themselves is searched for each
// credential seen, and so are the server's stdout/stderr and /proc/<pid>/{cmdline,environ} of the server
// and all its descendants.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { after, before, test } from 'node:test';
import { childPids, curl, EXAMPLES, SAMPLE_ANSWER, until, Workspace } from './harness.js';

const ws = new Workspace();
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');
let output = '';

before(async () => {
  await ws.startServer();
  ws.server!.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  ws.server!.stderr!.on('data', (c: Buffer) => (output += c.toString()));
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

async function deploy(endpoint: string, extra: string[] = []): Promise<string> {
  await ws.ok(['online-endpoint', 'create', '-n', endpoint, ...extra]);
  await ws.ok(['online-deployment', 'create', '-n', 'blue', '-e', endpoint, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  return (await ws.ok(['online-endpoint', 'show', '-n', endpoint, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
}

/** Every file under `dir` except the ones whose job is to hold secrets. */
function files(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    const st = statSync(p, { throwIfNoEntry: false });
    if (st === undefined) continue;
    if (st.isDirectory()) out.push(...files(p));
    else if (st.isFile()) out.push(p);
  }
  return out;
}
/** Where secrets are meant to be: the state database (keys, token signing keys) and the owner token/CLI config. */
const SECRET_STORES = /(^|\/)(state\.db(-wal|-shm|-journal)?|owner\.token|cli-config\.json|server\.json)$/;

function descendants(pid: number): number[] {
  const all = [pid];
  for (let i = 0; i < all.length; i++) all.push(...childPids(all[i]));
  return all;
}

test('a walkthrough with keys and tokens leaves none of them in any log, output, argument or environment', { timeout: 240_000 }, async () => {
  const keyUri = await deploy('endpt-secret-key');
  const tokenUri = await deploy('endpt-secret-tok', ['--auth-mode', 'aml_token']);
  const seen: string[] = [];

  const keys = JSON.parse(await ws.ok(['online-endpoint', 'get-credentials', '-n', 'endpt-secret-key'])) as { primaryKey: string; secondaryKey: string };
  seen.push(keys.primaryKey, keys.secondaryKey);
  const token = (JSON.parse(await ws.ok(['online-endpoint', 'get-credentials', '-n', 'endpt-secret-tok'])) as { accessToken: string }).accessToken;
  seen.push(token);
  // What an attacker tries is a credential too: a wrong key, a forged token, both must not be echoed.
  const wrongKey = randomBytes(24).toString('base64url');
  const forged = token.slice(0, -6) + randomBytes(4).toString('base64url').slice(0, 6);
  seen.push(wrongKey, forged);

  assert.equal((await curl(keyUri, { Authorization: `Bearer ${keys.primaryKey}` }, REQUEST)).body, SAMPLE_ANSWER);
  assert.equal((await curl(keyUri, { Authorization: `Bearer ${keys.secondaryKey}` }, REQUEST)).status, 200);
  assert.equal((await curl(keyUri, { Authorization: `Bearer ${wrongKey}` }, REQUEST)).status, 401);
  assert.equal((await curl(keyUri, { Authorization: `Bearer ${token}` }, REQUEST)).status, 401);
  assert.equal((await curl(tokenUri, { Authorization: `Bearer ${token}` }, REQUEST)).body, SAMPLE_ANSWER);
  assert.equal((await curl(tokenUri, { Authorization: `Bearer ${forged}` }, REQUEST)).status, 401);
  assert.equal((await curl(tokenUri, { Authorization: `Bearer ${keys.primaryKey}` }, REQUEST)).status, 401);
  assert.equal((await ws.ok(['online-endpoint', 'invoke', '-n', 'endpt-secret-key', '-r', REQUEST, '-o', 'tsv'])).trim(), SAMPLE_ANSWER);
  assert.equal((await ws.ok(['online-endpoint', 'invoke', '-n', 'endpt-secret-tok', '-r', REQUEST, '-o', 'tsv'])).trim(), SAMPLE_ANSWER);

  // Rotation: a key, then the token signing key; old credentials stop working at once.
  await ws.ok(['online-endpoint', 'regenerate-keys', '-n', 'endpt-secret-key', '--key-type', 'secondary']);
  const rotated = JSON.parse(await ws.ok(['online-endpoint', 'get-credentials', '-n', 'endpt-secret-key'])) as { primaryKey: string; secondaryKey: string };
  seen.push(rotated.secondaryKey);
  assert.equal((await curl(keyUri, { Authorization: `Bearer ${keys.secondaryKey}` }, REQUEST)).status, 401);
  await ws.ok(['online-endpoint', 'regenerate-keys', '-n', 'endpt-secret-tok', '--key-type', 'token']);
  assert.equal((await curl(tokenUri, { Authorization: `Bearer ${token}` }, REQUEST)).status, 401, 'a token signed with the old key');
  const token2 = (JSON.parse(await ws.ok(['online-endpoint', 'get-credentials', '-n', 'endpt-secret-tok'])) as { accessToken: string }).accessToken;
  seen.push(token2);
  assert.equal((await curl(tokenUri, { Authorization: `Bearer ${token2}` }, REQUEST)).status, 200);
  // A key endpoint has no token key; a token endpoint no keys (Azure's error, kept).
  assert.match((await ws.cli(['online-endpoint', 'regenerate-keys', '-n', 'endpt-secret-key', '--key-type', 'token'])).stderr, /uses keys/);
  assert.match((await ws.cli(['online-endpoint', 'regenerate-keys', '-n', 'endpt-secret-tok'])).stderr, /NotKeyAuth/);
  for (const e of ['endpt-secret-key', 'endpt-secret-tok']) await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', e, '--lines', '500']);

  // The traffic log is written by a timer (every 200 ms): wait until every request counted has its
  // record written (or dropped), so the search below sees all of them.
  await until('the traffic log to be written', async () => {
    const [all, refusedBeforeSelection, written, dropped] = await Promise.all([
      ws.metric('infergate_requests_total'),
      // Refusals before a deployment is chosen (401 ...) are counted with deployment="" and have no traffic-log record.
      ws.metric('infergate_requests_total', { deployment: '' }),
      ws.metric('infergate_traffic_log_records_total'),
      ws.metric('infergate_traffic_log_dropped_total'),
    ]);
    const requests = all - refusedBeforeSelection;
    return requests > 0 && written + dropped >= requests;
  }, 10_000);
  const searched = files(ws.dir).filter((f) => !SECRET_STORES.test(relative(ws.dir, f)));
  const traffic = searched.find((f) => f.endsWith(join('logs', 'traffic.jsonl')));
  assert.ok(traffic !== undefined && readFileSync(traffic, 'utf8').trim().split('\n').length >= 4, 'the traffic log recorded the walkthrough');
  for (const f of searched) {
    const text = readFileSync(f, 'latin1');
    for (const s of seen) assert.ok(!text.includes(s), `${relative(ws.dir, f)} contains a credential (${s.slice(0, 6)}…)`);
  }
  for (const s of seen) assert.ok(!output.includes(s) && !ws.serverLog.includes(s), `the server's output contains a credential (${s.slice(0, 6)}…)`);

  // Process arguments and environments: the server, its hosts, their Python workers.
  const pids = descendants(ws.server!.pid!);
  assert.ok(pids.length >= 3, `server and instance processes: ${pids.join(' ')}`);
  for (const pid of pids) {
    for (const what of ['cmdline', 'environ']) {
      let text = '';
      try {
        text = readFileSync(`/proc/${pid}/${what}`, 'latin1');
      } catch {
        continue; // gone, or another user's (an isolated instance): not ours to read
      }
      for (const s of seen) assert.ok(!text.includes(s), `/proc/${pid}/${what} contains a credential`);
    }
  }
  // The control: the credentials are where they should be, so the searches above could have found them.
  const db = readFileSync(join(ws.dir, 'state.db'), 'latin1') + (statSync(join(ws.dir, 'state.db-wal'), { throwIfNoEntry: false }) ? readFileSync(join(ws.dir, 'state.db-wal'), 'latin1') : '');
  assert.ok(db.includes(rotated.primaryKey), 'the key is in the state database');
});
