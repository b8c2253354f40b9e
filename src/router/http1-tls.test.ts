// The router's HTTP/1.1 server over TLS, on real sockets: the parser consumes the TLS socket's handle in
// C++ as it does a TCP one, so every framing path (keep-alive, pipelining past the read pause, chunked and
// multi-read bodies, 100-continue, a request in the same flight as the handshake) is run again over TLS;
// plus what only TLS has: a certificate swap that keeps open connections, a handshake deadline, and
// plain HTTP sent to the TLS port.

import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect as tcpConnect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, type TLSSocket } from 'node:tls';
import { ensureDevCertificate, loadTlsFiles, type DevCertificate } from '../util/tls.js';
import { Http1Server, type Http1Request } from './http1.js';

let server: Http1Server;
let port = 0;
let dirs: string[] = [];
let first: DevCertificate;
let second: DevCertificate;
let behaviour: (req: Http1Request) => void = echo;

function echo(req: Http1Request): void {
  req.respond(200, ['content-type', 'application/json'], JSON.stringify({ method: req.method, url: req.url, bytes: req.body.length, body: req.body.length < 100 ? req.body.toString() : '' }));
}

before(async () => {
  // Two independent development CAs: the second stands for a renewed certificate in the reload test.
  dirs = [mkdtempSync(join(tmpdir(), 'ig-tls-a-')), mkdtempSync(join(tmpdir(), 'ig-tls-b-'))];
  first = await ensureDevCertificate(dirs[0], ['localhost', '127.0.0.1']);
  second = await ensureDevCertificate(dirs[1], ['localhost', '127.0.0.1']);
  server = new Http1Server(
    { maxBodyBytes: 4 * 1024 * 1024, headersTimeoutMs: 400, requestTimeoutMs: 3000, keepAliveTimeoutMs: 5000, tls: loadTlsFiles(first.certFile, first.keyFile).context },
    (req) => behaviour(req),
  );
  port = (await server.listen(0, '127.0.0.1')).port;
});
after(async () => {
  await server.close(100);
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** A TLS client connection trusting both CAs; `read()` waits until `until` matches what came back. */
async function tlsClient(): Promise<{ socket: TLSSocket; read: (until: RegExp, ms?: number) => Promise<string>; ended: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1', servername: 'localhost', ca: [readFileSync(first.caFile), readFileSync(second.caFile)] });
  let got = '';
  socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
  socket.on('error', () => {});
  const ended = new Promise<void>((r) => socket.once('close', () => r()));
  return {
    socket,
    read: async (until, ms = 3000) => {
      const t0 = Date.now();
      while (!until.test(got) && Date.now() - t0 < ms && !socket.destroyed) await sleep(5);
      return got;
    },
    ended,
  };
}

const responses = (text: string) => text.split(/(?=HTTP\/1\.1 \d{3} )/).filter(Boolean);
const bodyOf = (r: string) => JSON.parse(r.split('\r\n\r\n')[1]) as { url: string; bytes: number; body: string };

test('a request written before the handshake completes is served (it arrives in the same flight as the client Finished)', async () => {
  behaviour = echo;
  for (let i = 0; i < 20; i++) {
    const c = await tlsClient();
    // Written at once: tls buffers it and sends it right behind the handshake.
    c.socket.write(`POST /early/${i} HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}`);
    const text = await c.read(/\}$/);
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/, `connection ${i}: ${text}`);
    assert.equal(bodyOf(text).url, `/early/${i}`);
    c.socket.destroy();
  }
});

