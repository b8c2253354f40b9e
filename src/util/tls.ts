// TLS material for `infergate server` (its certificate and key, or a development CA it makes itself) and
// the CLI's trust of a CA that is not in the system store.
//
// Azure's scoring URIs are https:// with a public certificate. Here the operator brings a certificate
// (`--tls-cert/--tls-key`, PEM), or asks for a development one (`--tls-dev`): like mkcert, a local CA is
// made once per workspace and the server certificate is issued by it, so trusting the CA once (curl
// --cacert, NODE_EXTRA_CA_CERTS, the system store) keeps working when the server certificate is re-issued
// (a new hostname, near its expiry). The CLI on the same machine trusts the workspace's CA by itself:
// server.json names the file (util/workspace.ts).

import { X509Certificate, createPrivateKey, randomBytes, webcrypto, type KeyObject } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { request as httpsRequest, Agent as HttpsAgent } from 'node:https';
import { isIP } from 'node:net';
import { hostname, networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { createSecureContext, rootCertificates, type SecureContextOptions } from 'node:tls';
import { errorOf } from '../errors/index.js';
import { readUserFileSync } from './files.js';
import { readServerRecord } from './workspace.js';

/** PEM files are a few KiB; a chain of ten certificates is under 20 KiB. */
const PEM_FILE_LIMIT = 1024 * 1024;

/** Where the server's certificate comes from. */
export type TlsSource = { certFile: string; keyFile: string } | { dev: true };

/** What the server serves with, and how to find it again on reload. */
export interface TlsMaterial {
  certFile: string;
  keyFile: string;
  /** A CA file clients on this machine should trust (the dev CA, or a self-signed certificate itself). */
  caFile?: string;
  context: SecureContextOptions;
}

/**
 * Reads a PEM certificate (chain) and key and checks them as the TLS layer will use them: a key that does
 * not match the certificate, or a file that is not PEM, is a coded BadArgument at start (or at reload),
 * not a handshake failure on the first client.
 */
export function loadTlsFiles(certFile: string, keyFile: string): TlsMaterial {
  const cert = readUserFileSync(certFile, { what: '--tls-cert', limit: PEM_FILE_LIMIT });
  const key = readUserFileSync(keyFile, { what: '--tls-key', limit: PEM_FILE_LIMIT });
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(cert);
  } catch (e) {
    throw errorOf('CertificateNotPem', { what: '--tls-cert', file: certFile, reason: (e as Error).message });
  }
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(key);
  } catch (e) {
    throw errorOf('PrivateKeyNotPem', { file: keyFile, reason: (e as Error).message });
  }
  if (!leaf.checkPrivateKey(privateKey)) throw errorOf('PrivateKeyMismatch', { keyFile, certFile });
  if (Date.parse(leaf.validTo) < Date.now()) throw errorOf('CertificateExpired', { file: certFile, validTo: leaf.validTo });
  const context: SecureContextOptions = { cert, key };
  try {
    createSecureContext(context);
  } catch (e) {
    throw errorOf('TlsPairRejected', { certFile, keyFile, reason: (e as Error).message });
  }
  // A self-signed certificate is its own CA: the CLI on this machine can trust it as it trusts the dev CA.
  const selfSigned = leaf.issuer === leaf.subject && leaf.checkIssued(leaf) && leaf.verify(leaf.publicKey);
  return { certFile, keyFile, ...(selfSigned ? { caFile: certFile } : {}), context };
}

/** The material again from the same source (SIGHUP): files re-read, the dev certificate re-issued if due. */
export async function loadTls(source: TlsSource, workspace: string, names: readonly string[]): Promise<TlsMaterial> {
  if ('dev' in source) {
    const dev = await ensureDevCertificate(workspace, names);
    return { ...loadTlsFiles(dev.certFile, dev.keyFile), caFile: dev.caFile };
  }
  return loadTlsFiles(source.certFile, source.keyFile);
}

// ---------------------------------------------------------------------------------------------------
// Development CA

