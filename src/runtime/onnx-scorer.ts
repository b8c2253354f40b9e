// ONNX models without a scoring script (docs/no-code.md): a triton_model served in the Node instance host
// with onnxruntime-node (CPU), one session per instance, no Python. It answers:
//
//   GET  /                                        "Healthy" (the probes, as every infergate host)
//   GET  /v2/health/live | /v2/health/ready       the Open Inference Protocol (v2), as KServe and Triton
//   GET  /v2                                      server metadata
//   GET  /v2/models/<name>[/versions/<v>][/ready] model metadata from the ONNX graph, or readiness
//   POST /v2/models/<name>[/versions/<v>]/infer   typed tensors in, typed tensors out
//   POST /score                                   Azure's JSON forms: {"input_data": [[...]]} (one input),
//                                                 {"input_data": {"columns", "index", "data"}}, {"inputs":
//                                                 {<name>: [...]}} or {"data": [[...]]}; the answer is the
//                                                 output as nested lists (several outputs: by name)
//
// A request that does not fit the model (an unknown input, a wrong datatype or shape) is the client's: 400
// with `{"error": "..."}` naming the input (the Triton / KServe shape), never a 5xx. With batching on
// (INFERGATE_NO_CODE.batching), requests that arrive within maxDelayUs of each other and share their
// inputs' non-batch dimensions are run as one session.run() along dimension 0 and their answers split.

import { decodeRequest, type HeaderList, type RequestFrame } from '../protocol/frame.js';
import { flattenTensor, shapeOf } from './json-tensor.js';
import { log } from './log.js';
import type { Peer, Scorer } from './scorer.js';

/** INFERGATE_NO_CODE as an onnx instance gets it (ir/types.ts NoCodePlan; runtime/ imports no ir). */
export interface OnnxNoCode {
  kind: 'onnx';
  modelName: string;
  modelVersion: string;
  modelFile: string;
  batching?: { maxBatchSize: number; maxDelayUs: number };
}

type Ort = typeof import('onnxruntime-node');
type OrtTensor = import('onnxruntime-node').Tensor;
type Session = import('onnxruntime-node').InferenceSession;

const JSON_HEADERS: HeaderList = [['content-type', 'application/json']];
const TEXT_HEADERS: HeaderList = [['content-type', 'text/plain; charset=utf-8']];

/** OIP datatype ↔ onnxruntime tensor type. */
const DATATYPES: Record<string, string> = {
  FP32: 'float32', FP64: 'float64', FP16: 'float16', INT8: 'int8', INT16: 'int16', INT32: 'int32', INT64: 'int64',
  UINT8: 'uint8', UINT16: 'uint16', UINT32: 'uint32', UINT64: 'uint64', BOOL: 'bool', BYTES: 'string',
};
const OIP_OF: Record<string, string> = Object.fromEntries(Object.entries(DATATYPES).map(([k, v]) => [v, k]));

interface InputInfo {
  name: string;
  type: string;
  /** -1 for a dynamic dimension. */
  shape: number[];
}

/** One request's tensors, checked against the model. */
interface Feed {
  tensors: Map<string, { type: string; shape: number[]; data: ArrayLike<unknown> }>;
  /** Rows along dimension 0 (the batch dimension), when every input has one. */
  rows: number;
}

/** A client error: 400 with its message. */
class BadRequest extends Error {
  constructor(
    message: string,
    readonly status = 400,
  ) {
    super(message);
  }
}

export class OnnxScorer implements Scorer {
  inflight = 0;
  private readonly inputs: InputInfo[];
  private readonly outputs: InputInfo[];
  private readonly metadata: Buffer;
  private readonly batcher: Batcher | null;

