// Batching for no-code MLflow deployments (docs/no-code.md "Batching"), in the Node instance host in front
// of the Python workers: requests that arrive within maxDelayUs of the first and have the same form are
// merged into one request (rows concatenated), which the MLflow loader scores with one predict() call; its
// answer is split back by rows. Forms merged:
//   POST /score  {"input_data": [[...]]}, {"input_data"|"dataframe_split": {"columns", "data"}} (same
//                columns), {"dataframe_records": [...]}, {"instances": [[...]]}: the answer is a list of
//                one prediction per row
//   POST /v2/models/<m>[/versions/<v>]/infer: the same inputs (names, datatypes, dimensions after the
//                first); outputs split along their first dimension
// Anything else, and every request of a merged call that did not answer 200 with one prediction per row,
// goes to the workers on its own (a bad request never fails its neighbours). Each answer of a merged call
// carries x-infergate-batch-rows.

import { decodeRequest, decodeResponse, encodeRequestHead, type HeaderList } from '../protocol/frame.js';
import { flattenTensor } from './json-tensor.js';
import type { Peer, Scorer } from './scorer.js';

interface Item {
  peer: Peer;
  id: number;
  /** The original frame: sent alone when it cannot be merged or the merged call failed. */
  frame: Buffer;
  rows: number;
  /** The request's rows in its form: row arrays, records, or per-input flat data. */
  part: unknown;
}

interface Group {
  url: string;
  key: string;
  items: Item[];
  rows: number;
  /** Builds the merged request body from the items' parts. */
  merge: (items: Item[]) => unknown;
  /** Splits the merged answer (parsed JSON) into one body per item, or undefined when it does not fit. */
  split: (answer: unknown, items: Item[]) => unknown[] | undefined;
}

const JSON_HEADERS: HeaderList = [['content-type', 'application/json']];

export class MlflowBatcher implements Scorer {
  private readonly groups = new Map<string, Group>();
  private timer: NodeJS.Timeout | NodeJS.Immediate | null = null;
  private nextId = 1;
  private merged = 0;

  constructor(
    private readonly inner: Scorer,
    private readonly maxRows: number,
    private readonly delayUs: number,
  ) {}

  get inflight(): number {
    let n = this.merged;
    for (const g of this.groups.values()) n += g.items.length;
    return n + this.inner.inflight;
  }

  handle(peer: Peer, frame: Buffer, id: number): void {
    const g = this.classify(frame);
    if (g === undefined) return this.inner.handle(peer, frame, id);
    const { group, rows, part } = g;
    if (rows >= this.maxRows) return this.inner.handle(peer, frame, id);
    let current = this.groups.get(group.key);
    if (current !== undefined && current.rows + rows > this.maxRows) {
      this.flushGroup(current);
      current = undefined;
    }
    if (current === undefined) {
      current = group;
      this.groups.set(group.key, current);
    }
    current.items.push({ peer, id, frame, rows, part });
    current.rows += rows;
    if (current.rows >= this.maxRows) return this.flushGroup(current);
    if (this.timer === null) this.timer = this.delayUs >= 1000 ? setTimeout(() => this.flushAll(), this.delayUs / 1000) : setImmediate(() => this.flushAll());
  }

  cancel(peer: Peer, id: number): void {
    for (const g of this.groups.values()) {
      const i = g.items.findIndex((it) => it.peer === peer && it.id === id);
      if (i >= 0) {
        g.rows -= g.items[i].rows;
        g.items.splice(i, 1);
        return;
      }
    }
    this.inner.cancel(peer, id);
  }

  async stop(): Promise<void> {
    this.flushAll();
    await this.inner.stop();
  }

  private flushAll(): void {
    if (this.timer !== null) {
      clearTimeout(this.timer as NodeJS.Timeout);
      clearImmediate(this.timer as NodeJS.Immediate);
      this.timer = null;
    }
    for (const g of [...this.groups.values()]) this.flushGroup(g);
  }

