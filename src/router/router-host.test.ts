// The router in front of real instance hosts (src/runtime/host.ts forked as the process backend forks it,
// with the JavaScript and Python fixtures): streamed request bodies, early rejection before the body is
// read, the cap on buffered bodies, and a Python worker killed mid-request reported as the instance's
// failure (502), not as the model's answer (424).

import assert from 'node:assert/strict';
import { fork, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { sha256Hex } from '../compile/routing.js';
import type { DeploymentRoute, EndpointRoute } from '../ir/types.js';
import type { HostMessage } from '../protocol/messages.js';
import { ConnectionMeters, deploymentMeters } from '../telemetry/metrics.js';
import { waitFor } from '../util/wait-testing.js';
import { Router, type RouterOptions } from './router.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOST = join(ROOT, 'src/runtime/host.ts');
const FIXTURES = join(ROOT, 'test/fixtures');
const KEY = 'router-host-test-key-0123456789ab';

let tmp: string;
let hostCounter = 0;
const children: ChildProcess[] = [];

before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'ig-router-host-'));
});
after(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  rmSync(tmp, { recursive: true, force: true });
});

interface Host {
  child: ChildProcess;
  socketPath: string;
  exited: Promise<number | null>;
  /** The host's console log so far (stderr: its own lines and everything the Python workers print). */
  log(): string;
}

/** Forks an instance host on a fixture and waits for its 'ready'. */
async function startHost(fixture: string, script: string): Promise<Host> {
  const socketPath = join(tmp, `h${++hostCounter}.sock`);
  const child = fork(HOST, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socketPath, INFERGATE_INSTANCE_ID: `t-${hostCounter}`, AZUREML_ENTRY_SCRIPT: script, AML_APP_ROOT: join(FIXTURES, fixture), INFERGATE_PYTHON: '/usr/bin/python3' },
  });
  children.push(child);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  const first = await new Promise<HostMessage>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`host not ready in 30 s\n${stderr}`)), 30_000);
    child.once('message', (m: HostMessage) => {
      clearTimeout(t);
      resolve(m);
    });
  });
  assert.equal(first.type, 'ready', stderr);
  return { child, socketPath, exited, log: () => stderr };
}

function endpoint(instances: Host[], over: Partial<DeploymentRoute> = {}): EndpointRoute {
  return {
    name: 'ep',
    authMode: 'key',
    keyHashes: [sha256Hex(KEY)],
    deployments: [
      {
        name: 'blue',
        requestTimeoutMs: 30_000,
        maxConcurrentRequestsPerInstance: 0,
        maxQueueWaitMs: 10_000,
        scaleFromZero: false,
        instances: instances.map((h, i) => ({ instanceId: `blue-${h.socketPath}-${i}`, transport: 'framed', socketPath: h.socketPath })),
        ...over,
      },
    ],
    traffic: [{ deployment: 'blue', weight: 100 }],
    mirror: null,
  };
}

async function startRouter(options: RouterOptions, ep: EndpointRoute): Promise<{ router: Router; port: number; meters: ConnectionMeters }> {
  const meters = new ConnectionMeters();
  const router = new Router({ ...options, connectionMeters: meters });
  router.setTable({ version: 1, endpoints: [ep] });
  return { router, port: (await router.listen(0, '127.0.0.1')).port, meters };
}

/** A raw client: what came back, and whether the router closed the connection. */
interface Raw {
  socket: Socket;
  text(): string;
  closed: Promise<void>;
  /** Resolves once a whole answer (head and content-length bytes of body) is there. */
  answer(ms?: number): Promise<{ status: number; head: string; body: string }>;
}

