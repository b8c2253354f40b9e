// How the process backend and an instance host talk (a file path and environment, never an import:
// runtime/ is a leaf that imports only util/).
//
// The instance host is `node dist/runtime/host.js`, started with child_process.fork (an IPC channel).
// Environment it reads:
//   INFERGATE_SOCKET        Unix socket path to listen on for the router's framed connection(s)
//   INFERGATE_INSTANCE_ID   for log lines
//   AZUREML_ENTRY_SCRIPT    absolute path of the scoring script (.py, .js, .mjs, .cjs, .ts, .mts)
//   AML_APP_ROOT            the code folder (Python: put on sys.path; cwd of the workers)
//   AZUREML_MODEL_DIR       the model folder (contract §1.5)
//   WORKER_COUNT            Python worker processes (default 1)
//   INFERGATE_PYTHON        the Python interpreter chosen for the environment
//   SCORING_TIMEOUT_MS      run() timeout (default 3600000, as azmlinfsrv)
//   plus the deployment's environment_variables.
// Messages the host sends over IPC:
export type HostMessage =
  | { type: 'ready'; pid: number }
  | { type: 'init-failed'; code: 'UserScriptInitFailed' | 'UserScriptImportError' | 'UserScriptFunctionNotFound'; message: string };
// Its stdout and stderr are the instance's console log (`get-logs --container inference-server`), lines
// in azmlinfsrv's format `<UTC time> <level initial> [<pid>] <logger> - <message>`; the user script's own
// output goes there unchanged. After 'init-failed' the host exits with code 3 (as azmlinfsrv does).
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
// Exit code 0 on success, 1 with the reason on stderr otherwise.
export const STORAGE_RESULT_PREFIX = 'STORAGE_RESULT ';
export interface StorageResult {
  /** What AZUREML_MODEL_DIR must be: <instanceDir>/azureml-models/<name>/<version> */
  modelDir: string;
  /** What AML_APP_ROOT must be: the copied code folder. */
  appRoot: string;
}
