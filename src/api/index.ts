export { buildApi, type ApiOptions } from './server.js';
export { checkTraffic, newKeys } from '../control/index.js';
export { showDeployment, showEndpoint, type ShowContext } from './show.js';
