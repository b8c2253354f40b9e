// An instance host's stdout when its HostMessage comes as a line on it (HOST_MESSAGE_PREFIX,
// protocol/messages.ts): every host in a container (backend/docker) and the Python host on the process
// backend (process/supervisor.ts). The first such line is taken out and handed over; everything else is
// the console log.

import { HOST_MESSAGE_PREFIX, type HostMessage } from '../protocol/messages.js';

/** A longer stdout line before the HostMessage is the script's output (16x that if it starts as the message: a traceback). */
const MAX_PENDING_LINE = 64 * 1024;

export class HostStdout {
  private pending = '';
  private seen = false;

  constructor(
    private readonly onMessage: (m: Partial<HostMessage>) => void,
    private readonly log: (chunk: Buffer) => void,
  ) {}

  write(chunk: Buffer): void {
    if (this.seen) return this.log(chunk);
    this.pending += chunk.toString('utf8');
    let nl: number;
    while (!this.seen && (nl = this.pending.indexOf('\n')) >= 0) {
      const line = this.pending.slice(0, nl + 1);
      this.pending = this.pending.slice(nl + 1);
      if (line.startsWith(HOST_MESSAGE_PREFIX)) {
        let m: Partial<HostMessage> | undefined;
        try {
          m = JSON.parse(line.slice(HOST_MESSAGE_PREFIX.length)) as Partial<HostMessage>;
        } catch {
          // not a message after all: it is log
        }
        if (m !== undefined) {
          this.seen = true;
          this.onMessage(m);
          continue;
        }
      }
      this.log(Buffer.from(line));
    }
    // After the message, stdout passes through as it comes (the host writes nothing else there); before
    // it, a script printing without newlines is log, not held without bound.
    if ((this.seen || this.pending.length > (this.pending.startsWith(HOST_MESSAGE_PREFIX) ? 16 : 1) * MAX_PENDING_LINE) && this.pending !== '') {
      this.log(Buffer.from(this.pending));
      this.pending = '';
    }
  }

  /** At the end of the output: an unfinished last line, as log. */
  end(): void {
    if (this.pending !== '') this.log(Buffer.from(this.pending + '\n'));
    this.pending = '';
  }
}