function raw(port: number): Promise<Raw> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let got = '';
    socket.on('data', (d: Buffer) => (got += d.toString('latin1')));
    socket.on('error', () => {});
    const closed = new Promise<void>((r) => socket.once('close', () => r()));
    socket.once('connect', () =>
      resolve({
        socket,
        text: () => got,
        closed,
        async answer(ms = 20_000) {
          const t0 = Date.now();
          for (;;) {
            const end = got.indexOf('\r\n\r\n');
            if (end >= 0) {
              const head = got.slice(0, end);
              const length = Number(/\r\ncontent-length: (\d+)/i.exec(head)?.[1] ?? 0);
              if (got.length >= end + 4 + length) return { status: Number(head.slice(9, 12)), head, body: got.slice(end + 4, end + 4 + length) };
            }
            if (Date.now() - t0 > ms || socket.destroyed) throw new Error(`no whole answer; got: ${got.slice(0, 300)}`);
            await sleep(5);
          }
        },
      }),
    );
  });
}

const head = (length: number | 'chunked', o: { key?: string | null; path?: string } = {}): string =>
  `POST ${o.path ?? '/endpoints/ep/score'} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n` +
  (o.key === null ? '' : `authorization: Bearer ${o.key ?? KEY}\r\n`) +
  (length === 'chunked' ? 'transfer-encoding: chunked\r\n' : `content-length: ${length}\r\n`) +
  '\r\n';

/** Writes `data` in pieces, waiting for the socket to drain (the router's backpressure reaches us). */
async function writeAll(s: Socket, data: Buffer, piece = 256 * 1024): Promise<void> {
  for (let i = 0; i < data.length; i += piece) {
    if (!s.write(data.subarray(i, i + piece))) await new Promise<void>((r) => s.once('drain', () => r()));
  }
}

test('a 64 MiB body is streamed to a real instance host: scored whole, other requests on that instance answered meanwhile, nothing buffered', { timeout: 120_000 }, async () => {
  const host = await startHost('js-behaviours', 'score.mjs');
  const { router, port, meters } = await startRouter({ streamBodyThresholdBytes: 1024 * 1024 }, endpoint([host]));
  try {
    const prefix = Buffer.from('{"op":"size","pad":"');
    const suffix = Buffer.from('"}');
    const body = Buffer.alloc(64 * 1024 * 1024, 'a');
    prefix.copy(body);
    suffix.copy(body, body.length - suffix.length);
    let maxBuffered = 0;
    const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, meters.bufferedBodyBytes)), 1);
    const big = await raw(port);
    big.socket.write(head(body.length));
    await writeAll(big.socket, body.subarray(0, body.length / 2));
    // Half-way through the upload: a small request on another connection, to the same (only) instance,
    // over the same multiplexed instance connection.
    const small = await raw(port);
    small.socket.write(`${head(13)}{"op":"echo"}`);
    const smallAnswer = await small.answer();
    assert.equal(smallAnswer.status, 200);
    assert.equal(smallAnswer.body, '{"op": "echo"}');
    assert.equal(big.text(), '', 'the upload is not finished, so it is not answered yet');
    await writeAll(big.socket, body.subarray(body.length / 2));
    const bigAnswer = await big.answer(60_000);
    clearInterval(sampler);
    assert.equal(bigAnswer.status, 200, bigAnswer.body);
    assert.equal(bigAnswer.body, JSON.stringify({ length: body.length }).replace(':', ': '));
    assert.ok(maxBuffered < 1024 * 1024, `the router buffered up to ${maxBuffered} bytes of it`);
    assert.equal(meters.bufferedBodyBytes, 0);
    big.socket.destroy();
    small.socket.destroy();
  } finally {
    await router.close();
    host.child.kill('SIGTERM');
    await host.exited;
  }
});