export interface DevCertificate {
  dir: string;
  caFile: string;
  certFile: string;
  keyFile: string;
  /** What happened: made the CA and certificate, re-issued the certificate, or used both as they were. */
  action: 'created' | 'reissued' | 'kept';
}

const CA_DAYS = 3650;
/** Browsers refuse leaf certificates valid for more than 398 days (CA/Browser Forum); 397 as mkcert uses. */
const LEAF_DAYS = 397;
/** A certificate this close to its expiry is re-issued at start. */
const RENEW_BEFORE_DAYS = 30;
const DAY = 86_400_000;

/**
 * The names a development certificate covers: localhost and the loopback addresses, the machine's
 * hostname, and the addresses the server binds (the machine's own addresses for a wildcard bind).
 */
export function devNames(bindHosts: readonly string[]): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1', hostname().toLowerCase()]);
  for (const bindHost of bindHosts) {
    if (bindHost === '0.0.0.0' || bindHost === '::') {
      for (const list of Object.values(networkInterfaces())) for (const a of list ?? []) if (!a.internal) names.add(a.address);
    } else if (bindHost !== '') names.add(bindHost.toLowerCase().replace(/^\[|\]$/g, ''));
  }
  return [...names].filter((n) => n !== '' && !n.startsWith('fe80:'));
}

/**
 * Makes `<workspace>/tls/` once: ca.pem + ca-key.pem (a local CA, ECDSA P-256, 10 years) and server.pem +
 * server-key.pem (issued by it for `names`). Key files are 0600 and the folder 0700: only the server's user
 * reads them. Later starts keep both; the server certificate alone is re-issued when it does not cover
 * `names` or expires within 30 days, so a CA the user trusted once stays trusted.
 */
export async function ensureDevCertificate(workspace: string, names: readonly string[]): Promise<DevCertificate> {
  const dir = join(workspace, 'tls');
  const caFile = join(dir, 'ca.pem');
  const caKeyFile = join(dir, 'ca-key.pem');
  const certFile = join(dir, 'server.pem');
  const keyFile = join(dir, 'server-key.pem');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  chmodSync(dir, 0o700);
  // @peculiar/x509 resolves its parts through tsyringe, which needs the Reflect metadata API (its README:
  // "Reflect Polyfill Required"). Loaded here only: the CLI and a server without --tls-dev never pay for it.
  await import('reflect-metadata');
  const x509 = await import('@peculiar/x509');
  x509.cryptoProvider.set(webcrypto as unknown as Crypto);
  const subtle = webcrypto.subtle;
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

  let action: DevCertificate['action'] = 'kept';
  let caCert: InstanceType<typeof x509.X509Certificate>;
  let caKey: CryptoKey;
  if (existsSync(caFile) && existsSync(caKeyFile)) {
    caCert = new x509.X509Certificate(readFileSync(caFile, 'utf8'));
    caKey = (await subtle.importKey('pkcs8', pemBody(readFileSync(caKeyFile, 'utf8')), alg, false, ['sign'])) as CryptoKey;
    if (caCert.notAfter.getTime() - Date.now() < RENEW_BEFORE_DAYS * DAY) {
      throw errorOf('DevCaExpiring', { dir, notAfter: caCert.notAfter.toISOString() });
    }
  } else {
    const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    caCert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name: `CN=infergate development CA (${hostname()}), O=infergate`,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + CA_DAYS * DAY),
      keys,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      ],
    });
    caKey = keys.privateKey;
    writePrivate(caKeyFile, toPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
    writePublic(caFile, caCert.toString('pem') + '\n');
    action = 'created';
  }

  let reissue = action === 'created' || !existsSync(certFile) || !existsSync(keyFile);
  if (!reissue) {
    const leaf = new X509Certificate(readFileSync(certFile));
    const caNode = new X509Certificate(readFileSync(caFile));
    reissue = Date.parse(leaf.validTo) - Date.now() < RENEW_BEFORE_DAYS * DAY || !leaf.verify(caNode.publicKey) || names.some((n) => !covers(leaf, n));
  }
  if (reissue) {
    const keys = (await subtle.generateKey(alg, true, ['sign', 'verify'])) as CryptoKeyPair;
    const now = Date.now();
    const leaf = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${names.includes('localhost') ? 'localhost' : names[0]}, O=infergate development`,
      issuer: caCert.subject,
      notBefore: new Date(now - DAY),
      notAfter: new Date(now + LEAF_DAYS * DAY),
      signingKey: caKey,
      publicKey: keys.publicKey,
      signingAlgorithm: alg,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
        new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
        await x509.AuthorityKeyIdentifierExtension.create(caCert),
      ],
    });
    // Key first, then the certificate: a reader that finds a new certificate also finds its key.
    writePrivate(keyFile, toPem(await subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
    writePublic(certFile, leaf.toString('pem') + '\n');
    if (action === 'kept') action = 'reissued';
  }
  return { dir, caFile, certFile, keyFile, action };
}

/** How to trust the dev CA, printed by `infergate server --tls-dev`. */
export function trustHint(caFile: string): string {
  return (
    `TLS: development certificate issued by the local CA ${caFile}\n` +
    `  the infergate CLI on this machine trusts it already; elsewhere:\n` +
    `  curl --cacert ${caFile} https://...\n` +
    `  NODE_EXTRA_CA_CERTS=${caFile} node ...      INFERGATE_CA_CERT=${caFile} infergate ...   (or --cacert)\n` +
    `  system-wide (Debian/Ubuntu): cp ${caFile} /usr/local/share/ca-certificates/infergate-dev.crt && update-ca-certificates\n`
  );
}

