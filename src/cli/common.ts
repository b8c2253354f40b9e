// What every `infergate` command shares: az's common flags, output through -o/--query, the client of
// the workspace's server, YAML reading and validation errors. main.ts and assets.ts build on these.

import { resolve } from 'node:path';
import { Command, Option } from 'commander';
import { pino, type Logger } from 'pino';
import { Client, resolveServer } from '../client/index.js';
import { validationError, type Problem } from '../errors/index.js';
import { readUserFileSync, YAML_FILE_LIMIT } from '../util/files.js';
import { trustCaFile } from '../util/tls.js';
import { formatOutput, OUTPUT_FORMATS, type OutputFormat } from './output.js';

export interface CommonOptions {
  output: OutputFormat;
  query?: string;
  server?: string;
  workspace?: string;
  cacert?: string;
}

export const print = (text: string): void => {
  process.stdout.write(text);
};

export const emit = (value: unknown, o: CommonOptions): void => print(formatOutput(value, { output: o.output, ...(o.query ? { query: o.query } : {}) }));

/** The client of --server, $INFERGATE_URL, the login, or the server running for the workspace, with its token. */
export const serverClient = (o: CommonOptions): Client => {
  if (o.cacert) trustCaFile(resolve(o.cacert));
  const t = resolveServer({ ...(o.server ? { server: o.server } : {}), ...(o.workspace ? { workspace: o.workspace } : {}) });
  return new Client(t.url, t.token);
};

/** Flags every az command accepts; -g/-w/--subscription are taken and ignored (one workspace per server). */
export function common(cmd: Command): Command {
  return cmd
    .addOption(new Option('-o, --output <format>', 'output format').choices([...OUTPUT_FORMATS]).default('json'))
    .option('--query <jmespath>', 'JMESPath query applied to the output')
    .option('--server <url>', 'control-plane URL (default: $INFERGATE_URL, or the server running for the workspace)')
    .option('--cacert <file>', 'also trust this PEM CA certificate for https:// servers and scoring URIs (default: $INFERGATE_CA_CERT; the local server\'s --tls-dev CA is trusted already)')
    .option('--workspace <dir>', 'workspace directory used to find the server (default: $INFERGATE_HOME or ~/.infergate)')
    .addOption(new Option('-g, --resource-group <name>', 'accepted for az compatibility; ignored').hideHelp())
    .addOption(new Option('-w, --workspace-name <name>', 'accepted for az compatibility; ignored').hideHelp())
    .addOption(new Option('--subscription <id>', 'accepted for az compatibility; ignored').hideHelp())
    .addOption(new Option('--debug', 'accepted for az compatibility').hideHelp())
    .addOption(new Option('--verbose', 'accepted for az compatibility').hideHelp())
    .addOption(new Option('--only-show-errors', 'accepted for az compatibility').hideHelp());
}

/** Collects a repeatable flag whose values may also be space-separated (`--set a=1 b=2 --set c=3`). */
export const collect = (v: string, prev: string[] = []) => [...prev, ...v.split(/\s+/).filter(Boolean)];

/** Every validation problem at once, each as file:line:column: key.path: message. */
export function fail(problems: Problem[], what: string): never {
  throw validationError(problems, what);
}

/**
 * The `-f/--file` YAML: a regular file of at most 4 MiB, else a coded error at once (PathNotReadable for a
 * FIFO, device, socket or link loop, FileTooLarge, BadArgument when it does not exist): `-f /dev/zero` must
 * not read forever, `-f fifo` must not wait for a writer (util/files.ts).
 */
export function readYaml(file: string, what = '--file'): { text: string; path: string } {
  const path = resolve(file);
  return { text: readUserFileSync(path, { what, limit: YAML_FILE_LIMIT }).toString('utf8'), path };
}

export const LOG_FORMATS = ['text', 'json'] as const;
export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];
export type LogLevel = (typeof LOG_LEVELS)[number];

/** The server's log: lines for the server's modules (`log(line)`), with the pino logger behind them as `.logger`. */
export type ServerLog = ((line: string) => void) & { logger: Logger };

/** A line's level by its words: the server's modules write plain lines, and their warnings and failures say so. */
export function levelOfLine(line: string): 'info' | 'warn' | 'error' {
  if (/^WARNING\b|\bwarning:/i.test(line)) return 'warn';
  if (/internal error|\bfailed\b|\berror while\b|\bNOT reloaded\b/i.test(line)) return 'error';
  return 'info';
}

/**
 * `infergate server`'s log on stderr through pino: `json` is one JSON object a line (pino's own: level as a
 * number, time in ISO 8601, msg, and for the access log an `access` object with method, route, status,
 * ms, token_id, plus reqId); `text` is today's format, `<ISO time> <message>`, with an access line's fields
 * after it. Written synchronously: a line is on stderr before the server goes on (and before it exits).
 */
export function serverLog(format: LogFormat, level: LogLevel, out: { write(s: string): unknown } = process.stderr): ServerLog {
  const destination = format === 'json' ? { write: (s: string) => void out.write(s) } : { write: (s: string) => void out.write(textLine(s)) };
  const logger = pino({ level, base: null, timestamp: pino.stdTimeFunctions.isoTime }, destination);
  const log = ((line: string) => logger[levelOfLine(line)](line)) as ServerLog;
  log.logger = logger;
  return log;
}

/** One pino record as today's text line, `<time> <msg>`; an access record as `<time> <method> <route> <status> <ms> ms token=<id> req=<id>`. */
function textLine(json: string): string {
  const { level: _level, time, msg, access, reqId, ...rest } = JSON.parse(json) as Record<string, unknown>;
  const words: string[] = [String(time)];
  if (access !== null && typeof access === 'object') {
    const a = access as Record<string, unknown>;
    words.push(String(a.method), String(a.route ?? '(no route)'), String(a.status), `${String(a.ms)} ms`, `token=${String(a.token_id ?? '-')}`);
  } else {
    words.push(String(msg ?? ''));
  }
  if (reqId !== undefined) words.push(`req=${String(reqId)}`);
  for (const [k, v] of Object.entries(rest)) words.push(`${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`);
  return `${words.join(' ')}\n`;
}