test('early rejection: 401, 404, 503 (no ready instance) and 429 (pending bound full) come before the body is sent; the connection closes', { timeout: 60_000 }, async () => {
  const host = await startHost('js-behaviours', 'score.mjs');
  const ep = endpoint([host], { maxConcurrentRequestsPerInstance: 1 });
  const { router, port, meters } = await startRouter({}, ep);
  try {
    const declared = 50 * 1024 * 1024;
    const expectEarly = async (h: string, status: number, re: RegExp): Promise<string> => {
      const c = await raw(port);
      c.socket.write(h); // the head only: the 50 MiB body is never sent
      const a = await c.answer(5000);
      assert.equal(a.status, status, a.body);
      assert.match(a.body, re);
      assert.match(a.head, /\r\nconnection: close/);
      await c.closed; // the router ends the connection (lingering close), the body is not awaited
      return a.head;
    };
    await expectEarly(head(declared, { key: 'wrong' }), 401, /Unauthorized/);
    await expectEarly(head(declared, { path: '/endpoints/nope/score' }), 404, /Endpoint 'nope' not found/);
    // The pending bound (2 × 1 × 1) full: one request running, one queued.
    const blue = () => deploymentMeters('ep', 'blue');
    const running = await raw(port);
    running.socket.write(`${head(32)}{"op":"sleep","seconds":1.5}    `);
    const queued = await raw(port);
    await waitFor('the first request at the instance', () => blue().inFlight === 1);
    queued.socket.write(`${head(13)}{"op":"echo"}`);
    await waitFor('the second request queued', () => blue().queued === 1);
    const h429 = await expectEarly(head(declared), 429, /Too many pending requests for deployment 'blue'/);
    assert.match(h429, /\r\nretry-after: 1\r\n/);
    assert.equal((await running.answer()).status, 200);
    assert.equal((await queued.answer()).status, 200);
    running.socket.destroy();
    queued.socket.destroy();
    // A large body still uploading (buffered: no free slot) has its bytes counted but holds no pending
    // place until it is complete: slow uploads must not keep the bound full while the instance idles.
    const running2 = await raw(port);
    running2.socket.write(`${head(32)}{"op":"sleep","seconds":1.0}    `);
    await waitFor('the running request at the instance', () => blue().inFlight === 1);
    const upload = Buffer.alloc(2 * 1024 * 1024, ' ');
    Buffer.from('{"op":"size"}').copy(upload);
    // Bodies are counted from their head on, and the running request's is kept until it is answered.
    let held = meters.bufferedBodyBytes;
    const uploading = await raw(port);
    uploading.socket.write(head(upload.length));
    uploading.socket.write(upload.subarray(0, 100_000));
    await waitFor('the upload counted', () => meters.bufferedBodyBytes === held + upload.length);
    const blueState = (router as unknown as { deployments: Map<string, { admitted: number }> }).deployments.get('ep/blue')!;
    assert.equal(blueState.admitted, 1, 'only the running request holds a place');
    uploading.socket.write(upload.subarray(100_000));
    assert.equal((await uploading.answer()).body, `{"length": ${upload.length}}`);
    assert.equal((await running2.answer()).status, 200);
    // A client that gives up mid-body gives its buffered bytes back, and the next large body is served.
    const running3 = await raw(port);
    running3.socket.write(`${head(32)}{"op":"sleep","seconds":1.0}    `);
    await waitFor('the running request at the instance', () => blue().inFlight === 1);
    held = meters.bufferedBodyBytes;
    const quitter = await raw(port);
    quitter.socket.write(head(upload.length));
    quitter.socket.write(upload.subarray(0, 1000));
    await waitFor("the quitter's body counted", () => meters.bufferedBodyBytes === held + upload.length);
    quitter.socket.destroy();
    await waitFor("the quitter's bytes given back", () => meters.bufferedBodyBytes === held);
    const next = await raw(port);
    next.socket.write(head(upload.length));
    await writeAll(next.socket, upload);
    assert.equal((await next.answer()).body, `{"length": ${upload.length}}`, 'the place of the abandoned body is free again');
    assert.equal((await running3.answer()).status, 200);
    for (const c of [running2, uploading, running3, next]) c.socket.destroy();
    // No ready instance.
    router.setTable({ version: 2, endpoints: [endpoint([])] });
    await expectEarly(head(declared), 503, /Deployment 'blue' has no ready instance/);
    // A chunked body is checked at its head too.
    await expectEarly(head('chunked', { key: null }), 401, /Unauthorized/);
  } finally {
    await router.close();
    host.child.kill('SIGTERM');
    await host.exited;
  }
});

