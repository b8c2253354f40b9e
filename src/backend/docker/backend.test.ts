// The docker backend against a fake engine (no Docker needed): the test plays the container, doing to
// its mounted socket folder what a hostile scoring script could, and the engine that stops answering.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, renameSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, test } from 'node:test';
import type Docker from 'dockerode';
import type { InstancePlan } from '../../ir/types.js';
import { HOST_MESSAGE_PREFIX } from '../../protocol/messages.js';
import { DockerBackend } from './backend.js';

const root = mkdtempSync(join(tmpdir(), 'infergate-docker-fake-'));
const servers: Server[] = [];
after(() => {
  for (const s of servers) s.close();
  rmSync(root, { recursive: true, force: true });
});

async function until<T>(what: string, fn: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function listen(path: string, onConnection: () => void = () => {}): Promise<Server> {
  const s = createServer((c) => {
    onConnection();
    c.destroy();
  });
  servers.push(s);
  return new Promise((resolve) => s.listen(path, () => resolve(s)));
}

function connects(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path, () => {
      c.destroy();
      resolve(true);
    });
    c.on('error', () => resolve(false));
  });
}

/** An engine whose one container is the test: `spec` is what the backend asked for, `stdout` its output. */
function fakeEngine(opts: { imageInspect?: () => Promise<unknown> } = {}) {
  const state = { spec: undefined as Docker.ContainerCreateOptions | undefined, stdout: new PassThrough(), exited: null as null | ((code: number) => void) };
  const exit = new Promise<{ StatusCode: number }>((resolve) => (state.exited = (code) => resolve({ StatusCode: code })));
  const container = {
    id: 'c'.repeat(64),
    started: false,
    start: async () => {
      container.started = true;
    },
    logs: async () => state.stdout,
    wait: () => exit,
    inspect: async () => ({ State: { OOMKilled: false }, Config: { Image: 'img' }, NetworkSettings: { Ports: {} } }),
    stop: async () => state.exited!(143),
    kill: async () => state.exited!(137),
    remove: async () => {
      if (!container.started) return; // the backend's removal of a leftover of the same name
      state.exited!(137);
      state.stdout.end();
    },
  };
  const docker = {
    getImage: () => ({ inspect: opts.imageInspect ?? (async () => ({ Id: 'sha256:' + 'a'.repeat(64) })) }),
    getContainer: () => container,
    createContainer: async (spec: Docker.ContainerCreateOptions) => {
      state.spec = spec;
      return container;
    },
    listContainers: async () => [],
    modem: { demuxStream: (stream: NodeJS.ReadableStream, out: NodeJS.WritableStream) => stream.pipe(out) },
  };
  return { docker: docker as unknown as Docker, state };
}

function plan(code: string): InstancePlan {
  const probe = { initialDelay: 0, period: 10, timeout: 2, successThreshold: 1, failureThreshold: 30 };
  return {
    endpoint: 'ep',
    deployment: 'blue',
    revision: 'r1',
    instanceType: 'Standard_DS1_v2',
    resources: { from: 'test' },
    egress: false,
    instanceCount: 1,
    runtime: 'python',
    code: { path: code, scoringScript: 'score.py' },
    environment: { image: 'img' },
    environmentVariables: {},
    workerCount: 1,
    requestTimeoutMs: 5000,
    livenessProbe: probe,
    readinessProbe: probe,
  } as InstancePlan;
}

function setup(name: string) {
  const dir = join(root, name);
  const code = join(dir, 'code');
  mkdirSync(code, { recursive: true });
  writeFileSync(join(code, 'score.py'), 'def init():\n    pass\n\ndef run(raw):\n    return raw\n');
  const workspace = join(dir, 'ws');
  mkdirSync(workspace, { recursive: true });
  return { dir, code, workspace };
}

/** The container's side of its socket folder: what the backend bind-mounts at /var/infergate/socket. */
function mounted(spec: Docker.ContainerCreateOptions): string {
  const bind = spec.HostConfig!.Binds!.find((b) => b.endsWith(':/var/infergate/socket'))!;
  return bind.slice(0, bind.lastIndexOf(':'));
}

