// The ONNX scorer on its own (no router, no host process): its routes and answers, and batching's joins and
// splits, on a model built with onnx-proto. End to end through the CLI and router: test/e2e/no-code.test.ts.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { expectedSoftmax, writeSoftmaxModel } from '../../test/fixtures/no-code/onnx-model.js';
import { encodeRequestHead, type HeaderList } from '../protocol/frame.js';
import { OnnxScorer, type OnnxNoCode } from './onnx-scorer.js';
import type { Peer } from './scorer.js';

const { onnx } = onnxProto;

interface Answer {
  status: number;
  headers: HeaderList;
  json: Record<string, unknown>;
}

class FakePeer implements Peer {
  closed = false;
  readonly answers = new Map<number, Answer>();
  private waiters = new Map<number, (a: Answer) => void>();
  respond(id: number, status: number, headers: HeaderList, body: Buffer): void {
    const a = { status, headers, json: JSON.parse(body.toString()) as Record<string, unknown> };
    this.answers.set(id, a);
    this.waiters.get(id)?.(a);
  }
  sendFrame(): void {}
  answer(id: number): Promise<Answer> {
    const a = this.answers.get(id);
    return a ? Promise.resolve(a) : new Promise((r) => this.waiters.set(id, r));
  }
}

const dir = mkdtempSync(join(tmpdir(), 'onnx-scorer-'));
const file = join(dir, 'tiny.onnx');
const CFG: OnnxNoCode = { kind: 'onnx', modelName: 'tiny', modelVersion: '3', modelFile: 'tiny.onnx' };
let nextId = 1;

function send(scorer: OnnxScorer, peer: FakePeer, method: string, url: string, body?: unknown): Promise<Answer> {
  const id = nextId++;
  const payload = Buffer.isBuffer(body) ? body : Buffer.from(body === undefined ? '' : JSON.stringify(body));
  scorer.handle(peer, Buffer.concat([encodeRequestHead(id, method, url, [['content-type', 'application/json']], payload.length), payload]), id);
  return peer.answer(id);
}

const rows = (n: number, from: number) => Array.from({ length: n }, (_, i) => [from + i, 1, 0, -1]);
const close = (got: unknown, want: number[]) => (got as number[]).forEach((g, i) => assert.ok(Math.abs(g - want[i]) < 1e-5, `${String(got)} ≈ ${String(want)}`));

before(() => writeSoftmaxModel(file));
after(() => rmSync(dir, { recursive: true, force: true }));

test('routes: health, metadata from the graph, 404 for another model or version, /score forms', async () => {
  const scorer = await OnnxScorer.start(file, CFG);
  const peer = new FakePeer();
  try {
    assert.equal((await send(scorer, peer, 'GET', '/v2/health/ready')).status, 200);
    const meta = await send(scorer, peer, 'GET', '/v2/models/tiny/versions/3');
    assert.deepEqual(meta.json.inputs, [{ name: 'X', datatype: 'FP32', shape: [-1, 4] }]);
    assert.equal((await send(scorer, peer, 'GET', '/v2/models/tiny/versions/2')).status, 404);
    assert.equal((await send(scorer, peer, 'GET', '/v2/models/other')).status, 404);
    assert.equal((await send(scorer, peer, 'GET', '/v2/models/tiny/infer')).status, 405);
    // One row without its outer list, and named inputs.
    const one = await send(scorer, peer, 'POST', '/score', { input_data: [1, 2, 3, 4] });
    close((one.json as unknown as number[][])[0], expectedSoftmax([1, 2, 3, 4]));
    const named = await send(scorer, peer, 'POST', '/score', { inputs: { X: [[1, 2, 3, 4]] } });
    assert.equal(named.status, 200);
    const unknown = await send(scorer, peer, 'POST', '/score', { inputs: { X: [[1, 2, 3, 4]], Q: [1] } });
    assert.equal(unknown.status, 400);
    assert.match(String(unknown.json.error), /Unknown input 'Q'/);
    assert.equal((await send(scorer, peer, 'POST', '/score', { something: 1 })).status, 400);
    const wanted = await send(scorer, peer, 'POST', '/v2/models/tiny/infer', { inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3, 4] }], outputs: [{ name: 'nope' }] });
    assert.equal(wanted.status, 400);
  } finally {
    await scorer.stop();
  }
});

