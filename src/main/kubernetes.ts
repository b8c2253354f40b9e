// Wiring of Kubernetes computes (issue 17): the one place that knows the store, the compile step, the
// Kubernetes backend and the asset token issuer together (main/ wires concrete implementations).
//
// - withComputes(): the backend the reconciler uses: instances of endpoints that name an attached compute
//   go to that cluster (one KubernetesBackend per compute, made when first needed), the rest to `local`;
//   plus the compute check and token issuer the API takes (buildApi's checkCompute, instanceAssetTokens).
// - renderDryRun(): what `online-deployment create --dry-run` prints: the objects apply would send.

import { InstanceAssetTokens } from '../api/instance-assets.js';
import type { ComputeCheck } from '../api/computes.js';
import { DEFAULT_KUBERNETES_IMAGE, DispatchBackend, renderDeployment, renderRoot, workspaceLabel, type Backend, type KubeObject } from '../backend/index.js';
import { compileInstancePlan } from '../compile/index.js';
import { errorOf } from '../errors/index.js';
import type { DeploymentSpec } from '../spec/types.js';
import type { StateStore, StoredCompute } from '../store/types.js';

export interface ComputeWiringOptions {
  local: Backend;
  store: StateStore;
  /** The workspace's name (the basename of its folder, as /api/info reports it). */
  workspaceName: string;
  /** The control plane's URL as pods reach it (INFERGATE_CONTROL_URL; default the API's own URL). */
  controlUrl: () => string;
  /** Pods' image when the environment names none (INFERGATE_KUBERNETES_IMAGE). */
  defaultImage?: string;
  /** How long attach and create wait for a cluster's API server (default 3 s). */
  probeTimeoutMs?: number;
  log?: (line: string) => void;
}

export interface ComputeWiring {
  backend: DispatchBackend;
  checkCompute: (c: Pick<StoredCompute, 'name' | 'kubeconfig' | 'context' | 'namespace'>) => Promise<ComputeCheck>;
  instanceAssetTokens: InstanceAssetTokens;
}

/** The Kubernetes backend module, loaded on first use (its client takes about a second to import). */
const kubernetes = () => import('../backend/kubernetes/backend.js');

export function withComputes(o: ComputeWiringOptions): ComputeWiring {
  const tokens = new InstanceAssetTokens();
  const image = o.defaultImage ?? process.env.INFERGATE_KUBERNETES_IMAGE ?? DEFAULT_KUBERNETES_IMAGE;
  const backend = new DispatchBackend({
    local: o.local,
    computeOf: (endpoint) => o.store.getEndpoint(endpoint)?.spec.compute,
    versionOf: (name) => {
      const c = o.store.getCompute(name);
      return c && JSON.stringify([c.createdAt, c.kubeconfig, c.context, c.namespace, c.registry]);
    },
    backendFor: async (name) => {
      const c = o.store.getCompute(name);
      if (!c) throw errorOf('ComputeNotFound', { compute: name, attached: o.store.listComputes().map((x) => x.name).join(', ') || 'none' });
      const { KubernetesBackend } = await kubernetes();
      return new KubernetesBackend({
        compute: c.name,
        kubeconfig: c.kubeconfig,
        ...(c.context !== undefined ? { context: c.context } : {}),
        namespace: c.namespace,
        ...(c.registry !== undefined ? { registry: c.registry } : {}),
        workspace: workspaceLabel(o.workspaceName),
        controlUrl: o.controlUrl(),
        defaultImage: image,
        assetToken: (plan) => tokens.issue(plan),
        ...(o.log ? { log: o.log } : {}),
      });
    },
  });
  return {
    backend,
    instanceAssetTokens: tokens,
    async checkCompute(c) {
      const { loadKubeConfig, namespaceOf, probeCompute } = await kubernetes();
      const kc = loadKubeConfig(c.kubeconfig, c.context);
      const version = await probeCompute(c, o.probeTimeoutMs ?? 3000);
      return { server: kc.getCurrentCluster()!.server, namespace: c.namespace ?? namespaceOf(kc), version };
    },
  };
}

/** The objects a deployment would create on its endpoint's compute, owner references and token left out. */
export function renderDryRun(spec: DeploymentSpec, compute: { name: string; namespace: string; registry?: string }, o: { workspaceName: string; controlUrl: string; defaultImage?: string }): { apiVersion: 'v1'; kind: 'List'; items: KubeObject[] } {
  const plan = { ...compileInstancePlan(spec), compute: compute.name.toLowerCase() };
  const ctx = {
    namespace: compute.namespace,
    workspace: workspaceLabel(o.workspaceName),
    controlUrl: o.controlUrl,
    defaultImage: o.defaultImage ?? process.env.INFERGATE_KUBERNETES_IMAGE ?? DEFAULT_KUBERNETES_IMAGE,
    ...(compute.registry !== undefined ? { registry: compute.registry } : {}),
  };
  return { apiVersion: 'v1', kind: 'List', items: [renderRoot(ctx, spec.endpointName), ...renderDeployment(plan, ctx, '<issued when applied>')] };
}
