// Autoscale settings as `az monitor autoscale` makes them (contract §7): the CLI's words (a condition
// "CpuUtilizationPercentage > 70 avg 5m", "--scale out 2", "--recurrence week sat sun", a Windows time
// zone) are parsed here, on the server, into the AutoscaleSetting document Azure Monitor stores, so every
// client (CLI, REST, studio) gets one validation. Each change is validated whole, every problem collected
// and reported at once, and written in one store transaction: a refused change writes nothing.

import { errorOf, InfergateError } from '../errors/index.js';
import type { AutoscaleEvent, AutoscaleProfile, AutoscaleRule, AutoscaleSetting, MetricOperator, MetricStatistic, TimeAggregation } from '../spec/autoscale.js';
import type { StateStore, StoredAutoscaleSetting } from '../store/types.js';
import { formatDuration, parseDuration, shortDuration } from './durations.js';
import { deploymentResourceId, endpointResourceId, parseResourceId, settingResourceId } from './resources.js';
import { ianaZone } from './timezones.js';
import { METRICS, type MetricName, type ResourceRef } from './types.js';

/** Azure's limits on one setting (contract §7.1). */
export const MAX_PROFILES = 20;
export const MAX_RULES = 10;
/** The largest instance count a profile may name (Azure Monitor's own bound). */
export const MAX_COUNT = 1000;
/** az's name for the profile `monitor autoscale create` makes: the one that runs when no other applies. */
export const DEFAULT_PROFILE = 'default';
/** Azure's rule for autoscale setting names: 1 to 260 characters, none of < > * % & : \\ ? / # or a control character. */
const SETTING_NAME = /^[^<>*%&:\\?/#\x00-\x1f]{1,260}$/;
const MAX_FIXED_DATE_MS = 365 * 24 * 3600_000;

const NAMESPACE_DEPLOYMENT = 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments';
const NAMESPACE_ENDPOINT = 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints';

// ---- az's words --------------------------------------------------------------------------------------

const OPERATORS: Readonly<Record<string, MetricOperator>> = {
  '>': 'GreaterThan',
  '>=': 'GreaterThanOrEqual',
  '<': 'LessThan',
  '<=': 'LessThanOrEqual',
  '==': 'Equals',
  '!=': 'NotEquals',
};
const OPERATOR_WORDS = Object.fromEntries(Object.entries(OPERATORS).map(([w, o]) => [o, w])) as Record<MetricOperator, string>;

const AGGREGATIONS: Readonly<Record<string, TimeAggregation>> = {
  avg: 'Average',
  min: 'Minimum',
  max: 'Maximum',
  total: 'Total',
  count: 'Count',
  last: 'Last',
};
const AGGREGATION_WORDS = Object.fromEntries(Object.entries(AGGREGATIONS).map(([w, a]) => [a, w])) as Record<TimeAggregation, string>;

const STATISTICS: Readonly<Record<string, MetricStatistic>> = { avg: 'Average', min: 'Min', max: 'Max', sum: 'Sum', total: 'Sum' };

// Azure's REST name for memory is CpuMemoryUtilizationPercentage (contract §6.2); scripts copied from
// Azure say so, and it is the same metric as infergate's MemoryUtilizationPercentage.
const METRIC_ALIASES: Readonly<Record<string, MetricName>> = { cpumemoryutilizationpercentage: 'MemoryUtilizationPercentage' };

const DAYS = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'] as const;

export interface ParsedCondition {
  metric: MetricName;
  operator: MetricOperator;
  threshold: number;
  aggregation: TimeAggregation;
  /** ISO 8601, e.g. PT5M. */
  timeWindow: string;
}

/**
 * A period in az's words: 5m, 1h, 1d, 1h30m, and (infergate's own, for windows shorter than Azure's one
 * minute) 30s; an ISO 8601 duration (PT5M) is taken too. Milliseconds, or undefined.
 */
export function parsePeriod(text: string): number | undefined {
  const t = text.trim();
  if (/^P/i.test(t)) return parseDuration(t);
  const m = /^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$/i.exec(t);
  if (!m || t === '') return undefined;
  const [d, h, min, s] = m.slice(1).map((g) => (g === undefined ? 0 : Number(g)));
  const ms = ((d * 24 + h) * 60 + min) * 60_000 + s * 1000;
  return ms > 0 ? ms : undefined;
}

function metricOf(word: string): MetricName | undefined {
  const lower = word.toLowerCase();
  return METRICS.find((m) => m.toLowerCase() === lower) ?? METRIC_ALIASES[lower];
}

/** `"CpuUtilizationPercentage > 70 avg 5m"` → its parts; every problem of it as coded errors. */
export function parseCondition(text: string): { condition?: ParsedCondition; problems: InfergateError[] } {
  const words = text.trim().split(/\s+/).filter(Boolean);
  const malformed = (reason: string) => ({ problems: [errorOf('AutoscaleConditionInvalid', { condition: text, reason })] });
  if (words.length > 5 && words[5].toLowerCase() === 'where') return malformed('dimension filters (where ...) are not supported');
  if (words.length !== 5) return malformed(`${words.length} word${words.length === 1 ? '' : 's'}, expected 5`);
  const [metricWord, opWord, thresholdWord, aggregationWord, windowWord] = words;
  const problems: InfergateError[] = [];
  const metric = metricOf(metricWord);
  if (metric === undefined) problems.push(errorOf('AutoscaleMetricUnknown', { metric: metricWord, metrics: METRICS.join(', ') }));
  const operator = OPERATORS[opWord];
  if (operator === undefined) problems.push(errorOf('AutoscaleConditionInvalid', { condition: text, reason: `operator '${opWord}' is not one of ${Object.keys(OPERATORS).join(' ')}` }));
  const threshold = /^[-+]?(\d+(\.\d*)?|\.\d+)$/.test(thresholdWord) ? Number(thresholdWord) : Number.NaN;
  if (!Number.isFinite(threshold)) problems.push(errorOf('AutoscaleConditionInvalid', { condition: text, reason: `threshold '${thresholdWord}' is not a number` }));
  const aggregation = AGGREGATIONS[aggregationWord.toLowerCase()];
  if (aggregation === undefined) problems.push(errorOf('AutoscaleConditionInvalid', { condition: text, reason: `aggregation '${aggregationWord}' is not one of ${Object.keys(AGGREGATIONS).join(', ')}` }));
  const windowMs = parsePeriod(windowWord);
  if (windowMs === undefined) problems.push(errorOf('AutoscaleConditionInvalid', { condition: text, reason: `window '${windowWord}' is not a period such as 5m, 1h, 1d or 30s` }));
  if (problems.length) return { problems };
  return { condition: { metric: metric!, operator: operator!, threshold, aggregation: aggregation!, timeWindow: formatDuration(windowMs!) }, problems };
}

/** A rule's condition in az's words, as `rule create` takes it: "CpuUtilizationPercentage > 70 avg 5m". */
export function conditionText(rule: AutoscaleRule): string {
  const t = rule.metricTrigger;
  const window = parseDuration(t.timeWindow);
  return `${t.metricName} ${OPERATOR_WORDS[t.operator] ?? t.operator} ${t.threshold} ${AGGREGATION_WORDS[t.timeAggregation] ?? t.timeAggregation} ${window !== undefined ? shortDuration(window) : t.timeWindow}`;
}

/** `--scale out 2` / `in 1` / `to 3` / `out 20%` → Azure's scaleAction direction, type and value. */
export function parseScale(words: string | readonly string[]): { action?: Pick<AutoscaleRule['scaleAction'], 'direction' | 'type' | 'value'>; problems: InfergateError[] } {
  const text = (typeof words === 'string' ? words : words.join(' ')).trim();
  const m = /^(out|in|to)\s+(\d+)\s*(%?)$/i.exec(text);
  const bad = { problems: [errorOf('AutoscaleScaleInvalid', { scale: text })] };
  if (!m) return bad;
  const verb = m[1].toLowerCase();
  const n = Number(m[2]);
  const percent = m[3] === '%';
  if (!Number.isSafeInteger(n) || (verb !== 'to' && n < 1) || (verb === 'to' && (percent || n > MAX_COUNT))) return bad;
  if (verb === 'to') return { action: { direction: 'None', type: 'ExactCount', value: String(n) }, problems: [] };
  return { action: { direction: verb === 'out' ? 'Increase' : 'Decrease', type: percent ? 'PercentChangeCount' : 'ChangeCount', value: String(n) }, problems: [] };
}

/** `--cooldown 5` (minutes, az's unit and default) or a duration (30s, 2m, PT1M) → ISO 8601. */
export function parseCooldown(value: string | number | undefined): { cooldown?: string; problems: InfergateError[] } {
  if (value === undefined) return { cooldown: 'PT5M', problems: [] };
  const text = String(value).trim();
  const ms = /^\d+$/.test(text) ? Number(text) * 60_000 : /^0+[smhd]?$/i.test(text) ? 0 : parsePeriod(text);
  if (ms === undefined || !Number.isFinite(ms)) return { problems: [errorOf('AutoscaleCooldownInvalid', { cooldown: text })] };
  return { cooldown: formatDuration(ms), problems: [] };
}

/** `--timegrain "avg 1m"` (az's default) → statistic and ISO time grain. */
export function parseTimeGrain(value: string | undefined): { statistic?: MetricStatistic; timeGrain?: string; problems: InfergateError[] } {
  const text = (value ?? 'avg 1m').trim();
  const [word, period, ...rest] = text.split(/\s+/);
  const statistic = STATISTICS[(word ?? '').toLowerCase()];
  const ms = period !== undefined ? parsePeriod(period) : undefined;
  if (statistic === undefined || ms === undefined || rest.length) return { problems: [errorOf('AutoscaleTimeGrainInvalid', { timegrain: text })] };
  return { statistic, timeGrain: formatDuration(ms), problems: [] };
}

/** A count flag: a whole number 0..MAX_COUNT (0 is scale to zero). */
function parseCount(flag: string, value: unknown, problems: InfergateError[]): number | undefined {
  if (value === undefined || value === null) return undefined;
  const text = String(value).trim();
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n > MAX_COUNT) {
    problems.push(errorOf('AutoscaleCountInvalid', { flag, max: MAX_COUNT, value: text }));
    return undefined;
  }
  return n;
}

