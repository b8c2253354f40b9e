// HostStdout: the host's message line taken out of its stdout, the rest passed on as console log.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { HOST_MESSAGE_PREFIX } from '../protocol/messages.js';
import { HostStdout } from './host-stdout.js';

function collect(): { lines: HostStdout; messages: unknown[]; log: () => string } {
  const messages: unknown[] = [];
  const chunks: Buffer[] = [];
  const lines = new HostStdout((m) => messages.push(m), (c) => chunks.push(c));
  return { lines, messages, log: () => Buffer.concat(chunks).toString() };
}

test('the first message line is taken out, in pieces as it comes; lines before and after are log', () => {
  const { lines, messages, log } = collect();
  const msg = `${HOST_MESSAGE_PREFIX}${JSON.stringify({ type: 'ready', pid: 7 })}\n`;
  lines.write(Buffer.from('loading model\n' + msg.slice(0, 10)));
  lines.write(Buffer.from(msg.slice(10) + 'after'));
  lines.write(Buffer.from(` the message\n${msg}`));
  assert.deepEqual(messages, [{ type: 'ready', pid: 7 }]);
  assert.equal(log(), `loading model\nafter the message\n${msg}`);
});

test('a prefixed line that is not JSON is log; an unfinished last line comes out at the end', () => {
  const { lines, messages, log } = collect();
  lines.write(Buffer.from(`${HOST_MESSAGE_PREFIX}{not json\nno newline`));
  assert.deepEqual(messages, []);
  lines.end();
  assert.equal(log(), `${HOST_MESSAGE_PREFIX}{not json\nno newline\n`);
});

test('before the message, output without newlines is passed on rather than held without bound', () => {
  const { lines, log } = collect();
  lines.write(Buffer.from('x'.repeat(70 * 1024)));
  assert.equal(log().length, 70 * 1024);
});
