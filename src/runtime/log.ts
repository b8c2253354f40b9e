// The instance host's own log lines (format: protocol/log.ts). Only startup, shutdown and failures are
// logged: nothing here is on the request path (DESIGN.md budgets).

import { formatLogLine, type LogLevel } from '../protocol/log.js';

export type { LogLevel } from '../protocol/log.js';

/**
 * Writes one log line to stderr. Every line the runtime itself writes goes to stderr (as Python's
 * logging does by default, and as the worker does), so the user's own `console.log` output keeps stdout.
 * process.stderr is synchronous for files and pipes on Linux, so a line written just before exit is kept.
 */
export function log(level: LogLevel, logger: string, message: string): void {
  process.stderr.write(formatLogLine(level, logger, message));
}
