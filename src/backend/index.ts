export * from './types.js';
export { ProcessBackend, type ProcessBackendOptions } from './process/backend.js';
export { DockerBackend, findDockerEngine, DEFAULT_DOCKER_IMAGE, type DockerBackendOptions } from './docker/backend.js';
