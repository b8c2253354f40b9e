// The router's HTTP/1.1 server over real sockets, byte for byte: what node:http used to do for the router
// (keep-alive, pipelining in order, HTTP/1.0, HEAD, 100-continue, limits, slow and idle clients, unsafe
// response headers) must still hold.

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Http1Server, type Http1Request } from './http1.js';

let server: Http1Server;
let port = 0;
/** What the handler does with each request; set per test. */
let behaviour: (req: Http1Request) => void = echo;

function echo(req: Http1Request): void {
  req.respond(200, ['content-type', 'application/json'], JSON.stringify({ method: req.method, url: req.url, body: req.body.toString(), headers: req.headers }));
}

before(async () => {
  server = new Http1Server({ maxBodyBytes: 1024, maxHeaderSize: 2048, headersTimeoutMs: 300, requestTimeoutMs: 600, keepAliveTimeoutMs: 800 }, (req) => behaviour(req));
  port = (await server.listen(0, '127.0.0.1')).port;
});
after(async () => {
  await server.close(100);
});

/** Opens a raw connection; `read()` waits until `until` matches what came back (or the socket ended). */
async function raw(): Promise<{ socket: Socket; text: () => string; read: (until: RegExp, ms?: number) => Promise<string>; ended: Promise<void> }> {
  const socket = connect(port, '127.0.0.1');
  await new Promise((r) => socket.once('connect', r));
  let got = '';
  socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
  const ended = new Promise<void>((r) => socket.once('close', () => r()));
  return {
    socket,
    text: () => got,
    read: async (until, ms = 3000) => {
      const t0 = Date.now();
      while (!until.test(got) && Date.now() - t0 < ms && !socket.destroyed) await sleep(5);
      return got;
    },
    ended,
  };
}

const responses = (text: string) => text.split(/(?=HTTP\/1\.1 \d{3} )/).filter(Boolean);

test('keep-alive: several requests on one connection, each answered with content-length, date and keep-alive', async () => {
  behaviour = echo;
  const c = await raw();
  c.socket.write('POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}');
  await c.read(/\}$/);
  c.socket.write('GET /two?x=1 HTTP/1.1\r\nHost: x\r\nX-Mixed-Case: Yes\r\n\r\n');
  const text = await c.read(/two.*\}$/s);
  const [a, b] = responses(text);
  assert.match(a, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(a, /\r\ncontent-length: \d+\r\n/);
  assert.match(a, /\r\ndate: \w{3}, \d\d \w{3} \d{4} /);
  assert.match(a, /\r\nconnection: keep-alive\r\nkeep-alive: timeout=0\r\n/);
  const body = JSON.parse(b.split('\r\n\r\n')[1]) as { method: string; url: string; headers: string[] };
  assert.equal(body.method, 'GET');
  assert.equal(body.url, '/two?x=1');
  assert.deepEqual(body.headers, ['host', 'x', 'x-mixed-case', 'Yes'], 'names lower-cased, values as sent');
  c.socket.destroy();
});

test('pipelined requests are answered in request order, whatever order the handler answers them in', async () => {
  behaviour = (req) => setTimeout(() => echo(req), req.url === '/slow' ? 80 : 5);
  const c = await raw();
  c.socket.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\nGET /fast HTTP/1.1\r\nHost: x\r\n\r\nPOST /third HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\n3');
  const text = await c.read(/third.*\}$/s);
  assert.deepEqual(responses(text).map((r) => (JSON.parse(r.split('\r\n\r\n')[1]) as { url: string }).url), ['/slow', '/fast', '/third']);
  c.socket.destroy();
});

test('a chunked request body arrives whole; Expect: 100-continue gets its interim answer first', async () => {
  behaviour = echo;
  const c = await raw();
  c.socket.write('POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n');
  assert.match(await c.read(/100 Continue\r\n\r\n/), /^HTTP\/1\.1 100 Continue\r\n\r\n/);
  c.socket.write('5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n');
  const text = await c.read(/\}$/);
  assert.equal((JSON.parse(text.split('\r\n\r\n').at(-1)!) as { body: string }).body, 'hello world');
  c.socket.destroy();
});

