// Control-plane access (issue 9, docs/security.md): bearer tokens with roles, checked in one onRequest
// hook against the role each route declares in its config; the Host header checked against the control
// plane's own names (DNS rebinding); failed authentications limited per client address.
//
// Roles follow Azure's built-in Owner / Contributor / Reader: each includes the ones below it. A route
// that declares no role cannot be registered (onRoute throws), and if one ever got through, the hook
// refuses it: access fails closed.

import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { hostname, networkInterfaces } from 'node:os';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorOf, type InfergateError } from '../errors/index.js';
import type { Role, StateStore, StoredToken } from '../store/types.js';
import { readOwnerToken, secureWorkspaceDir, writeOwnerToken } from '../util/workspace.js';
import type { AuditLog } from './audit.js';

/** What a route requires: a role (or higher), or nothing at all ('public': health checks only). */
export type RouteAccess = Role | 'public';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The least role allowed to call the route. Every route must declare one. */
    role?: RouteAccess;
    /** The route returns endpoint keys or tokens: audited even when it is a GET. */
    credential?: boolean;
  }
  interface FastifyRequest {
    /** The token the request authenticated with (absent on public routes and refused requests). */
    principal?: { id: string; role: Role };
    /** Set by a handler that creates a token, so the audit line can name it (never its secret). */
    auditTarget?: Record<string, string>;
  }
}

export const ROLES: readonly Role[] = ['owner', 'contributor', 'reader'];
const RANK: Record<Role, number> = { reader: 1, contributor: 2, owner: 3 };

export const roleAllows = (have: Role, need: Role): boolean => RANK[have] >= RANK[need];

// ---- tokens

/**
 * `igt_<id>_<secret>`: the id (64 random bits, hex) finds the record with one primary-key lookup; the
 * secret (256 random bits, hex) is checked against its stored SHA-256 in constant time. A fast hash is
 * right here (as for GitHub's and Stripe's API tokens): the secret is random, not a password, so there
 * is nothing for a slow hash to protect against. The fixed prefix lets secret scanners recognise it.
 */
const TOKEN_RE = /^igt_([0-9a-f]{16})_([0-9a-f]{64})$/;

export interface ParsedToken {
  id: string;
  secret: string;
}

export function parseToken(text: string): ParsedToken | undefined {
  const m = TOKEN_RE.exec(text);
  return m ? { id: m[1], secret: m[2] } : undefined;
}

export const hashSecret = (secret: string): string => createHash('sha256').update(secret).digest('hex');

/** Longest lifetime a token can be given (`--expires-in`); without one it does not expire. */
export const MAX_TOKEN_LIFETIME_S = 10 * 365 * 24 * 3600;

/** `30d`, `12h`, `15m`, `90s` (or a bare number of seconds) → seconds. */
export function parseDuration(text: string): number {
  const m = /^\s*(\d{1,10})\s*([smhd]?)\s*$/i.exec(text);
  if (!m) throw errorOf('DurationInvalid', { text });
  const seconds = Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600, d: 86400 }[m[2].toLowerCase() as '' | 's' | 'm' | 'h' | 'd'];
  if (seconds < 1 || seconds > MAX_TOKEN_LIFETIME_S) throw errorOf('DurationOutOfRange', { text, maxDays: MAX_TOKEN_LIFETIME_S / 86400 });
  return seconds;
}

export interface NewToken {
  /** The whole token: shown once, never stored. */
  token: string;
  record: StoredToken;
}

export function createToken(store: StateStore, o: { role: Role; expiresInSeconds?: number; description?: string }, now: number = Date.now()): NewToken {
  const id = randomBytes(8).toString('hex');
  const secret = randomBytes(32).toString('hex');
  const record = store.putToken({
    id,
    role: o.role,
    hash: hashSecret(secret),
    ...(o.description !== undefined ? { description: o.description } : {}),
    ...(o.expiresInSeconds !== undefined ? { expiresAt: new Date(now + o.expiresInSeconds * 1000).toISOString() } : {}),
  });
  return { token: `igt_${id}_${secret}`, record };
}

export type Verdict = { ok: true; token: StoredToken } | { ok: false; error: InfergateError };

