// The router's HTTP/1.1 face: Node's own parser (llhttp, the one node:http uses, so framing, chunked
// bodies and request-smuggling checks are Node's), without node:http's per-request machinery. A request
// is delivered once it is complete, with its body in one Buffer; its answer is serialised and written in
// one write. Profiles of the router spent ~40 % of its CPU in IncomingMessage, ServerResponse and their
// streams, and a bare server on this parser costs about half of one on node:http per request (measured:
// 9-10 vs 16-19 µs of CPU, wrk -c32, pinned). DESIGN.md "router/": nothing per request that can be avoided.
//
// What node:http did for the router and this file does instead: keep-alive and Connection: close,
// HTTP/1.0, pipelining (answers leave in request order), HEAD, Expect: 100-continue, body size limit
// (413, before reading a declared body), header size limit (431), malformed requests (400), slow clients
// (408 when headers or a whole request take too long), idle keep-alive connections closed, response
// header validation (a name that is not a token or a value with control characters is dropped: no
// response splitting from a scoring script's headers).

import { createRequire } from 'node:module';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { STATUS_CODES } from 'node:http';

interface NodeHttpParser {
  initialize(type: number, resource: object, maxHeaderSize: number, lenient: number): void;
  execute(data: Buffer): number | Error;
  /** Reads from the socket's handle in C++ and parses at once, with no 'data' event (node:http does this). */
  consume(handle: object): void;
  unconsume(): void;
  finish(): number | Error | undefined;
  close(): void;
  [key: number]: unknown;
}
interface NodeHttpParserClass {
  new (): NodeHttpParser;
  REQUEST: number;
  kOnMessageBegin: number;
  kOnHeaders: number;
  kOnHeadersComplete: number;
  kOnBody: number;
  kOnMessageComplete: number;
  kOnExecute: number;
}

/** The native handle of a net.Socket, as node:http uses it to consume and to stop reading. */
interface StreamHandle {
  isStreamBase?: boolean;
  _consumed?: boolean;
  reading?: boolean;
  readStart(): number;
  readStop(): number;
}

// node:http's parser binding, as node:http itself reaches it (lib/_http_common.js; Node 20 is pinned in
// package.json engines).
const { HTTPParser, methods } = createRequire(import.meta.url)('_http_common') as { HTTPParser: NodeHttpParserClass; methods: string[] };

/**
 * The parser reports llhttp's method number. `methods` lists llhttp's HTTP methods, in enum order up to
 * SOURCE (33); QUERY follows the RTSP ones in the enum (46) but comes right after SOURCE in the list.
 */
function methodName(n: number): string | undefined {
  if (n <= 33) return methods[n];
  return n === 46 ? 'QUERY' : undefined;
}

export interface Http1Options {
  /** Largest request body (bytes); a larger one is answered 413 and the connection closed. */
  maxBodyBytes: number;
  /** Largest request head (request line + headers), bytes; larger is 431. Node's default: 16 KiB. */
  maxHeaderSize?: number;
  /** A client must send a request's headers within this time once it started (408). */
  headersTimeoutMs: number;
  /** ... and the whole request within this time (408). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this time. */
  keepAliveTimeoutMs: number;
}

const EMPTY = Buffer.alloc(0);
const SWEEP_MS = 1000;
/** Pipelined requests waiting for their answers before the connection stops reading. */
const MAX_PIPELINED = 32;

let date = new Date().toUTCString();
let dateTimer: NodeJS.Timeout | null = null;
function keepDate(): void {
  if (dateTimer !== null) return;
  dateTimer = setInterval(() => (date = new Date().toUTCString()), 1000).unref();
}

/** One request, complete. The handler answers it once with respond(). */
export class Http1Request {
  body: Buffer = EMPTY;
  /** When its headers were complete (performance.now()). */
  readonly startedAt = performance.now();
  /** respond() was called (or the server answered it itself). */
  responded = false;
  /** The serialised answer, while an earlier pipelined request has not been answered. */
  out: Buffer | null = null;

