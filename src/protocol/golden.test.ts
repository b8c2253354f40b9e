// One shared set of golden frames (testdata/golden.json + *.bin, docs/protocol.md) through both codecs:
// the TypeScript one here (decoded and re-encoded byte for byte), and the Python worker's
// (testdata/check_python_codec.py, run with /usr/bin/python3). Also: both readers are linear in the
// bytes received (1 MiB vs 64 MiB frames arriving in 64 KiB chunks; a ratio, not a time).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  BODY_HEADER_BYTES,
  BODY_LAST,
  decodeLimits,
  decodeRequest,
  decodeResponse,
  encodeBusy,
  encodeLimits,
  encodeBodyHead,
  encodeCancel,
  encodeRequestHead,
  encodeRequestHeadFlat,
  encodeResponseHead,
  FRAME_BODY,
  FRAME_BUSY,
  FRAME_CANCEL,
  FRAME_INSTANCE_ERROR,
  FRAME_LIMITS,
  FRAME_REQUEST,
  FRAME_REQUEST_STREAM,
  FRAME_RESPONSE,
  FrameReader,
  HEADER_BYTES,
} from './frame.js';

const DIR = fileURLToPath(new URL('./testdata/', import.meta.url));
const PYTHON = '/usr/bin/python3';
const CHECK = join(DIR, 'check_python_codec.py');

interface Golden {
  file: string;
  type: 'REQUEST' | 'REQUEST_STREAM' | 'RESPONSE' | 'INSTANCE_ERROR' | 'CANCEL' | 'BODY' | 'LIMITS' | 'BUSY';
  id: number;
  method?: string;
  url?: string;
  status?: number;
  headers?: [string, string][];
  bodyHex?: string;
  last?: boolean;
  limits?: { maxConcurrent: number; maxQueued: number; maxQueueWaitMs: number };
  reason?: number;
  python: boolean;
}

const TYPES = { REQUEST: FRAME_REQUEST, REQUEST_STREAM: FRAME_REQUEST_STREAM, RESPONSE: FRAME_RESPONSE, INSTANCE_ERROR: FRAME_INSTANCE_ERROR, CANCEL: FRAME_CANCEL, BODY: FRAME_BODY, LIMITS: FRAME_LIMITS, BUSY: FRAME_BUSY };
const goldens = (JSON.parse(readFileSync(join(DIR, 'golden.json'), 'utf8')) as { frames: Golden[] }).frames;

function encode(g: Golden): Buffer {
  const body = Buffer.from(g.bodyHex ?? '', 'hex');
  switch (g.type) {
    case 'REQUEST':
      return Buffer.concat([encodeRequestHead(g.id, g.method!, g.url!, g.headers!, body.length), body]);
    case 'REQUEST_STREAM': {
      // The router's encoder: its x-request-id goes last.
      const [name, value] = g.headers![g.headers!.length - 1];
      const flat = g.headers!.slice(0, -1).flat();
      return Buffer.concat([encodeRequestHeadFlat(g.id, g.method!, g.url!, flat, name, value, body.length, FRAME_REQUEST_STREAM), body]);
    }
    case 'RESPONSE':
    case 'INSTANCE_ERROR':
      return Buffer.concat([encodeResponseHead(g.id, g.status!, g.headers!, body.length, g.type === 'RESPONSE' ? FRAME_RESPONSE : FRAME_INSTANCE_ERROR), body]);
    case 'CANCEL':
      return encodeCancel(g.id);
    case 'BODY':
      return Buffer.concat([encodeBodyHead(g.id, body.length, g.last!), body]);
    case 'LIMITS':
      return encodeLimits(g.limits!);
    case 'BUSY':
      return encodeBusy(g.id, g.reason!);
  }
}

