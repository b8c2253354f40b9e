// Failed-auth limit (issue 9 §8): a client address that fails authentication `failures` times within
// `windowMs` gets 429 + Retry-After, without its credentials being checked, for `blockMs`. What it
// protects: the router's CPU (every wrong key or token costs a SHA-256 or an HMAC) and the logs' signal,
// against a client guessing or replaying credentials. Keys are 192 random bits and tokens are signed, so
// the limit is not what keeps them secret; it keeps guessing from costing valid clients anything.
//
// Shape, as nginx's limit_req zone: a fixed table (no growth, whatever the number of addresses), keyed
// by client address, fixed windows. Valid clients pay nothing: while no address is blocked, blockedFor()
// is one comparison; the table is only written on failures. IPv6 clients are keyed by their /64, the
// smallest block a host is usually given (RFC 6177), or one host could take 2^64 fresh addresses.

/** Default: 50 failures in 10 s → refused for 10 s. */
export const FAILED_AUTH_DEFAULTS = { failures: 50, windowMs: 10_000, blockMs: 10_000 } as const;

export interface FailedAuthOptions {
  failures?: number;
  windowMs?: number;
  blockMs?: number;
  /** Slots in the table (rounded up to a power of two). Default 4096: ~100 KiB. */
  slots?: number;
}

/** Slots looked at for one address; past them the oldest unblocked entry is replaced. */
const PROBE = 8;

export class FailedAuthLimiter {
  readonly failures: number;
  readonly windowMs: number;
  readonly blockMs: number;
  private readonly mask: number;
  private readonly keys: (string | undefined)[];
  private readonly windowStart: Float64Array;
  private readonly count: Uint32Array;
  private readonly until: Float64Array;
  /** The latest end of any block: past it nobody is blocked, and nothing is looked up. */
  private anyBlockedUntil = 0;
  /** Blocks started, and requests refused because of one (for tests and metrics). */
  blocks = 0;
  refused = 0;

  constructor(o: FailedAuthOptions = {}) {
    this.failures = Math.max(1, o.failures ?? FAILED_AUTH_DEFAULTS.failures);
    this.windowMs = o.windowMs ?? FAILED_AUTH_DEFAULTS.windowMs;
    this.blockMs = o.blockMs ?? FAILED_AUTH_DEFAULTS.blockMs;
    let size = PROBE;
    while (size < (o.slots ?? 4096)) size *= 2;
    this.mask = size - 1;
    this.keys = new Array<string | undefined>(size).fill(undefined);
    this.windowStart = new Float64Array(size);
    this.count = new Uint32Array(size);
    this.until = new Float64Array(size);
  }

  /** Milliseconds the client is still refused for, or 0. `now` is performance.now(). */
  blockedFor(client: string, now: number): number {
    if (now >= this.anyBlockedUntil) return 0;
    const key = clientKey(client);
    const slot = this.find(key);
    if (slot < 0) return 0;
    const left = this.until[slot] - now;
    if (left <= 0) return 0;
    this.refused++;
    return left;
  }

  /** A failed authentication from `client`; true when it starts a block. */
  failed(client: string, now: number): boolean {
    const key = clientKey(client);
    let slot = this.find(key);
    if (slot < 0) slot = this.claim(key, now);
    if (now - this.windowStart[slot] >= this.windowMs) {
      this.windowStart[slot] = now;
      this.count[slot] = 0;
    }
    if (++this.count[slot] < this.failures || this.until[slot] > now) return false;
    this.until[slot] = now + this.blockMs;
    this.count[slot] = 0;
    this.windowStart[slot] = now;
    if (this.until[slot] > this.anyBlockedUntil) this.anyBlockedUntil = this.until[slot];
    this.blocks++;
    return true;
  }

  private find(key: string): number {
    const h = hash(key);
    for (let i = 0; i < PROBE; i++) {
      const s = (h + i) & this.mask;
      if (this.keys[s] === key) return s;
    }
    return -1;
  }

  /** A slot for a new key: a free or stale one among its probes, else the least recently started window. */
  private claim(key: string, now: number): number {
    const h = hash(key);
    let victim = -1;
    for (let i = 0; i < PROBE; i++) {
      const s = (h + i) & this.mask;
      const stale = this.until[s] <= now && now - this.windowStart[s] >= this.windowMs;
      if (this.keys[s] === undefined || stale) {
        victim = s;
        break;
      }
      // Blocked entries are evicted last: replacing them would lift a block.
      if (victim < 0 || this.rank(s, now) < this.rank(victim, now)) victim = s;
    }
    this.keys[victim] = key;
    this.windowStart[victim] = now;
    this.count[victim] = 0;
    this.until[victim] = 0;
    return victim;
  }

  private rank(s: number, now: number): number {
    return this.until[s] > now ? this.until[s] + 1e15 : this.windowStart[s];
  }
}

/** FNV-1a over the UTF-16 code units. */
function hash(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The address a limit applies to: IPv4 (also IPv4-mapped IPv6) as it is, IPv6 by its /64. */
export function clientKey(address: string): string {
  if (address.indexOf(':') < 0) return address;
  if (address.startsWith('::ffff:') && address.indexOf('.') > 0) return address.slice(7);
  const zone = address.indexOf('%');
  const a = zone < 0 ? address : address.slice(0, zone);
  const gap = a.indexOf('::');
  let groups: string[];
  if (gap < 0) groups = a.split(':');
  else {
    const head = gap === 0 ? [] : a.slice(0, gap).split(':');
    const tail = gap + 2 >= a.length ? [] : a.slice(gap + 2).split(':');
    groups = head.concat(new Array<string>(Math.max(0, 8 - head.length - tail.length)).fill('0'), tail);
  }
  let key = '';
  for (let i = 0; i < 4; i++) key += (i > 0 ? ':' : '') + (parseInt(groups[i] ?? '0', 16) || 0).toString(16);
  return key + '::/64';
}
