// A Docker registry on loopback for the image push tests: Debian's docker-registry (distribution 2.8),
// storage in a temporary folder. dockerd allows plain HTTP to registries on 127.0.0.0/8 by default, so
// pushes to it need no daemon configuration.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';

/** Why the registry tests cannot run here, or false; throws under INFERGATE_REQUIRE_DOCKER=1. */
export function registrySkip(): string | false {
  if (existsSync(REGISTRY_BINARY)) return false;
  const why = `${REGISTRY_BINARY} is missing (apt-get install docker-registry; scripts/setup.sh installs it)`;
  if (process.env.INFERGATE_REQUIRE_DOCKER === '1') throw new Error(`INFERGATE_REQUIRE_DOCKER=1 but ${why}`);
  return why;
}

export class LoopbackRegistry {
  readonly dir = mkdtempSync(join(tmpdir(), 'ig-registry-'));
  /** `127.0.0.1:<port>`: what `--registry` takes. */
  address = '';
  log = '';
  private child: ChildProcess | null = null;

  async start(): Promise<string> {
    const port = await freePort();
    this.address = `127.0.0.1:${port}`;
    const config = join(this.dir, 'config.yml');
    writeFileSync(
      config,
      ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(this.dir, 'data')}`, 'http:', `  addr: ${this.address}`, ''].join('\n'),
    );
    const child = spawn(REGISTRY_BINARY, ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = child;
    child.stdout!.on('data', (c: Buffer) => (this.log += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (this.log += c.toString()));
    const end = Date.now() + 15_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`docker-registry exited ${child.exitCode}:\n${this.log}`);
      const up = await fetch(`http://${this.address}/v2/`).then((r) => r.status === 200, () => false);
      if (up) return this.address;
      if (Date.now() > end) throw new Error(`docker-registry did not answer on ${this.address}:\n${this.log}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** GET a manifest by digest or tag, as the cluster's kubelet would ask for it. */
  async manifestStatus(repository: string, reference: string): Promise<number> {
    const r = await fetch(`http://${this.address}/v2/${repository}/manifests/${reference}`, {
      headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json' },
    });
    await r.arrayBuffer();
    return r.status;
  }

  /** The blobs (layers, configs, manifests) stored: a push that sends nothing new leaves them as they are. */
  blobs(): string[] {
    const root = join(this.dir, 'data', 'docker', 'registry', 'v2', 'blobs', 'sha256');
    if (!existsSync(root)) return [];
    return readdirSync(root).flatMap((prefix) => readdirSync(join(root, prefix))).sort();
  }

  async close(): Promise<void> {
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      const exited = new Promise((r) => c.once('exit', r));
      c.kill('SIGTERM');
      await exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