test('keep-alive, chunked bodies and 100-continue over TLS', async () => {
  behaviour = echo;
  const c = await tlsClient();
  await new Promise((r) => c.socket.once('secureConnect', r));
  assert.equal(c.socket.alpnProtocol, false, 'no ALPN offered by this client: plain HTTP/1.1');
  c.socket.write('POST /one HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc');
  await c.read(/abc"\}$/);
  c.socket.write('POST /two HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n');
  await c.read(/100 Continue\r\n\r\n$/);
  c.socket.write('3\r\nde');
  await sleep(20);
  c.socket.write('f\r\n2\r\ngh\r\n0\r\n\r\n');
  const text = await c.read(/defgh"\}$/);
  const all = responses(text).filter((r) => !r.startsWith('HTTP/1.1 100'));
  assert.deepEqual(all.map((r) => bodyOf(r).body), ['abc', 'defgh']);
  assert.match(all[0], /\r\nconnection: keep-alive\r\n/);
  c.socket.destroy();
});

test('a body of several MiB (many TLS records and reads) arrives whole', async () => {
  behaviour = echo;
  const c = await tlsClient();
  const size = 3 * 1024 * 1024 + 17;
  c.socket.write(`POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: ${size}\r\n\r\n`);
  c.socket.write(Buffer.alloc(size, 0x61));
  const text = await c.read(/\}$/, 10_000);
  assert.equal(bodyOf(text).bytes, size);
  c.socket.destroy();
});

test('40 pipelined requests (past the 32 at which reading pauses) are answered in order over TLS', async () => {
  behaviour = (req) => setTimeout(() => echo(req), 2);
  const c = await tlsClient();
  let burst = '';
  for (let i = 0; i < 40; i++) burst += `GET /p/${i} HTTP/1.1\r\nHost: x\r\n\r\n`;
  c.socket.write(burst);
  const text = await c.read(/\/p\/39".*\}$/s, 5000);
  assert.deepEqual(
    responses(text).map((r) => bodyOf(r).url),
    Array.from({ length: 40 }, (_, i) => `/p/${i}`),
  );
  c.socket.destroy();
});

test('setSecureContext: new connections get the new certificate, an open keep-alive connection stays up and keeps serving', async () => {
  behaviour = echo;
  const fingerprintOf = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;
  const kept = await tlsClient();
  kept.socket.write('GET /before HTTP/1.1\r\nHost: x\r\n\r\n');
  await kept.read(/\/before".*\}$/s);
  assert.equal(kept.socket.getPeerX509Certificate()?.fingerprint256, fingerprintOf(first.certFile));

  server.setSecureContext(loadTlsFiles(second.certFile, second.keyFile).context);

  const fresh = await tlsClient();
  fresh.socket.write('GET /new HTTP/1.1\r\nHost: x\r\n\r\n');
  await fresh.read(/\/new".*\}$/s);
  assert.equal(fresh.socket.getPeerX509Certificate()?.fingerprint256, fingerprintOf(second.certFile), 'a new connection sees the new certificate');

  kept.socket.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
  const text = await kept.read(/\/after".*\}$/s);
  assert.deepEqual(responses(text).map((r) => bodyOf(r).url), ['/before', '/after'], 'the old connection was not dropped');
  assert.equal(kept.socket.destroyed, false);
  kept.socket.destroy();
  fresh.socket.destroy();
  server.setSecureContext(loadTlsFiles(first.certFile, first.keyFile).context);
});

test('plain HTTP to the TLS port and a handshake never finished are closed, and the server keeps serving', async () => {
  const plain = tcpConnect(port, '127.0.0.1');
  plain.on('error', () => {});
  const plainClosed = new Promise<void>((r) => plain.once('close', () => r()));
  plain.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
  const silent = tcpConnect(port, '127.0.0.1');
  silent.on('error', () => {});
  const t0 = Date.now();
  const silentClosed = new Promise<void>((r) => silent.once('close', () => r()));
  await Promise.race([plainClosed, sleep(3000).then(() => assert.fail('plain HTTP connection not closed'))]);
  await Promise.race([silentClosed, sleep(3000).then(() => assert.fail('a silent connection outlived the handshake timeout'))]);
  assert.ok(Date.now() - t0 >= 300, 'closed by the handshake deadline (headersTimeoutMs = 400), not at once');
  assert.equal(server.connections.size, 0, 'neither became a connection');
  const c = await tlsClient();
  c.socket.write('GET /still HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.match(await c.read(/\/still".*\}$/s), /200 OK/);
  c.socket.destroy();
});

test('connections still in their TLS handshake count against maxConnections: past it the TCP connection is closed at once', async () => {
  const bounded = new Http1Server(
    { maxBodyBytes: 1024, headersTimeoutMs: 600, requestTimeoutMs: 5000, keepAliveTimeoutMs: 5000, maxConnections: 3, tls: loadTlsFiles(first.certFile, first.keyFile).context },
    (req) => req.respond(200, [], 'ok'),
  );
  const p = (await bounded.listen(0, '127.0.0.1')).port;
  try {
    // 20 TCP connections that never send a ClientHello (a handshake flood): 3 are held, 17 closed.
    const silent = Array.from({ length: 20 }, () => {
      const s = tcpConnect(p, '127.0.0.1');
      s.on('error', () => {});
      return { s, closed: new Promise<void>((r) => s.once('close', () => r())) };
    });
    const t0 = Date.now();
    while (bounded.meters.rejected.max_connections < 17 && Date.now() - t0 < 3000) await sleep(5);
    assert.equal(bounded.meters.rejected.max_connections, 17);
    await sleep(50);
    assert.ok(Date.now() - t0 < 400, 'refused at once, not at the handshake deadline (600 ms)');
    assert.equal(silent.filter((x) => x.s.destroyed).length, 17);
    // The 3 held ones are closed by the handshake deadline; their places come back on close.
    await Promise.all(silent.map((x) => x.closed));
    await sleep(20);
    const c = connect({ port: p, host: '127.0.0.1', servername: 'localhost', ca: readFileSync(first.caFile) });
    let got = '';
    c.on('data', (d: Buffer) => (got += d.toString('latin1')));
    c.on('error', () => {});
    c.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
    while (!/\r\n\r\nok$/.test(got) && Date.now() - t0 < 5000) await sleep(5);
    assert.match(got, /^HTTP\/1\.1 200 /);
    c.destroy();
  } finally {
    await bounded.close(100);
  }
});
