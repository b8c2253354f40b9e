// The Backend contract suite (contract-testing.ts) run against the backends of this machine: host
// processes, and containers when a Docker Engine and the base image are here.

import { execFile, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import assert from 'node:assert/strict';
import { after } from 'node:test';
import { backendContract } from './contract-testing.js';
import { ProcessBackend } from './process/backend.js';
import { DockerBackend, findDockerEngine } from './docker/backend.js';

/** Whether a process of this machine exists (EPERM: it does, under another uid). */
function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

backendContract('ProcessBackend', {
  create(root) {
    const backend = new ProcessBackend({ workspace: join(root, 'workspace') });
    return {
      backend,
      // The script runs in the instance host itself (JavaScript): SIGKILL is a crash the host cannot catch.
      async crash(_instance, pid) {
        process.kill(pid, 'SIGKILL');
      },
      // Another Node process of this user that no backend started, as a second program on the machine.
      async foreign() {
        const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
        await once(child, 'spawn');
        return {
          alive: async () => child.exitCode === null && child.signalCode === null && isAlive(child.pid!),
          remove: async () => {
            if (child.exitCode !== null || child.signalCode !== null) return;
            child.kill('SIGKILL');
            await once(child, 'exit');
          },
        };
      },
      running: async (pid) => isAlive(pid),
      async cleanup() {},
    };
  },
});

// The docker backend runs the same JavaScript modules in containers. Azure's images (and the local base
// image, infergate-python:bookworm) have no Node, so the suite runs on that image with this machine's
// `node` binary added (this machine is Debian bookworm too; the base image has its libstdc++). No engine
// or no base image: the suite skips, saying why, unless INFERGATE_REQUIRE_DOCKER=1 (CI), where it fails.
const BASE_IMAGE = 'infergate-python:bookworm';
const engine = await findDockerEngine();
const dockerUnavailable = await (async (): Promise<string | false> => {
  let reason: string | false = false;
  if (!engine.docker) reason = `no Docker Engine answers at ${engine.where}: ${engine.reason}`;
  else if (!(await engine.docker.getImage(BASE_IMAGE).inspect().then(() => true, () => false))) reason = `the image ${BASE_IMAGE} is missing (scripts/setup.sh builds it)`;
  if (reason && process.env.INFERGATE_REQUIRE_DOCKER === '1') throw new Error(`INFERGATE_REQUIRE_DOCKER=1 but ${reason}`);
  return reason;
})();
const NODE_IMAGE = `infergate-contract-node:${randomBytes(4).toString('hex')}`;
let nodeImage: Promise<void> | undefined;
/** Builds NODE_IMAGE once: BASE_IMAGE + this machine's node binary. */
function buildNodeImage(): Promise<void> {
  nodeImage ??= (async () => {
    const context = mkdtempSync(join(tmpdir(), 'infergate-contract-image-'));
    try {
      const { copyFileSync } = await import('node:fs');
      copyFileSync(process.execPath, join(context, 'node'));
      writeFileSync(join(context, 'Dockerfile'), `FROM ${BASE_IMAGE}\nCOPY node /usr/local/bin/node\n`);
      await promisify(execFile)('docker', ['build', '-q', '-t', NODE_IMAGE, context]);
    } finally {
      rmSync(context, { recursive: true, force: true });
    }
  })();
  return nodeImage;
}
after(async () => {
  if (nodeImage && engine.docker) await engine.docker.getImage(NODE_IMAGE).remove({ force: true }).catch(() => {});
});

backendContract('DockerBackend', {
  unavailable: dockerUnavailable,
  async create(root) {
    const docker = engine.docker!;
    await buildNodeImage();
    const workspace = join(root, 'workspace');
    mkdirSync(workspace, { recursive: true });
    const backend = new DockerBackend({ workspace, docker, engine: engine.where, defaultImage: NODE_IMAGE });
    // The backend's workspace label (sha256 of the workspace path): what tells its containers from others.
    const label = `io.infergate.workspace=${createHash('sha256').update(workspace).digest('hex').slice(0, 16)}`;
    const ours = (all = false) => docker.listContainers({ all, filters: { label: [label] } });
    const foreignNames: string[] = [];
    return {
      backend,
      // `docker kill` of the instance's container, as the kernel or an operator would: no stop, no grace.
      async crash(instance) {
        const [c] = (await ours()).filter((x) => x.Labels['io.infergate.instance'] === instance.id);
        assert.ok(c, `a container runs for ${instance.id}`);
        await docker.getContainer(c.Id).kill({ signal: 'SIGKILL' });
      },
      // A container of the same image the backend did not make: no labels, a name of its own.
      async foreign() {
        const name = `infergate-contract-foreign-${randomBytes(4).toString('hex')}`;
        foreignNames.push(name);
        const c = await docker.createContainer({ name, Image: BASE_IMAGE, Cmd: ['sleep', '600'], HostConfig: { NetworkMode: 'none', AutoRemove: false } });
        await c.start();
        return {
          alive: async () => (await c.inspect().catch(() => null))?.State.Running === true,
          remove: async () => void (await c.remove({ force: true }).catch(() => {})),
        };
      },
      // A pid from inside a container means nothing outside it: the script's process runs while a
      // container of this backend's workspace does (one per instance, the script in it).
      running: async () => (await ours()).length > 0,
      async cleanup() {
        for (const c of await ours(true)) await docker.getContainer(c.Id).remove({ force: true }).catch(() => {});
        for (const n of foreignNames) await docker.getContainer(n).remove({ force: true }).catch(() => {});
      },
    };
  },
});