test('a container that swaps its host.sock for a symlink after it is ready moves no connection of the server elsewhere', { timeout: 30_000 }, async () => {
  const { dir, code, workspace } = setup('swap-after');
  const { docker, state } = fakeEngine();
  const backend = new DockerBackend({ workspace, docker, engine: 'fake', log: (l) => process.env.DEBUG_FAKE && console.error(l) });
  try {
    let stolen = 0;
    const elsewhere = join(dir, 'elsewhere.sock'); // a socket of this machine the container must not lead the server to
    await listen(elsewhere, () => stolen++);
    await backend.start('d1', plan(code), 0);
    const spec = await until('the container to be created', () => state.spec);
    const side = mounted(spec);
    let served = 0;
    await listen(join(side, 'host.sock'), () => served++);
    state.stdout.write(`${HOST_MESSAGE_PREFIX}${JSON.stringify({ type: 'ready', pid: 7 })}\n`);
    const ready = await until('ready', () => backend.observe().find((o) => o.state === 'ready'));
    assert.equal(ready.address?.transport, 'framed');
    const socketPath = (ready.address as { socketPath: string }).socketPath;
    assert.ok(!socketPath.startsWith(side + '/'), `the router's path ${socketPath} is not in the container's folder ${side}`);
    // The container replaces its socket with a symlink (atomically, as a script would).
    symlinkSync(elsewhere, join(side, 'evil'));
    renameSync(join(side, 'evil'), join(side, 'host.sock'));
    assert.equal(await connects(socketPath), true);
    assert.equal(stolen, 0, 'the connection reached the socket the container pointed at');
    assert.ok(served >= 1, "the connection reached the host's own socket"); // and the probes' too
  } finally {
    await backend.close();
  }
});

test('a container whose host.sock is a symlink when it says it is ready fails, with no address', { timeout: 30_000 }, async () => {
  const { dir, code, workspace } = setup('swap-before');
  const { docker, state } = fakeEngine();
  const backend = new DockerBackend({ workspace, docker, engine: 'fake', log: (l) => process.env.DEBUG_FAKE && console.error(l) });
  try {
    let stolen = 0;
    const elsewhere = join(dir, 'elsewhere.sock');
    await listen(elsewhere, () => stolen++);
    await backend.start('d1', plan(code), 0);
    const side = mounted(await until('the container to be created', () => state.spec));
    symlinkSync(elsewhere, join(side, 'host.sock'));
    state.stdout.write(`${HOST_MESSAGE_PREFIX}${JSON.stringify({ type: 'ready', pid: 7 })}\n`);
    const o = await until('the instance to fail', () => backend.observe().find((x) => x.state === 'failed' || x.state === 'ready'));
    assert.equal(o.state, 'failed');
    assert.equal(o.address, undefined);
    assert.match(o.error!.message, /host\.sock is not a socket/);
    assert.equal(stolen, 0);
  } finally {
    await backend.close();
  }
});

test('the console log socket is listened on and chmodded in the server\'s folder, and only linked into the container\'s', { timeout: 30_000 }, async () => {
  const { code, workspace } = setup('log-sock');
  const { docker, state } = fakeEngine();
  const backend = new DockerBackend({ workspace, docker, engine: 'fake', log: (l) => process.env.DEBUG_FAKE && console.error(l) });
  try {
    await backend.start('d1', plan(code), 0);
    const side = mounted(await until('the container to be created', () => state.spec));
    // As the container: its line reaches the console log through the linked socket.
    await until('a log line through log.sock', async () => {
      const ok = await new Promise<boolean>((resolve) => {
        const c = createConnection(join(side, 'log.sock'), () => c.end('2026-01-01 00:00:00,000 I [1] test - hello from the container\n', () => resolve(true)));
        c.on('error', () => resolve(false));
      });
      return ok && (await backend.logs('ep', 'blue', 'inference-server', 50)).includes('hello from the container');
    });
  } finally {
    await backend.close();
  }
});

test('a stop while the engine does not answer an image lookup returns at once, without waiting for it', { timeout: 30_000 }, async () => {
  const { code, workspace } = setup('hung-engine');
  let asked!: () => void;
  const lookup = new Promise<void>((resolve) => (asked = resolve));
  const { docker } = fakeEngine({
    imageInspect: () => {
      asked();
      return new Promise(() => {}); // an engine that accepted the call and never answers (a build, a pull)
    },
  });
  const backend = new DockerBackend({ workspace, docker, engine: 'fake', log: (l) => process.env.DEBUG_FAKE && console.error(l) });
  await backend.start('d1', plan(code), 0);
  await lookup;
  const t0 = Date.now();
  await backend.stop('d1');
  assert.ok(Date.now() - t0 < 2000, `stop took ${Date.now() - t0} ms`);
  assert.deepEqual(backend.observe(), []);
  await backend.close();
});