test('batching joins concurrent requests along dimension 0, at most max_batch_size rows, and gives each its own rows', async () => {
  const scorer = await OnnxScorer.start(file, { ...CFG, batching: { maxBatchSize: 4, maxDelayUs: 5000 } });
  const peer = new FakePeer();
  try {
    // 1 + 2 + 1 rows fill a batch of 4; then 3 + 3 cannot share one (6 > 4); a bad one is refused alone.
    const sizes = [1, 2, 1, 3, 3];
    let from = 0;
    const sent = sizes.map((n) => {
      const r = rows(n, from);
      from += n;
      return { r, answer: send(scorer, peer, 'POST', '/v2/models/tiny/infer', { inputs: [{ name: 'X', shape: [n, 4], datatype: 'FP32', data: r }] }) };
    });
    const bad = send(scorer, peer, 'POST', '/v2/models/tiny/infer', { inputs: [{ name: 'X', shape: [1, 4], datatype: 'FP32', data: [1, 2, 3] }] });
    const batchRows: number[] = [];
    for (const { r, answer } of sent) {
      const a = await answer;
      assert.equal(a.status, 200, JSON.stringify(a.json));
      const out = (a.json.outputs as { shape: number[]; data: number[] }[])[0];
      assert.deepEqual(out.shape, [r.length, 3]);
      close(out.data, r.flatMap((x) => expectedSoftmax(x)));
      batchRows.push(Number(a.headers.find(([k]) => k === 'x-infergate-batch-rows')?.[1]));
    }
    assert.deepEqual(batchRows.slice(0, 3), [4, 4, 4], 'the first three ran as one call of 4 rows');
    assert.ok(batchRows.every((n) => n <= 4), `no call over max_batch_size: ${batchRows}`);
    assert.equal((await bad).status, 400);
  } finally {
    await scorer.stop();
  }
});

test('hostile requests are 400/404 answers, never an exception out of handle() (it would end the host)', async () => {
  const scorer = await OnnxScorer.start(file, CFG);
  const peer = new FakePeer();
  try {
    // A malformed %-escape in the model name (decodeURIComponent throws URIError on it).
    const escaped = await send(scorer, peer, 'GET', '/v2/models/%E0%A4%A/ready');
    assert.equal(escaped.status, 404);
    assert.match(String(escaped.json.error), /'%E0%A4%A' is not found/);
    // Arrays nested 100,000 deep: JSON.parse takes them, a recursive flatten overflows the stack.
    // (JSON.stringify cannot write them either: the bodies are written by hand.)
    const deep = '['.repeat(100_000) + ']'.repeat(100_000);
    const v2 = await send(scorer, peer, 'POST', '/v2/models/tiny/infer', Buffer.from(`{"inputs": [{"name": "X", "shape": [1, 4], "datatype": "FP32", "data": ${deep}}]}`));
    assert.equal(v2.status, 400);
    assert.match(String(v2.json.error), /Input 'X': data is not a tensor: more than 32 dimensions/);
    const score = await send(scorer, peer, 'POST', '/score', Buffer.from(`{"input_data": ${deep}}`));
    assert.equal(score.status, 400);
    // A ragged /score tensor whose count of values happens to fit [2, 2]... is still refused.
    const ragged = await send(scorer, peer, 'POST', '/score', { input_data: [[1, 2, 3, 4], [5, 6, [7, 8]]] });
    assert.equal(ragged.status, 400);
    assert.match(String(ragged.json.error), /not a regular tensor/);
  } finally {
    await scorer.stop();
  }
});

/** Y = Identity(X), X of `elemType` [N, 2]. */
function identityModel(path: string, elemType: number): void {
  const shape = { dim: [{ dimParam: 'N' }, { dimValue: 2 }] };
  const m = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'identity',
      node: [{ opType: 'Identity', input: ['X'], output: ['Y'] }],
      input: [{ name: 'X', type: { tensorType: { elemType, shape } } }],
      output: [{ name: 'Y', type: { tensorType: { elemType, shape } } }],
    },
  });
  writeFileSync(path, onnx.ModelProto.encode(m).finish());
}

test('batching a model with string tensors joins and splits them (plain arrays, not typed ones)', async () => {
  const path = join(dir, 'strings.onnx');
  identityModel(path, onnx.TensorProto.DataType.STRING);
  const scorer = await OnnxScorer.start(path, { ...CFG, batching: { maxBatchSize: 8, maxDelayUs: 5000 } });
  const peer = new FakePeer();
  try {
    const sent = [0, 1, 2].map((i) => send(scorer, peer, 'POST', '/v2/models/tiny/infer', { inputs: [{ name: 'X', shape: [1, 2], datatype: 'BYTES', data: [`a${i}`, `b${i}`] }] }));
    const answers = await Promise.all(sent);
    answers.forEach((a, i) => {
      assert.equal(a.status, 200, JSON.stringify(a.json));
      assert.deepEqual((a.json.outputs as { data: string[] }[])[0].data, [`a${i}`, `b${i}`]);
      assert.equal(a.headers.find(([k]) => k === 'x-infergate-batch-rows')?.[1], '3', 'the three ran as one call');
    });
  } finally {
    await scorer.stop();
  }
});

test('integers out of the datatype range are refused, not wrapped', async () => {
  const path = join(dir, 'uint8.onnx');
  identityModel(path, onnx.TensorProto.DataType.UINT8);
  const scorer = await OnnxScorer.start(path, CFG);
  const peer = new FakePeer();
  try {
    const ok = await send(scorer, peer, 'POST', '/score', { input_data: [[0, 255]] });
    assert.deepEqual(ok.json, [[0, 255]]);
    for (const v of [300, -1, 1.5]) {
      const r = await send(scorer, peer, 'POST', '/score', { input_data: [[1, v]] });
      assert.equal(r.status, 400, `${v}: ${JSON.stringify(r.json)}`);
      assert.match(String(r.json.error), new RegExp(`value ${v} at position 1 is not a valid UINT8`));
    }
  } finally {
    await scorer.stop();
  }
});
