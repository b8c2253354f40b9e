// Issue 8 part 3: request-body memory is bounded. Many concurrent large uploads must not grow the server
// beyond its configured cap on buffered request bodies (--max-buffered-body-mb), and an upload the router
// will refuse anyway (the deployment's queue is full, the buffer cap is reached) is answered while the
// client is still sending — not after its whole body was received (the issue: 20 × 50 MB took the server
// from 121 to 759 MB, then 19 of them got 429).

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { SAMPLE_ANSWER, until, Workspace } from '../e2e/harness.js';
import { assertControlPlane, assertServes, deployJsModel, fdCount, fdsSettle, resetPeak, SAMPLE_REQUEST, statusOf, vmMiB } from './attack.js';

const ws = new Workspace();
const CAP_MIB = 16;
/** What the server may use beyond its baseline and the body cap while uploads stream through it (MiB). */
const SLACK_MIB = 48;
let pid = 0;
let apiUrl = '';
let routerPort = 0;
let narrow = { uri: '', key: '' };
let wide = { uri: '', key: '' };
let baselineFds = 0;

before(async () => {
  const rec = await ws.startServer(['--max-buffered-body-mb', String(CAP_MIB)]);
  apiUrl = rec.url;
  routerPort = Number(new URL(rec.routerUrl).port);
  pid = ws.server!.pid!;
  // narrow: Azure's default admission, 2 × 1 × 1 requests pending at most; wide: admission never the limit.
  narrow = await deployJsModel(ws, 'rel-narrow', '{max_concurrent_requests_per_instance: 1, request_timeout_ms: 30000}');
  wide = await deployJsModel(ws, 'rel-wide', '{max_concurrent_requests_per_instance: 100, request_timeout_ms: 30000}');
  await assertServes(narrow.uri, narrow.key);
  await assertServes(wide.uri, wide.key);
  baselineFds = fdCount(pid);
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog.slice(-20_000));
  await ws.dispose();
});

/** The sample request padded with spaces to `size` bytes: still valid JSON, still Azure's sample answer. */
function paddedSample(size: number): Buffer {
  const b = Buffer.alloc(size, 0x20);
  SAMPLE_REQUEST.copy(b);
  return b;
}

interface Upload {
  status: number;
  headers: string;
  body: string;
  /** Body bytes written when the first byte of the answer arrived. */
  sentAtAnswer: number;
  size: number;
}

/**
 * Uploads `body` to a scoring URI on a raw socket in 256 KiB writes (waiting for 'drain', as a real client
 * does), optionally pausing after `pauseAt` bytes for `pauseMs`; stops sending when an answer arrives.
 */
