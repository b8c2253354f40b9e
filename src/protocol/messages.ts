// How a backend and an instance host talk: environment in, IPC messages and a console log out, and the
// storage initializer's result line. Defined once here (protocol/, a leaf) for the process backend, the
// instance host (runtime/) and `infergate serve`; the docker and Kubernetes backends speak the same.
//
// The instance host is `node dist/runtime/host.js`, started with child_process.fork (an IPC channel).
// Environment it reads:
//   INFERGATE_SOCKET        Unix socket path to listen on for the router's framed connection(s) (a stale
//                           file there is removed first); `tcp://HOST:PORT` listens on TCP instead
//   INFERGATE_INSTANCE_ID   for log lines
//   AZUREML_ENTRY_SCRIPT    absolute path of the scoring script (.py, .js, .mjs, .cjs, .ts, .mts, .cts);
//                           a relative one is resolved against AML_APP_ROOT, as azmlinfsrv does
//   AML_APP_ROOT            the code folder (Python: put on sys.path; cwd of the workers)
//   AZUREML_MODEL_DIR       the model folder (contract §1.5)
//   WORKER_COUNT            Python worker processes (default 1; a JavaScript module runs in the host itself)
//   INFERGATE_PYTHON        the Python interpreter chosen for the environment
//   SCORING_TIMEOUT_MS      run() timeout (default 3600000, as azmlinfsrv; Python only: synchronous
//                           JavaScript cannot be interrupted in-process)
//   HTTP_X_MS_SERVER_VERSION  sent as x-ms-server-version on every answer when set (contract §5.5)
//   SERVICE_NAME, SERVICE_VERSION, SERVICE_PATH_PREFIX  title, version and path prefix of the generated
//                           /swagger.json (§5.7; defaults "ML service", "1.0", "")
//   plus the deployment's environment_variables.
// It answers REQUEST frames as azmlinfsrv answers HTTP (§5.3): url `/` (liveness), `/score[?query]` (run()),
// `/swagger.json[?version=2|3|3.1]`, anything else 404 — the url being the path after the endpoint.
// Messages the host sends over IPC ('ready' once init() succeeded in every worker and the socket is
// listening; exactly one of the two is sent):
export type HostMessage =
  | { type: 'ready'; pid: number }
  | { type: 'init-failed'; code: 'UserScriptInitFailed' | 'UserScriptImportError' | 'UserScriptFunctionNotFound'; message: string };
// A host without an IPC channel (the Python host in a container, src/runtime/python/infergate_host.py;
// its stdout and stderr reach the backend as the container's log) sends the same messages as one line
// each on stdout: HOST_MESSAGE_PREFIX then the message as JSON, e.g.
//   INFERGATE_HOST {"type":"ready","pid":7}
// The backend takes the first such line and writes every other line to the console log.
export const HOST_MESSAGE_PREFIX = 'INFERGATE_HOST ';
// Its stdout and stderr are the instance's console log (`get-logs --container inference-server`), lines
// in azmlinfsrv's format `<UTC time> <level initial> [<pid>] <logger> - <message>`; the user script's own
// output goes there unchanged (the runtime's own lines, and everything a Python script prints, go to
// stderr; a JavaScript module's console.log goes to stdout). After 'init-failed' the host exits with
// code 3 (as azmlinfsrv does).
// Other exit codes: 0 after SIGTERM/SIGINT (in-flight requests get up to 5 s) or when the IPC channel
// closes (the backend is gone); 1 when a Python worker died (its in-flight requests were answered 502;
// restart the instance) or on an internal error; 2 when the environment above is unusable
// (INFERGATE_SOCKET or AZUREML_ENTRY_SCRIPT missing, WORKER_COUNT or SCORING_TIMEOUT_MS not a number).
// Without an IPC channel (a container, a manual run, the process backend's Python host) the host prints each
// message as a HOST_MESSAGE_PREFIX line.
//
// The storage initializer is `node dist/runtime/storage-initializer.js <request.json>` where request.json is:
export interface StorageRequest {
  /** The instance directory; everything is copied below it. */
  instanceDir: string;
  model?: { name: string; version: string; path: string };
  code?: { path: string };
}
// It copies the model to <instanceDir>/azureml-models/<name>/<version>/<basename of path> and the code
// folder to <instanceDir>/azureml-app/<basename of code path>/, prints what it did (one line per step
// with byte and file counts) and prints a last line `STORAGE_RESULT {"modelDir": ..., "appRoot": ...}`.
// Links are copied as the files they point to; an earlier copy in the same instanceDir is replaced.
// modelDir (appRoot) is "" when the request has no model (code). name and version must be plain folder
// names (no "/", "\", "." or "..").
// Exit code 0 on success, 1 with the reason on stderr otherwise.
export const STORAGE_RESULT_PREFIX = 'STORAGE_RESULT ';
export interface StorageResult {
  /** What AZUREML_MODEL_DIR must be: <instanceDir>/azureml-models/<name>/<version> */
  modelDir: string;
  /** What AML_APP_ROOT must be: the copied code folder. */
  appRoot: string;
}
