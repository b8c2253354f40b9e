// Pure: an InstancePlan → the Kubernetes objects its instances run as (docs/kubernetes.md "Objects").
// No I/O, no clock, no randomness: the same plan and context give the same objects, byte for byte, so
// golden files hold them and `online-deployment create --dry-run -o yaml` prints exactly what apply sends.
//
// Per deployment revision: a Deployment (pods = instances). Per deployment: a headless Service (its pods'
// addresses, which routers in the cluster read from EndpointSlices), a PodDisruptionBudget and the Secret
// with the init container's asset token. Per endpoint: a root ConfigMap that owns all of them, so deleting
// it (or the namespace) lets Kubernetes' garbage collector delete everything of the endpoint.
//
// Autoscale (`scale_settings: target_utilization`, monitor autoscale): infergate's own autoscaler, not an
// HPA. It already decides instance_count from the routers' metrics (issue 12), and a second controller
// writing `replicas` would fight it; the Deployment's replicas follow the instance count the reconciler
// asks for.

import { createHash } from 'node:crypto';
import { errorOf } from '../../errors/index.js';
import type { InstancePlan, ProbePlan } from '../../ir/types.js';

/** The port infergate's hosts listen on in a pod (framed protocol over TCP). */
export const FRAMED_PORT = 5001;
export const FIELD_MANAGER = 'infergate';
export const LABEL = {
  managedBy: 'app.kubernetes.io/managed-by',
  workspace: 'infergate.io/workspace',
  endpoint: 'infergate.io/endpoint',
  deployment: 'infergate.io/deployment',
  revision: 'infergate.io/revision',
  /** What kind of object of ours (root, instances, assets...). */
  component: 'infergate.io/component',
} as const;
export const ANNOTATION = {
  /** The instance ids a revision's Deployment runs, in index order (observe() maps pods onto them). */
  instances: 'infergate.io/instances',
  plan: 'infergate.io/plan-revision',
} as const;

/** Where things live inside a pod. */
export const POD_PATHS = {
  app: '/var/infergate/app',
  runtime: '/var/infergate/runtime',
  models: '/var/infergate/models',
} as const;

/** The container exit code of infergate_host.py when init() raised (EXIT_INIT_FAILED): final, not a crash. */
export const EXIT_INIT_FAILED = 3;

/** A Kubernetes object as sent: plain JSON. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: {
    name: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean; blockOwnerDeletion?: boolean }[];
    uid?: string;
    resourceVersion?: string;
    creationTimestamp?: string;
    deletionTimestamp?: string;
  };
  [key: string]: unknown;
}

export interface RenderContext {
  namespace: string;
  /** Tells this workspace's objects from everything else's in the namespace (sha256 of its id, 16 hex). */
  workspace: string;
  /** The control plane's URL as pods reach it: the init container fetches model and code from it. */
  controlUrl: string;
  /** The image for plans that name none (an image with python3; docs/kubernetes.md). */
  defaultImage: string;
  /** The compute's `--registry`: where environment images built by infergate are pushed, by digest. */
  registry?: string;
  /** The image infergate built and pushed for the plan's environment (`<registry>/infergate-env@sha256:...`). */
  environmentImage?: string;
  /** The endpoint's root ConfigMap once it exists; without it (dry-run) objects carry no owner reference. */
  owner?: { name: string; uid: string };
  /** Instance ids the revision's Deployment runs, in index order; default: as many as plan.instanceCount. */
  instances?: string[];
}

/**
 * The workspace label's value: what tells this workspace's objects from other workspaces' in one namespace.
 * From the workspace's name, so `--dry-run` (which knows only the server's name for it) renders the same.
 */
export function workspaceLabel(workspaceName: string): string {
  return createHash('sha256').update(`infergate-workspace\0${workspaceName}`).digest('hex').slice(0, 16);
}

/** The image pods run when the environment names none: Azure's minimal CPU inference image (it has python3). */
export const DEFAULT_KUBERNETES_IMAGE = 'mcr.microsoft.com/azureml/minimal-ubuntu22.04-py39-cpu-inference:latest';

