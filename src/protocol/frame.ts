// infergate's instance protocol (DESIGN.md "The instance protocol"): one persistent, multiplexed,
// length-prefixed connection between the router and an instance host (Unix socket), and between an
// instance host and each of its Python workers (stdin/stdout). Measured at ~1x a bare Node server where
// an HTTP hop costs 0.36-0.43x (reference/perf-baselines.md).
//
// Every frame, both directions, all integers big-endian:
//   u32 length        bytes that follow this field
//   u32 id            request id chosen by the sender of the REQUEST; the RESPONSE echoes it
//   u8  type          1 REQUEST, 2 RESPONSE, 3 CANCEL (deadline passed, or the client went away; no
//                     payload), 4 REQUEST_STREAM, 5 BODY, 6 INSTANCE_ERROR, 7 LIMITS, 8 BUSY
//   payload
// REQUEST payload:  u8 methodLen, method (ASCII) | u16 urlLen, url (UTF-8, path + query) |
//                   u16 headerCount, then per header: u16 nameLen, name (lower-case) | u16 valueLen, value |
//                   body (the rest)
// RESPONSE payload: u16 status | u16 headerCount, headers as above | body (the rest)
//
// A large body may travel in several frames (router → instance host only), so that one slow upload does
// not hold up the other requests multiplexed on the same connection and the router never holds it whole:
//   REQUEST_STREAM   a REQUEST whose body continues: same payload as REQUEST (its body part may be empty);
//   BODY             u8 flags (1 = last) | the next part of the body of request `id`.
// The receiver appends the parts in order and, on the BODY flagged last, handles the whole as the
// REQUEST it would have received in one frame (the instance host rebuilds exactly that frame, so the
// Python workers only ever see REQUEST). A CANCEL before the last part abandons the request.
//
// INSTANCE_ERROR has RESPONSE's payload: an answer made by the instance host itself because the instance
// failed (a Python worker died, the host is shutting down) rather than by the scoring script. The router
// passes its status on as an infrastructure error (502/503) instead of wrapping it into 424 as it does
// for the model's own non-200 answers (contract §4.2).
// The Python side of this codec is src/runtime/python/infergate_worker.py (REQUEST, RESPONSE and CANCEL
// only); keep the two in step. docs/protocol.md is the written spec, and the golden frames in
// src/protocol/testdata/ are run through both codecs (golden.test.ts).
//
// Header names are u16-long (they were u8 until issue 10: a 300-character name, which the router accepts,
// wrapped its length and corrupted the frame, and the instance's 400 came back as the model's 424).

export const FRAME_REQUEST = 1;
export const FRAME_RESPONSE = 2;
export const FRAME_CANCEL = 3;
export const FRAME_REQUEST_STREAM = 4;
export const FRAME_BODY = 5;
export const FRAME_INSTANCE_ERROR = 6;
/**
 * Instance admission (docs/router-scale.md): LIMITS (router → instance host, id 0) carries the
 * deployment's request_settings; BUSY (instance host → router) answers request `id` without running it.
 */
export const FRAME_LIMITS = 7;
export const FRAME_BUSY = 8;
/** BUSY reasons (its one payload byte). FULL: the host's bound is reached, nothing queued: try another instance. */
export const BUSY_FULL = 1;
/** WAITED: it waited max_queue_wait_ms in the host's queue and never started. */
export const BUSY_WAITED = 2;
/** BODY flag: this part is the last one. */
export const BODY_LAST = 1;
export const HEADER_BYTES = 9; // length + id + type
/** A BODY frame's bytes before its part: length, id, type, flags. */
export const BODY_HEADER_BYTES = 10;
export const MAX_ID = 0xffffffff;

/**
 * Request ids: one rule for every counter that allocates them (the router's connection, the instance
 * host's id space per Python worker): 1..max in turn, wrapping to 1 (0 is the Python workers' init
 * report), and never an id still in flight on the same channel: a reused id would hand one request's
 * answer to another. A channel cannot hold 2^32-1 requests at once, so the skip always ends.
 * `max` is MAX_ID on the wire; tests pass a small one to reach the wrap.
 */
export class IdAllocator {
  private next: number;

  constructor(first = 1, private readonly max: number = MAX_ID) {
    this.next = first;
  }

