export * from './plan.js';
export * from './routing.js';