/** A DNS-1123 label from parts: lower-case, [a-z0-9-], at most 63, a hash suffix when it had to be cut. */
export function kubeName(...parts: string[]): string {
  const joined = parts.join('-').toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '');
  if (joined.length <= 63) return joined;
  const hash = createHash('sha256').update(parts.join('\0')).digest('hex').slice(0, 8);
  return `${joined.slice(0, 54).replace(/-+$/, '')}-${hash}`;
}

/** A label value: at most 63 characters of [A-Za-z0-9-_.], alphanumeric at both ends. */
function labelValue(s: string): string {
  const v = s.replace(/[^A-Za-z0-9._-]+/g, '-').slice(0, 63).replace(/^[^A-Za-z0-9]+|[^A-Za-z0-9]+$/g, '');
  return v === '' ? 'x' : v;
}

export const rootName = (endpoint: string): string => kubeName('ig', endpoint);
export const deploymentObjectName = (plan: Pick<InstancePlan, 'endpoint' | 'deployment' | 'revision'>): string => kubeName('ig', plan.endpoint, plan.deployment, plan.revision);
export const serviceName = (endpoint: string, deployment: string): string => kubeName('ig', endpoint, deployment);
export const assetSecretName = (plan: Pick<InstancePlan, 'endpoint' | 'deployment' | 'revision'>): string => kubeName('ig', plan.endpoint, plan.deployment, plan.revision, 'assets');

/** Labels every object of an endpoint carries (the selector of the backend's list and watch). */
export function endpointLabels(ctx: Pick<RenderContext, 'workspace'>, endpoint: string): Record<string, string> {
  return { [LABEL.managedBy]: 'infergate', [LABEL.workspace]: ctx.workspace, [LABEL.endpoint]: labelValue(endpoint) };
}

function deploymentLabels(ctx: RenderContext, plan: Pick<InstancePlan, 'endpoint' | 'deployment'>): Record<string, string> {
  return { ...endpointLabels(ctx, plan.endpoint), [LABEL.deployment]: labelValue(plan.deployment) };
}

function meta(ctx: RenderContext, name: string, labels: Record<string, string>, annotations?: Record<string, string>): KubeObject['metadata'] {
  return {
    name,
    namespace: ctx.namespace,
    labels,
    ...(annotations ? { annotations } : {}),
    ...(ctx.owner ? { ownerReferences: [{ apiVersion: 'v1', kind: 'ConfigMap', name: ctx.owner.name, uid: ctx.owner.uid, blockOwnerDeletion: true }] } : {}),
  };
}

/** The endpoint's root object: deleting it deletes every object of the endpoint (ownerReferences). */
export function renderRoot(ctx: RenderContext, endpoint: string): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: rootName(endpoint), namespace: ctx.namespace, labels: { ...endpointLabels(ctx, endpoint), [LABEL.component]: 'root' } },
    data: { endpoint },
  };
}

/**
 * The image a plan's pods run: the one built and pushed for its environment (images.ts; the backend sets it
 * before rendering), else the environment's image as written, else the compute's default. `--dry-run`
 * builds nothing, so it shows the image the build starts from.
 */
export function imageOf(plan: InstancePlan, ctx: RenderContext): string {
  return ctx.environmentImage ?? plan.environment.image ?? ctx.defaultImage;
}

function probe(p: ProbePlan, action: Record<string, unknown>): Record<string, unknown> {
  return {
    ...action,
    initialDelaySeconds: p.initialDelay,
    periodSeconds: p.period,
    timeoutSeconds: p.timeout,
    successThreshold: p.successThreshold,
    failureThreshold: p.failureThreshold,
  };
}

/** Requests and limits: `resources` as written (Kubernetes deployments), else the instance type's size. */
export function resourcesOf(plan: InstancePlan): { requests?: Record<string, string>; limits?: Record<string, string> } {
  const rename = (set: Record<string, string> | undefined) => set && Object.fromEntries(Object.entries(set).map(([k, v]) => [k === 'gpu' ? 'nvidia.com/gpu' : k, String(v)]));
  const k = plan.kubernetesResources;
  if (k && (k.requests || k.limits)) {
    const requests = rename(k.requests);
    const limits = rename(k.limits);
    return { ...(requests ? { requests } : {}), ...(limits ? { limits } : {}) };
  }
  const limits: Record<string, string> = {};
  if (plan.resources.cpus !== undefined) limits.cpu = `${Math.round(plan.resources.cpus * 1000)}m`;
  if (plan.resources.memoryBytes !== undefined) limits.memory = `${Math.ceil(plan.resources.memoryBytes / 2 ** 20)}Mi`;
  // Requests = limits: the scheduler places an instance where its whole size fits (Guaranteed QoS).
  return Object.keys(limits).length ? { requests: { ...limits }, limits } : {};
}