  private constructor(
    private readonly ort: Ort,
    private readonly session: Session,
    private readonly cfg: OnnxNoCode,
  ) {
    this.inputs = describe(session.inputMetadata, session.inputNames);
    this.outputs = describe(session.outputMetadata, session.outputNames);
    this.metadata = json({
      name: cfg.modelName,
      versions: [cfg.modelVersion],
      platform: 'onnxruntime_onnx',
      inputs: this.inputs.map((i) => ({ name: i.name, datatype: OIP_OF[i.type] ?? i.type.toUpperCase(), shape: i.shape })),
      outputs: this.outputs.map((o) => ({ name: o.name, datatype: OIP_OF[o.type] ?? o.type.toUpperCase(), shape: o.shape })),
    });
    // Batching needs a batch dimension on every input and output.
    const batchable = [...this.inputs, ...this.outputs].every((t) => t.shape.length > 0 && t.shape[0] === -1);
    if (cfg.batching && !batchable) log('W', 'azmlinfsrv', 'Batching is on, but the model has inputs or outputs without a dynamic first dimension: requests run one by one.');
    this.batcher = cfg.batching && batchable && cfg.batching.maxBatchSize > 1 ? new Batcher(this, cfg.batching.maxBatchSize, cfg.batching.maxDelayUs) : null;
  }

  /** Loads the model; a failure is the model's (init-failed), reported by the host. */
  static async start(modelPath: string, cfg: OnnxNoCode): Promise<OnnxScorer> {
    // An optional dependency: npm drops it when its install script (a CUDA download from nuget) fails offline.
    const ort = (await import('onnxruntime-node').catch((e: unknown) => {
      throw new Error(`onnxruntime-node cannot be loaded (${(e as Error).message}). It is an optional dependency of infergate that npm leaves out when its install script fails; install infergate again with ONNXRUNTIME_NODE_INSTALL=skip in the environment (the CPU binaries are in the package).`);
    })) as Ort;
    // One thread per session: an instance is one core's worth of work, more instances use more cores
    // (a tiny model's intra-op thread pool spins more than it computes).
    const threads = Number(process.env.INFERGATE_ONNX_THREADS ?? '1');
    const session = await ort.InferenceSession.create(modelPath, { executionProviders: ['cpu'], intraOpNumThreads: Number.isInteger(threads) && threads > 0 ? threads : 1 });
    const scorer = new OnnxScorer(ort, session, cfg);
    log('I', 'azmlinfsrv', `ONNX model ${modelPath} loaded (onnxruntime-node, CPU): inputs ${scorer.inputs.map(fmt).join(', ')}; outputs ${scorer.outputs.map(fmt).join(', ')}` + (scorer.batcher ? `; batching up to ${cfg.batching!.maxBatchSize} rows within ${cfg.batching!.maxDelayUs} µs` : ''));
    return scorer;
  }

  handle(peer: Peer, frame: Buffer, id: number): void {
    let req: RequestFrame;
    try {
      req = decodeRequest(frame);
    } catch {
      return peer.respond(id, 400, JSON_HEADERS, errorJson('Malformed request frame.'));
    }
    const q = req.url.indexOf('?');
    const path = q < 0 ? req.url : req.url.slice(0, q);
    const m = req.method;
    if (path === '/' && (m === 'GET' || m === 'HEAD')) return peer.respond(id, 200, TEXT_HEADERS, Buffer.from('Healthy'));
    if (path === '/score') {
      if (m !== 'POST') return peer.respond(id, 405, JSON_HEADERS, errorJson('The method is not allowed for /score; POST a JSON body.'));
      return this.infer(peer, id, req.body, 'score');
    }
    if (path === '/v2/health/live') return peer.respond(id, 200, JSON_HEADERS, json({ live: true }));
    if (path === '/v2/health/ready') return peer.respond(id, 200, JSON_HEADERS, json({ ready: true }));
    if (path === '/v2' || path === '/v2/') return peer.respond(id, 200, JSON_HEADERS, json({ name: 'infergate', version: '1', extensions: [] }));
    const mm = /^\/v2\/models\/([^/]+)(?:\/versions\/([^/]+))?(\/ready|\/infer)?$/.exec(path);
    if (mm === null) return peer.respond(id, 404, JSON_HEADERS, errorJson(`Not found: ${path}`));
    const name = unescapePath(mm[1]);
    const version = mm[2] === undefined ? undefined : unescapePath(mm[2]);
    const action = mm[3];
    if (name !== this.cfg.modelName) return peer.respond(id, 404, JSON_HEADERS, errorJson(`Request for unknown model: '${name}' is not found; this deployment serves '${this.cfg.modelName}'`));
    if (version !== undefined && version !== this.cfg.modelVersion) return peer.respond(id, 404, JSON_HEADERS, errorJson(`Request for unknown model: '${this.cfg.modelName}' version ${version} is not found; the version served is ${this.cfg.modelVersion}`));
    if (action === '/infer') {
      if (m !== 'POST') return peer.respond(id, 405, JSON_HEADERS, errorJson('infer takes POST'));
      return this.infer(peer, id, req.body, 'v2');
    }
    if (m !== 'GET' && m !== 'HEAD') return peer.respond(id, 405, JSON_HEADERS, errorJson(`${m} is not allowed here`));
    if (action === '/ready') return peer.respond(id, 200, JSON_HEADERS, json({ name: this.cfg.modelName, ready: true }));
    return peer.respond(id, 200, JSON_HEADERS, this.metadata);
  }

