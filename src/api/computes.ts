// The routes behind `infergate ml compute attach|list|show|detach` (issue 17): attached Kubernetes
// clusters that endpoints name with `compute: azureml:<name>`. Bodies are az's flags in snake_case; answers
// are what `az ml compute show` prints for a Kubernetes compute. The kubeconfig is a credential: it is
// stored, never shown back, never logged.
//
// And the rule Azure enforces at create: an endpoint (or a deployment of one) naming a compute that is not
// attached fails with ComputeNotFound, and one whose cluster does not answer fails with
// KubernetesUnaccessible within seconds: never a silent local run.

import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parse as parseYaml } from 'yaml';
import { computeName } from '../compile/plan.js';
import { COMPUTE_REF } from '../spec/endpoint.js';
import { errorOf } from '../errors/index.js';
import type { StateStore, StoredCompute } from '../store/types.js';

export interface ComputeCheck {
  /** The API server the kubeconfig's context points at. */
  server: string;
  /** The namespace the compute's objects go to. */
  namespace: string;
  /** The cluster's version, when it answered. */
  version?: string;
}

export interface ComputeApiOptions {
  store: StateStore;
  workspace: string;
  /**
   * Checks a compute: its kubeconfig is usable and its API server answers within seconds (main/ wires the
   * Kubernetes backend's probe; api/ does not import backends). Throws KubeconfigInvalid or
   * KubernetesUnaccessible. Without it, attach only reads the kubeconfig and create checks that the
   * compute is attached.
   */
  checkCompute?: (c: Pick<StoredCompute, 'name' | 'kubeconfig' | 'context' | 'namespace'>) => Promise<ComputeCheck>;
}

const READ = { role: 'reader' } as const;
const CHANGE = { role: 'contributor' } as const;
const anyObject = { type: 'object', additionalProperties: true } as const;
const nameParams = { type: 'object', properties: { name: { type: 'string' } }, required: ['name'] } as const;
const NAME = /^[a-zA-Z][-a-zA-Z0-9]{1,31}$/;

interface AttachBody {
  name?: unknown;
  type?: unknown;
  kubeconfig?: unknown;
  context?: unknown;
  namespace?: unknown;
  registry?: unknown;
  description?: unknown;
}

/**
 * What in a kubeconfig makes the Kubernetes client run a command (exec, an auth-provider's cmd-path) or read
 * a file (token-file, client-certificate, client-key, certificate-authority) on the control plane's machine.
 * A contributor attaches computes: such a kubeconfig would run code as the server, or send one of its
 * files (a token-file is sent as the bearer token) to an API server the contributor chose.
 */
function localReferences(doc: Record<string, unknown>): string[] {
  const found = new Set<string>();
  const entries = (list: unknown, key: string) => (Array.isArray(list) ? list : []).map((e) => (e && typeof e === 'object' ? (e as Record<string, unknown>)[key] : undefined)).filter((x): x is Record<string, unknown> => !!x && typeof x === 'object');
  for (const u of entries(doc.users, 'user')) for (const k of ['exec', 'auth-provider', 'token-file', 'tokenFile', 'client-certificate', 'client-key']) if (u[k] !== undefined && u[k] !== null) found.add(`users[].user.${k}`);
  for (const c of entries(doc.clusters, 'cluster')) if (c['certificate-authority'] !== undefined && c['certificate-authority'] !== null) found.add('clusters[].cluster.certificate-authority');
  return [...found];
}

