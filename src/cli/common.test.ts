// The server's log (serverLog): pino underneath, text (today's `<time> <message>`) or JSON lines, levels.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { levelOfLine, serverLog } from './common.js';

const sink = () => {
  const lines: string[] = [];
  return { lines, out: { write: (s: string) => lines.push(s) } };
};

test('json: one pino object a line; an access record keeps its fields', () => {
  const { lines, out } = sink();
  const log = serverLog('json', 'info', out);
  log('restoring 1 endpoint(s)');
  log.logger.child({ reqId: 'r1' }).info({ access: { method: 'GET', route: '/api/endpoints/:name', status: 404, ms: 1.5, token_id: 'abc' } }, 'request');
  const [a, b] = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(a.msg, 'restoring 1 endpoint(s)');
  assert.equal(a.level, 30);
  assert.match(String(a.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  assert.deepEqual(b.access, { method: 'GET', route: '/api/endpoints/:name', status: 404, ms: 1.5, token_id: 'abc' });
  assert.equal(b.reqId, 'r1');
  assert.ok(lines.every((l) => l.endsWith('\n') && !l.slice(0, -1).includes('\n')));
});

test("text: today's `<ISO time> <message>` line; an access record as method route status ms token req", () => {
  const { lines, out } = sink();
  const log = serverLog('text', 'info', out);
  log('SIGTERM: stopping (instances too)');
  log.logger.child({ reqId: 'r1' }).info({ access: { method: 'POST', route: null, status: 401, ms: 0.4, token_id: null } }, 'request');
  assert.match(lines[0], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z SIGTERM: stopping \(instances too\)\n$/);
  assert.match(lines[1], /^\S+ POST \(no route\) 401 0\.4 ms token=- req=r1\n$/);
});

test('--log-level: lines below it are not written; warnings and failures are found by their words', () => {
  const { lines, out } = sink();
  const log = serverLog('json', 'warn', out);
  log('restoring 1 endpoint(s)');
  log('WARNING: --insecure: serving plain HTTP');
  log('request 1 GET /x: internal error: boom');
  assert.deepEqual(lines.map((l) => (JSON.parse(l) as { level: number }).level), [40, 50]);
  assert.equal(levelOfLine('SIGHUP: TLS certificate NOT reloaded, still serving the previous one'), 'error');
  assert.equal(levelOfLine('backend: process'), 'info');
});
