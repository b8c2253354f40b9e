// Stage 6, answer: what the client gets and what is recorded once per request. The router's own error
// answers (its 4xx/5xx, not the model's) are built here and nowhere else, with one header set:
// content-type, x-request-id, azureml-model-deployment when a deployment was selected, retry-after when
// the client should come back (Azure's 429/503 carry it).

import { STATUS_CODES } from 'node:http';
import type { TrafficSink } from '../../telemetry/traffic-log.js';
import type { Http1Request } from '../http1.js';
import type { Flight } from './proxy.js';

export const JSON_TYPE = 'application/json';

/** `{"message": ...}`, the shape of every error body the router writes (Azure's front end does the same). */
export function errorBody(message: string): string {
  return `{"message":${JSON.stringify(message)}}`;
}

/**
 * Answers `req` with an error of the router's own. `deployment` is '' before one is selected (auth,
 * unknown endpoint); `close` ends the connection after it (what the client pipelined is not read).
 */
export function answerError(req: Http1Request, status: number, body: string, requestId: string, deployment: string, retryAfter?: string, close = false): void {
  if (req.destroyed || req.responded) return;
  const headers = ['content-type', JSON_TYPE, 'x-request-id', requestId];
  if (deployment !== '') headers.push('azureml-model-deployment', deployment);
  if (retryAfter !== undefined) headers.push('retry-after', retryAfter);
  req.respond(status, headers, body, close);
}

/**
 * The instance's answer, as the managed front end passes it on: a scoring answer other than 200 becomes
 * 424 with the model's status and reason in headers (contract §4.2); the OpenAPI document's status is
 * passed on as it is. `headers` are the instance's own (router-owned ones already left out). Returns the
 * status the client got.
 */
export function answerModel(f: Flight, status: number, headers: string[], body: Buffer): number {
  let typed = false;
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'content-type') typed = true;
  if (!typed) headers.push('content-type', JSON_TYPE);
  headers.push('x-request-id', f.requestId, 'azureml-model-deployment', f.d.name);
  if (f.clientRequestId !== '') headers.push('x-ms-client-request-id', f.clientRequestId);
  let code = status;
  if (status !== 200 && !f.passesStatus) {
    headers.push('ms-azureml-model-error-statuscode', String(status), 'ms-azureml-model-error-reason', STATUS_CODES[status] ?? 'Error');
    code = 424;
  }
  // Headers that cannot be sent (a name that is not a token, a value with CR/LF or beyond latin1, from
  // the scoring script) are left out by respond(): no response splitting, and the router stays up.
  f.req.respond(code, headers, body);
  return code;
}

/** Final accounting, once per request: the deployment's metrics and the traffic log (never synchronous). */
export function record(log: TrafficSink, f: Flight, status: number, responseBytes: number): void {
  const d = f.d;
  const now = performance.now();
  d.m.requestDuration.observe((now - f.startedAt) / 1000);
  if (status < d.m.byStatus.length) d.m.byStatus[status]++;
  log.record({
    method: f.method,
    path: f.path,
    endpoint: d.endpoint,
    deployment: d.name,
    responseCode: status,
    modelStatusCode: f.modelStatus,
    requestPayloadSize: f.bodyBytes,
    responsePayloadSize: responseBytes,
    userAgent: f.userAgent,
    xRequestId: f.requestId,
    xMsClientRequestId: f.clientRequestId,
    totalDurationMs: now - f.startedAt,
    requestDurationMs: f.bodyDoneAt - f.startedAt,
    responseDurationMs: f.sentAt > 0 && f.modelStatus > 0 ? now - f.startedAt : 0,
    authType: f.authType,
  });
}
