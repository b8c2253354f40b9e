// JavaScript/TypeScript scoring modules, run inside the instance host process (DESIGN.md "The instance
// protocol": no second process, no second hop). The module is the JavaScript counterpart of score.py:
//
//   export async function init() { ... load the model from process.env.AZUREML_MODEL_DIR ... }
//   export function run(rawData, requestHeaders) { return predictions; }   // may be async
//
// and behaves as azmlinfsrv does (contract §5.3-§5.7; docs/scoring-scripts.md has examples):
// - Routes: GET / -> "Healthy"; GET|POST|OPTIONS /score -> run(); GET /swagger.json?version=2|3|3.1;
//   other paths 404, other methods on /score 405, with azmlinfsrv's {"message": ...} bodies.
// - Input, chosen by what the module exports (the counterparts of score.py's decorators):
//   * nothing special (undecorated run()): run() gets the raw body as a UTF-8 string (not parsed); a body
//     that is not UTF-8 gets 400; GET gets the query parameters as a JSON string; OPTIONS answers 200.
//   * `export const inputSchema = { ...JSON Schema... }` (@input_schema): POST needs Content-Type
//     application/json (else 415) and a JSON body that satisfies the schema (else 400 with the reason,
//     json-schema.ts); GET takes the query parameters as an object; run() gets the parsed value. The
//     schema (and `export const outputSchema`) are published as ServiceInput / ServiceOutput.
//   * `export const rawHttp = true` (@rawhttp): run() gets the request itself as a WHATWG `Request`
//     (`await request.formData()`, `request.headers.get(...)`, `new URL(request.url).searchParams`,
//     `await request.arrayBuffer()`), for GET, POST and OPTIONS.
//   The second argument, lower-case request headers as an object, is built only if run() declares a
//   second parameter (as azmlinfsrv passes request_headers only to a run() that names it).
// - Its value is sent as Python's json.dumps would write it (py-json.ts), 200, application/json.
// - A WHATWG `Response`, or a value shaped like `{ status | statusCode: number, body, headers? }`, is sent
//   as-is instead (the counterpart of returning an AMLResponse): a string body as text/plain, bytes as
//   application/octet-stream, anything else as JSON; headers you give win; status >= 500 sets
//   x-ms-run-function-failed: True.
// - run() throwing (or its promise rejecting) gives 500 {"message": "An unexpected error occurred in
//   scoring script. Check the logs for more info."}, x-ms-run-function-failed: True, and the stack in the
//   console log as "Encountered Exception: ...".
// SCORING_TIMEOUT_MS is not enforced here: synchronous JavaScript cannot be interrupted in-process.

import { isUtf8 } from 'node:buffer';
import { extname } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { inspect } from 'node:util';
import { decodeRequest, encodeResponseFrame, HeaderBlock, type HeaderList, type RequestFrame } from '../protocol/frame.js';
import { validateJson, type JsonSchema } from './json-schema.js';
import { log } from './log.js';
import { pythonJsonDumps } from './py-json.js';
import { InitFailure, INTERNAL_ERROR_MESSAGE, messageBody, RUN_FAILED_MESSAGE, type Peer, type Scorer } from './scorer.js';
import { Swaggers, UNDECLARED_SCHEMA } from './swagger.js';

/** What a scoring module exports (types for authors of .ts scoring modules). */
export type InitFunction = () => unknown;
export type RunFunction = (rawData: string, requestHeaders: Record<string, string>) => unknown;
/** run() of a module that exports `rawHttp = true`. */
export type RawRunFunction = (request: Request, requestHeaders: Record<string, string>) => unknown;

/** A raw answer from run(), sent as-is (see the file comment). */
export interface ScoringResponse {
  status?: number;
  statusCode?: number;
  headers?: Record<string, string>;
  body: unknown;
}

