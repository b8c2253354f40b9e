export { buildApi, checkTraffic, newKeys, type ApiOptions } from './server.js';
export { showDeployment, showEndpoint, type ShowContext } from './show.js';
