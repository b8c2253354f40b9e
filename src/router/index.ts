export { MIRROR_MAX_INFLIGHT, Router, SCORE_PREFIX, type DeploymentStats, type RouterOptions } from './router.js';