/** A loaded scoring module: run() and the exports that say how to call it. */
export interface ScoringModule {
  run: RunFn;
  /** `export const rawHttp = true`: run() gets a WHATWG Request. */
  rawHttp: boolean;
  /** `export const inputSchema`: run() gets the parsed, validated JSON input. */
  inputSchema?: JsonSchema;
  /** `export const outputSchema`: only published in the swagger document. */
  outputSchema?: JsonSchema;
}

type Header = readonly [string, string];
const H_JSON: Header = ['content-type', 'application/json'];
const H_TEXT: Header = ['content-type', 'text/plain; charset=utf-8'];
const H_HTML: Header = ['content-type', 'text/html; charset=utf-8'];
const H_ALLOW: Header = ['allow', 'GET, HEAD, OPTIONS'];
const H_FAILED_FALSE: Header = ['x-ms-run-function-failed', 'False'];
/** The fixed headers of every JSON answer of run(), encoded once. */
const JSON_ANSWER = new HeaderBlock([H_JSON, H_FAILED_FALSE]);
const H_FAILED_TRUE: Header = ['x-ms-run-function-failed', 'True'];
const ONLY_JSON: HeaderList = [H_JSON];
const EMPTY = Buffer.alloc(0);
const HEALTHY = Buffer.from('Healthy');
const RUN_FAILED_BODY = messageBody(RUN_FAILED_MESSAGE);
const INTERNAL_ERROR_BODY = messageBody(INTERNAL_ERROR_MESSAGE);
// werkzeug's descriptions, as azmlinfsrv answers Flask's own 404 and 405 (contract §5.3, §5.6).
const NOT_FOUND_BODY = messageBody(
  'The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.',
);
const METHOD_NOT_ALLOWED_BODY = messageBody('The method is not allowed for the requested URL.');
const SCORE_METHOD_NOT_ALLOWED_BODY = messageBody('Method not allowed'); // HEAD /score: azmlinfsrv's own branch
const NOT_JSON_BODY = messageBody('Expects Content-Type to be application/json');
const EMPTY_INPUT_BODY = messageBody('POST body is empty. Expecting a JSON dictionary.');
const MALFORMED_BODY = messageBody('Malformed request frame.');
const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);
export const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts']);
/** Request headers a WHATWG Request does not need: they describe the HTTP hop, not the request. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'upgrade']);

type RunFn = (input: unknown, requestHeaders?: Record<string, string>) => unknown;

// This module's path without extension: matches src/runtime/js-scorer.ts and dist/runtime/js-scorer.js.
const SELF = fileURLToPath(import.meta.url).replace(/\.[cm]?[jt]s$/, '');

/**
 * An error's stack for the console log, cut where the host's own frames begin (the user wants their
 * code, not the socket plumbing that called it; the Python worker drops its own frame the same way).
 */
export function formatError(err: unknown): string {
  if (!(err instanceof Error) || typeof err.stack !== 'string') return inspect(err);
  const lines = err.stack.split('\n');
  const cut = lines.findIndex((l, i) => i > 0 && l.includes(SELF));
  return (cut > 0 ? lines.slice(0, cut) : lines).join('\n');
}

/**
 * Imports the module, checks that it exports init() and run() (named exports, or properties of the default
 * export / module.exports) and how run() wants its input, and calls init() once. Failures carry protocol/messages.ts's
 * init-failed codes and the script's own error text and stack.
 */
