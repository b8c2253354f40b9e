// The traffic log against a real file: Azure's columns, one JSON line per record, the client's bytes for
// path and user agent, drops counted when the buffer taking records is full, everything buffered written
// on close, and rotation by size.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { trafficLogDropped } from './metrics.js';
import { FileTrafficLog, type TrafficRecord } from './traffic-log.js';
import { waitFor } from '../util/wait-testing.js';

/** What is in `file` now ('' before it exists): the log writes asynchronously, on its flush timer. */
const onDisk = (file: string): string => (existsSync(file) ? readFileSync(file, 'latin1') : '');

const record = (i: number, extra: Partial<TrafficRecord> = {}): TrafficRecord => ({
  method: 'POST',
  path: '/score',
  endpoint: 'my-endpoint',
  deployment: 'blue',
  responseCode: 200,
  modelStatusCode: 200,
  requestPayloadSize: 60,
  responsePayloadSize: 12,
  userAgent: 'curl/8.0',
  xRequestId: `id-${i}`,
  xMsClientRequestId: '',
  totalDurationMs: 1.23456,
  requestDurationMs: 0.1,
  responseDurationMs: 1,
  authType: 'Key',
  ...extra,
});

const dropped = async () => (await trafficLogDropped.get()).values[0]?.value ?? 0;

