// The service layer between the REST API and the pipeline (DESIGN.md): the rules of endpoints,
// deployments, traffic, provisioning states and assets, whatever front end carries the request.
export { ANONYMOUS_ENVIRONMENT, ANONYMOUS_MODEL, AssetRegistry, assetNotFound, KIND_DIR, type AssetStoreOptions } from './assets.js';
export { BlobStore, DEFAULT_MAX_BLOB_BYTES, MAX_MISSING_QUERY } from './blobs.js';
export { checkDeploymentChangeable, checkEndpointChangeable, deploymentUpdateState, STATE_ON_CREATE, STATE_ON_DELETE } from './provisioning.js';
export { ControlPlane, MAX_DEPLOYMENTS_PER_ENDPOINT, newKeys, type ControlPlaneOptions, type Deleted, type KeyType, type LogContainer } from './service.js';
export { checkDeletable, checkTraffic, checkTrafficAtCreate, trafficOf } from './traffic.js';