test('the cap on buffered bodies: a declared body that would pass it gets 503 + Retry-After before it is read; a chunked one when it grows past it', { timeout: 60_000 }, async () => {
  const host = await startHost('js-behaviours', 'score.mjs');
  // Streaming off (threshold above the bodies): everything is buffered, and counted.
  const { router, port, meters } = await startRouter({ maxBufferedBodyBytes: 3 * 1024 * 1024, streamBodyThresholdBytes: 64 * 1024 * 1024 }, endpoint([host]));
  try {
    const size = 2 * 1024 * 1024;
    const body = Buffer.alloc(size, ' ');
    Buffer.from('{"op":"size"}').copy(body);
    const first = await raw(port);
    first.socket.write(head(size));
    first.socket.write(body.subarray(0, 1000)); // started, not finished: its 2 MiB are reserved
    await waitFor('the first body reserved', () => meters.bufferedBodyBytes === size);
    const second = await raw(port);
    second.socket.write(head(size));
    const refused = await second.answer(5000);
    assert.equal(refused.status, 503);
    assert.match(refused.head, /\r\nretry-after: 1\r\n/);
    assert.match(refused.body, /holding 3145728 bytes of request bodies, its limit; retry later/);
    await second.closed;
    assert.equal(meters.bufferedBodyRejected, 1);
    const chunked = await raw(port);
    chunked.socket.write(head('chunked'));
    for (let i = 0; i < 20 && !chunked.socket.destroyed && chunked.text() === ''; i++) {
      chunked.socket.write(`10000\r\n${' '.repeat(0x10000)}\r\n`);
      await sleep(10);
    }
    const cut = await chunked.answer(5000);
    assert.equal(cut.status, 503, 'past 1 MiB of chunks the cap is reached');
    assert.equal(meters.bufferedBodyRejected, 2);
    // The first request still completes, and then nothing is counted any more.
    first.socket.write(body.subarray(1000));
    const ok = await first.answer();
    assert.equal(ok.status, 200);
    assert.equal(ok.body, `{"length": ${size}}`);
    assert.equal(meters.bufferedBodyBytes, 0);
    first.socket.destroy();
  } finally {
    await router.close();
    host.child.kill('SIGTERM');
    await host.exited;
  }
});

