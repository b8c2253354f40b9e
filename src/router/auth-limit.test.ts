// The failed-auth limit: the table on its own, then a Router over real sockets, clients told apart by
// their loopback source address (127.0.0.2, 127.0.0.3, ... all reach 127.0.0.1 on Linux).

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { sha256Hex } from '../compile/routing.js';
import type { RoutingTable } from '../ir/types.js';
import { issueToken } from '../util/token.js';
import { clientKey, FailedAuthLimiter } from './auth-limit.js';
import { Router } from './router.js';

test('a client is blocked at its n-th failure within the window, for blockMs; others are not', () => {
  const l = new FailedAuthLimiter({ failures: 3, windowMs: 1000, blockMs: 500 });
  assert.equal(l.failed('10.0.0.1', 0), false);
  assert.equal(l.failed('10.0.0.1', 10), false);
  assert.equal(l.blockedFor('10.0.0.1', 20), 0);
  assert.equal(l.failed('10.0.0.1', 20), true);
  assert.equal(l.blockedFor('10.0.0.1', 20), 500);
  assert.equal(l.blockedFor('10.0.0.1', 519), 1);
  assert.equal(l.blockedFor('10.0.0.2', 100), 0);
  assert.equal(l.blockedFor('10.0.0.1', 520), 0);
  assert.equal(l.refused, 2);
  // Failures spread wider than the window never block.
  const slow = new FailedAuthLimiter({ failures: 3, windowMs: 1000, blockMs: 500 });
  for (let t = 0; t < 10_000; t += 600) assert.equal(slow.failed('10.0.0.3', t), false);
  assert.equal(slow.blocks, 0);
});

test('the table is fixed: 100,000 addresses failing keep it bounded, and a blocked address stays blocked', () => {
  const l = new FailedAuthLimiter({ failures: 2, windowMs: 10_000, blockMs: 10_000, slots: 64 });
  l.failed('192.0.2.1', 0);
  l.failed('192.0.2.1', 1);
  assert.ok(l.blockedFor('192.0.2.1', 2) > 0);
  for (let i = 0; i < 100_000; i++) l.failed(`198.51.${(i >> 8) & 255}.${i & 255}`, 3 + i / 1e6);
  // Eviction takes unblocked entries first: the blocked address was not pushed out by the flood.
  assert.ok(l.blockedFor('192.0.2.1', 1000) > 0);
  assert.equal((l as unknown as { keys: unknown[] }).keys.length, 64);
});

test('IPv6 clients are limited by their /64; IPv4-mapped addresses as IPv4', () => {
  assert.equal(clientKey('2001:db8:1:2:aaaa::1'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8:1:2:bbbb:cccc:dddd:eeee'), '2001:db8:1:2::/64');
  assert.equal(clientKey('2001:db8::1'), '2001:db8:0:0::/64');
  assert.equal(clientKey('::1'), '0:0:0:0::/64');
  assert.equal(clientKey('fe80::1%eth0'), 'fe80:0:0:0::/64');
  assert.equal(clientKey('::ffff:192.0.2.7'), '192.0.2.7');
  assert.equal(clientKey('192.0.2.7'), '192.0.2.7');
  const l = new FailedAuthLimiter({ failures: 2 });
  l.failed('2001:db8:1:2::1', 0);
  l.failed('2001:db8:1:2::ffff', 1);
  assert.ok(l.blockedFor('2001:db8:1:2:1234::9', 2) > 0);
  assert.equal(l.blockedFor('2001:db8:1:3::1', 2), 0);
});

// ---------------------------------------------------------------------------------------------------
// Over real sockets

const KEY = 'primary-key-for-auth-limit-tests-0123';
const SECRET = Buffer.from('token-secret-for-auth-limit-tests-012345').toString('base64url');
let router: Router;
let port: number;

const table: RoutingTable = {
  version: 1,
  endpoints: [
    // No ready instance: a request that passes auth gets 503, one that does not 401 (or 429).
    { name: 'key-endpoint', authMode: 'key', keyHashes: [sha256Hex(KEY)], deployments: [{ name: 'blue', requestTimeoutMs: 1000, maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 0, scaleFromZero: false, instances: [] }], traffic: [{ deployment: 'blue', weight: 100 }], mirror: null },
    { name: 'token-endpoint', authMode: 'aml_token', keyHashes: [], tokenSecret: SECRET, deployments: [{ name: 'blue', requestTimeoutMs: 1000, maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 0, scaleFromZero: false, instances: [] }], traffic: [{ deployment: 'blue', weight: 100 }], mirror: null },
  ],
};

before(async () => {
  router = new Router({ failedAuth: { failures: 5, windowMs: 10_000, blockMs: 600 } });
  router.setTable(table);
  port = (await router.listen(0, '127.0.0.1')).port;
});
after(() => router.close());

function call(from: string, credential: string | null, o: { agent?: Agent; endpoint?: string } = {}): Promise<{ status: number; retryAfter?: string; body: string }> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (credential !== null) headers.authorization = `Bearer ${credential}`;
    const agent = o.agent ?? new Agent({ keepAlive: false });
    const req = httpRequest({ host: '127.0.0.1', port, localAddress: from, path: `/endpoints/${o.endpoint ?? 'key-endpoint'}/score`, method: 'POST', headers, agent }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolve({ status: res.statusCode!, retryAfter: res.headers['retry-after'], body }));
    });
    req.on('error', reject);
    req.end('{}');
  });
}