export async function loadScoringModule(file: string): Promise<ScoringModule> {
  const url = pathToFileURL(file).href;
  let mod: Record<string, unknown>;
  try {
    if (TS_EXTENSIONS.has(extname(file).toLowerCase())) {
      // Loaded only when needed: registering tsx's loader costs startup time a .js module does not need.
      const { tsImport } = await import('tsx/esm/api');
      mod = (await tsImport(url, import.meta.url)) as Record<string, unknown>;
    } else {
      mod = (await import(url)) as Record<string, unknown>;
    }
  } catch (err) {
    const text = formatError(err);
    log('E', 'azmlinfsrv.user_script', `Failed to import user script at ${file}\n${text}`);
    throw new InitFailure('UserScriptImportError', `Failed to import user script at ${file}: ${text}`);
  }
  const init = pick(mod, 'init');
  const run = pick(mod, 'run');
  for (const [name, fn] of [['init', init], ['run', run]] as const) {
    if (fn === undefined) {
      throw new InitFailure('UserScriptFunctionNotFound', `User script at ${file} does not have a ${name}() function defined.`);
    }
  }
  const rawHttp = pickValue(mod, 'rawHttp') === true;
  const inputSchema = pickValue(mod, 'inputSchema');
  const outputSchema = pickValue(mod, 'outputSchema');
  for (const [name, v] of [['inputSchema', inputSchema], ['outputSchema', outputSchema]] as const) {
    if (v !== undefined && (v === null || typeof v !== 'object' || Array.isArray(v))) {
      throw new InitFailure('UserScriptImportError', `User script at ${file} exports ${name}, which must be a JSON Schema object.`);
    }
  }
  if (rawHttp && inputSchema !== undefined) {
    // azmlinfsrv: "run() cannot be decorated with both @rawhttp and @input_schema".
    throw new InitFailure('UserScriptImportError', `User script at ${file} exports both rawHttp and inputSchema: choose one.`);
  }
  if (rawHttp) log('I', 'azmlinfsrv.user_script', 'rawHttp is exported. Server will invoke run() with the request (a WHATWG Request).');
  else if (inputSchema !== undefined) log('I', 'azmlinfsrv.user_script', 'inputSchema is exported. Server will invoke run() with the validated JSON input.');
  else log('I', 'azmlinfsrv.user_script', 'run() is not decorated. Server will invoke it with the input in JSON string.');

  log('I', 'azmlinfsrv.user_script', "Invoking user's init function");
  try {
    await (init as () => unknown)();
  } catch (err) {
    const text = formatError(err);
    log('E', 'azmlinfsrv.user_script', "User's init function failed");
    log('E', 'azmlinfsrv.user_script', `Encountered Exception: ${text}`);
    throw new InitFailure('UserScriptInitFailed', `User's init function failed: ${text}`);
  }
  log('I', 'azmlinfsrv.user_script', "Users's init has completed successfully"); // sic: azmlinfsrv's wording
  return {
    run: run as RunFn,
    rawHttp,
    ...(inputSchema !== undefined ? { inputSchema: inputSchema as JsonSchema } : {}),
    ...(outputSchema !== undefined ? { outputSchema: outputSchema as JsonSchema } : {}),
  };
}

/** A named export, or a property of the default export (CommonJS module.exports, `export default {...}`). */
function pick(mod: Record<string, unknown>, name: string): ((...args: unknown[]) => unknown) | undefined {
  const direct = mod[name];
  if (typeof direct === 'function') return direct as (...args: unknown[]) => unknown;
  const def = mod.default;
  if (def !== null && (typeof def === 'object' || typeof def === 'function')) {
    const fn = (def as Record<string, unknown>)[name];
    // Bound to the default export so `this.model` inside an object-literal module works.
    if (typeof fn === 'function') return (fn as (...args: unknown[]) => unknown).bind(def);
  }
  return undefined;
}

/** A named export's value, or the default export's property of that name. */
function pickValue(mod: Record<string, unknown>, name: string): unknown {
  if (mod[name] !== undefined) return mod[name];
  const def = mod.default;
  if (def !== null && (typeof def === 'object' || typeof def === 'function')) return (def as Record<string, unknown>)[name];
  return undefined;
}

const enum Mode {
  Json,
  Schema,
  Raw,
}

export class JsScorer implements Scorer {
  private pending = 0;
  private readonly wantsHeaders: boolean;
  private readonly run: RunFn;
  private readonly mode: Mode;
  private readonly inputSchema: JsonSchema | undefined;
  private readonly swaggers: Swaggers;
  /** Headers every answer carries: x-ms-server-version when HTTP_X_MS_SERVER_VERSION is set (contract §5.5). */
  private readonly baseIds: Header[] | null;