function upload(uri: string, key: string, body: Buffer, o: { pauseAt?: number; pauseMs?: number } = {}): Promise<Upload> {
  return new Promise((resolve) => {
    const u = new URL(uri);
    const sock = connect({ port: routerPort, host: '127.0.0.1' });
    const parts: Buffer[] = [];
    let sent = 0;
    let sentAtAnswer = -1;
    let done = false;
    const finish = () => {
      if (done) return;
      done = true;
      sock.destroy();
      const data = Buffer.concat(parts).toString('latin1');
      const i = data.indexOf('\r\n\r\n');
      resolve({ status: statusOf(Buffer.from(data.slice(0, 16), 'latin1')), headers: data.slice(0, Math.max(0, i)), body: i < 0 ? '' : data.slice(i + 4), sentAtAnswer: sentAtAnswer < 0 ? sent : sentAtAnswer, size: body.length });
    };
    const timer = setTimeout(finish, 60_000);
    sock.on('data', (c: Buffer) => {
      if (sentAtAnswer < 0) sentAtAnswer = sent;
      parts.push(c);
    });
    sock.on('end', () => (clearTimeout(timer), finish()));
    sock.on('close', () => (clearTimeout(timer), finish()));
    sock.on('error', () => {});
    sock.on('connect', async () => {
      sock.write(`POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nAuthorization: Bearer ${key}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      let paused = false;
      while (sent < body.length && sentAtAnswer < 0 && !sock.destroyed) {
        if (!paused && o.pauseAt !== undefined && sent >= o.pauseAt) {
          paused = true;
          await new Promise((r) => setTimeout(r, o.pauseMs ?? 1000));
          continue;
        }
        const end = Math.min(body.length, sent + 256 * 1024, o.pauseAt !== undefined && !paused ? o.pauseAt : body.length);
        const chunk = body.subarray(sent, end);
        sent = end;
        if (!sock.write(chunk)) await drained(sock);
      }
    });
  });
}

/** Resolves on 'drain' or 'close', leaving no listener behind. */
function drained(sock: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      sock.off('drain', done);
      sock.off('close', done);
      resolve();
    };
    sock.on('drain', done);
    sock.on('close', done);
  });
}

function retryAfter(u: Upload): string | undefined {
  return /\r\nretry-after: *(\d+)/i.exec(u.headers)?.[1];
}

test('20 concurrent 50 MB uploads to a deployment that admits 2: the rest refused while still sending, RSS within the cap', async (t) => {
  const SIZE = 50 * 1024 * 1024;
  const body = paddedSample(SIZE);
  const rssBefore = vmMiB(pid);
  resetPeak(pid);
  const started = Date.now();
  const all = await Promise.all(Array.from({ length: 20 }, () => upload(narrow.uri, narrow.key, body)));
  const peak = vmMiB(pid, 'VmHWM');
  const ok = all.filter((u) => u.status === 200);
  const refused = all.filter((u) => u.status === 429 || u.status === 503);
  t.diagnostic(`20 × 50 MB in ${Date.now() - started} ms: statuses ${JSON.stringify(all.map((u) => u.status))}; RSS ${rssBefore.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB (cap ${CAP_MIB} MiB + slack ${SLACK_MIB})`);
  t.diagnostic(`bytes sent before the refusals arrived (MiB): ${refused.map((u) => (u.sentAtAnswer / 2 ** 20).toFixed(1)).join(' ')}`);
  assert.equal(ok.length + refused.length, 20, JSON.stringify(all.map((u) => `${u.status} after ${u.sentAtAnswer} bytes: ${u.body.slice(0, 100)}`)));
  assert.ok(ok.length >= 1 && ok.length <= 2, `${ok.length} admitted (2 × max_concurrent 1 × 1 instance)`);
  for (const u of ok) assert.equal(u.body, SAMPLE_ANSWER);
  for (const u of refused) {
    assert.ok(retryAfter(u) !== undefined, `a refusal carries Retry-After: ${u.headers}`);
    assert.ok(u.sentAtAnswer < SIZE / 2, `refused after ${u.sentAtAnswer} of ${SIZE} bytes: the answer must come before the body is read`);
  }
  assert.ok(peak <= rssBefore + CAP_MIB + SLACK_MIB, `RSS peaked at ${peak.toFixed(0)} MiB (before: ${rssBefore.toFixed(0)} MiB)`);
  await fdsSettle(pid, baselineFds, 16);
  let rss = vmMiB(pid);
  await until('RSS back near its baseline', async () => (rss = vmMiB(pid)) <= rssBefore + SLACK_MIB, 10_000, 200).catch(() => assert.fail(`RSS ${rss.toFixed(0)} MiB 10 s after the uploads (before: ${rssBefore.toFixed(0)} MiB)`));
  t.diagnostic(`RSS after the uploads: ${rss.toFixed(0)} MiB`);
  await assertServes(narrow.uri, narrow.key);
  await assertControlPlane(ws, apiUrl, 'rel-narrow');
});

test('40 concurrent 900 kB uploads against a 16 MiB buffer cap: 503 + Retry-After beyond it, the rest answered exactly', async (t) => {
  const SIZE = 900_000;
  const body = paddedSample(SIZE);
  const rssBefore = vmMiB(pid);
  resetPeak(pid);
  // Each client sends two thirds of its body, pauses 1 s (so all 40 are in progress at once), then the rest.
  const all = await Promise.all(Array.from({ length: 40 }, () => upload(wide.uri, wide.key, body, { pauseAt: 600_000, pauseMs: 1000 })));
  const peak = vmMiB(pid, 'VmHWM');
  const ok = all.filter((u) => u.status === 200);
  const refused = all.filter((u) => u.status === 503);
  t.diagnostic(`40 × 900 kB: ${ok.length} answered, ${refused.length} refused (503); RSS ${rssBefore.toFixed(0)} MiB before, peak ${peak.toFixed(0)} MiB`);
  assert.equal(ok.length + refused.length, 40, JSON.stringify(all.map((u) => `${u.status} after ${u.sentAtAnswer} bytes: ${u.body.slice(0, 100)}`)));
  // 40 × 600 kB in progress is 24 MB: more than the cap, so some must be refused; the cap holds at least 16 of them.
  assert.ok(refused.length >= 10, `${refused.length} refused`);
  assert.ok(ok.length >= 15, `${ok.length} answered`);
  for (const u of ok) assert.equal(u.body, SAMPLE_ANSWER);
  for (const u of refused) {
    assert.ok(retryAfter(u) !== undefined, `503 carries Retry-After: ${u.headers}`);
    assert.ok(u.sentAtAnswer < SIZE, `refused after the whole body (${u.sentAtAnswer} bytes) was sent`);
  }
  assert.ok(peak <= rssBefore + CAP_MIB + SLACK_MIB, `RSS peaked at ${peak.toFixed(0)} MiB (before: ${rssBefore.toFixed(0)} MiB)`);
  await fdsSettle(pid, baselineFds, 16);
  await assertServes(wide.uri, wide.key);
  // Once the others are done, a new upload of the same size is admitted again (the cap was released).
  const again = await upload(wide.uri, wide.key, body);
  assert.equal(again.status, 200);
  assert.equal(again.body, SAMPLE_ANSWER);
});

test('a declared Content-Length over the limit is refused with 413 before the body is sent', async () => {
  // --max-body-bytes default: 100 MiB. The client declares 200 MiB and would send it; the router answers first.
  const u = new URL(narrow.uri);
  const r = await new Promise<{ status: number; sent: number; error?: string }>((resolve) => {
    const sock = connect({ port: routerPort, host: '127.0.0.1' });
    let sent = 0;
    let answered = false;
    let error: string | undefined;
    const chunk = Buffer.alloc(256 * 1024, 0x20);
    sock.on('error', (e: NodeJS.ErrnoException) => (error = e.code));
    sock.on('data', (c: Buffer) => {
      if (answered) return;
      answered = true;
      resolve({ status: statusOf(c), sent });
      sock.destroy();
    });
    sock.on('close', () => !answered && resolve({ status: 0, sent, ...(error ? { error } : {}) }));
    sock.on('connect', async () => {
      sock.write(`POST ${u.pathname} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${narrow.key}\r\nContent-Length: ${200 * 1024 * 1024}\r\n\r\n`);
      while (!answered && !sock.destroyed && sent < 200 * 1024 * 1024) {
        sent += chunk.length;
        if (!sock.write(chunk)) await drained(sock);
      }
    });
  });
  // The answer must reach the client: a server that closes with unread request bytes makes its kernel send
  // RST, which can destroy the answer before the client reads it (RFC 9112 §9.6; nginx's lingering_close).
  assert.equal(r.status, 413, `no answer; the connection ended with ${r.error ?? 'a FIN'} after ${r.sent} bytes were sent`);
  assert.ok(r.sent < 50 * 1024 * 1024, `answered after ${r.sent} bytes`);
});
