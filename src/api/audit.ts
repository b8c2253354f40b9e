// The control plane's audit log: `<workspace>/logs/audit.jsonl`, one JSON object per line for every
// change (every non-GET request) and every credential read, with who (token id and role, client
// address), what (method, route, endpoint/deployment/asset names) and the result (status code). Never a
// request body, a key or a token secret: the fields are chosen by auth.ts from names only.
//
// Written asynchronously through one append stream (the request never waits for the disk); a write
// error is reported once to the server log and later lines are still attempted.

import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { dirname } from 'node:path';

export class AuditLog {
  private readonly stream: WriteStream;
  private failed = false;

  constructor(
    readonly file: string,
    private readonly log: (line: string) => void = () => {},
  ) {
    mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    // 0600: who did what is for the workspace's owner only.
    this.stream = createWriteStream(file, { flags: 'a', mode: 0o600 });
    this.stream.on('error', (e) => {
      if (!this.failed) this.log(`audit log ${file}: ${e.message}`);
      this.failed = true;
    });
  }

  record(entry: Record<string, unknown>): void {
    this.stream.write(JSON.stringify(entry) + '\n');
  }

  /** Flushes what was written and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.destroyed) return resolve();
      this.stream.end(() => resolve());
    });
  }
}
