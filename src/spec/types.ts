// Typed, validated specs: what a user's Azure ML CLI v2 YAML means once defaults are filled in and
// relative paths are resolved (contract §1). camelCase here; the snake_case of the YAML lives only in
// spec/ (load + dump). All file system paths in a spec are absolute.

export type AuthMode = 'key' | 'aml_token' | 'aad_token';

export interface EndpointSpec {
  name: string;
  kind: 'managed' | 'kubernetes';
  description?: string;
  tags: Record<string, string>;
  properties: Record<string, string>;
  authMode: AuthMode;
  identity?: { type: 'system_assigned' | 'user_assigned' | 'none'; userAssignedIdentities?: { resourceId: string }[] };
  /** deployment name (lower-cased, as Azure stores it) → percent; zero entries are stripped. */
  traffic: Record<string, number>;
  mirrorTraffic: Record<string, number>;
  publicNetworkAccess: 'enabled' | 'disabled';
  /** Kubernetes endpoints only: `azureml:<compute>`. */
  compute?: string;
}

export type ModelType = 'custom_model' | 'mlflow_model' | 'triton_model';

export type ModelRef =
  | {
      kind: 'inline';
      /** Absolute path of the model file or folder. */
      path: string;
      name?: string;
      version?: string;
      type: ModelType;
      description?: string;
      tags?: Record<string, string>;
      properties?: Record<string, string>;
      /** MLflow flavors, kept as written. */
      flavors?: Record<string, unknown>;
    }
  /** `azureml:name:version` or `azureml:name@label`. */
  | { kind: 'registered'; name: string; version?: string; label?: string }
  /** `azureml://registries/...` or a full ARM id. */
  | { kind: 'uri'; uri: string };

export interface InferenceRoute {
  port: number;
  path: string;
}

/** Custom containers (BYOC): all three routes are required when given (contract §1.6). */
export interface InferenceConfig {
  livenessRoute: InferenceRoute;
  readinessRoute: InferenceRoute;
  scoringRoute: InferenceRoute;
}

export type EnvironmentRef =
  | {
      kind: 'inline';
      name?: string;
      version?: string;
      description?: string;
      tags?: Record<string, string>;
      image?: string;
      /** Absolute path of the conda file, or the conda file's content given inline. */
      condaFile?: string | Record<string, unknown>;
      build?: { path: string; dockerfilePath: string };
      osType: 'linux' | 'windows';
      inferenceConfig?: InferenceConfig;
      /** Datastore for the anonymous asset upload on Azure; kept, unused locally. */
      datastore?: string;
    }
  | { kind: 'registered'; name: string; version?: string; label?: string }
  | { kind: 'uri'; uri: string };

export interface RequestSettings {
  requestTimeoutMs: number;
  maxConcurrentRequestsPerInstance: number;
  maxQueueWaitMs: number;
}

export interface ProbeSettings {
  initialDelay: number;
  period: number;
  timeout: number;
  successThreshold: number;
  failureThreshold: number;
}

export type ScaleSettings =
  | { type: 'default' }
  | { type: 'target_utilization'; minInstances: number; maxInstances: number; pollingInterval: number; targetUtilizationPercentage: number };

export interface DeploymentSpec {
  name: string;
  endpointName: string;
  type: 'managed' | 'kubernetes';
  description?: string;
  tags: Record<string, string>;
  properties: Record<string, string>;
  model?: ModelRef;
  modelMountPath?: string;
  codeConfiguration?: {
    /** Absolute path of the code folder (or an azureml: reference). */
    code: string;
    /** Path of the scoring script relative to `code`. */
    scoringScript: string;
  };
  environment?: EnvironmentRef;
  environmentVariables: Record<string, string>;
  instanceType: string;
  instanceCount: number;
  appInsightsEnabled: boolean;
  scaleSettings: ScaleSettings;
  requestSettings: RequestSettings;
  livenessProbe: ProbeSettings;
  readinessProbe: ProbeSettings;
  /**
   * As written; Azure shows 'enabled' when it is not (api/show.ts). Kept unset when not written: the docker
   * backend gives an instance a network only when the deployment asks for it explicitly.
   */
  egressPublicNetworkAccess?: 'enabled' | 'disabled';
  /** Kubernetes deployments only. */
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  /** Accepted and validated; kept as written (data collection is not implemented yet). */
  dataCollector?: Record<string, unknown>;
  /**
   * The asset versions `model` and `environment` were resolved to when the deployment was created or
   * updated (registered references, and inline definitions registered anonymously). Recorded by the
   * control plane, never written by users and never dumped: `show` prints the references as written,
   * while `@latest` stays where it was until the next update. `code` is the snapshot of the code folder
   * taken then (api/assets.ts), which is what instances run.
   */
  resolvedAssets?: { model?: AssetVersion; environment?: AssetVersion; code?: { version: string; path: string } };
}

/** One version of a registered asset. */
export interface AssetVersion {
  name: string;
  version: string;
}

/** A model asset document: `az ml model create -f model.yml` (contract §1.5, ModelSchema). */
export interface ModelAssetSpec {
  name: string;
  /** Absent: the next integer after the highest integer version of the name ("1" for a new name). */
  version?: string;
  /** Absolute path of the model file or folder to register. */
  path: string;
  type: ModelType;
  description?: string;
  tags: Record<string, string>;
  properties: Record<string, string>;
  flavors?: Record<string, unknown>;
}

/** An environment asset document: `az ml environment create -f environment.yml` (contract §1.6). */
export interface EnvironmentAssetSpec {
  name: string;
  version?: string;
  description?: string;
  tags: Record<string, string>;
  image?: string;
  /** Absolute path of the conda file, or its content given inline. */
  condaFile?: string | Record<string, unknown>;
  build?: { path: string; dockerfilePath: string };
  osType: 'linux' | 'windows';
  inferenceConfig?: InferenceConfig;
}

/** Azure's defaults (contract §1.7). */
export const DEFAULT_REQUEST_SETTINGS: RequestSettings = {
  requestTimeoutMs: 5000,
  maxConcurrentRequestsPerInstance: 1,
  maxQueueWaitMs: 500,
};

export const DEFAULT_PROBE: ProbeSettings = {
  initialDelay: 10,
  period: 10,
  timeout: 2,
  successThreshold: 1,
  failureThreshold: 30,
};