  /** The next id not in `inUse` (a PendingTable's taken slots: protocol/pending.ts freeId). */
  take(inUse: { has(id: number): boolean }): number {
    const max = this.max;
    let id = this.next;
    while (inUse.has(id)) id = id >= max ? 1 : id + 1;
    this.next = id >= max ? 1 : id + 1;
    return id;
  }
}

export type HeaderList = ReadonlyArray<readonly [string, string]>;

export interface RequestFrame {
  id: number;
  method: string;
  url: string;
  headers: [string, string][];
  body: Buffer;
}

export interface ResponseFrame {
  id: number;
  status: number;
  headers: [string, string][];
  body: Buffer;
}

/** Bytes of one header entry: u16 nameLen, name (latin1) | u16 valueLen, value (UTF-8). */
function entrySize(name: string, value: string): number {
  return 2 + name.length + 2 + Buffer.byteLength(value, 'utf8');
}

/** Writes one header entry at `pos`; returns the position after it. */
function writeEntry(buf: Buffer, pos: number, name: string, value: string): number {
  const kl = buf.write(name, pos + 2, 'latin1');
  buf.writeUInt16BE(kl, pos);
  pos += 2 + kl;
  const vl = buf.write(value, pos + 2, 'utf8');
  buf.writeUInt16BE(vl, pos);
  return pos + 2 + vl;
}

function headersSize(headers: HeaderList): number {
  let n = 2;
  for (const [k, v] of headers) n += entrySize(k, v);
  return n;
}

function writeHeaders(buf: Buffer, pos: number, headers: HeaderList): number {
  buf.writeUInt16BE(headers.length, pos);
  pos += 2;
  for (const [k, v] of headers) pos = writeEntry(buf, pos, k, v);
  return pos;
}

/** length, id and type: `length` counts the bytes after the length field. */
function writeFrameStart(buf: Buffer, id: number, type: number, length: number): void {
  buf.writeUInt32BE(length, 0);
  buf.writeUInt32BE(id, 4);
  buf[8] = type;
}

/** Size of a REQUEST's method and URL fields. */
const requestLineSize = (method: string, urlLen: number): number => 1 + method.length + 2 + urlLen;

/** Writes a REQUEST frame's start, method and URL; returns where its headers go. */
function writeRequestStart(buf: Buffer, id: number, method: string, url: string, urlLen: number, bodyLength: number, type = FRAME_REQUEST): number {
  writeFrameStart(buf, id, type, buf.length - 4 + bodyLength);
  buf[9] = method.length;
  const pos = 10 + buf.write(method, 10, 'latin1');
  buf.writeUInt16BE(urlLen, pos);
  return pos + 2 + buf.write(url, pos + 2, 'utf8');
}

function readHeaders(buf: Buffer, pos: number): [[string, string][], number] {
  const count = buf.readUInt16BE(pos);
  pos += 2;
  const headers: [string, string][] = new Array(count);
  for (let i = 0; i < count; i++) {
    const kl = buf.readUInt16BE(pos);
    const k = buf.toString('latin1', pos + 2, pos + 2 + kl);
    pos += 2 + kl;
    const vl = buf.readUInt16BE(pos);
    const v = buf.toString('utf8', pos + 2, pos + 2 + vl);
    pos += 2 + vl;
    headers[i] = [k, v];
  }
  return [headers, pos];
}

/** Encodes the head of a REQUEST frame; the body is written after it as a separate buffer (no copy). */
export function encodeRequestHead(id: number, method: string, url: string, headers: HeaderList, bodyLength: number): Buffer {
  const urlLen = Buffer.byteLength(url, 'utf8');
  const buf = Buffer.allocUnsafe(HEADER_BYTES + requestLineSize(method, urlLen) + headersSize(headers));
  writeHeaders(buf, writeRequestStart(buf, id, method, url, urlLen, bodyLength), headers);
  return buf;
}

/**
 * encodeRequestHead for headers as flat name, value pairs (the router's shape: no array per header), with
 * one more pair appended.
 */