  /** @param appRoot where the module's own swagger files are looked for (contract §5.7) */
  constructor(mod: ScoringModule, appRoot: string) {
    this.run = mod.run;
    this.wantsHeaders = mod.run.length >= 2;
    this.mode = mod.rawHttp ? Mode.Raw : mod.inputSchema !== undefined ? Mode.Schema : Mode.Json;
    this.inputSchema = mod.inputSchema;
    this.swaggers = Swaggers.build(appRoot, mod.inputSchema ?? UNDECLARED_SCHEMA, mod.outputSchema ?? UNDECLARED_SCHEMA);
    const serverVersion = process.env.HTTP_X_MS_SERVER_VERSION;
    this.baseIds = serverVersion ? [['x-ms-server-version', serverVersion]] : null;
  }

  get inflight(): number {
    return this.pending;
  }

  async stop(): Promise<void> {}

  /** run() starts as its frame is read (host.ts): by the time a CANCEL comes, there is nothing to drop. */
  cancel(): void {}

  handle(peer: Peer, frame: Buffer, id: number): void {
    let req: RequestFrame;
    try {
      req = decodeRequest(frame);
    } catch {
      peer.respond(id, 400, ONLY_JSON, MALFORMED_BODY);
      return;
    }
    const headers = req.headers;

    // Correlation ids (contract §5.5): echoed, at most 100 characters.
    let requestId: string | undefined;
    let msRequestId: string | undefined;
    let clientRequestId: string | undefined;
    let traceId: string | undefined;
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i][0];
      const c = name.charCodeAt(0);
      if (c === 0x78 /* x */) {
        if (name === 'x-request-id') requestId = headers[i][1];
        else if (name === 'x-ms-request-id') msRequestId = headers[i][1];
        else if (name === 'x-ms-client-request-id') clientRequestId = headers[i][1];
      } else if (c === 0x74 /* t */ && name === 'traceid') {
        traceId = headers[i][1];
      }
    }
    let ids: Header[] | null = this.baseIds;
    if (requestId !== undefined || msRequestId !== undefined || clientRequestId !== undefined || traceId !== undefined) {
      if (requestId !== undefined && requestId.length > 100) {
        peer.respond(id, 431, ONLY_JSON, messageBody('x-request-id must not exceed 100 characters'));
        return;
      }
      if ((msRequestId?.length ?? 0) > 100 || (clientRequestId?.length ?? 0) > 100) {
        peer.respond(id, 431, ONLY_JSON, messageBody('x-ms-request-id and x-ms-client-request-id must not exceed 100 characters'));
        return;
      }
      ids = this.baseIds === null ? [] : [...this.baseIds];
      if (requestId !== undefined) ids.push(['x-request-id', requestId]);
      const legacy = msRequestId || clientRequestId || requestId;
      if (legacy) ids.push(['x-ms-request-id', legacy]);
      if (clientRequestId !== undefined) ids.push(['x-ms-client-request-id', clientRequestId]);
      if (traceId !== undefined) ids.push(['traceid', traceId]);
    }

    const url = req.url;
    const method = req.method;
    if (url === '/score' || url.startsWith('/score?')) {
      if (method === 'POST' || method === 'GET' || method === 'OPTIONS') this.score(peer, id, req, ids);
      else peer.respond(id, 405, withIds([H_JSON], ids), method === 'HEAD' ? SCORE_METHOD_NOT_ALLOWED_BODY : METHOD_NOT_ALLOWED_BODY);
      return;
    }
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    if (path === '/' || path === '/swagger.json') {
      if (method === 'OPTIONS') {
        peer.respond(id, 200, withIds([H_HTML, H_ALLOW], ids), EMPTY);
      } else if (method !== 'GET' && method !== 'HEAD') {
        peer.respond(id, 405, withIds([H_JSON], ids), METHOD_NOT_ALLOWED_BODY);
      } else if (path === '/') {
        peer.respond(id, 200, withIds([H_TEXT], ids), HEALTHY); // the liveness route (contract §5.3)
      } else {
        const version = new URLSearchParams(q < 0 ? '' : url.slice(q + 1)).get('version') ?? '2';
        const answer = this.swaggers.answer(version);
        peer.respond(id, answer.status, withIds([H_JSON], ids), answer.body);
      }
      return;
    }
    peer.respond(id, 404, withIds([H_JSON], ids), NOT_FOUND_BODY);
  }

  /** /score: run()'s input for the module's mode (contract §5.4), the call, the answer. */
  private score(peer: Peer, id: number, req: RequestFrame, ids: Header[] | null): void {
    const method = req.method;
    let input: unknown;
    if (this.mode === Mode.Raw) {
      input = toWebRequest(req);
    } else if (method === 'OPTIONS') {
      peer.respond(id, 200, withIds([H_HTML, H_FAILED_FALSE], ids), EMPTY);
      return;
    } else if (this.mode === Mode.Json) {
      if (method === 'POST') {
        const body = req.body;
        if (!isUtf8(body)) {
          peer.respond(id, 400, withIds([H_JSON], ids), messageBody(`Input cannot be decoded as UTF-8: ${describeBadUtf8(body)}`));
          return;
        }
        input = body.toString('utf8');
      } else {
        const q = req.url.indexOf('?');
        input = queryToJson(q < 0 ? '' : req.url.slice(q + 1));
      }
    } else {
      const parsed = this.schemaInput(req);
      if (!parsed.ok) {
        peer.respond(id, parsed.status, withIds([H_JSON], ids), parsed.body);
        return;
      }
      input = parsed.value;
    }

    const run = this.run; // called as a plain function: the user's stack shows "at run", not "at JsScorer.run"
    const t0 = performance.now();
    let result: unknown;
    try {
      result = this.wantsHeaders ? run(input, Object.fromEntries(req.headers)) : run(input);
    } catch (err) {
      this.failed(peer, id, err, t0, ids);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof (result as PromiseLike<unknown>).then === 'function') {
      this.pending++;
      (result as PromiseLike<unknown>).then(
        (value) => {
          this.pending--;
          this.answer(peer, id, value, t0, ids);
        },
        (err: unknown) => {
          this.pending--;
          this.failed(peer, id, err, t0, ids);
        },
      );
    } else {
      this.answer(peer, id, result, t0, ids);
    }
  }

  /** The parsed, validated input of an `inputSchema` module, or the body of the 400/415 answer. */
  private schemaInput(req: RequestFrame): { ok: true; value: unknown } | { ok: false; status: number; body: Buffer } {
    let value: unknown;
    if (req.method === 'POST') {
      let contentType = '';
      for (const [k, v] of req.headers) if (k === 'content-type') contentType = v;
      const mime = contentType.split(';', 1)[0].trim().toLowerCase();
      if (!(mime === 'application/json' || (mime.startsWith('application/') && mime.endsWith('+json')))) {
        return { ok: false, status: 415, body: NOT_JSON_BODY };
      }
      const text = req.body.toString('utf8');
      if (text.trim() === '') return { ok: false, status: 400, body: EMPTY_INPUT_BODY };
      try {
        value = JSON.parse(text);
      } catch (err) {
        return { ok: false, status: 400, body: messageBody(`POST body could not be decoded as JSON: ${(err as Error).message}`) };
      }
    } else {
      const q = req.url.indexOf('?');
      value = queryParams(q < 0 ? '' : req.url.slice(q + 1));
    }
    const problem = validateJson(this.inputSchema!, value);
    return problem === null ? { ok: true, value } : { ok: false, status: 400, body: messageBody(`Invalid input: ${problem}`) };
  }

  private answer(peer: Peer, id: number, value: unknown, t0: number, ids: Header[] | null): void {
    if (peer.closed) return;
    const execMs = (performance.now() - t0).toFixed(3);
    if (value instanceof Response) {
      this.pending++;
      fromWebResponse(value).then(
        (r) => {
          this.pending--;
          this.answerRaw(peer, id, r, execMs, ids);
        },
        (err: unknown) => {
          this.pending--;
          log('E', 'azmlinfsrv', `The response returned by run() is not valid: ${formatError(err)}`);
          peer.respond(id, 500, withIds([H_JSON], ids), INTERNAL_ERROR_BODY);
        },
      );
      return;
    }
    if (isScoringResponse(value)) {
      this.answerRaw(peer, id, value, execMs, ids);
      return;
    }
    let text: string;
    try {
      text = pythonJsonDumps(value);
    } catch (err) {
      log('E', 'azmlinfsrv', `The value returned by run() cannot be serialized as JSON: ${formatError(err)}`);
      peer.respond(id, 500, withIds([H_JSON], ids), INTERNAL_ERROR_BODY);
      return;
    }
    // pythonJsonDumps output is pure ASCII (ensure_ascii), so latin1 is an exact and cheap encoding; the
    // answer's fixed headers are encoded once (JSON_ANSWER).
    peer.sendFrame(encodeResponseFrame(id, 200, JSON_ANSWER, 'x-ms-run-fn-exec-ms', execMs, ids, text));
  }

  private answerRaw(peer: Peer, id: number, r: ScoringResponse, execMs: string, ids: Header[] | null): void {
    const status = typeof r.status === 'number' ? r.status : (r.statusCode as number);
    let body: Buffer;
    let contentType: string | null;
    const b = r.body;
    try {
      if (!Number.isInteger(status) || status < 100 || status > 999) throw new RangeError(`status ${status} is not an HTTP status code`);
      if (typeof b === 'string') {
        body = Buffer.from(b, 'utf8');
        contentType = 'text/plain; charset=utf-8';
      } else if (b instanceof Uint8Array) {
        body = Buffer.from(b.buffer, b.byteOffset, b.byteLength);
        contentType = 'application/octet-stream';
      } else if (b === undefined || b === null) {
        body = EMPTY;
        contentType = null;
      } else {
        body = Buffer.from(pythonJsonDumps(b), 'latin1');
        contentType = 'application/json';
      }
      const headers: Header[] = [];
      if (r.headers !== undefined && r.headers !== null) {
        for (const [k, v] of Object.entries(r.headers)) {
          const name = k.toLowerCase();
          if (HOP_HEADERS.has(name)) continue; // the HTTP edge frames the body itself
          const value = String(v);
          // The frame format's limits (u8 name length, u16 value length): refuse rather than corrupt a frame.
          if (name.length === 0 || Buffer.byteLength(name, 'latin1') > 255 || Buffer.byteLength(value) > 0xffff) {
            throw new RangeError(`response header '${k}' is empty or too long`);
          }
          if (name === 'content-type') contentType = null;
          headers.push([name, value]);
        }
      }
      if (contentType !== null) headers.push(['content-type', contentType]);
      headers.push(status >= 500 ? H_FAILED_TRUE : H_FAILED_FALSE, ['x-ms-run-fn-exec-ms', execMs]);
      peer.respond(id, status, withIds(headers, ids), body);
    } catch (err) {
      log('E', 'azmlinfsrv', `The response returned by run() is not valid: ${formatError(err)}`);
      peer.respond(id, 500, withIds([H_JSON], ids), INTERNAL_ERROR_BODY);
    }
  }

  private failed(peer: Peer, id: number, err: unknown, t0: number, ids: Header[] | null): void {
    const execMs = (performance.now() - t0).toFixed(3);
    log('E', 'azmlinfsrv', `Encountered Exception: ${formatError(err)}`);
    peer.respond(id, 500, withIds([H_JSON, H_FAILED_TRUE, ['x-ms-run-fn-exec-ms', execMs]], ids), RUN_FAILED_BODY);
  }
}