test('repeated failures from one address → 429 + Retry-After for it, valid clients elsewhere unaffected, then it recovers', async () => {
  // A client of the attacker's address that proved its key before the block, on a kept-alive connection.
  const kept = new Agent({ keepAlive: true, maxSockets: 1 });
  assert.equal((await call('127.0.0.2', KEY, { agent: kept })).status, 503);

  for (let i = 0; i < 5; i++) assert.equal((await call('127.0.0.2', 'wrong-key')).status, 401, `failure ${i + 1}`);
  const refused = await call('127.0.0.2', 'wrong-key');
  assert.equal(refused.status, 429);
  assert.equal(refused.retryAfter, '1');
  assert.match(refused.body, /Too many failed authentication attempts/);
  // Blocked means not checked: the right key on a new connection from there is refused too.
  assert.equal((await call('127.0.0.2', KEY)).status, 429);
  // The connection that proved its key already is not slowed down.
  assert.equal((await call('127.0.0.2', KEY, { agent: kept })).status, 503);
  // Another address: valid → through; its own failures count on their own.
  assert.equal((await call('127.0.0.3', KEY)).status, 503);
  assert.equal((await call('127.0.0.3', 'wrong-key')).status, 401);
  assert.equal(router.authLimiter!.blocks, 1);

  await sleep(650);
  assert.equal((await call('127.0.0.2', KEY)).status, 503);
  assert.equal((await call('127.0.0.2', 'wrong-key')).status, 401, 'a new window');
  kept.destroy();
});

test('token failures count the same; a valid token is never limited', async () => {
  const token = (await issueToken('token-endpoint', SECRET)).accessToken;
  const forged = token.slice(0, -4) + (token.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  for (let i = 0; i < 5; i++) assert.equal((await call('127.0.0.4', forged, { endpoint: 'token-endpoint' })).status, 401);
  assert.equal((await call('127.0.0.4', token, { endpoint: 'token-endpoint' })).status, 429);
  for (let i = 0; i < 20; i++) assert.equal((await call('127.0.0.5', token, { endpoint: 'token-endpoint' })).status, 503);
});

test('failedAuth: false turns the limit off (a router behind a proxy)', async () => {
  const open = new Router({ failedAuth: false });
  open.setTable(table);
  const p = (await open.listen(0, '127.0.0.1')).port;
  try {
    for (let i = 0; i < 60; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = httpRequest({ host: '127.0.0.1', port: p, localAddress: '127.0.0.6', path: '/endpoints/key-endpoint/score', method: 'POST', headers: { authorization: 'Bearer nope' }, agent: false }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode!));
        });
        req.on('error', reject);
        req.end('{}');
      });
      assert.equal(status, 401);
    }
  } finally {
    await open.close();
  }
});

test('2,000 fuzzed Authorization headers on raw sockets: each answered 400/401/429, none echoes a secret, then a valid key still passes', { timeout: 60_000 }, async () => {
  // Its own router without the limit (the limit is tested above): every case reaches the credential checks.
  const fuzzRouter = new Router({ failedAuth: false });
  fuzzRouter.setTable(table);
  const fuzzPort = (await fuzzRouter.listen(0, '127.0.0.1')).port;
  let seed = 0x9e3779b9;
  const rnd = (n: number) => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const token = (await issueToken('token-endpoint', SECRET)).accessToken;
  const printable = (len: number) => Array.from({ length: len }, () => String.fromCharCode(0x21 + rnd(94))).join('');
  /** One character replaced by a different printable one. */
  const mutate = (s: string) => {
    const i = rnd(s.length);
    const c = 0x21 + ((s.charCodeAt(i) - 0x21 + 1 + rnd(93)) % 94);
    return s.slice(0, i) + String.fromCharCode(c) + s.slice(i + 1);
  };
  const cases: string[] = [];
  for (let i = 0; i < 2000; i++) {
    const scheme = ['Bearer', 'bearer', 'BEARER', 'Basic', 'Bearer\t', 'Bearer  ', '', 'Token'][rnd(8)];
    const credential = [
      () => printable(1 + rnd(64)),
      () => mutate(KEY),
      () => mutate(token),
      () => token.split('.').reverse().join('.'),
      () => `${token.split('.')[0]}.${printable(40)}.${token.split('.')[2]}`,
      () => 'e'.repeat(1 + rnd(7000)),
      () => KEY.slice(0, rnd(KEY.length)),
      () => `${KEY} ${KEY}`,
    ][rnd(8)]();
    cases.push(`${scheme} ${credential}`);
  }
  const send = (value: string, endpoint: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: '127.0.0.1', port: fuzzPort, path: `/endpoints/${endpoint}/score`, method: 'POST', headers: { authorization: value, 'content-type': 'application/json' }, agent: false }, (res) => {
        let body = '';
        res.on('data', (c: Buffer) => (body += c.toString()));
        res.on('end', () => resolve({ status: res.statusCode!, body }));
      });
      req.on('error', reject);
      req.end('{}');
    });
  try {
    for (let i = 0; i < cases.length; i += 50) {
      const batch = await Promise.all(cases.slice(i, i + 50).map((c, j) => send(c, (i + j) % 2 === 0 ? 'key-endpoint' : 'token-endpoint')));
      for (const [j, r] of batch.entries()) {
        assert.ok([400, 401, 431].includes(r.status), `case ${i + j} (${JSON.stringify(cases[i + j])} vs ${token}): ${r.status} ${r.body}`);
        assert.ok(!r.body.includes(KEY) && !r.body.includes(token) && !r.body.includes(SECRET), `case ${i + j}: the answer echoes a credential`);
      }
    }
    // Still serving: the valid key and the valid token pass auth (503: the endpoints have no instance).
    assert.equal((await send(`Bearer ${KEY}`, 'key-endpoint')).status, 503);
    assert.equal((await send(`Bearer ${token}`, 'token-endpoint')).status, 503);
  } finally {
    await fuzzRouter.close();
  }
});