test('golden frames: the TypeScript codec decodes each to its description and encodes it back byte for byte', () => {
  assert.ok(goldens.length >= 9);
  for (const g of goldens) {
    const bytes = readFileSync(join(DIR, g.file));
    assert.deepEqual(encode(g), bytes, `${g.file}: encoded`);
    const seen: [number, number, Buffer][] = [];
    // Fed one byte at a time: framing does not depend on how the stream is cut.
    const reader = new FrameReader((frame, type, id) => seen.push([type, id, Buffer.from(frame)]));
    for (let i = 0; i < bytes.length; i++) reader.push(bytes.subarray(i, i + 1));
    assert.equal(seen.length, 1, g.file);
    const [type, id, frame] = seen[0];
    assert.deepEqual([type, id], [TYPES[g.type], g.id], g.file);
    if (g.type === 'REQUEST' || g.type === 'REQUEST_STREAM') {
      const r = decodeRequest(frame);
      assert.deepEqual([r.method, r.url, r.headers, r.body.toString('hex')], [g.method, g.url, g.headers, g.bodyHex], g.file);
    } else if (g.type === 'RESPONSE' || g.type === 'INSTANCE_ERROR') {
      const r = decodeResponse(frame);
      assert.deepEqual([r.status, r.headers, r.body.toString('hex')], [g.status, g.headers, g.bodyHex], g.file);
    } else if (g.type === 'BODY') {
      assert.equal((frame[BODY_HEADER_BYTES - 1] & BODY_LAST) !== 0, g.last, g.file);
      assert.equal(frame.subarray(BODY_HEADER_BYTES).toString('hex'), g.bodyHex, g.file);
    } else if (g.type === 'LIMITS') {
      assert.deepEqual(decodeLimits(frame), g.limits, g.file);
    } else if (g.type === 'BUSY') {
      assert.deepEqual([frame.length, frame[HEADER_BYTES]], [HEADER_BYTES + 1, g.reason], g.file);
    } else {
      assert.equal(frame.length, HEADER_BYTES, g.file);
    }
  }
});

test('golden frames: the Python worker codec decodes the REQUESTs and encodes the RESPONSEs and CANCELs identically', () => {
  const out = execFileSync(PYTHON, [CHECK, 'golden', DIR], { encoding: 'utf8', timeout: 30_000 });
  const { results } = JSON.parse(out) as { results: { file: string; ok: boolean; got: unknown }[] };
  assert.deepEqual(
    results.map((r) => r.file),
    goldens.filter((g) => g.python).map((g) => g.file),
  );
  for (const r of results) assert.ok(r.ok, `${r.file}: ${JSON.stringify(r.got).slice(0, 400)}`);
  // The 300-character header name (u16 name length since issue 10) is among them.
  assert.ok(results.some((r) => r.file === 'request-long-header-name.bin'));
});

/** Milliseconds to read one REQUEST frame with a `size`-byte body arriving in 64 KiB chunks. */
function readOnce(size: number): number {
  const body = Buffer.alloc(size, 7);
  const stream = Buffer.concat([encodeRequestHead(9, 'POST', '/score', [], body.length), body]);
  let frames = 0;
  const r = new FrameReader(() => frames++);
  const t0 = performance.now();
  for (let pos = 0; pos < stream.length; pos += 65536) r.push(stream.subarray(pos, pos + 65536));
  const ms = performance.now() - t0;
  assert.equal(frames, 1);
  return ms;
}

// Linear: the time per byte of a 64 MiB frame stays within a small factor of a 1 MiB frame's. Quadratic
// buffering (concatenating everything pending on every chunk, as before issue 8) is 32x per byte here.
const PER_BYTE_FACTOR = 8;

test('FrameReader (TypeScript) is linear: 64 MiB vs 1 MiB frames in 64 KiB chunks', () => {
  readOnce(1 << 20); // warm-up
  let small = Infinity;
  for (let i = 0; i < 5; i++) small = Math.min(small, readOnce(1 << 20));
  const big = readOnce(64 << 20);
  const perByte = big / 64 / Math.max(small, 0.05);
  assert.ok(perByte < PER_BYTE_FACTOR, `1 MiB: ${small.toFixed(2)} ms, 64 MiB: ${big.toFixed(2)} ms (${perByte.toFixed(2)}x per byte)`);
});

test('the Python worker reads linearly too: 64 MiB vs 1 MiB frames in 64 KiB chunks through a pipe', () => {
  const out = execFileSync(PYTHON, [CHECK, 'linear'], { encoding: 'utf8', timeout: 60_000 });
  const { smallSeconds, bigSeconds } = JSON.parse(out) as { smallSeconds: number; bigSeconds: number };
  const perByte = bigSeconds / 64 / Math.max(smallSeconds, 0.00005);
  assert.ok(perByte < PER_BYTE_FACTOR, `1 MiB: ${(smallSeconds * 1000).toFixed(2)} ms, 64 MiB: ${(bigSeconds * 1000).toFixed(2)} ms (${perByte.toFixed(2)}x per byte)`);
});