function withIds(headers: Header[], ids: Header[] | null): Header[] {
  if (ids !== null) for (let i = 0; i < ids.length; i++) headers.push(ids[i]);
  return headers;
}

function isScoringResponse(v: unknown): v is ScoringResponse {
  if (v === null || typeof v !== 'object' || Array.isArray(v) || !('body' in v)) return false;
  const r = v as ScoringResponse;
  return typeof r.status === 'number' || typeof r.statusCode === 'number';
}

/** GET /score?a=1&b=x&b=y -> {a: 1, b: ["x", "y"]}: each value JSON-parsed when it can be (§5.4). */
export function queryParams(query: string): Record<string, unknown> {
  const grouped = new Map<string, unknown[]>();
  for (const [k, v] of new URLSearchParams(query)) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(v);
    } catch {
      parsed = v;
    }
    const list = grouped.get(k);
    if (list === undefined) grouped.set(k, [parsed]);
    else list.push(parsed);
  }
  const params: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  for (const [k, list] of grouped) params[k] = list.length === 1 ? list[0] : list;
  return params;
}

/** GET /score?a=1&b=x&b=y -> '{"a": 1, "b": ["x", "y"]}', what an undecorated run() gets for a GET. */
export function queryToJson(query: string): string {
  return pythonJsonDumps(queryParams(query));
}