export function encodeRequestHeadFlat(
  id: number,
  method: string,
  url: string,
  flat: readonly string[],
  extraName: string,
  extraValue: string,
  bodyLength: number,
  type: typeof FRAME_REQUEST | typeof FRAME_REQUEST_STREAM = FRAME_REQUEST,
): Buffer {
  const urlLen = Buffer.byteLength(url, 'utf8');
  let headerBytes = 2 + entrySize(extraName, extraValue);
  for (let i = 0; i < flat.length; i += 2) headerBytes += entrySize(flat[i], flat[i + 1]);
  const buf = Buffer.allocUnsafe(HEADER_BYTES + requestLineSize(method, urlLen) + headerBytes);
  let pos = writeRequestStart(buf, id, method, url, urlLen, bodyLength, type);
  buf.writeUInt16BE(flat.length / 2 + 1, pos);
  pos += 2;
  for (let i = 0; i < flat.length; i += 2) pos = writeEntry(buf, pos, flat[i], flat[i + 1]);
  writeEntry(buf, pos, extraName, extraValue);
  return buf;
}

/** The head of a BODY frame; the part is written after it as a separate buffer (no copy). */
export function encodeBodyHead(id: number, partLength: number, last: boolean): Buffer {
  const buf = Buffer.allocUnsafe(BODY_HEADER_BYTES);
  writeFrameStart(buf, id, FRAME_BODY, BODY_HEADER_BYTES - 4 + partLength);
  buf[9] = last ? BODY_LAST : 0;
  return buf;
}

/** `type`: FRAME_RESPONSE, or FRAME_INSTANCE_ERROR for an answer the instance host makes because the instance failed. */
export function encodeResponseHead(id: number, status: number, headers: HeaderList, bodyLength: number, type: typeof FRAME_RESPONSE | typeof FRAME_INSTANCE_ERROR = FRAME_RESPONSE): Buffer {
  const size = HEADER_BYTES + 2 + headersSize(headers);
  const buf = Buffer.allocUnsafe(size);
  writeFrameStart(buf, id, type, size - 4 + bodyLength);
  buf.writeUInt16BE(status, 9);
  writeHeaders(buf, 11, headers);
  return buf;
}

/** Header entries encoded once, for answers that always carry them (encodeResponseFrame). */
export class HeaderBlock {
  readonly bytes: Buffer;
  readonly count: number;

  constructor(headers: HeaderList) {
    const size = headersSize(headers);
    const buf = Buffer.allocUnsafe(size);
    writeHeaders(buf, 0, headers);
    this.bytes = buf.subarray(2); // without the count: it is written for the whole frame
    this.count = headers.length;
  }
}

/**
 * A whole RESPONSE frame in one buffer: the `block` headers, one more header, `headers` (may be null),
 * and a body given as a string of one-byte characters (written as latin1: JSON from pythonJsonDumps is
 * ASCII). An instance host's common answer, with no Buffer of its own for the body.
 */
export function encodeResponseFrame(id: number, status: number, block: HeaderBlock, name: string, value: string, headers: HeaderList | null, body: string): Buffer {
  const extra = headers === null ? 0 : headersSize(headers) - 2;
  const headBytes = HEADER_BYTES + 2 + 2 + block.bytes.length + entrySize(name, value) + extra;
  const buf = Buffer.allocUnsafe(headBytes + body.length);
  writeFrameStart(buf, id, FRAME_RESPONSE, buf.length - 4);
  buf.writeUInt16BE(status, 9);
  buf.writeUInt16BE(block.count + 1 + (headers === null ? 0 : headers.length), 11);
  let pos = writeEntry(buf, 13 + block.bytes.copy(buf, 13), name, value);
  if (headers !== null) for (const [k, v] of headers) pos = writeEntry(buf, pos, k, v);
  buf.write(body, pos, 'latin1');
  return buf;
}

/**
 * What an instance host admits (FRAME_LIMITS): at most `maxConcurrent` requests running (0: no limit, no
 * admission at all), at most `maxQueued` more waiting, each for at most `maxQueueWaitMs` (0: no bound).
 */
export interface InstanceLimits {
  maxConcurrent: number;
  maxQueued: number;
  maxQueueWaitMs: number;
}

/** LIMITS: u32 maxConcurrent | u32 maxQueued | u32 maxQueueWaitMs; id 0. */
export function encodeLimits(l: InstanceLimits): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 12);
  writeFrameStart(buf, 0, FRAME_LIMITS, buf.length - 4);
  buf.writeUInt32BE(l.maxConcurrent, 9);
  buf.writeUInt32BE(l.maxQueued, 13);
  buf.writeUInt32BE(l.maxQueueWaitMs, 17);
  return buf;
}

