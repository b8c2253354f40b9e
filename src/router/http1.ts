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
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { ConnectionMeters, type ConnectionRejectReason } from '../telemetry/metrics.js';
import { SlotList } from '../util/slot-list.js';

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
  /**
   * Lingering close: after our last answer on a connection (an error of ours, Connection: close), how
   * long the rest of what the client sends is read and discarded before the socket is destroyed. Default
   * 2000 ms (nginx lingering_close / lingering_time does the same, 30 s there).
   */
  lingerMs?: number;
  /**
   * ... and at most this many bytes (default 64 MiB): whichever comes first ends the linger. Discarded
   * bytes cost CPU, not memory; a small cap made a fast uploader's next write fail (EPIPE) before it had
   * read our early 413/429, which is the answer the linger exists to deliver.
   */
  lingerBytes?: number;
  /**
   * Open client connections allowed (default unlimited). One more gets a short 503 and is closed at once
   * (nginx worker_connections, Kestrel MaxConcurrentConnections), so an fd flood cannot starve the
   * process (the control plane shares it).
   */
  maxConnections?: number;
  /** Open connections allowed per client address (default unlimited); one more gets 429 + Retry-After. */
  maxConnectionsPerClient?: number;
  /** Where the connection counters go; shared by every server of one router (telemetry/metrics.ts). */
  meters?: ConnectionMeters;
  /**
   * Request-body bytes buffered at once, all connections (and all servers sharing `meters`) together;
   * default unlimited. A declared body that would pass it is answered 503 + Retry-After before it is
   * read; a chunked one that grows past it likewise, as soon as it does.
   */
  maxBufferedBodyBytes?: number;
  /**
   * Slowest body upload accepted, bytes per second averaged since the body started, enforced once
   * `minBodyGraceMs` (default 5000) have passed: Kestrel's MinRequestBodyDataRate (240 B/s, 5 s grace).
   * Slower gets 408 and the connection closes. 0 or absent: no minimum (only requestTimeoutMs).
   */
  minBodyBytesPerSecond?: number;
  minBodyGraceMs?: number;
  /** A chunked body buffered past this many bytes is offered to the head hook again (late = true). */
  streamThresholdBytes?: number;
  /**
   * Serve HTTP/1.1 over TLS with this certificate and key (PEM). Connections are counted and refused as
   * without TLS, once their handshake is done; a handshake must finish within headersTimeoutMs
   * (Kestrel's and nginx's handshake timeouts do the same job: a client that opens a socket and never
   * completes the handshake holds an fd). setSecureContext() swaps the certificate for new connections.
   */
  tls?: SecureContextOptions;
}

/**
 * Where a request's body goes instead of a buffer (a head hook chose to stream it). Called in order; at
 * most one of end() and abort().
 */
export interface BodySink {
  data(part: Buffer): void;
  /** The whole body has been passed on. */
  end(): void;
  /**
   * The body will never be complete. `status`: what the request is recorded as — 499 the client went
   * away (nginx's "client closed request"), else the error the server answers (408, 413, 503, 400).
   */
  abort(status: number): void;
}

/**
 * Runs when the headers of a request with a large body (declared above EARLY_HEAD_BYTES, or chunked) are
 * complete, before its body is read (late = false). It may answer at once (respond(): the body is then not
 * read and the connection closes after the answer), return a BodySink to take the body as it arrives, or
 * return undefined: the body is buffered and the handler gets the complete request as usual. A chunked
 * body (its size unknown at first) that grows past streamThresholdBytes is offered once more (late =
 * true): a sink returned then gets the part buffered so far, then the rest.
 */
export type HeadHook = (req: Http1Request, late: boolean) => BodySink | undefined;

/**
 * Requests whose declared body is at most this big go straight to buffering: their body is most likely
 * in the same read as their headers, so an early answer would save nothing, and the head hook would cost
 * every ordinary request a second routing pass.
 */
