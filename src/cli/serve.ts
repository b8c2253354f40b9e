// `infergate serve`: the local debug server, the counterpart of azmlinfsrv (contract §5.1) —
//
//   infergate serve --entry-script score.py [--model-dir DIR] [--port 5001] [--worker-count N]
//
// No control plane, workspace or key: one scoring script behind an HTTP server on 127.0.0.1:<port>, with
// azmlinfsrv's routes (GET /, GET|POST|OPTIONS /score, GET /swagger.json), status codes and headers.
//
//   client ──HTTP──▶ this process ──frames over a Unix socket──▶ instance host (src/runtime/host.ts)
//                                                               └─▶ Python workers / the JS module
//
// The instance host is the very program the process backend runs for a deployment, started here by the
// same supervisor (backend/process/supervisor.ts: spawn, IPC messages, crash back-off) as a child
// process with INFERGATE_SOCKET on a temporary socket — not loaded in-process — because:
// - a reload must start from a clean slate: Python needs new processes anyway, and an ES module cannot
//   be unloaded (re-importing it leaks the old copy and keeps its module-level state and timers);
// - the host owns its process (process.exit after init-failed, chdir for JS modules, signal handlers);
// - what the user debugs is then exactly what a deployment runs, frames included.
// The HTTP port stays open across reloads: requests that arrive while the script (re)starts wait for it.
//
// Reload: any change under the script's folder (or --app-root) restarts the host, debounced; __pycache__,
// *.pyc, dot-files and node_modules are ignored. When init() or run() fails, the file:line of the user's
// code is picked out of the traceback (Python) or stack (JavaScript) and printed on its own line, so the
// place to fix is visible without reading the whole trace. Ctrl-C / SIGTERM stops everything.

import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, watch, type FSWatcher } from 'node:fs';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type net from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Option, type Command } from 'commander';
import pc from 'picocolors';
import { RestartBackOff, spawnHost, stopHost, superviseHost } from '../backend/process/supervisor.js';
import { errorOf } from '../errors/index.js';
import { InstanceConnection } from '../protocol/client.js';
import { decodeResponse, type ResponseFrame } from '../protocol/frame.js';
import { CONNECTION_HEADERS } from '../protocol/headers.js';

export interface ServeOptions {
  entryScript: string;
  modelDir?: string;
  appRoot?: string;
  port: number;
  host: string;
  workerCount: number;
  python?: string;
  reload: boolean;
}

const DEFAULT_PORT = 5001;
const MAX_BODY_BYTES = 100 * 1024 * 1024;
const RELOAD_DEBOUNCE_MS = 250;
/** Where a frame's lower-case header name is not how HTTP clients expect to see it (contract §5.5). */
const RESPONSE_HEADER_CASE: Record<string, string> = { traceid: 'TraceId' };
const LOG_LINE = /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [DIWEC] \[\d+\] /;

export function serveCommand(program: Command): void {
  program
    .command('serve')
    .description('Run one scoring script locally over HTTP, like azmlinfsrv (no server or workspace needed); reloads when its files change')
    .option('--entry-script <file>', 'the scoring script (score.py, score.mjs, score.ts, ...)')
    .option('--model-dir <dir>', 'the model folder, given to the script as AZUREML_MODEL_DIR')
    .option('--app-root <dir>', "the code folder (AML_APP_ROOT): on Python's path, watched for changes; default: the script's folder")
    .option('--port <port>', `port to listen on (0: any free port)`, String(DEFAULT_PORT))
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .option('--worker-count <n>', 'Python worker processes (WORKER_COUNT)', '1')
    .option('--python <path>', 'Python interpreter (default: $INFERGATE_PYTHON, /usr/bin/python3, python3)')
    .option('--no-reload', 'do not restart the script when its files change')
    // azmlinfsrv's spellings, so `azmlinfsrv --entry_script score.py` works with the name replaced.
    .addOption(new Option('--entry_script <file>').hideHelp())
    .addOption(new Option('--model_dir <dir>').hideHelp())
    .addOption(new Option('--worker_count <n>').hideHelp())
    .action(async (o: Record<string, string | boolean | undefined>) => {
      const str = (...keys: string[]) => keys.map((k) => o[k]).find((v): v is string => typeof v === 'string');
      const entry = str('entryScript', 'entry_script');
      if (entry === undefined) throw errorOf('ServeEntryScriptMissing');
      const port = str('port')!;
      if (!/^\d+$/.test(port) || Number(port) > 65535) {
        throw errorOf('ServePortInvalid', { port });
      }
      const workers = str('worker_count', 'workerCount')!;
      if (!/^\d+$/.test(workers) || Number(workers) <= 0) {
        throw errorOf('ServeWorkerCountInvalid', { workers });
      }
      const modelDir = str('modelDir', 'model_dir');
      const appRoot = str('appRoot');
      const python = str('python');
      await serve({
        entryScript: entry,
        port: Number(port),
        host: str('host')!,
        workerCount: Number(workers),
        reload: o.reload !== false,
        ...(modelDir !== undefined ? { modelDir } : {}),
        ...(appRoot !== undefined ? { appRoot } : {}),
        ...(python !== undefined ? { python } : {}),
      });
    });
}

