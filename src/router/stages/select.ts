// Stage 2, select: which endpoint (from the URL: /endpoints/<name>/score or .../swagger.json) and which of
// its deployments serves the request — the one pinned by `azureml-model-deployment` (any deployment,
// whatever its weight, never mirrored), else the weighted split of live traffic — and whether a copy goes
// to the mirror deployment. The endpoint half runs before auth (credentials are per endpoint); the
// deployment half after it, so nothing about deployments is told to a client without a credential.
// The weighted pick and the mirror roll draw from an injected random source (RouterOptions.random).

import { randomUUID } from 'node:crypto';
import type { Http1Request } from '../http1.js';
import type { DeploymentState, EndpointState } from '../state.js';
import { answerError, errorBody, JSON_TYPE } from './answer.js';

export const SCORE_PREFIX = '/endpoints/';
const NO_DEPLOYMENT = errorBody("The endpoint doesn't have any valid deployment with positive weight");
const HEALTHY = '{"status":"Healthy"}';

/** What select found for the request being handled: fields of one object per router, not one per request. */
export class Selection {
  endpoint: EndpointState | null = null;
  /** The URL after /endpoints/<name>: '/score?…' or '/swagger.json'. */
  rest = '';
  isScore = false;
  mirror: DeploymentState | null = null;
}

/** A health answer (not an error): the router is up. */
export function healthy(req: Http1Request): void {
  req.respond(200, ['content-type', JSON_TYPE, 'x-request-id', randomUUID()], HEALTHY);
}

/** The endpoint `req` is for (in `sel`), or null once `req` has been answered (414, 404, health). */
export function selectEndpoint(req: Http1Request, endpoints: ReadonlyMap<string, EndpointState>, maxUrlLength: number, sel: Selection): EndpointState | null {
  const url = req.url;
  if (url.length > maxUrlLength) return refuse(req, 414, errorBody(`URL longer than ${maxUrlLength} characters`));
  if (!url.startsWith(SCORE_PREFIX)) {
    if (url === '/healthz' || url === '/') return void healthy(req), null;
    return refuse(req, 404, errorBody('Not found. Scoring URIs look like /endpoints/<endpoint-name>/score'));
  }
  const slash = url.indexOf('/', SCORE_PREFIX.length);
  const name = slash < 0 ? url.slice(SCORE_PREFIX.length) : url.slice(SCORE_PREFIX.length, slash);
  const rest = slash < 0 ? '' : url.slice(slash);
  const endpoint = endpoints.get(name);
  if (endpoint === undefined) return refuse(req, 404, errorBody(`Endpoint '${name}' not found`));
  // The Open Inference Protocol (v2) of no-code deployments is scoring too: same auth, split, pin, mirror.
  const isScore = rest === '/score' || rest.startsWith('/score?') || rest.startsWith('/v2/') || rest === '/v2';
  const isSwagger = !isScore && (req.method === 'GET' || req.method === 'HEAD') && (rest === '/swagger.json' || rest.startsWith('/swagger.json?'));
  if (!isScore && !isSwagger) return refuse(req, 404, errorBody(`Not found: ${rest || '/'}. The scoring URI is ${SCORE_PREFIX}${name}/score`));
  sel.endpoint = endpoint;
  sel.rest = rest;
  sel.isScore = isScore;
  sel.mirror = null;
  return endpoint;
}

/** The deployment that serves `req` (its mirror in `sel.mirror`), or undefined once `req` has been answered (404). */
export function selectDeployment(req: Http1Request, sel: Selection, random: () => number): DeploymentState | undefined {
  const endpoint = sel.endpoint!;
  const pinned = req.header('azureml-model-deployment');
  if (pinned !== undefined && pinned !== '') {
    const d = endpoint.byName.get(pinned.toLowerCase());
    if (d === undefined) return void refuse(req, 404, errorBody(`Deployment '${pinned}' not found in endpoint '${endpoint.route.name}'`));
    return d;
  }
  const d = pickWeighted(endpoint, random);
  if (d === undefined) return void refuse(req, 404, NO_DEPLOYMENT);
  if (sel.isScore && rollMirror(endpoint, random)) sel.mirror = endpoint.mirror;
  return d;
}

/**
 * The live deployment for one draw of `random` ([0, 1)) over the cumulative weights: weights 90/10 send
 * draws below 0.9 to the first. One deployment with traffic takes no draw.
 */
export function pickWeighted(endpoint: EndpointState, random: () => number): DeploymentState | undefined {
  const n = endpoint.cumulative.length;
  if (n === 0) return undefined;
  if (n === 1) return endpoint.targets[0];
  const r = random() * endpoint.cumulative[n - 1];
  for (let i = 0; i < n; i++) if (r < endpoint.cumulative[i]) return endpoint.targets[i];
  return endpoint.targets[n - 1];
}

/** Whether this request is copied to the mirror: a draw below mirror_traffic's percent. No mirror takes no draw. */
export function rollMirror(endpoint: EndpointState, random: () => number): boolean {
  return endpoint.mirror !== null && random() * 100 < endpoint.mirrorPercent;
}

function refuse(req: Http1Request, status: number, body: string): null {
  answerError(req, status, body, randomUUID(), '');
  return null;
}