/** The server and namespace of a kubeconfig's context, read without a Kubernetes client; refuses local references (above). */
export function readKubeconfig(text: string, context?: string): { server: string; namespace?: string } {
  let doc: { contexts?: { name: string; context?: { cluster?: string; namespace?: string } }[]; clusters?: { name: string; cluster?: { server?: string } }[]; 'current-context'?: string };
  try {
    doc = parseYaml(text) as typeof doc;
  } catch (e) {
    throw errorOf('KubeconfigInvalid', { reason: `not YAML (${(e as Error).message.split('\n')[0]})` });
  }
  if (!doc || typeof doc !== 'object' || !Array.isArray(doc.contexts) || !Array.isArray(doc.clusters)) throw errorOf('KubeconfigInvalid', { reason: 'it has no contexts and clusters' });
  const local = localReferences(doc as Record<string, unknown>);
  if (local.length) throw errorOf('KubeconfigInvalid', { reason: `it uses ${local.join(', ')}: the server would run a command or read a file of its own machine for it. Give the credentials inline (token, client-certificate-data, client-key-data, certificate-authority-data), e.g. a service account token` });
  const name = context ?? doc['current-context'];
  const ctx = doc.contexts.find((c) => c?.name === name);
  if (!ctx) throw errorOf('KubeconfigInvalid', { reason: name ? `it has no context '${name}'` : 'it has no current-context; pass --context' });
  const server = doc.clusters.find((c) => c?.name === ctx.context?.cluster)?.cluster?.server;
  if (typeof server !== 'string' || server === '') throw errorOf('KubeconfigInvalid', { reason: `context '${name}' names no cluster with a server` });
  return { server, ...(ctx.context?.namespace ? { namespace: ctx.context.namespace } : {}) };
}

/** What `compute show` prints: az's fields for a Kubernetes compute, never the kubeconfig. */
export function showCompute(workspace: string, c: StoredCompute): Record<string, unknown> {
  let server: string | null = null;
  try {
    server = readKubeconfig(c.kubeconfig, c.context).server;
  } catch {
    // attached before; shown without it
  }
  return {
    id: `/workspaces/${workspace}/computes/${c.name}`,
    name: c.name,
    type: 'kubernetes',
    provisioning_state: 'Succeeded',
    namespace: c.namespace,
    ...(c.description !== undefined ? { description: c.description } : {}),
    properties: {
      server,
      context: c.context ?? null,
      registry: c.registry ?? null,
    },
    created_on: c.createdAt,
  };
}

function optionalString(body: AttachBody, key: keyof AttachBody): string | undefined {
  const v = body[key];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'string' || v.trim() === '') throw errorOf('RequestBodyInvalid', { problems: `body/${key} must be a non-empty string` });
  return v.trim();
}

/** Endpoints naming the compute (its `compute: azureml:<name>`). */
function endpointsOn(store: StateStore, name: string): string[] {
  return store
    .listEndpoints()
    .filter((e) => e.spec.compute !== undefined && computeName(e.spec.compute) === name.toLowerCase())
    .map((e) => e.spec.name);
}

/**
 * An endpoint's compute cannot change (Azure refuses it too): its instances and their objects live where
 * they were created, and the instance plan's revision leaves the compute out, so a change would keep them
 * there while the endpoint named another compute (or none: a silent run elsewhere).
 */
function checkComputeKept(store: StateStore, endpoint: string, requested: unknown): void {
  const current = store.getEndpoint(endpoint)?.spec;
  if (!current) return;
  // A malformed reference is the document's validation's to word (spec/endpoint.ts).
  if (requested !== undefined && requested !== null && (typeof requested !== 'string' || !COMPUTE_REF.test(requested.trim()))) return;
  const want = typeof requested === 'string' ? computeName(requested) : undefined;
  const have = current.compute !== undefined ? computeName(current.compute) : undefined;
  if (want !== have) throw errorOf('EndpointComputeImmutable', { endpoint: current.name, current: have ? `compute '${have}'` : 'this machine (no compute)', requested: want ? `compute '${want}'` : 'no compute' });
}

