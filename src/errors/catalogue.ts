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
  // Autoscale settings (az monitor autoscale; Azure's ResourceNotFound for a target that does not exist)
  InvalidAutoscaleSetting: { status: 400, summary: 'An autoscale setting, profile or rule has one or more problems (metric, condition, counts, schedule, time zone, rule index); the message lists each.' },
  AutoscaleSettingNotFound: { status: 404, summary: 'No autoscale setting (or no profile of it) with that name.' },
  AutoscaleSettingConflict: { status: 409, summary: 'The autoscale setting name, its target resource (one setting per resource) or a profile name is taken already.' },
  ResourceNotFound: { status: 404, summary: 'A resource id names no deployment or endpoint of this workspace.' },
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
  EnvironmentImageNotFound: { status: 500, summary: 'The docker backend cannot find the environment\'s image on this machine (infergate never pulls).' },
  EnvironmentImageBuildFailed: { status: 500, summary: 'Building the environment image (conda file or build context) failed; get-logs has the build output.' },
  ContainerEngineUnavailable: { status: 503, summary: 'The docker backend was asked for and no Docker Engine answers.' },
  // No-code deployments (docs/no-code.md)
  ModelNotServable: { status: 400, summary: 'A no-code model (mlflow_model, triton_model) cannot be served as it is: its MLmodel, flavor, pickle, serialization format or ONNX file is missing, unreadable or unsupported; the message names the file.' },
  // Kubernetes computes (docs/kubernetes.md; Azure's codes where it has one)
  ComputeNotFound: { status: 404, summary: 'No compute with that name is attached (infergate ml compute attach); an endpoint naming it cannot be created.' },
  ComputeAlreadyExists: { status: 409, summary: 'A compute with that name is attached already; detach it first.' },
  ComputeInUse: { status: 409, summary: 'Endpoints still run on the compute; delete them before detaching it.' },
  KubernetesUnaccessible: { status: 503, summary: "The compute's Kubernetes API server could not be reached or refused infergate's credentials." },
  ImagePullLoopBackOff: { status: 500, summary: "The cluster cannot pull the deployment's image (ErrImagePull / ImagePullBackOff)." },
  KubernetesCrashLoopBackOff: { status: 500, summary: "An instance's container keeps crashing (CrashLoopBackOff)." },
  PodOutOfMemory: { status: 500, summary: 'An instance was killed for using more than its memory limit (OOMKilled).' },
  EnvironmentImagePushFailed: { status: 500, summary: "Pushing a built environment image to the compute's registry (--registry) failed; the message has the registry's reason." },
  // Client side
  ServerNotFound: { status: 503, summary: 'No running infergate server was found for this workspace.' },
  ServerUnreachable: { status: 503, summary: 'The infergate server did not answer.' },
  ScoringFailed: { status: 502, summary: 'The scoring request did not succeed.' },
  Timeout: { status: 504, summary: 'The operation did not finish in time.' },
  // Anything else
  InternalError: { status: 500, summary: 'An unexpected error inside infergate.' },
} as const satisfies Record<string, { status: number; summary: string }>;

export type ErrorCode = keyof typeof catalogue;

/**
 * The message templates: one wording per situation, each under the code it is reported with. A code with
 * one situation has a template of its own name (`DeploymentNotFound`); a code reported in several
 * situations (`BadArgument`, `OperationInProgress` ...) has one named template for each. `{name}` is filled
 * from the parameters of errorOf(), whose type requires exactly the names the template uses. docs/errors.md
 * is generated from this table and the catalogue (src/errors/doc.ts); errors.test.ts fails when it is stale.
 * Like Fastify's errors.js (one FST_ERR_* per situation, docs/Reference/Errors.md beside it), scripts and
 * users can rely on a wording as long as its template is here.
 */
