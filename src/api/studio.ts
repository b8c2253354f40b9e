// The studio (issue 15, docs/studio.md): the web UI served by the control plane at `/`, and the few
// routes only a browser needs. Everything else the studio does goes through the same REST API as the
// CLI, with the same roles: a browser session is a cookie standing for the token that `infergate studio`
// used to ask for a one-time sign-in code (Jupyter's token URL), accepted by the access hook (auth.ts).
//
//   POST /studio/v1/sign-in-codes        a one-time code bound to the caller's token (any role)
//   GET  /studio/login?code=…            the code, once, for a session cookie (HttpOnly, SameSite=Strict)
//   POST /studio/v1/sign-out             ends the session
//   POST /studio/v1/validate             YAML text → problems at line:column, as the CLI prints them
//   POST /studio/v1/endpoints/:name/test a scoring request sent for the browser (the Test tab)
//   GET  /studio/v1/summary              requests per minute per endpoint (the endpoints list)
//   GET  /studio/v1/metrics/stream       live charts: one server-sent event stream per page
//   GET  /, /studio/assets/*             the built bundle (dist/studio, scripts/build-studio.mjs)

import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { ControlPlane } from '../control/index.js';
import { errorOf, formatProblem, InfergateError, type Problem } from '../errors/index.js';
import { dumpDeployment, dumpEndpoint } from '../spec/index.js';
import { deployment as deploymentType } from '../spec/deployment.js';
import { endpoint as endpointType } from '../spec/endpoint.js';
import { applyOverridesToTree } from '../spec/overrides.js';
import type { Cx, Kind } from '../spec/schema.js';
import { parseYamlTree, type SNode } from '../spec/tree.js';
import type { StateStore, StoredEndpoint, StoredToken } from '../store/types.js';
import { allDeploymentMeters, LATENCY_BUCKETS, type DeploymentMeters } from '../telemetry/metrics.js';
import { trustedFetch } from '../util/tls.js';
import { acceptSessions, type Verdict } from './auth.js';

export const SESSION_COOKIE = 'infergate_studio';
/** A sign-in code is good for one exchange within this time (the URL is printed on a terminal). */
export const CODE_TTL_MS = 120_000;
/** A session ends after this (sooner when its token expires or is revoked). */
export const SESSION_TTL_MS = 8 * 3600_000;
const MAX_CODES = 1_000;
const MAX_SESSIONS = 10_000;
const KEEP_ALIVE_MS = 15_000;
/** Bytes a metrics stream may fall behind its reader before it is cut off. */
const STREAM_BEHIND_MAX = 1024 * 1024;
/** The most of a Test tab answer the server reads and returns (bytes). */
export const TEST_ANSWER_MAX = 4 * 1024 * 1024;

export interface StudioOptions {
  store: StateStore;
  control: ControlPlane;
  /** The endpoint as `show` prints it (scoring_uri). */
  showEndpoint: (e: StoredEndpoint) => Promise<Record<string, unknown>>;
  /** Set when the API serves HTTPS: the cookie is then Secure. */
  https?: unknown;
  now?: () => number;
  /** The built studio (default dist/studio beside the package's dist/). */
  studioDir?: string;
  /** Where the charts' figures come from (default: every deployment's router meters). */
  meters?: () => Iterable<DeploymentMeters>;
  /** Chart sampling interval, ms (default 1000). */
  sampleMs?: number;
}

interface Session {
  tokenId: string;
  expiresAt: number;
}

const DEFAULT_DIR = fileURLToPath(new URL('../../dist/studio/', import.meta.url));

