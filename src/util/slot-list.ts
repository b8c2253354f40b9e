// A set of objects that come and go (a server's open connections): an array, each member knowing its
// place, instead of a Set. Issue 13 (protocol/pending.ts): V8's Set, like its Map, allocates a new table
// as entries come and go, and a replaced table links to the next one; after a mark-compact had moved the
// live table into the old generation, each dead table kept its successor and the members it held alive
// through the scavenges, so everything a connection holds was promoted. Here only the array's growth
// allocates, and a removed member leaves nothing behind.

export interface Slotted {
  /** Its place in the SlotList holding it, -1 when in none. */
  slot: number;
}

export class SlotList<T extends Slotted> {
  private items: (T | undefined)[] = [];
  size = 0;

  add(item: T): void {
    if (item.slot >= 0) return;
    item.slot = this.size;
    this.items[this.size++] = item;
  }

  /** False if it was not there. The last member takes its place. */
  delete(item: T): boolean {
    const i = item.slot;
    if (i < 0 || this.items[i] !== item) return false;
    const last = this.items[--this.size]!;
    this.items[i] = last;
    last.slot = i;
    this.items[this.size] = undefined;
    item.slot = -1;
    return true;
  }

  has(item: T): boolean {
    return item.slot >= 0 && this.items[item.slot] === item;
  }

  /**
   * Every member, last first: `fn` may delete the member it is given (the last one takes a place already
   * visited), nothing else.
   */
  forEach(fn: (item: T) => void): void {
    for (let i = this.size - 1; i >= 0; i--) {
      const item = this.items[i];
      if (item !== undefined) fn(item);
    }
  }
}
