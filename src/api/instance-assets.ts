// What an instance's storage initializer fetches on a Kubernetes compute (docs/kubernetes.md "Assets"): the
// model, the code and infergate's Python host, each as a tar stream, so pods need no volume shared with
// the control plane. Not a control-plane token route: each request carries the deployment revision's own
// short-lived token (a Secret the backend applies beside the revision's Deployment), which opens that
// revision's three parts and nothing else.

import { spawn } from 'node:child_process';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { compileInstancePlan } from '../compile/index.js';
import { errorOf } from '../errors/index.js';
import type { AssetLookup } from '../store/assets.js';
import type { StateStore } from '../store/types.js';

/** How long an asset token opens its revision's assets; the backend applies a fresh one well before. */
export const INSTANCE_ASSET_TOKEN_MS = 60 * 60 * 1000;
const PYTHON_RUNTIME = fileURLToPath(new URL('../runtime/python/', import.meta.url));
const PARTS = ['runtime', 'code', 'model'] as const;

/**
 * Signs and checks instance asset tokens: `iga.<expiry ms>.<HMAC-SHA256 of endpoint, deployment,
 * revision and expiry>`, base64url. The key lives in this process only: a restarted control plane signs
 * with a new one, and the backend applies fresh tokens as it adopts its revisions again.
 */
export class InstanceAssetTokens {
  private readonly key: Buffer;
  constructor(key: Buffer = randomBytes(32), private readonly now: () => number = Date.now) {
    this.key = key;
  }

  issue(scope: { endpoint: string; deployment: string; revision: string }, lifetimeMs = INSTANCE_ASSET_TOKEN_MS): string {
    const exp = this.now() + lifetimeMs;
    return `iga.${exp}.${this.mac(scope, exp)}`;
  }

  /** Whether `token` opens exactly this revision's assets now. */
  verify(token: string, scope: { endpoint: string; deployment: string; revision: string }): boolean {
    const m = /^iga\.(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
    if (!m) return false;
    const exp = Number(m[1]);
    if (!(exp > this.now())) return false;
    const want = Buffer.from(this.mac(scope, exp));
    const got = Buffer.from(m[2]);
    return want.length === got.length && timingSafeEqual(want, got);
  }

  private mac(s: { endpoint: string; deployment: string; revision: string }, exp: number): string {
    return createHmac('sha256', this.key).update(`${s.endpoint.toLowerCase()}\0${s.deployment.toLowerCase()}\0${s.revision}\0${exp}`).digest('base64url');
  }
}

export interface InstanceAssetOptions {
  store: StateStore;
  lookup: AssetLookup;
  tokens: InstanceAssetTokens;
}

type Params = { endpoint: string; deployment: string; revision: string; part: string };

export function registerInstanceAssetRoutes(app: FastifyInstance, o: InstanceAssetOptions): void {
  app.get('/api/instance-assets/:endpoint/:deployment/:revision/:part', {
    // The revision's own token, checked below: pods hold no control-plane token.
    config: { role: 'public' },
    schema: {
      operationId: 'getInstanceAsset', tags: ['instances'], summary: "A deployment revision's model, code or Python host as a tar stream (storage initializer of Kubernetes pods; the revision's asset token)",
      params: { type: 'object', properties: { endpoint: { type: 'string' }, deployment: { type: 'string' }, revision: { type: 'string' }, part: { type: 'string', enum: [...PARTS] } }, required: ['endpoint', 'deployment', 'revision', 'part'] },
    },
  }, async (req, reply) => {
    const p = req.params as Params;
    const auth = req.headers.authorization ?? '';
    const token = auth.startsWith('Bearer ') ? auth.slice(7).trim() : '';
    // One answer for a bad token and for a revision that does not exist: the route tells nothing to a caller without a token.
    if (!o.tokens.verify(token, p)) throw errorOf('InstanceAssetTokenInvalid');
    const d = o.store.getDeployment(p.endpoint, p.deployment);
    const plan = d && compileInstancePlan(d.spec, o.lookup);
    if (!plan || plan.revision !== p.revision) throw errorOf('InstanceAssetGone', { endpoint: p.endpoint, deployment: p.deployment, revision: p.revision });
    let folder: string;
    let entries: string[];
    if (p.part === 'runtime') {
      folder = PYTHON_RUNTIME;
      entries = ['.'];
    } else if (p.part === 'code') {
      if (!plan.code) return reply.status(404).send(errorOf('InstanceAssetGone', { endpoint: p.endpoint, deployment: p.deployment, revision: `${p.revision} (no code)` }).toBody());
      folder = plan.code.path;
      entries = ['.'];
    } else {
      if (!plan.model) return reply.status(404).send(errorOf('InstanceAssetGone', { endpoint: p.endpoint, deployment: p.deployment, revision: `${p.revision} (no model)` }).toBody());
      // The file or folder name is kept under AZUREML_MODEL_DIR, as locally and on Azure.
      folder = dirname(plan.model.path);
      entries = [basename(plan.model.path)];
    }
    if (!existsSync(folder) || (p.part !== 'model' && !statSync(folder).isDirectory())) throw errorOf('InstanceAssetGone', { endpoint: p.endpoint, deployment: p.deployment, revision: p.revision });
    // tar(1): streams any size with constant memory; no symlinks followed out of the folder (no -h).
    const tar = spawn('tar', ['-C', folder, '--exclude=__pycache__', '--owner=0', '--group=0', '--numeric-owner', '-cf', '-', '--', ...entries], { stdio: ['ignore', 'pipe', 'ignore'] });
    // No tar(1) on this machine: the answer fails (the pod's initializer says so) instead of the process.
    tar.on('error', (e) => tar.stdout.destroy(e));
    req.raw.on('close', () => tar.kill());
    return reply.type('application/x-tar').send(tar.stdout);
  });
}
