// spec/: Azure ML CLI v2 YAML (and the same documents as JSON) to typed, validated specs, and back.
// The only place snake_case lives (DESIGN.md "The pipeline").

export { loadEndpointYaml, loadDeploymentYaml, parseEndpointObject, parseDeploymentObject } from './load.js';
export type { LoadResult, ObjectContext } from './load.js';
export { dumpEndpoint, dumpDeployment } from './dump.js';
export { applyOverrides } from './overrides.js';
export { storedPathsOf } from './paths.js';
export { validateName, MIN_NAME_LENGTH, MAX_NAME_LENGTH, NAME_PATTERN } from './names.js';
export { parseAssetRef, formatAssetRef } from './assets.js';
export { MAX_MIRROR_PERCENT } from './endpoint.js';
export { MAX_MANAGED_INSTANCES, DEFAULT_K8S_INSTANCE_TYPE } from './deployment.js';
export * from './types.js';
export {
  loadModelYaml,
  loadEnvironmentYaml,
  parseModelObject,
  parseEnvironmentObject,
  dumpModelAsset,
  dumpEnvironmentAsset,
  validateAssetName,
  validateAssetVersion,
  ASSET_NAME_PATTERN,
} from './assets-yaml.js';
