export * from './metrics.js';
export * from './traffic-log.js';
