export * from './client.js';
export { configPath, readConfig, removeConfig, writeConfig, type CliConfig } from './config.js';
