// aml_token auth: short-lived tokens the control plane issues (`get-credentials`) and the router checks.
//
// A token is a JWT (RFC 7519) in JWS compact form, HS256 (RFC 7518 §3.2), signed with the endpoint's own
// signing key (`EndpointKeys.tokenSecret`, 256 random bits) by jose, so standard tools (jwt.io, `jose`,
// PyJWT) read its claims: `iss` = infergate, `aud` = the endpoint's name, `iat`, `nbf`, `exp`. Two
// things keep a token on its endpoint: the audience, and the key, which is the endpoint's alone. Rotating
// the key (`regenerate-keys --key-type token`) invalidates every token signed with the old one.
//
// Verification is on the router's hot path and must be synchronous, so it is not jose's (async, WebCrypto)
// but one node:crypto HMAC over `header.payload`, compared in constant time, then the claims. It is
// deliberately narrower than a general JWT library (RFC 8725 §2.1, §3.1: the verifier, not the token,
// chooses the algorithm): the header must be exactly the one we issue, so `alg` is pinned to HS256 and
// there is no `none`, HS512, RS256, `crit`, `kid`, `jku` or `jwk` to interpret; `aud` must be a string
// equal to the endpoint's name; `iss`, `iat`, `nbf` and `exp` must be present. Everything jose's own
// jwtVerify rejects we reject too (token.test.ts checks it both ways).

import { createHmac, createSecretKey, timingSafeEqual, type KeyObject } from 'node:crypto';
import { SignJWT } from 'jose';

/** Azure does not publish the AML token lifetime (contract §2.5); one hour, refresh after half. */
export const TOKEN_LIFETIME_MS = 60 * 60 * 1000;
export const TOKEN_ISSUER = 'infergate';
/** The only header we sign, and so the only one we accept (JSON.stringify order, as jose encodes it). */
const HEADER = { alg: 'HS256', typ: 'JWT' } as const;
export const TOKEN_HEADER_B64 = Buffer.from(JSON.stringify(HEADER)).toString('base64url');
/** base64url of a 32-byte HMAC-SHA256, without padding. */
const SIGNATURE_CHARS = 43;
/**
 * Longest token looked at: ours are ~250 characters (the endpoint name is at most 32). A longer one is
 * refused before any HMAC, so an attacker cannot make the router hash kilobytes per request.
 */
const MAX_TOKEN_CHARS = 1024;

export interface IssuedToken {
  accessToken: string;
  expiryTimeUtc: number;
  refreshAfterTimeUtc: number;
  tokenType: 'Bearer';
}

/** Claims of a token we issue (RFC 7519 §4.1; NumericDate = seconds since the epoch). */
interface Claims {
  iss: string;
  aud: string;
  iat: number;
  nbf: number;
  exp: number;
}

/** The signing key from its stored form (base64url of 32 random bytes). */
export function signingKey(secret: string): Uint8Array {
  return new Uint8Array(Buffer.from(secret, 'base64url'));
}

/** Signs a token for `endpoint` with its signing key, valid from `now` (ms) for `lifetimeMs`. */
export async function issueToken(endpoint: string, secret: string, now = Date.now(), lifetimeMs = TOKEN_LIFETIME_MS): Promise<IssuedToken> {
  const iat = Math.floor(now / 1000);
  const exp = Math.floor((now + lifetimeMs) / 1000);
  const accessToken = await new SignJWT({})
    .setProtectedHeader(HEADER)
    .setIssuer(TOKEN_ISSUER)
    .setAudience(endpoint)
    .setIssuedAt(iat)
    .setNotBefore(iat)
    .setExpirationTime(exp)
    .sign(signingKey(secret));
  return {
    accessToken,
    // Azure's CLI prints these as Unix seconds.
    expiryTimeUtc: exp,
    refreshAfterTimeUtc: Math.floor((now + lifetimeMs / 2) / 1000),
    tokenType: 'Bearer',
  };
}

// Scratch space for the constant-time compare: verify() is synchronous, so one pair serves every call.
const expectedSig = Buffer.alloc(SIGNATURE_CHARS);
const givenSig = Buffer.alloc(SIGNATURE_CHARS);

/**
 * The router's check of one endpoint's tokens, built once per routing-table snapshot: the key object and
 * the audience are prepared here, not per request.
 */
export class TokenVerifier {
  private readonly key: KeyObject;

  constructor(
    readonly audience: string,
    secret: string,
  ) {
    this.key = createSecretKey(Buffer.from(secret, 'base64url'));
  }

  /**
   * The token's expiry (ms since the epoch) when it is valid at `now` for this endpoint, else 0. The
   * caller may trust it until then without checking again (router.ts keeps it per connection).
   */
  verify(token: string, now = Date.now()): number {
    const n = token.length;
    if (n > MAX_TOKEN_CHARS) return 0;
    const h = TOKEN_HEADER_B64.length;
    // header "." payload "." signature — the header is ours, byte for byte.
    if (n < h + 2 + SIGNATURE_CHARS || token.charCodeAt(h) !== 0x2e || !token.startsWith(TOKEN_HEADER_B64)) return 0;
    const sigAt = n - SIGNATURE_CHARS;
    if (token.charCodeAt(sigAt - 1) !== 0x2e || sigAt - 1 <= h + 1) return 0;
    // The signature segment must be exactly the canonical base64url of the MAC we compute, so no other
    // spelling of the same bytes (padding, standard-alphabet characters, spare bits) is accepted.
    const mac = createHmac('sha256', this.key).update(token.slice(0, sigAt - 1)).digest('base64url');
    expectedSig.write(mac, 0, 'latin1');
    if (givenSig.write(token.slice(sigAt), 0, 'latin1') !== SIGNATURE_CHARS) return 0;
    if (!timingSafeEqual(expectedSig, givenSig)) return 0;
    // latin1 keeps the low byte of a character above U+00FF: the same MAC spelled with such characters
    // passed the byte compare. Equal now, so comparing the strings tells nothing.
    if (!token.endsWith(mac)) return 0;
    // Signed by us with this endpoint's key: only now is the payload decoded.
    let claims: Partial<Record<keyof Claims, unknown>> | null;
    try {
      claims = JSON.parse(Buffer.from(token.slice(h + 1, sigAt - 1), 'base64url').toString('utf8')) as typeof claims;
    } catch {
      return 0;
    }
    if (claims === null || typeof claims !== 'object' || Array.isArray(claims)) return 0;
    const { iss, aud, iat, nbf, exp } = claims;
    if (iss !== TOKEN_ISSUER || aud !== this.audience) return 0;
    if (!isNumericDate(iat) || !isNumericDate(nbf) || !isNumericDate(exp)) return 0;
    // RFC 7519 §4.1.4: valid only before exp; §4.1.5: not before nbf. Same boundaries as jose (whose clock
    // is whole seconds): at exp * 1000 ms it is expired, at nbf * 1000 ms it is valid.
    const expMs = exp * 1000;
    if (now >= expMs || now < nbf * 1000) return 0;
    return expMs;
  }
}

function isNumericDate(v: unknown): v is number {
  return typeof v === 'number' && Number.isFinite(v) && v >= 0;
}

/** True when `token` was issued for `endpoint` with `secret` and is valid at `now` (tests, tools). */
export function verifyToken(token: string, endpoint: string, secret: string, now = Date.now()): boolean {
  return new TokenVerifier(endpoint, secret).verify(token, now) !== 0;
}
