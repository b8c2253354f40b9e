// The traffic log: one JSON line per scoring request with the columns of Azure's
// AmlOnlineEndpointTrafficLog (contract §6.3). Records go to an in-memory buffer that is written
// asynchronously; when the buffer is full, records are dropped and counted: serving never waits for,
// or fails because of, the log.

import { createWriteStream, existsSync, mkdirSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { STATUS_CODES } from 'node:http';
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


/**
 * Records are formatted at once and copied into one of two off-heap buffers: nothing per request stays
 * on the JavaScript heap until the next write (strings kept for a 200 ms flush would survive young-
 * generation collections and be copied, then promoted: measurable GC time on the router under load).
 * A timer writes the filled buffer while the other one takes records; a record that does not fit in
 * the buffer taking records is dropped and counted.
 *
 * The file is rotated by size, as log files are: once it would pass `maxFileBytes`, it becomes
 * `<file>.1` (older ones shift to `.2` ... `.<keepFiles>`, the oldest is deleted) and a new one starts.
 * Under load the router writes ~600 bytes per request: 100 MiB is about 170,000 requests.
 */
export interface TrafficLogOptions {
  /** Size of each of the two buffers: the most one flush interval can hold. Default 4 MiB. */
  bufferBytes?: number;
  flushMs?: number;
  /** Default 100 MiB. */
  maxFileBytes?: number;
  /** Rotated files kept. Default 5. */
  keepFiles?: number;
}

export class FileTrafficLog implements TrafficSink {
  private active: Buffer;
  private spare: Buffer;
  private used = 0;
  private records = 0;
  private stream: WriteStream;
  private fileBytes: number;
  private readonly maxFileBytes: number;
  private readonly keepFiles: number;
  private writing = false;
  private readonly timer: NodeJS.Timeout;
  private isoMs = 0;
  private iso = '';
  // The JSON of the last path and user agent: clients repeat theirs, and JSON.stringify is not free.
  private path = '';
  private pathJson = '""';
  private userAgent = '';
  private userAgentJson = '""';

  constructor(
    private readonly file: string,
    o: TrafficLogOptions = {},
  ) {
    mkdirSync(dirname(file), { recursive: true });
    this.active = Buffer.allocUnsafe(o.bufferBytes ?? 4 * 1024 * 1024);
    this.spare = Buffer.allocUnsafe(o.bufferBytes ?? 4 * 1024 * 1024);
    this.maxFileBytes = o.maxFileBytes ?? 100 * 1024 * 1024;
    this.keepFiles = Math.max(1, o.keepFiles ?? 5);
    this.fileBytes = existsSync(file) ? statSync(file).size : 0;
    this.stream = this.open();
    this.timer = setInterval(() => this.flush(), o.flushMs ?? 200).unref();
  }

  private open(): WriteStream {
    const stream = createWriteStream(this.file, { flags: 'a' });
    stream.on('error', () => {}); // a broken log must not take the router down
    return stream;
  }

  /** <file> → <file>.1 → ... → <file>.<keepFiles> (deleted beyond). Writes queued on the old stream still land in the renamed file. */
  private rotate(): void {
    try {
      rmSync(`${this.file}.${this.keepFiles}`, { force: true });
      for (let i = this.keepFiles - 1; i >= 1; i--) if (existsSync(`${this.file}.${i}`)) renameSync(`${this.file}.${i}`, `${this.file}.${i + 1}`);
      renameSync(this.file, `${this.file}.1`);
    } catch {
      return; // keep appending to the current file rather than lose records
    }
    this.stream.end();
    this.stream = this.open();
    this.fileBytes = 0;
  }

  record(r: TrafficRecord): void {
    const now = Date.now();
    if (now !== this.isoMs) {
      this.isoMs = now;
      this.iso = new Date(now).toISOString();
    }
    if (r.path !== this.path) {
      this.path = r.path;
      this.pathJson = JSON.stringify(r.path);
    }
    if (r.userAgent !== this.userAgent) {
      this.userAgent = r.userAgent;
      this.userAgentJson = JSON.stringify(r.userAgent.length > 70 ? r.userAgent.slice(0, 70) : r.userAgent);
    }
    // Method is an HTTP token and the names are validated endpoint/deployment names: nothing to escape.
    const line = `{"TimeGenerated":"${this.iso}","Method":"${r.method}","Path":${this.pathJson},"EndpointName":"${r.endpoint}","DeploymentName":"${r.deployment}","Protocol":"HTTP/1.1","ResponseCode":${r.responseCode},"ResponseCodeReason":"${STATUS_CODES[r.responseCode] ?? ''}","ModelStatusCode":${r.modelStatusCode},"ModelStatusReason":"${STATUS_CODES[r.modelStatusCode] ?? ''}","RequestPayloadSize":${r.requestPayloadSize},"ResponsePayloadSize":${r.responsePayloadSize},"UserAgent":${this.userAgentJson},"XRequestId":"${r.xRequestId}","XMSClientRequestId":"${r.xMsClientRequestId}","TotalDurationMs":${r.totalDurationMs.toFixed(3)},"RequestDurationMs":${r.requestDurationMs.toFixed(3)},"ResponseDurationMs":${r.responseDurationMs.toFixed(3)},"AuthType":"${r.authType}"}\n`;
    // Written as latin1, one byte per character: every field is ASCII except the path and the user agent,
    // which the HTTP parser decoded byte for byte as latin1, so this writes the bytes the client sent.
    if (line.length > this.active.length - this.used) {
      trafficLogDropped.inc();
      return;
    }
    this.used += this.active.write(line, this.used, 'latin1');
    this.records++;
  }

  private flush(): void {
    if (this.writing || this.used === 0) return;
    const full = this.active;
    const bytes = this.used;
    const records = this.records;
    this.active = this.spare;
    this.spare = full;
    this.used = 0;
    this.records = 0;
    this.writing = true;
    if (this.fileBytes > 0 && this.fileBytes + bytes > this.maxFileBytes) this.rotate();
    this.fileBytes += bytes;
    // The stream keeps a reference to the slice until it is written; `full` is not reused before then.
    this.stream.write(full.subarray(0, bytes), () => {
      this.writing = false;
      trafficLogWritten.inc(records);
    });
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    while (this.writing) await new Promise((r) => setTimeout(r, 5));
    this.flush();
    await new Promise<void>((r) => this.stream.end(r));
  }
}
