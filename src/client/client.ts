// A typed client of the control-plane REST API (used by the CLI; usable by anyone).

import { InfergateError, isErrorCode, type ErrorBody } from '../errors/index.js';
import { defaultWorkspace, readServerRecord } from '../util/workspace.js';

export type Json = Record<string, unknown>;
export type LogContainer = 'inference-server' | 'storage-initializer';

export interface Credentials {
  primaryKey?: string;
  secondaryKey?: string;
  accessToken?: string;
  expiryTimeUtc?: number;
  refreshAfterTimeUtc?: number;
  tokenType?: string;
}

/** Finds the server: --server, then $INFERGATE_URL, then the record the server wrote in the workspace. */
export function resolveServerUrl(opts: { server?: string; workspace?: string }, env: NodeJS.ProcessEnv = process.env): string {
  if (opts.server) return opts.server.replace(/\/+$/, '');
  if (env.INFERGATE_URL) return env.INFERGATE_URL.replace(/\/+$/, '');
  const workspace = opts.workspace ?? defaultWorkspace(env);
  const rec = readServerRecord(workspace);
  if (!rec) {
    throw new InfergateError('ServerNotFound', `No infergate server is running for workspace ${workspace}. Start one with 'infergate server' (or set INFERGATE_HOME, INFERGATE_URL or --server).`);
  }
  return rec.url;
}

export class Client {
  constructor(readonly baseUrl: string) {}

  async request<T>(method: string, path: string, body?: unknown, accept: 'json' | 'text' = 'json'): Promise<T> {
    let res: Response;
    try {
      res = await fetch(this.baseUrl + path, {
        method,
        headers: body === undefined ? {} : { 'content-type': 'application/json' },
        body: body === undefined ? null : JSON.stringify(body),
      });
    } catch (e) {
      throw new InfergateError('ServerUnreachable', `Could not reach the infergate server at ${this.baseUrl}: ${(e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let parsed: ErrorBody | undefined;
      try {
        parsed = JSON.parse(text) as ErrorBody;
      } catch {
        /* not JSON */
      }
      const code = parsed?.error?.code;
      throw new InfergateError(isErrorCode(code) ? code : 'InternalError', parsed?.error?.message ?? `HTTP ${res.status}: ${text}`, parsed?.error?.details);
    }
    return (accept === 'text' ? text : text === '' ? undefined : JSON.parse(text)) as T;
  }

  info = () => this.request<{ version: string; router_url: string; workspace: string }>('GET', '/api/info');

  listEndpoints = () => this.request<Json[]>('GET', '/api/endpoints');
  getEndpoint = (name: string) => this.request<Json>('GET', `/api/endpoints/${enc(name)}`);
  endpointDocument = (name: string) => this.request<Json>('GET', `/api/endpoints/${enc(name)}/document`);
  createEndpoint = (doc: Json) => this.request<Json>('POST', '/api/endpoints', doc);
  updateEndpoint = (name: string, doc: Json) => this.request<Json>('PUT', `/api/endpoints/${enc(name)}`, doc);
  deleteEndpoint = (name: string) => this.request<Json>('DELETE', `/api/endpoints/${enc(name)}`);
  credentials = (name: string) => this.request<Credentials>('POST', `/api/endpoints/${enc(name)}/credentials`);
  regenerateKeys = (name: string, keyType: string) => this.request<Json>('POST', `/api/endpoints/${enc(name)}/regenerate-keys`, { key_type: keyType });

  listDeployments = (endpoint: string) => this.request<Json[]>('GET', `/api/endpoints/${enc(endpoint)}/deployments`);
  getDeployment = (endpoint: string, name: string) => this.request<Json>('GET', `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}`);
  deploymentDocument = (endpoint: string, name: string) => this.request<Json>('GET', `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}/document`);
  createDeployment = (endpoint: string, doc: Json) => this.request<Json>('POST', `/api/endpoints/${enc(endpoint)}/deployments`, doc);
  /** `keepAssets`: the document is the stored one with overrides; unchanged references keep their versions. */
  updateDeployment = (endpoint: string, name: string, doc: Json, keepAssets = false) =>
    this.request<Json>('PUT', `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}${keepAssets ? '?keep_assets=true' : ''}`, doc);
  deleteDeployment = (endpoint: string, name: string) => this.request<Json>('DELETE', `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}`);
  logs = (endpoint: string, name: string, container: LogContainer, lines: number) =>
    this.request<string>('GET', `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}/logs?container=${container}&lines=${lines}`, undefined, 'text');
}

const enc = encodeURIComponent;
