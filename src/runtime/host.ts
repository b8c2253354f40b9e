// The instance host: one running copy of a deployment (an "instance"). Started by the process backend as
// `node dist/runtime/host.js` with child_process.fork; environment and IPC messages are in protocol/messages.ts.
// A .py script with WORKER_COUNT=1 runs under the Python host instead (python/infergate_host.py, direct
// mode: no relay hop; backend/process/supervisor.ts pythonHostFor), unless INFERGATE_PYTHON_HOST=node.
//
//   router ──frames over a Unix socket──▶ host ──▶ JavaScript/TypeScript module, in this process
//                                              └─▶ WORKER_COUNT Python workers, frames over stdin/stdout
//
// DESIGN.md "The instance protocol" is why there is no HTTP here: the router keeps one persistent,
// multiplexed, length-prefixed connection (src/protocol/frame.ts) to each instance. The host accepts any
// number of such connections (ids are chosen by the connecting side and only need to be unique per
// connection) and answers every REQUEST with a RESPONSE of the same id. CANCEL (the router's deadline
// passed, or its client went away) drops a request whose work has not started: one still waiting for a
// Python worker is never run (the worker skips it); one already running finishes, and the router has
// discarded its answer. A JavaScript module's run() starts as its frame is read, so there is nothing to
// drop there. A body streamed in parts (REQUEST_STREAM, then BODY frames) is reassembled here into the
// REQUEST frame it would have been, so the scorers (and the Python workers' protocol) never see parts;
// a CANCEL before the last part drops what was reassembled. Answers the host makes itself because the
// instance failed (worker died, shutting down) go out as INSTANCE_ERROR frames.
//
// Lifecycle (protocol/messages.ts):
//   1. log the settings; import the script and run init() (Python: every worker's init());
//   2. listen on INFERGATE_SOCKET, then IPC {type:'ready', pid}; or on failure IPC {type:'init-failed',
//      code, message} and exit 3, as azmlinfsrv does (contract §5.4). Without an IPC channel (a manual
//      run) the same is printed as a log line;
//   3. SIGTERM/SIGINT (or the backend going away): stop accepting, let in-flight requests finish (at most
//      5 s), stop the workers, exit 0. A Python worker dying is fatal: its requests get 502, the others
//      get their grace period, and the host exits 1 so the backend restarts the instance.
// Nothing is logged per request (DESIGN.md budgets); only start-up, failures and shutdown.

