// The traffic log: one JSON line per scoring request with the columns of Azure's
// AmlOnlineEndpointTrafficLog (contract §6.3). Records go to an in-memory buffer that is written
// asynchronously; when the buffer is full, records are dropped and counted: serving never waits for,
// or fails because of, the log.

import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { STATUS_CODES } from 'node:http';
import { dirname } from 'node:path';
import { trafficLogDropped, trafficLogWritten } from './metrics.js';

export interface TrafficRecord {
  method: string;
  path: string;
  endpoint: string;
  deployment: string;
  responseCode: number;
  /** The model's status (0 when the model was not reached). */
  modelStatusCode: number;
  requestPayloadSize: number;
  responsePayloadSize: number;
  userAgent: string;
  xRequestId: string;
  xMsClientRequestId: string;
  totalDurationMs: number;
  requestDurationMs: number;
  responseDurationMs: number;
  authType: 'Key' | 'AMLToken' | 'AADToken' | '';
}

export interface TrafficSink {
  record(r: TrafficRecord): void;
  close(): Promise<void>;
}

export const NO_TRAFFIC_LOG: TrafficSink = { record() {}, close: async () => {} };


/**
 * Records are formatted at once and copied into one of two off-heap buffers: nothing per request stays
 * on the JavaScript heap until the next write (strings kept for a 200 ms flush would survive young-
 * generation collections and be copied, then promoted: measurable GC time on the router under load).
 * A timer writes the filled buffer while the other one takes records; a record that does not fit in
 * the buffer taking records is dropped and counted.
 *
 * The file is rotated by size, as log files are: once it would pass `maxFileBytes`, it becomes
 * `<file>.1` (older ones shift to `.2` ... `.<keepFiles>`, the oldest is deleted) and a new one starts.
 * Under load the router writes ~600 bytes per request: 100 MiB is about 170,000 requests.
 */
export interface TrafficLogOptions {
  /** Size of each of the two buffers: the most one flush interval can hold. Default 4 MiB. */
  bufferBytes?: number;
  flushMs?: number;
  /** Default 100 MiB. */
  maxFileBytes?: number;
  /** Rotated files kept. Default 5. */
  keepFiles?: number;
}

/**
 * Records formatted as JSON lines into one of two off-heap buffers, as they come; take() hands over the
 * lines formatted so far and swaps the buffers, so they stay valid until the next take(). What the file
 * writer and a router worker's sink (main/router-workers.ts, which sends the bytes to the primary) share.
 */
export class TrafficLines {
  private active: Buffer;
  private spare: Buffer;
  private used = 0;
  private records = 0;
  private isoMs = 0;
  private iso = '';
  // The JSON of the last path and user agent: clients repeat theirs, and JSON.stringify is not free.
  private path = '';
  private pathJson = '""';
  private userAgent = '';
  private userAgentJson = '""';

  constructor(bufferBytes: number) {
    this.active = Buffer.allocUnsafe(bufferBytes);
    this.spare = Buffer.allocUnsafe(bufferBytes);
  }

