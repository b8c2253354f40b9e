// aml_token auth: short-lived tokens the control plane issues (`get-credentials`) and the router checks.
// Format: base64url(JSON {ep, exp}) "." base64url(HMAC-SHA256(secret, payload)). Self-contained, so a router
// verifies without a round trip; checked with one HMAC and a constant-time compare.

import { createHmac, timingSafeEqual } from 'node:crypto';

/** Azure does not publish the AML token lifetime (contract §2.5); one hour, refresh after half. */
export const TOKEN_LIFETIME_MS = 60 * 60 * 1000;

export interface IssuedToken {
  accessToken: string;
  expiryTimeUtc: number;
  refreshAfterTimeUtc: number;
  tokenType: 'Bearer';
}

function sign(secret: string, payload: string): string {
  return createHmac('sha256', Buffer.from(secret, 'base64url')).update(payload).digest('base64url');
}

export function issueToken(endpoint: string, secret: string, now = Date.now(), lifetimeMs = TOKEN_LIFETIME_MS): IssuedToken {
  const exp = now + lifetimeMs;
  const payload = Buffer.from(JSON.stringify({ ep: endpoint, exp })).toString('base64url');
  return {
    accessToken: `${payload}.${sign(secret, payload)}`,
    // Azure's CLI prints these as Unix seconds.
    expiryTimeUtc: Math.floor(exp / 1000),
    refreshAfterTimeUtc: Math.floor((now + lifetimeMs / 2) / 1000),
    tokenType: 'Bearer',
  };
}

/** True when `token` was issued for `endpoint` with `secret` and has not expired. */
export function verifyToken(token: string, endpoint: string, secret: string, now = Date.now()): boolean {
  const dot = token.indexOf('.');
  if (dot <= 0) return false;
  const payload = token.slice(0, dot);
  const expected = Buffer.from(sign(secret, payload));
  const given = Buffer.from(token.slice(dot + 1));
  if (expected.length !== given.length || !timingSafeEqual(expected, given)) return false;
  try {
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8')) as { ep?: unknown; exp?: unknown };
    return claims.ep === endpoint && typeof claims.exp === 'number' && claims.exp > now;
  } catch {
    return false;
  }
}