/**
 * The WHATWG Request a `rawHttp` module's run() gets. The URL's host is the request's Host header (the
 * debug server passes the client's; behind the router it is the router's), `http://localhost` otherwise.
 */
export function toWebRequest(req: RequestFrame): Request {
  const headers = new Headers();
  let host = 'localhost';
  for (const [k, v] of req.headers) {
    if (HOP_HEADERS.has(k)) continue;
    if (k === 'host') host = v;
    try {
      headers.append(k, v);
    } catch {
      // A value a WHATWG Headers refuses (control characters): run() cannot see it either way.
    }
  }
  let url: string;
  try {
    url = new URL(req.url, `http://${host}`).href;
  } catch {
    url = new URL(req.url, 'http://localhost').href;
  }
  const method = req.method;
  const hasBody = method !== 'GET' && method !== 'HEAD' && req.body.length > 0;
  const body = hasBody ? (new Uint8Array(req.body.buffer, req.body.byteOffset, req.body.length) as Uint8Array<ArrayBuffer>) : null;
  return new Request(url, { method, headers, body });
}

/** A WHATWG Response returned by run(), read into the { status, headers, body } form answerRaw() sends. */
async function fromWebResponse(res: Response): Promise<ScoringResponse> {
  const headers: Record<string, string> = {};
  res.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { status: res.status, headers, body: Buffer.from(await res.arrayBuffer()) };
}