  private infer(peer: Peer, id: number, body: Buffer, style: 'score' | 'v2'): void {
    let feed: Feed;
    let requestId: string | undefined;
    let wanted: string[] | undefined;
    try {
      let doc: unknown;
      try {
        doc = JSON.parse(body.toString('utf8'));
      } catch (e) {
        throw new BadRequest(`The request body is not valid JSON: ${(e as Error).message}`);
      }
      if (style === 'v2') {
        ({ feed, requestId, wanted } = this.fromV2(doc));
      } else {
        feed = this.fromScore(doc);
      }
    } catch (e) {
      if (e instanceof BadRequest) return peer.respond(id, e.status, JSON_HEADERS, errorJson(e.message));
      // Thrown out of here it would end the host, and every request of every router with it.
      return failed(peer, id, e);
    }
    this.inflight++;
    const done = (result: Record<string, OrtTensor> | Error, batchRows = feed.rows): void => {
      this.inflight--;
      if (result instanceof Error) {
        // onnxruntime refusing what passed our checks is still about this request's values (a shape the
        // graph cannot take): 400 with onnxruntime's reason, logged for the operator.
        log('E', 'azmlinfsrv', `ONNX inference failed: ${result.message}`);
        return peer.respond(id, 400, JSON_HEADERS, errorJson(`Inference failed: ${result.message}`));
      }
      let answer: Buffer;
      try {
        answer = style === 'v2' ? this.v2Answer(result, requestId, wanted) : this.scoreAnswer(result);
      } catch (e) {
        // Called from a promise: thrown, it would be an unhandled rejection (the end of the process).
        return failed(peer, id, e);
      }
      // With batching on, how many rows the model call had that answered this request (tests, tuning).
      const headers = this.batcher ? [...JSON_HEADERS, ['x-infergate-batch-rows', String(batchRows)] as [string, string]] : JSON_HEADERS;
      peer.respond(id, 200, headers, answer);
    };
    if (this.batcher && feed.rows > 0) this.batcher.add(feed, done);
    else this.run(feed).then(done, (e: Error) => done(e));
  }