  constructor(
    readonly conn: Http1Connection,
    readonly method: string,
    public url: string,
    /** Request headers as name, value pairs; names lower-cased. */
    readonly headers: string[],
    readonly keepAlive: boolean,
  ) {}

  /** The first value of a header (name lower-case). */
  header(name: string): string | undefined {
    const h = this.headers;
    for (let i = 0; i < h.length; i += 2) if (h[i] === name) return h[i + 1];
    return undefined;
  }

  /** The client is gone: an answer would go nowhere. */
  get destroyed(): boolean {
    return this.conn.closed;
  }

  /**
   * Answers: status, name/value pairs (content-length, date and connection are added), body. Names that
   * are not tokens and values with control characters or beyond latin1 are left out.
   */
  respond(status: number, headers: readonly string[], body: Buffer | string, close = false): void {
    if (this.responded) return;
    this.responded = true;
    const conn = this.conn;
    if (conn.closed) return;
    const payload = typeof body === 'string' ? Buffer.from(body) : body;
    const keepAlive = this.keepAlive && !close && !conn.closing;
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
    for (let i = 0; i < headers.length; i += 2) {
      const k = headers[i];
      const v = headers[i + 1];
      if (isToken(k) && isFieldValue(v)) head += k + ': ' + v + '\r\n';
    }
    head += 'content-length: ' + payload.length + '\r\ndate: ' + date + (keepAlive ? conn.server.keepAliveHeader : '\r\nconnection: close\r\n\r\n');
    const bodyBytes = this.method === 'HEAD' ? 0 : payload.length;
    const out = Buffer.allocUnsafe(head.length + bodyBytes);
    out.write(head, 0, 'latin1');
    if (bodyBytes > 0) payload.copy(out, head.length);
    this.out = out;
    if (!this.keepAlive || close) conn.closeAfter(this);
    conn.flushAnswers();
  }
}

/** One client connection. */
export class Http1Connection {
  closed = false;
  /** No more requests are read; the connection ends after the answers it owes. */
  closing = false;
  /** Requests in arrival order, until their answers are written. */
  readonly pending: Http1Request[] = [];
  /** 'idle' between requests, 'head' while headers arrive, 'body' until the request is complete. */
  phase: 'idle' | 'head' | 'body' = 'idle';
  /** When the current phase began (performance.now()). */
  since = performance.now();
  /** Belongs to the request handler: per-connection state of its own (the router's verified key). */
  handlerState: unknown = undefined;
  private current: Http1Request | null = null;
  private chunks: Buffer[] = [];
  private size = 0;
  /** The current request's body is being skipped (already answered 413). */
  private skipping = false;
  /** The request whose answer is the last one: the connection ends after it. */
  private lastAnswer: Http1Request | null = null;
  private readonly parser: NodeHttpParser;
  /** The socket's handle when the parser consumes it (reads stopped and started on it directly). */
  private handle: StreamHandle | null = null;
  private paused = false;