function covers(cert: X509Certificate, name: string): boolean {
  return isIP(name) ? cert.checkIP(name) !== undefined : cert.checkHost(name) !== undefined;
}

/** A positive 128-bit serial (RFC 5280 §4.1.2.2: unique per CA, at most 20 octets). */
function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  b[0] |= 0x01;
  return b.toString('hex');
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der).toString('base64').replace(/.{64}/g, '$&\n').replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

/** Written whole with mode 0600 from the start (never readable by others, even for a moment). */
function writePrivate(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

function writePublic(file: string, text: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, text, { mode: 0o644 });
  renameSync(tmp, file);
}

// ---------------------------------------------------------------------------------------------------
// Binding

/** A literal loopback address or `localhost`: what may be served without TLS. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, '');
  if (h === 'localhost' || h === '::1' || h === '0:0:0:0:0:0:0:1') return true;
  const v4 = h.startsWith('::ffff:') ? h.slice(7) : h;
  return isIP(v4) === 4 && v4.startsWith('127.');
}

// ---------------------------------------------------------------------------------------------------
// The CLI's trust

const trusted: Buffer[] = [];
const trustedFiles = new Set<string>();
let envRead = false;
let agent: HttpsAgent | undefined;

/**
 * Trusts the CA certificate(s) in `file` for this process's https requests from `trustedFetch`, besides
 * the system's (Node's bundled roots and NODE_EXTRA_CA_CERTS). `what` names the source in errors.
 */
export function trustCaFile(file: string, what = '--cacert'): void {
  if (trustedFiles.has(file)) return;
  const pem = readUserFileSync(file, { what, limit: PEM_FILE_LIMIT });
  try {
    new X509Certificate(pem);
  } catch (e) {
    throw errorOf('CertificateNotPem', { what, file, reason: (e as Error).message });
  }
  trustedFiles.add(file);
  trusted.push(pem);
  agent?.destroy();
  agent = undefined;
}

/**
 * Trusts the CA that the server running on `workspace` named in server.json (its --tls-dev CA or
 * self-signed certificate): the CLI on the server's machine needs no --cacert. A file this user cannot
 * read is skipped (the request then fails verification with the usual message).
 */