/** `--recurrence week sat sun` → Azure's days; every problem as a coded error. */
export function parseRecurrence(words: readonly string[]): { days?: string[]; problems: InfergateError[] } {
  const recurrence = words.join(' ');
  const bad = (reason: string) => ({ problems: [errorOf('AutoscaleRecurrenceInvalid', { recurrence, reason })] });
  if (words.length === 0 || words[0].toLowerCase() !== 'week') return bad("the frequency must be 'week'");
  const dayWords = words.slice(1).flatMap((w) => w.split(',')).filter(Boolean);
  if (dayWords.length === 0) return bad('no days: name at least one (mon tue wed thu fri sat sun)');
  const days: string[] = [];
  for (const w of dayWords) {
    const lower = w.toLowerCase();
    const day = DAYS.find((d) => lower.length >= 2 && d.toLowerCase().startsWith(lower) && (lower.length >= 3 || lower === 'tu' || lower === 'th' || lower === 'sa' || lower === 'su'));
    if (day === undefined) return bad(`'${w}' is not a day of the week`);
    if (!days.includes(day)) days.push(day);
  }
  return { days, problems: [] };
}

/** A fixed date, az's form: 2026-12-24 or 2026-12-24T08:00[:00] (a space for the T too), in the profile's time zone. */
export function parseDate(flag: string, text: string, problems: InfergateError[]): string | undefined {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?)?$/.exec(text.trim());
  const bad = () => {
    problems.push(errorOf('AutoscaleDateInvalid', { flag, value: text, expected: 'a date such as 2026-12-24 or 2026-12-24T08:00' }));
    return undefined;
  };
  if (!m) return bad();
  const [y, mo, d, h = '00', mi = '00', s = '00'] = m.slice(1) as string[];
  const t = new Date(Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)));
  if (t.getUTCFullYear() !== Number(y) || t.getUTCMonth() !== Number(mo) - 1 || t.getUTCDate() !== Number(d) || t.getUTCHours() !== Number(h) || t.getUTCMinutes() !== Number(mi) || t.getUTCSeconds() !== Number(s)) return bad();
  return `${y}-${mo}-${d}T${h}:${mi}:${s}`;
}