/** Checks a token's text against the store, as it is now: revocation and expiry take effect at once. */
export function verifyToken(store: StateStore, text: string, now: number = Date.now()): Verdict {
  const parsed = parseToken(text);
  if (!parsed) return { ok: false, error: errorOf('TokenMalformed') };
  const record = store.getToken(parsed.id);
  // Unknown and wrong-secret tokens get the same answer, so the reply does not tell which ids exist.
  const given = Buffer.from(hashSecret(parsed.secret), 'hex');
  const stored = record ? Buffer.from(record.hash, 'hex') : undefined;
  if (!record || !stored || stored.length !== given.length || !timingSafeEqual(given, stored)) {
    return { ok: false, error: errorOf('TokenUnknown') };
  }
  if (record.expiresAt !== undefined && now >= Date.parse(record.expiresAt)) return { ok: false, error: errorOf('TokenExpired', { expiresAt: record.expiresAt }) };
  return { ok: true, token: record };
}

/**
 * The workspace's local owner token: `<workspace>/owner.token` (0600, workspace 0700), created at the
 * first start, and again if it was revoked, expired or deleted. Whoever can read the workspace can read
 * state.db anyway, so the file gives its user nothing they did not have; it lets the CLI on this machine
 * work with no login step (it reads the file beside server.json).
 */
export function ensureOwnerToken(store: StateStore, workspace: string): string {
  secureWorkspaceDir(workspace);
  const existing = readOwnerToken(workspace);
  if (existing !== undefined) {
    const v = verifyToken(store, existing);
    if (v.ok && v.token.role === 'owner') return existing;
  }
  const { token } = createToken(store, { role: 'owner', description: 'local owner (owner.token)' });
  writeOwnerToken(workspace, token);
  return token;
}

// ---- failed-authentication limiter

/**
 * Failed authentications per client address in a fixed window (fail2ban-style): after `maxFailures`
 * in `windowMs`, further failures from that address get 429 with Retry-After until the window ends.
 * Valid tokens are never limited, even from a blocked address (a shared NAT or loopback), and never
 * slowed: the limiter is consulted only after a token has failed. Memory is bounded by `maxClients`.
 */
export class FailedAuthLimiter {
  private readonly clients = new Map<string, { failures: number; windowEnd: number }>();

  constructor(
    readonly maxFailures = 20,
    readonly windowMs = 60_000,
    private readonly maxClients = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Records one failure; returns the seconds the client must wait, or 0 when it may still get a 401. */
  fail(address: string): number {
    const now = this.now();
    let entry = this.clients.get(address);
    if (entry === undefined || now >= entry.windowEnd) {
      if (entry !== undefined) this.clients.delete(address);
      if (this.clients.size >= this.maxClients) this.evict(now);
      entry = { failures: 0, windowEnd: now + this.windowMs };
      this.clients.set(address, entry);
    }
    entry.failures++;
    return entry.failures > this.maxFailures ? Math.max(1, Math.ceil((entry.windowEnd - now) / 1000)) : 0;
  }

  get tracked(): number {
    return this.clients.size;
  }

  private evict(now: number): void {
    for (const [address, e] of this.clients) if (now >= e.windowEnd) this.clients.delete(address);
    // Still full: drop the oldest windows (a Map iterates in insertion order).
    for (const address of this.clients.keys()) {
      if (this.clients.size < this.maxClients) break;
      this.clients.delete(address);
    }
  }
}

// ---- Host header (DNS rebinding)

const WILDCARDS = new Set(['0.0.0.0', '::', '']);

/** `[::1]` for IPv6 literals, lowercase, without a trailing dot: the form compared against Host. */
function hostForm(name: string): string {
  const n = name.trim().toLowerCase().replace(/\.$/, '');
  return n.includes(':') && !n.startsWith('[') ? `[${n}]` : n;
}

/**
 * The names the control plane answers to: loopback names, the machine's hostname, the address it is
 * bound to (every interface address when bound to a wildcard), and the operator's `--api-allowed-host`
 * values. A DNS-rebinding page reaches us under its own domain name, which is none of these.
 */
export function allowedHostNames(boundHost: string, extra: readonly string[] = []): Set<string> {
  const names = new Set(['localhost', '127.0.0.1', '[::1]']);
  const machine = hostname().toLowerCase();
  names.add(machine);
  names.add(machine.split('.')[0]);
  if (WILDCARDS.has(boundHost)) {
    // server.json names the wildcard itself (http://0.0.0.0:8470), which connects to this machine.
    names.add('0.0.0.0').add('[::]');
    for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) names.add(hostForm(a.address.replace(/%.*$/, '')));
  } else {
    names.add(hostForm(boundHost));
  }
  for (const e of extra) if (e.trim() !== '') names.add(hostForm(e));
  return names;
}