/**
 * The init container's downloader: fetches model and code (and the Python host) as tar streams from the
 * control plane's asset API with the deployment's scoped token, into the pod's own emptyDir volumes.
 * Python's standard library only, so it runs in the environment's own image. INFERGATE_ASSET_PARTS names
 * the parts the plan has (a no-code deployment has no code; a custom container needs only its model).
 */
export const FETCH_SCRIPT = [
  'import os, sys, tarfile, urllib.request',
  'base = os.environ["INFERGATE_ASSETS_URL"]',
  'token = open(os.environ.get("INFERGATE_TOKEN_FILE", "/var/run/infergate/token")).read().strip()',
  'dests = {"runtime": "INFERGATE_RUNTIME_DIR", "code": "AML_APP_ROOT", "model": "INFERGATE_MODEL_DEST"}',
  'for part, dest in ((p, os.environ[dests[p]]) for p in os.environ["INFERGATE_ASSET_PARTS"].split()):',
  '    os.makedirs(dest, exist_ok=True)',
  '    req = urllib.request.Request(base + "/" + part, headers={"Authorization": "Bearer " + token})',
  '    try:',
  '        resp = urllib.request.urlopen(req, timeout=60)',
  '    except urllib.error.HTTPError as e:',
  '        if e.code == 404 and part == "model": continue',
  '        sys.exit("fetching %s failed: HTTP %d %s" % (part, e.code, e.read()[:500]))',
  '    with tarfile.open(fileobj=resp, mode="r|") as t:',
  '        t.extractall(dest, filter="data") if hasattr(tarfile, "data_filter") else t.extractall(dest)',
  '    print("storage-initializer: %s -> %s" % (part, dest), flush=True)',
].join('\n');

/**
 * The objects of one deployment revision: its Deployment, and the deployment's Service, PDB and Secret.
 * Throws KubernetesRuntimeUnsupported for what pods cannot run (an ONNX no-code deployment).
 */