function parseClock(flag: string, text: string, problems: InfergateError[]): { hour: number; minute: number } | undefined {
  const m = /^(\d{1,2}):(\d{2})$/.exec(text.trim());
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59) {
    problems.push(errorOf('AutoscaleDateInvalid', { flag, value: text, expected: 'a time of day hh:mm for a recurring profile, e.g. 08:00' }));
    return undefined;
  }
  return { hour: Number(m[1]), minute: Number(m[2]) };
}

/** Many problems as one error: the code they share (else InvalidAutoscaleSetting), each listed. */
export function combineProblems(problems: readonly InfergateError[], what: string): InfergateError {
  if (problems.length === 1) return problems[0];
  const codes = new Set(problems.map((p) => p.code));
  const params = { what, count: problems.length, problems: problems.map((p) => `\n  (${p.code}) ${p.message}`).join('') };
  const details = problems.map((p) => ({ code: p.code, message: p.message }));
  // One code for all of them keeps its status (409, 404); a mix is a 400.
  if (codes.size === 1 && codes.has('AutoscaleSettingConflict')) return errorOf('AutoscaleConflicts', params, details);
  if (codes.size === 1 && codes.has('ResourceNotFound')) return errorOf('AutoscaleResourcesNotFound', params, details);
  return errorOf('AutoscaleProblems', params, details);
}

