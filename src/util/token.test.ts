// aml_token tokens: JWTs signed (HS256, jose) by the control plane, verified by the router synchronously.
// jose's own jwtVerify is the referee: it accepts what we issue, and whatever it rejects we reject too.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { SignJWT, decodeJwt, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify } from 'jose';
import { issueToken, signingKey, TOKEN_HEADER_B64, TOKEN_ISSUER, TOKEN_LIFETIME_MS, TokenVerifier, verifyToken } from './token.js';

const secret = randomBytes(32).toString('base64url');
const now = Date.UTC(2026, 0, 15, 12, 0, 0);
const nowS = now / 1000;

const b64 = (o: unknown) => Buffer.from(typeof o === 'string' ? o : JSON.stringify(o)).toString('base64url');
const hmac = (key: string, input: string, alg = 'sha256') => createHmac(alg, Buffer.from(key, 'base64url')).update(input).digest('base64url');
/** A token with any header and payload, signed with `key` the way a holder of the key could. */
const forge = (header: unknown, payload: unknown, key = secret, alg = 'sha256') => {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${hmac(key, input, alg)}`;
};
const goodClaims = (over: Record<string, unknown> = {}) => ({ iss: TOKEN_ISSUER, aud: 'my-endpoint', iat: nowS, nbf: nowS, exp: nowS + 3600, ...over });

/** jose's verdict with the same expectations as the router: HS256 only, our issuer and audience. */
async function joseAccepts(token: string, endpoint: string, key: string, at: number): Promise<boolean> {
  try {
    await jwtVerify(token, signingKey(key), { algorithms: ['HS256'], issuer: TOKEN_ISSUER, audience: endpoint, currentDate: new Date(at), requiredClaims: ['iat', 'nbf', 'exp'] });
    return true;
  } catch {
    return false;
  }
}

test('an issued token is a standard JWT: jose verifies it and reads its claims', async () => {
  const t = await issueToken('my-endpoint', secret, now);
  assert.equal(t.tokenType, 'Bearer');
  assert.equal(t.expiryTimeUtc, Math.floor((now + TOKEN_LIFETIME_MS) / 1000));
  assert.equal(t.refreshAfterTimeUtc, Math.floor((now + TOKEN_LIFETIME_MS / 2) / 1000));
  assert.match(t.accessToken, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(decodeProtectedHeader(t.accessToken), { alg: 'HS256', typ: 'JWT' });
  assert.ok(t.accessToken.startsWith(`${TOKEN_HEADER_B64}.`));
  // What any JWT tool shows: the expiry get-credentials prints, the endpoint as audience.
  assert.deepEqual(decodeJwt(t.accessToken), { iss: 'infergate', aud: 'my-endpoint', iat: nowS, nbf: nowS, exp: t.expiryTimeUtc });
  assert.equal(await joseAccepts(t.accessToken, 'my-endpoint', secret, now), true);
  assert.equal(verifyToken(t.accessToken, 'my-endpoint', secret, now), true);
  assert.equal(new TokenVerifier('my-endpoint', secret).verify(t.accessToken, now), t.expiryTimeUtc * 1000);
});

test('expiry: valid until exp (exclusive), refused from then on, as jose decides', async () => {
  const t = (await issueToken('my-endpoint', secret, now, 2000)).accessToken;
  for (const [at, valid] of [[now, true], [now + 1999, true], [now + 2000, false], [now + TOKEN_LIFETIME_MS * 10, false]] as const) {
    assert.equal(verifyToken(t, 'my-endpoint', secret, at), valid, `at +${at - now} ms`);
    assert.equal(await joseAccepts(t, 'my-endpoint', secret, at), valid, `jose at +${at - now} ms`);
  }
  // The default clock is the wall clock: a token issued an hour and a bit ago is expired now.
  const old = await issueToken('my-endpoint', secret, Date.now() - TOKEN_LIFETIME_MS - 1000);
  assert.equal(verifyToken(old.accessToken, 'my-endpoint', secret), false);
  assert.equal(verifyToken((await issueToken('my-endpoint', secret)).accessToken, 'my-endpoint', secret), true);
});

test('not before: a token is refused before its nbf, as jose decides', async () => {
  const t = (await issueToken('my-endpoint', secret, now)).accessToken;
  for (const [at, valid] of [[now - 1, false], [now - 60_000, false], [now, true]] as const) {
    assert.equal(verifyToken(t, 'my-endpoint', secret, at), valid);
    assert.equal(await joseAccepts(t, 'my-endpoint', secret, at), valid);
  }
  // Signed with the right key but valid only from tomorrow.
  const later = forge({ alg: 'HS256', typ: 'JWT' }, goodClaims({ nbf: nowS + 86_400 }));
  assert.equal(verifyToken(later, 'my-endpoint', secret, now), false);
  assert.equal(await joseAccepts(later, 'my-endpoint', secret, now), false);
});

test("another endpoint's token is refused, even when both endpoints had the same key", async () => {
  const a = (await issueToken('endpoint-a', secret, now)).accessToken;
  assert.equal(verifyToken(a, 'endpoint-b', secret, now), false);
  assert.equal(await joseAccepts(a, 'endpoint-b', secret, now), false);
  assert.equal(verifyToken(a, 'endpoint-a', secret, now), true);
  // A prefix of the name is not the name.
  assert.equal(verifyToken(a, 'endpoint-', secret, now), false);
  // An audience list naming the endpoint is not what we issue: refused (jose would take it; we are narrower).
  const list = forge({ alg: 'HS256', typ: 'JWT' }, goodClaims({ aud: ['my-endpoint'] }));
  assert.equal(verifyToken(list, 'my-endpoint', secret, now), false);
});

test('key rotation: a token signed with the old key is refused with the new one', async () => {
  const old = (await issueToken('my-endpoint', secret, now)).accessToken;
  const rotated = randomBytes(32).toString('base64url');
  assert.equal(verifyToken(old, 'my-endpoint', rotated, now), false);
  assert.equal(await joseAccepts(old, 'my-endpoint', rotated, now), false);
  const fresh = (await issueToken('my-endpoint', rotated, now)).accessToken;
  assert.equal(verifyToken(fresh, 'my-endpoint', rotated, now), true);
  assert.equal(verifyToken(fresh, 'my-endpoint', secret, now), false);
});

test('a tampered payload is refused: longer life, other audience, other issuer, one character', async () => {
  const t = (await issueToken('my-endpoint', secret, now)).accessToken;
  const [header, payload, sig] = t.split('.');
  const claims = decodeJwt(t);
  const cases = [
    `${header}.${b64({ ...claims, exp: claims.exp! + 10 * 365 * 86_400 })}.${sig}`,
    `${header}.${b64({ ...claims, aud: 'other' })}.${sig}`,
    `${header}.${b64({ ...claims, iss: 'someone-else' })}.${sig}`,
    `${header}.${payload.slice(0, 3)}${payload[3] === 'A' ? 'B' : 'A'}${payload.slice(4)}.${sig}`,
  ];
  for (const c of cases) {
    assert.equal(verifyToken(c, 'my-endpoint', secret, now), false, c);
    assert.equal(verifyToken(c, 'other', secret, now), false, c);
    assert.equal(await joseAccepts(c, 'my-endpoint', secret, now), false, c);
  }
});

test('a tampered header is refused: alg none, HS512, RS256, extra parameters', async () => {
  const payload = goodClaims();
  const unsigned = `${b64({ alg: 'none', typ: 'JWT' })}.${b64(payload)}.`;
  const none43 = `${b64({ alg: 'none' })}.${b64(payload)}.${'A'.repeat(43)}`;
  const hs512 = forge({ alg: 'HS512', typ: 'JWT' }, payload, secret, 'sha512');
  // The HS512 token built by jose itself, with the endpoint's very key.
  const hs512jose = await new SignJWT(payload).setProtectedHeader({ alg: 'HS512', typ: 'JWT' }).sign(signingKey(secret));
  const rsa = await generateKeyPair('RS256');
  const rs256 = await new SignJWT(payload).setProtectedHeader({ alg: 'RS256', typ: 'JWT' }).sign(rsa.privateKey);
  // Algorithm confusion: RS256 announced, HMAC'd with our key.
  const confused = forge({ alg: 'RS256', typ: 'JWT' }, payload);
  // HS256, with our key, but a header we never write: crit, an embedded key, a key id, no typ.
  const crit = forge({ alg: 'HS256', typ: 'JWT', crit: ['exp2'], exp2: 1 }, payload);
  const jwk = forge({ alg: 'HS256', typ: 'JWT', jwk: await exportJWK(rsa.publicKey) }, payload);
  const kid = forge({ alg: 'HS256', typ: 'JWT', kid: '../../etc/passwd' }, payload);
  const noTyp = forge({ alg: 'HS256' }, payload);
  const upper = forge({ alg: 'hs256', typ: 'JWT' }, payload);
  for (const t of [unsigned, none43, hs512, hs512jose, rs256, confused, crit, jwk, kid, noTyp, upper]) {
    assert.equal(verifyToken(t, 'my-endpoint', secret, now), false, decodeProtectedHeader(t).alg);
  }
  for (const t of [unsigned, none43, hs512, hs512jose, rs256, confused, crit, upper]) {
    assert.equal(await joseAccepts(t, 'my-endpoint', secret, now), false, JSON.stringify(decodeProtectedHeader(t)));
  }
  // The control: the same forging helper with our header and claims makes a token both accept.
  const control = forge({ alg: 'HS256', typ: 'JWT' }, payload);
  assert.equal(verifyToken(control, 'my-endpoint', secret, now), true);
  assert.equal(await joseAccepts(control, 'my-endpoint', secret, now), true);
});

test('a tampered signature is refused, in every position and every other spelling', async () => {
  const t = (await issueToken('my-endpoint', secret, now)).accessToken;
  const at = t.lastIndexOf('.') + 1;
  const [input, sig] = [t.slice(0, at), t.slice(at)];
  for (let i = 0; i < sig.length; i++) {
    const c = sig[i] === 'A' ? 'B' : 'A';
    assert.equal(verifyToken(`${input}${sig.slice(0, i)}${c}${sig.slice(i + 1)}`, 'my-endpoint', secret, now), false, `position ${i}`);
  }
  // The last of 43 characters carries 4 bits of the MAC and 2 spare ones: flipping a spare bit spells the
  // same 32 bytes differently.
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  const spare = sig.slice(0, 42) + alphabet[alphabet.indexOf(sig[42]) ^ 1];
  assert.deepEqual(Buffer.from(spare, 'base64url'), Buffer.from(sig, 'base64url'));
  const respelled = [
    `${input}${sig}A`,
    `${input}${sig}=`,
    `${input}${sig.slice(0, -1)}`,
    `${input}`,
    `${input}${sig.replaceAll('-', '+').replaceAll('_', '/')}`,
    // The same low byte in latin1 (U+0141 'Ł' is written as 0x41 'A'): must not pass for the character.
    `${input}${String.fromCharCode(sig.charCodeAt(0) + 0x100)}${sig.slice(1)}`,
    // Non-canonical last character: same 32 bytes once decoded, other spelling.
    `${input}${spare}`,
  ];
  for (const r of respelled) {
    if (r === t) continue;
    assert.equal(verifyToken(r, 'my-endpoint', secret, now), false, r.slice(at));
  }
  assert.equal(verifyToken(t, 'my-endpoint', secret, now), true);
});

test('a validly signed payload that is not the expected claims is refused, not thrown', () => {
  const h = { alg: 'HS256', typ: 'JWT' };
  const payloads: unknown[] = [
    'not json',
    null,
    [1, 2],
    42,
    goodClaims({ exp: String(nowS + 3600) }),
    goodClaims({ exp: undefined }),
    goodClaims({ nbf: undefined }),
    goodClaims({ iat: undefined }),
    goodClaims({ iss: undefined }),
    goodClaims({ aud: undefined }),
    goodClaims({ exp: Infinity }),
    goodClaims({ exp: -1 }),
  ];
  for (const p of payloads) assert.equal(verifyToken(forge(h, p), 'my-endpoint', secret, now), false, JSON.stringify(p));
  // The control: the same helper with the expected claims.
  assert.equal(verifyToken(forge(h, goodClaims()), 'my-endpoint', secret, now), true);
});

test('malformed strings are refused', () => {
  const long = forge({ alg: 'HS256', typ: 'JWT' }, goodClaims({ pad: 'x'.repeat(2000) }));
  for (const s of ['', '.', '..', 'abc', '.abc', 'abc.', 'a.b.c', 'Bearer x.y', '💥.💥.💥', ' '.repeat(10), '\u0000.\u0000.\u0000', long, `${TOKEN_HEADER_B64}..${'A'.repeat(43)}`]) {
    assert.equal(verifyToken(s, 'my-endpoint', secret, now), false, JSON.stringify(s.slice(0, 40)));
  }
  // A key (no dot) is not a token.
  assert.equal(verifyToken(randomBytes(24).toString('base64url'), 'my-endpoint', secret, now), false);
});

test('interop: over many tokens, ours accepts exactly where jose accepts, or is stricter', async () => {
  const variants: string[] = [];
  const keys = [secret, randomBytes(32).toString('base64url')];
  for (const key of keys) {
    for (const aud of ['my-endpoint', 'other', ['my-endpoint']]) {
      for (const nbf of [nowS - 10, nowS, nowS + 10]) {
        for (const exp of [nowS - 1, nowS, nowS + 1, nowS + 3600]) {
          variants.push(forge({ alg: 'HS256', typ: 'JWT' }, goodClaims({ aud, nbf, exp }), key));
        }
      }
    }
    variants.push((await issueToken('my-endpoint', key, now)).accessToken, (await issueToken('my-endpoint', key, now - TOKEN_LIFETIME_MS)).accessToken);
  }
  let bothAccept = 0;
  for (const t of variants) {
    const ours = verifyToken(t, 'my-endpoint', secret, now);
    const jose = await joseAccepts(t, 'my-endpoint', secret, now);
    if (!jose) assert.equal(ours, false, `jose rejects, we accept: ${JSON.stringify(decodeJwt(t))}`);
    if (ours) bothAccept++;
    // Where we are stricter, it is only the audience list we never issue.
    if (jose && !ours) assert.ok(Array.isArray(decodeJwt(t).aud), JSON.stringify(decodeJwt(t)));
  }
  // nbf ∈ {-10, 0} × exp ∈ {+1, +3600} with the right key and audience, plus the fresh issued token.
  assert.equal(bothAccept, 5);
});
