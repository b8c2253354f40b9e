export { Router, SCORE_PREFIX, type RouterOptions } from './router.js';
