// The routing-table long poll (api/routing.ts RoutingFeed): the current table at once when the router's tag
// is not the current one, the next one when it is published, null after the wait, and a waiter that ends
// with its poller's connection (the waiters never outnumber the open connections).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import Fastify from 'fastify';
import type { RoutingTable } from '../ir/types.js';
import { RoutingFeed, registerRoutingRoutes } from './routing.js';

const table = (version: number): RoutingTable => ({ version, endpoints: [] });

test('the current table at once for another tag, the next one when published, null after the wait', async () => {
  const feed = new RoutingFeed();
  feed.publish(table(1));
  assert.equal((await feed.next(undefined, 10_000))?.version, 1);
  assert.equal((await feed.next(`${feed.epoch}.7`, 10_000))?.version, 1, 'a tag of another version');
  assert.equal((await feed.next(`other.1`, 10_000))?.version, 1, 'a tag of an earlier run (another epoch)');
  const t0 = performance.now();
  assert.equal(await feed.next(feed.tag(table(1)), 50), null);
  assert.ok(performance.now() - t0 >= 45);
  const waiting = feed.next(feed.tag(table(1)), 10_000);
  feed.publish(table(2));
  assert.equal((await waiting)?.version, 2);
});

test('a poller whose connection closes stops waiting at once', async () => {
  const feed = new RoutingFeed();
  feed.publish(table(1));
  const gone = new AbortController();
  const t0 = performance.now();
  const waiting = feed.next(feed.tag(table(1)), 60_000, gone.signal);
  gone.abort();
  assert.equal(await waiting, null);
  assert.ok(performance.now() - t0 < 1000);
  assert.equal(await feed.next(feed.tag(table(1)), 60_000, gone.signal), null, 'already gone: no wait at all');
});

test('the route: a client that goes away mid-poll leaves no waiter behind; feed.close() ends the others with 204', async () => {
  const feed = new RoutingFeed();
  feed.publish(table(3));
  const app = Fastify();
  registerRoutingRoutes(app, { feed, wake: async () => {} });
  await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    const base = `http://127.0.0.1:${(app.server.address() as { port: number }).port}/routing/v1/tables`;
    const first = (await (await fetch(`${base}?wait=1`)).json()) as { tag: string; table: RoutingTable };
    assert.equal(first.table.version, 3);
    const waiters = (): number => (feed as unknown as { waiters: Set<unknown> }).waiters.size;
    const ac = new AbortController();
    const abandoned = fetch(`${base}?wait=60&after=${first.tag}`, { signal: ac.signal }).catch(() => null);
    const t0 = performance.now();
    while (waiters() === 0 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(waiters(), 1);
    ac.abort();
    await abandoned;
    while (waiters() > 0 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    assert.equal(waiters(), 0, 'the poll of a client that went away is not kept for its 60 s');
    const kept = fetch(`${base}?wait=60&after=${first.tag}`);
    while (waiters() === 0 && performance.now() - t0 < 5000) await new Promise((r) => setTimeout(r, 10));
    feed.close();
    assert.equal((await kept).status, 204);
  } finally {
    await app.close();
  }
});
