// probeOnce (probe.ts) against an instance host that answers the probe BUSY (instance admission,
// docs/router-scale.md): a 10-byte frame with no status in it counts as a failed probe; reading a status
// from it would throw out of the socket's data handler, in the server process.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { BUSY_FULL, encodeBusy, encodeResponseHead, FRAME_REQUEST, FrameReader } from '../../protocol/frame.js';
import { probeOnce } from './probe.js';

async function hostAnswering(answer: (id: number) => Buffer, body: (socketPath: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'ig-probe-'));
  const socketPath = join(dir, 'host.sock');
  const server = createServer((s) => {
    const reader = new FrameReader((_frame, type, id) => {
      if (type === FRAME_REQUEST) s.write(answer(id));
    });
    s.on('data', (c: Buffer) => reader.push(c));
    s.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(socketPath, r));
  try {
    await body(socketPath);
  } finally {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a probe answered BUSY fails; one answered 200 passes', async () => {
  await hostAnswering(
    (id) => encodeBusy(id, BUSY_FULL),
    async (socketPath) => assert.equal(await probeOnce(socketPath, 5000), false),
  );
  await hostAnswering(
    (id) => Buffer.concat([encodeResponseHead(id, 200, [], 7), Buffer.from('Healthy')]),
    async (socketPath) => assert.equal(await probeOnce(socketPath, 5000), true),
  );
});