  /** One session.run() for `feed`. */
  run(feed: Feed): Promise<Record<string, OrtTensor>> {
    try {
      const feeds: Record<string, OrtTensor> = {};
      for (const [name, t] of feed.tensors) feeds[name] = new this.ort.Tensor(t.type as 'float32', t.data as Float32Array, t.shape);
      return this.session.run(feeds) as Promise<Record<string, OrtTensor>>;
    } catch (e) {
      // Callers only look at the promise: a Tensor refused synchronously must reach them the same way.
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  // ---- request forms -------------------------------------------------------------------------------------

  private fromV2(doc: unknown): { feed: Feed; requestId?: string; wanted?: string[] } {
    if (!isMap(doc) || !Array.isArray(doc.inputs)) throw new BadRequest("The request needs 'inputs': a list of {name, shape, datatype, data}.");
    const given = new Map<string, { shape: number[]; datatype: string; data: unknown }>();
    for (const [i, t] of doc.inputs.entries()) {
      if (!isMap(t) || typeof t.name !== 'string') throw new BadRequest(`inputs[${i}] needs a name.`);
      if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isInteger(d) && (d as number) >= 0)) throw new BadRequest(`Input '${t.name}': shape must be a list of non-negative whole numbers.`);
      if (typeof t.datatype !== 'string') throw new BadRequest(`Input '${t.name}': datatype is missing.`);
      if (t.data === undefined) throw new BadRequest(`Input '${t.name}': data is missing (the binary tensor extension is not supported; send JSON data).`);
      given.set(t.name, { shape: t.shape as number[], datatype: t.datatype, data: t.data });
    }
    const tensors: Feed['tensors'] = new Map();
    for (const info of this.inputs) {
      const t = given.get(info.name);
      if (t === undefined) throw new BadRequest(`Input '${info.name}' is missing; the model takes ${this.inputs.map(fmt).join(', ')}.`);
      given.delete(info.name);
      const type = DATATYPES[t.datatype];
      if (type !== info.type) throw new BadRequest(`Input '${info.name}': datatype ${t.datatype} does not match the model's ${OIP_OF[info.type] ?? info.type}.`);
      // OIP data may be flat or nested (row-major either way): only the count is checked against the shape.
      const flat = flattenTensor(t.data);
      if (typeof flat === 'string') throw new BadRequest(`Input '${info.name}': data is not a tensor: ${flat}.`);
      tensors.set(info.name, { type, shape: t.shape, data: toData(info, flat, t.shape) });
    }
    if (given.size) throw new BadRequest(`Unknown input '${[...given.keys()][0]}'; the model takes ${this.inputs.map(fmt).join(', ')}.`);
    let wanted: string[] | undefined;
    if (Array.isArray(doc.outputs)) {
      wanted = doc.outputs.map((o) => (isMap(o) && typeof o.name === 'string' ? o.name : ''));
      const unknown = wanted.find((n) => !this.outputs.some((o) => o.name === n));
      if (unknown !== undefined) throw new BadRequest(`Unknown output '${unknown}'; the model gives ${this.outputs.map((o) => o.name).join(', ')}.`);
    }
    return { feed: feedOf(tensors), ...(typeof doc.id === 'string' ? { requestId: doc.id } : {}), ...(wanted ? { wanted } : {}) };
  }

  private fromScore(doc: unknown): Feed {
    if (!isMap(doc)) throw new BadRequest('The request body must be a JSON object: {"input_data": [[...]]} or {"inputs": {"<name>": [...]}}.');
    const tensors: Feed['tensors'] = new Map();
    let named: Record<string, unknown> | undefined;
    if (isMap(doc.inputs)) named = doc.inputs;
    else if (isMap(doc.input_data) && !Array.isArray(doc.input_data.data)) named = doc.input_data;
    if (named) {
      for (const info of this.inputs) {
        if (!(info.name in named)) throw new BadRequest(`Input '${info.name}' is missing; the model takes ${this.inputs.map(fmt).join(', ')}.`);
        tensors.set(info.name, nested(info, named[info.name]));
      }
      const unknown = Object.keys(named).find((k) => !this.inputs.some((i) => i.name === k));
      if (unknown !== undefined) throw new BadRequest(`Unknown input '${unknown}'; the model takes ${this.inputs.map(fmt).join(', ')}.`);
      return feedOf(tensors);
    }
    const value = isMap(doc.input_data) ? doc.input_data.data : doc.input_data ?? doc.data ?? doc.instances;
    if (value === undefined) throw new BadRequest('The request needs input_data (or inputs, data, instances).');
    if (this.inputs.length !== 1) throw new BadRequest(`The model takes ${this.inputs.length} inputs: send {"inputs": {${this.inputs.map((i) => `"${i.name}": [...]`).join(', ')}}}.`);
    tensors.set(this.inputs[0].name, nested(this.inputs[0], value));
    return feedOf(tensors);
  }

  // ---- answers ---------------------------------------------------------------------------------------------