  /** The record as one line; false (and counted as dropped) when the buffer taking lines is full. */
  format(r: TrafficRecord): boolean {
    const now = Date.now();
    if (now !== this.isoMs) {
      this.isoMs = now;
      this.iso = new Date(now).toISOString();
    }
    if (r.path !== this.path) {
      this.path = r.path;
      this.pathJson = JSON.stringify(r.path);
    }
    if (r.userAgent !== this.userAgent) {
      this.userAgent = r.userAgent;
      this.userAgentJson = JSON.stringify(r.userAgent.length > 70 ? r.userAgent.slice(0, 70) : r.userAgent);
    }
    const codeReason = STATUS_CODES[r.responseCode] ?? '';
    const modelReason = STATUS_CODES[r.modelStatusCode] ?? '';
    // The line is written into the buffer piece by piece, never built as a string: a ~600-character
    // template is ~40 cons-string pieces plus its flat copy, ~1.7 KB of young garbage per request (a
    // quarter of all the router allocated, measured with allocation sampling), and scavenges grow with
    // what is allocated while requests are in flight. Upper bound first: every piece is one byte per
    // character (latin1), numbers at most 24 characters each.
    const need =
      LINE_FIXED_BYTES + this.iso.length + r.method.length + this.pathJson.length + r.endpoint.length + r.deployment.length + codeReason.length +
      modelReason.length + this.userAgentJson.length + r.xRequestId.length + r.xMsClientRequestId.length + r.authType.length + 7 * 24;
    if (need > this.active.length - this.used) {
      trafficLogDropped.inc();
      return false;
    }
    // Method is an HTTP token and the names are validated endpoint/deployment names: nothing to escape.
    // Written as latin1, one byte per character: every field is ASCII except the path and the user agent,
    // which the HTTP parser decoded byte for byte as latin1, so this writes the bytes the client sent.
    const b = this.active;
    let o = this.used;
    o = put(b, o, P_TIME, this.iso);
    o = put(b, o, P_METHOD, r.method);
    o = put(b, o, P_PATH, this.pathJson);
    o = put(b, o, P_ENDPOINT, r.endpoint);
    o = put(b, o, P_DEPLOYMENT, r.deployment);
    o = putInt(b, putBytes(b, o, P_CODE), r.responseCode);
    o = put(b, o, P_CODE_REASON, codeReason);
    o = putInt(b, putBytes(b, o, P_MODEL_CODE), r.modelStatusCode);
    o = put(b, o, P_MODEL_REASON, modelReason);
    o = putInt(b, putBytes(b, o, P_REQ_SIZE), r.requestPayloadSize);
    o = putInt(b, putBytes(b, o, P_RESP_SIZE), r.responsePayloadSize);
    o = put(b, o, P_AGENT, this.userAgentJson);
    o = put(b, o, P_REQUEST_ID, r.xRequestId);
    o = put(b, o, P_CLIENT_ID, r.xMsClientRequestId);
    o = putFixed3(b, putBytes(b, o, P_TOTAL), r.totalDurationMs);
    o = putFixed3(b, putBytes(b, o, P_REQ_DURATION), r.requestDurationMs);
    o = putFixed3(b, putBytes(b, o, P_RESP_DURATION), r.responseDurationMs);
    o = put(b, o, P_AUTH, r.authType);
    o = putBytes(b, o, P_END);
    this.used = o;
    this.records++;
    return true;
  }

  /** Lines formatted elsewhere (a router worker's batch), copied in whole; false (dropped, counted) when they do not fit. */
  append(lines: Uint8Array, records: number): boolean {
    if (lines.length > this.active.length - this.used) {
      trafficLogDropped.inc(records);
      return false;
    }
    this.active.set(lines, this.used);
    this.used += lines.length;
    this.records += records;
    return true;
  }

  /** The lines since the last take (valid until the next one), or null when there are none. */
  take(): { bytes: Buffer; records: number } | null {
    if (this.used === 0) return null;
    const full = this.active;
    const taken = { bytes: full.subarray(0, this.used), records: this.records };
    this.active = this.spare;
    this.spare = full;
    this.used = 0;
    this.records = 0;
    return taken;
  }
}