/** The limits in a LIMITS frame, or null if it is too short (a broken peer). */
export function decodeLimits(frame: Buffer): InstanceLimits | null {
  if (frame.length < HEADER_BYTES + 12) return null;
  return { maxConcurrent: frame.readUInt32BE(9), maxQueued: frame.readUInt32BE(13), maxQueueWaitMs: frame.readUInt32BE(17) };
}

/** BUSY: u8 reason (BUSY_FULL, BUSY_WAITED). */
export function encodeBusy(id: number, reason: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES + 1);
  writeFrameStart(buf, id, FRAME_BUSY, buf.length - 4);
  buf[9] = reason;
  return buf;
}

export function encodeCancel(id: number): Buffer {
  const buf = Buffer.allocUnsafe(HEADER_BYTES);
  writeFrameStart(buf, id, FRAME_CANCEL, 5);
  return buf;
}

/** Decodes a REQUEST frame given the whole frame (from its length field on). */
export function decodeRequest(frame: Buffer): RequestFrame {
  const id = frame.readUInt32BE(4);
  const ml = frame[9];
  const method = frame.toString('latin1', 10, 10 + ml);
  let pos = 10 + ml;
  const ul = frame.readUInt16BE(pos);
  const url = frame.toString('utf8', pos + 2, pos + 2 + ul);
  pos += 2 + ul;
  const [headers, end] = readHeaders(frame, pos);
  return { id, method, url, headers, body: frame.subarray(end) };
}

export function decodeResponse(frame: Buffer): ResponseFrame {
  const id = frame.readUInt32BE(4);
  const status = frame.readUInt16BE(9);
  const [headers, end] = readHeaders(frame, 11);
  return { id, status, headers, body: frame.subarray(end) };
}

/** The status of a RESPONSE frame. */
export function responseStatus(frame: Buffer): number {
  return frame.readUInt16BE(9);
}

/**
 * Appends a RESPONSE frame's headers to `out` as flat name, value pairs (the shape ServerResponse.writeHead
 * takes), leaving out the names in `skip`, and returns where the body starts. The router's hot path: no
 * array per header, no intermediate list.
 */
export function readResponseHeadersFlat(frame: Buffer, skip: ReadonlySet<string>, out: string[]): number {
  const count = frame.readUInt16BE(11);
  let pos = 13;
  for (let i = 0; i < count; i++) {
    const kl = frame.readUInt16BE(pos);
    const k = NAMES.get(frame, pos + 2, kl, 'latin1');
    pos += 2 + kl;
    const vl = frame.readUInt16BE(pos);
    if (!skip.has(k)) out.push(k, VALUES.get(frame, pos + 2, vl, 'utf8'));
    pos += 2 + vl;
  }
  return pos;
}

/**
 * The strings of recently seen short header names and values, by their bytes. An instance answers with
 * the same few headers (content-type: application/json, ...) every time: comparing a few bytes returns
 * the string made before instead of a new one per answer (two strings and two native calls per header,
 * ~8 % of what the router allocated per request, allocation sampling).
 */
class StringCache {
  private readonly bytes: Buffer[] = [];
  private readonly strings: string[] = [];
  private next = 0;

  /** `maxLength`: longer ones are not looked for nor kept (ids, unique per answer, would only churn it). */
  constructor(
    private readonly size: number,
    private readonly maxLength: number,
  ) {}

  get(buf: Buffer, start: number, length: number, encoding: 'latin1' | 'utf8'): string {
    if (length > this.maxLength) return buf.toString(encoding, start, start + length);
    const bytes = this.bytes;
    search: for (let e = 0; e < bytes.length; e++) {
      const b = bytes[e];
      if (b.length !== length) continue;
      for (let j = 0; j < length; j++) if (b[j] !== buf[start + j]) continue search;
      return this.strings[e];
    }
    const str = buf.toString(encoding, start, start + length);
    const slot = this.next;
    this.next = (slot + 1) % this.size;
    bytes[slot] = Buffer.from(buf.subarray(start, start + length));
    this.strings[slot] = str;
    return str;
  }
}
const NAMES = new StringCache(16, 64);
const VALUES = new StringCache(16, 32);

/**
 * True when `frame` (a whole RESPONSE or INSTANCE_ERROR frame) holds its status, its header count and every
 * header entry it announces: responseStatus and readResponseHeadersFlat read only within it. The instance
 * is untrusted code; a frame that fails this must end the connection, not the router (a read past the end
 * throws out of the socket's 'data' handler and takes the whole process down).
 */