function cookieOf(req: FastifyRequest, name: string): string | undefined {
  const header = req.headers.cookie;
  if (header === undefined) return undefined;
  for (const part of header.split(';')) {
    const eq = part.indexOf('=');
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Drops expired entries, then the oldest, so a flood of codes or sign-ins cannot grow memory. */
function bound<V extends { expiresAt: number }>(m: Map<string, V>, max: number, now: number): void {
  if (m.size < max) return;
  for (const [k, v] of m) if (v.expiresAt <= now) m.delete(k);
  for (const k of m.keys()) {
    if (m.size < max) break;
    m.delete(k);
  }
}

const tokenLive = (t: StoredToken | undefined, now: number): t is StoredToken => t !== undefined && (t.expiresAt === undefined || now < Date.parse(t.expiresAt));

const page = (title: string, body: string): string =>
  `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><title>${title}</title>` +
  `<style>body{font:16px system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem}@media(prefers-color-scheme:dark){body{background:#16181d;color:#e6e6e6}}</style></head><body>${body}</body></html>`;

const escapeHtml = (s: string): string => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// ---- charts: per deployment, one row a second of what the router counted ----------------------------

/** Column names of a chart row after its time: the Azure metric names (contract §6) and their splits. */
export const CHART_COLUMNS = [
  'RequestsPerMinute:2xx',
  'RequestsPerMinute:3xx',
  'RequestsPerMinute:4xx',
  'RequestsPerMinute:5xx',
  'RequestLatency_P50',
  'RequestLatency_P90',
  'RequestLatency_P99',
  'ModelLatency_P50',
  'ModelLatency_P99',
  'DeploymentCapacity',
  'CpuUtilizationPercentage',
  'CpuMemoryUtilizationPercentage',
  'MirrorRequestsPerMinute:sent',
  'MirrorRequestsPerMinute:dropped',
] as const;
const WIDTH = CHART_COLUMNS.length + 1;
/** Percentiles are over the requests answered in this window (a second alone is too few at low rates). */
const PERCENTILE_WINDOW_MS = 10_000;
const MINUTE_MS = 60_000;
const RETENTION_MS = 3_600_000;

/** The q-quantile (ms) of the requests in a bucket delta, interpolated inside its bucket; NaN when empty. */
export function quantileMs(counts: Float64Array, q: number): number {
  let total = 0;
  for (const c of counts) total += c;
  if (total <= 0) return NaN;
  const rank = q * total;
  let seen = 0;
  for (let i = 0; i < counts.length; i++) {
    if (counts[i] <= 0) continue;
    if (seen + counts[i] >= rank) {
      const lo = i === 0 ? 0 : LATENCY_BUCKETS[i - 1];
      const hi = i < LATENCY_BUCKETS.length ? LATENCY_BUCKETS[i] : lo * 2;
      return (lo + (hi - lo) * ((rank - seen) / counts[i])) * 1000;
    }
    seen += counts[i];
  }
  return NaN;
}

interface Cumulative {
  time: number;
  classes: [number, number, number, number];
  mirrorSent: number;
  mirrorDropped: number;
  request: Float64Array;
  model: Float64Array;
}

/** Rows of one deployment: a flat Float64Array ring, WIDTH numbers a row (time first; NaN is no value). */
class Rows {
  private data = new Float64Array(WIDTH * 64);
  private head = 0;
  size = 0;
  /** Cumulative counters of the last minute or so, oldest first, for per-minute and windowed figures. */
  readonly history: Cumulative[] = [];

  constructor(
    readonly endpoint: string,
    readonly deployment: string,
    private readonly max: number,
  ) {}

  push(row: Float64Array): void {
    const cap = this.data.length / WIDTH;
    if (this.size === cap && cap < this.max) {
      const next = new Float64Array(Math.min(this.max, cap * 2) * WIDTH);
      for (let k = 0; k < this.size; k++) next.set(this.data.subarray(((this.head + k) % cap) * WIDTH, ((this.head + k) % cap) * WIDTH + WIDTH), k * WIDTH);
      this.data = next;
      this.head = 0;
    }
    const c = this.data.length / WIDTH;
    const at = this.size === c ? this.head : (this.head + this.size) % c;
    this.data.set(row, at * WIDTH);
    if (this.size === c) this.head = (this.head + 1) % c;
    else this.size++;
  }

  /** Rows with time >= from, oldest first, as [time, ...values] with null for no value (JSON). */
  since(from: number): Array<Array<number | null>> {
    const c = this.data.length / WIDTH;
    const out: Array<Array<number | null>> = [];
    for (let k = 0; k < this.size; k++) {
      const i = ((this.head + k) % c) * WIDTH;
      if (this.data[i] < from) continue;
      const row: Array<number | null> = [];
      for (let j = 0; j < WIDTH; j++) {
        const v = this.data[i + j];
        row.push(Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null);
      }
      out.push(row);
    }
    return out;
  }
}

const classOf = (byStatus: Float64Array, from: number): number => {
  let n = 0;
  for (let s = from; s < from + 100; s++) n += byStatus[s];
  return n;
};

/** Samples every deployment's meters each second into rows; tells subscribers of each endpoint. */
export class StudioCharts {
  private readonly rows = new Map<string, Rows>();
  private readonly listeners = new Set<(endpoint: string, deployment: string, row: Array<number | null>) => void>();
  private timer: NodeJS.Timeout | null = null;
  private readonly max: number;

  constructor(
    private readonly meters: () => Iterable<DeploymentMeters>,
    private readonly intervalMs = 1000,
    private readonly now: () => number = Date.now,
  ) {
    this.max = Math.ceil(RETENTION_MS / intervalMs) + 1;
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.sample(), this.intervalMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  subscribe(fn: (endpoint: string, deployment: string, row: Array<number | null>) => void): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** The endpoint's deployments' rows since `from`. */
  history(endpoint: string, from: number): Record<string, Array<Array<number | null>>> {
    const out: Record<string, Array<Array<number | null>>> = {};
    for (const r of this.rows.values()) if (r.endpoint === endpoint) out[r.deployment] = r.since(from);
    return out;
  }

  /** Requests answered in the last minute, per endpoint (all status classes). */
  perMinute(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const r of this.rows.values()) {
      const h = r.history;
      if (h.length === 0) continue;
      const first = h[0];
      const last = h[h.length - 1];
      let n = 0;
      for (let i = 0; i < 4; i++) n += last.classes[i] - first.classes[i];
      out[r.endpoint] = (out[r.endpoint] ?? 0) + n;
    }
    return out;
  }

  sample(): void {
    const now = this.now();
    const seen = new Set<string>();
    for (const m of this.meters()) {
      if (!m.live) continue;
      const key = `${m.endpoint}/${m.deployment}`;
      seen.add(key);
      let rows = this.rows.get(key);
      if (rows === undefined) this.rows.set(key, (rows = new Rows(m.endpoint, m.deployment, this.max)));
      const cur: Cumulative = {
        time: now,
        classes: [classOf(m.byStatus, 200), classOf(m.byStatus, 300), classOf(m.byStatus, 400), classOf(m.byStatus, 500)],
        mirrorSent: m.mirror.sent,
        mirrorDropped: m.mirror.dropped,
        request: Float64Array.from(m.requestDuration.counts),
        model: Float64Array.from(m.modelDuration.counts),
      };
      const h = rows.history;
      h.push(cur);
      while (h.length > 2 && h[1].time <= now - MINUTE_MS) h.shift();
      const minuteBase = h[0];
      let windowBase = h[0];
      for (const x of h) {
        if (x.time >= now - PERCENTILE_WINDOW_MS) break;
        windowBase = x;
      }
      const delta = (a: Float64Array, b: Float64Array) => a.map((v, i) => v - b[i]);
      const req = delta(cur.request, windowBase.request);
      const mod = delta(cur.model, windowBase.model);
      const row = new Float64Array(WIDTH);
      row[0] = now;
      for (let i = 0; i < 4; i++) row[1 + i] = cur.classes[i] - minuteBase.classes[i];
      row[5] = quantileMs(req, 0.5);
      row[6] = quantileMs(req, 0.9);
      row[7] = quantileMs(req, 0.99);
      row[8] = quantileMs(mod, 0.5);
      row[9] = quantileMs(mod, 0.99);
      row[10] = m.readyInstances;
      row[11] = m.cpuUtilizationPercent;
      row[12] = m.memoryUtilizationPercent;
      row[13] = cur.mirrorSent - minuteBase.mirrorSent;
      row[14] = cur.mirrorDropped - minuteBase.mirrorDropped;
      rows.push(row);
      if (this.listeners.size > 0) {
        const json = Array.from(row, (v) => (Number.isFinite(v) ? Math.round(v * 1000) / 1000 : null));
        for (const fn of this.listeners) fn(m.endpoint, m.deployment, json);
      }
    }
    // A deployment deleted and created again starts with no history.
    for (const key of this.rows.keys()) if (!seen.has(key)) this.rows.delete(key);
  }
}

// ---- validation of pasted YAML ------------------------------------------------------------------------

/** Keys whose value is a local file or folder the browser must upload, and what it must be. */
const UPLOAD_KEYS: Record<'endpoint' | 'deployment', Array<{ path: string[]; expect: 'file' | 'folder' | 'file or folder' }>> = {
  endpoint: [],
  deployment: [
    { path: ['model', 'path'], expect: 'file or folder' },
    { path: ['code_configuration', 'code'], expect: 'folder' },
    { path: ['environment', 'conda_file'], expect: 'file' },
    { path: ['environment', 'build', 'path'], expect: 'folder' },
  ],
};

const PLACEHOLDER = `upload:sha256:${'0'.repeat(64)}`;

function child(n: SNode | undefined, key: string): SNode | undefined {
  return n?.kind === 'map' ? n.entries.filter((e) => e.key === key).pop()?.value : undefined;
}

export interface UploadNeeded {
  key: string;
  value: string;
  expect: string;
  line?: number;
  column?: number;
  attached: boolean;
}

export interface Validation {
  problems: Array<Problem & { text: string }>;
  uploads: UploadNeeded[];
  /** The document to send (POST /api/endpoints or …/deployments) when there is nothing left to fix or attach. */
  document?: Record<string, unknown>;
  name?: string;
  endpoint_name?: string;
}

/**
 * Validates YAML text as the CLI does (same tree, same rules, same `file:line:column: key: message`), in
 * the control plane's 'uploads' mode: it opens no path the text names. Local paths at the keys the CLI
 * uploads are listed for the browser to attach; `uploads` maps those keys to the references it made.
 */
export function validateYaml(kind: 'endpoint' | 'deployment', text: string, file: string, uploads: Record<string, string>, overrides: readonly string[] = []): Validation {
  const problems: Problem[] = [];
  const parsed = parseYamlTree(text, file);
  problems.push(...parsed.problems);
  const needed: UploadNeeded[] = [];
  if (parsed.trusted) {
    const sets: string[] = [];
    for (const k of UPLOAD_KEYS[kind]) {
      let n: SNode | undefined = parsed.root;
      for (const p of k.path) n = child(n, p);
      if (n?.kind !== 'scalar' || typeof n.value !== 'string') continue;
      const value = n.value;
      if (/^azureml:/i.test(value) || /^upload:/i.test(value) || /^[a-z][a-z0-9+.-]*:\/\//i.test(value)) continue;
      const key = k.path.join('.');
      const ref = uploads[key];
      const attached = typeof ref === 'string' && /^upload:sha256:[0-9a-f]{64}$/.test(ref);
      needed.push({ key, value, expect: k.expect, ...(n.pos ? { line: n.pos.line, column: n.pos.column } : {}), attached });
      sets.push(`${key}=${attached ? ref : PLACEHOLDER}`);
    }
    const tree = applyOverridesToTree(parsed.root, [...overrides, ...sets], problems);
    // The kind is decided from the document before validation, as spec/load.ts does (contract §1.1).
    const compute = child(tree, 'compute');
    const type = child(tree, 'type');
    const k8s = kind === 'endpoint' ? compute !== undefined && !(compute.kind === 'scalar' && compute.value === null) : type?.kind === 'scalar' && /^kubernetes$/i.test(String(type.value));
    const cx: Cx = {
      file,
      paths: 'uploads',
      kind: (k8s ? 'kubernetes' : 'managed') as Kind,
      what: kind,
      problems,
    };
    let document: Record<string, unknown> | undefined;
    let name: string | undefined;
    let endpointName: string | undefined;
    try {
      if (kind === 'endpoint') {
        const spec = endpointType.decode(tree, '', cx);
        if (spec !== undefined && problems.length === 0) {
          document = dumpEndpoint(spec);
          name = spec.name;
        }
      } else {
        const spec = deploymentType.decode(tree, '', cx);
        if (spec !== undefined && problems.length === 0) {
          document = dumpDeployment(spec);
          name = spec.name;
          endpointName = spec.endpointName;
        }
      }
    } catch (e) {
      if (!(e instanceof InfergateError)) throw e;
      // Thrown with its location in front (`file:line:column: key: `): taken apart into a problem.
      const m = /^(.*?):(\d+):(\d+): (?:([\w.$[\]-]+): )?([\s\S]*)$/.exec(e.message);
      problems.push(m ? { file: m[1], line: Number(m[2]), column: Number(m[3]), path: m[4] ?? '', message: m[5] } : { file, path: '', message: e.message });
    }
    problems.sort((a, b) => (a.line ?? 0) - (b.line ?? 0) || (a.column ?? 0) - (b.column ?? 0));
    const ready = problems.length === 0 && needed.every((u) => u.attached);
    return {
      problems: problems.map((p) => ({ ...p, text: formatProblem(p) })),
      uploads: needed,
      ...(ready && document ? { document } : {}),
      ...(name !== undefined ? { name } : {}),
      ...(endpointName !== undefined ? { endpoint_name: endpointName } : {}),
    };
  }
  return { problems: problems.map((p) => ({ ...p, text: formatProblem(p) })), uploads: needed };
}

// ---- the routes -----------------------------------------------------------------------------------------

const CONTENT_TYPES: Record<string, string> = {
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.map': 'application/json',
};

// What the studio's pages may load: only their own files; styles inline because uPlot sizes its canvas so.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export async function registerStudio(app: FastifyInstance, o: StudioOptions): Promise<void> {
  const now = o.now ?? Date.now;
  const dir = o.studioDir ?? DEFAULT_DIR;
  const codes = new Map<string, { tokenId: string; expiresAt: number }>();
  const sessions = new Map<string, Session>();
  const secure = o.https !== undefined && o.https !== false;

  acceptSessions(app, (req): Verdict | undefined => {
    const sid = cookieOf(req, SESSION_COOKIE);
    if (sid === undefined || sid === '') return undefined;
    const t = now();
    const s = sessions.get(sid);
    const token = s && s.expiresAt > t ? o.store.getToken(s.tokenId) : undefined;
    if (!s || !tokenLive(token, t)) {
      sessions.delete(sid);
      return { ok: false, error: errorOf('StudioSessionInvalid') };
    }
    return { ok: true, token };
  });

  // Sampling starts with the studio's first use, not with the server: a control plane driven only by the
  // CLI and scripts keeps no timer and no rows. From then on it runs whether or not a page is open, so a
  // chart opened during a rollout already shows the hour before it (at most about 430 kB a deployment).
  const charts = new StudioCharts(o.meters ?? allDeploymentMeters, o.sampleMs ?? 1000, now);
  /** Each open metrics stream's ending: no more samples or keep-alives, then the end of the response. */
  const streams = new Set<() => void>();
  app.addHook('preClose', async () => {
    charts.stop();
    for (const end of streams) end();
  });

  const READ = { role: 'reader' } as const;
  const hide = { hide: true } as const;

  app.post('/studio/v1/sign-in-codes', { config: READ, schema: { ...hide } }, async (req, reply) => {
    // Only a token may ask: a session that could would renew itself past its 8 hours, and a script
    // injected into the page could carry a sign-in for another browser away.
    if (req.headers.authorization === undefined) throw errorOf('StudioCodeNeedsToken');
    charts.start();
    const t = now();
    bound(codes, MAX_CODES, t);
    const code = randomBytes(24).toString('base64url');
    codes.set(code, { tokenId: req.principal!.id, expiresAt: t + CODE_TTL_MS });
    return reply.status(201).send({ code, path: `/studio/login?code=${code}`, expires_in_seconds: CODE_TTL_MS / 1000 });
  });

  app.get('/studio/login', { config: { role: 'public' }, schema: { ...hide, querystring: { type: 'object', properties: { code: { type: 'string', maxLength: 128 } } } } }, async (req, reply) => {
    // A HEAD (a link preview, a proxy checking the URL) must not use up the one exchange.
    if (req.method === 'HEAD') return reply.header('cache-control', 'no-store').type('text/html; charset=utf-8').send('');
    const code = (req.query as { code?: string }).code ?? '';
    const entry = codes.get(code);
    codes.delete(code); // once, whatever happens next
    const t = now();
    const token = entry && entry.expiresAt > t ? o.store.getToken(entry.tokenId) : undefined;
    reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer').header('content-security-policy', CSP);
    if (!entry || !tokenLive(token, t)) {
      const e = errorOf('StudioCodeInvalid', { seconds: CODE_TTL_MS / 1000 });
      return reply.status(e.status).type('text/html; charset=utf-8').send(page('infergate studio', `<h1>Not signed in</h1><p>${escapeHtml(e.message)}</p>`));
    }
    bound(sessions, MAX_SESSIONS, t);
    const sid = randomBytes(32).toString('base64url');
    const expiresAt = Math.min(t + SESSION_TTL_MS, token.expiresAt !== undefined ? Date.parse(token.expiresAt) : Infinity);
    sessions.set(sid, { tokenId: token.id, expiresAt });
    req.principal = { id: token.id, role: token.role }; // for the access log
    const maxAge = Math.max(1, Math.floor((expiresAt - t) / 1000));
    reply.header('set-cookie', `${SESSION_COOKIE}=${sid}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${maxAge}${secure ? '; Secure' : ''}`);
    // A page that moves on by itself, not a redirect: a browser opened from a terminal arrives cross-site,
    // and a SameSite=Strict cookie goes along only with a navigation that starts on this site.
    return reply
      .type('text/html; charset=utf-8')
      .send(page('infergate studio', `<meta http-equiv="refresh" content="0;url=/"><p>Signed in as ${escapeHtml(token.role)}. <a href="/">Open the studio</a>.</p>`));
  });

  app.post('/studio/v1/sign-out', { config: READ, schema: { ...hide } }, async (req, reply) => {
    const sid = cookieOf(req, SESSION_COOKIE);
    if (sid !== undefined) sessions.delete(sid);
    return reply.header('set-cookie', `${SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0${secure ? '; Secure' : ''}`).send({ signed_out: true });
  });

  app.post('/studio/v1/validate', {
    config: READ,
    schema: {
      ...hide,
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['kind', 'yaml'],
        properties: {
          kind: { type: 'string', enum: ['endpoint', 'deployment'] },
          yaml: { type: 'string', maxLength: 4 * 1024 * 1024 },
          file: { type: 'string', maxLength: 256 },
          uploads: { type: 'object', additionalProperties: { type: 'string', maxLength: 100 } },
          overrides: { type: 'array', maxItems: 16, items: { type: 'string', maxLength: 300 } },
        },
      },
    },
  }, async (req) => {
    const b = req.body as { kind: 'endpoint' | 'deployment'; yaml: string; file?: string; uploads?: Record<string, string>; overrides?: string[] };
    return validateYaml(b.kind, b.yaml, b.file ?? `${b.kind}.yml`, b.uploads ?? {}, b.overrides ?? []);
  });

  app.post('/studio/v1/endpoints/:name/test', {
    // Sending a request needs the endpoint's key, which readers may not have.
    config: { role: 'contributor', credential: true },
    schema: {
      ...hide,
      params: { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] },
      body: {
        type: 'object',
        additionalProperties: false,
        required: ['body'],
        properties: { body: { type: 'string', maxLength: 8 * 1024 * 1024 }, deployment: { type: 'string', maxLength: 64 }, content_type: { type: 'string', maxLength: 128 } },
      },
    },
  }, async (req) => {
    const { name } = req.params as { name: string };
    const b = req.body as { body: string; deployment?: string; content_type?: string };
    const e = o.control.endpoint(name);
    const shown = await o.showEndpoint(e);
    const creds = o.control.credentials(name) as { primaryKey?: string; accessToken?: string };
    const secret = creds.primaryKey ?? creds.accessToken ?? '';
    const headers: Record<string, string> = { authorization: `Bearer ${secret}`, 'content-type': b.content_type ?? 'application/json' };
    if (b.deployment) headers['azureml-model-deployment'] = b.deployment;
    const started = performance.now();
    let res: Response;
    let text: string;
    let truncated = false;
    try {
      res = await trustedFetch(String(shown.scoring_uri), { method: 'POST', headers, body: b.body });
      // A deployment may answer with any size: the page shows at most this much, and the server holds no more.
      const chunks: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of (res.body ?? []) as AsyncIterable<Uint8Array>) {
        const room = TEST_ANSWER_MAX - size;
        chunks.push(chunk.byteLength > room ? chunk.subarray(0, room) : chunk);
        size += Math.min(chunk.byteLength, room);
        if (chunk.byteLength > room) {
          truncated = true;
          break; // leaving the loop cancels the rest of the answer
        }
      }
      text = Buffer.concat(chunks).toString('utf8');
    } catch (err) {
      throw errorOf('ServerUnreachable', { url: String(shown.scoring_uri), reason: (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).message });
    }
    const ms = Math.round((performance.now() - started) * 10) / 10;
    const outHeaders: Record<string, string> = {};
    res.headers.forEach((v, k) => {
      outHeaders[k] = v;
    });
    return { status: res.status, headers: outHeaders, body: text, ms, ...(truncated ? { truncated_at_bytes: TEST_ANSWER_MAX } : {}) };
  });

  const meters = o.meters ?? allDeploymentMeters;
  app.get('/studio/v1/summary', { config: READ, schema: { ...hide } }, async () => {
    charts.start();
    const ready: Record<string, Record<string, number>> = {};
    for (const m of meters()) if (m.live) (ready[m.endpoint] ??= {})[m.deployment] = m.readyInstances;
    return { requests_per_minute: charts.perMinute(), ready_instances: ready };
  });

  app.get('/studio/v1/metrics/stream', {
    config: READ,
    schema: { ...hide, querystring: { type: 'object', required: ['endpoint'], properties: { endpoint: { type: 'string', maxLength: 64 }, range: { type: 'integer', minimum: 10, maximum: 3600 } } } },
  }, async (req, reply) => {
    const q = req.query as { endpoint: string; range?: number };
    const e = o.control.endpoint(q.endpoint); // 404 for a name that does not exist
    const endpoint = e.spec.name;
    const range = (q.range ?? 900) * 1000;
    charts.start();
    const stream = new Readable({ read() {} });
    let limit = Infinity;
    const write = (text: string) => {
      if (stream.destroyed || !streams.has(end)) return;
      // A browser that stops reading (a hidden tab) gets no more than this behind: then it is cut off
      // and reconnects (EventSource does) with a fresh snapshot, rather than the server buffering.
      if (stream.readableLength > limit) stream.destroy();
      else stream.push(text);
    };
    const send = (event: string, data: unknown) => write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
    streams.add(end);
    send('snapshot', { columns: ['time', ...CHART_COLUMNS], interval_ms: o.sampleMs ?? 1000, deployments: charts.history(endpoint, now() - range) });
    // An hour of several deployments is megabytes: the allowance starts after it, or a snapshot that
    // takes over a second to send would cut its own stream, again at each reconnection.
    limit = stream.readableLength + STREAM_BEHIND_MAX;
    const off = charts.subscribe((ep, deployment, row) => {
      if (ep === endpoint) send('sample', { deployment, row });
    });
    // An endpoint without live deployments sends no samples: a comment line now and then keeps a proxy
    // from closing the idle stream, and lets a write find a browser that went away without a goodbye.
    const keepAlive = setInterval(() => write(': keep-alive\n\n'), KEEP_ALIVE_MS).unref();
    function end(): void {
      if (!streams.delete(end)) return;
      clearInterval(keepAlive);
      off();
      if (!stream.destroyed) stream.push(null);
    }
    stream.once('close', end);
    req.raw.socket.setTimeout(0);
    req.raw.once('close', () => stream.destroy());
    return reply.type('text/event-stream; charset=utf-8').header('cache-control', 'no-store').header('x-accel-buffering', 'no').send(stream);
  });

  // ---- the built pages
  const files = new Map<string, { body: Buffer; type: string }>();
  const load = (): void => {
    if (files.size > 0 || !existsSync(join(dir, 'index.html'))) return;
    files.set('index.html', { body: readFileSync(join(dir, 'index.html')), type: 'text/html; charset=utf-8' });
    const assets = join(dir, 'assets');
    if (existsSync(assets)) {
      for (const name of readdirSync(assets)) {
        const ext = name.slice(name.lastIndexOf('.'));
        if (CONTENT_TYPES[ext]) files.set(name, { body: readFileSync(join(assets, name)), type: CONTENT_TYPES[ext] });
      }
    }
  };
  const index = async (_req: FastifyRequest, reply: FastifyReply) => {
    load();
    const f = files.get('index.html');
    if (!f) throw errorOf('StudioNotBuilt', { dir });
    return reply.type(f.type).header('cache-control', 'no-store').header('content-security-policy', CSP).header('x-content-type-options', 'nosniff').header('referrer-policy', 'no-referrer').send(f.body);
  };
  // The page itself holds no data (it asks the API, which needs the session): public like /docs.
  app.get('/', { config: { role: 'public' }, schema: hide }, index);
  app.get('/studio', { config: { role: 'public' }, schema: hide }, index);
  app.get('/studio/', { config: { role: 'public' }, schema: hide }, index);
  app.get('/studio/assets/:file', { config: { role: 'public' }, schema: { ...hide, params: { type: 'object', properties: { file: { type: 'string' } }, required: ['file'] } } }, async (req, reply) => {
    load();
    const { file } = req.params as { file: string };
    const f = files.get(file);
    if (!f) throw errorOf('RouteNotFound', { method: req.method, url: req.url });
    // Names carry their content hash (scripts/build-studio.mjs): cached for good.
    return reply.type(f.type).header('cache-control', 'public, max-age=31536000, immutable').header('x-content-type-options', 'nosniff').send(f.body);
  });
}
