// The HTTP client for custom containers (BYOC: an environment with inference_config, contract §1.6). Such
// a container answers only HTTP on its scoring route, so this is the one place the router makes an HTTP
// hop (DESIGN.md "The instance protocol"). It has the framed client's interface (InstanceChannel) and
// hands each answer over as a RESPONSE frame, so admission, the 424 wrapping, mirror, metrics and the
// traffic log run unchanged: the router's stages never learn which transport served a request.
//
// What reaches a custom container: scoring requests only, `POST <scoring_uri>?q` → `<scoring_route.path>?q`,
// as Azure's front end forwards the scoring URI alone. The router answers `GET /` (its own health) itself;
// `GET <endpoint>/swagger.json` gets a 404 made here (the container has no generated OpenAPI document,
// and its paths other than the scoring route are not the client's business). Probes do not come through
// here either: the backend calls liveness_route / readiness_route itself (backend/process/probe.ts).
//
// Requests go over a keep-alive Agent, at most maxSockets connections at once (lifo: the fewest sockets
// that keep up stay warm). One request per socket at a time, as HTTP/1.1 without pipelining allows.

import { Agent, request, type ClientRequest, type IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Exchange, InstanceChannel } from './client.js';
import { encodeResponseHead, IdAllocator } from './frame.js';
import { CONNECTION_HEADERS } from './headers.js';
import { PendingTable } from './pending.js';

/** Where a custom container's scoring route listens (the IR's `http` InstanceAddress has this shape). */
export interface HttpAddress {
  readonly host: string;
  readonly port: number;
  /** The scoring route's path (inference_config.scoring_route.path), perhaps with a query of its own. */
  readonly path: string;
}

export interface HttpInstanceOptions {
  /** Connections open at once (default 16); more requests wait in the Agent for a free one. */
  maxSockets?: number;
  /**
   * Largest answer body accepted (the router's maxResponseBytes; its headers are bounded by Node's
   * maxHeaderSize). A larger one fails the request 'dropped', as an oversized frame does on the framed
   * client: the container is untrusted code and must not make the router buffer without bound.
   */
  maxBodyBytes?: number;
  /** How long the instance is avoided after it refused or reset a connection (default 1 s). */
  retryAfterMs?: number;
  /** Called when a broken instance may be used again (the router serves what queued meanwhile). */
  onUsable?: () => void;
  /**
   * How long an idle keep-alive connection is kept (default 1.5 s). Below the shortest keep-alive of the
   * common servers (gunicorn's 2 s), so the container rarely closes a socket the router is about to reuse.
   */
  idleSocketMs?: number;
}

const SWEEP_MS = 20;
/** A streamed body's writes wait for a request whose socket buffered more than this (as the framed client). */
const STREAM_HIGH_WATER = 1024 * 1024;
const NOT_FOUND_BODY = Buffer.from('{"message":"Not found: a custom container serves its scoring route only"}');
/** The container's headers about its own hop, and `date`, which the router's answer carries already. */
const NOT_PASSED_ON: ReadonlySet<string> = new Set([...CONNECTION_HEADERS, 'date']);
const NOT_FOUND_HEAD = [['content-type', 'application/json']] as const;

/** One request in flight. */
class Call {
  req: ClientRequest | null = null;
  /** The socket connected (or was reused): from then on the container may have received the request. */
  written = false;
  chunks: Buffer[] = [];
  bytes = 0;
  constructor(
    readonly id: number,
    readonly ex: Exchange,
    readonly method: string,
    readonly path: string,
    readonly headers: string[],
    /** null: a streamed body, whose parts follow in sendBody. */
    readonly body: Buffer | null,
  ) {}
}

export class HttpInstanceConnection implements InstanceChannel {
  outstanding = 0;
  broken = false;
  private closing = false;
  private destroyed = false;
  private readonly pending = new PendingTable<Call>();
  private readonly ids = new IdAllocator();
  private readonly agent: Agent;
  private readonly hostHeader: string;
  /** The scoring path without its query, and what joins a client's query to it. */
  private readonly scorePath: string;
  private readonly joiner: string;
  private readonly maxBodyBytes: number;
  private readonly retryAfterMs: number;
  private readonly onUsable: (() => void) | undefined;
  private sweepTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  /** Streamed requests whose body is still being written, for `congested`. */
  private readonly streams = new Set<Call>();
  private drainWaiters: (() => void)[] = [];

