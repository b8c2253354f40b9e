// The instance protocol codec: encode → FrameReader → decode gives back what went in, however the byte
// stream is cut.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BODY_HEADER_BYTES,
  BODY_LAST,
  decodeRequest,
  decodeResponse,
  encodeBodyHead,
  encodeCancel,
  encodeRequestHead,
  encodeRequestHeadFlat,
  encodeResponseFrame,
  encodeResponseHead,
  FRAME_BODY,
  FRAME_CANCEL,
  FRAME_INSTANCE_ERROR,
  FRAME_REQUEST_STREAM,
  FRAME_REQUEST,
  FRAME_RESPONSE,
  FrameReader,
  HEADER_BYTES,
  HeaderBlock,
  MAX_ID,
  readResponseHeadersFlat,
  responseStatus,
  type RequestFrame,
  type ResponseFrame,
} from './frame.js';

function requestBytes(r: RequestFrame): Buffer {
  return Buffer.concat([encodeRequestHead(r.id, r.method, r.url, r.headers, r.body.length), r.body]);
}

function responseBytes(r: ResponseFrame): Buffer {
  return Buffer.concat([encodeResponseHead(r.id, r.status, r.headers, r.body.length), r.body]);
}

interface Seen {
  type: number;
  id: number;
  frame: Buffer;
}

/** Feeds `chunks` to a FrameReader and returns copies of every frame it emitted. */
function read(chunks: Buffer[]): { frames: Seen[]; reader: FrameReader } {
  const frames: Seen[] = [];
  const reader = new FrameReader((frame, type, id) => frames.push({ type, id, frame: Buffer.from(frame) }));
  for (const c of chunks) reader.push(c);
  return { frames, reader };
}

const request: RequestFrame = {
  id: 42,
  method: 'POST',
  url: '/score?q=caf%C3%A9&name=naïve/日本語',
  headers: [
    ['content-type', 'application/json; charset=utf-8'],
    ['x-note', 'héllo wörld — 你好 🚀'],
    ['x-empty', ''],
  ],
  body: Buffer.from(JSON.stringify({ data: [[1, 2, 3]], text: 'émoji 🎉' })),
};

const response: ResponseFrame = {
  id: 42,
  status: 200,
  headers: [
    ['content-type', 'application/json'],
    ['x-ms-run-fn-exec-ms', '1.234'],
    ['x-model', 'ünïcödé ✓'],
  ],
  body: Buffer.from('[11055.977245525679, 4503.079536107787]'),
};

test('a request round-trips: unicode URL and header values, empty header value', () => {
  const bytes = requestBytes(request);
  assert.equal(bytes.readUInt32BE(0), bytes.length - 4, 'the length field counts everything after itself');
  assert.equal(bytes[8], FRAME_REQUEST);
  const { frames } = read([bytes]);
  assert.equal(frames.length, 1);
  assert.equal(frames[0].type, FRAME_REQUEST);
  assert.equal(frames[0].id, 42);
  assert.deepEqual(decodeRequest(frames[0].frame), request);
});

test('a response round-trips', () => {
  const bytes = responseBytes(response);
  assert.equal(bytes.readUInt32BE(0), bytes.length - 4);
  const { frames } = read([bytes]);
  assert.equal(frames[0].type, FRAME_RESPONSE);
  assert.deepEqual(decodeResponse(frames[0].frame), response);
});

test('empty body, no headers, non-200 status', () => {
  const req: RequestFrame = { id: 1, method: 'GET', url: '/', headers: [], body: Buffer.alloc(0) };
  assert.deepEqual(decodeRequest(read([requestBytes(req)]).frames[0].frame), req);
  const res: ResponseFrame = { id: 1, status: 500, headers: [], body: Buffer.alloc(0) };
  assert.deepEqual(decodeResponse(read([responseBytes(res)]).frames[0].frame), res);
  const notFound: ResponseFrame = { id: 7, status: 404, headers: [['content-type', 'text/plain']], body: Buffer.from('no') };
  assert.deepEqual(decodeResponse(read([responseBytes(notFound)]).frames[0].frame), notFound);
});

