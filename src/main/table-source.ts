// Where a router that is not the control plane's own gets its routing tables and asks for wake-ups
// (docs/router-scale.md): router workers from their primary over the cluster IPC channel, the router role
// from a control plane over HTTP(S). Both keep the last good table: a router serves it while its source is
// away.

import type { RoutingTable } from '../ir/types.js';
import { trustCaFile, trustedFetch } from '../util/tls.js';

export interface TableSource {
  /** Calls `apply` with every new table, the first as soon as there is one. */
  start(apply: (table: RoutingTable) => void): void;
  /** A request came for a deployment scaled to zero (RouterOptions.onDemand). */
  wake(endpoint: string, deployment: string): Promise<void>;
  close(): void;
}

/** Messages between the primary and its router workers (router-workers.ts). */
export type ToWorker =
  | { t: 'table'; table: RoutingTable }
  | { t: 'tls'; tls: import('node:tls').SecureContextOptions }
  | { t: 'close' };

/** A router worker's tables: what its primary sends. */
export class IpcTableSource implements TableSource {
  private apply: ((table: RoutingTable) => void) | null = null;
  private last: RoutingTable | null = null;

  /** The worker's message handler hands tables here (it owns process.on('message')). */
  push(table: RoutingTable): void {
    this.last = table;
    this.apply?.(table);
  }

  start(apply: (table: RoutingTable) => void): void {
    this.apply = apply;
    if (this.last !== null) apply(this.last);
  }

  wake(endpoint: string, deployment: string): Promise<void> {
    process.send?.({ t: 'wake', endpoint, deployment });
    return Promise.resolve();
  }

  close(): void {
    this.apply = null;
  }
}

export interface HttpTableSourceOptions {
  /** The control plane's URL (http(s)://host:port). */
  control: string;
  token: string;
  /** A CA (PEM file) to trust for an https control plane besides the system's. */
  caFile?: string;
  /** Long-poll wait the control plane is asked for (s; default 20). */
  waitSeconds?: number;
  /** First and largest pause between failed polls (ms; defaults 200 and 5000). */
  backoffMs?: number;
  maxBackoffMs?: number;
  log?: (line: string) => void;
}

/**
 * The router role's tables: a long poll on GET /routing/v1/tables (api/routing.ts). A failed poll (the
 * control plane down, restarting, unreachable) is retried with exponential back-off; the router serves its
 * last table meanwhile, and takes whatever the control plane has once it answers again.
 */
export class HttpTableSource implements TableSource {
  private stopped = false;
  private tag: string | undefined;
  private readonly base: string;
  /** Whether the last poll failed (to log a loss and a recovery once each). */
  private failing = false;
  private pause: ((v?: unknown) => void) | null = null;

  constructor(private readonly o: HttpTableSourceOptions) {
    this.base = o.control.replace(/\/+$/, '');
    if (o.caFile !== undefined) trustCaFile(o.caFile, '--ca-file');
  }

  start(apply: (table: RoutingTable) => void): void {
    void this.loop(apply);
  }

  private async loop(apply: (table: RoutingTable) => void): Promise<void> {
    const log = this.o.log ?? (() => {});
    const first = this.o.backoffMs ?? 200;
    let backoff = first;
    const wait = this.o.waitSeconds ?? 20;
    while (!this.stopped) {
      try {
        const query = `wait=${wait}${this.tag !== undefined ? `&after=${encodeURIComponent(this.tag)}` : ''}`;
        // The answer's body too: a control plane that stalls mid-table must not hold the router's polling.
        const body = await withTimeout(this.poll(query), (wait + 10) * 1000);
        if (body !== null) {
          this.tag = body.tag;
          if (!this.stopped) apply(body.table);
        }
        if (this.failing) log(`control plane ${this.base} answers again; routing table ${this.tag ?? '(none yet)'}`);
        this.failing = false;
        backoff = first;
      } catch (e) {
        if (!this.failing) log(`control plane ${this.base}: ${(e as Error).message}; serving the last routing table (${this.tag ?? 'none yet'}) and retrying`);
        this.failing = true;
        await new Promise((r) => {
          this.pause = r;
          setTimeout(r, backoff).unref();
        });
        this.pause = null;
        backoff = Math.min(backoff * 2, this.o.maxBackoffMs ?? 5000);
      }
    }
  }

  /** One long poll: the table and its tag, or null when none came within the wait (204). */
  private async poll(query: string): Promise<{ tag: string; table: RoutingTable } | null> {
    const res = await trustedFetch(`${this.base}/routing/v1/tables?${query}`, { method: 'GET', headers: { authorization: `Bearer ${this.o.token}` } });
    if (res.status === 204) return null;
    if (res.status !== 200) throw new Error(`${res.status} ${(await res.text()).slice(0, 300)}`);
    return (await res.json()) as { tag: string; table: RoutingTable };
  }

  async wake(endpoint: string, deployment: string): Promise<void> {
    // Bounded: a control plane that takes the call and never answers shows in the router's log (router-role.ts).
    await withTimeout(
      (async () => {
        const res = await trustedFetch(`${this.base}/routing/v1/wake`, {
          method: 'POST',
          headers: { authorization: `Bearer ${this.o.token}`, 'content-type': 'application/json' },
          body: JSON.stringify({ endpoint, deployment }),
        });
        if (res.status !== 202) throw new Error(`waking ${endpoint}/${deployment}: ${res.status} ${(await res.text()).slice(0, 300)}`);
      })(),
      WAKE_TIMEOUT_MS,
    );
  }

  close(): void {
    this.stopped = true;
    this.pause?.();
  }
}

const WAKE_TIMEOUT_MS = 10_000;

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms).unref()))]).finally(() => clearTimeout(timer));
}
