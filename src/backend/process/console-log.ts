// An instance's console log (inference-server.log, storage-initializer.log): what the process printed,
// appended as it comes, rotated by size like any log file (logrotate's `size` + `rotate N`, the traffic
// log in telemetry/traffic-log.ts): once the file would pass `maxFileBytes` it becomes `<file>.1`, older
// ones shift to `.2` ... `.<keepFiles>`, the oldest goes. A chatty scoring script (a print() per request)
// therefore costs at most (keepFiles + 1) × maxFileBytes of disk per instance.
//
// Writing never holds up the instance: the backend reads the child's stdout/stderr as fast as they come
// and hands each chunk here, never pausing the pipe (a paused pipe would block the host's synchronous
// stdout writes, and with them its serving). If the disk cannot keep up, output beyond `maxPendingBytes`
// waiting to be written is dropped and the log says how much, rather than buffered without bound.

import { constants, createWriteStream, existsSync, mkdirSync, openSync, renameSync, rmSync, statSync, type WriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname } from 'node:path';

export interface ConsoleLogOptions {
  /** A file is rotated before it would grow past this. Default 10 MiB. */
  maxFileBytes?: number;
  /** Rotated files kept besides the current one. Default 2. */
  keepFiles?: number;
  /** Output waiting for the disk beyond this is dropped (and noted in the log). Default 4 MiB. */
  maxPendingBytes?: number;
}

export const CONSOLE_LOG_DEFAULTS: Required<ConsoleLogOptions> = { maxFileBytes: 10 * 1024 * 1024, keepFiles: 2, maxPendingBytes: 4 * 1024 * 1024 };

/** The files of one console log, newest first: `<file>`, `<file>.1`, ... `<file>.<keepFiles>`. */
export function consoleLogFiles(file: string, keepFiles: number): string[] {
  return [file, ...Array.from({ length: keepFiles }, (_, i) => `${file}.${i + 1}`)];
}

export class ConsoleLog {
  private stream: WriteStream;
  private fileBytes: number;
  private dropped = 0;
  private ended: Promise<void> | undefined;
  private readonly o: Required<ConsoleLogOptions>;

  constructor(
    readonly file: string,
    options: ConsoleLogOptions = {},
  ) {
    this.o = { ...CONSOLE_LOG_DEFAULTS, ...options };
    this.o.keepFiles = Math.max(1, this.o.keepFiles);
    mkdirSync(dirname(file), { recursive: true });
    this.fileBytes = existsSync(file) ? statSync(file).size : 0;
    this.stream = this.open();
  }

  write(chunk: Buffer | string): void {
    if (this.ended) return;
    const bytes = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    if (this.stream.writableLength + bytes > this.o.maxPendingBytes) {
      this.dropped += bytes;
      return;
    }
    if (this.dropped > 0) {
      const note = `[infergate: ${this.dropped} bytes of console output dropped: the log file could not keep up]\n`;
      this.dropped = 0;
      this.append(note, Buffer.byteLength(note));
    }
    this.append(chunk, bytes);
  }

  /** Bytes accepted and not yet written to the file (what maxPendingBytes bounds). */
  get pendingBytes(): number {
    return this.stream.writableLength;
  }

  /** Flushes what is pending and closes the file. */
  end(): Promise<void> {
    return (this.ended ??= new Promise<void>((resolve) => this.stream.end(resolve)));
  }

  private append(chunk: Buffer | string, bytes: number): void {
    if (this.fileBytes > 0 && this.fileBytes + bytes > this.o.maxFileBytes) this.rotate();
    this.fileBytes += bytes;
    this.stream.write(chunk);
  }

  private open(): WriteStream {
    // Opened at once (not when the stream gets round to it): a rotation in the same turn must find the
    // file to rename, or two streams would append to one file.
    const stream = createWriteStream('', { fd: openSync(this.file, 'a') });
    stream.on('error', () => {}); // a full or broken disk must not take the backend down
    return stream;
  }

  /** Writes still queued on the old stream land in the renamed file: its descriptor follows the rename. */
  private rotate(): void {
    const files = consoleLogFiles(this.file, this.o.keepFiles);
    try {
      rmSync(files[files.length - 1], { force: true });
      for (let i = files.length - 2; i >= 0; i--) if (existsSync(files[i])) renameSync(files[i], files[i + 1]);
    } catch {
      return; // keep appending to the current file rather than lose output
    }
    this.fileBytes = 0;
    let next: WriteStream;
    try {
      next = this.open();
    } catch {
      return; // keep appending to the renamed file
    }
    this.stream.end();
    this.stream = next;
  }
}

const TAIL_CHUNK = 64 * 1024;

/**
 * The last `lines` lines of a log kept in several files (newest first, as consoleLogFiles gives them),
 * read backwards from the end so a long log costs only what is shown. A line split by a rotation is
 * joined again. Files that are missing, or are not regular files (a FIFO would block a read forever),
 * are skipped.
 */
export async function tailLines(files: string[], lines: number): Promise<string> {
  if (lines <= 0) return '';
  const parts: Buffer[] = [];
  // lines + 1 newlines from the end hold `lines` whole lines, whether or not the log ends with one.
  let newlines = 0;
  for (const file of files) {
    let fh;
    try {
      fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
    } catch {
      continue;
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) continue;
      for (let pos = st.size; pos > 0 && newlines <= lines; ) {
        const len = Math.min(TAIL_CHUNK, pos);
        pos -= len;
        const buf = Buffer.allocUnsafe(len);
        const { bytesRead } = await fh.read(buf, 0, len, pos);
        const chunk = buf.subarray(0, bytesRead);
        parts.unshift(chunk);
        for (let i = 0; i < chunk.length; i++) if (chunk[i] === 0x0a) newlines++;
      }
    } finally {
      await fh.close();
    }
    if (newlines > lines) break;
  }
  return finish(Buffer.concat(parts), lines);
}

function finish(buf: Buffer, n: number): string {
  const all = buf.toString('utf8').split('\n');
  if (all[all.length - 1] === '') all.pop();
  const tail = all.slice(-n);
  return tail.length ? tail.join('\n') + '\n' : '';
}
