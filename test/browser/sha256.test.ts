// The studio's SHA-256 stand-in (studio/sha256.ts), used for uploads where a browser gives no
// crypto.subtle (a page served over plain http:// to another machine), checked against node's: every
// padding case around the 64-byte block, a multi-block input, and a view into a larger buffer.

import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { sha256 } from '../../studio/sha256.js';

const hex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const node = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

test('the studio SHA-256 matches node for every padding case', () => {
  assert.equal(hex(sha256(new Uint8Array(0))), 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855');
  assert.equal(hex(sha256(new TextEncoder().encode('abc'))), 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  for (const n of [1, 55, 56, 57, 63, 64, 65, 119, 120, 127, 128, 129, 1000, 65_537]) {
    const data = randomBytes(n);
    assert.equal(hex(sha256(data)), node(data), `${n} bytes`);
  }
  const big = randomBytes(300);
  const view = big.subarray(17, 217);
  assert.equal(hex(sha256(view)), node(view), 'a view at an offset');
});