  constructor(
    readonly socket: Socket,
    readonly server: Http1Server,
  ) {
    const parser = new HTTPParser();
    parser.initialize(HTTPParser.REQUEST, {}, server.options.maxHeaderSize ?? 16 * 1024, 0);
    let partialHeaders: string[] = [];
    let partialUrl = '';
    parser[HTTPParser.kOnHeaders] = (headers: string[], url: string) => {
      // Headers arrived in several reads: llhttp hands them over in pieces.
      for (const h of headers) partialHeaders.push(h);
      partialUrl += url;
    };
    parser[HTTPParser.kOnHeadersComplete] = (_major: number, _minor: number, headers: string[] | undefined, method: number, url: string | undefined, _status: unknown, _message: unknown, upgrade: boolean, keepAlive: boolean) => {
      if (headers === undefined) {
        headers = partialHeaders;
        partialHeaders = [];
      }
      if (url === undefined) {
        url = partialUrl;
        partialUrl = '';
      }
      if (this.closing) return 0; // after an error of ours or the client's FIN: nothing more is served
      for (let i = 0; i < headers.length; i += 2) headers[i] = headers[i].toLowerCase();
      this.onHead(methodName(method), url, headers, keepAlive && !upgrade, upgrade);
      return 0;
    };
    parser[HTTPParser.kOnMessageBegin] = () => {
      this.phase = 'head';
      this.since = performance.now();
    };
    parser[HTTPParser.kOnBody] = (chunk: Buffer) => this.onBody(chunk);
    parser[HTTPParser.kOnMessageComplete] = () => this.onComplete();
    this.parser = parser;

    const handle = (socket as unknown as { _handle: StreamHandle | null })._handle;
    if (handle !== null && handle.isStreamBase === true && handle._consumed !== true) {
      // Reads go from the socket straight into the parser, in C++: no Buffer and no 'data' event per read.
      handle._consumed = true;
      this.handle = handle;
      parser[HTTPParser.kOnExecute] = (ret: number | Error) => this.afterExecute(ret);
      parser.consume(handle);
    } else {
      socket.on('data', (d: Buffer) => this.afterExecute(this.closing ? 0 : this.parser.execute(d)));
    }
    socket.on('end', () => {
      // The client closed its side: as node:http does by default (httpAllowHalfOpen false), it has gone
      // away; its pending requests are abandoned and the connection ends.
      this.closing = true;
      this.closed = true;
      socket.end();
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => this.onClose());
  }

  private afterExecute(r: number | Error): void {
    if (r instanceof Error) {
      const code = (r as NodeJS.ErrnoException).code;
      this.fail(code === 'HPE_HEADER_OVERFLOW' ? 431 : 400, code === 'HPE_HEADER_OVERFLOW' ? 'Request header fields too large' : `Malformed HTTP request (${code ?? r.message})`);
    }
  }

  private onHead(method: string | undefined, url: string, headers: string[], keepAlive: boolean, upgrade: boolean): void {
    const req = new Http1Request(this, method ?? 'UNKNOWN', url, headers, keepAlive);
    this.current = req;
    this.chunks = [];
    this.size = 0;
    this.skipping = false;
    this.phase = 'body';
    this.pending.push(req);
    if (upgrade || method === undefined) {
      this.skipping = true;
      req.respond(upgrade ? 400 : 501, JSON_HEADERS, upgrade ? '{"message":"Protocol upgrades are not supported on scoring URIs"}' : '{"message":"Method not implemented"}', true);
      return;
    }
    const declared = req.header('content-length');
    if (declared !== undefined && Number(declared) > this.server.options.maxBodyBytes) return this.tooLarge(req);
    const expect = req.header('expect');
    if (expect !== undefined && expect.toLowerCase() === '100-continue') this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    if (this.pending.length >= MAX_PIPELINED) this.pauseReading();
  }

  private onBody(chunk: Buffer): void {
    if (this.skipping || this.current === null) return;
    this.size += chunk.length;
    if (this.size > this.server.options.maxBodyBytes) {
      this.chunks = [];
      this.tooLarge(this.current);
      return;
    }
    this.chunks.push(chunk);
  }

  private onComplete(): void {
    const req = this.current;
    this.current = null;
    this.phase = 'idle';
    this.since = performance.now();
    if (req === null || this.skipping) return;
    const c = this.chunks;
    req.body = c.length === 0 ? EMPTY : c.length === 1 ? c[0] : Buffer.concat(c, this.size);
    this.chunks = [];
    this.server.handler(req);
  }

  private tooLarge(req: Http1Request): void {
    this.skipping = true;
    req.respond(413, JSON_HEADERS, `{"message":"Request body larger than ${this.server.options.maxBodyBytes} bytes"}`, true);
  }

  /** Answers the server's own error and closes: what follows on this connection cannot be trusted. */
  fail(status: number, message: string): void {
    if (this.closed) return;
    let req = this.current;
    if (req === null || req.responded) {
      req = new Http1Request(this, 'GET', '', [], false);
      this.pending.push(req);
    }
    this.current = null;
    this.skipping = true;
    this.closing = true;
    this.pauseReading();
    req.respond(status, JSON_HEADERS, JSON.stringify({ message }), true);
  }

  /** No request after this one is read or answered; the connection ends once its answer is written. */
  closeAfter(req: Http1Request): void {
    this.closing = true;
    if (this.lastAnswer === null) this.lastAnswer = req;
  }

  /** Writes the answers that are ready, in request order. */
  flushAnswers(): void {
    const q = this.pending;
    let n = 0;
    while (n < q.length && q[n].out !== null) {
      const req = q[n];
      this.socket.write(req.out!);
      req.out = null;
      n++;
      if (req === this.lastAnswer) {
        // Connection: close, HTTP/1.0 or an error of ours: nothing after this answer.
        q.length = 0;
        this.socket.end();
        this.closed = true;
        return;
      }
    }
    if (n > 0) {
      q.splice(0, n);
      if (q.length === 0) {
        this.since = performance.now(); // keep-alive idle time starts with the last answer
        if (this.closing) {
          this.socket.end();
          this.closed = true;
          return;
        }
      }
      if (this.paused && q.length < MAX_PIPELINED) this.resumeReading();
    }
  }

  private pauseReading(): void {
    this.paused = true;
    if (this.handle !== null) {
      this.handle.reading = false;
      this.handle.readStop();
    } else this.socket.pause();
  }

  private resumeReading(): void {
    this.paused = false;
    if (this.handle !== null) {
      if (this.closed) return;
      this.handle.reading = true;
      this.handle.readStart();
    } else this.socket.resume();
  }

  /** Slow clients and idle connections (called about once a second). */
  sweep(now: number): void {
    const o = this.server.options;
    if (this.phase === 'head' && now - this.since > o.headersTimeoutMs) this.fail(408, 'Request headers not received in time');
    else if (this.phase === 'body' && now - this.since > o.requestTimeoutMs) this.fail(408, 'Request not received in time');
    else if (this.phase === 'idle' && this.pending.length === 0 && now - this.since > o.keepAliveTimeoutMs) this.socket.destroy();
  }

  get idle(): boolean {
    return this.phase === 'idle' && this.pending.length === 0;
  }

  private onClose(): void {
    this.closed = true;
    this.server.connections.delete(this);
    const parser = this.parser;
    const consumed = this.handle !== null;
    // After the current call stack: the parser may be the one that called us.
    setImmediate(() => {
      if (consumed) parser.unconsume();
      parser.close();
    });
  }
}

const JSON_HEADERS: readonly string[] = ['content-type', 'application/json'];

export class Http1Server {
  readonly connections = new Set<Http1Connection>();
  /** The end of every kept-alive answer's head. */
  readonly keepAliveHeader: string;
  private readonly server: Server;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly options: Http1Options,
    readonly handler: (req: Http1Request) => void,
  ) {
    keepDate();
    this.keepAliveHeader = `\r\nconnection: keep-alive\r\nkeep-alive: timeout=${Math.floor(options.keepAliveTimeoutMs / 1000)}\r\n\r\n`;
    this.server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => {
      this.connections.add(new Http1Connection(socket, this));
    });
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.sweepTimer = setInterval(() => {
          const now = performance.now();
          for (const c of this.connections) c.sweep(now);
        }, SWEEP_MS).unref();
        resolve(this.server.address() as AddressInfo);
      });
    });
  }

  address(): AddressInfo {
    return this.server.address() as AddressInfo;
  }

  /** Stops accepting; idle connections close now, busy ones after their answers (at most `graceMs`). */
  async close(graceMs = 2000): Promise<void> {
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.connections) {
      if (c.idle) c.socket.destroy();
      else c.closing = true;
    }
    const deadline = setTimeout(() => {
      for (const c of this.connections) c.socket.destroy();
    }, graceMs).unref();
    await closed;
    clearTimeout(deadline);
  }
}

/** RFC 9110 token characters. */
function isToken(s: string): boolean {
  if (s.length === 0) return false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (!(c < 128 && TOKEN[c] === 1)) return false;
  }
  return true;
}

const TOKEN = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[ch.charCodeAt(0)] = 1;

/** A field value Node would send: tab, visible latin1; no CR, LF, NUL or other controls. */
function isFieldValue(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return false;
  }
  return true;
}