function check(problems: readonly InfergateError[], what: string): void {
  if (problems.length) throw combineProblems(problems, what);
}

/** The default profile: the one with neither a fixed date nor a recurrence (Azure runs it when no other applies). */
export function defaultProfileOf(setting: AutoscaleSetting): AutoscaleProfile | undefined {
  return setting.profiles.find((p) => p.fixedDate === undefined && p.recurrence === undefined);
}

// ---- requests (the REST API's bodies: az's flags in snake_case) -------------------------------------

type Count = number | string;

export interface CreateSettingRequest {
  name: string;
  /** The deployment's id (`online-deployment show --query id`). */
  resource: string;
  min_count?: Count;
  max_count?: Count;
  count?: Count;
  /** az's --disabled. */
  disabled?: boolean;
  tags?: Record<string, string>;
}

export interface UpdateSettingRequest {
  enabled?: boolean | string;
  min_count?: Count;
  max_count?: Count;
  count?: Count;
  tags?: Record<string, string>;
}

export interface CreateRuleRequest {
  profile_name?: string;
  condition: string;
  /** `out 2`, `in 1`, `to 3`, `out 20%` (a string or az's words). */
  scale: string | string[];
  /** Minutes (az's unit, default 5) or a duration such as 30s. */
  cooldown?: string | number;
  /** Another resource whose metric the rule reads (an endpoint's id for RequestLatency); default the setting's target. */
  resource?: string;
  timegrain?: string;
}

export interface DeleteRulesRequest {
  profile_name?: string;
  /** Rule indexes as `rule list` prints them, or '*' for every rule. */
  index: Array<number | string> | '*';
}