export function renderDeployment(plan: InstancePlan, ctx: RenderContext, assetToken: string): KubeObject[] {
  // ONNX models are served by infergate's Node host with onnxruntime-node, which pods do not get: the
  // storage initializer ships the Python host only. Refused here, so apply and --dry-run both say so.
  if (plan.runtime === 'onnx') throw errorOf('KubernetesRuntimeUnsupported', { endpoint: plan.endpoint, deployment: plan.deployment, runtime: 'an ONNX no-code model' });
  const labels = deploymentLabels(ctx, plan);
  const podLabels = { ...labels, [LABEL.revision]: labelValue(plan.revision), [LABEL.component]: 'instance' };
  const instances = ctx.instances ?? Array.from({ length: plan.instanceCount }, (_, i) => `${plan.endpoint}.${plan.deployment}.${plan.revision}.${i}`);
  const secret = assetSecretName(plan);
  const custom = plan.runtime === 'container';
  const noCode = plan.runtime === 'mlflow';
  // Python hosts: Azure's layout, <models>/<name>/<version>/<file or folder>. Custom containers: the models
  // volume mounted at model_mount_path (or the same place), the model's file or folder at its root.
  const modelDir = custom
    ? plan.model || plan.modelMountPath ? (plan.modelMountPath ?? POD_PATHS.models) : undefined
    : plan.model ? `${POD_PATHS.models}/${plan.model.name}/${plan.model.version}` : undefined;
  const modelDest = custom ? POD_PATHS.models : (modelDir ?? POD_PATHS.models);
  // A no-code deployment has no code folder: it runs in its model folder, as on this machine (docs/no-code.md).
  const appRoot = noCode && modelDir !== undefined ? modelDir : POD_PATHS.app;
  const parts = custom ? ['model'] : plan.code ? ['runtime', 'code', 'model'] : ['runtime', 'model'];
  const env: Record<string, string> = {
    LANG: 'C.UTF-8',
    TZ: 'UTC',
    HOME: '/tmp',
    PYTHONDONTWRITEBYTECODE: '1',
    ...plan.environmentVariables,
    ...(modelDir !== undefined ? { AZUREML_MODEL_DIR: modelDir } : {}),
  };
  let command: string[] | undefined;
  let ports: Record<string, unknown>[];
  let liveness: Record<string, unknown>;
  let readiness: Record<string, unknown>;
  if (custom) {
    const ic = plan.environment.inferenceConfig!;
    ports = [...new Set([ic.scoring.port, ic.liveness.port, ic.readiness.port])].map((p) => ({ containerPort: p, protocol: 'TCP' }));
    liveness = probe(plan.livenessProbe, { httpGet: { path: ic.liveness.path, port: ic.liveness.port } });
    readiness = probe(plan.readinessProbe, { httpGet: { path: ic.readiness.path, port: ic.readiness.port } });
  } else {
    Object.assign(env, {
      INFERGATE_LISTEN: `tcp:0.0.0.0:${FRAMED_PORT}`,
      AML_APP_ROOT: appRoot,
      // The MLflow loader is infergate's own script, shipped with the Python host (the runtime part).
      AZUREML_ENTRY_SCRIPT: noCode ? `${POD_PATHS.runtime}/infergate_mlflow.py` : plan.code ? `${appRoot}/${plan.code.scoringScript}` : '',
      WORKER_COUNT: String(plan.workerCount),
      ...(plan.noCode ? { INFERGATE_NO_CODE: JSON.stringify(plan.noCode) } : {}),
    });
    command =
      plan.runtime === 'python' || noCode
        ? ['python3', '-u', `${POD_PATHS.runtime}/infergate_host.py`, '--listen', `tcp:0.0.0.0:${FRAMED_PORT}`]
        : // A JavaScript scoring module needs Node 20 in the image and infergate's bundled host (docs).
          ['node', `${POD_PATHS.runtime}/host.mjs`];
    ports = [{ name: 'framed', containerPort: FRAMED_PORT, protocol: 'TCP' }];
    // The host listens only once init() succeeded: a TCP connect is its readiness, as the socket is locally.
    liveness = probe(plan.livenessProbe, { tcpSocket: { port: FRAMED_PORT } });
    readiness = probe(plan.readinessProbe, { tcpSocket: { port: FRAMED_PORT } });
  }
  const envList = (e: Record<string, string>) => Object.entries(e).map(([name, value]) => ({ name, value }));
  const resources = resourcesOf(plan);
  const image = imageOf(plan, ctx);
  const mounts = [
    { name: 'app', mountPath: POD_PATHS.app, readOnly: true },
    { name: 'runtime', mountPath: POD_PATHS.runtime, readOnly: true },
    { name: 'models', mountPath: POD_PATHS.models, readOnly: true },
    { name: 'tmp', mountPath: '/tmp' },
  ];
  const securityContext = { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] }, readOnlyRootFilesystem: !custom };
  const initContainer = {
    name: 'storage-initializer',
    image,
    command: ['python3', '-c', FETCH_SCRIPT],
    env: envList({
      INFERGATE_ASSETS_URL: `${ctx.controlUrl.replace(/\/+$/, '')}/api/instance-assets/${encodeURIComponent(plan.endpoint)}/${encodeURIComponent(plan.deployment)}/${plan.revision}`,
      INFERGATE_ASSET_PARTS: parts.join(' '),
      INFERGATE_RUNTIME_DIR: POD_PATHS.runtime,
      AML_APP_ROOT: POD_PATHS.app,
      INFERGATE_MODEL_DEST: modelDest,
      HOME: '/tmp',
    }),
    volumeMounts: [
      { name: 'app', mountPath: POD_PATHS.app },
      { name: 'runtime', mountPath: POD_PATHS.runtime },
      { name: 'models', mountPath: POD_PATHS.models },
      { name: 'token', mountPath: '/var/run/infergate', readOnly: true },
      { name: 'tmp', mountPath: '/tmp' },
    ],
    securityContext,
    resources: { requests: { cpu: '50m', memory: '64Mi' }, limits: { cpu: '500m', memory: '256Mi' } },
  };
  const container = {
    name: 'inference-server',
    image,
    ...(command ? { command } : {}),
    env: envList(env),
    ports,
    livenessProbe: liveness,
    readinessProbe: readiness,
    ...(Object.keys(resources).length ? { resources } : {}),
    ...(custom ? { volumeMounts: modelDir !== undefined ? [{ name: 'models', mountPath: modelDir, readOnly: true }] : [] } : { workingDir: appRoot, volumeMounts: mounts }),
    // The last lines of the log become the termination message: init() tracebacks reach the error.
    terminationMessagePolicy: 'FallbackToLogsOnError',
    securityContext,
  };
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: meta(ctx, deploymentObjectName(plan), { ...labels, [LABEL.revision]: labelValue(plan.revision) }, { [ANNOTATION.instances]: instances.join(','), [ANNOTATION.plan]: plan.revision }),
    spec: {
      replicas: instances.length,
      selector: { matchLabels: { [LABEL.workspace]: ctx.workspace, [LABEL.endpoint]: labels[LABEL.endpoint], [LABEL.deployment]: labels[LABEL.deployment], [LABEL.revision]: labelValue(plan.revision) } },
      // One revision per Deployment: a new revision is a new Deployment (the reconciler rolls instances
      // over), so this one only ever changes its replicas.
      strategy: { type: 'RollingUpdate', rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: podLabels },
        spec: {
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          securityContext: { runAsNonRoot: true, runAsUser: 1000, runAsGroup: 1000, fsGroup: 1000, seccompProfile: { type: 'RuntimeDefault' } },
          terminationGracePeriodSeconds: Math.ceil(plan.requestTimeoutMs / 1000) + 5,
          initContainers: custom && modelDir === undefined ? [] : [initContainer],
          containers: [container],
          volumes: [
            { name: 'app', emptyDir: {} },
            { name: 'runtime', emptyDir: {} },
            { name: 'models', emptyDir: {} },
            { name: 'tmp', emptyDir: {} },
            { name: 'token', secret: { secretName: secret, defaultMode: 0o440 } },
          ],
        },
      },
    },
  };
  const tokenSecret: KubeObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: meta(ctx, secret, { ...labels, [LABEL.revision]: labelValue(plan.revision), [LABEL.component]: 'assets' }),
    type: 'Opaque',
    // Scoped to this revision's model and code, and short-lived: the backend applies a fresh one whenever
    // it scales the revision, so a pod started later still fetches (docs/kubernetes.md "Assets").
    stringData: { token: assetToken },
  };
  return [tokenSecret, deployment, ...renderDeploymentShared(plan, ctx)];
}