  private v2Answer(result: Record<string, OrtTensor>, requestId: string | undefined, wanted: string[] | undefined): Buffer {
    const names = wanted ?? this.outputs.map((o) => o.name);
    return json({
      model_name: this.cfg.modelName,
      model_version: this.cfg.modelVersion,
      ...(requestId !== undefined ? { id: requestId } : {}),
      outputs: names.map((n) => {
        const t = result[n];
        return { name: n, datatype: OIP_OF[t.type] ?? t.type.toUpperCase(), shape: [...t.dims], data: plain(t.data) };
      }),
    });
  }

  private scoreAnswer(result: Record<string, OrtTensor>): Buffer {
    if (this.outputs.length === 1) return json(reshape(plain(result[this.outputs[0].name].data), result[this.outputs[0].name].dims));
    const out: Record<string, unknown> = {};
    for (const o of this.outputs) out[o.name] = reshape(plain(result[o.name].data), result[o.name].dims);
    return json(out);
  }

  cancel(): void {
    // session.run() cannot be stopped once started; a batched request still waiting is cheap to finish.
  }

  async stop(): Promise<void> {
    this.batcher?.flush();
    await this.session.release();
  }

  /** Splits a batched result along dimension 0 into `counts` rows each. */
  split(result: Record<string, OrtTensor>, counts: number[]): Record<string, OrtTensor>[] {
    const parts: Record<string, OrtTensor>[] = counts.map(() => ({}));
    for (const [name, t] of Object.entries(result)) {
      const rowSize = t.dims.slice(1).reduce((a, b) => a * b, 1);
      let row = 0;
      counts.forEach((n, i) => {
        // String tensors hold a plain array: no subarray().
        const data = ArrayBuffer.isView(t.data) ? (t.data as Float32Array).subarray(row * rowSize, (row + n) * rowSize) : (t.data as unknown[]).slice(row * rowSize, (row + n) * rowSize);
        parts[i][name] = new this.ort.Tensor(t.type as 'float32', data as Float32Array, [n, ...t.dims.slice(1)]);
        row += n;
      });
    }
    return parts;
  }

  /** Joins feeds along dimension 0 (their other dimensions are equal: Batcher groups by them). */
  join(feeds: Feed[]): Feed {
    const tensors: Feed['tensors'] = new Map();
    for (const info of this.inputs) {
      const first = feeds[0].tensors.get(info.name)!;
      const rows = feeds.reduce((a, f) => a + f.tensors.get(info.name)!.shape[0], 0);
      const total = feeds.reduce((a, f) => a + f.tensors.get(info.name)!.data.length, 0);
      const Ctor = (first.data as Float32Array).constructor as { new (n: number): Float32Array };
      let data: ArrayLike<unknown>;
      if (typeof (first.data as Float32Array).set === 'function') {
        const joined = new Ctor(total);
        let at = 0;
        for (const f of feeds) {
          const d = f.tensors.get(info.name)!.data as Float32Array;
          joined.set(d, at);
          at += d.length;
        }
        data = joined;
      } else {
        data = feeds.flatMap((f) => Array.from(f.tensors.get(info.name)!.data));
      }
      tensors.set(info.name, { type: first.type, shape: [rows, ...first.shape.slice(1)], data });
    }
    return feedOf(tensors);
  }
}

/**
 * Merges requests that arrive close together into one session.run(): the first waits at most `delayUs`
 * for others; a full batch (`maxRows`) runs at once. Requests whose non-batch dimensions differ are run
 * in separate batches.
 */
class Batcher {
  private pending: { feed: Feed; done: (r: Record<string, OrtTensor> | Error, batchRows?: number) => void }[] = [];
  private rows = 0;
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;

  constructor(
    private readonly scorer: OnnxScorer,
    private readonly maxRows: number,
    private readonly delayUs: number,
  ) {}