/** The name in a Host header, without the port: `Example.com:8470` → `example.com`, `[::1]:80` → `[::1]`. */
export function hostOf(header: string): string {
  const h = header.trim().toLowerCase();
  if (h.startsWith('[')) {
    const end = h.indexOf(']');
    return end < 0 ? h : h.slice(0, end + 1);
  }
  const colon = h.indexOf(':');
  return (colon < 0 ? h : h.slice(0, colon)).replace(/\.$/, '');
}

// ---- the hook

export interface AccessOptions {
  store: StateStore;
  /** Names accepted in the Host header (allowedHostNames). */
  hosts: Set<string>;
  limiter: FailedAuthLimiter;
  audit?: AuditLog | undefined;
  log: (line: string) => void;
  now?: () => number;
}

function refuse(reply: FastifyReply, e: InfergateError, headers: Record<string, string> = {}): FastifyReply {
  for (const [k, v] of Object.entries(headers)) reply.header(k, v);
  return reply.status(e.status).send(e.toBody());
}

/** The Authorization header's bearer token; '' when absent; undefined when malformed or sent twice. */
function bearerOf(req: FastifyRequest): string | undefined {
  // Node keeps only the first of two Authorization headers; a request that sends two is ambiguous and refused.
  let seen = 0;
  const raw = req.raw.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 13 && raw[i].toLowerCase() === 'authorization') seen++;
  if (seen === 0) return '';
  if (seen > 1) return undefined;
  const value = req.headers.authorization ?? '';
  // The scheme is case-insensitive (RFC 9110 §11.1); one or more spaces before the token (RFC 6750 §2.1).
  const m = /^bearer +(\S+)\s*$/i.exec(value);
  return m ? m[1] : undefined;
}

/**
 * A studio browser session (api/studio.ts): asked for a request that carries no Authorization header.
 * undefined: the request has no session cookie (TokenMissing as before); otherwise the verdict on it.
 */
export type SessionCheck = (req: FastifyRequest) => Verdict | undefined;

const sessionChecks = new WeakMap<FastifyInstance, SessionCheck>();

