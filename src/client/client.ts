// A typed client of the control-plane REST API (used by the CLI; usable by anyone).

import type { Readable } from 'node:stream';
import { errorOf, InfergateError, isErrorCode, type ErrorBody } from '../errors/index.js';
import { defaultWorkspace, readOwnerToken, readServerRecord } from '../util/workspace.js';
import { readConfig } from './config.js';
import { trustedFetch, trustWorkspaceCa } from '../util/tls.js';

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

/** A control plane and the bearer token to send it. */
export interface ServerTarget {
  url: string;
  token?: string;
}

const trimUrl = (u: string): string => u.replace(/\/+$/, '');

/**
 * Finds the server and its token (docs/security.md, "Using the CLI").
 * URL: --server, then $INFERGATE_URL, then the workspace's server.json when the workspace was named
 * (--workspace or $INFERGATE_HOME), then the server `infergate login` saved, then ~/.infergate's server.json.
 * Token: $INFERGATE_TOKEN, else the login's token for that URL, else the workspace's owner.token when
 * its server.json names that URL (the local CLI needs no step of its own).
 */
export function resolveServer(opts: { server?: string; workspace?: string }, env: NodeJS.ProcessEnv = process.env): ServerTarget {
  const envToken = env.INFERGATE_TOKEN && env.INFERGATE_TOKEN !== '' ? env.INFERGATE_TOKEN.trim() : undefined;
  const workspace = opts.workspace ?? defaultWorkspace(env);
  trustWorkspaceCa(workspace); // a --tls-dev server's CA, named in its server.json (util/tls.ts)
  const namedWorkspace = opts.workspace !== undefined || (env.INFERGATE_HOME !== undefined && env.INFERGATE_HOME !== '');
  const config = readConfig(env);
  const localToken = (url: string): string | undefined => {
    const rec = readServerRecord(workspace);
    return rec && trimUrl(rec.url) === url ? readOwnerToken(workspace) : undefined;
  };
  const target = (url: string, token: string | undefined): ServerTarget => (token !== undefined ? { url, token } : { url });
  const given = opts.server ?? (env.INFERGATE_URL && env.INFERGATE_URL !== '' ? env.INFERGATE_URL : undefined);
  if (given !== undefined) {
    const url = trimUrl(given);
    return target(url, envToken ?? (config && trimUrl(config.server) === url ? config.token : undefined) ?? localToken(url));
  }
  if (!namedWorkspace && config) return target(trimUrl(config.server), envToken ?? config.token);
  const rec = readServerRecord(workspace);
  if (!rec) {
    throw errorOf('ServerNotRunning', { workspace });
  }
  return target(trimUrl(rec.url), envToken ?? readOwnerToken(workspace));
}

/** The server's URL alone (resolveServer without the token). */
export function resolveServerUrl(opts: { server?: string; workspace?: string }, env: NodeJS.ProcessEnv = process.env): string {
  return resolveServer(opts, env).url;
}

export class Client {
  private readonly auth: Record<string, string>;

  constructor(
    readonly baseUrl: string,
    token?: string,
  ) {
    this.auth = token !== undefined ? { authorization: `Bearer ${token}` } : {};
  }

  async request<T>(method: string, path: string, body?: unknown, accept: 'json' | 'text' = 'json'): Promise<T> {
    return this.send<T>(method, path, body === undefined ? this.auth : { ...this.auth, 'content-type': 'application/json' }, body === undefined ? null : JSON.stringify(body), accept);
  }

  /** Which of these SHA-256 hashes the server lacks (ask before uploading: only those are sent). */
  blobsMissing = async (sha256: string[]) => (await this.request<{ missing: string[] }>('POST', '/api/blobs/missing', { sha256 })).missing;

  /** Streams one file to the server's blob store, under its SHA-256 (api/uploads.ts). */
  putBlob = (sha256: string, size: number, body: Readable) =>
    this.send<Json>('PUT', `/api/blobs/${enc(sha256)}`, { ...this.auth, 'content-type': 'application/octet-stream', 'content-length': String(size) }, body, 'json');

