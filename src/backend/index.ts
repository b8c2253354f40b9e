export * from './types.js';
export { ProcessBackend, type ProcessBackendOptions } from './process/backend.js';