export const EARLY_HEAD_BYTES = 64 * 1024;

const EMPTY = Buffer.alloc(0);
const SWEEP_MS = 1000;
const LINGER_MS = 2000;
const LINGER_BYTES = 64 * 1024 * 1024;
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
  /** The whole body has arrived (in `body`, or through a BodySink). */
  complete = false;
  /** Bytes of this request's body counted in the server's buffered total (released when answered). */
  reserved = 0;
  /** The head hook already rewrote `url` (the handler's own mark: it runs again at completion). */
  rewritten = false;
  /**
   * Set by the head hook for a body it lets be buffered: called once if the body will never be complete
   * (the client went away, timed out, sent too much), so what the hook reserved for it can be given back.
   */
  onAbort: (() => void) | null = null;
  /**
   * Set by the handler for a complete request it has taken on (queued, or sent to an instance): told once
   * if the client leaves before the answer, so the work is abandoned (nginx's 499) rather than carried on
   * for nobody. An object, not a closure: no allocation per request.
   */
  owner: { clientGone(): void } | null = null;

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
    if (this.reserved !== 0) conn.server.unreserve(this);
    if (!this.complete) {
      // Answered before its body arrived (an early rejection, an error of ours, a stream that failed): the
      // rest of the body is not read, and the connection cannot be reused.
      close = true;
      conn.abandonBody(this);
    }
    if (conn.closed) return;
    const payload = typeof body === 'string' ? Buffer.from(body) : body;
    const keepAlive = this.keepAlive && !close && !conn.closing;
    this.out = serializeAnswer(status, headers, payload, this.method === 'HEAD', keepAlive ? conn.server.keepAliveTail : CLOSE_TAIL);
    if (!this.keepAlive || close) conn.closeAfter(this);
    conn.flushAnswers();
  }
}

/** One client connection. */
export class Http1Connection {
  /** Its place in the server's open connections (util/slot-list.ts). */
  slot = -1;
  closed = false;
  /** No more requests are read; the connection ends after the answers it owes. */
  closing = false;
  /** When our side ended (performance.now()); 0 while open. The sweep destroys it past the linger time. */
  closedAt = 0;
  /** socket.bytesRead when the linger began: what is read after that is discarded, up to lingerBytes. */
  private lingerFrom = 0;
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
  /** The current request's body goes there instead of `chunks` (a streamed upload). */
  private sink: BodySink | null = null;
  /** Reading stopped by a BodySink's backpressure (holdReading). */
  private held = false;
  /** When the current body's rate measure started, and the body bytes by then (minBodyBytesPerSecond). */
  private bodyFrom = 0;
  private bodyBase = 0;
  /** The current body is chunked and still buffered: offer it to the head hook past streamThresholdBytes. */
  private offerLate = false;
  /** The request whose answer is the last one: the connection ends after it. */
  private lastAnswer: Http1Request | null = null;
  private readonly parser: NodeHttpParser;
  /** The socket's handle when the parser consumes it (reads stopped and started on it directly). */
  private handle: StreamHandle | null = null;
  private paused = false;