  constructor(
    readonly address: HttpAddress,
    options: HttpInstanceOptions = {},
  ) {
    const maxSockets = options.maxSockets ?? 16;
    this.agent = new Agent({ keepAlive: true, maxSockets, maxFreeSockets: maxSockets, scheduling: 'lifo', timeout: options.idleSocketMs ?? 1500 });
    this.hostHeader = `${address.host.includes(':') ? `[${address.host}]` : address.host}:${address.port}`;
    this.scorePath = address.path.startsWith('/') ? address.path : `/${address.path}`;
    this.joiner = this.scorePath.includes('?') ? '&' : '?';
    this.maxBodyBytes = options.maxBodyBytes ?? Infinity;
    this.retryAfterMs = options.retryAfterMs ?? 1000;
    this.onUsable = options.onUsable;
  }

  get isOpen(): boolean {
    return !this.closing;
  }

  /** Connections allowed at once; the router sets it from max_concurrent_requests_per_instance at each table. */
  set maxSockets(n: number) {
    this.agent.maxSockets = n;
    this.agent.maxFreeSockets = n;
  }

  get maxSockets(): number {
    return this.agent.maxSockets;
  }

  send(method: string, url: string, headers: readonly string[], requestId: string, body: Buffer, ex: Exchange): number {
    return this.start(method, url, headers, requestId, body, ex);
  }

  sendStream(method: string, url: string, headers: readonly string[], requestId: string, ex: Exchange): number {
    return this.start(method, url, headers, requestId, null, ex);
  }

  sendBody(id: number, part: Buffer, last: boolean): void {
    const call = this.pending.get(id);
    const req = call?.req;
    if (call === undefined || req === null || req === undefined) return;
    if (part.length > 0) req.write(part);
    if (last) {
      req.end();
      this.streams.delete(call);
      this.wakeDrainWaiters();
    }
  }

  cancel(id: number): void {
    const call = this.pending.get(id);
    if (call === undefined) return;
    this.forget(call);
    // The container sees its connection close, as a client that went away (there is no CANCEL in HTTP).
    call.req?.destroy();
    if (this.closing && this.pending.size === 0) this.destroy();
  }

  get congested(): boolean {
    for (const c of this.streams) {
      const r = c.req;
      // A request still waiting for one of the Agent's sockets holds its first part in memory and says it
      // needs a drain; counting it would stop every upload that has a socket, and none could then end
      // and free one for it.
      if (r !== null && r.socket && (r.writableNeedDrain || r.writableLength > STREAM_HIGH_WATER)) return true;
    }
    return false;
  }

  whenDrained(fn: () => void): void {
    if (!this.congested) fn();
    else this.drainWaiters.push(fn);
  }

  close(): void {
    if (this.closing) return;
    this.closing = true;
    if (this.pending.size === 0) this.destroy();
  }

  private start(method: string, url: string, headers: readonly string[], requestId: string, body: Buffer | null, ex: Exchange): number {
    if (this.closing) {
      ex.onFailure('unavailable');
      return 0;
    }
    const id = this.pending.freeId(this.ids);
    const isScore = url.startsWith('/score') && (url.length === 6 || url.charCodeAt(6) === 63); /* '?' */
    const h = headers.slice();
    h.push('x-request-id', requestId, 'host', this.hostHeader);
    if (body !== null) h.push('content-length', String(body.length));
    const call = new Call(id, ex, method, isScore ? (url.length === 6 ? this.scorePath : this.scorePath + this.joiner + url.slice(7)) : '', h, body);
    this.pending.set(id, call);
    this.outstanding++;
    if (this.sweepTimer === null) this.sweepTimer = setInterval(this.sweep, SWEEP_MS).unref();
    if (!isScore) {
      // Answered after send() returns, as every answer is (the caller records the id first).
      queueMicrotask(() => {
        if (this.pending.get(id) !== call) return;
        this.forget(call);
        ex.onResponse(Buffer.concat([encodeResponseHead(id, 404, NOT_FOUND_HEAD, NOT_FOUND_BODY.length), NOT_FOUND_BODY]));
        if (this.closing && this.pending.size === 0) this.destroy();
      });
      return id;
    }
    this.issue(call);
    if (body === null) this.streams.add(call);
    return id;
  }

  private issue(call: Call): void {
    let req: ClientRequest;
    try {
      req = request({ agent: this.agent, host: this.address.host, port: this.address.port, method: call.method, path: call.path, headers: call.headers });
    } catch {
      // A header Node refuses to send (cannot happen for what http1.ts parsed, but the router must stay up).
      queueMicrotask(() => this.failed(call, 'unavailable', false));
      return;
    }
    call.req = req;
    req.on('socket', (socket: Socket) => {
      if (this.pending.get(call.id) !== call || call.req !== req) return;
      if (socket.connecting) socket.once('connect', () => (call.written = true));
      else call.written = true;
    });
    req.on('response', (res) => this.onResponse(call, req, res));
    req.on('error', () => this.onError(call, req));
    req.on('drain', () => this.wakeDrainWaiters());
    if (call.body !== null) req.end(call.body);
  }