export interface CreateProfileRequest {
  name: string;
  min_count?: Count;
  max_count?: Count;
  count?: Count;
  /** `week sat sun`. */
  recurrence?: string[];
  timezone?: string;
  /** A date (fixed-date profile) or hh:mm (the time a recurring profile starts). */
  start?: string;
  end?: string;
  /** Copies the rules of this profile. */
  copy_rules?: string;
}

/** A rule as `rule list` prints it: az adds its position, which `rule delete --index` takes. */
export type ListedRule = AutoscaleRule & { index: number };

export interface AutoscaleSettingsOptions {
  store: StateStore;
  /** The workspace's name, as in resource ids. */
  workspace: string;
  location: string;
}

interface Resolved {
  ref: ResourceRef;
  /** The id spelled as `show` prints it, with the names as stored. */
  id: string;
}

/** The autoscale settings of one workspace: every verb of `az monitor autoscale`, on the store. */
export class AutoscaleSettings {
  constructor(private readonly o: AutoscaleSettingsOptions) {}

  list(): AutoscaleSetting[] {
    return this.o.store.listAutoscaleSettings().map((s) => s.setting);
  }

  get(name: string): AutoscaleSetting {
    return this.stored(name).setting;
  }

  create(req: CreateSettingRequest): AutoscaleSetting {
    return this.o.store.transaction(() => {
      const problems: InfergateError[] = [];
      const name = String(req.name ?? '').trim();
      if (!SETTING_NAME.test(name)) problems.push(errorOf('AutoscaleNameInvalid', { name }));
      else if (this.o.store.getAutoscaleSetting(name)) problems.push(errorOf('AutoscaleSettingExists', { name }));
      const target = this.resolve('--resource', String(req.resource ?? ''), problems);
      if (target && target.ref.deployment === undefined) {
        problems.push(errorOf('AutoscaleTargetNotDeployment', { resource: String(req.resource) }));
      }
      const capacity = this.capacity(DEFAULT_PROFILE, req, undefined, problems);
      if (target?.ref.deployment !== undefined) {
        const taken = this.o.store.listAutoscaleSettings().find((s) => s.endpoint === target.ref.endpoint && s.deployment === target.ref.deployment);
        if (taken) problems.push(errorOf('AutoscaleResourceTaken', { resource: target.id, existing: taken.setting.name }));
      }
      check(problems, `Autoscale setting '${name}'`);
      const setting: AutoscaleSetting = {
        id: settingResourceId(this.o.workspace, name),
        name,
        location: this.o.location,
        type: 'Microsoft.Insights/autoscaleSettings',
        targetResourceUri: target!.id,
        enabled: req.disabled !== true,
        profiles: [{ name: DEFAULT_PROFILE, capacity: capacity!, rules: [] }],
        notifications: [],
        tags: { ...(req.tags ?? {}) },
      };
      return this.o.store.putAutoscaleSetting(setting, { endpoint: target!.ref.endpoint, deployment: target!.ref.deployment! }).setting;
    });
  }

  /** `update`: enabled, tags, and the default profile's counts. */
  update(name: string, req: UpdateSettingRequest): AutoscaleSetting {
    return this.change(name, (setting, problems) => {
      if (req.enabled !== undefined) {
        const text = String(req.enabled).toLowerCase();
        if (text === 'true' || text === 'false') setting.enabled = text === 'true';
        else problems.push(errorOf('AutoscaleEnabledInvalid', { value: String(req.enabled) }));
      }
      if (req.tags !== undefined) setting.tags = { ...req.tags };
      if (req.min_count !== undefined || req.max_count !== undefined || req.count !== undefined) {
        const profile = defaultProfileOf(setting);
        if (!profile) throw errorOf('AutoscaleProfileNotFound', { name, profile: DEFAULT_PROFILE, profiles: setting.profiles.map((p) => p.name).join(', ') });
        const capacity = this.capacity(profile.name, req, profile.capacity, problems);
        if (capacity) profile.capacity = capacity;
      }
    });
  }

