// Console-log lines in azmlinfsrv's format (contract §5.1):
//   `<UTC time> <level initial> [<pid>] <logger> - <message>`, e.g.
//   `2022-12-24 07:37:54,518 I [32756] azmlinfsrv.user_script - Found user script at ...`
// Users grep their `get-logs` output for these lines, and the Python worker prints the same format
// (infergate_worker.py `_Formatter`), so one instance's log reads as one log. Defined here (protocol/)
// because the backends parse what the instance hosts write.

export type LogLevel = 'D' | 'I' | 'W' | 'E' | 'C';

/** `YYYY-MM-DD HH:MM:SS,mmm` in UTC, as Python's logging `asctime` with `converter = time.gmtime`. */
export function logTimestamp(date: Date = new Date()): string {
  const iso = date.toISOString(); // 2024-01-02T03:04:05.678Z
  return `${iso.slice(0, 10)} ${iso.slice(11, 19)},${iso.slice(20, 23)}`;
}

export function formatLogLine(level: LogLevel, logger: string, message: string, pid: number = process.pid): string {
  return `${logTimestamp()} ${level} [${pid}] ${logger} - ${message}\n`;
}