  private onResponse(call: Call, req: ClientRequest, res: IncomingMessage): void {
    if (this.pending.get(call.id) !== call || call.req !== req) {
      res.resume();
      return;
    }
    const declared = Number(res.headers['content-length']);
    if (declared > this.maxBodyBytes) return this.oversize(call, req);
    res.on('data', (chunk: Buffer) => {
      if (call.req !== req || this.pending.get(call.id) !== call) return;
      call.bytes += chunk.length;
      if (call.bytes > this.maxBodyBytes) return this.oversize(call, req);
      call.chunks.push(chunk);
    });
    res.on('end', () => {
      if (call.req !== req || this.pending.get(call.id) !== call) return;
      const raw = res.rawHeaders;
      const headers: [string, string][] = [];
      for (let i = 0; i < raw.length; i += 2) {
        const name = raw[i].toLowerCase();
        if (!NOT_PASSED_ON.has(name)) headers.push([name, raw[i + 1]]);
      }
      const head = encodeResponseHead(call.id, res.statusCode ?? 502, headers, call.bytes);
      const frame = Buffer.concat([head, ...call.chunks], head.length + call.bytes);
      call.chunks = [];
      this.forget(call);
      call.ex.onResponse(frame);
      // Answered before its streamed body was all sent (a 413, a 401): the request never ends on our
      // side, and Node gives a socket back to the Agent only when both directions are done — it would
      // stay taken until the container closes it (300 s for Node's own servers). Drop this one.
      if (!req.writableEnded) req.destroy();
      if (this.closing && this.pending.size === 0) this.destroy();
    });
    // Cut mid-answer (the socket closed before the body's end): the container may have run it.
    res.on('close', () => {
      if (!res.complete) this.onError(call, req);
    });
  }

  /** An answer past maxFrameBytes: not buffered further, and the request fails as the framed one does. */
  private oversize(call: Call, req: ClientRequest): void {
    req.destroy();
    this.failed(call, 'dropped', true);
  }

  private onError(call: Call, req: ClientRequest): void {
    if (this.pending.get(call.id) !== call || call.req !== req) return;
    // Refused before the request went out: safe to send to another instance. Once the socket is connected
    // (or reused) the container may have run it, and it is not sent again, a reused keep-alive socket too:
    // a container that dies mid-request looks the same as one closing an idle socket as the request goes
    // out. That race is kept rare instead: idle sockets are dropped first (idleSocketMs), and Node's Agent
    // follows a container's Keep-Alive timeout hint.
    this.failed(call, call.written ? 'dropped' : 'unavailable', true);
  }

  private failed(call: Call, reason: 'unavailable' | 'dropped', instanceFault: boolean): void {
    if (this.pending.get(call.id) !== call) return;
    this.forget(call);
    if (instanceFault && !this.closing) {
      // As the framed client does for a connection that failed on its own: avoided for a while, not until
      // the next routing table (a container that restarts is usable again soon).
      this.broken = true;
      if (this.retryTimer === null) this.retryTimer = setTimeout(this.retry, this.retryAfterMs).unref();
    }
    call.ex.onFailure(reason);
    if (this.closing && this.pending.size === 0) this.destroy();
  }

  private forget(call: Call): void {
    this.pending.take(call.id);
    this.outstanding--;
    if (this.streams.delete(call)) this.wakeDrainWaiters();
  }

  private wakeDrainWaiters(): void {
    if (this.drainWaiters.length === 0 || this.congested) return;
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of w) fn();
  }

  /** Deadlines, checked as the framed client does: a request past its own is aborted at the container. */
  private readonly sweep = (): void => {
    if (this.pending.size === 0) {
      if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
      this.sweepTimer = null;
      return;
    }
    const now = performance.now();
    this.pending.forEach((call) => {
      if (call.ex.deadline > now) return;
      this.forget(call);
      call.req?.destroy();
      call.ex.onFailure('timeout');
    });
    if (this.closing && this.pending.size === 0) this.destroy();
  };

  private readonly retry = (): void => {
    this.retryTimer = null;
    if (this.closing) return;
    this.broken = false;
    this.onUsable?.();
  };

  private destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.closing = true;
    if (this.retryTimer !== null) clearTimeout(this.retryTimer);
    if (this.sweepTimer !== null) clearInterval(this.sweepTimer);
    this.retryTimer = this.sweepTimer = null;
    this.agent.destroy();
    const waiters = this.drainWaiters;
    this.drainWaiters = [];
    for (const fn of waiters) fn();
  }
}