/** What a deployment has once, whatever its revisions: a headless Service and a PodDisruptionBudget. */
export function renderDeploymentShared(plan: Pick<InstancePlan, 'endpoint' | 'deployment' | 'runtime' | 'environment'>, ctx: RenderContext): KubeObject[] {
  const labels = deploymentLabels(ctx, plan);
  const selector = { [LABEL.workspace]: ctx.workspace, [LABEL.endpoint]: labels[LABEL.endpoint], [LABEL.deployment]: labels[LABEL.deployment], [LABEL.component]: 'instance' };
  const port = plan.runtime === 'container' ? plan.environment.inferenceConfig!.scoring.port : FRAMED_PORT;
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: meta(ctx, serviceName(plan.endpoint, plan.deployment), { ...labels, [LABEL.component]: 'instances' }),
      // Headless: no virtual IP, no kube-proxy balancing. Routers pick the instance themselves, from the
      // EndpointSlices of this Service (ready pods only).
      spec: { clusterIP: 'None', selector, ports: [{ name: plan.runtime === 'container' ? 'http' : 'framed', port, targetPort: port, protocol: 'TCP' }], publishNotReadyAddresses: false },
    },
    {
      apiVersion: 'policy/v1',
      kind: 'PodDisruptionBudget',
      metadata: meta(ctx, serviceName(plan.endpoint, plan.deployment), { ...labels, [LABEL.component]: 'instances' }),
      // A node drain takes one instance at a time, so a deployment keeps serving through cluster upkeep.
      spec: { maxUnavailable: 1, selector: { matchLabels: selector } },
    },
  ];
}
