export { Controller, type ControllerOptions } from './controller.js';
export { plan, type Action, type DeploymentProgress } from './plan.js';
