// The traffic log: one JSON line per scoring request with the columns of Azure's
// AmlOnlineEndpointTrafficLog (contract §6.3). Records go to an in-memory buffer that is written
// asynchronously; when the buffer is full, records are dropped and counted: serving never waits for,
// or fails because of, the log.

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';
import { trafficLogDropped, trafficLogWritten } from './metrics.js';

export interface TrafficRecord {
  method: string;
  path: string;
  endpoint: string;
  deployment: string;
  responseCode: number;
  /** The model's status (0 when the model was not reached). */
  modelStatusCode: number;
  requestPayloadSize: number;
  responsePayloadSize: number;
  userAgent: string;
  xRequestId: string;
  xMsClientRequestId: string;
  totalDurationMs: number;
  requestDurationMs: number;
  responseDurationMs: number;
  authType: 'Key' | 'AMLToken' | 'AADToken' | '';
}

export interface TrafficSink {
  record(r: TrafficRecord): void;
  close(): Promise<void>;
}

export const NO_TRAFFIC_LOG: TrafficSink = { record() {}, close: async () => {} };

const REASONS: Record<number, string> = { 200: 'OK', 401: 'Unauthorized', 404: 'Not Found', 408: 'Request Timeout', 413: 'Payload Too Large', 424: 'Failed Dependency', 429: 'Too Many Requests', 500: 'Internal Server Error', 502: 'Bad Gateway', 503: 'Service Unavailable' };

export class FileTrafficLog implements TrafficSink {
  private buffer: string[] = [];
  private readonly stream: WriteStream;
  private writing = false;
  private timer: NodeJS.Timeout;

  constructor(file: string, private readonly maxBuffered = 10_000, flushMs = 200) {
    mkdirSync(dirname(file), { recursive: true });
    this.stream = createWriteStream(file, { flags: 'a' });
    this.stream.on('error', () => {}); // a broken log must not take the router down
    this.timer = setInterval(() => this.flush(), flushMs).unref();
  }

  record(r: TrafficRecord): void {
    if (this.buffer.length >= this.maxBuffered) {
      trafficLogDropped.inc();
      return;
    }
    const userAgent = r.userAgent.length > 70 ? r.userAgent.slice(0, 70) : r.userAgent;
    this.buffer.push(
      `{"TimeGenerated":"${new Date().toISOString()}","Method":${JSON.stringify(r.method)},"Path":${JSON.stringify(r.path)},"EndpointName":"${r.endpoint}","DeploymentName":"${r.deployment}","Protocol":"HTTP/1.1","ResponseCode":${r.responseCode},"ResponseCodeReason":"${REASONS[r.responseCode] ?? ''}","ModelStatusCode":${r.modelStatusCode},"ModelStatusReason":"${REASONS[r.modelStatusCode] ?? ''}","RequestPayloadSize":${r.requestPayloadSize},"ResponsePayloadSize":${r.responsePayloadSize},"UserAgent":${JSON.stringify(userAgent)},"XRequestId":"${r.xRequestId}","XMSClientRequestId":"${r.xMsClientRequestId}","TotalDurationMs":${r.totalDurationMs.toFixed(3)},"RequestDurationMs":${r.requestDurationMs.toFixed(3)},"ResponseDurationMs":${r.responseDurationMs.toFixed(3)},"AuthType":"${r.authType}"}\n`,
    );
  }

  private flush(): void {
    if (this.writing || this.buffer.length === 0) return;
    const batch = this.buffer;
    this.buffer = [];
    this.writing = true;
    this.stream.write(batch.join(''), () => {
      this.writing = false;
      trafficLogWritten.inc(batch.length);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    while (this.writing) await new Promise((r) => setTimeout(r, 5));
    this.flush();
    await new Promise<void>((r) => this.stream.end(r));
  }
}