import { existsSync, statSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { extname, resolve } from 'node:path';
import {
  BODY_HEADER_BYTES,
  BODY_LAST,
  encodeResponseHead,
  FRAME_BODY,
  FRAME_CANCEL,
  FRAME_INSTANCE_ERROR,
  FRAME_LIMITS,
  decodeLimits,
  FRAME_REQUEST,
  FRAME_REQUEST_STREAM,
  FRAME_RESPONSE,
  FrameReader,
  HEADER_BYTES,
  type HeaderList,
} from '../protocol/frame.js';
import { HOST_MESSAGE_PREFIX, type HostMessage } from '../protocol/messages.js';
import { formatError, JS_EXTENSIONS, JsScorer, loadScoringModule } from './js-scorer.js';
import { log } from './log.js';
import { FrameWriter } from '../protocol/writer.js';
import { MlflowBatcher } from './mlflow-batcher.js';
import { OnnxScorer, type OnnxNoCode } from './onnx-scorer.js';
import { PythonPool, WORKER_SCRIPT } from './python-pool.js';
import { InitFailure, messageBody, type Peer, type Scorer } from './scorer.js';
import { InstanceAdmission, type GatedPeer } from './admission.js';

const GRACE_MS = 5000;
const CLOSE_WAIT_MS = 1000;
const EXIT_INIT_FAILED = 3;
const EXIT_BAD_CONFIG = 2;
const JSON_HEADERS: HeaderList = [['content-type', 'application/json']];
const SHUTTING_DOWN_BODY = messageBody('The instance is shutting down.');

interface HostConfig {
  /** A Unix socket path, or tcp://HOST:PORT (an instance on another machine, e.g. a Kubernetes pod). */
  listen: { path: string } | { host: string; port: number };
  instanceId: string;
  entryScript: string;
  appRoot: string;
  modelDir: string | undefined;
  workerCount: number;
  python: string;
  scoringTimeoutMs: number;
}

class ConfigError extends Error {}

function readConfig(env: NodeJS.ProcessEnv): HostConfig {
  const socket = env.INFERGATE_SOCKET;
  if (!socket) throw new ConfigError('INFERGATE_SOCKET is not set: the host needs a socket path to listen on.');
  let listen: HostConfig['listen'];
  const tcp = /^tcp:\/\/(.+):(\d+)$/.exec(socket);
  if (tcp) listen = { host: tcp[1].replace(/^\[(.*)\]$/, '$1'), port: Number(tcp[2]) };
  else listen = { path: resolve(socket) };

  const appRoot = resolve(env.AML_APP_ROOT || process.cwd());
  const entry = env.AZUREML_ENTRY_SCRIPT;
  if (!entry) throw new ConfigError('AZUREML_ENTRY_SCRIPT is not set: the host needs the scoring script to run.');

  const wc = env.WORKER_COUNT ?? '1';
  const workerCount = Number(wc);
  if (!Number.isInteger(workerCount) || workerCount <= 0) {
    throw new ConfigError(`Specified worker count '${wc}' is invalid. Please specify a worker count greater than zero.`);
  }
  const st = env.SCORING_TIMEOUT_MS ?? '3600000';
  const scoringTimeoutMs = Number(st);
  if (!Number.isInteger(scoringTimeoutMs) || scoringTimeoutMs < 0) {
    throw new ConfigError(`SCORING_TIMEOUT_MS '${st}' is invalid. Please specify a whole number of milliseconds.`);
  }
  return {
    listen,
    instanceId: env.INFERGATE_INSTANCE_ID || 'local',
    // Relative to the app root, as azmlinfsrv resolves it (contract §5.2).
    entryScript: resolve(appRoot, entry),
    appRoot,
    modelDir: env.AZUREML_MODEL_DIR,
    workerCount,
    python: env.INFERGATE_PYTHON || 'python3',
    scoringTimeoutMs,
  };
}

/** A request whose body is arriving in parts: the REQUEST_STREAM frame, then each BODY frame's part. */
interface Reassembly {
  parts: Buffer[];
  bytes: number;
}

/** One framed connection from a router. */
class Connection implements Peer {
  closed = false;
  /** Our writes to this socket are over its high-water mark: stop reading its requests. */
  writeBlocked = false;
  private readonly out: FrameWriter;
  /** Streamed requests by id, until their last part. */
  private readonly streams = new Map<number, Reassembly>();
  /** This connection as the scorer sees it: through the host's instance admission (./admission.ts). */
  readonly gated: GatedPeer;

  constructor(
    readonly socket: net.Socket,
    host: Host,
  ) {
    this.out = new FrameWriter(socket, {
      onBlockedChange: (blocked) => {
        this.writeBlocked = blocked;
        host.updateReading(this);
      },
      name: 'The router connection',
    });
    this.gated = host.admission.peer(this);
    const reader = new FrameReader((frame, type, id) => {
      if (type === FRAME_REQUEST) host.onRequest(this, frame, id);
      else if (type === FRAME_REQUEST_STREAM) this.streams.set(id, { parts: [frame], bytes: frame.length });
      else if (type === FRAME_BODY) this.onBodyPart(host, frame, id);
      else if (type === FRAME_CANCEL) {
        // A streamed request still arriving is dropped with its parts; a whole one is the scorer's to
        // drop if it has not started (run() cannot be interrupted mid-call, and the router has already
        // answered its client).
        if (!this.streams.delete(id) && !host.admission.cancel(this.gated, id)) host.scorer?.cancel(this.gated, id);
      } else if (type === FRAME_LIMITS) host.admission.setLimits(decodeLimits(frame));
      // RESPONSE frames have no meaning in this direction.
    });
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    socket.on('error', () => {}); // ECONNRESET and friends: 'close' follows and says all we need
    socket.on('close', () => {
      this.closed = true;
      host.connections.delete(this);
    });
  }

  /** The next part of a streamed body; on the last, the whole REQUEST frame is rebuilt and handled. */
  private onBodyPart(host: Host, frame: Buffer, id: number): void {
    const r = this.streams.get(id);
    if (r === undefined) return; // cancelled, or never started: nothing to add to
    const part = frame.subarray(BODY_HEADER_BYTES);
    if (part.length > 0) {
      r.parts.push(part);
      r.bytes += part.length;
    }
    if ((frame[BODY_HEADER_BYTES - 1] & BODY_LAST) === 0) return;
    this.streams.delete(id);
    // One copy, once: the REQUEST_STREAM frame (head and any first part) then the parts, with the
    // length and type of the REQUEST frame it stands for.
    const whole = r.parts.length === 1 ? Buffer.from(r.parts[0]) : Buffer.concat(r.parts, r.bytes);
    whole.writeUInt32BE(whole.length - 4, 0);
    whole[HEADER_BYTES - 1] = FRAME_REQUEST;
    host.onRequest(this, whole, id);
  }

  respond(id: number, status: number, headers: HeaderList, body: Buffer, instanceError = false): void {
    if (this.closed) return;
    this.out.push2(encodeResponseHead(id, status, headers, body.length, instanceError ? FRAME_INSTANCE_ERROR : FRAME_RESPONSE), body);
  }

  sendFrame(frame: Buffer): void {
    if (!this.closed) this.out.push(frame);
  }

  /** Writes what is queued and half-closes; resolves when the socket is closed. */
  end(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.out.flush();
    return new Promise<void>((res) => {
      this.socket.once('close', () => res());
      this.socket.end();
    });
  }
}

class Host {
  readonly connections = new Set<Connection>();
  scorer: Scorer | null = null;
  /** Requests pass here on their way to the scorer (several routers: LIMITS, BUSY; ./admission.ts). */
  readonly admission = new InstanceAdmission((peer, frame, id) => this.scorer!.handle(peer, frame, id));
  private server: net.Server | null = null;
  private workersCongested = false;
  private shuttingDown = false;

  constructor(private readonly cfg: HostConfig) {}

  async start(): Promise<void> {
    const cfg = this.cfg;
    const ext = extname(cfg.entryScript).toLowerCase();
    try {
      if (!existsSync(cfg.appRoot) || !statSync(cfg.appRoot).isDirectory()) {
        throw new InitFailure('UserScriptImportError', `The code folder (AML_APP_ROOT) ${cfg.appRoot} does not exist.`);
      }
      const noCode = readNoCode();
      if (!existsSync(cfg.entryScript)) {
        // A no-code ONNX deployment has no user script: its entry is the model file.
        const what = noCode?.kind === 'onnx' ? `The ONNX model file ${cfg.entryScript}` : `User script at ${cfg.entryScript}`;
        throw new InitFailure('UserScriptImportError', `${what} does not exist.`);
      }
      if (noCode?.kind === 'onnx') {
        // A no-code ONNX model (docs/no-code.md): the entry is the model file, served in this process.
        this.scorer = await startOnnx(cfg.entryScript, noCode as OnnxNoCode);
      } else if (ext === '.py') {
        log('I', 'azmlinfsrv', `Python interpreter: ${cfg.python}; worker script: ${WORKER_SCRIPT}`);
        log('I', 'azmlinfsrv', `Scoring timeout is set to ${cfg.scoringTimeoutMs}`);
        this.scorer = await PythonPool.start({
          python: cfg.python,
          workerCount: cfg.workerCount,
          cwd: cfg.appRoot,
          // Absolute paths for the workers, whatever form the backend gave.
          env: { ...process.env, AML_APP_ROOT: cfg.appRoot, AZUREML_ENTRY_SCRIPT: cfg.entryScript, SCORING_TIMEOUT_MS: String(cfg.scoringTimeoutMs) },
          onCongestion: (congested) => {
            this.workersCongested = congested;
            for (const c of this.connections) this.updateReading(c);
          },
          onFatal: (reason) => void this.shutdown(1, reason),
        });
        this.scorer = withMlflowBatching(this.scorer, noCode);
      } else if (JS_EXTENSIONS.has(ext)) {
        if (cfg.workerCount > 1) {
          log('I', 'azmlinfsrv', `WORKER_COUNT=${cfg.workerCount} does not apply: a JavaScript scoring module runs in the instance host process.`);
        }
        // Relative paths in the module resolve as they do for Python workers (cwd = the code folder).
        process.chdir(cfg.appRoot);
        log('I', 'azmlinfsrv.user_script', `Found user script at ${cfg.entryScript}`);
        this.scorer = new JsScorer(await loadScoringModule(cfg.entryScript), cfg.appRoot);
        log('I', 'azmlinfsrv', `Worker with pid ${process.pid} ready for serving traffic`);
      } else {
        throw new InitFailure(
          'UserScriptImportError',
          `User script at ${cfg.entryScript} is not a scoring script infergate can run: expected .py, .js, .mjs, .cjs, .ts, .mts or .cts.`,
        );
      }
    } catch (err) {
      if (!(err instanceof InitFailure)) throw err;
      initFailed(err);
      return; // no listening, no 'ready': initFailed() exits once the message is out
    }
    if (this.shuttingDown) return; // SIGTERM arrived during init(): shutdown() is already exiting
    await this.listen();
    log('I', 'azmlinfsrv', `Listening on ${'path' in cfg.listen ? cfg.listen.path : `tcp://${cfg.listen.host}:${cfg.listen.port}`}`);
    send({ type: 'ready', pid: process.pid });
  }

  private listen(): Promise<void> {
    const server = net.createServer((socket) => {
      if (this.shuttingDown) {
        socket.destroy();
        return;
      }
      const conn = new Connection(socket, this);
      this.connections.add(conn);
      if (this.workersCongested) this.updateReading(conn);
    });
    this.server = server;
    const l = this.cfg.listen;
    if ('path' in l) {
      // A socket file left by a previous instance that crashed would make listen() fail with EADDRINUSE.
      try {
        unlinkSync(l.path);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      }
    }
    return new Promise<void>((res, rej) => {
      server.once('error', rej);
      const done = () => {
        server.off('error', rej);
        server.on('error', (err) => log('E', 'azmlinfsrv', `Server error: ${formatError(err)}`));
        res();
      };
      if ('path' in l) server.listen(l.path, done);
      else server.listen(l.port, l.host, done);
    });
  }

  onRequest(conn: Connection, frame: Buffer, id: number): void {
    if (this.shuttingDown) {
      conn.respond(id, 503, JSON_HEADERS, SHUTTING_DOWN_BODY, true);
      return;
    }
    this.admission.request(conn.gated, frame, id);
  }

  /**
   * Backpressure: stop reading a connection's requests while its responses cannot be written, or while
   * the Python workers' input pipes are full; resume when both drained.
   */
  updateReading(conn: Connection): void {
    if (conn.closed) return;
    if (conn.writeBlocked || this.workersCongested) conn.socket.pause();
    else conn.socket.resume();
  }

  async shutdown(exitCode: number, reason: string): Promise<void> {
    if (this.shuttingDown) return;
    this.shuttingDown = true;
    const scorer = this.scorer;
    log('I', 'azmlinfsrv', `Shutting down (${reason}); ${scorer?.inflight ?? 0} request(s) in flight.`);
    this.server?.close(); // stop accepting; also removes the socket file
    if (scorer === null) {
      // Still in init(): nothing is served yet. Python workers die with us (PR_SET_PDEATHSIG, stdin EOF).
      process.exit(exitCode);
    }
    const deadline = Date.now() + GRACE_MS;
    while (scorer.inflight > 0 && Date.now() < deadline) await sleep(10);
    if (scorer.inflight > 0) log('W', 'azmlinfsrv', `${scorer.inflight} request(s) still in flight after ${GRACE_MS} ms are abandoned.`);
    await Promise.race([Promise.all([...this.connections].map((c) => c.end())), sleep(CLOSE_WAIT_MS)]);
    await scorer.stop();
    log('I', 'azmlinfsrv', `Instance host stopped (exit code ${exitCode}).`);
    process.exit(exitCode);
  }
}

/** INFERGATE_NO_CODE (a no-code deployment's configuration, docs/no-code.md), or undefined. */
function readNoCode(): OnnxNoCode | { kind: string } | undefined {
  const raw = process.env.INFERGATE_NO_CODE;
  if (!raw) return undefined;
  try {
    return JSON.parse(raw) as OnnxNoCode;
  } catch {
    throw new InitFailure('UserScriptImportError', 'INFERGATE_NO_CODE is not valid JSON.');
  }
}

/** A no-code MLflow deployment with batching on: its requests merged in front of the workers (docs/no-code.md). */
function withMlflowBatching(scorer: Scorer, noCode: { kind: string; batching?: { maxBatchSize: number; maxDelayUs: number } } | undefined): Scorer {
  const b = noCode?.kind === 'mlflow' ? noCode.batching : undefined;
  if (b === undefined || b.maxBatchSize <= 1) return scorer;
  log('I', 'azmlinfsrv', `Batching: up to ${b.maxBatchSize} rows within ${b.maxDelayUs} µs per model call`);
  return new MlflowBatcher(scorer, b.maxBatchSize, b.maxDelayUs);
}

async function startOnnx(modelFile: string, noCode: OnnxNoCode): Promise<Scorer> {
  try {
    return await OnnxScorer.start(modelFile, noCode);
  } catch (err) {
    throw new InitFailure('UserScriptInitFailed', `onnxruntime cannot load the ONNX model ${modelFile}: ${formatError(err)}`);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((res) => setTimeout(res, ms));
}

function send(msg: HostMessage, then?: () => void): void {
  if (typeof process.send === 'function' && process.connected) {
    process.send(msg, undefined, {}, () => then?.());
  } else {
    // No IPC channel (a container on the docker backend, or a manual run): the message as one line on
    // stdout, which the backend reads from the container's log (protocol/messages.ts).
    process.stdout.write(`${HOST_MESSAGE_PREFIX}${JSON.stringify(msg)}\n`, () => then?.());
  }
}

/** Logs the failure (always: the console log must have it), reports it over IPC, exits 3. */
function initFailed(failure: InitFailure): void {
  log('E', 'azmlinfsrv', `init-failed ${failure.code}: ${failure.message.trimEnd()}`);
  send({ type: 'init-failed', code: failure.code, message: failure.message }, () => process.exit(EXIT_INIT_FAILED));
  // If the IPC callback never comes (the parent is gone), exit anyway.
  setTimeout(() => process.exit(EXIT_INIT_FAILED), 2000);
}

async function main(): Promise<void> {
  let cfg: HostConfig;
  try {
    cfg = readConfig(process.env);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    log('C', 'azmlinfsrv', err.message);
    process.exit(EXIT_BAD_CONFIG);
  }
  log('I', 'azmlinfsrv', `infergate instance host (azmlinfsrv-compatible), instance ${cfg.instanceId}, pid ${process.pid}, Node ${process.version}`);
  log('I', 'azmlinfsrv', `Entry script: ${cfg.entryScript}`);
  log('I', 'azmlinfsrv', `Code folder (AML_APP_ROOT): ${cfg.appRoot}`);
  if (cfg.modelDir === undefined) log('W', 'azmlinfsrv', "The environment variable 'AZUREML_MODEL_DIR' has not been set.");
  else log('I', 'azmlinfsrv', `Model directory (AZUREML_MODEL_DIR): ${cfg.modelDir}`);
  log('I', 'azmlinfsrv', `Worker count: ${cfg.workerCount}`);

  const host = new Host(cfg);
  process.on('SIGTERM', () => void host.shutdown(0, 'SIGTERM'));
  process.on('SIGINT', () => void host.shutdown(0, 'SIGINT'));
  // The backend holds the other end of the IPC channel; if it is gone, nobody will ever stop this instance.
  if (typeof process.send === 'function') process.on('disconnect', () => void host.shutdown(0, 'the IPC channel to the backend closed'));
  await host.start();
}

main().catch((err: unknown) => {
  log('C', 'azmlinfsrv', `The instance host failed: ${formatError(err)}`);
  process.exit(1);
});
