// aml_token tokens: issued by the control plane, verified by the router with the endpoint's secret.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { issueToken, TOKEN_LIFETIME_MS, verifyToken } from './token.js';

const secret = randomBytes(32).toString('base64url');
const now = Date.UTC(2026, 0, 15, 12, 0, 0);

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');

test('an issued token verifies for its endpoint until it expires', () => {
  const t = issueToken('my-endpoint', secret, now);
  assert.equal(t.tokenType, 'Bearer');
  assert.equal(t.expiryTimeUtc, Math.floor((now + TOKEN_LIFETIME_MS) / 1000));
  assert.equal(t.refreshAfterTimeUtc, Math.floor((now + TOKEN_LIFETIME_MS / 2) / 1000));
  assert.match(t.accessToken, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
  assert.equal(verifyToken(t.accessToken, 'my-endpoint', secret, now), true);
  assert.equal(verifyToken(t.accessToken, 'my-endpoint', secret, now + TOKEN_LIFETIME_MS - 1), true);
});

test('an expired token is refused (exp is exclusive)', () => {
  const t = issueToken('my-endpoint', secret, now, 1000);
  assert.equal(verifyToken(t.accessToken, 'my-endpoint', secret, now + 999), true);
  assert.equal(verifyToken(t.accessToken, 'my-endpoint', secret, now + 1000), false);
  assert.equal(verifyToken(t.accessToken, 'my-endpoint', secret, now + TOKEN_LIFETIME_MS * 10), false);
  // The default clock is the wall clock: a token issued an hour and a bit ago is expired now.
  const old = issueToken('my-endpoint', secret, Date.now() - TOKEN_LIFETIME_MS - 1000);
  assert.equal(verifyToken(old.accessToken, 'my-endpoint', secret), false);
  assert.equal(verifyToken(issueToken('my-endpoint', secret).accessToken, 'my-endpoint', secret), true);
});

test("another endpoint's token, or the right token with another secret, is refused", () => {
  const t = issueToken('endpoint-a', secret, now);
  assert.equal(verifyToken(t.accessToken, 'endpoint-b', secret, now), false);
  assert.equal(verifyToken(t.accessToken, 'endpoint-a', randomBytes(32).toString('base64url'), now), false);
  // Even when both endpoints share a secret, the endpoint name is inside the signed payload.
  const b = issueToken('endpoint-b', secret, now);
  assert.equal(verifyToken(b.accessToken, 'endpoint-a', secret, now), false);
});

test('a tampered payload is refused', () => {
  const t = issueToken('my-endpoint', secret, now);
  const [payload, sig] = t.accessToken.split('.');
  const claims = JSON.parse(Buffer.from(payload, 'base64url').toString()) as { ep: string; exp: number };
  assert.deepEqual(claims, { ep: 'my-endpoint', exp: now + TOKEN_LIFETIME_MS });
  // Extend the lifetime, or move the token to another endpoint, keeping the signature.
  assert.equal(verifyToken(`${b64({ ...claims, exp: claims.exp + 1e9 })}.${sig}`, 'my-endpoint', secret, now + TOKEN_LIFETIME_MS + 1), false);
  assert.equal(verifyToken(`${b64({ ...claims, ep: 'other' })}.${sig}`, 'other', secret, now), false);
  // Flip one character of the payload.
  const flipped = (payload[3] === 'A' ? 'B' : 'A');
  assert.equal(verifyToken(`${payload.slice(0, 3)}${flipped}${payload.slice(4)}.${sig}`, 'my-endpoint', secret, now), false);
});

test('a tampered signature is refused', () => {
  const t = issueToken('my-endpoint', secret, now);
  const [payload, sig] = t.accessToken.split('.');
  for (let i = 0; i < sig.length; i++) {
    const c = sig[i] === 'A' ? 'B' : 'A';
    assert.equal(verifyToken(`${payload}.${sig.slice(0, i)}${c}${sig.slice(i + 1)}`, 'my-endpoint', secret, now), false, `position ${i}`);
  }
  assert.equal(verifyToken(`${payload}.${sig}A`, 'my-endpoint', secret, now), false);
  assert.equal(verifyToken(`${payload}.${sig.slice(0, -1)}`, 'my-endpoint', secret, now), false);
  assert.equal(verifyToken(`${payload}.`, 'my-endpoint', secret, now), false);
});

test('a validly signed payload that is not the expected JSON is refused, not thrown', async () => {
  // Sign arbitrary payloads with the real secret, the way only a bug or a leaked secret could.
  const { createHmac } = await import('node:crypto');
  const sign = (p: string) => createHmac('sha256', Buffer.from(secret, 'base64url')).update(p).digest('base64url');
  const payloads = [
    Buffer.from('not json').toString('base64url'),
    b64({ ep: 'my-endpoint' }),
    b64({ ep: 'my-endpoint', exp: String(now + 1e9) }),
    b64({ exp: now + 1e9 }),
    b64(null),
    b64([1, 2]),
  ];
  for (const p of payloads) assert.equal(verifyToken(`${p}.${sign(p)}`, 'my-endpoint', secret, now), false, Buffer.from(p, 'base64url').toString());
  // The control: the same helper signing a good payload is accepted.
  const good = b64({ ep: 'my-endpoint', exp: now + 1000 });
  assert.equal(verifyToken(`${good}.${sign(good)}`, 'my-endpoint', secret, now), true);
});

test('malformed strings are refused', () => {
  for (const s of ['', '.', 'abc', '.abc', 'abc.', 'a.b.c', 'Bearer x.y', '💥.💥', ' '.repeat(10), '\u0000.\u0000']) {
    assert.equal(verifyToken(s, 'my-endpoint', secret, now), false, JSON.stringify(s));
  }
  // A key (no dot) is not a token.
  assert.equal(verifyToken(randomBytes(24).toString('base64url'), 'my-endpoint', secret, now), false);
});
