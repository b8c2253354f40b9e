// What routers that run apart from the control plane read (the router role, `infergate router --control`,
// docs/router-scale.md): the routing table as a long poll, and the wake-up of a deployment scaled to zero.
//
// GET /routing/v1/tables?after=<tag>&wait=<s> answers at once with the current table when its tag differs
// from `after` (none given: the current one), else when the next one is published, else 204 after `wait`
// seconds (default 20, at most 60). A tag is `<epoch>.<version>`: versions start again at 1 when the
// control plane restarts, and the epoch (random per start) tells a router that its table is from an
// earlier run, so it takes the new one even if its version number is lower.
//
// Not in the public OpenAPI document (hide): an interface between infergate's own processes.
// Owner only: a routing table carries the endpoints' key hashes and their token-signing secrets. Reads
// are audited as credential reads (one line per table a router fetches, and per empty poll).

import { randomBytes } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { RoutingTable } from '../ir/types.js';

const OWNER = { role: 'owner', credential: true } as const;
const DEFAULT_WAIT_S = 20;
const MAX_WAIT_S = 60;

/** The latest routing table and who waits for the next one. */
export class RoutingFeed {
  readonly epoch = randomBytes(6).toString('hex');
  private table: RoutingTable | null = null;
  private waiters = new Set<() => void>();

  publish(table: RoutingTable): void {
    this.table = table;
    this.wakeAll();
  }

  /** The tag a router sends back as `after`. */
  tag(table: RoutingTable): string {
    return `${this.epoch}.${table.version}`;
  }

  /**
   * The current table if its tag is not `after`, else the next one within `waitMs`; null when none came.
   * `gone` ends the wait early (the poller's connection closed): a waiter lasts no longer than its
   * connection, so there are never more than the API's open connections (ApiHttpLimits.maxConnections).
   */
  async next(after: string | undefined, waitMs: number, gone?: AbortSignal): Promise<RoutingTable | null> {
    const now = this.table;
    if (now !== null && this.tag(now) !== after) return now;
    if (gone?.aborted) return null;
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        gone?.removeEventListener('abort', done);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, waitMs);
      gone?.addEventListener('abort', done, { once: true });
      this.waiters.add(done);
    });
    const t = this.table;
    return t !== null && this.tag(t) !== after ? t : null;
  }

  /** Ends every long poll now (the server is closing: they answer 204 and routers poll again elsewhere). */
  close(): void {
    this.wakeAll();
  }

  private wakeAll(): void {
    const w = this.waiters;
    this.waiters = new Set();
    for (const fn of w) fn();
  }
}

export interface RoutingApiOptions {
  feed: RoutingFeed;
  /** Asks for an instance of a deployment scaled to zero (Controller.wake). */
  wake(endpoint: string, deployment: string): Promise<void>;
}

const tablesQuery = {
  type: 'object',
  properties: { after: { type: 'string', maxLength: 64 }, wait: { type: 'integer', minimum: 0, maximum: MAX_WAIT_S } },
  additionalProperties: false,
} as const;
const wakeBody = {
  type: 'object',
  properties: { endpoint: { type: 'string', minLength: 1, maxLength: 64 }, deployment: { type: 'string', minLength: 1, maxLength: 64 } },
  required: ['endpoint', 'deployment'],
  additionalProperties: false,
} as const;

export function registerRoutingRoutes(app: FastifyInstance, o: RoutingApiOptions): void {
  app.get(
    '/routing/v1/tables',
    { config: OWNER, schema: { hide: true, operationId: 'getRoutingTable', summary: 'The routing table, as a long poll on its tag (routers that run apart: infergate router --control)', querystring: tablesQuery } },
    async (req, reply) => {
      const q = req.query as { after?: string; wait?: number };
      const gone = new AbortController();
      reply.raw.once('close', () => gone.abort());
      const table = await o.feed.next(q.after, (q.wait ?? DEFAULT_WAIT_S) * 1000, gone.signal);
      if (table === null) return reply.status(204).send();
      return { tag: o.feed.tag(table), table };
    },
  );
  app.post(
    '/routing/v1/wake',
    { config: { role: 'owner' }, schema: { hide: true, operationId: 'wakeDeployment', summary: 'A request came for a deployment scaled to zero: start an instance', body: wakeBody } },
    async (req, reply) => {
      const b = req.body as { endpoint: string; deployment: string };
      req.auditTarget = { endpoint: b.endpoint, deployment: b.deployment };
      await o.wake(b.endpoint, b.deployment);
      return reply.status(202).send({ endpoint: b.endpoint, deployment: b.deployment, waking: true });
    },
  );
}