/** Runs the debug server until SIGINT / SIGTERM. */
export async function serve(opts: ServeOptions): Promise<void> {
  const entryScript = resolve(opts.entryScript);
  if (!existsSync(entryScript) || !statSync(entryScript).isFile()) {
    throw errorOf('EntryScriptNotFound', { path: entryScript });
  }
  const modelDir = opts.modelDir !== undefined ? resolve(opts.modelDir) : undefined;
  if (modelDir !== undefined && !existsSync(modelDir)) throw errorOf('ModelDirNotFound', { path: modelDir });
  const appRoot = resolve(opts.appRoot ?? dirname(entryScript));
  const server = new DebugServer({ ...opts, entryScript, appRoot, ...(modelDir !== undefined ? { modelDir } : {}) });
  await server.start();
  await new Promise<void>((done) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        process.stderr.write(`${signal} again: exiting now\n`);
        process.exit(130);
      }
      stopping = true;
      server.log('I', `${signal}: stopping`);
      server.stop().then(done, done);
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
}

/** A location in the user's code, out of a traceback or stack. */
export interface CodeLocation {
  file: string;
  line: number;
  func?: string;
}

/**
 * Where in the user's code an error happened: the innermost frame in one of `userDirs` (else the innermost
 * frame at all). Python tracebacks list the innermost frame last; JavaScript stacks list it first.
 */
export function findErrorLocation(trace: string, userDirs: string[]): CodeLocation | undefined {
  const frames: CodeLocation[] = [];
  // `, in <function>` is missing for a SyntaxError, which points at the line that does not parse.
  const py = /^\s*File "([^"]+)", line (\d+)(?:, in (\S+))?/gm;
  for (let m = py.exec(trace); m !== null; m = py.exec(trace)) frames.unshift({ file: m[1], line: Number(m[2]), ...(m[3] ? { func: m[3] } : {}) });
  if (frames.length === 0) {
    const js = /^\s*at (?:(.+?) \()?(?:file:\/\/)?(\/[^():]+):(\d+):\d+\)?\s*$/gm;
    for (let m = js.exec(trace); m !== null; m = js.exec(trace)) {
      frames.push({ file: decodeURIComponent(m[2]), line: Number(m[3]), ...(m[1] ? { func: m[1].replace(/^async /, '') } : {}) });
    }
  }
  const inUserCode = (f: CodeLocation) => userDirs.some((d) => f.file === d || f.file.startsWith(d.endsWith(sep) ? d : d + sep));
  return frames.find(inUserCode) ?? frames[0];
}