  delete(name: string): void {
    if (!this.o.store.deleteAutoscaleSetting(name)) throw errorOf('AutoscaleSettingNotFound', { name });
  }

  createRule(name: string, req: CreateRuleRequest): AutoscaleRule {
    let created: AutoscaleRule | undefined;
    this.change(name, (setting, problems, stored) => {
      const profile = this.profile(setting, req.profile_name ?? DEFAULT_PROFILE);
      if (profile.rules.length >= MAX_RULES) problems.push(errorOf('AutoscaleLimit', { what: `Profile '${profile.name}'`, items: 'rules', max: MAX_RULES }));
      const { condition, problems: conditionProblems } = parseCondition(String(req.condition ?? ''));
      const { action, problems: scaleProblems } = parseScale(req.scale ?? '');
      const { cooldown, problems: cooldownProblems } = parseCooldown(req.cooldown);
      const { statistic, timeGrain, problems: grainProblems } = parseTimeGrain(req.timegrain);
      problems.push(...conditionProblems, ...scaleProblems, ...cooldownProblems, ...grainProblems);
      const metricResource: Resolved | undefined =
        req.resource !== undefined && req.resource !== '' ? this.resolve('--resource', req.resource, problems) : { ref: { endpoint: stored.endpoint, deployment: stored.deployment }, id: setting.targetResourceUri };
      if (!condition || !action || !cooldown || !statistic || !timeGrain || !metricResource) return;
      created = {
        metricTrigger: {
          metricName: condition.metric,
          metricNamespace: metricResource.ref.deployment !== undefined ? NAMESPACE_DEPLOYMENT : NAMESPACE_ENDPOINT,
          metricResourceUri: metricResource.id,
          timeGrain,
          statistic,
          timeWindow: condition.timeWindow,
          timeAggregation: condition.aggregation,
          operator: condition.operator,
          threshold: condition.threshold,
          dividePerInstance: false,
        },
        scaleAction: { ...action, cooldown },
      };
      profile.rules.push(created);
    });
    return created!;
  }

  listRules(name: string, profileName = DEFAULT_PROFILE): ListedRule[] {
    return this.profile(this.get(name), profileName).rules.map((r, index) => ({ ...r, index }));
  }

  /** `rule delete --index 0 2` (or '*'): every index is checked before any rule goes. */
  deleteRules(name: string, req: DeleteRulesRequest): void {
    this.change(name, (setting, problems) => {
      const profile = this.profile(setting, req.profile_name ?? DEFAULT_PROFILE);
      const count = profile.rules.length;
      if (req.index === '*' || (Array.isArray(req.index) && req.index.length === 1 && req.index[0] === '*')) {
        profile.rules = [];
        return;
      }
      const indexes = new Set<number>();
      for (const i of Array.isArray(req.index) ? req.index : [req.index]) {
        const text = String(i).trim();
        const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
        if (!Number.isSafeInteger(n) || n >= count) {
          problems.push(errorOf('AutoscaleRuleIndexInvalid', { index: text, profile: profile.name, count, valid: count ? ` (indexes 0 to ${count - 1}, as 'rule list' prints them)` : '' }));
        } else indexes.add(n);
      }
      if (indexes.size === 0 && problems.length === 0) problems.push(errorOf('AutoscaleRuleIndexInvalid', { index: '(none)', profile: profile.name, count, valid: '' }));
      profile.rules = profile.rules.filter((_, i) => !indexes.has(i));
    });
  }