  constructor(
    readonly socket: Socket,
    readonly server: Http1Server,
    /** The client address, when the server counts connections per client ('' otherwise). */
    readonly client = '',
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
      // TLS: what the TLS layer decrypted before the handshake was reported (a TLS 1.3 client sends its
      // request in the same flight as its Finished) went to the socket's readable buffer, not the parser.
      // node:http catches it with a 'data' listener beside consume(); here it is read out once.
      if (socket.readableLength > 0) {
        for (let d = socket.read() as Buffer | null; d !== null; d = socket.read() as Buffer | null) this.afterExecute(this.closing ? 0 : parser.execute(d));
      }
    } else {
      socket.on('data', (d: Buffer) => this.afterExecute(this.closing ? 0 : this.parser.execute(d)));
    }
    socket.on('end', () => {
      // The client closed its side: as node:http does by default (httpAllowHalfOpen false), it has gone
      // away; its pending requests are abandoned and the connection ends ('close' follows once our FIN is
      // out; the sweep destroys it if our writes never drain).
      this.closing = true;
      this.endSocket();
    });
    socket.on('error', () => {}); // 'close' follows
    socket.on('close', () => this.onClose());
  }

  private afterExecute(r: number | Error): void {
    if (this.closedAt !== 0) {
      // Lingering: whatever arrives is discarded (the parser ignores it, or is stuck in its error state).
      if (this.socket.bytesRead - this.lingerFrom > (this.server.options.lingerBytes ?? LINGER_BYTES)) this.socket.destroy();
      return;
    }
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
    // One pass over the headers for the three that decide how the body is read.
    let length: string | undefined;
    let transferEncoding: string | undefined;
    let expect: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const k = headers[i];
      if (k === 'content-length') length ??= headers[i + 1];
      else if (k === 'transfer-encoding') transferEncoding ??= headers[i + 1];
      else if (k === 'expect') expect ??= headers[i + 1];
    }
    const o = this.server.options;
    const declared = length === undefined ? -1 : Number(length);
    if (declared > o.maxBodyBytes) return this.tooLarge(req);
    this.bodyFrom = performance.now();
    this.bodyBase = 0;
    const chunked = length === undefined && transferEncoding !== undefined;
    const hook = this.server.onHead;
    this.offerLate = false;
    if (hook !== undefined && (chunked || declared > EARLY_HEAD_BYTES)) {
      const sink = hook(req, false);
      if (req.responded) return; // answered early: respond() abandoned the body; the connection closes
      if (sink !== undefined) this.sink = sink;
      else this.offerLate = chunked;
    }
    if (this.sink === null && declared > 0) {
      const meters = this.server.meters;
      if (meters.bufferedBodyBytes + declared > this.server.maxBuffered) return this.overCap(req);
      req.reserved = declared;
      meters.bufferedBodyBytes += declared;
    }
    if (expect !== undefined && expect.toLowerCase() === '100-continue') this.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
    if (this.pending.length >= MAX_PIPELINED) this.pauseReading();
  }

  private onBody(chunk: Buffer): void {
    const req = this.current;
    if (this.skipping || req === null) return;
    this.size += chunk.length;
    if (this.size > this.server.options.maxBodyBytes) {
      this.chunks = [];
      this.tooLarge(req);
      return;
    }
    if (this.sink !== null) {
      this.sink.data(chunk);
      return;
    }
    if (req.reserved < this.size) {
      // A chunked body (no declared length): counted as it grows.
      const meters = this.server.meters;
      const more = this.size - req.reserved;
      if (meters.bufferedBodyBytes + more > this.server.maxBuffered) {
        this.chunks = [];
        this.overCap(req);
        return;
      }
      meters.bufferedBodyBytes += more;
      req.reserved = this.size;
    }
    this.chunks.push(chunk);
    if (this.offerLate && this.size > (this.server.options.streamThresholdBytes ?? Infinity)) {
      this.offerLate = false;
      const sink = this.server.onHead!(req, true);
      if (sink === undefined || req.responded) return;
      // Streamed from now on: what was buffered goes first, and no longer counts as buffered.
      this.sink = sink;
      const buffered = this.chunks;
      this.chunks = [];
      this.server.unreserve(req);
      for (const c of buffered) sink.data(c);
    }
  }

  private onComplete(): void {
    const req = this.current;
    this.current = null;
    this.phase = 'idle';
    this.since = performance.now();
    if (req === null || this.skipping) return;
    req.complete = true;
    const sink = this.sink;
    if (sink !== null) {
      this.sink = null;
      sink.end();
      return;
    }
    const c = this.chunks;
    req.body = c.length === 0 ? EMPTY : c.length === 1 ? c[0] : Buffer.concat(c, this.size);
    this.chunks = [];
    this.server.handler(req);
  }

  private tooLarge(req: Http1Request): void {
    this.skipping = true;
    this.abortSink(413);
    req.respond(413, JSON_HEADERS, `{"message":"Request body larger than ${this.server.options.maxBodyBytes} bytes"}`, true);
  }

  /** The router holds as many request bodies as it may: 503, try again shortly (before the body is read). */
  private overCap(req: Http1Request): void {
    this.skipping = true;
    this.abortSink(503);
    this.server.meters.bufferedBodyRejected++;
    req.respond(503, OVER_CAP_HEADERS, `{"message":"The router is holding ${this.server.maxBuffered} bytes of request bodies, its limit; retry later"}`, true);
  }

  /** The current request's body will never be complete: its sink, or its head hook's reservation, hears so. */
  private abortSink(status: number): void {
    const req = this.current;
    if (req !== null && req.onAbort !== null) {
      const f = req.onAbort;
      req.onAbort = null;
      f();
    }
    const sink = this.sink;
    if (sink === null) return;
    this.sink = null;
    sink.abort(status);
  }

  /** `req` was answered before its body was complete: the rest of it is skipped (and not passed on). */
  abandonBody(req: Http1Request): void {
    if (this.current !== req) return;
    this.skipping = true;
    this.sink = null;
    this.chunks = [];
    if (req.onAbort !== null) {
      const f = req.onAbort;
      req.onAbort = null;
      f();
    }
  }

  /** A BodySink cannot take more now: stop reading the client until releaseReading(). */
  holdReading(): void {
    if (this.held) return;
    this.held = true;
    if (!this.paused) this.pauseReading();
  }

  releaseReading(): void {
    if (!this.held) return;
    this.held = false;
    if (this.paused && !this.closing && this.pending.length < MAX_PIPELINED) this.resumeReading();
  }

  /** Answers the server's own error and closes: what follows on this connection cannot be trusted. */
  fail(status: number, message: string): void {
    if (this.closed) return;
    let req = this.current;
    if (req === null || req.responded) {
      req = new Http1Request(this, 'GET', '', [], false);
      this.pending.push(req);
    }
    this.abortSink(status);
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
        this.endSocket();
        return;
      }
    }
    if (n > 0) {
      q.splice(0, n);
      if (q.length === 0) {
        this.since = performance.now(); // keep-alive idle time starts with the last answer
        if (this.closing) {
          this.endSocket();
          return;
        }
      }
      if (this.paused && q.length < MAX_PIPELINED && !this.held) this.resumeReading();
    }
  }

  /**
   * Our side is done: FIN after the answers written so far, then a lingering close. Reading goes on (and
   * what arrives is discarded) so that the client's unread request bytes do not make our kernel answer
   * with RST, which could destroy our answer before the client reads it (the "lingering close" of
   * RFC 9112 §9.6 and nginx). The socket closes when the client's FIN arrives, or the sweep destroys it
   * after lingerMs; without that, a connection whose reads were stopped never saw EOF, never emitted
   * 'close', and kept its file descriptor for ever.
   */
  private endSocket(): void {
    this.closed = true;
    this.closing = true;
    if (this.closedAt !== 0) return;
    this.closedAt = performance.now();
    this.lingerFrom = this.socket.bytesRead;
    this.socket.end();
    if (this.paused) this.resumeReading();
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
    // The body rate is measured while we read: time spent not reading is not the client's.
    this.bodyFrom = performance.now();
    this.bodyBase = this.size;
    if (this.socket.destroyed) return;
    if (this.handle !== null) {
      this.handle.reading = true;
      this.handle.readStart();
    } else this.socket.resume();
  }

  /** Slow clients and idle connections (called about once a second). */
  sweep(now: number): void {
    const o = this.server.options;
    if (this.closedAt !== 0) {
      // Lingering (or our writes to a client that does not read never drained): enough.
      if (now - this.closedAt >= (o.lingerMs ?? LINGER_MS)) this.socket.destroy();
      return;
    }
    if (this.phase === 'head' && now - this.since > o.headersTimeoutMs) this.fail(408, 'Request headers not received in time');
    else if (this.phase === 'body') {
      if (now - this.since > o.requestTimeoutMs) this.fail(408, 'Request not received in time');
      else if (this.minRate > 0 && !this.paused && !this.skipping && now - this.bodyFrom > (o.minBodyGraceMs ?? MIN_BODY_GRACE_MS)) {
        if (this.size - this.bodyBase < (this.minRate * (now - this.bodyFrom)) / 1000) {
          this.server.meters.slowBodyCut++;
          this.fail(408, `Request body arrived slower than ${this.minRate} bytes per second`);
        }
      }
    }
    else if (this.phase === 'idle' && this.pending.length === 0 && now - this.since > o.keepAliveTimeoutMs) this.socket.destroy();
  }

  get idle(): boolean {
    return this.phase === 'idle' && this.pending.length === 0;
  }

  private get minRate(): number {
    return this.server.options.minBodyBytesPerSecond ?? 0;
  }

  private onClose(): void {
    this.closed = true;
    this.abortSink(499);
    for (const r of this.pending) {
      // Its owner drops it first (leaves the queue, or CANCEL to the instance): only then is nothing left
      // holding its body, and its bytes leave the buffered total.
      const o = r.owner;
      r.owner = null;
      if (o !== null && !r.responded) o.clientGone();
      if (r.reserved !== 0) this.server.unreserve(r);
    }
    this.server.released(this);
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
const OVER_CAP_HEADERS: readonly string[] = ['content-type', 'application/json', 'retry-after', '1'];
const MIN_BODY_GRACE_MS = 5000;

/** Refusals at accept: a whole answer in one write, then the socket is closed. */
function refusal(status: number, message: string): Buffer {
  const body = JSON.stringify({ message });
  return Buffer.from(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
  );
}
const REJECT_MAX_CONNECTIONS = refusal(503, 'Too many open connections to the router; retry later');
const REJECT_PER_CLIENT = refusal(429, 'Too many open connections from this client address; retry later');
/**
 * A refused socket lingers (reading and discarding) at most this long so the client can read the refusal,
 * and only while fewer than MAX_REJECT_LINGERING do: past that, refusals are destroyed at once (an
 * attacker opening connections as fast as it can must not get a second, unbounded set of fds).
 */
const REJECT_LINGER_MS = 500;
const MAX_REJECT_LINGERING = 256;

export class Http1Server {
  /** Open connections (a SlotList, not a Set: util/slot-list.ts). */
  readonly connections = new SlotList<Http1Connection>();
  readonly meters: ConnectionMeters;
  /** Open connections per client address (only kept when maxConnectionsPerClient is set). */
  private readonly perClient = new Map<string, number>();
  private rejectLingering = 0;
  /**
   * TLS only: TCP connections open, counted from the TCP accept (the handshake included) to their close.
   * A socket still in its handshake holds an fd and memory as an established connection does, so it
   * counts against maxConnections from its first byte, not from the end of its handshake.
   */
  private tcpOpen = 0;
  readonly maxBuffered: number;
  /** The end of every kept-alive answer's head (latin1 bytes). */
  readonly keepAliveTail: Uint8Array;
  private readonly server: Server | TlsServer;
  /** Serves HTTPS (Http1Options.tls). */
  readonly secure: boolean;
  private sweepTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly options: Http1Options,
    readonly handler: (req: Http1Request) => void,
    readonly onHead?: HeadHook,
  ) {
    this.maxBuffered = options.maxBufferedBodyBytes ?? Infinity;
    keepDate();
    this.keepAliveTail = latin1Bytes(`\r\nconnection: keep-alive\r\nkeep-alive: timeout=${Math.floor(options.keepAliveTimeoutMs / 1000)}\r\n\r\n`);
    this.meters = options.meters ?? new ConnectionMeters();
    const maxConnections = options.maxConnections ?? Infinity;
    const perClientLimit = options.maxConnectionsPerClient ?? Infinity;
    const accept = (socket: Socket): void => {
      // Over TLS the bound was applied at the TCP accept (below), to this very connection included.
      if (options.tls === undefined && this.connections.size >= maxConnections) return this.reject(socket, 'max_connections');
      let client = '';
      if (perClientLimit !== Infinity) {
        client = socket.remoteAddress ?? '';
        const n = this.perClient.get(client) ?? 0;
        if (n >= perClientLimit) return this.reject(socket, 'max_connections_per_client');
        this.perClient.set(client, n + 1);
      }
      this.meters.open++;
      this.connections.add(new Http1Connection(socket, this, client));
    };
    this.secure = options.tls !== undefined;
    if (options.tls === undefined) this.server = createServer({ allowHalfOpen: true, noDelay: true }, accept);
    else {
      this.server = createTlsServer(
        { ...options.tls, allowHalfOpen: true, noDelay: true, handshakeTimeout: options.headersTimeoutMs, ALPNProtocols: ['http/1.1'] },
        (socket: TLSSocket) => accept(socket),
      );
      // A failed handshake (wrong CA, plain HTTP sent to the TLS port, the handshake deadline): the socket
      // never became a connection, so there is nothing to release but the socket itself. Node only reports
      // these (a handshake timeout leaves the socket open), so it is destroyed here.
      this.server.on('tlsClientError', (_e: Error, socket: TLSSocket) => socket.destroy());
      // Before the handshake nothing can be answered (no HTTP yet): past the bound the TCP connection is
      // closed at once, as nginx does past worker_connections.
      this.server.on('connection', (raw: Socket) => {
        if (this.tcpOpen >= maxConnections) {
          this.meters.rejected.max_connections++;
          raw.on('error', () => {});
          raw.destroy();
          return;
        }
        this.tcpOpen++;
        raw.once('close', () => this.tcpOpen--);
      });
    }
  }

  /**
   * New certificate and key for connections accepted from now on (a SIGHUP reload); open connections
   * keep the context they were handshaken with and are not dropped (tls.Server.setSecureContext).
   */
  setSecureContext(tls: SecureContextOptions): void {
    if (!this.secure) throw new Error('setSecureContext on a server without TLS');
    (this.server as TlsServer).setSecureContext(tls);
  }

  /** A request's body no longer counts in the buffered total. */
  unreserve(req: Http1Request): void {
    this.meters.bufferedBodyBytes -= req.reserved;
    req.reserved = 0;
  }

  /** A connection closed: forget it and its place in the limits. */
  released(c: Http1Connection): void {
    if (!this.connections.delete(c)) return;
    this.meters.open--;
    if (c.client !== '') {
      const n = this.perClient.get(c.client) ?? 1;
      if (n <= 1) this.perClient.delete(c.client);
      else this.perClient.set(c.client, n - 1);
    }
  }

  private reject(socket: Socket, reason: ConnectionRejectReason): void {
    this.meters.rejected[reason]++;
    socket.on('error', () => {});
    const answer = reason === 'max_connections' ? REJECT_MAX_CONNECTIONS : REJECT_PER_CLIENT;
    if (this.rejectLingering >= MAX_REJECT_LINGERING) {
      // No room to linger: the refusal is tried (a fresh socket's write usually goes out at once), then
      // the fd is released.
      socket.write(answer);
      socket.destroy();
      return;
    }
    this.rejectLingering++;
    socket.on('close', () => this.rejectLingering--);
    socket.on('data', () => {}); // read and discard what the client sends, so that closing is not a RST
    socket.end(answer);
    setTimeout(() => socket.destroy(), REJECT_LINGER_MS).unref();
  }

  listen(port: number, host: string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        this.sweepTimer = setInterval(() => {
          const now = performance.now();
          this.connections.forEach((c) => c.sweep(now));
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
    this.connections.forEach((c) => {
      if (c.idle) c.socket.destroy();
      else c.closing = true;
    });
    const deadline = setTimeout(() => {
      this.connections.forEach((c) => c.socket.destroy());
    }, graceMs).unref();
    await closed;
    clearTimeout(deadline);
  }
}

const TOKEN = new Uint8Array(128);
for (const ch of "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") TOKEN[ch.charCodeAt(0)] = 1;

const latin1Bytes = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0) & 0xff);
const CLOSE_TAIL = latin1Bytes('\r\nconnection: close\r\n\r\n');
const CONTENT_LENGTH = latin1Bytes('content-length: ');
const DATE = latin1Bytes('\r\ndate: ');
/** "HTTP/1.1 <status> <reason>\r\n" by status, made once. */
const statusLines = new Map<number, Uint8Array>();
function statusLine(status: number): Uint8Array {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = latin1Bytes(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`);
    if (status >= 100 && status <= 999) statusLines.set(status, line);
  }
  return line;
}

/**
 * An answer's bytes: status line, headers, content-length, date, the connection tail, body (left out for
 * HEAD). Written into the answer's buffer piece by piece rather than built as one string first: the
 * head as a string was ~40 cons-string pieces and a flat copy per answer, ~1 KB of young garbage per
 * request (allocation sampling of the router), and scavenges grow with what is allocated while requests
 * are in flight. A header whose name is not an RFC 9110 token or whose value has a control character or
 * one beyond latin1 is left out (no response splitting from a scoring script's headers).
 */
export function serializeAnswer(status: number, headers: readonly string[], payload: Buffer, head: boolean, tail: Uint8Array): Buffer {
  const first = statusLine(status);
  const length = payload.length;
  let digits = 1;
  for (let t = length; t >= 10; t = Math.floor(t / 10)) digits++;
  // Upper bound: every header sent (a dropped one leaves its room unused, cut off below).
  let size = first.length + CONTENT_LENGTH.length + digits + DATE.length + date.length + tail.length;
  for (let i = 0; i < headers.length; i += 2) size += headers[i].length + headers[i + 1].length + 4;
  const bodyBytes = head ? 0 : length;
  const out = Buffer.allocUnsafe(size + bodyBytes);
  out.set(first, 0);
  let o = first.length;
  for (let i = 0; i < headers.length; i += 2) o = putHeader(out, o, headers[i], headers[i + 1]);
  out.set(CONTENT_LENGTH, o);
  o += CONTENT_LENGTH.length;
  for (let i = digits - 1, n = length; i >= 0; i--) {
    out[o + i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  o += digits;
  out.set(DATE, o);
  o += DATE.length;
  const d = date;
  for (let i = 0; i < d.length; i++) out[o + i] = d.charCodeAt(i);
  o += d.length;
  out.set(tail, o);
  o += tail.length;
  if (bodyBytes > 0) payload.copy(out, o);
  return o === size ? out : out.subarray(0, o + bodyBytes);
}

/** Writes "name: value\r\n" at `o` and returns the offset after it; a header that may not be sent writes nothing (returns `o`). */
function putHeader(out: Buffer, o: number, k: string, v: string): number {
  if (k.length === 0) return o;
  let p = o;
  for (let i = 0; i < k.length; i++) {
    const c = k.charCodeAt(i);
    if (!(c < 128 && TOKEN[c] === 1)) return o;
    out[p++] = c;
  }
  out[p++] = 58; // ':'
  out[p++] = 32;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    // A field value Node would send: tab, visible latin1; no CR, LF, NUL or other controls.
    if ((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff) return o;
    out[p++] = c;
  }
  out[p++] = 13;
  out[p++] = 10;
  return p;
}
