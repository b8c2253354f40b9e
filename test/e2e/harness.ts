// Drives infergate as a user does: the real `infergate` command (bin/infergate.js → dist/), a real server
// process on loopback ports chosen by the OS, a throw-away workspace per test file.

import assert from 'node:assert/strict';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const BIN = join(ROOT, 'bin', 'infergate.js');
export const EXAMPLES = join(ROOT, 'examples', 'azureml');
export const FIXTURES = join(ROOT, 'test', 'fixtures');
export const SAMPLE_ANSWER = '[11055.977245525679, 4503.079536107787]';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export class Workspace {
  readonly dir: string;
  server: ChildProcess | null = null;
  serverLog = '';
  /** The running server's stdout so far. */
  serverOut = '';

  /**
   * `backend`: where the servers this workspace starts run instances (INFERGATE_BACKEND, which
   * `--backend` defaults to; `--local` servers inherit it). The suites written for the process backend
   * keep it whether or not a Docker Engine runs on the machine; the docker suites ask for docker.
   */
  constructor(readonly backend: 'process' | 'docker' = 'process') {
    this.dir = mkdtempSync(join(tmpdir(), 'infergate-e2e-'));
  }

  get env(): NodeJS.ProcessEnv {
    // A config of its own (infergate login writes there), so a login on the machine running the tests
    // cannot redirect the CLI; and no token or URL from the caller's environment.
    const env: NodeJS.ProcessEnv = { ...process.env, INFERGATE_HOME: this.dir, INFERGATE_CONFIG: join(this.dir, 'cli-config.json'), INFERGATE_BACKEND: this.backend };
    delete env.INFERGATE_URL;
    delete env.INFERGATE_TOKEN;
    return env;
  }

  /** The local owner token the server created (<workspace>/owner.token), for requests made without the CLI. */
  get ownerToken(): string {
    return readFileSync(join(this.dir, 'owner.token'), 'utf8').trim();
  }

  /** `Authorization: Bearer <owner token>`, for control-plane requests made without the CLI. */
  get ownerAuth(): { authorization: string } {
    return { authorization: `Bearer ${this.ownerToken}` };
  }

  /**
   * The sum of a Prometheus metric's samples whose labels include `labels` (GET /metrics as the owner):
   * what tests wait on instead of a fixed sleep when the server's work is asynchronous.
   */
  async metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const { url } = JSON.parse(readFileSync(join(this.dir, 'server.json'), 'utf8')) as { url: string };
    const text = await (await fetch(`${url}/metrics`, { headers: this.ownerAuth })).text();
    let sum = 0;
    for (const line of text.split('\n')) {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (m === null || m[1] !== name) continue;
      if (Object.entries(labels).every(([k, v]) => (m[2] ?? '').includes(`${k}="${v}"`))) sum += Number(m[3]);
    }
    return sum;
  }

  /** Copies a folder of files (YAML, scripts, models) into the workspace's scratch area and returns the copy. */
  scratch(from: string, name: string): string {
    const to = join(this.dir, 'scratch', name);
    cpSync(from, to, { recursive: true });
    return to;
  }

  /**
   * Endpoint `name` (key auth) with deployment blue taking all traffic: test/fixtures/js-dataplane's
   * score.mjs (copied to <workspace>/scratch/js-dataplane), one instance, `requestSettings` as YAML flow
   * mapping. Returns its primary key and scoring URI.
   */
  async jsEndpoint(name: string, requestSettings: string): Promise<{ key: string; uri: string }> {
    const dir = this.scratch(join(FIXTURES, 'js-dataplane'), 'js-dataplane');
    await this.ok(['online-endpoint', 'create', '-n', name]);
    const file = join(dir, `${name}-blue.yml`);
    writeFileSync(file, `name: blue\nendpoint_name: ${name}\ncode_configuration: {code: ./, scoring_script: score.mjs}\ninstance_type: Standard_DS3_v2\ninstance_count: 1\nrequest_settings: ${requestSettings}\n`);
    await this.ok(['online-deployment', 'create', '-f', file, '--all-traffic']);
    return {
      key: (await this.ok(['online-endpoint', 'get-credentials', '-n', name, '-o', 'tsv', '--query', 'primaryKey'])).trim(),
      uri: (await this.ok(['online-endpoint', 'show', '-n', name, '-o', 'tsv', '--query', 'scoring_uri'])).trim(),
    };
  }

  /** `nodeArgs`: options for the server's Node (e.g. --trace-gc-nvp, whose lines then collect in serverOut). */
  async startServer(extraArgs: string[] = [], nodeArgs: string[] = []): Promise<{ url: string; routerUrl: string }> {
    const child = spawn(process.execPath, [...nodeArgs, BIN, 'server', '--port', '0', '--router-port', '0', ...extraArgs], { env: this.env, stdio: ['ignore', 'pipe', 'pipe'] });
    this.server = child;
    child.stderr!.on('data', (c: Buffer) => (this.serverLog += c.toString()));
    this.serverOut = '';
    let started = false;
    await new Promise<void>((resolveStart, reject) => {
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.serverOut}\n${this.serverLog}`)), 20_000);
      child.stdout!.on('data', (c: Buffer) => {
        this.serverOut += c.toString();
        if (!started && this.serverOut.includes('router:')) {
          started = true;
          clearTimeout(timer);
          resolveStart();
        }
      });
      child.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${this.serverOut}\n${this.serverLog}`)));
    });
    const rec = JSON.parse(readFileSync(join(this.dir, 'server.json'), 'utf8')) as { url: string; routerUrl: string };
    return rec;
  }

  async stopServer(): Promise<number | null> {
    const child = this.server;
    if (!child || child.exitCode !== null) return child?.exitCode ?? null;
    const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
    child.kill('SIGTERM');
    const code = await exited;
    this.server = null;
    return code;
  }

  cli(args: string[], opts: { env?: NodeJS.ProcessEnv } = {}): Promise<CliResult> {
    return run(process.execPath, [BIN, ...args], { ...this.env, ...opts.env });
  }

  /** Runs the CLI and fails the test unless it exits 0; returns its stdout. */
  async ok(args: string[]): Promise<string> {
    const r = await this.cli(args);
    assert.equal(r.code, 0, `infergate ${args.join(' ')}\n${r.stderr}`);
    return r.stdout;
  }

  async dispose(): Promise<void> {
    await this.stopServer();
    // A --local command starts a background server of its own on <home>/local.
    try {
      const local = JSON.parse(readFileSync(join(this.dir, 'local', 'server.json'), 'utf8')) as { pid: number };
      process.kill(local.pid, 'SIGTERM');
      await until('the local server to stop', async () => !alive(local.pid), 10_000);
    } catch {
      /* none was started */
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<CliResult> {
  return new Promise((resolveRun) => {
    execFile(cmd, args, { env, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : 1) : 0;
      resolveRun({ code, stdout, stderr });
    });
  });
}

/** The real curl, as the walkthrough does. Returns status and body. */
export async function curl(url: string, headers: Record<string, string>, dataFile: string): Promise<{ status: number; body: string }> {
  const args = ['-sS', '-X', 'POST', url, '-w', '\n%{http_code}', '--data', `@${dataFile}`];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}: ${v}`);
  const r = await run('curl', args);
  const i = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(i + 1)), body: r.stdout.slice(0, i) };
}

export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000, everyMs = 50): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/**
 * Waits until `check` holds or `timeoutMs` is up, and says which: for a state the test then asserts
 * with its own message (a count of refused connections, say), where until()'s timeout would hide it.
 */
export async function settle(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 20): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Child pids of a process (Linux /proc), for checking instances are gone. */
export function childPids(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