test('Connection: close and HTTP/1.0 end the connection after the answer; HEAD has no body', async () => {
  behaviour = (req) => req.respond(200, ['content-type', 'text/plain'], 'twelve bytes');
  for (const request of ['GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 'GET / HTTP/1.0\r\n\r\n']) {
    const c = await raw();
    c.socket.write(request);
    await c.ended;
    assert.match(c.text(), /\r\nconnection: close\r\n\r\ntwelve bytes$/);
  }
  const h = await raw();
  h.socket.write('HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await h.ended;
  assert.match(h.text(), /content-length: 12\r\n/);
  assert.ok(h.text().endsWith('\r\n\r\n'), 'no body after the head');
});

test('a client that closes its side has gone away, as for node:http: its pending requests are abandoned', async () => {
  const seen: Http1Request[] = [];
  behaviour = (req) => seen.push(req);
  const c = await raw();
  c.socket.end('GET /a HTTP/1.1\r\nHost: x\r\n\r\n');
  await c.ended;
  assert.equal(seen.length, 1);
  assert.equal(seen[0].destroyed, true);
  seen[0].respond(200, [], 'nobody listens'); // must not throw
  assert.equal(c.text(), '');
});

test('limits: 413 for a declared or chunked body over the limit, 431 for huge headers, 400 for garbage; each closes', async () => {
  let handled = 0;
  behaviour = (req) => {
    handled++;
    echo(req);
  };
  const declared = await raw();
  declared.socket.write('POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n\r\n');
  await declared.ended;
  assert.match(declared.text(), /^HTTP\/1\.1 413 Payload Too Large\r\n[\s\S]*connection: close[\s\S]*larger than 1024 bytes/);

  const chunked = await raw();
  chunked.socket.write(`POST /score HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n800\r\n${'a'.repeat(2048)}\r\n0\r\n\r\n`);
  await chunked.ended;
  assert.match(chunked.text(), /^HTTP\/1\.1 413 /);

  const big = await raw();
  big.socket.write(`GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'b'.repeat(4000)}\r\n\r\n`);
  await big.ended;
  assert.match(big.text(), /^HTTP\/1\.1 431 /);

  const garbage = await raw();
  garbage.socket.write('THIS IS NOT HTTP\r\n\r\n');
  await garbage.ended;
  assert.match(garbage.text(), /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*Malformed HTTP request/);

  const upgrade = await raw();
  upgrade.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n');
  await upgrade.ended;
  assert.match(upgrade.text(), /^HTTP\/1\.1 400 /);
  assert.equal(handled, 0, 'none of them reached the handler');
});

test('slow clients get 408 (headers, then whole request); idle keep-alive connections are closed', async () => {
  behaviour = echo;
  const slowHead = await raw();
  const t0 = Date.now();
  slowHead.socket.write('GET / HTTP/1.1\r\nHost: x\r\n');
  await slowHead.ended;
  assert.match(slowHead.text(), /^HTTP\/1\.1 408 /);
  assert.ok(Date.now() - t0 < 2000);

  const slowBody = await raw();
  slowBody.socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc');
  await slowBody.ended;
  assert.match(slowBody.text(), /^HTTP\/1\.1 408 /);

  const idle = await raw();
  idle.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  await idle.read(/\}$/);
  const t1 = Date.now();
  await idle.ended;
  assert.ok(Date.now() - t1 >= 700, 'kept open for the keep-alive timeout');
});

test('response headers that would split the response or are not tokens are left out', async () => {
  behaviour = (req) => req.respond(200, ['x-ok', 'fine', 'x-evil', 'a\r\nset-cookie: stolen=1', 'bad name', 'v', 'x-wide', '✓', 'x-tab', 'a\tb'], 'ok');
  const c = await raw();
  c.socket.write('GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await c.ended;
  const head = c.text().split('\r\n\r\n')[0];
  assert.match(head, /\r\nx-ok: fine\r\n/);
  assert.match(head, /\r\nx-tab: a\tb\r\n/);
  assert.doesNotMatch(head, /stolen|bad name|x-evil|x-wide/);
  assert.ok(c.text().endsWith('\r\n\r\nok'));
});

test('a client that goes away before its answer: the answer is dropped, the server carries on', async () => {
  let pending: Http1Request | undefined;
  behaviour = (req) => (pending = req);
  const c = await raw();
  c.socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  while (pending === undefined) await sleep(5);
  c.socket.destroy();
  while (!pending.destroyed) await sleep(5);
  pending.respond(200, [], 'too late');
  behaviour = echo;
  const d = await raw();
  d.socket.write('GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  await d.ended;
  assert.match(d.text(), /"url":"\/after"/);
});
