// One catalogue of every error infergate reports, with a stable code. Codes are part of the public
// contract (API bodies, CLI stderr, operation errors): never rename one, only add.
// Where Azure ML has a code for the same situation we use Azure's (ResourceNotReady, UserScriptInitFailed,
// BadArgument ...; contract §3), so scripts that match on them keep working.

export const catalogue = {
  // Input
  ValidationFailed: { status: 400, summary: 'The YAML or request body has one or more problems; details lists each with its location.' },
  BadArgument: { status: 400, summary: 'A command-line flag or API argument is not valid.' },
  InvalidTraffic: { status: 400, summary: 'A traffic or mirror_traffic rule breaks Azure\'s rules.' },
  RequestFileInvalid: { status: 400, summary: 'The --request-file could not be read or is not valid JSON.' },
  KeyTypeInvalid: { status: 400, summary: "Key type must be 'primary' or 'secondary'." },
  NotKeyAuth: { status: 400, summary: 'The endpoint does not use keys for authentication.' },
  BodyTooLarge: { status: 413, summary: 'The request body is larger than the configured limit.' },
  BodyTooDeep: { status: 400, summary: 'The JSON request body nests arrays or objects deeper than the limit.' },
  PathNotReadable: { status: 400, summary: 'A path names something other than a regular file or directory (a FIFO, device or socket), a symbolic-link loop, or cannot be read.' },
  FileTooLarge: { status: 413, summary: 'A file named on the command line or in a YAML file is larger than the limit for its kind.' },
  // Resources
  EndpointNotFound: { status: 404, summary: 'No endpoint with that name exists.' },
  EndpointAlreadyExists: { status: 409, summary: 'An endpoint with that name exists already; use update.' },
  DeploymentNotFound: { status: 404, summary: 'No deployment with that name exists under the endpoint.' },
  DeploymentAlreadyExists: { status: 409, summary: 'A deployment with that name exists already; use update.' },
  DeploymentHasTraffic: { status: 409, summary: 'A deployment with live or mirror traffic cannot be deleted; set it to 0 first.' },
  OperationInProgress: { status: 409, summary: 'Another operation on this endpoint has not finished.' },
  WorkspaceLocked: { status: 409, summary: 'Another infergate server holds the workspace lock; the message names it (pid, URL, start time).' },
  TooManyDeployments: { status: 409, summary: 'The endpoint has the most deployments allowed.' },
  RouteNotFound: { status: 404, summary: 'No such API route.' },
  // Control-plane access (docs/security.md)
  Unauthorized: { status: 401, summary: 'The control plane needs a valid bearer token (missing, malformed, unknown, revoked or expired).' },
  Forbidden: { status: 403, summary: "The token's role does not allow this operation (owner > contributor > reader)." },
  HostNotAllowed: { status: 421, summary: "The request's Host header is not one of the control plane's own names (DNS rebinding protection); see --api-allowed-host." },
  TooManyFailedAuth: { status: 429, summary: 'Too many failed authentications from this client address; retry after the Retry-After seconds.' },
  AssetNotFound: { status: 404, summary: 'No model or environment with that name and version (or label) is registered.' },
  AssetAlreadyExists: { status: 409, summary: 'That name and version is registered already; assets are immutable, register a new version.' },
  // Deployment-time failures (Azure's operation error codes)
  ResourceNotReady: { status: 500, summary: 'An instance did not become ready (crash, failing init(), or probes).' },
  UserScriptInitFailed: { status: 500, summary: 'The scoring script\'s init() raised an error.' },
  UserScriptImportError: { status: 500, summary: 'The scoring script could not be loaded.' },
  UserScriptFunctionNotFound: { status: 500, summary: 'The scoring script does not define init() and run().' },
  StorageInitializerFailed: { status: 500, summary: 'Copying the model or code into the instance failed.' },
  EnvironmentNotSatisfied: { status: 500, summary: 'No interpreter on this machine can run the environment.' },
  // Client side
  ServerNotFound: { status: 503, summary: 'No running infergate server was found for this workspace.' },
  ServerUnreachable: { status: 503, summary: 'The infergate server did not answer.' },
  ScoringFailed: { status: 502, summary: 'The scoring request did not succeed.' },
  Timeout: { status: 504, summary: 'The operation did not finish in time.' },
  // Anything else
  InternalError: { status: 500, summary: 'An unexpected error inside infergate.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof catalogue;

/** One problem found while validating a spec. `path` is the YAML key path (e.g. `request_settings.request_timeout_ms`). */
export interface Problem {
  file?: string;
  line?: number;
  column?: number;
  path: string;
  message: string;
}

export interface ErrorBody {
  error: { code: ErrorCode; message: string; details?: unknown[] };
}

export class InfergateError extends Error {
  readonly code: ErrorCode;
  readonly status: number;
  readonly details: unknown[] | undefined;

  constructor(code: ErrorCode, message: string, details?: unknown[]) {
    super(message);
    this.name = 'InfergateError';
    this.code = code;
    this.status = catalogue[code].status;
    this.details = details;
  }

  toBody(): ErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.details ? { details: this.details } : {}) } };
  }
}

export function isErrorCode(code: unknown): code is ErrorCode {
  return typeof code === 'string' && Object.hasOwn(catalogue, code);
}

/** `file:line:column: path: message`, the way compilers print, so editors can jump to it. */
export function formatProblem(p: Problem): string {
  const where = p.file ? `${p.file}${p.line ? `:${p.line}:${p.column ?? 1}` : ''}: ` : '';
  // One problem per line: Azure's own name message has an embedded newline (contract §1.8).
  return `${where}${p.path ? `${p.path}: ` : ''}${p.message.replace(/\s*\n\s*/g, ' ')}`;
}

export function validationError(problems: Problem[], what: string): InfergateError {
  return new InfergateError(
    'ValidationFailed',
    `${what} has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` + problems.map((p) => '  ' + formatProblem(p)).join('\n'),
    problems,
  );
}