export const messages = {
  // Input: the HTTP request itself
  RequestBodyInvalid: { code: 'BadArgument', template: 'The request does not match the route: {problems}.' },
  JsonMalformed: { code: 'BadArgument', template: 'The request body is not valid JSON.' },
  JsonBodyEmpty: { code: 'BadArgument', template: "The request body is empty but its Content-Type is 'application/json'." },
  MediaTypeUnsupported: { code: 'BadArgument', template: "The route does not take a body of Content-Type '{contentType}'." },
  RequestMalformed: { code: 'BadArgument', template: 'The request is malformed ({reason}).' },
  UrlMalformed: { code: 'BadArgument', template: "The request URL '{url}' cannot be decoded." },
  BodyTooLarge: { code: 'BodyTooLarge', template: 'The request body is larger than the limit of {limit} bytes.' },
  BodyTooDeep: { code: 'BodyTooDeep', template: 'The JSON request body nests arrays or objects more than {limit} levels deep.' },
  NestedTooDeeply: { code: 'BodyTooDeep', template: 'The request is nested too deeply to process.' },
  RouteNotFound: { code: 'RouteNotFound', template: 'No route {method} {url}' },
  InternalError: { code: 'InternalError', template: 'An unexpected error occurred in the control plane (request id {requestId}); the details are in the server log.' },
  // Documents against the request that carries them
  DocumentNameMismatch: { code: 'BadArgument', template: "The document names {kind} '{named}' but the request is for '{requested}'." },
  AadTokenUnsupported: { code: 'BadArgument', template: "auth_mode 'aad_token' needs Microsoft Entra ID, which infergate does not use; use 'key' or 'aml_token'." },
  // Containers (docker backend, docs/backends.md)
  ImageNotFound: { code: 'EnvironmentImageNotFound', template: "The image '{image}' is not on this machine, and infergate does not pull images ({reason}). Provide it with 'docker pull {image}' where a registry is reachable, 'docker load -i <file>', or 'docker tag <local image> {image}'." },
  ImageBuildFailed: { code: 'EnvironmentImageBuildFailed', template: 'Building the environment image {tag} from {source} failed: {reason}. The build output is in get-logs.' },
  NodeMissingInImage: { code: 'EnvironmentNotSatisfied', template: "The image '{image}' has no 'node' on its PATH: JavaScript and TypeScript scoring modules need Node.js 20 in the image (Azure's inference images have Python only). Use a Python scoring script, an image with Node.js, or --backend process." },
  NodeMissingForOnnx: { code: 'EnvironmentNotSatisfied', template: "The image '{image}' has no 'node' on its PATH: a no-code ONNX (triton_model) deployment is served by infergate's Node.js instance host with onnxruntime-node. Give the deployment an environment image with Node.js 20, or use --backend process." },
  PythonMissingInImage: { code: 'EnvironmentNotSatisfied', template: "The image '{image}' has no 'python3' on its PATH: the scoring script's host needs Python 3.9 or later in the image." },
  ContainerStartFailed: { code: 'ResourceNotReady', template: 'The container of instance {instance} could not be started: {reason}' },
  ContainerOomKilled: { code: 'ResourceNotReady', template: 'OOMKilled: instance {instance} used more than its memory limit ({limit}, from {source}) and was killed; restarting in {delay} ms (restart {restarts}).' },
  ContainerEngineUnavailable: { code: 'ContainerEngineUnavailable', template: '--backend docker: no Docker Engine answers at {where} ({reason}). Start dockerd, set DOCKER_HOST, or use --backend process.' },
  ContainerTypeInvalid: { code: 'BadArgument', template: "Invalid container type '{container}'. Supported container types are inference-server and storage-initializer" },
  // Kubernetes computes (docs/kubernetes.md)
  ComputeNotFound: { code: 'ComputeNotFound', template: "Compute '{compute}' is not attached to this workspace (attached: {attached}). Attach it with 'infergate ml compute attach --type kubernetes --name {compute} --kubeconfig <file>'; infergate never runs a Kubernetes endpoint locally instead." },
  ComputeAlreadyExists: { code: 'ComputeAlreadyExists', template: "Compute '{compute}' is attached already; detach it first with 'infergate ml compute detach --name {compute}'." },
  ComputeInUse: { code: 'ComputeInUse', template: "Compute '{compute}' still has endpoints: {endpoints}. Delete them before detaching it." },
  ComputeTypeUnsupported: { code: 'BadArgument', template: "Compute type '{type}' is not supported; infergate attaches --type kubernetes." },
  KubeconfigInvalid: { code: 'BadArgument', template: 'The kubeconfig is not usable: {reason}' },
  KubernetesUnaccessible: { code: 'KubernetesUnaccessible', template: "Kubernetes error: compute '{compute}' ({server}) did not answer within {seconds} s or refused the request: {reason}" },
  KubernetesApplyFailed: { code: 'KubernetesUnaccessible', template: "Kubernetes error: applying {object} on compute '{compute}' failed: {reason}" },
  PodImagePullFailed: { code: 'ImagePullLoopBackOff', template: "Instance {instance}: the cluster cannot pull image '{image}' ({reason}): {message}" },
  PodCrashLoop: { code: 'KubernetesCrashLoopBackOff', template: 'Instance {instance} keeps crashing (CrashLoopBackOff, restart {restarts}): {message}' },
  InstanceAssetTokenInvalid: { code: 'Unauthorized', template: 'The instance asset token is missing, malformed, expired, or not for this deployment revision.' },
  InstanceAssetGone: { code: 'ResourceNotFound', template: "Deployment '{deployment}' of endpoint '{endpoint}' has no revision {revision} any more (updated or deleted): nothing to fetch." },
  DryRunNeedsCompute: { code: 'BadArgument', template: "--dry-run renders Kubernetes objects, and endpoint '{endpoint}' names no compute (compute: azureml:<name>): its instances run on this machine." },
  KubernetesRuntimeUnsupported: { code: 'BadArgument', template: "Deployment '{deployment}' of endpoint '{endpoint}' is {runtime}, which a Kubernetes compute cannot run yet: pods run infergate's Python host (scoring scripts, MLflow models) or a custom container. Deploy it to an endpoint without compute (this machine), or as an MLflow model or a scoring script." },
  EndpointComputeImmutable: { code: 'BadArgument', template: "Endpoint '{endpoint}' runs on {current}; an endpoint's compute cannot change ({requested} was asked). Create another endpoint there and move the traffic to it." },
  KubernetesImageNeedsRegistry: { code: 'BadArgument', template: "Deployment '{deployment}' of endpoint '{endpoint}' has an environment infergate builds ({what}), and compute '{compute}' has no registry to push it to. Attach the compute with --registry <a registry the cluster can pull from>, or give the environment only an image." },
  KubernetesImageNeedsEngine: { code: 'ContainerEngineUnavailable', template: "Deployment '{deployment}' of endpoint '{endpoint}' has an environment infergate builds ({what}) for compute '{compute}', and no Docker Engine answers at {where} to build it ({reason}). Start dockerd or set DOCKER_HOST, or give the environment only an image." },
  KubernetesImagePushFailed: { code: 'EnvironmentImagePushFailed', template: "Pushing the environment image {image} to registry '{registry}' of compute '{compute}' failed: {reason}" },
  PodOomKilled: { code: 'PodOutOfMemory', template: 'OOMKilled: instance {instance} used more than its memory limit ({limit}) and was killed (restart {restarts}).' },
  LogFollowUnavailable: { code: 'InternalError', template: 'get-logs --follow is not available: this control plane was started without the workspace logs folder.' },
  // Endpoints and deployments
  EndpointNotFound: { code: 'EndpointNotFound', template: "Endpoint '{endpoint}' not found." },
  EndpointAlreadyExists: { code: 'EndpointAlreadyExists', template: "Endpoint '{endpoint}' already exists. If you want to update it, use 'infergate ml online-endpoint update'." },
  EndpointBeingDeleted: { code: 'OperationInProgress', template: "Endpoint '{endpoint}' is being deleted." },
  DeploymentNotFound: { code: 'DeploymentNotFound', template: "Deployment '{deployment}' not found in endpoint '{endpoint}'." },
  DeploymentAlreadyExists: { code: 'DeploymentAlreadyExists', template: "Deployment '{deployment}' already exists in endpoint '{endpoint}'. If you want to update it, use 'infergate ml online-deployment update'." },
  DeploymentChangedMeanwhile: { code: 'OperationInProgress', template: "Deployment '{deployment}' in endpoint '{endpoint}' was changed by another request (or the autoscaler) while this update was being prepared; nothing was saved. Show it and update again." },
  DeploymentBeingDeleted: { code: 'OperationInProgress', template: "Deployment '{deployment}' is being deleted." },
  DeploymentHasTraffic: { code: 'DeploymentHasTraffic', template: "Deployment '{deployment}' has traffic ({live}% live, {mirror}% mirror); set it to 0 with 'online-endpoint update --traffic' before deleting it." },
  TooManyDeployments: { code: 'TooManyDeployments', template: "Endpoint '{endpoint}' has {count} deployments, the most allowed ({max})." },
  TrafficAtCreate: { code: 'InvalidTraffic', template: "traffic and mirror_traffic can't be set when an endpoint is created; create the deployments first, then use 'online-endpoint update --traffic'." },
  TrafficRulesBroken: { code: 'InvalidTraffic', template: '{problems}' },
  // Keys
  KeyTypeInvalid: { code: 'KeyTypeInvalid', template: "Key type must be 'primary' or 'secondary'." },
  NotKeyAuth: { code: 'NotKeyAuth', template: "Endpoint '{endpoint}' does not use keys for authentication. Its token signing key is rotated with --key-type token." },
  TokenKeyOfKeyEndpoint: { code: 'BadArgument', template: "Endpoint '{endpoint}' uses keys: --key-type token rotates the token signing key of aml_token endpoints." },
  // Control-plane tokens and access (docs/security.md)
  TokenNotFound: { code: 'BadArgument', template: "No token with id '{id}' (see 'infergate token list')." },
  DurationInvalid: { code: 'BadArgument', template: "expires_in '{text}' is not a duration like 30d, 12h, 15m or 90s." },
  DurationOutOfRange: { code: 'BadArgument', template: "expires_in '{text}' must be between 1s and {maxDays}d." },
  HostNotAllowed: { code: 'HostNotAllowed', template: "The control plane does not answer to host '{host}'. If that is its name, start the server with --api-allowed-host {name}." },
  RouteWithoutRole: { code: 'Forbidden', template: 'This route declares no access role; it is refused.' },
  RoleTooLow: { code: 'Forbidden', template: "Token {id} has role '{role}'; {method} {route} needs '{need}' or higher." },
  TooManyFailedAuth: { code: 'TooManyFailedAuth', template: 'Too many failed authentications from {client}; retry in {seconds} s.' },
  TokenMissing: { code: 'Unauthorized', template: "The control plane needs 'Authorization: Bearer <token>' (the local CLI reads <workspace>/owner.token; elsewhere set INFERGATE_TOKEN or run 'infergate login')." },
  AuthorizationAmbiguous: { code: 'Unauthorized', template: "The Authorization header must be exactly one 'Bearer <token>'." },
  TokenMalformed: { code: 'Unauthorized', template: 'The bearer token is not an infergate token (igt_<id>_<secret>).' },
  // The studio's browser sign-in (docs/studio.md)
  StudioCodeInvalid: { code: 'Unauthorized', template: "The studio sign-in link is not valid (unknown, used once already, or older than {seconds} s): run 'infergate studio' for a new one." },
  StudioSessionInvalid: { code: 'Unauthorized', template: "The studio session has ended (signed out, expired, or its token was revoked): run 'infergate studio' to sign in again." },
  StudioCodeNeedsToken: { code: 'Forbidden', template: "A studio sign-in link is given for an API token (Authorization: Bearer), not for a studio session: run 'infergate studio'." },
  StudioHeaderMissing: { code: 'Forbidden', template: "A change made with a studio session needs the header 'X-Infergate-Studio: 1' (cross-site request protection)." },
  StudioNotBuilt: { code: 'RouteNotFound', template: "The studio is not built in this installation ({dir} is missing): run 'npm run build'." },
  TokenUnknown: { code: 'Unauthorized', template: 'The bearer token is not valid (unknown or revoked).' },
  TokenExpired: { code: 'Unauthorized', template: 'The bearer token expired at {expiresAt}.' },
  // Assets (docs/assets.md)
  AssetVersionNotFound: { code: 'AssetNotFound', template: "{Kind} {name} version {version} not found. See 'infergate ml {kind} list -n {name} --include-archived'." },
  AssetLabelUnknown: { code: 'AssetNotFound', template: "Label '{label}' not found for {kind} {name}: the only label is 'latest'." },
  AssetLabelUnresolved: { code: 'AssetNotFound', template: "{Kind} {name} has no version with label '{label}': it is not registered, or every version is archived. See 'infergate ml {kind} list -n {name} --include-archived'." },
  NoAssetStore: { code: 'BadArgument', template: 'This server has no asset store (it was started without a workspace); {what} cannot be {done}.' },
  NoBlobStore: { code: 'BadArgument', template: 'This server has no blob store (it was started without a workspace); files cannot be uploaded.' },
  ScoringScriptInvalid: { code: 'BadArgument', template: 'code_configuration.scoring_script: {problem}' },
  CondaFileNotYaml: { code: 'BadArgument', template: 'conda_file {ref} is not valid YAML: {problem} at line {line}, column {column}.' },
  CondaFileNotMapping: { code: 'BadArgument', template: 'conda_file {ref} is not a mapping (expected name, channels, dependencies)' },
  PipEntryRefused: { code: 'BadArgument', template: "conda_file: pip entry '{entry}' is refused: pip would read a path on the server (a requirements file, a find-links folder, an editable or file: direct reference) as the server's user. Only packages, index URLs (--index-url, --extra-index-url, -i), --trusted-host, --pre and uploaded files are accepted." },
  PipEntryNotUploaded: { code: 'BadArgument', template: "conda_file: pip entry '{entry}' names a local path that was not uploaded with the conda file; the server reads no path a client names (the infergate CLI uploads such files, docs/assets.md \"Uploads\")." },
  PipEntryMissing: { code: 'BadArgument', template: "conda_file: pip entry '{entry}' names {path}, which was not uploaded with the conda file" },
  // Uploads (docs/assets.md "Uploads")
  NotAnUpload: { code: 'BadArgument', template: "{what} '{ref}' is not an upload reference; the server reads no path a client names (docs/assets.md, \"Uploads\")." },
  UploadKindMismatch: { code: 'BadArgument', template: '{what} {ref} is a {actual}, expected a {expected}.' },
  UploadRefInvalid: { code: 'BadArgument', template: "'{ref}' is not an upload reference (upload:sha256:<64 hex digits>)." },
  Sha256Invalid: { code: 'BadArgument', template: "'{sha256}' is not a SHA-256 (64 lower-case hex digits)." },
  BlobBodyMissing: { code: 'BadArgument', template: 'PUT /api/blobs/<sha256> takes the file as an application/octet-stream body.' },
  BlobLengthMismatch: { code: 'BadArgument', template: 'Blob {sha256}: {size} bytes received, Content-Length said {declared}.' },
  BlobHashMismatch: { code: 'BadArgument', template: "Blob {sha256}: the body's SHA-256 is {actual}; a blob is stored only under its own hash (did the file change while it was uploaded?)." },
  BlobIncomplete: { code: 'BadArgument', template: 'Blob {sha256}: the upload did not complete ({reason}).' },
  BlobTooLarge: { code: 'FileTooLarge', template: 'Blob {sha256} is {size} bytes; the largest file the server accepts is {limit} bytes.' },
  ManifestTooLarge: { code: 'BadArgument', template: 'Upload {ref}: the manifest is over {limit} bytes.' },
  UploadNotOnServer: { code: 'BadArgument', template: 'Upload {ref} is not on this server: upload its files and manifest first (PUT /api/blobs/<sha256>; the infergate CLI does this).' },
  UploadIncomplete: { code: 'BadArgument', template: 'Upload {ref} is incomplete: {count} file(s) were not uploaded ({paths}).' },
  UploadSizeMismatch: { code: 'BadArgument', template: "Upload {ref}: '{path}' is listed with {size} bytes but its blob has another size." },
  // Documents (YAML files) and local paths
  DocumentTooDeep: { code: 'BodyTooDeep', template: 'The document nests arrays or objects more than {limit} levels deep.' },
  ServerReadsNoPath: { code: 'BadArgument', template: "'{path}' is a file system path; the server reads no path a client names. Upload the files (PUT /api/blobs/<sha256>, then their manifest) and give upload:sha256:<manifest sha256>; the infergate CLI does this for the paths in your YAML (docs/assets.md, \"Uploads\")." },
  YamlFileTooLarge: { code: 'FileTooLarge', template: "'{path}' is {size} bytes; the limit for {key} is {limit} bytes" },
  PathMissing: { code: 'BadArgument', template: "{what}: No such file or directory: '{path}'" },
  RequestFileMissing: { code: 'RequestFileInvalid', template: "{what}: No such file or directory: '{path}'" },
  PathLoop: { code: 'PathNotReadable', template: "{what} '{path}' is a symbolic-link loop (ELOOP); it names no file" },
  PathPermissionDenied: { code: 'PathNotReadable', template: "{what} '{path}' cannot be read: permission denied ({errno})" },
  PathTooLong: { code: 'PathNotReadable', template: "{what} '{path}' cannot be read: the path is too long (ENAMETOOLONG)" },
  PathUnreadable: { code: 'PathNotReadable', template: "{what} '{path}' cannot be read: {reason}" },
  PathNotRegularFile: { code: 'PathNotReadable', template: "{what} '{path}' is {kind}, not a regular file; only regular files are read" },
  PathNotFileOrFolder: { code: 'PathNotReadable', template: "{what} '{path}' is {kind}, not a regular file or directory; only regular files and directories are read" },
  FileTooLarge: { code: 'FileTooLarge', template: "{what} '{path}' is {size}; the limit is {limit}" },
  FileGrewTooLarge: { code: 'FileTooLarge', template: "{what} '{path}' grew past {limit} while it was read; the limit is {limit}" },
  LinkDangling: { code: 'PathNotReadable', template: "'{path}'{inside} is a symbolic link to a path that does not exist" },
  CopyNotFileOrFolder: { code: 'PathNotReadable', template: "'{path}'{inside} is {kind}; only regular files and directories can be copied" },
  LinkLoop: { code: 'PathNotReadable', template: "'{path}'{inside} is a symbolic-link loop: it leads back to a folder that contains it" },
  LinkOutsideUpload: { code: 'PathNotReadable', template: "'{path}'{inside} is a symbolic link to {target}, outside the folder being uploaded; only links that stay inside it are followed (copy the file in, or upload the folder it is in)" },
  ManifestInvalid: { code: 'BadArgument', template: 'Upload {ref}: the manifest is not valid: {problem}.' },
  PipEntryRelativeInline: { code: 'BadArgument', template: "conda_file: pip entry '{entry}' is a relative path, but the conda file was given inline; give an absolute path" },
  PipEntryNotFound: { code: 'BadArgument', template: "conda_file: pip entry '{entry}' names {path}, which does not exist" },
  AssetAlreadyExists: { code: 'AssetAlreadyExists', template: '{Kind} {name} version {version} already exists. Assets are immutable: register a new version (leave out --version for the next one).' },
  // Compiling a deployment into an instance plan
  CodeConfigurationRequired: { code: 'BadArgument', template: '{where}: code_configuration is required unless the model is an mlflow_model or triton_model (a no-code deployment, docs/no-code.md) or the environment is a custom container (inference_config)' },
  // No-code models (docs/no-code.md): checked when the deployment is created or updated
  MlmodelMissing: { code: 'ModelNotServable', template: "{where}: mlflow_model '{path}' has no MLmodel file (looked for {file}); an MLflow model is a folder with an MLmodel file at its top" },
  MlmodelUnreadable: { code: 'ModelNotServable', template: '{where}: {file} is not a readable MLmodel file: {reason}' },
  MlflowFlavorUnsupported: { code: 'ModelNotServable', template: "{where}: {file}: flavors {flavors} cannot be served without a scoring script; infergate serves python_function over the sklearn flavor (loader_module mlflow.sklearn). Add code_configuration with a score.py to serve this model" },
  MlflowSerializationUnsupported: { code: 'ModelNotServable', template: "{where}: {file}: serialization_format '{format}' is not supported; use pickle or cloudpickle" },
  MlflowPickleMissing: { code: 'ModelNotServable', template: "{where}: {file} names pickled_model '{pickle}', which is not a readable file in the model folder" },
  MlflowSignatureInvalid: { code: 'ModelNotServable', template: '{where}: {file}: the signature cannot be read: {reason}' },
  OnnxModelMissing: { code: 'ModelNotServable', template: "{where}: triton_model '{path}' holds no ONNX model: give a .onnx file or a Triton model repository (<name>/<version>/model.onnx){found}" },
  OnnxModelUnloadable: { code: 'ModelNotServable', template: '{where}: {file} cannot be loaded as an ONNX model: {reason}' },
  NoCodeConfigTooLarge: { code: 'ModelNotServable', template: '{where}: the model\'s signature takes {bytes} bytes as JSON; infergate passes at most {limit} bytes to the instance (about 2,000 columns). Serve this model with a scoring script (code_configuration)' },
  BatchingSettingInvalid: { code: 'BadArgument', template: "{where}: properties '{key}' is '{value}'; {expected}" },
  BatchingNeedsNoCode: { code: 'BadArgument', template: '{where}: batching (properties infergate.batching.*) applies to no-code deployments (mlflow_model or triton_model without code_configuration) only' },
  CodeAssetUnsupported: { code: 'BadArgument', template: "{where}: code '{code}' refers to a registered code asset; give a local folder" },
  ScoringScriptKind: { code: 'BadArgument', template: "{where}: scoring_script '{script}' must be a Python (.py) or JavaScript/TypeScript (.js, .mjs, .cjs, .ts, .mts) file" },
  ModelOutsideWorkspace: { code: 'BadArgument', template: "{where}: model '{uri}' is in a registry or another workspace; register it here with 'infergate ml model create' and refer to it as azureml:<name>:<version>" },
  RegisteredModelWithoutStore: { code: 'BadArgument', template: "{where}: model '{ref}' refers to a registered model, and there is no asset store to resolve it in" },
  AssetUnresolved: { code: 'AssetNotFound', template: "{where}: {kind} '{ref}' does not resolve: {reason}. Register it with 'infergate ml {kind} create', or see 'infergate ml {kind} list -n {name} --include-archived'." },
  // Starting the server: workspace lock, TLS, binding
  WorkspaceLocked: { code: 'WorkspaceLocked', template: 'Another infergate server holds the lock on workspace {workspace}: {holder}. Stop it first, or use another --workspace.' },
  WorkspaceLockFailed: { code: 'InternalError', template: 'Cannot take the workspace lock {file}: {reason}' },
  PlainHttpExposed: { code: 'BadArgument', template: 'Refusing to serve plain HTTP on {where}, a non-loopback address: tokens, endpoint keys and scoring requests would cross the network unencrypted. Serve HTTPS with --tls-cert FILE --tls-key FILE (PEM), or --tls-dev for a development certificate, or pass --insecure to serve plain HTTP anyway.' },
  CertificateNotPem: { code: 'BadArgument', template: '{what} {file}: not a PEM certificate ({reason})' },
  PrivateKeyNotPem: { code: 'BadArgument', template: '--tls-key {file}: not a PEM private key, or one protected by a passphrase ({reason})' },
  PrivateKeyMismatch: { code: 'BadArgument', template: '--tls-key {keyFile} is not the private key of the certificate in --tls-cert {certFile}' },
  CertificateExpired: { code: 'BadArgument', template: '--tls-cert {file}: the certificate expired on {validTo}' },
  TlsPairRejected: { code: 'BadArgument', template: '--tls-cert {certFile} / --tls-key {keyFile}: {reason}' },
  DevCaExpiring: { code: 'BadArgument', template: 'The development CA in {dir} expires on {notAfter}: remove {dir} to make a new one (and trust the new ca.pem).' },
  TlsFlagsIncomplete: { code: 'BadArgument', template: '--tls-cert and --tls-key go together: give both (PEM files), or --tls-dev for a development certificate.' },
  TlsFlagsConflict: { code: 'BadArgument', template: '--tls-dev makes its own certificate: give either --tls-dev or --tls-cert/--tls-key, not both.' },
  RouterTokenMissing: { code: 'BadArgument', template: 'infergate router needs an owner token of the control plane at {control}: --token-file <file>, or $INFERGATE_TOKEN (infergate token create --role owner on the control plane).' },
  RouterControlUrlInvalid: { code: 'BadArgument', template: "--control '{url}' is not the URL of a control plane: give http(s)://host:port, without a user or password (the owner token goes in --token-file or $INFERGATE_TOKEN)." },
  // The CLI: flags, confirmation, output
  TrafficFlagInvalid: { code: 'BadArgument', template: "{flag}: '{pair}' is not of the form <deployment>=<percent> (e.g. \"blue=90 green=10\")" },
  WholeNumberInvalid: { code: 'BadArgument', template: "{flag} must be a whole number of at least {min}, not '{value}'" },
  PortInvalid: { code: 'BadArgument', template: "{flag} must be a port from 0 to 65535, not '{value}'" },
  ConfirmationNeeded: { code: 'BadArgument', template: 'This operation needs confirmation: pass --yes (-y) when not running interactively.' },
  OperationCancelled: { code: 'BadArgument', template: 'Operation cancelled.' },
  EndpointNameMissing: { code: 'BadArgument', template: 'Give the endpoint name with --name or a YAML file with --file.' },
  DeploymentNamesMissing: { code: 'BadArgument', template: 'Give --name and --endpoint-name (or a file with -f).' },
  VersionOrLabel: { code: 'BadArgument', template: 'Give exactly one of --version and --label.' },
  ServerFlagMissing: { code: 'BadArgument', template: 'Give the control plane with --server <url>, e.g. --server https://gpu-box.example:8470.' },
  TokenFlagMissing: { code: 'BadArgument', template: "Give the token with --token <token>, '--token -' (stdin) or $INFERGATE_TOKEN." },
  LocalEndpointNoKeys: { code: 'BadArgument', template: 'Local endpoints take no credentials: invoke them without a key.' },
  AllTrafficWithoutWait: { code: 'BadArgument', template: '--all-traffic does not work with --no-wait: traffic is set only after the deployment succeeds.' },
  QueryInvalid: { code: 'BadArgument', template: "argument --query: invalid JMESPath query '{query}': {reason}" },
  TableOutputUnavailable: { code: 'BadArgument', template: 'Table output unavailable. Use the --query option to specify an appropriate query.' },
  // The CLI: invoke and the server it talks to
  RequestFileNotJson: { code: 'RequestFileInvalid', template: '--request-file {file}: not valid JSON ({reason})' },
  NoDeploymentToInvoke: { code: 'DeploymentNotFound', template: 'No deployment exists for this endpoint' },
  InvokeDeploymentNotFound: { code: 'DeploymentNotFound', template: 'Deployment name {deployment} not found for this endpoint' },
  ScoringUriUnreachable: { code: 'ServerUnreachable', template: 'Could not reach {uri}: {reason}' },
  ScoringFailed: { code: 'ScoringFailed', template: '({status}) {message}' },
  ScoringFailedInModel: { code: 'ScoringFailed', template: '({status}, model {modelStatus}) {message}' },
  ServerNotRunning: { code: 'ServerNotFound', template: "No infergate server is running for workspace {workspace}. Start one with 'infergate server' (or set INFERGATE_HOME, INFERGATE_URL or --server, or run 'infergate login')." },
  LocalServerDidNotStart: { code: 'ServerNotFound', template: 'The local infergate server did not start; see {logFile}' },
  ServerUnreachable: { code: 'ServerUnreachable', template: 'Could not reach the infergate server at {url}: {reason}' },
  // Autoscale settings (az monitor autoscale ...; src/autoscale/settings.ts)
  AutoscaleProblems: { code: 'InvalidAutoscaleSetting', template: '{what} has {count} problems:{problems}' },
  AutoscaleConflicts: { code: 'AutoscaleSettingConflict', template: '{what} has {count} conflicts:{problems}' },
  AutoscaleResourcesNotFound: { code: 'ResourceNotFound', template: '{what} names {count} resources that do not exist:{problems}' },
  AutoscaleNameMissing: { code: 'BadArgument', template: "Give the autoscale setting's name with --name (-n) or --autoscale-name." },
  AutoscaleSettingNotFound: { code: 'AutoscaleSettingNotFound', template: "Autoscale setting '{name}' not found. See 'infergate monitor autoscale list'." },
  AutoscaleProfileNotFound: { code: 'AutoscaleSettingNotFound', template: "Autoscale setting '{name}' has no profile '{profile}' (its profiles: {profiles})." },
  AutoscaleNameInvalid: { code: 'InvalidAutoscaleSetting', template: "'{name}' is not an autoscale setting name: 1 to 260 characters, none of < > * % & : \\ ? / # (Azure's rule)." },
  AutoscaleSettingExists: { code: 'AutoscaleSettingConflict', template: "An autoscale setting named '{name}' exists already; change it with 'infergate monitor autoscale update'." },
  AutoscaleResourceTaken: { code: 'AutoscaleSettingConflict', template: "{resource} has an autoscale setting already ('{existing}'); a resource has at most one." },
  AutoscaleProfileExists: { code: 'AutoscaleSettingConflict', template: "Autoscale setting '{name}' has a profile named '{profile}' already." },
  AutoscaleResourceNotFound: { code: 'ResourceNotFound', template: "{flag} {resource}: no such {kind} in this workspace (give the id 'online-deployment show --query id' or 'online-endpoint show --query properties.\"azureml.onlineendpointid\"' prints)." },
  AutoscaleResourceIdInvalid: { code: 'InvalidAutoscaleSetting', template: "{flag} '{resource}' is not a deployment or endpoint id (/workspaces/<workspace>/onlineEndpoints/<endpoint>[/deployments/<deployment>])." },
  AutoscaleTargetNotDeployment: { code: 'InvalidAutoscaleSetting', template: "--resource {resource} is an endpoint; an autoscale setting scales a deployment: give the deployment's id ('online-deployment show --query id')." },
  AutoscaleConditionInvalid: { code: 'InvalidAutoscaleSetting', template: '--condition \'{condition}\' is not "<metric> <operator> <threshold> <aggregation> <window>" ({reason}), e.g. "CpuUtilizationPercentage > 70 avg 5m".' },
  AutoscaleMetricUnknown: { code: 'InvalidAutoscaleSetting', template: "--condition: unknown metric '{metric}'; the metrics are {metrics}." },
  AutoscaleScaleInvalid: { code: 'InvalidAutoscaleSetting', template: "--scale '{scale}' is not 'out N', 'in N', 'to N', 'out N%' or 'in N%' (N a whole number, at least 1 for out and in)." },
  AutoscaleCooldownInvalid: { code: 'InvalidAutoscaleSetting', template: "--cooldown '{cooldown}' is not a whole number of minutes (or a duration such as 30s, 2m, 1h)." },
  AutoscaleTimeGrainInvalid: { code: 'InvalidAutoscaleSetting', template: "--timegrain '{timegrain}' is not '<avg|min|max|sum> <period>', e.g. \"avg 1m\"." },
  AutoscaleCountInvalid: { code: 'InvalidAutoscaleSetting', template: "{flag} must be a whole number from 0 to {max}, not '{value}'." },
  AutoscaleCapacityMissing: { code: 'InvalidAutoscaleSetting', template: 'Give --count, or --min-count and --max-count.' },
  AutoscaleCapacityMinMax: { code: 'InvalidAutoscaleSetting', template: "Profile '{profile}': the minimum count {min} is greater than the maximum count {max}." },
  AutoscaleCapacityDefault: { code: 'InvalidAutoscaleSetting', template: "Profile '{profile}': the count {count} is outside [minimum {min}, maximum {max}]." },
  AutoscaleRecurrenceInvalid: { code: 'InvalidAutoscaleSetting', template: "--recurrence '{recurrence}': {reason} (e.g. --recurrence week sat sun)." },
  AutoscaleTimeZoneUnknown: { code: 'InvalidAutoscaleSetting', template: "--timezone '{timezone}' is not a time zone infergate knows: give a Windows name such as 'Pacific Standard Time' or an IANA name such as America/Los_Angeles." },
  AutoscaleDateInvalid: { code: 'InvalidAutoscaleSetting', template: "{flag} '{value}' is not {expected}." },
  AutoscaleScheduleInvalid: { code: 'InvalidAutoscaleSetting', template: "Profile '{profile}': {reason}." },
  AutoscaleEnabledInvalid: { code: 'InvalidAutoscaleSetting', template: "--enabled must be true or false, not '{value}'." },
  AutoscaleRuleIndexInvalid: { code: 'InvalidAutoscaleSetting', template: "--index {index}: profile '{profile}' has {count} rule(s){valid}." },
  AutoscaleLimit: { code: 'InvalidAutoscaleSetting', template: '{what} has the most {items} allowed ({max}, as in Azure).' },
  AutoscaleDefaultProfileDelete: { code: 'InvalidAutoscaleSetting', template: "Profile '{profile}' is the default profile of autoscale setting '{name}' (the one that runs when no other applies); it cannot be deleted. Delete the setting, or change the profile with 'monitor autoscale update'." },
  // infergate serve: azmlinfsrv's wordings (contract §5), so scripts written against it keep matching
  ServeEntryScriptMissing: { code: 'BadArgument', template: 'Provide the scoring script with --entry-script (e.g. --entry-script score.py).' },
  ServePortInvalid: { code: 'BadArgument', template: "Specified port '{port}' is invalid. Please specify a port within range the [1, 65535] range." },
  ServeWorkerCountInvalid: { code: 'BadArgument', template: "Specified worker count '{workers}' is invalid. Please specify a worker count greater than zero." },
  EntryScriptNotFound: { code: 'BadArgument', template: 'The entry script {path} does not exist.' },
  ModelDirNotFound: { code: 'BadArgument', template: 'The model directory {path} does not exist.' },
  PortInUse: { code: 'BadArgument', template: 'Port {port} is already in use: choose another with --port.' },
  ListenFailed: { code: 'BadArgument', template: 'Cannot listen on {host}:{port}: {reason}' },
} as const satisfies Record<string, { code: ErrorCode; template: string }>;

