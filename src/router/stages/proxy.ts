// Stage 4, proxy: one admitted request over its instance's channel (protocol/client.ts: the framed instance
// protocol, or HTTP to a custom container, protocol/http-client.ts) — forwarded headers, the REQUEST (or
// REQUEST_STREAM + BODY frames), the instance's answer (a RESPONSE frame either way) or failure. A Flight
// talks to the rest of the router only through FlightControl (admission's slot accounting and the
// answer stage's record), never through Router itself.

import { randomFillSync } from 'node:crypto';
import { FRAME_BUSY, FRAME_INSTANCE_ERROR, readResponseHeadersFlat, responseStatus } from '../../protocol/frame.js';
import type { Exchange, InstanceChannel } from '../../protocol/client.js';
// Request headers not forwarded: hop-by-hop (RFC 9110 §7.6.1), the credential, and the router's own.
import { HOP_BY_HOP } from '../../protocol/headers.js';
import type { BodySink, Http1Request } from '../http1.js';
import type { AuthType, DeploymentState } from '../state.js';
import { answerError, answerModel, errorBody } from './answer.js';

/** What a Flight may ask of the router: the admission stage implements it (./admission.ts). */
export interface FlightControl {
  /** The flight left its instance (answered, failed, timed out): free its slot and serve the queue. */
  release(f: Flight): void;
  /** Never written to `failed`: send it to another instance with a free slot, or fail it (502). */
  retry(f: Flight, failed: InstanceChannel | null): void;
  /** Final accounting (metrics, traffic log), once per request. */
  finish(f: Flight, status: number, responseBytes: number): void;
  /** The client left before the answer: the flight leaves the queue, or is cancelled at its instance. */
  gone(f: Flight): void;
  /** The instance host did not take it (BUSY, instance admission): another instance, or 429. */
  busy(f: Flight, reason: number): void;
}

export const EMPTY = Buffer.alloc(0);
/** Response headers the router sets itself; an instance's own values are not passed on. */
const ROUTER_OWNED = new Set(['content-length', 'x-request-id', 'x-ms-client-request-id', 'connection', 'transfer-encoding', 'keep-alive', 'azureml-model-deployment']);

/**
 * One scoring request from admission to answer. A class rather than closures: one allocation per
 * request, and it is the Exchange the instance connection calls back.
 */
export class Flight implements Exchange {
  deadline: number;
  /** When it entered the queue (performance.now()), for max_queue_wait_ms. */
  queuedAt = 0;
  sentAt = 0;
  retried = false;
  conn: InstanceChannel | null = null;
  /** Its request id on `conn` (for CANCEL) while it is there. */
  id = 0;
  /** Waiting in its deployment's queue (admission.ts). */
  queued = false;
  /**
   * Queued while its deployment had no instance (scaled to zero): it waits for an instance to start, up
   * to its deadline, and max_queue_wait_ms (a bound on waiting for a busy instance's slot) does not apply.
   */
  cold = false;
  modelStatus = 0;
  /** Body bytes sent (a streamed body's grow as its parts go). */
  bodyBytes: number;
  /** Its body went to the instance as it arrived (StreamedBody): it cannot be sent anywhere else. */
  streamed = false;
  /** Instances that answered it BUSY (instance admission), not tried again; null until one does. */
  busyAt: InstanceChannel[] | null = null;

  constructor(
    readonly control: FlightControl,
    readonly req: Http1Request,
    readonly d: DeploymentState,
    readonly method: string,
    readonly path: string,
    /** Forwarded request headers, name, value pairs (x-request-id is added when sent). */
    readonly headers: string[],
    readonly body: Buffer,
    readonly requestId: string,
    readonly clientRequestId: string,
    readonly startedAt: number,
    public bodyDoneAt: number,
    readonly userAgent: string,
    readonly authType: AuthType,
  ) {
    this.deadline = startedAt + d.route.requestTimeoutMs;
    this.bodyBytes = body.length;
  }

