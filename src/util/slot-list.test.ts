// SlotList: members come and go in any order; iteration sees each member once, even when the callback
// removes the one it is given.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SlotList } from './slot-list.js';

const member = (n: number) => ({ n, slot: -1 });

test('members added and deleted in any order: size, has and forEach agree with a reference set', () => {
  const list = new SlotList<ReturnType<typeof member>>();
  const ref = new Set<ReturnType<typeof member>>();
  const all = Array.from({ length: 50 }, (_, i) => member(i));
  for (let round = 0; round < 3000; round++) {
    const m = all[(round * 37) % all.length];
    if (round % 3 === 2 || !ref.has(m)) {
      list.add(m);
      list.add(m); // twice: once in
      ref.add(m);
    } else {
      assert.equal(list.delete(m), true);
      assert.equal(list.delete(m), false);
      ref.delete(m);
    }
    assert.equal(list.size, ref.size);
  }
  for (const m of all) assert.equal(list.has(m), ref.has(m));
  const seen: number[] = [];
  list.forEach((m) => seen.push(m.n));
  assert.deepEqual(seen.sort((a, b) => a - b), [...ref].map((m) => m.n).sort((a, b) => a - b));
});

test('forEach visits every member once when the callback deletes the member it is given', () => {
  const list = new SlotList<ReturnType<typeof member>>();
  const all = Array.from({ length: 10 }, (_, i) => member(i));
  for (const m of all) list.add(m);
  const seen: number[] = [];
  list.forEach((m) => {
    seen.push(m.n);
    if (m.n % 2 === 0) list.delete(m);
  });
  assert.deepEqual(seen.sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal(list.size, 5);
  const left: number[] = [];
  list.forEach((m) => left.push(m.n));
  assert.deepEqual(left.sort((a, b) => a - b), [1, 3, 5, 7, 9]);
  assert.equal(list.has(all[0]), false);
  assert.equal(all[0].slot, -1);
});
