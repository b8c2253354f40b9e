// JavaScript/TypeScript scoring modules, run inside the instance host process (DESIGN.md "The instance
// protocol": no second process, no second hop). The module is the JavaScript counterpart of score.py:
//
//   export async function init() { ... load the model from process.env.AZUREML_MODEL_DIR ... }
//   export function run(rawData, requestHeaders) { return predictions; }   // may be async
//
// and behaves as azmlinfsrv behaves for an undecorated run() (contract §5.4-§5.6):
// - run() gets the raw body as a UTF-8 string (not parsed); a body that is not UTF-8 gets 400.
//   The second argument, lower-case request headers as an object, is built only if run() declares a
//   second parameter (as azmlinfsrv passes request_headers only to a run() that names it).
// - Its value is sent as Python's json.dumps would write it (py-json.ts), 200, application/json.
// - A value shaped like `{ status | statusCode: number, body, headers? }` is sent as-is instead (the
//   counterpart of returning an AMLResponse): a string body as text/plain, bytes as
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
import { decodeRequest, type HeaderList, type RequestFrame } from '../util/frame.js';
import { log } from './log.js';
import { pythonJsonDumps } from './py-json.js';
import { InitFailure, INTERNAL_ERROR_MESSAGE, messageBody, RUN_FAILED_MESSAGE, type Peer, type Scorer } from './scorer.js';

/** What a scoring module exports (types for authors of .ts scoring modules). */
export type InitFunction = () => unknown;
export type RunFunction = (rawData: string, requestHeaders: Record<string, string>) => unknown;

/** A raw answer from run(), sent as-is (see the file comment). */
export interface ScoringResponse {
  status?: number;
  statusCode?: number;
  headers?: Record<string, string>;
  body: unknown;
}

type Header = readonly [string, string];
const H_JSON: Header = ['content-type', 'application/json'];
const H_TEXT: Header = ['content-type', 'text/plain; charset=utf-8'];
const H_FAILED_FALSE: Header = ['x-ms-run-function-failed', 'False'];
const H_FAILED_TRUE: Header = ['x-ms-run-function-failed', 'True'];
const ONLY_JSON: HeaderList = [H_JSON];
const EMPTY = Buffer.alloc(0);
const HEALTHY = Buffer.from('Healthy');
const RUN_FAILED_BODY = messageBody(RUN_FAILED_MESSAGE);
const INTERNAL_ERROR_BODY = messageBody(INTERNAL_ERROR_MESSAGE);
const METHOD_NOT_ALLOWED_BODY = messageBody('The method is not allowed for the requested URL.');
const MALFORMED_BODY = messageBody('Malformed request frame.');
const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);
export const JS_EXTENSIONS = new Set(['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts']);

type RunFn = (rawData: string, requestHeaders?: Record<string, string>) => unknown;

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
 * export / module.exports), and calls init() once. Failures carry contract.ts's init-failed codes and the
 * script's own error text and stack.
 */
export async function loadScoringModule(file: string): Promise<RunFn> {
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
  return run as RunFn;
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

export class JsScorer implements Scorer {
  private pending = 0;
  private readonly wantsHeaders: boolean;

  constructor(private readonly run: RunFn) {
    this.wantsHeaders = run.length >= 2;
  }

  get inflight(): number {
    return this.pending;
  }

  async stop(): Promise<void> {}

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
    for (let i = 0; i < headers.length; i++) {
      const name = headers[i][0];
      if (name.charCodeAt(0) !== 0x78 /* x */) continue;
      if (name === 'x-request-id') requestId = headers[i][1];
      else if (name === 'x-ms-request-id') msRequestId = headers[i][1];
      else if (name === 'x-ms-client-request-id') clientRequestId = headers[i][1];
    }
    let ids: Header[] | null = null;
    if (requestId !== undefined || msRequestId !== undefined || clientRequestId !== undefined) {
      if (requestId !== undefined && requestId.length > 100) {
        peer.respond(id, 431, ONLY_JSON, messageBody('x-request-id must not exceed 100 characters'));
        return;
      }
      if ((msRequestId?.length ?? 0) > 100 || (clientRequestId?.length ?? 0) > 100) {
        peer.respond(id, 431, ONLY_JSON, messageBody('x-ms-request-id and x-ms-client-request-id must not exceed 100 characters'));
        return;
      }
      ids = [];
      if (requestId !== undefined) ids.push(['x-request-id', requestId]);
      const legacy = msRequestId || clientRequestId || requestId;
      if (legacy) ids.push(['x-ms-request-id', legacy]);
      if (clientRequestId !== undefined) ids.push(['x-ms-client-request-id', clientRequestId]);
    }

    let input: string;
    const method = req.method;
    if (method === 'POST') {
      const body = req.body;
      if (!isUtf8(body)) {
        peer.respond(id, 400, withIds([H_JSON], ids), messageBody(`Input cannot be decoded as UTF-8: ${describeBadUtf8(body)}`));
        return;
      }
      input = body.toString('utf8');
    } else if (method === 'GET') {
      const q = req.url.indexOf('?');
      if ((q < 0 ? req.url : req.url.slice(0, q)) === '/') {
        peer.respond(id, 200, [H_TEXT], HEALTHY); // the liveness route (contract §5.3)
        return;
      }
      input = queryToJson(q < 0 ? '' : req.url.slice(q + 1));
    } else if (method === 'OPTIONS') {
      peer.respond(id, 200, ids ?? [], EMPTY);
      return;
    } else {
      peer.respond(id, 405, withIds([H_JSON], ids), METHOD_NOT_ALLOWED_BODY);
      return;
    }

    const run = this.run; // called as a plain function: the user's stack shows "at run", not "at JsScorer.run"
    const t0 = performance.now();
    let result: unknown;
    try {
      result = this.wantsHeaders ? run(input, Object.fromEntries(headers)) : run(input);
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

  private answer(peer: Peer, id: number, value: unknown, t0: number, ids: Header[] | null): void {
    if (peer.closed) return;
    const execMs = (performance.now() - t0).toFixed(3);
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
    // pythonJsonDumps output is pure ASCII (ensure_ascii), so latin1 is an exact and cheap encoding.
    peer.respond(id, 200, withIds([H_JSON, H_FAILED_FALSE, ['x-ms-run-fn-exec-ms', execMs]], ids), Buffer.from(text, 'latin1'));
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

/** GET /score?a=1&b=x&b=y -> '{"a": 1, "b": ["x", "y"]}': each value JSON-parsed when it can be (§5.4). */
export function queryToJson(query: string): string {
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
  return pythonJsonDumps(params);
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