export function isWellFormedResponse(frame: Buffer): boolean {
  const end = frame.length;
  if (end < 13) return false;
  const count = frame.readUInt16BE(11);
  let pos = 13;
  for (let i = 0; i < count; i++) {
    if (pos + 2 > end) return false;
    pos += 2 + frame.readUInt16BE(pos);
    if (pos + 2 > end) return false;
    pos += 2 + frame.readUInt16BE(pos);
    if (pos > end) return false;
  }
  return true;
}

export interface FrameReaderOptions {
  /**
   * Largest frame accepted, length field included. A larger announced length calls `onOversize` and the
   * reader stops: the peer cannot make this process buffer up to the 4 GiB a u32 length allows.
   */
  maxFrameBytes?: number;
  onOversize?: (announced: number) => void;
}

/**
 * Splits a byte stream into whole frames. Feed it chunks as they arrive; it calls `onFrame` with each
 * complete frame (a view, valid until the callback returns unless copied) in order.
 *
 * Linear in the bytes received: the chunks of an incomplete frame are kept as they came and concatenated
 * once, when the frame is complete (concatenating everything pending on every chunk made a 64 MiB frame
 * arriving in 64 KiB reads cost ~32 GiB of copying).
 */
export class FrameReader {
  /** Chunks of the incomplete frame at the head of the stream (the first may start mid-chunk: copied). */
  private parts: Buffer[] = [];
  private partBytes = 0;
  /** Bytes the incomplete frame needs in all (length field included), once its length is known; else 0. */
  private need = 0;
  private readonly maxFrameBytes: number;
  /** Set once a frame was over maxFrameBytes: everything after it is ignored (the stream is lost). */
  private failed = false;

  constructor(
    private readonly onFrame: (frame: Buffer, type: number, id: number) => void,
    private readonly options: FrameReaderOptions = {},
  ) {
    this.maxFrameBytes = options.maxFrameBytes ?? Infinity;
  }

  push(chunk: Buffer): void {
    if (this.failed) return;
    if (this.partBytes === 0) {
      this.split(chunk);
      return;
    }
    this.parts.push(chunk);
    this.partBytes += chunk.length;
    if (this.need === 0) {
      if (this.partBytes < HEADER_BYTES) return;
      const first = this.parts[0].length >= 4 ? this.parts[0] : Buffer.concat(this.parts, this.partBytes);
      this.need = Math.max(4 + first.readUInt32BE(0), HEADER_BYTES);
      if (this.need > this.maxFrameBytes) {
        this.fail(this.need);
        return;
      }
    }
    if (this.partBytes < this.need) return;
    const buf = Buffer.concat(this.parts, this.partBytes);
    this.parts = [];
    this.partBytes = 0;
    this.need = 0;
    this.split(buf);
  }

  /** Delivers the whole frames at the start of `buf`; keeps the incomplete rest (a copy: never pins `buf`). */
  private split(buf: Buffer): void {
    let pos = 0;
    while (buf.length - pos >= HEADER_BYTES) {
      const len = buf.readUInt32BE(pos);
      const end = pos + Math.max(4 + len, HEADER_BYTES);
      if (end - pos > this.maxFrameBytes) {
        this.fail(end - pos);
        return;
      }
      if (end > buf.length) {
        this.need = end - pos;
        break;
      }
      this.onFrame(buf.subarray(pos, end), buf[pos + 8], buf.readUInt32BE(pos + 4));
      if (this.failed) return; // the callback gave up on the stream (stop)
      pos = end;
    }
    if (pos < buf.length) {
      this.parts = [pos === 0 ? buf : Buffer.from(buf.subarray(pos))];
      this.partBytes = buf.length - pos;
    }
  }

  /** Drops what is buffered and ignores every later byte (the caller is closing the stream). */
  stop(): void {
    this.reset();
    this.failed = true;
  }

  /** Back to the start of a new stream (a new connection through the same reader). */
  reset(): void {
    this.failed = false;
    this.parts = [];
    this.partBytes = 0;
    this.need = 0;
  }

  private fail(announced: number): void {
    this.stop();
    this.options.onOversize?.(announced);
  }

  /** Bytes of an incomplete frame still waiting for the rest. */
  get buffered(): number {
    return this.partBytes;
  }
}