  createProfile(name: string, req: CreateProfileRequest): AutoscaleProfile {
    let created: AutoscaleProfile | undefined;
    this.change(name, (setting, problems) => {
      const profileName = String(req.name ?? '').trim();
      if (profileName === '') problems.push(errorOf('AutoscaleScheduleInvalid', { profile: '', reason: 'give the profile a name (--name)' }));
      if (setting.profiles.some((p) => p.name.toLowerCase() === profileName.toLowerCase())) problems.push(errorOf('AutoscaleProfileExists', { name: setting.name, profile: profileName }));
      if (setting.profiles.length >= MAX_PROFILES) problems.push(errorOf('AutoscaleLimit', { what: `Autoscale setting '${setting.name}'`, items: 'profiles', max: MAX_PROFILES }));
      const capacity = this.capacity(profileName, req, undefined, problems);
      const timeZone = (req.timezone ?? 'UTC').trim();
      if (ianaZone(timeZone) === undefined) problems.push(errorOf('AutoscaleTimeZoneUnknown', { timezone: timeZone }));
      const rules = req.copy_rules !== undefined ? structuredClone(this.profile(setting, req.copy_rules).rules) : [];
      const profile: AutoscaleProfile = { name: profileName, capacity: capacity ?? { minimum: '0', maximum: '0', default: '0' }, rules };
      if (req.recurrence !== undefined) {
        const { days, problems: recurrenceProblems } = parseRecurrence(req.recurrence);
        problems.push(...recurrenceProblems);
        const at = req.start !== undefined ? parseClock('--start', req.start, problems) : undefined;
        if (req.end !== undefined) problems.push(errorOf('AutoscaleScheduleInvalid', { profile: profileName, reason: 'a recurring profile runs until the next profile starts (as in Azure); --end is for fixed-date profiles' }));
        if (days) profile.recurrence = { frequency: 'Week', schedule: { timeZone, days, hours: at ? [at.hour] : [], minutes: at ? [at.minute] : [] } };
      } else if (req.start !== undefined || req.end !== undefined) {
        if (req.start === undefined || req.end === undefined) {
          problems.push(errorOf('AutoscaleScheduleInvalid', { profile: profileName, reason: 'a fixed-date profile needs both --start and --end' }));
        } else {
          const start = parseDate('--start', req.start, problems);
          const end = parseDate('--end', req.end, problems);
          if (start && end) {
            const span = Date.parse(`${end}Z`) - Date.parse(`${start}Z`);
            if (span <= 0) problems.push(errorOf('AutoscaleScheduleInvalid', { profile: profileName, reason: `--start ${req.start} must be before --end ${req.end}` }));
            else if (span > MAX_FIXED_DATE_MS) problems.push(errorOf('AutoscaleScheduleInvalid', { profile: profileName, reason: 'a fixed-date profile spans at most 365 days' }));
            profile.fixedDate = { timeZone, start, end };
          }
        }
      } else {
        problems.push(errorOf('AutoscaleScheduleInvalid', { profile: profileName, reason: "give --recurrence (a recurring profile) or --start and --end (a fixed-date profile); the default profile is the one 'monitor autoscale create' made" }));
      }
      setting.profiles.push(profile);
      created = profile;
    });
    return created!;
  }

  listProfiles(name: string): AutoscaleProfile[] {
    return this.get(name).profiles;
  }

  showProfile(name: string, profile: string): AutoscaleProfile {
    return this.profile(this.get(name), profile);
  }

  deleteProfile(name: string, profileName: string): void {
    this.change(name, (setting) => {
      const profile = this.profile(setting, profileName);
      if (profile === defaultProfileOf(setting)) throw errorOf('AutoscaleDefaultProfileDelete', { name: setting.name, profile: profile.name });
      setting.profiles = setting.profiles.filter((p) => p !== profile);
    });
  }

  /** The runner's decisions, oldest first (the store keeps the newest AUTOSCALE_HISTORY_LIMIT). */
  history(name: string, limit?: number): AutoscaleEvent[] {
    const stored = this.stored(name);
    return this.o.store.listAutoscaleEvents(stored.setting.name, limit);
  }

  // ---- helpers

  private stored(name: string): StoredAutoscaleSetting {
    const found = this.o.store.getAutoscaleSetting(String(name));
    if (!found) throw errorOf('AutoscaleSettingNotFound', { name: String(name) });
    return found;
  }

