// What the router writes per request without building strings (issue 13: allocation on the hot path):
// an answer's bytes are exactly what the former string concatenation produced, and request ids are
// version 4 UUIDs as crypto.randomUUID() makes them.

import assert from 'node:assert/strict';
import { STATUS_CODES } from 'node:http';
import { test } from 'node:test';
import { serializeAnswer } from '../http1.js';
import { requestUuid } from './proxy.js';

const KEEP_ALIVE = '\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n';
const CLOSE = '\r\nconnection: close\r\n\r\n';
const bytes = (s: string): Uint8Array => Uint8Array.from(s, (c) => c.charCodeAt(0) & 0xff);

/** The answer as http1.ts built it before (a latin1 string, then the body), with its header filter. */
function reference(status: number, headers: string[], payload: Buffer, head: boolean, tail: string): string {
  const token = /^[!#$%&'*+\-.^_`|~0-9a-zA-Z]+$/;
  const value = (v: string) => [...v].every((ch) => {
    const c = ch.charCodeAt(0);
    return !((c < 0x20 && c !== 0x09) || c === 0x7f || c > 0xff);
  });
  let s = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Unknown'}\r\n`;
  for (let i = 0; i < headers.length; i += 2) if (token.test(headers[i]) && value(headers[i + 1])) s += `${headers[i]}: ${headers[i + 1]}\r\n`;
  return s + `content-length: ${payload.length}\r\ndate: DATE${tail}` + (head ? '' : payload.toString('latin1'));
}

test('serializeAnswer writes the bytes the string-built answer had: statuses, lengths, HEAD, close, unsafe headers left out', () => {
  const bodies = [Buffer.alloc(0), Buffer.from('[55, 55]'), Buffer.from('0123456789'), Buffer.alloc(12345, 0x61), Buffer.from([0xe9, 0x00, 0xff])];
  const headerSets: string[][] = [
    [],
    ['content-type', 'application/json', 'x-request-id', '0f8fad5b-d9cb-469f-a165-70867728950e', 'azureml-model-deployment', 'blue'],
    // Not a token, CR/LF (response splitting), NUL, DEL, beyond latin1, empty name: each left out alone.
    ['bad name', 'x', 'x-split', 'a\r\nset-cookie: evil=1', 'x-nul', 'a\0b', 'x-del', 'a\x7fb', 'x-wide', 'snow\u2603', '', 'empty', 'x-ok', 'tab\tand latin1 \xe9'],
    ['x-only-bad', '\n'],
  ];
  for (const status of [200, 404, 424, 503, 599, 299]) {
    for (const payload of bodies) {
      for (const headers of headerSets) {
        for (const head of [false, true]) {
          for (const tail of [KEEP_ALIVE, CLOSE]) {
            const got = serializeAnswer(status, headers, payload, head, bytes(tail)).toString('latin1').replace(/date: [^\r]*/, 'date: DATE');
            assert.equal(got, reference(status, headers, payload, head, tail), `${status} ${JSON.stringify(headers)} head=${head}`);
          }
        }
      }
    }
  }
});

test('requestUuid: version 4 UUIDs, unique, across many batches of random bytes', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 20_000; i++) {
    const u = requestUuid();
    assert.match(u, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    seen.add(u);
  }
  assert.equal(seen.size, 20_000);
});
