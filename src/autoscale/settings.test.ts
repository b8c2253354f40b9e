// Autoscale settings as az makes them: the CLI's words parsed into Azure Monitor's document, and every
// bad input refused with its code, all problems at once, nothing written.

import assert from 'node:assert/strict';
import { beforeEach, describe, test } from 'node:test';
import { InfergateError } from '../errors/index.js';
import { DEFAULT_PROBE, DEFAULT_REQUEST_SETTINGS, type DeploymentSpec } from '../spec/types.js';
import { MemoryStateStore } from '../store/index.js';
import { deploymentResourceId, endpointResourceId, parseResourceId, sameResourceId } from './resources.js';
import { AutoscaleSettings, conditionText, parseCondition, parseCooldown, parsePeriod, parseRecurrence, parseScale } from './settings.js';
import { ianaZone } from './timezones.js';

const WS = 'ws1';
const DEP_ID = deploymentResourceId(WS, 'my-endpoint', 'blue');
const EP_ID = endpointResourceId(WS, 'my-endpoint');

function deployment(endpointName: string, name: string): DeploymentSpec {
  return {
    name,
    endpointName,
    type: 'managed',
    tags: {},
    properties: {},
    model: { kind: 'inline', path: '/m.pkl', type: 'custom_model' },
    codeConfiguration: { code: '/code', scoringScript: 'score.py' },
    environmentVariables: {},
    instanceType: 'Standard_DS3_v2',
    instanceCount: 1,
    appInsightsEnabled: false,
    scaleSettings: { type: 'default' },
    requestSettings: { ...DEFAULT_REQUEST_SETTINGS },
    livenessProbe: { ...DEFAULT_PROBE },
    readinessProbe: { ...DEFAULT_PROBE },
    egressPublicNetworkAccess: 'enabled',
  };
}