test('a large body (5 MB of binary) round-trips', () => {
  const body = Buffer.alloc(5 * 1024 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = (i * 131 + 7) & 0xff;
  const req: RequestFrame = { id: 9, method: 'POST', url: '/score', headers: [['content-type', 'application/octet-stream']], body };
  const bytes = requestBytes(req);
  // Arrives in 64 KiB socket-sized chunks.
  const chunks: Buffer[] = [];
  for (let i = 0; i < bytes.length; i += 65536) chunks.push(bytes.subarray(i, i + 65536));
  const { frames, reader } = read(chunks);
  assert.equal(frames.length, 1);
  const got = decodeRequest(frames[0].frame);
  assert.equal(got.body.length, body.length);
  assert.ok(got.body.equals(body));
  assert.equal(reader.buffered, 0);
  const res: ResponseFrame = { id: 9, status: 200, headers: [], body };
  assert.ok(decodeResponse(read([responseBytes(res)]).frames[0].frame).body.equals(body));
});

test('long header values (up to the u16 limit) and many headers round-trip', () => {
  const headers: [string, string][] = [['x-long', 'v'.repeat(65535)]];
  for (let i = 0; i < 300; i++) headers.push([`x-h${i}`, `value-${i}`]);
  const req: RequestFrame = { id: 3, method: 'PUT', url: '/score', headers, body: Buffer.from('x') };
  assert.deepEqual(decodeRequest(read([requestBytes(req)]).frames[0].frame), req);
});

test('a frame split at every byte boundary is read whole, exactly once', () => {
  for (const bytes of [requestBytes(request), responseBytes(response), encodeCancel(5)]) {
    for (let cut = 1; cut < bytes.length; cut++) {
      const { frames, reader } = read([bytes.subarray(0, cut), bytes.subarray(cut)]);
      assert.equal(frames.length, 1, `cut at ${cut}`);
      assert.ok(frames[0].frame.equals(bytes), `cut at ${cut}`);
      assert.equal(reader.buffered, 0);
    }
  }
});

test('a stream fed one byte at a time yields every frame in order', () => {
  const stream = Buffer.concat([requestBytes(request), responseBytes(response), encodeCancel(43), requestBytes({ ...request, id: 44 })]);
  const frames: Seen[] = [];
  const reader = new FrameReader((frame, type, id) => frames.push({ type, id, frame: Buffer.from(frame) }));
  for (let i = 0; i < stream.length; i++) {
    reader.push(stream.subarray(i, i + 1));
    if (i < stream.length - 1) assert.ok(reader.buffered > 0 || frames.length > 0);
  }
  assert.deepEqual(
    frames.map((f) => [f.type, f.id]),
    [
      [FRAME_REQUEST, 42],
      [FRAME_RESPONSE, 42],
      [FRAME_CANCEL, 43],
      [FRAME_REQUEST, 44],
    ],
  );
  assert.deepEqual(decodeRequest(frames[3].frame), { ...request, id: 44 });
  assert.equal(reader.buffered, 0);
});

test('several frames in one chunk, with a partial one at the end kept for the next push', () => {
  const a = responseBytes({ ...response, id: 1 });
  const b = responseBytes({ ...response, id: 2, status: 503, body: Buffer.from('busy') });
  const c = responseBytes({ ...response, id: 3 });
  const frames: Seen[] = [];
  const reader = new FrameReader((frame, type, id) => frames.push({ type, id, frame: Buffer.from(frame) }));
  reader.push(Buffer.concat([a, b, c.subarray(0, 5)]));
  assert.deepEqual(frames.map((f) => f.id), [1, 2]);
  assert.equal(reader.buffered, 5);
  reader.push(c.subarray(5));
  assert.deepEqual(frames.map((f) => f.id), [1, 2, 3]);
  assert.equal(decodeResponse(frames[1].frame).status, 503);
  assert.equal(decodeResponse(frames[1].frame).body.toString(), 'busy');
  assert.equal(reader.buffered, 0);
});

test('the frame given to onFrame is the exact frame (a view), and a kept copy stays valid', () => {
  const bytes = Buffer.concat([responseBytes({ ...response, id: 1 }), responseBytes({ ...response, id: 2 })]);
  const views: Buffer[] = [];
  const reader = new FrameReader((frame) => views.push(frame));
  reader.push(bytes);
  assert.equal(views.length, 2);
  assert.equal(views[0].length + views[1].length, bytes.length);
  assert.equal(decodeResponse(views[1]).id, 2);
});

test('CANCEL frames: header only, type 3, the id of the request', () => {
  const bytes = encodeCancel(1234);
  assert.equal(bytes.length, HEADER_BYTES);
  assert.equal(bytes.readUInt32BE(0), 5);
  assert.equal(bytes.readUInt32BE(4), 1234);
  assert.equal(bytes[8], FRAME_CANCEL);
  const { frames } = read([Buffer.concat([encodeCancel(1), encodeCancel(MAX_ID)])]);
  assert.deepEqual(
    frames.map((f) => [f.type, f.id]),
    [
      [FRAME_CANCEL, 1],
      [FRAME_CANCEL, MAX_ID],
    ],
  );
});

test('ids near 0xffffffff round-trip unsigned', () => {
  for (const id of [0, 1, 0x7fffffff, 0x80000000, MAX_ID - 1, MAX_ID]) {
    const req = { ...request, id };
    const { frames } = read([requestBytes(req)]);
    assert.equal(frames[0].id, id);
    assert.equal(decodeRequest(frames[0].frame).id, id);
    assert.equal(decodeResponse(read([responseBytes({ ...response, id })]).frames[0].frame).id, id);
  }
  assert.equal(MAX_ID, 0xffffffff);
  assert.throws(() => encodeCancel(MAX_ID + 1), RangeError);
});

test('nothing is emitted before a whole frame is there', () => {
  const bytes = requestBytes(request);
  const { frames, reader } = read([bytes.subarray(0, 3)]);
  assert.equal(frames.length, 0);
  assert.equal(reader.buffered, 3);
  reader.push(bytes.subarray(3, bytes.length - 1));
  assert.equal(frames.length, 0);
  assert.equal(reader.buffered, bytes.length - 1);
});

test('the flat-header request head (the router\'s) is byte for byte the tuple one, with the extra header last', () => {
  const flat = ['content-type', 'application/json', 'x-note', 'naïve ✓', 'empty', ''];
  const tuples: [string, string][] = [['content-type', 'application/json'], ['x-note', 'naïve ✓'], ['empty', ''], ['x-request-id', 'id-1']];
  const a = encodeRequestHeadFlat(7, 'POST', '/score?q=é', flat, 'x-request-id', 'id-1', 3);
  const b = encodeRequestHead(7, 'POST', '/score?q=é', tuples, 3);
  assert.deepEqual(a, b);
  const r = decodeRequest(Buffer.concat([a, Buffer.from('abc')]));
  assert.deepEqual(r.headers, tuples);
  assert.equal(r.body.toString(), 'abc');
  // No headers of the client's: only the extra one.
  assert.deepEqual(decodeRequest(Buffer.concat([encodeRequestHeadFlat(1, 'GET', '/', [], 'x-request-id', 'z', 0)])).headers, [['x-request-id', 'z']]);
});

test('response headers read flat, skipping the names asked for, and the body offset', () => {
  const head = encodeResponseHead(9, 424, [['content-type', 'text/plain'], ['x-request-id', 'drop me'], ['x-a', 'ü']], 2);
  const frame = Buffer.concat([head, Buffer.from('ok')]);
  const out: string[] = [];
  const at = readResponseHeadersFlat(frame, new Set(['x-request-id']), out);
  assert.deepEqual(out, ['content-type', 'text/plain', 'x-a', 'ü']);
  assert.equal(responseStatus(frame), 424);
  assert.equal(frame.subarray(at).toString(), 'ok');
});

test('a response frame built from a header block, one more header, more headers and a latin1 body decodes as the plain encoder\'s', () => {
  const block = new HeaderBlock([['content-type', 'application/json'], ['x-ms-run-function-failed', 'False']]);
  const frame = encodeResponseFrame(5, 200, block, 'x-ms-run-fn-exec-ms', '0.012', [['x-request-id', 'r-1'], ['x-note', 'é']], '[55, 55]');
  const plain = Buffer.concat([
    encodeResponseHead(5, 200, [['content-type', 'application/json'], ['x-ms-run-function-failed', 'False'], ['x-ms-run-fn-exec-ms', '0.012'], ['x-request-id', 'r-1'], ['x-note', 'é']], 8),
    Buffer.from('[55, 55]'),
  ]);
  assert.deepEqual(frame, plain);
  const r = decodeResponse(frame);
  assert.equal(r.body.toString(), '[55, 55]');
  const bare = decodeResponse(encodeResponseFrame(6, 500, block, 'x', 'y', null, ''));
  assert.deepEqual([bare.id, bare.status, bare.headers.length, bare.body.length], [6, 500, 3, 0]);
});

// Linearity (1 MiB vs 64 MiB frames, TypeScript and Python readers) is in golden.test.ts.

test('a 300-character header name round-trips (u16 name length): request, flat request and response', () => {
  // With a u8 name length (before issue 10) the length wrapped to 44 and the rest of the name was read as
  // the value's length: the instance answered 400 and the router reported the model's 424.
  const name = 'x-' + 'n'.repeat(298);
  const headers: [string, string][] = [[name, 'v'], ['content-type', 'application/json']];
  const body = Buffer.from('{}');
  const req = decodeRequest(Buffer.concat([encodeRequestHead(3, 'POST', '/score', headers, body.length), body]));
  assert.deepEqual([req.headers, req.body.toString()], [headers, '{}']);
  const flat = decodeRequest(Buffer.concat([encodeRequestHeadFlat(4, 'POST', '/score', [name, 'v'], 'x-request-id', 'r', body.length), body]));
  assert.deepEqual(flat.headers, [[name, 'v'], ['x-request-id', 'r']]);
  const longest = 'y'.repeat(0xffff);
  const res = Buffer.concat([encodeResponseHead(5, 200, [[longest, 'w'], ...headers], body.length), body]);
  assert.deepEqual(decodeResponse(res).headers, [[longest, 'w'], ...headers]);
  const out: string[] = [];
  const at = readResponseHeadersFlat(res, new Set(['content-type']), out);
  assert.deepEqual(out, [longest, 'w', name, 'v']);
  assert.equal(res.subarray(at).toString(), '{}');
});

test('a streamed body: REQUEST_STREAM then BODY parts, the last flagged, and INSTANCE_ERROR answers', () => {
  const head = encodeRequestHeadFlat(5, 'POST', '/score', ['content-type', 'application/json'], 'x-request-id', 'r1', 0, FRAME_REQUEST_STREAM);
  const part1 = Buffer.from('{"a":');
  const part2 = Buffer.from('1}');
  const stream = Buffer.concat([head, encodeBodyHead(5, part1.length, false), part1, encodeBodyHead(5, part2.length, true), part2]);
  const frames: { type: number; id: number; frame: Buffer }[] = [];
  const r = new FrameReader((frame, type, id) => frames.push({ type, id, frame: Buffer.from(frame) }));
  for (let i = 0; i < stream.length; i++) r.push(stream.subarray(i, i + 1));
  assert.deepEqual(frames.map((f) => [f.type, f.id]), [[FRAME_REQUEST_STREAM, 5], [FRAME_BODY, 5], [FRAME_BODY, 5]]);
  const req = decodeRequest(frames[0].frame);
  assert.equal(req.url, '/score');
  assert.deepEqual(req.headers, [['content-type', 'application/json'], ['x-request-id', 'r1']]);
  assert.equal(req.body.length, 0);
  assert.equal(frames[1].frame[BODY_HEADER_BYTES - 1], 0, 'not last');
  assert.equal(frames[2].frame[BODY_HEADER_BYTES - 1], BODY_LAST);
  assert.equal(Buffer.concat([frames[1].frame.subarray(BODY_HEADER_BYTES), frames[2].frame.subarray(BODY_HEADER_BYTES)]).toString(), '{"a":1}');

  const err = encodeResponseHead(5, 502, [['content-type', 'application/json']], 0, FRAME_INSTANCE_ERROR);
  assert.equal(err[8], FRAME_INSTANCE_ERROR);
  assert.equal(responseStatus(err), 502);
  assert.equal(decodeResponse(err).status, 502);
});

test('readResponseHeadersFlat: repeated and varying header bytes give the right strings (its cache of recent strings)', () => {
  // Same lengths, different bytes; utf-8 values; more distinct values than the cache holds; long values.
  const sets: [string, string][][] = [];
  for (let i = 0; i < 200; i++) {
    sets.push([
      ['content-type', i % 3 === 0 ? 'application/json' : 'application/jsoN'],
      ['x-n', `v${i % 40}`],
      ['x-é', i % 2 ? 'é' : 'e\u0301'],
      ['x-long', 'x'.repeat(30 + (i % 10)) + String(i)],
      [`x-name-${i % 20}`, 'same'],
    ]);
  }
  for (let round = 0; round < 2; round++) {
    for (const headers of sets) {
      const frame = encodeResponseHead(1, 200, headers, 0);
      const out: string[] = [];
      readResponseHeadersFlat(frame, new Set(), out);
      assert.deepEqual(out, headers.flat());
    }
  }
});