test('a Python worker killed mid-request reaches the client as 502 from the instance (infrastructure), not 424', { timeout: 60_000 }, async () => {
  const host = await startHost('py-behaviours', 'score.py');
  const { router, port } = await startRouter({}, endpoint([host]));
  try {
    const who = await raw(port);
    who.socket.write(`${head(12)}{"op":"pid"}`);
    const pid = (JSON.parse((await who.answer()).body) as { pid: number }).pid;
    const victim = await raw(port);
    const sleeping = '{"op":"sleep","seconds":20,"announce":"victim sleeping"}';
    victim.socket.write(`${head(sleeping.length)}${sleeping}`);
    // Killed once run() has the request: the worker prints the announcement from inside run().
    await waitFor('the worker running the request', () => host.log().includes('victim sleeping'), 10_000, 5, host.log);
    process.kill(pid, 'SIGKILL');
    const a = await victim.answer(10_000);
    assert.equal(a.status, 502, a.body);
    assert.doesNotMatch(a.head, /ms-azureml-model-error/i);
    assert.match(a.head, /\r\nazureml-model-deployment: blue\r\n/);
    const message = (JSON.parse(a.body) as { message: string }).message;
    assert.match(message, /^The instance of deployment 'blue' failed while serving the request \(an infrastructure error, not the model's answer\)\. /);
    assert.match(message, /The scoring worker \(pid \d+\) exited unexpectedly \(signal SIGKILL\)/);
    // ... whereas a model error is still the model's: 424 (checked on a fresh host, the old one exits).
    assert.equal(await host.exited, 1);
    const host2 = await startHost('py-behaviours', 'score.py');
    router.setTable({ version: 2, endpoints: [endpoint([host2])] });
    const model = await raw(port);
    model.socket.write(`${head(14)}{"op":"raise"}`);
    const m = await model.answer();
    assert.equal(m.status, 424);
    assert.match(m.head, /\r\nms-azureml-model-error-statuscode: 500\r\n/);
    host2.child.kill('SIGTERM');
    await host2.exited;
    for (const c of [who, victim, model]) c.socket.destroy();
  } finally {
    await router.close();
  }
});

test('a client that leaves mid-stream: the instance drops the partial body (CANCEL) and the slot is free again', { timeout: 60_000 }, async () => {
  const host = await startHost('js-behaviours', 'score.mjs');
  const { router, port, meters } = await startRouter({ streamBodyThresholdBytes: 1024 * 1024 }, endpoint([host], { maxConcurrentRequestsPerInstance: 1, maxQueueWaitMs: 2000 }));
  try {
    for (let i = 0; i < 3; i++) {
      const leaver = await raw(port);
      leaver.socket.write(head(8 * 1024 * 1024));
      await writeAll(leaver.socket, Buffer.alloc(3 * 1024 * 1024, ' '));
      // Past the 1 MiB threshold the request is streaming to the instance, holding its one slot.
      await waitFor('the streamed request at the instance', () => deploymentMeters('ep', 'blue').inFlight === 1);
      leaver.socket.destroy();
      await waitFor("the leaver's slot given back", () => deploymentMeters('ep', 'blue').inFlight === 0);
    }
    // With max_concurrent_requests_per_instance 1, a slot still held by a leaver would queue this one
    // until max_queue_wait_ms (429).
    const c = await raw(port);
    c.socket.write(`${head(13)}{"op":"echo"}`);
    const a = await c.answer();
    assert.equal(a.status, 200, a.body);
    assert.equal(meters.bufferedBodyBytes, 0);
    c.socket.destroy();
  } finally {
    await router.close();
    host.child.kill('SIGTERM');
    await host.exited;
  }
});

test('a chunked body is buffered until it passes the threshold, then streamed with what was buffered first', { timeout: 60_000 }, async () => {
  const host = await startHost('js-behaviours', 'score.mjs');
  const { router, port, meters } = await startRouter({ streamBodyThresholdBytes: 1024 * 1024 }, endpoint([host]));
  try {
    const body = Buffer.alloc(6 * 1024 * 1024, ' ');
    Buffer.from('{"op":"size"}').copy(body);
    let maxBuffered = 0;
    const sampler = setInterval(() => (maxBuffered = Math.max(maxBuffered, meters.bufferedBodyBytes)), 1);
    const c = await raw(port);
    c.socket.write(head('chunked'));
    for (let i = 0; i < body.length; i += 0x8000) {
      const part = body.subarray(i, i + 0x8000);
      c.socket.write(`${part.length.toString(16)}\r\n`);
      c.socket.write(part);
      c.socket.write('\r\n');
      if (i % (512 * 1024) === 0) await sleep(5);
    }
    c.socket.write('0\r\n\r\n');
    const a = await c.answer();
    clearInterval(sampler);
    assert.equal(a.status, 200, a.body);
    assert.equal(a.body, `{"length": ${body.length}}`);
    assert.ok(maxBuffered > 0 && maxBuffered <= 1024 * 1024 + 0x10000, `buffered up to ${maxBuffered} bytes`);
    assert.equal(meters.bufferedBodyBytes, 0);
    c.socket.destroy();
  } finally {
    await router.close();
    host.child.kill('SIGTERM');
    await host.exited;
  }
});