/** Lets the access hook of `app` accept studio session cookies as the token they were signed in with. */
export function acceptSessions(app: FastifyInstance, check: SessionCheck): void {
  sessionChecks.set(app, check);
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Minimum time between two last-used writes of one token: `token list` is exact to the minute. */
const TOUCH_EVERY_MS = 60_000;

/**
 * Installs the access checks on `app`. Call before any route is registered: from then on a route
 * without `config.role` throws at registration, so a new route cannot ship unprotected.
 */
export function installAccessControl(app: FastifyInstance, o: AccessOptions): void {
  const now = o.now ?? Date.now;
  const touched = new Map<string, number>();

  app.addHook('onRoute', (route) => {
    const role = route.config?.role;
    if (role !== 'public' && !(typeof role === 'string' && ROLES.includes(role as Role))) {
      throw new Error(`control-plane route ${String(route.method)} ${route.url} declares no role (config.role): every route must say who may call it`);
    }
  });

  app.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    const host = req.headers.host;
    if (host === undefined || !o.hosts.has(hostOf(host))) {
      return refuse(reply, errorOf('HostNotAllowed', { host: host ?? '', name: host ? hostOf(host).replace(/^\[|\]$/g, '') : '<name>' }));
    }
    const config = req.routeOptions.config;
    if (config?.role === 'public') return;
    // A route not found still needs a valid token, so unauthenticated clients cannot map the API.
    const need: Role | undefined = req.is404 ? 'reader' : config?.role;
    if (need === undefined) {
      o.log(`refusing ${req.method} ${req.url}: the route declares no role`);
      return refuse(reply, errorOf('RouteWithoutRole'));
    }
    const bearer = bearerOf(req);
    // A bearer token wins over a studio cookie: the CLI and scripts never carry one.
    const session = bearer === '' ? sessionChecks.get(app)?.(req) : undefined;
    const verdict: Verdict =
      bearer === undefined
        ? { ok: false, error: errorOf('AuthorizationAmbiguous') }
        : session !== undefined
          ? session
          : bearer === ''
            ? { ok: false, error: errorOf('TokenMissing') }
            : verifyToken(o.store, bearer, now());
    if (!verdict.ok) {
      const wait = o.limiter.fail(req.ip);
      if (wait > 0) {
        return refuse(reply, errorOf('TooManyFailedAuth', { client: req.ip, seconds: wait }), { 'retry-after': String(wait) });
      }
      // RFC 6750 §3: a challenge, with error="invalid_token" when a token was presented.
      const challenge = bearer ? 'Bearer realm="infergate", error="invalid_token"' : 'Bearer realm="infergate"';
      return refuse(reply, verdict.error, { 'www-authenticate': challenge });
    }
    const token = verdict.token;
    // Cookies go along with any request the browser makes, so a change made with one must also carry a
    // header no cross-site form or image can set (SameSite=Strict is the first line; this the second).
    if (session !== undefined && !SAFE_METHODS.has(req.method) && req.headers['x-infergate-studio'] !== '1') {
      return refuse(reply, errorOf('StudioHeaderMissing'));
    }
    req.principal = { id: token.id, role: token.role };
    const t = now();
    if ((touched.get(token.id) ?? 0) + TOUCH_EVERY_MS <= t) {
      touched.set(token.id, t);
      o.store.touchToken(token.id);
    }
    if (!roleAllows(token.role, need)) {
      return refuse(reply, errorOf('RoleTooLow', { id: token.id, role: token.role, method: req.method, route: req.routeOptions.url ?? req.url, need }));
    }
  });

  if (o.audit) {
    const audit = o.audit;
    app.addHook('onResponse', async (req, reply) => {
      const config = req.routeOptions.config;
      if (req.method === 'GET' || req.method === 'HEAD') {
        if (!config?.credential) return;
      } else if (reply.statusCode === 429 || reply.statusCode === 421) {
        return; // refused before authentication; counted by the limiter, not worth a line each
      }
      audit.record({
        time: new Date().toISOString(),
        request_id: req.id,
        token_id: req.principal?.id ?? null,
        role: req.principal?.role ?? null,
        client: req.ip,
        method: req.method,
        route: req.is404 ? null : (req.routeOptions.url ?? null),
        ...auditNames(req),
        status: reply.statusCode,
      });
    });
  }
}

const cap = (s: unknown): string | undefined => (typeof s === 'string' ? s.slice(0, 256) : undefined);

/** The names a change concerns (endpoint, deployment, asset, token id): never a body, never a secret. */
function auditNames(req: FastifyRequest): Record<string, string> {
  const route = req.is404 ? '' : (req.routeOptions.url ?? '');
  const params = (req.params ?? {}) as Record<string, unknown>;
  const bodyName = cap((req.body as { name?: unknown } | undefined)?.name);
  const out: Record<string, string> = {};
  const put = (k: string, v: string | undefined) => {
    if (v !== undefined && v !== '') out[k] = v;
  };
  if (route.startsWith('/api/endpoints')) {
    put('endpoint', cap(params.name) ?? (route === '/api/endpoints' ? bodyName : undefined));
    put('deployment', cap(params.deployment) ?? (route === '/api/endpoints/:name/deployments' ? bodyName : undefined));
  } else if (route.startsWith('/api/models') || route.startsWith('/api/environments')) {
    put('asset', cap(params.name) ?? bodyName);
    put('version', cap(params.version) ?? cap((req.body as { version?: unknown } | undefined)?.version));
  } else if (route.startsWith('/api/tokens')) {
    put('target_token', cap(params.id));
  } else if (req.is404) {
    put('url', cap(req.url.split('?')[0]));
  }
  return { ...out, ...req.auditTarget };
}