  add(feed: Feed, done: (r: Record<string, OrtTensor> | Error, batchRows?: number) => void): void {
    if (feed.rows >= this.maxRows) {
      this.scorer.run(feed).then(done, (e: Error) => done(e));
      return;
    }
    if (this.rows + feed.rows > this.maxRows) this.flush();
    this.pending.push({ feed, done });
    this.rows += feed.rows;
    if (this.rows >= this.maxRows) return this.flush();
    // Timers have millisecond resolution: below 1 ms, wait for the rest of this turn's reads instead.
    if (this.timer === null) this.timer = this.delayUs >= 1000 ? setTimeout(() => this.flush(), this.delayUs / 1000) : setImmediate(() => this.flush());
  }

  flush(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    const batch = this.pending;
    this.pending = [];
    this.rows = 0;
    if (batch.length === 0) return;
    if (batch.length === 1) {
      this.scorer.run(batch[0].feed).then(batch[0].done, (e: Error) => batch[0].done(e));
      return;
    }
    const groups = new Map<string, typeof batch>();
    for (const item of batch) {
      const key = [...item.feed.tensors.values()].map((t) => t.shape.slice(1).join('x')).join(';');
      const g = groups.get(key);
      if (g) g.push(item);
      else groups.set(key, [item]);
    }
    for (const group of groups.values()) {
      const joined = this.scorer.join(group.map((g) => g.feed));
      // One bad request must not fail its neighbours: run them one by one to find out whose it is.
      const alone = () => {
        for (const g of group) this.scorer.run(g.feed).then(g.done, (e: Error) => g.done(e));
      };
      this.scorer.run(joined).then((result) => {
        let parts: Record<string, OrtTensor>[];
        try {
          parts = this.scorer.split(result, group.map((g) => g.feed.rows));
        } catch {
          return alone(); // an output without the batch dimension it declared
        }
        group.forEach((g, i) => g.done(parts[i], joined.rows));
      }, alone);
    }
  }
}

// ---- helpers -------------------------------------------------------------------------------------------

function describe(meta: Session['inputMetadata'], names: readonly string[]): InputInfo[] {
  return names.map((name, i) => {
    const m = meta[i];
    if (m === undefined || !m.isTensor) return { name, type: 'float32', shape: [] };
    return { name, type: m.type, shape: m.shape.map((d) => (typeof d === 'number' && d >= 0 ? d : -1)) };
  });
}

function fmt(i: InputInfo): string {
  return `${i.name} ${OIP_OF[i.type] ?? i.type}[${i.shape.map((d) => (d < 0 ? '-1' : String(d))).join(',')}]`;
}

function feedOf(tensors: Feed['tensors']): Feed {
  let rows = -1;
  for (const t of tensors.values()) {
    const r = t.shape.length > 0 ? t.shape[0] : 0;
    if (rows === -1) rows = r;
    else if (rows !== r) rows = 0;
  }
  return { tensors, rows: Math.max(rows, 0) };
}

/** Checks shape against the model's and the element count against the shape; typed data for onnxruntime. */
function toData(info: InputInfo, flat: unknown[], shape: number[]): ArrayLike<unknown> {
  if (info.shape.length > 0) {
    if (shape.length !== info.shape.length) throw new BadRequest(`Input '${info.name}': shape [${shape.join(',')}] has ${shape.length} dimensions; the model's is [${info.shape.join(',')}].`);
    info.shape.forEach((d, i) => {
      if (d >= 0 && shape[i] !== d) throw new BadRequest(`Input '${info.name}': shape [${shape.join(',')}] does not match the model's [${info.shape.join(',')}] (dimension ${i} must be ${d}).`);
    });
  }
  const count = shape.reduce((a, b) => a * b, 1);
  if (flat.length !== count) throw new BadRequest(`Input '${info.name}': ${flat.length} values for shape [${shape.join(',')}] (${count} expected).`);
  return typed(info, flat);
}

/** A nested JSON array (the /score forms) as a tensor of its own shape. */
function nested(info: InputInfo, value: unknown): { type: string; shape: number[]; data: ArrayLike<unknown> } {
  const shape = shapeOf(value);
  const flat = flattenTensor(value, shape);
  if (typeof flat === 'string') throw new BadRequest(`Input '${info.name}' is not a regular tensor: ${flat}.`);
  // A single row for a model that takes a batch: [x1, x2, ...] → [[x1, x2, ...]].
  if (info.shape.length === shape.length + 1 && info.shape[0] === -1) shape.unshift(1);
  return { type: info.type, shape, data: toData(info, flat, shape) };
}