export function trustWorkspaceCa(workspace: string): void {
  const file = readServerRecord(workspace)?.caFile;
  if (file === undefined || trustedFiles.has(file)) return;
  try {
    trustCaFile(file, 'server.json caFile');
  } catch {
    /* unreadable or not PEM: not trusted */
  }
}

/**
 * fetch(), except that https:// URLs are verified against the CAs given to trustCaFile (and
 * $INFERGATE_CA_CERT) as well as the system's. Node 20's fetch cannot take a CA, so those requests go
 * through node:https; the answer is a standard Response either way.
 */
export async function trustedFetch(url: string, init: { method: string; headers?: Record<string, string>; body?: string | Buffer | Readable | null }): Promise<Response> {
  if (!envRead) {
    envRead = true;
    const file = process.env.INFERGATE_CA_CERT;
    if (file !== undefined && file !== '') trustCaFile(file, 'INFERGATE_CA_CERT');
  }
  if (trusted.length === 0 || !url.startsWith('https:')) {
    // A stream body (uploads, api/uploads.ts) goes to fetch as a web stream, sent as it is read.
    const body = init.body instanceof Readable ? { body: Readable.toWeb(init.body), duplex: 'half' } : {};
    return fetch(url, { ...init, ...body } as RequestInit).catch((e: unknown) => Promise.reject(explainTrust(e)));
  }
  agent ??= new HttpsAgent({ keepAlive: true, ca: [...rootCertificates, ...extraFromEnv(), ...trusted] });
  const a = agent;
  return new Promise<Response>((resolve, reject) => {
    const req = httpsRequest(url, { method: init.method, headers: init.headers ?? {}, agent: a }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const headers = new Headers();
        const raw = res.rawHeaders;
        for (let i = 0; i < raw.length; i += 2) headers.append(raw[i], raw[i + 1]);
        const status = res.statusCode ?? 502;
        const noBody = status === 204 || status === 205 || status === 304 || init.method === 'HEAD';
        resolve(new Response(noBody ? null : Buffer.concat(chunks), { status, statusText: res.statusMessage ?? '', headers }));
      });
    });
    // fetch's shape of a connection failure: TypeError('fetch failed') with the system error as its cause.
    req.on('error', (e) => reject(explainTrust(Object.assign(new TypeError('fetch failed'), { cause: e }))));
    if (init.body instanceof Readable) init.body.on('error', (e) => req.destroy(e)).pipe(req);
    else req.end(init.body ?? undefined);
  });
}

const UNTRUSTED = new Set(['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'SELF_SIGNED_CERT_IN_CHAIN', 'DEPTH_ZERO_SELF_SIGNED_CERT', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY', 'UNABLE_TO_GET_ISSUER_CERT', 'CERT_UNTRUSTED', 'ERR_TLS_CERT_ALTNAME_INVALID', 'CERT_HAS_EXPIRED']);

/**
 * A fetch failure whose cause is a certificate this process does not trust gets a cause code that says
 * what to do (callers print `cause.code`), e.g. `SELF_SIGNED_CERT_IN_CHAIN (... --cacert FILE ...)`.
 */
function explainTrust(e: unknown): unknown {
  const cause = (e as { cause?: { code?: string; message?: string } }).cause;
  const code = cause?.code;
  if (code === undefined || !UNTRUSTED.has(code)) return e;
  const why = code === 'ERR_TLS_CERT_ALTNAME_INVALID' ? (cause?.message ?? 'the certificate does not name this host') : 'the server\'s certificate is not trusted here';
  return Object.assign(new TypeError('fetch failed'), { cause: { code: `${code}: ${why}; pass --cacert FILE or set INFERGATE_CA_CERT to the CA certificate (PEM) that issued it` } });
}

/** NODE_EXTRA_CA_CERTS still counts when a CA list is given explicitly (Node adds it to the default list only). */
function extraFromEnv(): Buffer[] {
  const f = process.env.NODE_EXTRA_CA_CERTS;
  if (f === undefined || f === '') return [];
  try {
    return [readFileSync(f)];
  } catch {
    return [];
  }
}
