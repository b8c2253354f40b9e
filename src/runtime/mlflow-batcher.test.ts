// The MLflow batcher in front of a fake scorer that answers as infergate_mlflow.py does (one prediction per
// row): which requests are merged, how answers are split, and that a failed merged call is retried request
// by request. End to end with the real Python loader: test/e2e/no-code.test.ts.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { decodeRequest, encodeRequestHead, type HeaderList } from '../protocol/frame.js';
import { MlflowBatcher } from './mlflow-batcher.js';
import type { Peer, Scorer } from './scorer.js';

/** Predicts each row's first value; refuses any row whose first value is negative (400), as a signature would. */
class FakeLoader implements Scorer {
  inflight = 0;
  readonly calls: { url: string; body: Record<string, unknown> }[] = [];
  handle(peer: Peer, frame: Buffer, id: number): void {
    const req = decodeRequest(frame);
    const body = JSON.parse(req.body.toString()) as Record<string, unknown>;
    this.calls.push({ url: req.url, body });
    const answer = (status: number, value: unknown): void => void setImmediate(() => peer.respond(id, status, [['content-type', 'application/json']], Buffer.from(JSON.stringify(value))));
    if (req.url === '/score') {
      const rows = (Array.isArray(body.input_data) ? body.input_data : (body.dataframe_split as { data: number[][] }).data) as number[][];
      if (rows.some((r) => r[0] < 0)) return answer(400, { error: 'negative value in column a' });
      return answer(200, rows.map((r) => r[0]));
    }
    const inputs = body.inputs as { shape: number[]; data: number[] }[];
    if (inputs[0].data.some((v) => v < 0)) return answer(400, { error: "Input 'a' is negative" });
    return answer(200, { model_name: 'm', model_version: '1', outputs: [{ name: 'predict', shape: [inputs[0].shape[0]], datatype: 'FP64', data: inputs[0].data }] });
  }
  cancel(): void {}
  async stop(): Promise<void> {}
}

class Collect implements Peer {
  closed = false;
  readonly got = new Map<number, { status: number; headers: HeaderList; json: unknown }>();
  respond(id: number, status: number, headers: HeaderList, body: Buffer): void {
    this.got.set(id, { status, headers, json: JSON.parse(body.toString()) });
  }
  sendFrame(): void {}
}

function frame(id: number, url: string, body: unknown): Buffer {
  const b = Buffer.from(JSON.stringify(body));
  return Buffer.concat([encodeRequestHead(id, 'POST', url, [], b.length), b]);
}

/** Until every id has its answer (bounded: the test fails with the ids still missing). */
async function answered(peer: Collect, ids: number[]): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!ids.every((id) => peer.got.has(id))) {
    if (Date.now() > deadline) assert.fail(`no answer for ${ids.filter((id) => !peer.got.has(id)).join(', ')}`);
    await new Promise((r) => setTimeout(r, 1));
  }
}

test('requests of one form are merged up to max_batch_size rows and each gets its own predictions', async () => {
  const loader = new FakeLoader();
  const b = new MlflowBatcher(loader, 5, 2000);
  const peer = new Collect();
  b.handle(peer, frame(1, '/score', { input_data: [[1], [2]] }), 1);
  b.handle(peer, frame(2, '/score', { input_data: [[3]] }), 2);
  b.handle(peer, frame(3, '/score', { dataframe_split: { columns: ['a'], data: [[4]] } }), 3); // another form: its own call
  b.handle(peer, frame(4, '/score', { input_data: [[5], [6], [7]] }), 4); // 3 + 3 > 5: the first group goes first
  b.handle(peer, frame(5, '/v2/models/m/infer', { id: 'x', inputs: [{ name: 'a', shape: [2], datatype: 'FP64', data: [8, 9] }] }), 5);
  b.handle(peer, frame(6, '/v2/models/m/infer', { inputs: [{ name: 'a', shape: [1], datatype: 'FP64', data: [10] }] }), 6);
  await answered(peer, [1, 2, 3, 4, 5, 6]);
  assert.deepEqual(peer.got.get(1)?.json, [1, 2]);
  assert.deepEqual(peer.got.get(2)?.json, [3]);
  assert.deepEqual(peer.got.get(3)?.json, [4]);
  assert.deepEqual(peer.got.get(4)?.json, [5, 6, 7]);
  assert.deepEqual(peer.got.get(5)?.json, { model_name: 'm', model_version: '1', id: 'x', outputs: [{ name: 'predict', shape: [2], datatype: 'FP64', data: [8, 9] }] });
  assert.deepEqual(peer.got.get(6)?.json, { model_name: 'm', model_version: '1', outputs: [{ name: 'predict', shape: [1], datatype: 'FP64', data: [10] }] });
  assert.equal(peer.got.get(1)?.headers.find(([k]) => k === 'x-infergate-batch-rows')?.[1], '3');
  assert.deepEqual(
    loader.calls.map((c) => c.url),
    ['/score', '/score', '/score', '/v2/models/m/infer'],
    'four model calls for six requests',
  );
});

