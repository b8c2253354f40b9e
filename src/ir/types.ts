// The narrow waist between the control plane and the data plane / backends (DESIGN.md "ir/").
// Plain, immutable, JSON-serialisable data. The router sees only RoutingTable; backends see only
// InstancePlan. Neither ever sees a spec.

/**
 * Where a ready instance listens. `framed`: infergate's instance protocol over a Unix socket (every
 * instance infergate's own hosts run). `http`: a custom container (BYOC, an environment with
 * inference_config) that only speaks HTTP: the router forwards to its scoring route on a loopback port,
 * the one place an HTTP hop is right (DESIGN.md "The instance protocol").
 */
export type InstanceAddress =
  | { instanceId: string; transport: 'framed'; socketPath: string }
  | { instanceId: string; transport: 'http'; host: string; port: number; path: string }
  | FramedTcpAddress;

/**
 * infergate's instance protocol over one TCP connection: a pod on a Kubernetes compute (its pod IP and the
 * host's framed port), reached by routers running in the cluster (docs/kubernetes.md). protocol/client.ts
 * connects to it; it joins InstanceAddress once router.ts (targetOf) and the docker backend's probe
 * narrow on `transport` for it (issue 17 report).
 */
export interface FramedTcpAddress {
  instanceId: string;
  transport: 'framed-tcp';
  host: string;
  port: number;
}

export interface DeploymentRoute {
  name: string;
  requestTimeoutMs: number;
  maxConcurrentRequestsPerInstance: number;
  maxQueueWaitMs: number;
  /**
   * The deployment may run no instance at all (scale_settings target_utilization with min_instances 0, or
   * an autoscaler allowed to take it to zero): with no ready instance its requests wait for one to start,
   * within request_timeout_ms, instead of getting 503, and the router asks for one (RouterOptions.onDemand).
   */
  scaleFromZero: boolean;
  /** Ready instances only, in a stable order. */
  instances: InstanceAddress[];
}

export interface EndpointRoute {
  name: string;
  /** 'none': local endpoints, which take requests without credentials (Azure's local mode, contract §4.1). */
  authMode: 'key' | 'aml_token' | 'aad_token' | 'none';
  /** SHA-256 (hex) of each accepted key; the keys themselves never reach the router. */
  keyHashes: string[];
  /** HMAC secret (base64url) that signs this endpoint's aml_token tokens. */
  tokenSecret?: string;
  /** Every deployment of the endpoint, whether or not it has traffic (the header may pin any). */
  deployments: DeploymentRoute[];
  /** Live traffic: deployments with weight > 0, in name order; weights sum to 100 or the list is empty. */
  traffic: { deployment: string; weight: number }[];
  mirror: { deployment: string; percent: number } | null;
}

export interface RoutingTable {
  /** Increases with every published table. */
  version: number;
  endpoints: EndpointRoute[];
}

/** Azure's probe fields (contract §1.7); seconds, as in the YAML. */
export interface ProbePlan {
  initialDelay: number;
  period: number;
  timeout: number;
  successThreshold: number;
  failureThreshold: number;
}

/** One route of a custom container (contract §1.6 RouteSchema). */
export interface InferenceRoute {
  port: number;
  path: string;
}
export interface InferenceRoutes {
  liveness: InferenceRoute;
  readiness: InferenceRoute;
  scoring: InferenceRoute;
}

/** A signature column or tensor (MLflow's signature, or an ONNX graph input/output). */
export interface NoCodeTensorSpec {
  name: string;
  /** MLflow types (double, float, long, integer, boolean, string, binary) or OIP datatypes (FP32, INT64 ...). */
  type: string;
  /** Tensor shape, -1 for a dynamic dimension; absent for a column. */
  shape?: number[];
}

/** The no-code configuration of an instance (see InstancePlan.runtime). */
export interface NoCodePlan {
  kind: 'mlflow' | 'onnx';
  /** The model's name and version as OIP reports them (GET /v2/models/<name>). */
  modelName: string;
  modelVersion: string;
  /** The file to load, relative to AZUREML_MODEL_DIR (the pickle, or the .onnx file). */
  modelFile: string;
  /** mlflow: the flavor served (sklearn), its serialization_format, the MLmodel's predict_fn. */
  flavor?: string;
  serializationFormat?: string;
  predictFn?: string;
  /** mlflow: the signature, when MLmodel has one: columns (or tensors) in, outputs. */
  signature?: { inputs: NoCodeTensorSpec[]; outputs: NoCodeTensorSpec[]; inputKind: 'columns' | 'tensor' };
  /** Merge concurrent requests into one model call (beyond Azure): at most maxBatchSize rows, waiting at most maxDelayUs. */
  batching?: { maxBatchSize: number; maxDelayUs: number };
}

