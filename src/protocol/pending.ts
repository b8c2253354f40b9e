// The requests in flight on one channel, by id: a table that is allocated once (and doubled when full),
// not a Map. Issue 13, bench/README.md "The long scavenges": V8's Map (an OrderedHashMap) appends every
// set() and leaves a hole for every delete(), so with one set and one delete per request it allocates a
// new table every few dozen requests, and the table it leaves keeps a link to its successor (for live
// iterators) and the entries it held. Once one such table had been promoted to the old generation (a
// mark-compact while the router was idle: V8's memory reducer, a heap snapshot), each dead table kept
// the next one alive through the scavenges, with every request in flight when it was replaced: ~3 MB
// promoted per scavenge, 40-80 ms scavenges instead of 1-2 ms, until the process restarted.
//
// Ids come from an IdAllocator and index the table directly (id & mask): an id whose slot is taken is
// skipped, as an id still in flight is.

import type { IdAllocator } from './frame.js';

const INITIAL_CAPACITY = 64;

export class PendingTable<T extends object> {
  private ids: Uint32Array;
  private values: (T | undefined)[];
  private mask: number;
  size = 0;
  /** For IdAllocator.take: an id is taken when its slot is (by it or by another id). */
  private readonly slotTaken = { has: (id: number): boolean => this.values[id & this.mask] !== undefined };

  constructor(capacity = INITIAL_CAPACITY) {
    let c = 1;
    while (c < capacity) c *= 2;
    this.ids = new Uint32Array(c);
    this.values = new Array<T | undefined>(c).fill(undefined);
    this.mask = c - 1;
  }

  /** Takes an id from `ids` whose slot is free, stores `value` under it and returns it. */
  add(ids: IdAllocator, value: T): number {
    const id = this.freeId(ids);
    this.set(id, value);
    return id;
  }

  /** An id from `ids` whose slot is free, for a value that needs its id before set(). */
  freeId(ids: IdAllocator): number {
    // At most half full: the allocator finds a free slot within a few ids.
    if (this.size * 2 >= this.values.length) this.grow();
    return ids.take(this.slotTaken);
  }

  /** Stores `value` under an id from freeId(), before any other id is taken. */
  set(id: number, value: T): void {
    const slot = id & this.mask;
    if (this.values[slot] !== undefined) throw new Error(`id ${id}: its slot is taken (ids come from freeId)`);
    this.ids[slot] = id;
    this.values[slot] = value;
    this.size++;
  }

  get(id: number): T | undefined {
    const slot = id & this.mask;
    return this.ids[slot] === id ? this.values[slot] : undefined;
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Removes and returns the value of `id`, or undefined if it is not there. */
  take(id: number): T | undefined {
    const slot = id & this.mask;
    const value = this.values[slot];
    if (value === undefined || this.ids[slot] !== id) return undefined;
    this.values[slot] = undefined;
    this.size--;
    return value;
  }

  /** Calls `fn` with every id and value; `fn` may take() the entry it is given. */
  forEach(fn: (value: T, id: number) => void): void {
    const values = this.values;
    for (let slot = 0; slot < values.length && this.size > 0; slot++) {
      const value = values[slot];
      if (value !== undefined) fn(value, this.ids[slot]);
    }
  }

  /** The id of the first value `match` accepts, or -1. */
  findId(match: (value: T) => boolean): number {
    const values = this.values;
    for (let slot = 0; slot < values.length; slot++) {
      const value = values[slot];
      if (value !== undefined && match(value)) return this.ids[slot];
    }
    return -1;
  }

  /** Empties the table and returns what it held, as [id, value] pairs. */
  drain(): [number, T][] {
    const out: [number, T][] = [];
    this.forEach((value, id) => out.push([id, value]));
    this.values.fill(undefined);
    this.size = 0;
    return out;
  }

  private grow(): void {
    const oldIds = this.ids;
    const oldValues = this.values;
    const c = oldValues.length * 2;
    this.ids = new Uint32Array(c);
    this.values = new Array<T | undefined>(c).fill(undefined);
    this.mask = c - 1;
    for (let slot = 0; slot < oldValues.length; slot++) {
      const value = oldValues[slot];
      if (value === undefined) continue;
      const id = oldIds[slot];
      // Two ids that shared a slot cannot both be in flight, and doubling splits every slot in two.
      this.ids[id & this.mask] = id;
      this.values[id & this.mask] = value;
    }
    // The old array may be in the old generation: emptied, it keeps nothing young alive.
    oldValues.fill(undefined);
  }
}