  /** Read, change a copy, validate, write: all in one transaction, nothing written when a problem is found. */
  private change(name: string, fn: (setting: AutoscaleSetting, problems: InfergateError[], stored: StoredAutoscaleSetting) => void): AutoscaleSetting {
    return this.o.store.transaction(() => {
      const stored = this.stored(name);
      const setting = structuredClone(stored.setting);
      const problems: InfergateError[] = [];
      fn(setting, problems, stored);
      check(problems, `Autoscale setting '${stored.setting.name}'`);
      return this.o.store.putAutoscaleSetting(setting, { endpoint: stored.endpoint, deployment: stored.deployment }).setting;
    });
  }

  private profile(setting: AutoscaleSetting, name: string): AutoscaleProfile {
    const found = setting.profiles.find((p) => p.name.toLowerCase() === String(name).toLowerCase());
    if (!found) throw errorOf('AutoscaleProfileNotFound', { name: setting.name, profile: String(name), profiles: setting.profiles.map((p) => p.name).join(', ') || '(none)' });
    return found;
  }

  /**
   * A profile's capacity from --min-count/--max-count/--count, each defaulting to the others (or to the
   * current capacity on update), as az does; min <= count <= max.
   */
  private capacity(profile: string, req: { min_count?: Count; max_count?: Count; count?: Count }, current: AutoscaleProfile['capacity'] | undefined, problems: InfergateError[]): AutoscaleProfile['capacity'] | undefined {
    const before = problems.length;
    const min = parseCount('--min-count', req.min_count, problems);
    const max = parseCount('--max-count', req.max_count, problems);
    const count = parseCount('--count', req.count, problems);
    if (problems.length > before) return undefined;
    const cur = current && { min: Number(current.minimum), max: Number(current.maximum), count: Number(current.default) };
    if (!cur && count === undefined && (min === undefined || max === undefined)) {
      problems.push(errorOf('AutoscaleCapacityMissing'));
      return undefined;
    }
    const c = count ?? cur?.count ?? min!;
    const lo = min ?? cur?.min ?? c;
    const hi = max ?? cur?.max ?? c;
    if (lo > hi) problems.push(errorOf('AutoscaleCapacityMinMax', { profile, min: lo, max: hi }));
    else if (c < lo || c > hi) problems.push(errorOf('AutoscaleCapacityDefault', { profile, count: c, min: lo, max: hi }));
    return { minimum: String(lo), maximum: String(hi), default: String(c) };
  }

  /** A resource id → the deployment or endpoint it names in the store (case-insensitively, as Azure compares ids). */
  private resolve(flag: string, id: string, problems: InfergateError[]): Resolved | undefined {
    const parsed = parseResourceId(id);
    if (!parsed) {
      problems.push(errorOf('AutoscaleResourceIdInvalid', { flag, resource: id }));
      return undefined;
    }
    const kind = parsed.deployment !== undefined ? 'deployment' : 'endpoint';
    const missing = () => {
      problems.push(errorOf('AutoscaleResourceNotFound', { flag, resource: id, kind }));
      return undefined;
    };
    if (parsed.workspace.toLowerCase() !== this.o.workspace.toLowerCase()) return missing();
    const endpoint = this.o.store.listEndpoints().find((e) => e.spec.name.toLowerCase() === parsed.endpoint.toLowerCase());
    if (!endpoint) return missing();
    const ep = endpoint.spec.name;
    if (parsed.deployment === undefined) return { ref: { endpoint: ep }, id: endpointResourceId(this.o.workspace, ep) };
    const deployment = this.o.store.listDeployments(ep).find((d) => d.spec.name.toLowerCase() === parsed.deployment!.toLowerCase());
    if (!deployment) return missing();
    return { ref: { endpoint: ep, deployment: deployment.spec.name }, id: deploymentResourceId(this.o.workspace, ep, deployment.spec.name) };
  }
}