export type Situation = keyof typeof messages;

/** The `{name}` placeholders of a template, as a union of names. */
type Placeholders<T extends string> = T extends `${string}{${infer P}}${infer Rest}` ? P | Placeholders<Rest> : never;
/** What errorOf() needs for a situation: a value for each placeholder of its template, nothing else. */
export type MessageParams<S extends Situation> = { [P in Placeholders<(typeof messages)[S]['template']>]: string | number };

/** Fills `{name}` placeholders; a name without a value is left as written (the types prevent it). */
export function formatMessage(template: string, params: Readonly<Record<string, string | number>>): string {
  return template.replace(/\{([A-Za-z][A-Za-z0-9]*)\}/g, (whole, name: string) => (Object.hasOwn(params, name) ? String(params[name]) : whole));
}

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

/**
 * The error of one situation, with its one wording: `errorOf('DeploymentNotFound', { deployment, endpoint })`.
 * The code (hence the HTTP status) comes from the template's entry; `details` as InfergateError's.
 */
export function errorOf<S extends Situation>(situation: S, ...[params, details]: [Placeholders<(typeof messages)[S]['template']>] extends [never] ? [params?: Record<string, never>, details?: unknown[]] : [params: MessageParams<S>, details?: unknown[]]): InfergateError {
  const m = messages[situation];
  return new InfergateError(m.code, formatMessage(m.template, (params ?? {}) as Record<string, string | number>), details);
}


/**
 * The same error with where it happened in front (`file:line:column: key.path: `, formatProblem's prefix):
 * a template's wording and code are kept, only located, as compilers prefix a diagnostic with its position.
 */
export function locatedError(where: string, err: InfergateError): InfergateError {
  return new InfergateError(err.code, `${where}${err.message.trimStart()}`, err.details);
}