/** Everything a backend needs to run the instances of one deployment. */
export interface InstancePlan {
  endpoint: string;
  deployment: string;
  /** Content hash of everything that needs new instances when it changes (model, code, env...). */
  revision: string;
  instanceCount: number;
  /**
   * `container`: a custom container (BYOC) run as it is, answering HTTP on its inference_config routes.
   * `mlflow` and `onnx`: no-code deployments (docs/no-code.md), no scoring script: `mlflow` runs the Python
   * host with infergate's MLflow loader (runtime/python/infergate_mlflow.py), `onnx` the Node host with
   * onnxruntime-node (runtime/onnx-scorer.ts). Both read `noCode`.
   */
  runtime: 'python' | 'javascript' | 'container' | 'mlflow' | 'onnx';
  /** What a no-code host needs (runtime `mlflow` or `onnx`), given to it as JSON in INFERGATE_NO_CODE. */
  noCode?: NoCodePlan;
  model?: {
    name: string;
    version: string;
    /** Absolute source path (file or folder); the folder/file name is preserved under AZUREML_MODEL_DIR. */
    path: string;
  };
  code?: { path: string; scoringScript: string };
  /**
   * The environment: a conda file (absolute path — for a registered or anonymous environment, its stored
   * copy in the asset store — or its content given inline) and/or an image. The process backend builds a
   * virtual environment from the conda file where pip can install it (backend/process/env-builder.ts),
   * else picks an interpreter that can import what it lists; images are not run. It logs what it did.
   */
  environment: {
    condaFile?: string | Record<string, unknown>;
    image?: string;
    /** A Docker build context (Azure's `build: {path, dockerfile_path}`): absolute folder, Dockerfile relative to it. */
    build?: { path: string; dockerfilePath: string };
    /** Custom container routes (all three, contract §1.6); only with runtime `container`. */
    inferenceConfig?: InferenceRoutes;
  };
  /** The instance type as written (a SKU name; Kubernetes deployments: the cluster's instance type). */
  instanceType: string;
  /**
   * CPU and memory limits of one instance: from `resources.limits` (Kubernetes-style deployments), else
   * from the instance type's SKU (contract §8.1), else none (an instance type infergate does not know).
   * The process backend does not enforce them; the docker backend does.
   */
  resources: { cpus?: number; memoryBytes?: number; from: string };
  /** egress_public_network_access: a container gets a network only when enabled (or for BYOC). */
  egress: boolean;
  /** Custom containers: where the model is mounted (model_mount_path); default AZUREML_MODEL_DIR's place. */
  modelMountPath?: string;
  environmentVariables: Record<string, string>;
  workerCount: number;
  requestTimeoutMs: number;
  livenessProbe: ProbePlan;
  readinessProbe: ProbePlan;
  /**
   * The attached compute the endpoint runs on (`compute: azureml:<name>`, lower-cased name): its
   * instances are pods there (backend/dispatch.ts). Absent: this machine's backend.
   */
  compute?: string;
  /** Kubernetes deployments: `resources` as written (quantities), for the pods' requests and limits. */
  kubernetesResources?: { requests?: Record<string, string>; limits?: Record<string, string> };
}

/**
 * What one instance uses now, for the autoscale metrics CpuUtilizationPercentage and
 * MemoryUtilizationPercentage (issue 12). Cumulative CPU time, so the reader turns two readings into a
 * rate; a reading lower than the last one means a new process tree or container (a restart).
 */
export interface InstanceUsage {
  id: string;
  endpoint: string;
  deployment: string;
  /** CPU time (user + system) since the instance's processes or container started. */
  cpuSeconds: number;
  /** Resident memory now (a container: its cgroup's usage less inactive page cache, as `docker stats`). */
  memoryBytes: number;
  /** The CPUs the instance may use: its limit or instance type, at most the machine's cores. */
  cpus: number;
  /** Its memory limit or instance type's memory, at most the machine's memory. */
  memoryLimitBytes: number;
}