  /**
   * The instance's status goes to the client as it is, not wrapped in 424: the OpenAPI document (Azure's
   * openapi_uri), and the Open Inference Protocol (/v2/...), whose clients (Triton's, KServe's) read
   * 400/404 and `{"error": ...}` bodies themselves.
   */
  get passesStatus(): boolean {
    return this.path.startsWith('/swagger.json') || this.path.startsWith('/v2');
  }

  /** http1.ts: the client's connection closed before the answer. */
  clientGone(): void {
    this.control.gone(this);
  }

  onResponse(frame: Buffer): void {
    if (frame[8] === FRAME_BUSY) return this.control.busy(this, frame[9]);
    const status = responseStatus(frame);
    this.modelStatus = status;
    this.d.m.modelDuration.observe((performance.now() - this.sentAt) / 1000);
    this.control.release(this);
    if (this.req.destroyed) {
      // Recorded as nginx does for a client that closed first (499), not left out of the log.
      this.control.finish(this, 499, 0);
      return;
    }
    const out: string[] = [];
    const bodyStart = readResponseHeadersFlat(frame, ROUTER_OWNED, out);
    // A view: respond() copies it into the answer it writes, so nothing keeps the instance's read alive.
    const responseBody = frame.subarray(bodyStart);
    if (frame[8] === FRAME_INSTANCE_ERROR) {
      // The instance host answered because the instance failed (a worker died, it is shutting down): an
      // infrastructure error, passed on as one (502/503), not as the model's answer (424).
      // Recorded as what the client was sent (502/503), not the instance host's own status.
      this.control.finish(this, this.instanceFailed(status, responseBody), 0);
      return;
    }
    const code = answerModel(this, status, out, responseBody);
    this.control.finish(this, code, responseBody.length);
  }

  onFailure(reason: 'timeout' | 'unavailable' | 'dropped'): void {
    if (reason === 'unavailable' && !this.retried) {
      // Never written: the instance cannot have run it, so one more try on another ready instance.
      this.retried = true;
      const failed = this.conn;
      this.conn = null;
      this.control.retry(this, failed);
      return;
    }
    this.control.release(this);
    if (reason === 'timeout') this.fail(408, `Request timed out after ${this.d.route.requestTimeoutMs} ms (request_timeout_ms of deployment '${this.d.name}')`);
    else this.fail(502, `The instance of deployment '${this.d.name}' closed the connection before answering`);
  }

  /** Answers with an error of the router's own (not the model's) and records it. */
  fail(status: number, message: string, retryAfter?: string): void {
    answerError(this.req, status, errorBody(message), this.requestId, this.d.name, retryAfter);
    this.control.finish(this, status, 0);
  }

  /** Answers 502/503 for an INSTANCE_ERROR; returns the status sent. */
  private instanceFailed(status: number, body: Buffer): number {
    let detail = '';
    try {
      const m = (JSON.parse(body.toString('utf8')) as { message?: unknown }).message;
      if (typeof m === 'string') detail = ` ${m}`;
    } catch {
      // not JSON: the status says enough
    }
    const code = status === 503 ? 503 : 502;
    const message = `The instance of deployment '${this.d.name}' failed while serving the request (an infrastructure error, not the model's answer).${detail}`;
    answerError(this.req, code, errorBody(message), this.requestId, this.d.name, code === 503 ? '1' : undefined);
    return code;
  }
}

/** One Flight for `req`: its forwarded headers and request ids. */
export function newFlight(control: FlightControl, req: Http1Request, d: DeploymentState, path: string, body: Buffer, authType: AuthType): Flight {
  // AML overrides x-request-id so it is always a GUID of its own (contract §4.3).
  const requestId = requestUuid();
  const headers: string[] = [];
  const h = req.headers;
  let clientRequestId = '';
  let userAgent = '';
  for (let i = 0; i < h.length; i += 2) {
    const k = h[i];
    if (HOP_BY_HOP.has(k)) continue;
    if (k === 'x-ms-client-request-id') {
      clientRequestId = sanitizeClientRequestId(h[i + 1]);
      headers.push(k, clientRequestId);
      continue;
    }
    if (k === 'user-agent') userAgent = h[i + 1];
    headers.push(k, h[i + 1]);
  }
  return new Flight(control, req, d, req.method, path, headers, body, requestId, clientRequestId, req.startedAt, performance.now(), userAgent, authType);
}