/** Asserts fn throws an InfergateError with this code whose message matches. */
function refuses(fn: () => unknown, code: string, message?: RegExp): InfergateError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  assert.ok(caught instanceof InfergateError, `expected InfergateError ${code}, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (message) assert.match(caught.message, message);
  return caught;
}

describe('az words', () => {
  test('a condition becomes a metric trigger, and reads back as az wrote it', () => {
    const { condition, problems } = parseCondition('CpuUtilizationPercentage > 70 avg 5m');
    assert.deepEqual(problems, []);
    assert.deepEqual(condition, { metric: 'CpuUtilizationPercentage', operator: 'GreaterThan', threshold: 70, aggregation: 'Average', timeWindow: 'PT5M' });
    assert.equal(parseCondition('requestlatency <= 12.5 max 30s').condition?.timeWindow, 'PT30S');
    assert.equal(parseCondition('RequestLatency != 1 last 1h30m').condition?.operator, 'NotEquals');
    assert.equal(parseCondition('CpuMemoryUtilizationPercentage >= 80 total 1d').condition?.metric, 'MemoryUtilizationPercentage');
    const rule = {
      metricTrigger: { metricName: 'RequestLatency', metricNamespace: '', metricResourceUri: '', timeGrain: 'PT1M', statistic: 'Average', timeWindow: 'PT5M', timeAggregation: 'Average', operator: 'GreaterThan', threshold: 70, dividePerInstance: false },
      scaleAction: { direction: 'Increase', type: 'ChangeCount', value: '1', cooldown: 'PT5M' },
    } as const;
    assert.equal(conditionText(structuredClone(rule) as never), 'RequestLatency > 70 avg 5m');
  });

  test('a malformed condition names what is wrong; every part at once', () => {
    const cases: Array<[string, RegExp]> = [
      ['CpuUtilizationPercentage > 70 avg', /4 words, expected 5/],
      ['CpuUtilizationPercentage => 70 avg 5m', /operator '=>'/],
      ['CpuUtilizationPercentage > seventy avg 5m', /threshold 'seventy'/],
      ['CpuUtilizationPercentage > 70 mean 5m', /aggregation 'mean'/],
      ['CpuUtilizationPercentage > 70 avg 5 minutes', /6 words/],
      ['CpuUtilizationPercentage > 70 avg 5x', /window '5x'/],
      ['CpuUtilizationPercentage > 70 avg 0m', /window '0m'/],
      ['CpuUtilizationPercentage > 70 avg 5m where instanceId == a', /dimension filters/],
    ];
    for (const [text, reason] of cases) {
      const { condition, problems } = parseCondition(text);
      assert.equal(condition, undefined, text);
      assert.equal(problems.length, 1, text);
      assert.equal(problems[0].code, 'InvalidAutoscaleSetting');
      assert.match(problems[0].message, reason, text);
    }
    const many = parseCondition('GpuThing >> x avg 5m').problems.map((p) => p.message);
    assert.equal(many.length, 3);
    assert.match(many[0], /unknown metric 'GpuThing'; the metrics are CpuUtilizationPercentage, /);
  });

  test('--scale out/in/to N and percentages; periods; cooldown minutes', () => {
    assert.deepEqual(parseScale(['out', '2']).action, { direction: 'Increase', type: 'ChangeCount', value: '2' });
    assert.deepEqual(parseScale('in 1').action, { direction: 'Decrease', type: 'ChangeCount', value: '1' });
    assert.deepEqual(parseScale(['to', '3']).action, { direction: 'None', type: 'ExactCount', value: '3' });
    assert.deepEqual(parseScale(['out', '20%']).action, { direction: 'Increase', type: 'PercentChangeCount', value: '20' });
    for (const bad of ['up 2', 'out', 'out 0', 'out -1', 'to 5%', 'out 2 3', 'in x']) assert.equal(parseScale(bad).problems.length, 1, bad);
    assert.equal(parsePeriod('1d'), 86_400_000);
    assert.equal(parsePeriod('PT10S'), 10_000);
    assert.equal(parsePeriod(''), undefined);
    assert.equal(parseCooldown(undefined).cooldown, 'PT5M');
    assert.equal(parseCooldown('60').cooldown, 'PT1H');
    assert.equal(parseCooldown(0).cooldown, 'PT0S');
    assert.equal(parseCooldown('30s').cooldown, 'PT30S');
    assert.equal(parseCooldown('soon').problems[0].code, 'InvalidAutoscaleSetting');
  });

  test('recurrences, time zones and resource ids', () => {
    assert.deepEqual(parseRecurrence(['week', 'sat', 'sun']).days, ['Saturday', 'Sunday']);
    assert.deepEqual(parseRecurrence(['Week', 'Monday,tue', 'mon']).days, ['Monday', 'Tuesday']);
    assert.match(parseRecurrence(['week']).problems[0].message, /no days/);
    assert.match(parseRecurrence(['month', '1']).problems[0].message, /frequency must be 'week'/);
    assert.match(parseRecurrence(['week', 'caturday']).problems[0].message, /'caturday' is not a day/);
    assert.equal(ianaZone('Pacific Standard Time'), 'America/Los_Angeles');
    assert.equal(ianaZone('pacific standard time'), 'America/Los_Angeles');
    assert.equal(ianaZone('W. Europe Standard Time'), 'Europe/Berlin');
    assert.equal(ianaZone('UTC'), 'Etc/UTC');
    assert.equal(ianaZone('Asia/Kolkata'), 'Asia/Kolkata');
    assert.equal(ianaZone('Mars Standard Time'), undefined);
    assert.equal(ianaZone('+05:00'), undefined);
    assert.equal(ianaZone(''), undefined);
    assert.deepEqual(parseResourceId('/workspaces/ws1/onlineendpoints/my-endpoint'), { workspace: 'ws1', endpoint: 'my-endpoint' });
    assert.deepEqual(parseResourceId(DEP_ID), { workspace: 'ws1', endpoint: 'my-endpoint', deployment: 'blue' });
    assert.equal(parseResourceId('/subscriptions/x/resourceGroups/y'), undefined);
    assert.ok(sameResourceId(DEP_ID.toUpperCase(), DEP_ID + '/'));
  });
});

describe('AutoscaleSettings', () => {
  let store: MemoryStateStore;
  let settings: AutoscaleSettings;
  beforeEach(() => {
    store = new MemoryStateStore();
    store.putEndpoint({ name: 'my-endpoint', kind: 'managed', tags: {}, properties: {}, authMode: 'key', traffic: {}, mirrorTraffic: {}, publicNetworkAccess: 'enabled' }, { primaryKey: 'a', secondaryKey: 'b', tokenSecret: 'c' });
    store.putDeployment(deployment('my-endpoint', 'blue'));
    store.putDeployment(deployment('my-endpoint', 'green'));
    settings = new AutoscaleSettings({ store, workspace: WS, location: 'local' });
  });

  const create = (name = 'as1', resource = DEP_ID) => settings.create({ name, resource, min_count: '2', max_count: '5', count: '2' });

  test('the contract §7.2 script, in az shape', () => {
    const created = create();
    assert.deepEqual(created, {
      id: '/workspaces/ws1/autoscalesettings/as1',
      name: 'as1',
      location: 'local',
      type: 'Microsoft.Insights/autoscaleSettings',
      targetResourceUri: DEP_ID,
      enabled: true,
      profiles: [{ name: 'default', capacity: { minimum: '2', maximum: '5', default: '2' }, rules: [] }],
      notifications: [],
      tags: {},
    });
    const out = settings.createRule('as1', { condition: 'CpuUtilizationPercentage > 70 avg 5m', scale: ['out', '2'] });
    assert.deepEqual(out, {
      metricTrigger: {
        metricName: 'CpuUtilizationPercentage',
        metricNamespace: 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments',
        metricResourceUri: DEP_ID,
        timeGrain: 'PT1M',
        statistic: 'Average',
        timeWindow: 'PT5M',
        timeAggregation: 'Average',
        operator: 'GreaterThan',
        threshold: 70,
        dividePerInstance: false,
      },
      scaleAction: { direction: 'Increase', type: 'ChangeCount', value: '2', cooldown: 'PT5M' },
    });
    settings.createRule('as1', { condition: 'CpuUtilizationPercentage < 25 avg 5m', scale: ['in', '1'] });
    // The endpoint id as `online-endpoint show` prints it (lower-case), upper-cased: ids compare case-insensitively.
    const latency = settings.createRule('as1', { condition: 'RequestLatency > 70 avg 5m', scale: ['out', '1'], resource: EP_ID.toUpperCase().replace('/WORKSPACES/WS1', '/workspaces/ws1') });
    assert.equal(latency.metricTrigger.metricResourceUri, EP_ID);
    assert.equal(latency.metricTrigger.metricNamespace, 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints');
    const weekend = settings.createProfile('as1', { name: 'weekend-profile', min_count: '2', count: '2', max_count: '2', recurrence: ['week', 'sat', 'sun'], timezone: 'Pacific Standard Time' });
    assert.deepEqual(weekend, {
      name: 'weekend-profile',
      capacity: { minimum: '2', maximum: '2', default: '2' },
      rules: [],
      recurrence: { frequency: 'Week', schedule: { timeZone: 'Pacific Standard Time', days: ['Saturday', 'Sunday'], hours: [], minutes: [] } },
    });
    assert.equal(settings.update('as1', { enabled: 'false' }).enabled, false);
    assert.deepEqual(settings.listRules('as1').map((r) => [r.index, conditionText(r)]), [
      [0, 'CpuUtilizationPercentage > 70 avg 5m'],
      [1, 'CpuUtilizationPercentage < 25 avg 5m'],
      [2, 'RequestLatency > 70 avg 5m'],
    ]);
    settings.delete('as1');
    refuses(() => settings.get('as1'), 'AutoscaleSettingNotFound', /'as1' not found/);
  });

  test('create collects every problem, coded, and writes nothing', () => {
    const e = refuses(() => settings.create({ name: 'bad', resource: deploymentResourceId(WS, 'my-endpoint', 'red'), min_count: '5', max_count: '2', count: '3' }), 'InvalidAutoscaleSetting', /has 2 problems/);
    assert.deepEqual((e.details as Array<{ code: string }>).map((d) => d.code), ['ResourceNotFound', 'InvalidAutoscaleSetting']);
    assert.match(e.message, /no such deployment in this workspace/);
    assert.match(e.message, /minimum count 5 is greater than the maximum count 2/);
    assert.deepEqual(settings.list(), []);
    refuses(() => settings.create({ name: 'x', resource: deploymentResourceId(WS, 'my-endpoint', 'red'), count: '1' }), 'ResourceNotFound', /--resource .*red: no such deployment/);
    refuses(() => settings.create({ name: 'x', resource: deploymentResourceId('other-ws', 'my-endpoint', 'blue'), count: '1' }), 'ResourceNotFound');
    refuses(() => settings.create({ name: 'x', resource: '/subscriptions/1/whatever', count: '1' }), 'InvalidAutoscaleSetting', /is not a deployment or endpoint id/);
    refuses(() => settings.create({ name: 'x', resource: EP_ID, count: '1' }), 'InvalidAutoscaleSetting', /is an endpoint; an autoscale setting scales a deployment/);
    refuses(() => settings.create({ name: 'x', resource: DEP_ID, min_count: '1', max_count: '3', count: '4' }), 'InvalidAutoscaleSetting', /count 4 is outside \[minimum 1, maximum 3\]/);
    refuses(() => settings.create({ name: 'x', resource: DEP_ID, min_count: '1' }), 'InvalidAutoscaleSetting', /Give --count, or --min-count and --max-count/);
    refuses(() => settings.create({ name: 'x', resource: DEP_ID, count: '2.5' }), 'InvalidAutoscaleSetting', /--count must be a whole number from 0 to 1000, not '2.5'/);
    refuses(() => settings.create({ name: 'a/b', resource: DEP_ID, count: '1' }), 'InvalidAutoscaleSetting', /not an autoscale setting name/);
    assert.deepEqual(settings.list(), []);
    // Counts alone default to each other, as az's do; 0 is allowed (scale to zero).
    assert.deepEqual(settings.create({ name: 'zero', resource: DEP_ID, min_count: '0', max_count: '3' }).profiles[0].capacity, { minimum: '0', maximum: '3', default: '0' });
  });

  test('one setting per resource (ids compared case-insensitively), one name per setting', () => {
    create('as1');
    refuses(() => create('as2', DEP_ID.toUpperCase().replace('/WORKSPACES/WS1', '/workspaces/ws1')), 'AutoscaleSettingConflict', /has an autoscale setting already \('as1'\)/);
    refuses(() => create('AS1', deploymentResourceId(WS, 'my-endpoint', 'green')), 'AutoscaleSettingConflict', /named 'AS1' exists already/);
    assert.deepEqual(settings.list().map((s) => s.name), ['as1']);
    assert.equal(settings.get('AS1').name, 'as1');
  });

  test('bad rules, profiles, updates and deletes are refused with their codes and change nothing', () => {
    create();
    settings.createRule('as1', { condition: 'CpuUtilizationPercentage > 70 avg 5m', scale: 'out 2' });
    const before = settings.get('as1');
    refuses(() => settings.createRule('as1', { condition: 'Bogus > 70 avg 5m', scale: 'out 2' }), 'InvalidAutoscaleSetting', /unknown metric 'Bogus'/);
    refuses(() => settings.createRule('as1', { condition: 'CpuUtilizationPercentage > 70 avg', scale: 'up', cooldown: 'x' }), 'InvalidAutoscaleSetting', /has 3 problems/);
    refuses(() => settings.createRule('as1', { condition: 'RequestLatency > 70 avg 5m', scale: 'out 1', resource: endpointResourceId(WS, 'nope') }), 'ResourceNotFound', /no such endpoint/);
    refuses(() => settings.createRule('as1', { condition: 'RequestLatency > 70 avg 5m', scale: 'out 1', profile_name: 'nope' }), 'AutoscaleSettingNotFound', /has no profile 'nope' \(its profiles: default\)/);
    refuses(() => settings.createRule('missing', { condition: 'RequestLatency > 70 avg 5m', scale: 'out 1' }), 'AutoscaleSettingNotFound');
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2', recurrence: ['week'] }), 'InvalidAutoscaleSetting', /no days/);
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2', recurrence: ['week', 'sat'], timezone: 'Mars Standard Time' }), 'InvalidAutoscaleSetting', /--timezone 'Mars Standard Time' is not a time zone/);
    refuses(() => settings.createProfile('as1', { name: 'default', count: '2', recurrence: ['week', 'sat'] }), 'AutoscaleSettingConflict', /has a profile named 'default' already/);
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2' }), 'InvalidAutoscaleSetting', /give --recurrence .* or --start and --end/);
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2', start: '2026-12-24', end: '2026-12-23' }), 'InvalidAutoscaleSetting', /must be before --end/);
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2', start: '2026-02-30', end: '2026-03-01' }), 'InvalidAutoscaleSetting', /--start '2026-02-30' is not a date/);
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2', start: '2026-01-01', end: '2027-06-01' }), 'InvalidAutoscaleSetting', /at most 365 days/);
    refuses(() => settings.createProfile('as1', { name: 'w', count: '2', recurrence: ['week', 'sat'], end: '18:00' }), 'InvalidAutoscaleSetting', /--end is for fixed-date profiles/);
    refuses(() => settings.update('nope', { enabled: 'false' }), 'AutoscaleSettingNotFound', /'nope' not found/);
    refuses(() => settings.update('as1', { enabled: 'maybe', min_count: '9' }), 'InvalidAutoscaleSetting', /has 2 problems/);
    refuses(() => settings.deleteRules('as1', { index: ['1'] }), 'InvalidAutoscaleSetting', /--index 1: profile 'default' has 1 rule\(s\) \(indexes 0 to 0/);
    refuses(() => settings.deleteRules('as1', { index: ['0', '5'] }), 'InvalidAutoscaleSetting', /--index 5/);
    refuses(() => settings.deleteProfile('as1', 'default'), 'InvalidAutoscaleSetting', /is the default profile/);
    assert.deepEqual(settings.get('as1'), before);
  });

  test('profiles: fixed dates, recurrence start times, copied rules; updates touch the default profile', () => {
    create();
    settings.createRule('as1', { condition: 'CpuUtilizationPercentage > 70 avg 5m', scale: 'out 2', cooldown: '1' });
    const holiday = settings.createProfile('as1', { name: 'holiday', count: '4', min_count: '3', max_count: '5', start: '2026-12-24', end: '2026-12-26 18:30', timezone: 'Europe/Berlin', copy_rules: 'default' });
    assert.deepEqual(holiday.fixedDate, { timeZone: 'Europe/Berlin', start: '2026-12-24T00:00:00', end: '2026-12-26T18:30:00' });
    assert.equal(holiday.rules[0].scaleAction.cooldown, 'PT1M');
    const morning = settings.createProfile('as1', { name: 'mornings', count: '3', recurrence: ['week', 'mon', 'tue'], start: '08:15' });
    assert.deepEqual(morning.recurrence!.schedule, { timeZone: 'UTC', days: ['Monday', 'Tuesday'], hours: [8], minutes: [15] });
    assert.deepEqual(settings.listProfiles('as1').map((p) => p.name), ['default', 'holiday', 'mornings']);
    const updated = settings.update('as1', { max_count: '8', count: '3' });
    assert.deepEqual(updated.profiles[0].capacity, { minimum: '2', maximum: '8', default: '3' });
    assert.deepEqual(updated.profiles[1].capacity, { minimum: '3', maximum: '5', default: '4' });
    settings.deleteProfile('as1', 'HOLIDAY');
    assert.deepEqual(settings.listProfiles('as1').map((p) => p.name), ['default', 'mornings']);
    settings.deleteRules('as1', { index: '*' });
    assert.deepEqual(settings.listRules('as1'), []);
  });

  test('history is the store\'s, and goes with the setting and with its deployment', () => {
    create();
    store.appendAutoscaleEvent({ time: '2026-01-01T00:00:00.000Z', setting: 'as1', profile: 'default', outcome: 'scaled', from: 2, to: 4, rule: 'CpuUtilizationPercentage > 70 avg 5m', value: 91, message: 'scaled out' });
    assert.equal(settings.history('as1').length, 1);
    assert.equal(settings.history('AS1', 0).length, 0);
    refuses(() => settings.history('nope'), 'AutoscaleSettingNotFound');
    store.deleteDeployment('my-endpoint', 'blue');
    refuses(() => settings.get('as1'), 'AutoscaleSettingNotFound');
    assert.deepEqual(store.listAutoscaleEvents('as1'), []);
  });
});