export class FileTrafficLog implements TrafficSink {
  private readonly lines: TrafficLines;
  private stream: WriteStream;
  private fileBytes: number;
  private readonly maxFileBytes: number;
  private readonly keepFiles: number;
  private writing = false;
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly file: string,
    o: TrafficLogOptions = {},
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.lines = new TrafficLines(o.bufferBytes ?? 4 * 1024 * 1024);
    this.maxFileBytes = o.maxFileBytes ?? 100 * 1024 * 1024;
    this.keepFiles = Math.max(1, o.keepFiles ?? 5);
    this.fileBytes = existsSync(file) ? statSync(file).size : 0;
    this.stream = this.open();
    this.timer = setInterval(() => this.flush(), o.flushMs ?? 200).unref();
  }

  private open(): WriteStream {
    const stream = createWriteStream(this.file, { flags: 'a' });
    stream.on('error', () => {}); // a broken log must not take the router down
    return stream;
  }

  /** <file> → <file>.1 → ... → <file>.<keepFiles> (deleted beyond). Writes queued on the old stream still land in the renamed file. */
  private rotate(): void {
    try {
      rmSync(`${this.file}.${this.keepFiles}`, { force: true });
      for (let i = this.keepFiles - 1; i >= 1; i--) if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      renameSync(this.file, `${this.file}.1`);
    } catch {
      return; // keep appending to the current file rather than lose records
    }
    this.stream.end();
    this.stream = this.open();
    this.fileBytes = 0;
  }

  record(r: TrafficRecord): void {
    this.lines.format(r);
  }

  /** A router worker's lines (formatted there, sent in batches): one writer, one rotation. */
  appendLines(lines: Uint8Array, records: number): void {
    this.lines.append(lines, records);
  }

  private flush(): void {
    if (this.writing) return;
    // The buffer taken is not reused before the next take, which waits for this write.
    const taken = this.lines.take();
    if (taken === null) return;
    this.writing = true;
    if (this.fileBytes > 0 && this.fileBytes + taken.bytes.length > this.maxFileBytes) this.rotate();
    this.fileBytes += taken.bytes.length;
    this.stream.write(taken.bytes, () => {
      this.writing = false;
      trafficLogWritten.inc(taken.records);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    while (this.writing) await new Promise((r) => setTimeout(r, 5));
    this.flush();
    await new Promise<void>((r) => this.stream.end(r));
  }
}

// The constant parts of a line (latin1 bytes), in order; each variable part follows the one before it.
const seg = (text: string): Uint8Array => Uint8Array.from(text, (c) => c.charCodeAt(0));
const P_TIME = seg('{"TimeGenerated":"');
const P_METHOD = seg('","Method":"');
const P_PATH = seg('","Path":');
const P_ENDPOINT = seg(',"EndpointName":"');
const P_DEPLOYMENT = seg('","DeploymentName":"');
const P_CODE = seg('","Protocol":"HTTP/1.1","ResponseCode":');
const P_CODE_REASON = seg(',"ResponseCodeReason":"');
const P_MODEL_CODE = seg('","ModelStatusCode":');
const P_MODEL_REASON = seg(',"ModelStatusReason":"');
const P_REQ_SIZE = seg('","RequestPayloadSize":');
const P_RESP_SIZE = seg(',"ResponsePayloadSize":');
const P_AGENT = seg(',"UserAgent":');
const P_REQUEST_ID = seg(',"XRequestId":"');
const P_CLIENT_ID = seg('","XMSClientRequestId":"');
const P_TOTAL = seg('","TotalDurationMs":');
const P_REQ_DURATION = seg(',"RequestDurationMs":');
const P_RESP_DURATION = seg(',"ResponseDurationMs":');
const P_AUTH = seg(',"AuthType":"');
const P_END = seg('"}\n');
const LINE_FIXED_BYTES = [P_TIME, P_METHOD, P_PATH, P_ENDPOINT, P_DEPLOYMENT, P_CODE, P_CODE_REASON, P_MODEL_CODE, P_MODEL_REASON, P_REQ_SIZE,
  P_RESP_SIZE, P_AGENT, P_REQUEST_ID, P_CLIENT_ID, P_TOTAL, P_REQ_DURATION, P_RESP_DURATION, P_AUTH, P_END].reduce((n, p) => n + p.length, 0);

function putBytes(b: Buffer, o: number, bytes: Uint8Array): number {
  b.set(bytes, o);
  return o + bytes.length;
}

/** `bytes`, then `s` as latin1 (the low byte of each character, as Buffer.write(s, 'latin1') does). */
function put(b: Buffer, o: number, bytes: Uint8Array, s: string): number {
  o = putBytes(b, o, bytes);
  for (let i = 0; i < s.length; i++) b[o + i] = s.charCodeAt(i);
  return o + s.length;
}

/** A non-negative integer in decimal (a status, a size); anything else through String(). */
function putInt(b: Buffer, o: number, n: number): number {
  if (!(n >= 0 && n < 1e15 && n === Math.floor(n))) {
    const s = String(Number.isFinite(n) ? n : 0);
    for (let i = 0; i < s.length; i++) b[o + i] = s.charCodeAt(i);
    return o + s.length;
  }
  let digits = 1;
  for (let t = n; t >= 10; t = Math.floor(t / 10)) digits++;
  for (let i = digits - 1; i >= 0; i--) {
    b[o + i] = 48 + (n % 10);
    n = Math.floor(n / 10);
  }
  return o + digits;
}

/** x with three decimals, as x.toFixed(3) writes it for the durations logged (not NaN or Infinity: 0). */
function putFixed3(b: Buffer, o: number, x: number): number {
  if (!Number.isFinite(x)) x = 0;
  if (x < 0) {
    b[o++] = 45; // '-'
    x = -x;
  }
  const m = Math.round(x * 1000);
  o = putInt(b, o, Math.floor(m / 1000));
  const frac = m % 1000;
  b[o] = 46; // '.'
  b[o + 1] = 48 + Math.floor(frac / 100);
  b[o + 2] = 48 + (Math.floor(frac / 10) % 10);
  b[o + 3] = 48 + (frac % 10);
  return o + 4;
}
