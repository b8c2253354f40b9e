// PendingTable: the in-flight requests of a channel by id (pending.ts), and why it is not a Map: under
// request churn after one mark-compact, a Map's replaced tables kept every request young objects alive
// into the old generation (issue 13).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { IdAllocator } from './frame.js';
import { PendingTable } from './pending.js';

test('ids are unique among the entries, found, taken once, and survive growth and id wrap-around', () => {
  const table = new PendingTable<{ n: number }>(4);
  const ids = new IdAllocator(1, 50); // wraps after 50: ids come back while others are still in flight
  const live = new Map<number, { n: number }>();
  let n = 0;
  for (let round = 0; round < 2000; round++) {
    // A few in flight at a time, up to 40 (grows 4 → 128), taken in an order that is not send order.
    const add = round % 7 < 4 || live.size < 3;
    if (add && live.size < 40) {
      const v = { n: n++ };
      const id = table.add(ids, v);
      assert.ok(id >= 1 && id <= 50, `id ${id} in 1..50`);
      assert.ok(!live.has(id), `id ${id} is not in flight twice`);
      live.set(id, v);
    } else {
      const id = [...live.keys()][(round * 31) % live.size];
      assert.equal(table.take(id), live.get(id));
      assert.equal(table.take(id), undefined, 'taken once');
      live.delete(id);
    }
    assert.equal(table.size, live.size);
  }
  for (const [id, v] of live) {
    assert.equal(table.get(id), v);
    assert.ok(table.has(id));
  }
  const seen: number[] = [];
  table.forEach((v, id) => {
    assert.equal(live.get(id), v);
    seen.push(id);
  });
  assert.deepEqual(seen.sort((a, b) => a - b), [...live.keys()].sort((a, b) => a - b));
});

test('an id that shares a slot with one in flight is neither found nor taken', () => {
  const table = new PendingTable<object>(4);
  const a = {};
  const id = table.add(new IdAllocator(1), a);
  assert.equal(id, 1);
  // 1 + 64: the same slot in a table of 64 (the default; this one grows to it only when needed).
  for (const other of [1 + 4, 1 + 64, 1 + 2 ** 20]) {
    assert.equal(table.get(other), undefined);
    assert.equal(table.take(other), undefined);
  }
  assert.equal(table.take(1), a);
  assert.throws(() => {
    const t = new PendingTable<object>(4);
    t.set(3, {});
    t.set(7, {}); // 7 & 3 === 3: ids must come from freeId()
  }, /slot is taken/);
});

test('forEach lets the callback take the entry it is given; drain empties the table and returns it all', () => {
  const table = new PendingTable<{ deadline: number }>();
  const ids = new IdAllocator(1);
  for (let i = 0; i < 20; i++) table.add(ids, { deadline: i });
  table.forEach((v, id) => {
    if (v.deadline % 2 === 0) assert.equal(table.take(id), v);
  });
  assert.equal(table.size, 10);
  const drained = table.drain();
  assert.deepEqual(drained.map(([, v]) => v.deadline).sort((a, b) => a - b), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19]);
  assert.equal(table.size, 0);
  assert.equal(table.get(drained[0][0]), undefined);
});

test('after a mark-compact, request churn through the table promotes nothing: the scavenges stay short', () => {
  // The router's pattern: each request adds an entry with its objects and is taken once answered, ~32 in
  // flight. A full GC while the router is idle (V8's memory reducer does one) moves the table into the
  // old generation; then a Map kept promoting nearly every request's objects (its replaced tables link
  // to their successors), pauses 40-80 ms each, until the process ended. Measured with --trace-gc-nvp.
  const dir = mkdtempSync(join(tmpdir(), 'pending-gc-'));
  try {
    const script = join(dir, 'churn.mjs');
    writeFileSync(
      script,
      `const { PendingTable } = await import(${JSON.stringify(new URL('./pending.ts', import.meta.url).href)});
const { IdAllocator } = await import(${JSON.stringify(new URL('./frame.ts', import.meta.url).href)});
const table = new PendingTable();
const ids = new IdAllocator();
const ring = new Uint32Array(32);
let head = 0, n = 0;
const churn = (count) => {
  for (let i = 0; i < count; i++) {
    ring[(head + n) % 32] = table.add(ids, { payload: new Array(64).fill(i), i });
    if (++n === 32) { table.take(ring[head]); head = (head + 1) % 32; n--; }
  }
};
churn(20000);
gc(); gc();
console.log('MARK');
churn(300000);
`,
    );
    const r = spawnSync(process.execPath, ['--import', import.meta.resolve('tsx'), '--trace-gc-nvp', '--expose-gc', script], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const after = r.stdout.slice(r.stdout.indexOf('MARK'));
    let allocated = 0;
    let promoted = 0;
    let scavenges = 0;
    for (const line of after.split('\n')) {
      if (!line.includes('gc=s ')) continue;
      scavenges++;
      allocated += Number(/ allocated=(\d+)/.exec(line)?.[1] ?? 0);
      promoted += Number(/ promoted=(\d+)/.exec(line)?.[1] ?? 0);
    }
    assert.ok(scavenges >= 10, `the churn ran through the young generation (${scavenges} scavenges)`);
    // A Map here: ~85 % of what was allocated promoted (153 of 180 MB on 2026-12-01, V8 11.3).
    assert.ok(promoted < allocated * 0.02, `promoted ${promoted} of ${allocated} bytes allocated`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('findId: the id of the first value that matches, or -1', () => {
  const table = new PendingTable<{ peer: string; n: number }>();
  const ids = new IdAllocator(1);
  const a = table.add(ids, { peer: 'a', n: 1 });
  const b = table.add(ids, { peer: 'b', n: 1 });
  assert.equal(table.findId((v) => v.peer === 'b' && v.n === 1), b);
  assert.equal(table.findId((v) => v.peer === 'a'), a);
  assert.equal(table.findId((v) => v.peer === 'c'), -1);
});