  private async send<T>(method: string, path: string, headers: Record<string, string>, body: string | Readable | null, accept: 'json' | 'text'): Promise<T> {
    let res: Response;
    try {
      res = await trustedFetch(this.baseUrl + path, { method, headers, body });
    } catch (e) {
      throw errorOf('ServerUnreachable', { url: this.baseUrl, reason: (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message });
    }
    const text = await res.text();
    if (!res.ok) throw errorOfResponse(res.status, text);
    return (accept === 'text' ? text : text === '' ? undefined : JSON.parse(text)) as T;
  }

  info = () => this.request<{ version: string; router_url: string; workspace: string }>('GET', '/api/info');
  whoami = () => this.request<{ token_id: string; role: string; expires_at: string | null }>('GET', '/api/whoami');

  listTokens = () => this.request<Json[]>('GET', '/api/tokens');
  createToken = (o: { role: string; expires_in?: string; description?: string }) => this.request<Json & { token: string; id: string }>('POST', '/api/tokens', o);
  revokeToken = (id: string) => this.request<Json>('DELETE', `/api/tokens/${enc(id)}`);

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
  // Autoscale settings (`infergate monitor autoscale`): bodies are az's flags in snake_case, answers
  // Azure Monitor's AutoscaleSetting JSON (src/spec/autoscale.ts has its type; the client keeps to Json).
  listAutoscale = () => this.request<Json[]>('GET', '/api/autoscale');
  getAutoscale = (name: string) => this.request<Json>('GET', `/api/autoscale/${enc(name)}`);
  createAutoscale = (body: { name: string; resource: string; min_count?: number | string; max_count?: number | string; count?: number | string; disabled?: boolean; tags?: Record<string, string> }) =>
    this.request<Json>('POST', '/api/autoscale', body);
  updateAutoscale = (name: string, body: { enabled?: boolean | string; min_count?: number | string; max_count?: number | string; count?: number | string; tags?: Record<string, string> }) =>
    this.request<Json>('PATCH', `/api/autoscale/${enc(name)}`, body);
  deleteAutoscale = (name: string) => this.request<Json>('DELETE', `/api/autoscale/${enc(name)}`);
  listAutoscaleRules = (name: string, profile?: string) =>
    this.request<Json[]>('GET', `/api/autoscale/${enc(name)}/rules${profile !== undefined ? `?profile=${enc(profile)}` : ''}`);
  createAutoscaleRule = (name: string, body: { condition: string; scale: string | string[]; cooldown?: string | number; resource?: string; timegrain?: string; profile_name?: string }) =>
    this.request<Json>('POST', `/api/autoscale/${enc(name)}/rules`, body);
  /** Rule indexes as `rule list` prints them, or '*' for every rule. */
  deleteAutoscaleRules = (name: string, index: Array<number | string> | '*', profile?: string) =>
    this.request<Json>('DELETE', `/api/autoscale/${enc(name)}/rules?index=${enc(index === '*' ? '*' : index.join(','))}${profile !== undefined ? `&profile=${enc(profile)}` : ''}`);
  listAutoscaleProfiles = (name: string) => this.request<Json[]>('GET', `/api/autoscale/${enc(name)}/profiles`);
  getAutoscaleProfile = (name: string, profile: string) => this.request<Json>('GET', `/api/autoscale/${enc(name)}/profiles/${enc(profile)}`);
  createAutoscaleProfile = (name: string, body: { name: string; min_count?: number | string; max_count?: number | string; count?: number | string; recurrence?: string[]; timezone?: string; start?: string; end?: string; copy_rules?: string }) =>
    this.request<Json>('POST', `/api/autoscale/${enc(name)}/profiles`, body);
  deleteAutoscaleProfile = (name: string, profile: string) => this.request<Json>('DELETE', `/api/autoscale/${enc(name)}/profiles/${enc(profile)}`);
  autoscaleHistory = (name: string, limit?: number) => this.request<Json[]>('GET', `/api/autoscale/${enc(name)}/history${limit !== undefined ? `?limit=${limit}` : ''}`);

  logs = (endpoint: string, name: string, container: LogContainer, lines: number) =>
    this.request<string>('GET', `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}/logs?container=${container}&lines=${lines}`, undefined, 'text');

  /**
   * get-logs --follow: the last `lines` lines, then new ones as they are written, as byte chunks (split
   * anywhere, even inside a character: write them as they are). Ends when the server ends the stream (it
   * stops, or the deployment is deleted); a connection that breaks is ServerUnreachable.
   */
  async *followLogs(endpoint: string, name: string, container: LogContainer, lines: number): AsyncGenerator<Uint8Array> {
    const path = `/api/endpoints/${enc(endpoint)}/deployments/${enc(name)}/logs?container=${container}&lines=${lines}&follow=true`;
    let res: Response;
    try {
      res = await trustedFetch(this.baseUrl + path, { method: 'GET', headers: this.auth });
    } catch (e) {
      throw errorOf('ServerUnreachable', { url: this.baseUrl, reason: (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message });
    }
    if (!res.ok) throw errorOfResponse(res.status, await res.text());
    if (res.body === null) return;
    const reader = res.body.getReader();
    try {
      for (;;) {
        let next: ReadableStreamReadResult<Uint8Array>;
        try {
          next = await reader.read();
        } catch (e) {
          throw errorOf('ServerUnreachable', { url: this.baseUrl, reason: (e as { cause?: { code?: string } }).cause?.code ?? (e as Error).message });
        }
        if (next.done) return;
        yield next.value;
      }
    } finally {
      reader.releaseLock();
      await res.body.cancel().catch(() => {});
    }
  }
}

/** The coded error of a failed answer: the server's `{ error: { code, message } }`, or the status and text. */
function errorOfResponse(status: number, text: string): InfergateError {
  let parsed: ErrorBody | undefined;
  try {
    parsed = JSON.parse(text) as ErrorBody;
  } catch {
    /* not JSON */
  }
  const code = parsed?.error?.code;
  return new InfergateError(isErrorCode(code) ? code : 'InternalError', parsed?.error?.message ?? `HTTP ${status}: ${text}`, parsed?.error?.details);
}

const enc = encodeURIComponent;