export function registerComputeRoutes(app: FastifyInstance, o: ComputeApiOptions): void {
  const { store } = o;
  const base = '/api/computes';
  const get = (name: string): StoredCompute => {
    const c = store.getCompute(name);
    if (!c) throw errorOf('ComputeNotFound', { compute: name, attached: store.listComputes().map((x) => x.name).join(', ') || 'none' });
    return c;
  };
  const audited = (req: FastifyRequest, name: string) => {
    req.auditTarget = { ...req.auditTarget, compute: name.slice(0, 64) };
  };

  app.get(base, { config: READ, schema: { operationId: 'listComputes', tags: ['computes'], summary: 'List attached computes (az ml compute list)' } }, async () => store.listComputes().map((c) => showCompute(o.workspace, c)));

  app.get(`${base}/:name`, { config: READ, schema: { operationId: 'showCompute', tags: ['computes'], summary: 'Show an attached compute (never its kubeconfig)', params: nameParams } }, async (req) => showCompute(o.workspace, get((req.params as { name: string }).name)));

  app.post(base, { config: CHANGE, schema: { operationId: 'attachCompute', tags: ['computes'], summary: 'Attach a Kubernetes cluster: name, type (kubernetes), kubeconfig (the file content), context, namespace, registry', body: anyObject } }, async (req, reply) => {
    const body = req.body as AttachBody;
    const name = optionalString(body, 'name');
    if (name === undefined || !NAME.test(name)) throw errorOf('RequestBodyInvalid', { problems: 'body/name must be 2 to 32 letters, digits and dashes, a letter first' });
    audited(req, name);
    const type = (optionalString(body, 'type') ?? 'kubernetes').toLowerCase();
    if (type !== 'kubernetes') throw errorOf('ComputeTypeUnsupported', { type });
    const kubeconfig = optionalString(body, 'kubeconfig');
    if (kubeconfig === undefined) throw errorOf('RequestBodyInvalid', { problems: 'body/kubeconfig (the kubeconfig file content) is required' });
    const context = optionalString(body, 'context');
    const registry = optionalString(body, 'registry');
    const description = optionalString(body, 'description');
    if (store.getCompute(name)) throw errorOf('ComputeAlreadyExists', { compute: name });
    const read = readKubeconfig(kubeconfig, context);
    let namespace = optionalString(body, 'namespace') ?? read.namespace ?? 'default';
    if (o.checkCompute) namespace = (await o.checkCompute({ name, kubeconfig, ...(context ? { context } : {}), namespace })).namespace;
    const stored = store.putCompute({ name, type: 'kubernetes', kubeconfig, namespace, ...(context ? { context } : {}), ...(registry ? { registry } : {}), ...(description ? { description } : {}) });
    return reply.status(201).send(showCompute(o.workspace, stored));
  });

  app.delete(`${base}/:name`, { config: CHANGE, schema: { operationId: 'detachCompute', tags: ['computes'], summary: 'Detach a compute that no endpoint uses', params: nameParams } }, async (req) => {
    const c = get((req.params as { name: string }).name);
    audited(req, c.name);
    const using = endpointsOn(store, c.name);
    if (using.length) throw errorOf('ComputeInUse', { compute: c.name, endpoints: using.join(', ') });
    store.deleteCompute(c.name);
    return { name: c.name, detached: true };
  });

  // Endpoint and deployment changes: the compute the endpoint names must be attached, and answer.
  app.addHook('preHandler', async (req) => {
    const op = (req.routeOptions.schema as { operationId?: string } | undefined)?.operationId;
    let ref: unknown;
    if (op === 'updateEndpoint') checkComputeKept(store, (req.params as { name: string }).name, (req.body as { compute?: unknown } | undefined)?.compute);
    if (op === 'createEndpoint' || op === 'updateEndpoint') ref = (req.body as { compute?: unknown } | undefined)?.compute;
    else if (op === 'createDeployment' || op === 'updateDeployment') ref = store.getEndpoint((req.params as { name: string }).name)?.spec.compute;
    else return;
    if (ref === undefined || ref === null) return;
    // The document's own validation words a malformed reference (spec/endpoint.ts); here only its name counts.
    if (typeof ref !== 'string' || !COMPUTE_REF.test(ref.trim())) return;
    const c = get(computeName(ref.trim()));
    if (o.checkCompute && (op === 'createEndpoint' || op === 'createDeployment')) await o.checkCompute(c);
  });
}
