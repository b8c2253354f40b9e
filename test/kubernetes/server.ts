// An infergate server (and its CLI) from this tree's source, in a scratch home, for the Kubernetes tests
// that drive the CLI against the fake API server.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'test', 'kubernetes', 'cli.ts');

export interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

export class Infergate {
  readonly home = mkdtempSync(join(tmpdir(), 'ig-k8s-'));
  log = '';
  private server: ChildProcess | null = null;

  constructor(private readonly extraEnv: NodeJS.ProcessEnv = {}) {}

  env(): NodeJS.ProcessEnv {
    const e: NodeJS.ProcessEnv = { ...process.env, INFERGATE_HOME: this.home, INFERGATE_CONFIG: join(this.home, 'cli-config.json'), INFERGATE_BACKEND: 'process', ...this.extraEnv };
    delete e.INFERGATE_URL;
    delete e.INFERGATE_TOKEN;
    return e;
  }

  /** Starts `infergate server`; resolves with its control-plane URL. */
  async start(): Promise<string> {
    const server = spawn(process.execPath, ['--import', 'tsx', CLI, 'server', '--port', '0', '--router-port', '0'], { env: this.env(), stdio: ['ignore', 'pipe', 'pipe'] });
    this.server = server;
    server.stderr!.on('data', (c: Buffer) => (this.log += c.toString()));
    let out = '';
    await new Promise<void>((res, rej) => {
      const timer = setTimeout(() => rej(new Error(`server did not start:\n${out}\n${this.log}`)), 60_000);
      server.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        if (out.includes('router:')) {
          clearTimeout(timer);
          res();
        }
      });
      server.once('exit', (code) => rej(new Error(`server exited ${code}\n${out}\n${this.log}`)));
    });
    return /control plane: (\S+)/.exec(out)![1];
  }

  cli(args: string[]): Promise<Result> {
    return new Promise((r) => {
      execFile(process.execPath, ['--import', 'tsx', CLI, ...args], { env: this.env(), maxBuffer: 16 << 20 }, (err, stdout, stderr) => r({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }));
    });
  }

  /** Runs the CLI and fails unless it exits 0; its stdout. */
  async ok(args: string[]): Promise<string> {
    const r = await this.cli(args);
    assert.equal(r.code, 0, `infergate ${args.join(' ')}\n${r.stderr}\n--- server log ---\n${this.log.slice(-3000)}`);
    return r.stdout;
  }

  async close(): Promise<void> {
    const s = this.server;
    if (s && s.exitCode === null && s.signalCode === null) {
      const exited = new Promise((r) => s.once('exit', r));
      s.kill('SIGTERM');
      await exited;
    }
    rmSync(this.home, { recursive: true, force: true });
  }
}

/**
 * Azure's kubernetes-*-deployment.yml in `dir` (a copy) without their `conda_file`: a conda file makes the
 * environment one infergate builds and pushes to the compute's registry (registry.test.ts covers that
 * against a real registry); these suites are about the rest, so their pods run the image as written.
 */
export function imageOnlyEnvironments(dir: string): void {
  for (const name of readdirSync(dir).filter((n) => /^kubernetes-.*-deployment\.yml$/.test(n))) {
    const file = join(dir, name);
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^\s+conda_file:.*\n/m, ''));
  }
}
