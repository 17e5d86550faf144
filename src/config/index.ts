/** Public surface of the config unit. */
export type * from './types.js';
export { sipedgeConfigSchema, defaultConfig, knownKeysAt, DEFAULT_LISTEN, DEFAULT_API_LISTEN } from './schema.js';
export { loadConfig, parseConfigText, formatConfigError, type ConfigError, type ConfigResult } from './load.js';
export { configWarnings } from './warnings.js';
export { formatConfigYaml, configToYamlData, SECRET_MASK } from './format.js';
export * from './values.js';
