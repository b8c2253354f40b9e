// A kubelet for the fake API server: it runs each pod the fake's Deployment controller makes as a real
// instance on this machine (a ProcessBackend per pod, given the plan the pod's revision was rendered from)
// and reports its state back as the pod's status and its output as the pod's logs, the way a kubelet
// does. So the Kubernetes backend's contract tests (backend/contract-testing.ts) see real init() runs,
// crashes and restarts, through the real REST paths.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ProcessBackend } from '../../src/backend/process/backend.js';
import type { ObservedInstance } from '../../src/backend/types.js';
import type { InstancePlan } from '../../src/ir/types.js';
import type { FakeApiServer, Obj } from './fake-apiserver.js';

export const revisionKey = (endpoint: string, deployment: string, revision: string): string => `${endpoint}/${deployment}/${revision}`.toLowerCase();

export class FakeKubelet {
  private readonly pods = new Map<string, { backend: ProcessBackend; pod: Obj; reported: string }>();
  private timer: NodeJS.Timeout | null = null;
  private syncing = false;

  constructor(
    private readonly api: FakeApiServer,
    private readonly namespace: string,
    /** The plan each revision was rendered from (the harness records it when the backend asks for a token). */
    private readonly plans: Map<string, InstancePlan>,
    private readonly dir: string,
  ) {
    api.logSource = (_ns, pod, container) => this.logs(pod, container);
  }

  start(): void {
    this.timer = setInterval(() => void this.sync(), 15);
  }

  /** The pod's container processes (the contract's crash()): its ProcessBackend's instance. */
  backendOf(podName: string): ProcessBackend | undefined {
    return this.pods.get(podName)?.backend;
  }

  private async sync(): Promise<void> {
    if (this.syncing) return;
    this.syncing = true;
    try {
      const live = new Set<string>();
      for (const pod of this.api.list('Pod', this.namespace)) {
        const name = pod.metadata.name;
        live.add(name);
        let p = this.pods.get(name);
        if (!p) {
          const l = pod.metadata.labels ?? {};
          const plan = this.plans.get(revisionKey(l['infergate.io/endpoint'] ?? '', l['infergate.io/deployment'] ?? '', l['infergate.io/revision'] ?? ''));
          if (!plan) continue;
          const workspace = join(this.dir, name);
          mkdirSync(workspace, { recursive: true });
          p = { backend: new ProcessBackend({ workspace }), pod, reported: '' };
          this.pods.set(name, p);
          await p.backend.start(name, { ...plan, instanceCount: 1 }, 0);
        }
        this.report(name, p);
      }
      for (const [name, p] of this.pods) {
        if (live.has(name)) continue;
        this.pods.delete(name);
        await p.backend.close();
      }
    } finally {
      this.syncing = false;
    }
  }

  /** The pod's status as a kubelet would report its one instance's state. */
  private report(name: string, p: { backend: ProcessBackend; pod: Obj; reported: string }): void {
    const o: ObservedInstance | undefined = p.backend.observe()[0];
    if (!o) return;
    const key = `${o.state}/${o.restarts}/${o.error?.code ?? ''}`;
    if (key === p.reported) return;
    p.reported = key;
    const init = { name: 'storage-initializer', ready: true, restartCount: 0, state: { terminated: { exitCode: 0, reason: 'Completed' } } };
    let main: Record<string, unknown>;
    if (o.state === 'ready') main = { name: 'inference-server', ready: true, restartCount: o.restarts, state: { running: {} } };
    else if (o.state === 'failed' && o.error?.code === 'UserScriptInitFailed') {
      main = { name: 'inference-server', ready: false, restartCount: 0, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 3, reason: 'Error', message: o.error.message } } };
    } else if (o.state === 'restarting' || o.state === 'failed') {
      main = { name: 'inference-server', ready: false, restartCount: o.restarts, state: { waiting: { reason: 'CrashLoopBackOff' } }, lastState: { terminated: { exitCode: 1, reason: 'Error', message: o.error?.message ?? '' } } };
    } else main = { name: 'inference-server', ready: false, restartCount: o.restarts, state: { running: {} } };
    try {
      this.api.setPodStatus(name, this.namespace, {
        phase: 'Running',
        podIP: '127.0.0.1',
        conditions: [{ type: 'Ready', status: o.state === 'ready' ? 'True' : 'False' }],
        initContainerStatuses: [init],
        containerStatuses: [main],
      });
    } catch {
      // deleted meanwhile
    }
  }

  private async logs(podName: string, container: string): Promise<string> {
    const p = this.pods.get(podName);
    if (!p) return '';
    const l = p.pod.metadata.labels ?? {};
    return p.backend.logs(l['infergate.io/endpoint'] ?? '', l['infergate.io/deployment'] ?? '', container as 'inference-server', 100_000);
  }

  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    while (this.syncing) await new Promise((r) => setTimeout(r, 5));
    for (const p of this.pods.values()) await p.backend.close();
    this.pods.clear();
  }
}