test('one JSON line per record with Azure columns; odd paths and user agents stay valid JSON', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-traffic-'));
  try {
    const file = join(dir, 'logs', 'traffic.jsonl');
    const log = new FileTrafficLog(file, { bufferBytes: 1 << 20, flushMs: 10 });
    for (let i = 0; i < 1000; i++) log.record(record(i));
    // The HTTP parser hands header values over as latin1, one character per byte the client sent: a UTF-8
    // user agent arrives as its bytes, and the log writes those bytes back.
    const agent = 'ünï "quoted" ' + 'x'.repeat(100);
    log.record(record(1000, { path: '/score?q="x"\\', userAgent: Buffer.from(agent).toString('latin1'), responseCode: 424, modelStatusCode: 500 }));
    // The first 1001 records written by a flush before the rest come: the file is appended to across flushes.
    await waitFor('the first flush on disk', () => onDisk(file).includes('"id-1000"'));
    for (let i = 1001; i < 1500; i++) log.record(record(i));
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.equal(lines.length, 1500);
    assert.deepEqual(lines.map((l) => l.XRequestId), Array.from({ length: 1500 }, (_, i) => `id-${i}`));
    const odd = lines[1000];
    assert.equal(odd.Path, '/score?q="x"\\');
    assert.equal(odd.UserAgent, Buffer.from(Buffer.from(agent).toString('latin1').slice(0, 70), 'latin1').toString());
    assert.equal(odd.ResponseCodeReason, 'Failed Dependency');
    assert.equal(odd.ModelStatusReason, 'Internal Server Error');
    assert.equal(lines[0].TotalDurationMs, 1.235);
    assert.match(String(lines[0].TimeGenerated), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    for (const k of ['Method', 'EndpointName', 'DeploymentName', 'Protocol', 'ResponseCode', 'RequestPayloadSize', 'ResponsePayloadSize', 'XMSClientRequestId', 'RequestDurationMs', 'ResponseDurationMs', 'AuthType']) {
      assert.ok(k in lines[0], k);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a full buffer drops records and counts them; nothing partial is written', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-traffic-'));
  try {
    const before = await dropped();
    const log = new FileTrafficLog(join(dir, 'traffic.jsonl'), { bufferBytes: 4096, flushMs: 60_000 });
    for (let i = 0; i < 100; i++) log.record(record(i));
    await log.close();
    const lines = readFileSync(join(dir, 'traffic.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const lost = (await dropped()) - before;
    assert.ok(lines.length > 0 && lines.length < 100, `${lines.length} written`);
    assert.equal(lines.length + lost, 100);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the file is rotated by size: <file>.1 ... .<keepFiles>, the oldest deleted, every line whole', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-traffic-'));
  try {
    const file = join(dir, 'traffic.jsonl');
    const log = new FileTrafficLog(file, { bufferBytes: 1 << 16, flushMs: 5, maxFileBytes: 4000, keepFiles: 2 });
    for (let batch = 0; batch < 12; batch++) {
      for (let i = 0; i < 5; i++) log.record(record(batch * 5 + i));
      // Each batch flushed on its own (rotation is checked per flush, before writing): the next one waits
      // until this one is in the current file.
      await waitFor(`batch ${batch} on disk`, () => onDisk(file).includes(`"id-${batch * 5 + 4}"`));
    }
    await log.close();
    const files = readdirSync(dir).sort();
    assert.deepEqual(files, ['traffic.jsonl', 'traffic.jsonl.1', 'traffic.jsonl.2']);
    const ids = files.flatMap((f) => readFileSync(join(dir, f), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { XRequestId: string }).XRequestId));
    assert.ok(ids.length < 60, 'the oldest records were rotated out');
    assert.ok(ids.includes('id-59'), 'the newest record is in the current file');
    for (const f of files) assert.ok(statSync(join(dir, f)).size <= 4000 + 5 * 700, `${f} is about the size limit`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('numbers are written as the former template wrote them (toFixed(3) for durations, integers for codes and sizes)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-traffic-'));
  try {
    const file = join(dir, 'traffic.jsonl');
    const log = new FileTrafficLog(file, { bufferBytes: 1 << 22, flushMs: 60_000 });
    // Durations a router produces (performance.now() differences), sizes up to large bodies.
    let seed = 42;
    const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
    const cases: TrafficRecord[] = [];
    for (let i = 0; i < 2000; i++) {
      const scale = [0.01, 1, 100, 60_000][i % 4];
      cases.push(record(i, {
        totalDurationMs: rand() * scale,
        requestDurationMs: i === 0 ? 0 : rand() * scale,
        responseDurationMs: i === 1 ? 0 : rand() * scale,
        requestPayloadSize: Math.floor(rand() * 10 ** (i % 9)),
        responsePayloadSize: i % 7,
        responseCode: [200, 424, 503, 599][i % 4],
      }));
    }
    for (const c of cases) log.record(c);
    await log.close();
    const lines = readFileSync(file, 'latin1').trim().split('\n');
    assert.equal(lines.length, cases.length);
    for (let i = 0; i < cases.length; i++) {
      const c = cases[i];
      const l = lines[i];
      assert.ok(l.includes(`"TotalDurationMs":${c.totalDurationMs.toFixed(3)},"RequestDurationMs":${c.requestDurationMs.toFixed(3)},"ResponseDurationMs":${c.responseDurationMs.toFixed(3)},`), l);
      assert.ok(l.includes(`"ResponseCode":${c.responseCode},`) && l.includes(`"RequestPayloadSize":${c.requestPayloadSize},"ResponsePayloadSize":${c.responsePayloadSize},`), l);
      JSON.parse(l);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("a router worker's lines (formatted there, sent as bytes through v8 serialization as cluster's IPC does) land in the primary's file as its own records do", async () => {
  const { IpcTrafficSink } = await import('../main/router-workers.js');
  const { serialize, deserialize } = await import('node:v8');
  const dir = mkdtempSync(join(tmpdir(), 'infergate-traffic-'));
  try {
    const file = join(dir, 'traffic.jsonl');
    const log = new FileTrafficLog(file, { bufferBytes: 1 << 20, flushMs: 10 });
    const workers = [0, 1].map(
      () => new IpcTrafficSink((lines, records) => {
        const m = deserialize(serialize({ t: 'log', lines, records })) as { lines: Uint8Array; records: number };
        log.appendLines(m.lines, m.records);
      }, 1 << 20),
    );
    for (let i = 0; i < 600; i++) workers[i % 2].record(record(i));
    log.record(record(600)); // the primary's own (a single router's) records share the file
    for (const w of workers) await w.close();
    await log.close();
    const lines = readFileSync(file, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(lines.map((l) => l.XRequestId).sort(), Array.from({ length: 601 }, (_, i) => `id-${i}`).sort());
    assert.ok(lines.every((l) => l.EndpointName === 'my-endpoint' && l.TotalDurationMs === 1.235));
    // A worker's buffer that cannot take a record drops it and counts it, as the file's does.
    const before = await dropped();
    const tiny = new IpcTrafficSink(() => {}, 700);
    tiny.record(record(1));
    tiny.record(record(2));
    assert.equal((await dropped()) - before, 1);
    await tiny.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