function typed(info: InputInfo, flat: unknown[]): ArrayLike<unknown> {
  const bad = (i: number): never => {
    throw new BadRequest(`Input '${info.name}': value ${JSON.stringify(flat[i])} at position ${i} is not a valid ${OIP_OF[info.type] ?? info.type}.`);
  };
  switch (info.type) {
    case 'string':
      return flat.map((x, i) => (typeof x === 'string' ? x : bad(i)));
    case 'bool':
      return Uint8Array.from(flat, (x, i) => (typeof x === 'boolean' ? Number(x) : bad(i)));
    case 'int64':
    case 'uint64': {
      const out = info.type === 'int64' ? new BigInt64Array(flat.length) : new BigUint64Array(flat.length);
      const [min, max] = INTEGER_RANGES[info.type];
      flat.forEach((x, i) => (out[i] = typeof x === 'number' && Number.isInteger(x) && x >= min && x <= max ? BigInt(x) : bad(i)));
      return out;
    }
    default: {
      const Ctor = ARRAYS[info.type];
      if (Ctor === undefined) throw new BadRequest(`Input '${info.name}': datatype ${info.type} is not supported by infergate's JSON tensors.`);
      const out = new Ctor(flat.length);
      // Typed arrays wrap out-of-range integers silently (300 in a UINT8 would score as 44).
      const range = INTEGER_RANGES[info.type];
      for (let i = 0; i < flat.length; i++) {
        const x = flat[i];
        if (typeof x !== 'number' || (range !== undefined && (!Number.isInteger(x) || x < range[0] || x > range[1]))) bad(i);
        out[i] = x as number;
      }
      return out;
    }
  }
}

/** Inclusive bounds; 64-bit ones as far as a JSON number (a double) reaches below 2^63 / 2^64. */
const INTEGER_RANGES: Record<string, [number, number]> = {
  int8: [-128, 127], int16: [-32768, 32767], int32: [-(2 ** 31), 2 ** 31 - 1], uint8: [0, 255], uint16: [0, 65535], uint32: [0, 2 ** 32 - 1],
  int64: [-(2 ** 63), 2 ** 63 - 1024], uint64: [0, 2 ** 64 - 2048],
};

const ARRAYS: Record<string, { new (n: number): { [i: number]: number; length: number } }> = {
  float32: Float32Array, float64: Float64Array, int8: Int8Array, int16: Int16Array, int32: Int32Array,
  uint8: Uint8Array, uint16: Uint16Array, uint32: Uint32Array,
};

function plain(data: unknown): unknown[] {
  const a = Array.from(data as ArrayLike<unknown>);
  return typeof a[0] === 'bigint' ? a.map((x) => Number(x)) : a;
}

function reshape(flat: unknown[], dims: readonly number[]): unknown {
  if (dims.length <= 1) return flat;
  const size = dims.slice(1).reduce((a, b) => a * b, 1);
  const out: unknown[] = [];
  for (let i = 0; i < dims[0]; i++) out.push(reshape(flat.slice(i * size, (i + 1) * size), dims.slice(1)));
  return out;
}

/** 500 for what infergate itself got wrong answering a request (logged: it is a bug to report). */
function failed(peer: Peer, id: number, e: unknown): void {
  log('E', 'azmlinfsrv', `ONNX request failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
  peer.respond(id, 500, JSON_HEADERS, errorJson(`Internal error: ${e instanceof Error ? e.message : String(e)}`));
}

/** A path segment with its %XX escapes undone; a malformed escape (%E0%A4) is kept as written, not thrown. */
function unescapePath(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function json(v: unknown): Buffer {
  return Buffer.from(JSON.stringify(v));
}

function errorJson(message: string): Buffer {
  return json({ error: message });
}