  private flushGroup(g: Group): void {
    this.groups.delete(g.key);
    const items = g.items;
    if (items.length === 0) return;
    if (items.length === 1) return this.inner.handle(items[0].peer, items[0].frame, items[0].id);
    const alone = () => {
      for (const it of items) if (!it.peer.closed) this.inner.handle(it.peer, it.frame, it.id);
    };
    let body: Buffer;
    try {
      body = Buffer.from(JSON.stringify(g.merge(items)));
    } catch {
      // JSON.stringify is recursive: values nested thousands deep inside a row throw RangeError, which
      // here (a timer, or handle()) would end the host. The loader refuses such a request on its own.
      return alone();
    }
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_fff0 ? 1 : this.nextId + 1;
    this.merged += items.length;
    const frame = Buffer.concat([encodeRequestHead(id, 'POST', g.url, JSON_HEADERS, body.length), body]);
    const rows = g.rows;
    const collector: Peer = {
      closed: false,
      respond: (_id, status, headers, answer) => this.answered(status, headers, answer, g, items, rows, alone),
      sendFrame: (f) => {
        const r = decodeResponse(f);
        this.answered(r.status, r.headers, r.body, g, items, rows, alone);
      },
    };
    this.inner.handle(collector, frame, id);
  }

  private answered(status: number, headers: HeaderList, body: Buffer, g: Group, items: Item[], rows: number, alone: () => void): void {
    this.merged -= items.length;
    let parts: unknown[] | undefined;
    if (status === 200) {
      try {
        parts = g.split(JSON.parse(body.toString('utf8')), items);
      } catch {
        parts = undefined;
      }
    }
    if (parts === undefined) return alone();
    const out: HeaderList = [...headers.filter(([k]) => k === 'content-type' || k === 'x-ms-run-function-failed'), ['x-infergate-batch-rows', String(rows)]];
    items.forEach((it, i) => {
      if (!it.peer.closed) it.peer.respond(it.id, 200, out, Buffer.from(JSON.stringify(parts![i])));
    });
  }

  /** The group a request can join, with its rows; undefined for one that is sent as it is. */
  private classify(frame: Buffer): { group: Group; rows: number; part: unknown } | undefined {
    let req;
    try {
      req = decodeRequest(frame);
    } catch {
      return undefined;
    }
    if (req.method !== 'POST') return undefined;
    const url = req.url;
    const isScore = url === '/score';
    const isInfer = !isScore && /^\/v2\/models\/[^/?]+(?:\/versions\/[^/?]+)?\/infer$/.test(url);
    if (!isScore && !isInfer) return undefined;
    let doc: unknown;
    try {
      doc = JSON.parse(req.body.toString('utf8'));
    } catch {
      return undefined;
    }
    if (!isMap(doc)) return undefined;
    return isScore ? scoreGroup(doc) : inferGroup(url, doc);
  }
}

function scoreGroup(doc: Record<string, unknown>): { group: Group; rows: number; part: unknown } | undefined {
  const keys = Object.keys(doc);
  if (keys.length !== 1) return undefined;
  const key = keys[0];
  const value = doc[key];
  const listSplit = (answer: unknown, items: Item[]): unknown[] | undefined => {
    const total = items.reduce((a, it) => a + it.rows, 0);
    if (!Array.isArray(answer) || answer.length !== total) return undefined;
    let at = 0;
    return items.map((it) => answer.slice(at, (at += it.rows)));
  };
  const rowsOf = (v: unknown): unknown[] | undefined => (Array.isArray(v) && v.length > 0 && v.every((r) => Array.isArray(r)) ? v : undefined);
  if ((key === 'input_data' || key === 'instances') && rowsOf(value)) {
    const rows = rowsOf(value)!;
    return {
      rows: rows.length,
      part: rows,
      group: newGroup('/score', `score:${key}:${(rows[0] as unknown[]).length}`, (items) => ({ [key]: items.flatMap((it) => it.part as unknown[]) }), listSplit),
    };
  }
  if ((key === 'input_data' || key === 'dataframe_split') && isMap(value) && rowsOf(value.data) && Object.keys(value).every((k) => k === 'columns' || k === 'data' || k === 'index')) {
    const rows = rowsOf(value.data)!;
    const columns = value.columns;
    return {
      rows: rows.length,
      part: rows,
      group: newGroup('/score', `score:${key}:${JSON.stringify(columns ?? null)}`, (items) => ({ [key]: { ...(columns !== undefined ? { columns } : {}), data: items.flatMap((it) => it.part as unknown[]) } }), listSplit),
    };
  }
  if (key === 'dataframe_records' && Array.isArray(value) && value.length > 0 && value.every(isMap)) {
    return {
      rows: value.length,
      part: value,
      group: newGroup('/score', 'score:dataframe_records', (items) => ({ dataframe_records: items.flatMap((it) => it.part as unknown[]) }), listSplit),
    };
  }
  return undefined;
}

