export * from './types.js';
export { ProcessBackend, type ProcessBackendOptions } from './process/backend.js';
export { DockerBackend, findDockerEngine, DEFAULT_DOCKER_IMAGE, type DockerBackendOptions } from './docker/backend.js';
export { DispatchBackend, type DispatchOptions } from './dispatch.js';
// The Kubernetes backend itself is imported where it is used (backend/kubernetes/): its client takes a
// second to load, which only a workspace with a Kubernetes compute should pay.
export { DEFAULT_KUBERNETES_IMAGE, renderDeployment, renderRoot, workspaceLabel, type KubeObject } from './kubernetes/render.js';
