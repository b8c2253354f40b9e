// `infergate server --failed-auth-limit N` (issue 9 §8): a client address that fails scoring
// authentication N times in 10 s is answered 429 + Retry-After for a while — even with a valid key, whose
// check it no longer gets — while other addresses are served; /metrics counts the refusals.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SAMPLE_ANSWER, Workspace } from './harness.js';
import { deployJsModel, httpRequest, SAMPLE_REQUEST } from '../reliability/attack.js';

const ws = new Workspace();
let apiUrl = '';
let target = { uri: '', key: '' };

before(async () => {
  const rec = await ws.startServer(['--failed-auth-limit', '5']);
  apiUrl = rec.url;
  target = await deployJsModel(ws, 'fa-ep');
});
after(() => ws.dispose());

const score = (key: string, localAddress: string) =>
  httpRequest(target.uri, { method: 'POST', headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' }, body: SAMPLE_REQUEST, localAddress });

test('five failed keys from one address: that address gets 429 with Retry-After, others are served, /metrics counts it', { timeout: 60_000 }, async () => {
  for (let i = 0; i < 5; i++) assert.equal((await score(`wrong-${i}`, '127.0.0.9')).status, 401);
  const blocked = await score(target.key, '127.0.0.9');
  assert.equal(blocked.status, 429, blocked.body);
  assert.ok(Number(blocked.headers['retry-after']) >= 1, `retry-after: ${String(blocked.headers['retry-after'])}`);
  const other = await score(target.key, '127.0.0.10');
  assert.equal(other.status, 200, other.body);
  assert.equal(other.body, SAMPLE_ANSWER);
  const metrics = await httpRequest(`${apiUrl}/metrics`, { headers: ws.ownerAuth });
  assert.equal(metrics.status, 200);
  const line = metrics.body.split('\n').find((l) => l.startsWith('infergate_requests_rejected_total{reason="failed_auth"}'));
  assert.ok(line !== undefined && Number(line.split(' ').pop()) >= 1, `failed_auth counter: ${line}`);
});