test('a merged call that fails is retried request by request: only the bad request gets the error', async () => {
  const loader = new FakeLoader();
  const b = new MlflowBatcher(loader, 10, 2000);
  const peer = new Collect();
  b.handle(peer, frame(1, '/score', { input_data: [[1]] }), 1);
  b.handle(peer, frame(2, '/score', { input_data: [[-2]] }), 2);
  b.handle(peer, frame(3, '/score', { input_data: [[3]] }), 3);
  await answered(peer, [1, 2, 3]);
  assert.deepEqual(peer.got.get(1), { status: 200, headers: [['content-type', 'application/json']], json: [1] });
  assert.equal(peer.got.get(2)?.status, 400);
  assert.deepEqual(peer.got.get(3)?.json, [3]);
  assert.equal(loader.calls.length, 4, 'one merged call, then three alone');
});

test('what cannot be merged goes through as it is, and a cancelled request still waiting is dropped', async () => {
  const loader = new FakeLoader();
  const b = new MlflowBatcher(loader, 10, 2000);
  const peer = new Collect();
  b.handle(peer, frame(1, '/score', { input_data: [[1]], params: {} }), 1); // two keys: not a form we merge
  b.handle(peer, frame(2, '/score', { input_data: [[2]] }), 2);
  b.handle(peer, frame(3, '/score', { input_data: [[3]] }), 3);
  b.cancel(peer, 3);
  // 3 would have been answered with 2: they were in one group.
  await answered(peer, [1, 2]);
  assert.equal(loader.calls.length, 2);
  assert.deepEqual(loader.calls[0].body, { input_data: [[1]], params: {} });
  assert.deepEqual(peer.got.get(2)?.json, [2]);
  assert.equal(peer.got.has(3), false);
});

test('data nested deeper than any tensor goes to the loader alone (it names the problem), without throwing', () => {
  const peer = new Collect();
  // JSON.parse takes arrays nested 100,000 deep; a recursive flatten would throw RangeError out of handle().
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  const body = Buffer.from(`{"inputs": [{"name": "a", "shape": [1], "datatype": "FP64", "data": ${deep}}]}`);
  let forwarded: Buffer | undefined;
  const spy: Scorer = { inflight: 0, handle: (_p, f) => void (forwarded = f), cancel: () => {}, stop: async () => {} };
  new MlflowBatcher(spy, 10, 2000).handle(peer, Buffer.concat([encodeRequestHead(1, 'POST', '/v2/models/m/infer', [], body.length), body]), 1);
  assert.ok(forwarded, 'sent on at once, as it is');
});

test('a row holding values nested thousands deep is sent alone: merging it would throw out of a timer', async () => {
  const loader = new FakeLoader();
  const sent: Buffer[] = [];
  // The fake loader answers request 1 only (it would itself have to write the deep one back).
  const spy: Scorer = { inflight: 0, handle: (p, f, id) => (sent.push(f), id === 1 ? loader.handle(p, f, id) : undefined), cancel: () => {}, stop: async () => {} };
  const b = new MlflowBatcher(spy, 10, 2000);
  const peer = new Collect();
  const deep = '['.repeat(100_000) + '1' + ']'.repeat(100_000);
  const body = Buffer.from(`{"input_data": [[${deep}]]}`);
  b.handle(peer, frame(1, '/score', { input_data: [[1]] }), 1);
  b.handle(peer, Buffer.concat([encodeRequestHead(2, 'POST', '/score', [], body.length), body]), 2);
  await answered(peer, [1]);
  assert.deepEqual(peer.got.get(1)?.json, [1]);
  assert.equal(sent.length, 2, 'each went to the loader on its own');
  assert.ok(sent[1].equals(Buffer.concat([encodeRequestHead(2, 'POST', '/score', [], body.length), body])), 'the deep one as it came');
});
