// TLS end to end (issue 9, item 3), as a user does it: `infergate server --tls-dev` makes a local CA once
// and serves HTTPS on the router and the control plane; the real CLI on the same machine trusts it with no
// flag, deploys the JS fixture and invokes it over https; curl needs --cacert; `show` prints https URIs.
// A server started with --tls-cert/--tls-key picks up a renewed certificate on SIGHUP while a keep-alive
// connection opened before stays up. Plain HTTP on a non-loopback address is refused unless --insecure.

import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect, type TLSSocket } from 'node:tls';
import { ensureDevCertificate } from '../../src/util/tls.js';
import { BIN, EXAMPLES, FIXTURES, run, SAMPLE_ANSWER, until, Workspace } from './harness.js';

const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');
const ws = new Workspace();
let rec: { url: string; routerUrl: string; caFile?: string };
let ca = '';
const E = 'tls-ep';

before(async () => {
  await ws.startServer(['--tls-dev']);
  rec = JSON.parse(readFileSync(join(ws.dir, 'server.json'), 'utf8')) as typeof rec;
  ca = join(ws.dir, 'tls', 'ca.pem');
});

after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('--tls-dev: a local CA and a server certificate in <workspace>/tls (keys 0600), https URLs in server.json', async () => {
  assert.match(rec.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.match(rec.routerUrl, /^https:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(rec.caFile, ca, 'server.json names the CA for the local CLI');
  const mode = (f: string) => (statSync(join(ws.dir, 'tls', f)).mode & 0o777).toString(8);
  assert.deepEqual([mode('ca-key.pem'), mode('server-key.pem'), mode('ca.pem'), mode('server.pem')], ['600', '600', '644', '644']);
  assert.equal((statSync(join(ws.dir, 'tls')).mode & 0o777).toString(8), '700');
  const leaf = new X509Certificate(readFileSync(join(ws.dir, 'tls', 'server.pem')));
  assert.ok(leaf.checkIssued(new X509Certificate(readFileSync(ca))), 'issued by the workspace CA');
  for (const name of ['localhost']) assert.ok(leaf.checkHost(name), name);
  for (const ip of ['127.0.0.1', '::1']) assert.ok(leaf.checkIP(ip), ip);
});

test('the CLI on the same machine works over https with no flag: create, deploy the JS fixture, invoke; show prints https URIs', async () => {
  await ws.ok(['online-endpoint', 'create', '-n', E]);
  const dir = ws.scratch(join(FIXTURES, 'js-model'), 'js-model');
  writeFileSync(join(dir, 'blue.yml'), `name: blue\nendpoint_name: ${E}\nmodel: {path: model/}\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\n`);
  await ws.ok(['online-deployment', 'create', '-f', join(dir, 'blue.yml'), '--all-traffic']);
  assert.equal(await ws.ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST, '-o', 'tsv']), SAMPLE_ANSWER + '\n');
  const shown = JSON.parse(await ws.ok(['online-endpoint', 'show', '-n', E])) as { scoring_uri: string; openapi_uri: string };
  assert.equal(shown.scoring_uri, `${rec.routerUrl}/endpoints/${E}/score`);
  assert.equal(shown.openapi_uri, `${rec.routerUrl}/endpoints/${E}/swagger.json`);
  assert.match(shown.scoring_uri, /^https:\/\//);
});

test('curl scores over https with --cacert, and refuses the certificate without it', async () => {
  const key = (await ws.ok(['online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  const uri = `${rec.routerUrl}/endpoints/${E}/score`;
  const ok = await run('curl', ['-sS', '--cacert', ca, '-H', `Authorization: Bearer ${key}`, '-H', 'content-type: application/json', '--data', `@${REQUEST}`, '-w', '\n%{http_code} %{scheme}', uri]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(ok.stdout, `${SAMPLE_ANSWER}\n200 HTTPS`);
  // by name too (the certificate names localhost and the machine's hostname)
  const byName = await run('curl', ['-sS', '--cacert', ca, '-o', '/dev/null', '-w', '%{http_code}', uri.replace('127.0.0.1', 'localhost').replace('/score', '/swagger.json'), '-H', `Authorization: Bearer ${key}`]);
  assert.equal(byName.stdout, '200', byName.stderr);
  const untrusted = await run('curl', ['-sS', '-o', '/dev/null', '-H', `Authorization: Bearer ${key}`, '--data', `@${REQUEST}`, uri]);
  assert.equal(untrusted.code, 60, 'curl: (60) SSL certificate problem');
  const api = await run('curl', ['-sS', '--cacert', ca, '-w', '\n%{http_code}', `${rec.url}/healthz`]);
  assert.equal(api.stdout.split('\n').pop(), '200', api.stderr);
  const plain = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', rec.routerUrl.replace('https:', 'http:') + '/']);
  assert.notEqual(plain.stdout, '200', 'plain HTTP is not served on the TLS port');
});

test('a remote CLI (--server, a token, no workspace of the server) needs the CA: refused with a hint, then --cacert or INFERGATE_CA_CERT', async () => {
  const home = mkdtempSync(join(tmpdir(), 'infergate-tls-home-'));
  try {
    const env = { INFERGATE_HOME: home, INFERGATE_TOKEN: ws.ownerToken };
    const refused = await ws.cli(['online-endpoint', 'list', '--server', rec.url], { env });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /\(ServerUnreachable\).*certificate is not trusted here; pass --cacert FILE or set INFERGATE_CA_CERT/);
    const flag = await ws.cli(['online-endpoint', 'list', '--server', rec.url, '--cacert', ca, '-o', 'tsv', '--query', '[].name'], { env });
    assert.equal(flag.code, 0, flag.stderr);
    assert.equal(flag.stdout.trim(), E);
    const viaEnv = await ws.cli(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST, '--server', rec.url, '-o', 'tsv'], { env: { ...env, INFERGATE_CA_CERT: ca } });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(viaEnv.stdout, SAMPLE_ANSWER + '\n');
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
});

test('a restart keeps the CA and the certificate (a CA trusted once stays trusted) and prints how to trust it', async () => {
  const before = readFileSync(ca, 'utf8');
  const leaf = readFileSync(join(ws.dir, 'tls', 'server.pem'), 'utf8');
  await ws.stopServer();
  const child = spawn(process.execPath, [BIN, 'server', '--tls-dev', '--port', '0', '--router-port', '0'], { env: ws.env, stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    child.stderr.resume();
    await until('the server to start', async () => out.includes('NODE_EXTRA_CA_CERTS'), 20_000);
    assert.ok(out.includes(`curl --cacert ${ca}`), out);
    assert.ok(out.includes(`NODE_EXTRA_CA_CERTS=${ca}`), out);
    assert.equal(readFileSync(ca, 'utf8'), before);
    assert.equal(readFileSync(join(ws.dir, 'tls', 'server.pem'), 'utf8'), leaf);
    assert.equal(await ws.ok(['online-endpoint', 'invoke', '-n', E, '-r', REQUEST, '-o', 'tsv']), SAMPLE_ANSWER + '\n');
  } finally {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGTERM');
    await exited;
  }
});

/** One keep-alive TLS connection: `get(path)` sends a request on it and resolves with the answer's status line. */
function keepAlive(url: string, trust: string[]): Promise<{ socket: TLSSocket; get: (path: string) => Promise<string> }> {
  const u = new URL(url);
  const socket = connect({ host: u.hostname, port: Number(u.port), servername: 'localhost', ca: trust.map((f) => readFileSync(f)) });
  socket.on('error', () => {});
  let got = '';
  socket.on('data', (c: Buffer) => (got += c.toString('latin1')));
  const get = async (path: string): Promise<string> => {
    got = '';
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
    await until(`an answer to ${path}`, async () => /\r\n\r\n[\s\S]*\}$/.test(got), 5000, 5);
    return got.split('\r\n')[0];
  };
  return new Promise((resolve, reject) => {
    socket.once('secureConnect', () => resolve({ socket, get }));
    socket.once('error', reject);
  });
}

const fingerprintAt = async (url: string, trust: string[]): Promise<string> => {
  const c = await keepAlive(url, trust);
  const f = c.socket.getPeerX509Certificate()!.fingerprint256;
  c.socket.destroy();
  return f;
};

test('--tls-cert/--tls-key: SIGHUP serves a renewed certificate to new connections; open keep-alive connections stay up; a bad file keeps the old one', async () => {
  const certs = mkdtempSync(join(tmpdir(), 'infergate-tls-certs-'));
  const other = new Workspace();
  try {
    const a = await ensureDevCertificate(join(certs, 'a'), ['localhost', '127.0.0.1']);
    const b = await ensureDevCertificate(join(certs, 'b'), ['localhost', '127.0.0.1']);
    const certFile = join(certs, 'cert.pem');
    const keyFile = join(certs, 'key.pem');
    writeFileSync(certFile, readFileSync(a.certFile));
    writeFileSync(keyFile, readFileSync(a.keyFile));
    const { url, routerUrl } = await other.startServer(['--tls-cert', certFile, '--tls-key', keyFile]);
    assert.match(url, /^https:/);
    const trust = [a.caFile, b.caFile];
    const router = await keepAlive(routerUrl, trust);
    const api = await keepAlive(url, trust);
    assert.match(await router.get('/'), /200/);
    assert.match(await api.get('/healthz'), /200/);
    const fa = new X509Certificate(readFileSync(a.certFile)).fingerprint256;
    const fb = new X509Certificate(readFileSync(b.certFile)).fingerprint256;
    assert.equal(router.socket.getPeerX509Certificate()!.fingerprint256, fa);

    // Renewed: the files are replaced, then SIGHUP (what certbot's deploy hook or a cron job does).
    writeFileSync(certFile, readFileSync(b.certFile));
    writeFileSync(keyFile, readFileSync(b.keyFile));
    other.server!.kill('SIGHUP');
    await until('the reload', async () => /SIGHUP: TLS certificate reloaded/.test(other.serverLog), 10_000);
    assert.equal(await fingerprintAt(routerUrl, trust), fb, 'router: new connections get the new certificate');
    assert.equal(await fingerprintAt(url, trust), fb, 'control plane: likewise');
    assert.match(await router.get('/'), /200/, 'the router connection opened before the reload still serves');
    assert.match(await api.get('/healthz'), /200/, 'so does the control-plane one');
    assert.equal(router.socket.destroyed || api.socket.destroyed, false);

    // A broken renewal keeps the certificate that works (and says so).
    writeFileSync(certFile, 'not a certificate\n');
    other.server!.kill('SIGHUP');
    await until('the failed reload', async () => /SIGHUP: TLS certificate NOT reloaded, still serving the previous one: \(BadArgument\)/.test(other.serverLog), 10_000);
    assert.equal(await fingerprintAt(routerUrl, trust), fb);
    assert.equal(other.server!.exitCode, null, 'the server is still running');
    router.socket.destroy();
    api.socket.destroy();
  } finally {
    await other.dispose();
    rmSync(certs, { recursive: true, force: true });
  }
});

test('plain HTTP on a non-loopback address is refused (coded, naming the three ways out); --insecure passes with a warning', async () => {
  const other = new Workspace();
  try {
    const refused = await other.cli(['server', '--host', '0.0.0.0', '--port', '0', '--router-port', '0']);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /^ERROR: \(BadArgument\) Refusing to serve plain HTTP on 0\.0\.0\.0/m);
    for (const way of ['--tls-cert FILE --tls-key FILE', '--tls-dev', '--insecure']) assert.ok(refused.stderr.includes(way), way);
    assert.equal(existsSync(join(other.dir, 'server.json')), false, 'nothing was started');
    const apiOnly = await other.cli(['server', '--api-host', '::', '--port', '0', '--router-port', '0']);
    assert.match(apiOnly.stderr, /\(BadArgument\) Refusing to serve plain HTTP on ::/, 'the control plane bind is checked too');
    // --insecure gets past the check (the warning), then fails to bind an address this machine does not have
    // (TEST-NET-2, RFC 5737): the test never listens beyond loopback.
    const insecure = await other.cli(['server', '--host', '198.51.100.7', '--insecure', '--port', '0', '--router-port', '0']);
    assert.match(insecure.stderr, /WARNING: --insecure: serving plain HTTP on 198\.51\.100\.7/);
    assert.match(insecure.stderr, /EADDRNOTAVAIL/);
    assert.doesNotMatch(insecure.stderr, /BadArgument/);
    const loopback = await other.startServer(['--host', '127.0.0.1']);
    assert.match(loopback.url, /^http:\/\/127\.0\.0\.1:/, 'loopback needs neither');
    assert.doesNotMatch(other.serverLog, /WARNING/);
  } finally {
    await other.dispose();
  }
});