interface V2Input {
  name: string;
  shape: number[];
  datatype: string;
  data: unknown[];
}

function inferGroup(url: string, doc: Record<string, unknown>): { group: Group; rows: number; part: unknown } | undefined {
  if (!Array.isArray(doc.inputs) || doc.inputs.length === 0 || doc.outputs !== undefined) return undefined;
  const inputs: V2Input[] = [];
  let rows = -1;
  for (const t of doc.inputs) {
    if (!isMap(t) || typeof t.name !== 'string' || typeof t.datatype !== 'string' || !Array.isArray(t.shape) || t.shape.length === 0 || !Array.isArray(t.data)) return undefined;
    const shape = t.shape as number[];
    if (!shape.every((d) => Number.isInteger(d) && d >= 0)) return undefined;
    if (rows === -1) rows = shape[0];
    else if (rows !== shape[0]) return undefined;
    const data = flattenTensor(t.data);
    // The loader names the problem when the request is sent alone.
    if (typeof data === 'string' || data.length !== shape.reduce((a, b) => a * b, 1)) return undefined;
    inputs.push({ name: t.name, shape, datatype: t.datatype, data });
  }
  if (rows <= 0) return undefined;
  const key = `infer:${url}:${inputs.map((i) => `${i.name}/${i.datatype}/${i.shape.slice(1).join('x')}`).join(';')}`;
  const id = typeof doc.id === 'string' ? doc.id : undefined;
  return {
    rows,
    part: { inputs, id },
    group: newGroup(
      url,
      key,
      (items) => {
        const first = (items[0].part as { inputs: V2Input[] }).inputs;
        const total = items.reduce((a, it) => a + it.rows, 0);
        return {
          inputs: first.map((inp, k) => ({
            name: inp.name,
            datatype: inp.datatype,
            shape: [total, ...inp.shape.slice(1)],
            data: items.flatMap((it) => (it.part as { inputs: V2Input[] }).inputs[k].data),
          })),
        };
      },
      (answer, items) => {
        if (!isMap(answer) || !Array.isArray(answer.outputs)) return undefined;
        const total = items.reduce((a, it) => a + it.rows, 0);
        const outputs = answer.outputs as { name: string; datatype: string; shape: number[]; data: unknown[] }[];
        if (!outputs.every((o) => Array.isArray(o.shape) && o.shape[0] === total && Array.isArray(o.data))) return undefined;
        let at = 0;
        return items.map((it) => {
          const from = at;
          at += it.rows;
          const rid = (it.part as { id?: string }).id;
          return {
            model_name: answer.model_name,
            model_version: answer.model_version,
            ...(rid !== undefined ? { id: rid } : {}),
            outputs: outputs.map((o) => {
              const size = o.shape.slice(1).reduce((a, b) => a * b, 1);
              return { name: o.name, shape: [it.rows, ...o.shape.slice(1)], datatype: o.datatype, data: o.data.slice(from * size, at * size) };
            }),
          };
        });
      },
    ),
  };
}

function newGroup(url: string, key: string, merge: Group['merge'], split: Group['split']): Group {
  return { url, key, items: [], rows: 0, merge, split };
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
