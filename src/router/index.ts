export { Router, SCORE_PREFIX, type DeploymentStats, type RouterOptions } from './router.js';