/** The exception line of a traceback or stack: Python's last line, JavaScript's first. */
export function errorSummary(trace: string): string {
  const lines = trace.split('\n').map((l) => l.trimEnd()).filter((l) => l.trim() !== '');
  if (lines.some((l) => /^\s*File "/.test(l))) return lines[lines.length - 1]?.trim() ?? '';
  return lines.find((l) => !/^\s*at /.test(l))?.trim() ?? '';
}

type HostState =
  | { kind: 'starting' }
  | { kind: 'ready'; client: InstanceConnection }
  | { kind: 'failed'; message: string };

interface RunningHost {
  child: ChildProcess;
  socket: string;
  stopping: boolean;
}

class DebugServer {
  private readonly tmp = mkdtempSync(join(tmpdir(), 'infergate-serve-'));
  private readonly version: string;
  private readonly python: string;
  private readonly watchDirs: string[];
  private http: http.Server | null = null;
  private port = 0;
  private state: HostState = { kind: 'starting' };
  private waiters: Array<() => void> = [];
  private host: RunningHost | null = null;
  private generation = 0;
  private watchers: FSWatcher[] = [];
  private reloadTimer: NodeJS.Timeout | null = null;
  private reloading: Promise<void> | null = null;
  private reloadAgain = false;
  private stopped = false;
  /** The process backend's crash back-off; a reload (the user's edit) starts it afresh. */
  private readonly backOff = new RestartBackOff();
  private readyAt = 0;

  constructor(private readonly o: ServeOptions & { appRoot: string }) {
    this.version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
    this.python = o.python ?? process.env.INFERGATE_PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
    const scriptDir = dirname(o.entryScript);
    this.watchDirs = scriptDir === o.appRoot || scriptDir.startsWith(o.appRoot + sep) ? [o.appRoot] : [o.appRoot, scriptDir];
  }

  log(level: 'I' | 'W' | 'E', message: string): void {
    const iso = new Date().toISOString();
    process.stderr.write(`${iso.slice(0, 10)} ${iso.slice(11, 19)},${iso.slice(20, 23)} ${level} [${process.pid}] infergate.serve - ${message}\n`);
  }

  async start(): Promise<void> {
    const server = http.createServer((req, res) => void this.onRequest(req, res));
    server.keepAliveTimeout = 5000;
    await new Promise<void>((res, rej) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        rej(err.code === 'EADDRINUSE' ? errorOf('PortInUse', { port: this.o.port }) : errorOf('ListenFailed', { host: this.o.host, port: this.o.port, reason: err.message })),
      );
      server.listen(this.o.port, this.o.host, () => res());
    });
    this.http = server;
    this.port = (server.address() as net.AddressInfo).port;
    this.printBanner();
    if (this.o.reload) this.watch();
    this.startHost();
  }

  private printBanner(): void {
    const o = this.o;
    const addr = `${o.host.includes(':') ? `[${o.host}]` : o.host}:${this.port}`;
    const lines = [
      `infergate inference server v${this.version} (azmlinfsrv-compatible debug server)`,
      '',
      '',
      'Server Settings',
      '---------------',
      `Entry Script Name: ${o.entryScript}`,
      `Model Directory: ${o.modelDir ?? 'None'}`,
      `App Root: ${o.appRoot}`,
      `Worker Count: ${o.workerCount}`,
      `Server Port: ${this.port}`,
      ...(o.entryScript.endsWith('.py') ? [`Python Interpreter: ${this.python}`] : []),
      `Inferencing HTTP server version: infergate/${this.version}`,
      `Reload on change: ${o.reload ? this.watchDirs.join(', ') : 'off'}`,
      '',
      'Server Routes',
      '---------------',
      `Liveness Probe: GET   ${addr}/`,
      `Score:          POST  ${addr}/score`,
      `Swagger:        GET   ${addr}/swagger.json`,
      '',
    ];
    process.stdout.write(lines.join('\n') + '\n');
  }

  // ---- the instance host -------------------------------------------------------------------------------

  private startHost(): void {
    const gen = ++this.generation;
    const socket = join(this.tmp, `host-${gen}.sock`);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      INFERGATE_SOCKET: socket,
      INFERGATE_INSTANCE_ID: 'serve',
      AZUREML_ENTRY_SCRIPT: this.o.entryScript,
      AML_APP_ROOT: this.o.appRoot,
      WORKER_COUNT: String(this.o.workerCount),
      INFERGATE_PYTHON: this.python,
      HTTP_X_MS_SERVER_VERSION: process.env.HTTP_X_MS_SERVER_VERSION ?? `infergate/${this.version}`,
    };
    if (this.o.modelDir !== undefined) env.AZUREML_MODEL_DIR = this.o.modelDir;
    else delete env.AZUREML_MODEL_DIR;
    const child = spawnHost({ env, cwd: this.o.appRoot });
    const running: RunningHost = { child, socket, stopping: false };
    this.host = running;
    this.state = { kind: 'starting' };
    child.stdout!.pipe(process.stdout, { end: false });
    this.followStderr(child, gen);

    superviseHost(
      child,
      {
        onReady: () => {
          if (gen !== this.generation) return;
          this.readyAt = Date.now();
          // The router's framed client (protocol/client.ts); it connects with the first request. The host
          // sends 'ready' once its socket listens, so that connection is expected to succeed; if it fails
          // or drops, the host is going away and onExit below starts the next one (see exchange()).
          this.setState({ kind: 'ready', client: new InstanceConnection({ socketPath: socket }) });
          this.log('I', `The scoring script is ready: http://${this.o.host}:${this.port}/score`);
        },
        onInitFailed: (_code, message) => {
          if (gen !== this.generation) return;
          this.setState({ kind: 'failed', message });
          this.reportFailure('init()', message);
        },
        onExit: (exit) => {
          if (gen !== this.generation || exit.kind === 'init-failed') return; // init-failed: wait for a change
          const how = exit.signal !== null ? `signal ${exit.signal}` : `exit code ${exit.code}`;
          if (exit.kind === 'exited-before-ready') {
            // Unlike a deployment, nothing is gained by starting it again unchanged: the user's edit reloads it.
            this.setState({ kind: 'failed', message: `The instance host exited (${how}) before the script was ready. See the log above.` });
            this.log('E', `The instance host exited (${how}) before the script was ready; waiting for a change to reload.`);
            return;
          }
          // It was serving and died (e.g. a Python worker crashed): start it again, backing off as a deployment does.
          const delay = this.backOff.next(this.readyAt);
          this.log('W', `The instance host exited (${how}); restarting it in ${delay} ms.`);
          this.state = { kind: 'starting' };
          setTimeout(() => {
            if (gen === this.generation && !this.stopped) this.startHost();
          }, delay).unref();
        },
      },
      () => running.stopping || this.stopped,
    );
  }

  /** Copies the host's console log to ours, and reports where run() failed when a traceback goes by. */
  private followStderr(child: ChildProcess, gen: number): void {
    let partial = '';
    let block: string[] | null = null;
    let flushTimer: NodeJS.Timeout | null = null;
    const flush = () => {
      if (flushTimer !== null) clearTimeout(flushTimer);
      flushTimer = null;
      if (block === null) return;
      const text = block.join('\n');
      block = null;
      if (gen === this.generation && this.state.kind === 'ready') this.reportFailure('run()', text);
    };
    child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      const lines = (partial + chunk.toString('utf8')).split('\n');
      partial = lines.pop()!;
      for (const line of lines) {
        const start = line.indexOf('Encountered Exception: ');
        if (LOG_LINE.test(line)) {
          flush();
          if (start >= 0) block = [line.slice(start + 'Encountered Exception: '.length)];
        } else if (block !== null) {
          block.push(line);
        }
      }
      if (block !== null) {
        if (flushTimer !== null) clearTimeout(flushTimer);
        flushTimer = setTimeout(flush, 50);
      }
    });
    child.stderr!.on('end', flush);
  }

  /** Prints the file:line of the user's code where init() or run() failed, and the exception line. */
  private reportFailure(what: 'init()' | 'run()', trace: string): void {
    const where = findErrorLocation(trace, this.watchDirs);
    const lines: string[] = [];
    if (where === undefined) {
      // No traceback (e.g. "does not have a run() function defined"): the message is the whole story.
      lines.push(pc.red(pc.bold(`✖ ${what} failed: ${trace.split('\n')[0]}`)));
    } else {
      const summary = errorSummary(trace.replace(/^User's init function failed: /, '')) || trace.split('\n')[0];
      lines.push(pc.red(pc.bold(`✖ ${what} failed at ${where.file}:${where.line}${where.func ? ` in ${where.func}()` : ''}`)), pc.red(`    ${summary}`));
    }
    if (what === 'init()') lines.push(this.o.reload ? '  Fix the script and save it: infergate serve reloads it.' : '  Fix the script and restart infergate serve.');
    process.stderr.write(lines.join('\n') + '\n');
  }

  private setState(s: HostState): void {
    this.state = s;
    if (s.kind !== 'starting') {
      const w = this.waiters;
      this.waiters = [];
      for (const f of w) f();
    }
  }

  private async stopHost(): Promise<void> {
    const h = this.host;
    if (h === null) return;
    this.host = null;
    h.stopping = true;
    if (this.state.kind === 'ready') this.state.client.close();
    this.state = { kind: 'starting' };
    await stopHost(h.child, 8000);
  }

  // ---- reload --------------------------------------------------------------------------------------------

  private watch(): void {
    for (const dir of this.watchDirs) {
      try {
        const w = watch(dir, { recursive: true }, (_event, filename) => {
          const name = filename === null ? '' : filename.toString();
          if (name !== '' && ignoredChange(name)) return;
          this.scheduleReload(name === '' ? dir : join(dir, name));
        });
        w.on('error', (err) => this.log('W', `Watching ${dir} failed (${err.message}); reload on change is off.`));
        this.watchers.push(w);
      } catch (err) {
        this.log('W', `Cannot watch ${dir} (${(err as Error).message}); reload on change is off.`);
      }
    }
  }

  private scheduleReload(file: string): void {
    if (this.stopped) return;
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => {
      this.reloadTimer = null;
      void this.reload(file);
    }, RELOAD_DEBOUNCE_MS);
  }

  private async reload(file: string): Promise<void> {
    if (this.reloading !== null) {
      this.reloadAgain = true;
      return;
    }
    this.log('I', `Detected a change in ${relative(process.cwd(), file) || file}: reloading the scoring script.`);
    this.reloading = (async () => {
      await this.stopHost();
      this.backOff.reset();
      if (!this.stopped) this.startHost();
    })();
    await this.reloading;
    this.reloading = null;
    if (this.reloadAgain) {
      this.reloadAgain = false;
      await this.reload(file);
    }
  }

  // ---- HTTP ------------------------------------------------------------------------------------------------

  /** Resolves once the script is ready or has failed to start. */
  private settled(): Promise<void> {
    if (this.state.kind !== 'starting') return Promise.resolve();
    return new Promise((res) => this.waiters.push(res));
  }

  private async onRequest(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const t0 = performance.now();
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch (err) {
      this.reply(res, 413, JSON.stringify({ message: (err as Error).message }), method, url, t0);
      return;
    }
    // Flat name, value pairs: the framed client's shape (InstanceConnection.send).
    const headers: string[] = [];
    let requestId: string | undefined;
    const raw = req.rawHeaders;
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toLowerCase();
      if (CONNECTION_HEADERS.has(name)) continue;
      // A frame's header name and value lengths are u16 (docs/protocol.md); Node's own header limit
      // (16 KiB) is lower, so this holds unless --max-http-header-size raised it.
      if (Buffer.byteLength(raw[i + 1]) > 0xffff || Buffer.byteLength(name) > 0xffff) {
        this.reply(res, 431, JSON.stringify({ message: `Request header '${raw[i]}' is too large` }), method, url, t0);
        return;
      }
      if (name === 'x-request-id') {
        requestId ??= raw[i + 1];
        continue; // sent once, last, by the framed client
      }
      headers.push(name, raw[i + 1]);
    }
    // azmlinfsrv makes up a request id when the client sent none (contract §5.5).
    requestId ??= randomUUID();

    let answer: ResponseFrame | undefined;
    for (let attempt = 0; answer === undefined && attempt < 3; attempt++) {
      await this.settled();
      const s = this.state;
      if (s.kind === 'failed') {
        const first = s.message.split('\n')[0];
        this.reply(res, 503, JSON.stringify({ message: `The scoring script is not running: ${first} Fix it and save: infergate serve reloads it.` }), method, url, t0);
        return;
      }
      if (s.kind !== 'ready') continue;
      answer = await this.exchange(s.client, method, url, headers, requestId, body);
      // Undefined: the host went away mid-request (a reload or a crash): one more try on the next host.
      if (answer === undefined && this.stopped) break;
    }
    if (answer === undefined) {
      this.reply(res, 502, JSON.stringify({ message: 'The instance host went away while handling the request. Check the log.' }), method, url, t0);
      return;
    }
    res.statusCode = answer.status;
    for (const [k, v] of answer.headers) res.appendHeader(RESPONSE_HEADER_CASE[k] ?? k, v);
    res.setHeader('content-length', answer.body.length);
    res.end(answer.body);
    this.accessLog(method, url, answer.status, t0, answer.body.length);
  }

  /**
   * One request over the host's framed connection; undefined when the connection failed first. No
   * deadline of ours: the host applies SCORING_TIMEOUT_MS to run(), as azmlinfsrv does. A failed
   * connection means the host is going away: requests wait for the next one (onExit restarts it, a
   * reload replaces it) instead of trying this connection again.
   */
  private exchange(client: InstanceConnection, method: string, url: string, headers: readonly string[], requestId: string, body: Buffer): Promise<ResponseFrame | undefined> {
    return new Promise((resolve) => {
      client.send(method, url, headers, requestId, body, {
        deadline: Infinity,
        // An INSTANCE_ERROR frame (a worker died, the host is stopping) has RESPONSE's payload: its
        // 502/503 is passed on as it is. Copied: the answer outlives this callback.
        onResponse: (frame) => resolve(decodeResponse(Buffer.from(frame))),
        onFailure: () => {
          if (client.broken && this.state.kind === 'ready' && this.state.client === client) {
            this.state = { kind: 'starting' };
            client.close();
          }
          resolve(undefined);
        },
      });
    });
  }

  private reply(res: ServerResponse, status: number, body: string, method: string, url: string, t0: number): void {
    res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.setHeader('content-length', Buffer.byteLength(body));
    res.end(body);
    this.accessLog(method, url, status, t0, Buffer.byteLength(body));
  }

  /** azmlinfsrv's access log line: `POST /score 200 12.345ms 39` (contract §5.1). */
  private accessLog(method: string, url: string, status: number, t0: number, length: number): void {
    this.log('I', `${method} ${url} ${status} ${(performance.now() - t0).toFixed(3)}ms ${length}`);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.reloadTimer !== null) clearTimeout(this.reloadTimer);
    for (const w of this.watchers) w.close();
    const closed = new Promise<void>((res) => (this.http ? this.http.close(() => res()) : res()));
    this.http?.closeIdleConnections();
    await this.stopHost();
    this.setState({ kind: 'failed', message: 'The server is stopping.' });
    this.http?.closeAllConnections();
    await closed;
    rmSync(this.tmp, { recursive: true, force: true });
    this.log('I', 'Stopped.');
  }
}

/** Changes that are not the user's edits: Python's byte code, editors' and tools' hidden files, packages. */
function ignoredChange(name: string): boolean {
  const parts = name.split(/[\\/]/);
  if (parts.some((p) => p === '__pycache__' || p === 'node_modules' || (p.startsWith('.') && p.length > 1))) return true;
  const base = parts[parts.length - 1];
  return base.endsWith('.pyc') || base.endsWith('~') || base.endsWith('.swp') || base.endsWith('.swx') || /^\d+$/.test(base) || base.startsWith('#');
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((res, rej) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let tooLarge = false;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY_BYTES) tooLarge = true;
      else chunks.push(c);
    });
    req.on('end', () => (tooLarge ? rej(new Error(`Request body larger than ${MAX_BODY_BYTES} bytes`)) : res(Buffer.concat(chunks, size))));
    req.on('error', rej);
  });
}