/** Python's UnicodeDecodeError text for the first bad byte, e.g. "'utf-8' codec can't decode byte 0xff in position 0: invalid start byte". */
export function describeBadUtf8(b: Uint8Array): string {
  let i = 0;
  while (i < b.length) {
    const c = b[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    const n = c >= 0xc2 && c <= 0xdf ? 1 : c >= 0xe0 && c <= 0xef ? 2 : c >= 0xf0 && c <= 0xf4 ? 3 : 0;
    if (n === 0) return `'utf-8' codec can't decode byte 0x${hex2(c)} in position ${i}: invalid start byte`;
    for (let k = 1; k <= n; k++) {
      if (i + k >= b.length) {
        return i === b.length - 1
          ? `'utf-8' codec can't decode byte 0x${hex2(c)} in position ${i}: unexpected end of data`
          : `'utf-8' codec can't decode bytes in position ${i}-${b.length - 1}: unexpected end of data`;
      }
      const d = b[i + k];
      let lo = 0x80;
      let hi = 0xbf;
      if (k === 1) {
        // The second byte's range excludes overlongs and surrogates (RFC 3629 table), as CPython's decoder.
        if (c === 0xe0) lo = 0xa0;
        else if (c === 0xed) hi = 0x9f;
        else if (c === 0xf0) lo = 0x90;
        else if (c === 0xf4) hi = 0x8f;
      }
      if (d < lo || d > hi) return `'utf-8' codec can't decode byte 0x${hex2(c)} in position ${i}: invalid continuation byte`;
    }
    i += n + 1;
  }
  return "'utf-8' codec can't decode the input";
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, '0');
}