/** Sends `f` whole on `conn` (a free slot the admission stage found). */
export function send(f: Flight, conn: InstanceChannel): void {
  f.conn = conn;
  f.sentAt = performance.now();
  f.d.m.inFlight++;
  f.id = conn.send(f.method, f.path, f.headers, f.requestId, f.body, f);
}

/**
 * A request body streamed to its instance as it arrives (http1.ts BodySink): the REQUEST_STREAM frame
 * goes out at once; each part becomes a BODY frame, the last one flagged. When the instance connection's
 * writes back up, the client's socket stops being read until they drain, so the router holds at most
 * about one read per streamed request. A stream that fails after its first frame is not retried.
 */
export class StreamedBody implements BodySink {
  private readonly id: number;
  private readonly resume = (): void => this.f.req.conn.releaseReading();

  constructor(
    private readonly f: Flight,
    private readonly conn: InstanceChannel,
  ) {
    f.conn = conn;
    f.sentAt = performance.now();
    f.d.m.inFlight++;
    this.id = f.id = conn.sendStream(f.method, f.path, f.headers, f.requestId, f);
  }

  data(part: Buffer): void {
    const f = this.f;
    if (f.conn === null) return; // already answered or failed: the rest goes nowhere
    f.bodyBytes += part.length;
    this.conn.sendBody(this.id, part, false);
    if (this.conn.congested) {
      f.req.conn.holdReading();
      this.conn.whenDrained(this.resume);
    }
  }

  end(): void {
    this.f.bodyDoneAt = performance.now();
    if (this.f.conn !== null) this.conn.sendBody(this.id, EMPTY, true);
  }

  abort(status: number): void {
    const f = this.f;
    if (f.conn === null) return;
    // The client went away or was cut mid-body: the instance drops what it reassembled (CANCEL).
    this.conn.cancel(this.id);
    f.control.release(f);
    f.control.finish(f, status, 0);
  }
}

const RANDOM = Buffer.allocUnsafe(16 * 256);
let randomAt = RANDOM.length;
const UUID = Buffer.allocUnsafe(36);
const HEX = Uint8Array.from('0123456789abcdef', (c) => c.charCodeAt(0));

/**
 * A random (version 4) UUID, as crypto.randomUUID() makes one (random bytes from the same CSPRNG, taken
 * 256 UUIDs at a time), formatted into a scratch buffer and read out as one flat string: randomUUID()
 * joins 20 pieces into a cons string, ~600 bytes of young garbage per request (7.5 % of everything the
 * router allocated, allocation sampling), later flattened again when written.
 */
export function requestUuid(): string {
  if (randomAt === RANDOM.length) {
    randomFillSync(RANDOM);
    randomAt = 0;
  }
  const r = RANDOM;
  const at = randomAt;
  randomAt += 16;
  r[at + 6] = (r[at + 6] & 0x0f) | 0x40; // version 4
  r[at + 8] = (r[at + 8] & 0x3f) | 0x80; // variant 10
  let p = 0;
  for (let i = 0; i < 16; i++) {
    if (i === 4 || i === 6 || i === 8 || i === 10) UUID[p++] = 45; // '-'
    const b = r[at + i];
    UUID[p++] = HEX[b >> 4];
    UUID[p++] = HEX[b & 15];
  }
  return UUID.toString('latin1', 0, 36);
}

/** Azure keeps only alphanumerics, hyphens and underscores, truncated to 40 characters (contract §4.3). */
function sanitizeClientRequestId(value: string): string {
  return value.replace(/[^A-Za-z0-9_-]/g, '').slice(0, 40);
}
