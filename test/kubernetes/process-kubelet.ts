// A kubelet that runs the fake API server's pods as they are rendered, on this machine: for each pod, the
// storage-initializer container's own command (python3 -c <downloader>) with its env and the token from the
// revision's Secret, then the inference-server container's command, listening on the pod's IP (a loopback
// address the fake hands out) at the rendered port. Paths under /var/infergate map into a scratch folder
// per pod; nothing else is changed. A pod whose host reports ready becomes Ready; one that exits is
// reported as a kubelet would (exit 3: init() failed). So routers reach these "pods" over TCP.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FakeApiServer, Obj } from './fake-apiserver.js';

const PYTHON = '/usr/bin/python3';

interface Running {
  pod: Obj;
  child?: ChildProcess;
  stopped: boolean;
}

export class ProcessKubelet {
  private readonly pods = new Map<string, Running>();
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly api: FakeApiServer,
    private readonly namespace: string,
    private readonly dir: string,
  ) {}

  start(): void {
    this.timer = setInterval(() => this.sync(), 20);
  }

  private sync(): void {
    const live = new Set<string>();
    for (const pod of this.api.list('Pod', this.namespace)) {
      live.add(pod.metadata.name);
      if (!this.pods.has(pod.metadata.name)) {
        const r: Running = { pod, stopped: false };
        this.pods.set(pod.metadata.name, r);
        void this.run(r).catch((e: Error) => this.api.appendLog(pod, 'storage-initializer', `kubelet: ${e.message}\n`));
      }
    }
    for (const [name, r] of this.pods) {
      if (live.has(name)) continue;
      r.stopped = true;
      r.child?.kill('SIGTERM');
      this.pods.delete(name);
    }
  }

  private async run(r: Running): Promise<void> {
    const { pod } = r;
    const root = join(this.dir, pod.metadata.name);
    const map = (v: string) => v.replaceAll('/var/infergate', join(root, 'fs')).replaceAll('/var/run/infergate', join(root, 'run'));
    const envOf = (list: { name: string; value: string }[] = []) => Object.fromEntries(list.map((e) => [e.name, map(e.value)]));
    const spec = pod.spec;
    // The Secret volume: the revision's token, as the kubelet mounts it.
    const secretName = spec.volumes.find((v: { name: string }) => v.name === 'token').secret.secretName;
    const secret = this.api.get('Secret', this.namespace, secretName);
    mkdirSync(join(root, 'run'), { recursive: true });
    writeFileSync(join(root, 'run', 'token'), Buffer.from(secret?.data?.token ?? '', 'base64'));
    for (const init of spec.initContainers ?? []) {
      const out = await new Promise<{ code: number; text: string }>((resolve) => {
        execFile(PYTHON, init.command.slice(1), { env: { ...envOf(init.env), INFERGATE_TOKEN_FILE: join(root, 'run', 'token'), PATH: process.env.PATH }, timeout: 60_000 }, (e, stdout, stderr) =>
          resolve({ code: e ? 1 : 0, text: stdout + stderr }));
      });
      this.api.appendLog(pod, init.name, out.text);
      if (out.code !== 0) {
        this.api.setPodStatus(pod.metadata.name, this.namespace, { initContainerStatuses: [{ name: init.name, ready: false, restartCount: 0, state: { terminated: { exitCode: 1, reason: 'Error', message: out.text.slice(-500) } } }] });
        return;
      }
    }
    if (r.stopped) return;
    const c = spec.containers[0];
    const ip = pod.status.podIP as string;
    const args = (c.command as string[]).slice(1).map((a) => map(a.replace(/tcp:0\.0\.0\.0:/, `tcp:${ip}:`)));
    const env = { ...envOf(c.env), INFERGATE_LISTEN: map(envOf(c.env).INFERGATE_LISTEN ?? '').replace(/tcp:0\.0\.0\.0:/, `tcp:${ip}:`), PATH: process.env.PATH! };
    const child = spawn(PYTHON, args, { cwd: map(c.workingDir), env, stdio: ['ignore', 'pipe', 'pipe'] });
    r.child = child;
    let stdout = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (/"type": ?"ready"/.test(stdout) && !r.stopped) {
        stdout = '';
        this.api.ready(this.api.get('Pod', this.namespace, pod.metadata.name) ?? pod);
      }
    });
    child.stderr.on('data', (d: Buffer) => this.api.appendLog(pod, 'inference-server', d.toString()));
    child.on('exit', (code) => {
      if (r.stopped) return;
      const current = this.api.get('Pod', this.namespace, pod.metadata.name);
      if (current) this.api.crash(current, { exitCode: code ?? 137, message: `exit code ${code}` });
    });
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    const exits: Promise<unknown>[] = [];
    for (const r of this.pods.values()) {
      r.stopped = true;
      if (r.child && r.child.exitCode === null && r.child.signalCode === null) {
        exits.push(new Promise((res) => r.child!.once('exit', res)));
        r.child.kill('SIGTERM');
      }
    }
    await Promise.all(exits);
    this.pods.clear();
  }
}
