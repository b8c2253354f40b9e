// The autoscale module's surface for main/ and api/ (issue 12). Each part adds its own exports.

export { MetricStore, Sampler, type MetricStoreOptions, type SamplerOptions, type UsageReading } from './metrics.js';
export { Autoscaler, type AutoscalerOptions, type AutoscaleStore, type TargetUtilizationDecision } from './autoscaler.js';
export { decide, chooseProfile, describeRule, type Decision, type DecideContext, type RuleReading } from './engine.js';
export { parseDuration, durationMs, formatDuration } from './durations.js';
export {
  AutoscaleSettings,
  combineProblems,
  conditionText,
  defaultProfileOf,
  parseCondition,
  parseCooldown,
  parsePeriod,
  parseRecurrence,
  parseScale,
  parseTimeGrain,
  DEFAULT_PROFILE,
  MAX_COUNT,
  MAX_PROFILES,
  MAX_RULES,
  type AutoscaleSettingsOptions,
  type CreateProfileRequest,
  type CreateRuleRequest,
  type CreateSettingRequest,
  type DeleteRulesRequest,
  type ListedRule,
  type ParsedCondition,
  type UpdateSettingRequest,
} from './settings.js';
export { deploymentResourceId, endpointResourceId, parseResourceId, sameResourceId, settingResourceId, type ParsedResourceId } from './resources.js';
export { ianaZone, WINDOWS_ZONES } from './timezones.js';
