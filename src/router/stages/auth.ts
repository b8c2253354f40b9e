// Stage 1, auth: the endpoint's key or token in `Authorization: Bearer <credential>`, first because
// nothing about deployments (which exist, which is pinned) is revealed to a client without one. Azure
// serves the OpenAPI document without auth; scoring always needs it. A client address that failed too
// often is refused before its credential is even checked (../auth-limit.ts).

import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { endpointMeters, type ConnectionMeters } from '../../telemetry/metrics.js';
import type { FailedAuthLimiter } from '../auth-limit.js';
import type { Http1Connection, Http1Request } from '../http1.js';
import type { EndpointState } from '../state.js';
import { answerError, errorBody } from './answer.js';

const TWO_AUTHORIZATIONS = errorBody('Bad request: more than one Authorization header');
const UNAUTHORIZED = errorBody('Unauthorized: a valid key or token is required in the Authorization header (Bearer <key>)');
const AUTH_OK = 0;
const AUTH_FAILED = 1;
const AUTH_THROTTLED = 2;

/** What a client connection last proved (Auth.verdict), kept in its handlerState. */
interface Verified {
  endpoint: EndpointState;
  header: string;
  /** Valid until (ms since the epoch): Infinity for a key, the token's exp for a token. */
  until: number;
}

export class Auth {
  /** Set with AUTH_THROTTLED: how long the client is still refused (ms). */
  private throttledFor = 0;

  constructor(
    /** Failed-auth limit per client address; null when disabled. */
    readonly limiter: FailedAuthLimiter | null,
    private readonly meters: ConnectionMeters,
  ) {}

  /** true when `req` may go on; false once it has been answered (400, 401, 429). */
  check(req: Http1Request, endpoint: EndpointState): boolean {
    if (endpoint.route.authMode === 'none') return true;
    const auth = onlyValue(req.headers, 'authorization');
    // Two credentials: which one counts is ambiguous (a proxy may check one, we another), so neither does.
    if (auth === null) return void refused(req, endpoint, 400, TWO_AUTHORIZATIONS), false;
    const verdict = this.verdict(endpoint, auth, req.conn);
    if (verdict === AUTH_OK) return true;
    if (verdict === AUTH_FAILED) return void refused(req, endpoint, 401, UNAUTHORIZED), false;
    // Over the failed-auth limit: the connection closes, so what it pipelined is not read.
    this.meters.failedAuthRefused++;
    countRefusal(endpoint, 429);
    const seconds = String(Math.max(1, Math.ceil(this.throttledFor / 1000)));
    answerError(req, 429, errorBody(`Too many failed authentication attempts from this address: retry after ${seconds} s`), randomUUID(), '', seconds, true);
    return false;
  }

  /**
   * AUTH_OK, AUTH_FAILED (401) or AUTH_THROTTLED (429: the client address failed too often, ../auth-limit.ts).
   * A keep-alive connection that presented this very header to this endpoint state (same keys, same token
   * key) was verified then, and stays verified until the credential expires (keys: never; tokens: their
   * exp). Comparing with what the same client sent before reveals nothing it does not know, so a plain
   * comparison is safe; anything else goes through the constant-time checks. A new table (rotated keys)
   * is a new endpoint state: what was verified against the old one is checked again.
   */
  private verdict(endpoint: EndpointState, header: string | undefined, conn: Http1Connection): number {
    const known = conn.handlerState as Verified | undefined;
    const same = header !== undefined && known !== undefined && known.endpoint === endpoint && known.header === header;
    if (same && (known.until === Infinity || known.until > Date.now())) return AUTH_OK;
    const limiter = this.limiter;
    if (limiter !== null) {
      // Nothing is looked up (and nothing allocated) unless some address is blocked now.
      const left = limiter.blockedFor(clientAddress(conn), performance.now());
      if (left > 0) {
        this.throttledFor = left;
        return AUTH_THROTTLED;
      }
    }
    const start = header === undefined ? -1 : credentialStart(header);
    const until = start < 0 ? 0 : verify(endpoint, header!.slice(start));
    if (until === 0) {
      limiter?.failed(clientAddress(conn), performance.now());
      return AUTH_FAILED;
    }
    if (same) known.until = until;
    else conn.handlerState = { endpoint, header: header!, until } satisfies Verified;
    return AUTH_OK;
  }
}

/**
 * Counts an answer given before a deployment is selected in infergate_requests_total (deployment ""). A
 * lookup by the name the endpoint state already holds: nothing is allocated, so a flood of bad keys costs
 * no more than before.
 */
function countRefusal(endpoint: EndpointState, status: number): void {
  endpointMeters(endpoint.route.name).byStatus[status]++;
}

function refused(req: Http1Request, endpoint: EndpointState, status: number, body: string): void {
  countRefusal(endpoint, status);
  answerError(req, status, body, randomUUID(), '');
}

/** Until when (ms since the epoch) the credential is valid: Infinity for a key, 0 when it is not valid. */
function verify(endpoint: EndpointState, credential: string): number {
  if (endpoint.route.authMode === 'key') {
    const digest = createHash('sha256').update(credential).digest();
    let ok = false;
    // Compare against every key, always, so timing tells nothing about which matched.
    for (const h of endpoint.keyHashes) ok = timingSafeEqual(digest, h) || ok;
    return ok ? Infinity : 0;
  }
  return endpoint.tokens === null ? 0 : endpoint.tokens.verify(credential);
}

/** The address a failed-auth limit applies to. */
function clientAddress(conn: Http1Connection): string {
  return conn.client !== '' ? conn.client : (conn.socket.remoteAddress ?? '');
}

/**
 * Where the credential starts in an Authorization value of the Bearer scheme, or -1. The scheme is
 * case-insensitive (RFC 9110 §11.1, RFC 6750 §2.1: "bearer", "BEARER" are the same) and is followed by
 * one or more spaces.
 */
function credentialStart(header: string): number {
  if (header.length < 8) return -1;
  for (let i = 0; i < 6; i++) if ((header.charCodeAt(i) | 0x20) !== BEARER[i]) return -1;
  let i = 6;
  while (i < header.length && header.charCodeAt(i) === 0x20) i++;
  return i === 6 || i === header.length ? -1 : i;
}
const BEARER = [...'bearer'].map((c) => c.charCodeAt(0));

/** The value of a header that must appear at most once: undefined if absent, null if repeated. */
function onlyValue(headers: readonly string[], name: string): string | undefined | null {
  let value: string | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i] !== name) continue;
    if (value !== undefined) return null;
    value = headers[i + 1];
  }
  return value;
}
