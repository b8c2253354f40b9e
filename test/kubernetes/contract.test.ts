// The Backend contract suite (src/backend/contract-testing.ts) run against the Kubernetes backend: the fake
// API server plays the cluster and FakeKubelet runs each pod as a real instance on this machine, so the
// suite's scripts really init(), crash and restart, and what the backend sees goes through the REST paths
// a cluster serves (server-side apply, list + watch of pods, pods/log).

import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { backendContract } from '../../src/backend/contract-testing.js';
import { KubernetesBackend } from '../../src/backend/kubernetes/backend.js';
import type { InstancePlan } from '../../src/ir/types.js';
import { FakeApiServer } from './fake-apiserver.js';
import { FakeKubelet, revisionKey } from './kubelet.js';

const NS = 'contract';

backendContract('KubernetesBackend (fake API server, pods run by a fake kubelet)', {
  skip: [
    {
      test: 'close stops every instance; start after close and a second close do nothing',
      reason: 'on a cluster, pods outlive the control plane: close() only stops watching, and a restarted control plane adopts them (docs/kubernetes.md)',
    },
  ],
  async create(root) {
    const api = new FakeApiServer();
    await api.start();
    const plans = new Map<string, InstancePlan>();
    const kubelet = new FakeKubelet(api, NS, plans, join(root, 'kubelet'));
    kubelet.start();
    const backend = new KubernetesBackend({
      compute: 'contract',
      kubeconfig: api.kubeconfig(NS),
      workspace: 'contract0000000',
      controlUrl: 'http://control.example:8470',
      defaultImage: 'infergate-python:bookworm',
      assetToken: (plan) => {
        plans.set(revisionKey(plan.endpoint, plan.deployment, plan.revision), plan);
        return 'token';
      },
    });
    const foreignNames: string[] = [];
    return {
      backend,
      // What a container crash is: the pod's process killed; the kubelet restarts it and counts it.
      async crash(_instance, pid) {
        process.kill(pid, 'SIGKILL');
      },
      // A Deployment in the namespace with none of infergate's labels, applied by another field manager.
      async foreign() {
        const name = `foreign-${randomBytes(3).toString('hex')}`;
        foreignNames.push(name);
        const body = { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name, namespace: NS }, spec: { replicas: 0, selector: { matchLabels: { app: name } }, template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: 'x', image: 'x' }] } } } };
        await fetch(`${api.url}/apis/apps/v1/namespaces/${NS}/deployments/${name}?fieldManager=kubectl`, { method: 'PATCH', headers: { 'content-type': 'application/apply-patch+yaml' }, body: JSON.stringify(body) });
        return {
          alive: async () => api.get('Deployment', NS, name) !== undefined,
          remove: async () => void (await fetch(`${api.url}/apis/apps/v1/namespaces/${NS}/deployments/${name}`, { method: 'DELETE' })),
        };
      },
      running: async (pid) => {
        try {
          process.kill(pid, 0);
          return true;
        } catch {
          return false;
        }
      },
      async cleanup() {
        await kubelet.close();
        await api.close();
      },
    };
  },
});
