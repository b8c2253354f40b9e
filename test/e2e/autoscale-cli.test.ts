// `infergate monitor autoscale`: Azure's deploy-moe-autoscale.sh autoscale lines (contract §7.2) run
// unmodified with `az` replaced by `infergate`, against a real server with an endpoint and a deployment;
// every command's output checked; the setting survives a restart; bad input gets its code and changes
// nothing; deleting the deployment deletes its setting.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { EXAMPLES, until, Workspace, type CliResult } from './harness.js';

const ws = new Workspace();
const E = 'endpt-autoscale';
const D = 'blue';
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const NAME = `autoscale-${E}-${D}-${Math.floor(Math.random() * 32768)}`;
let DEPLOYMENT_RESOURCE_ID = '';
let ENDPOINT_RESOURCE_ID = '';

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const json = async (args: string[]): Promise<Json> => JSON.parse(await ws.ok(args)) as Json;

/** A refused command: az's exit code (3 for what was not found, else 1) and `ERROR: (<code>) <message>` on stderr. */
function refused(r: CliResult, code: string, message: RegExp): void {
  const exit = /NotFound$/.test(code) ? 3 : 1;
  assert.equal(r.code, exit, `expected ${code} (exit ${exit}), got exit ${r.code}\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stderr, new RegExp(`^ERROR: \\(${code}\\) `), r.stderr);
  assert.match(r.stderr, message);
}

before(async () => {
  await ws.startServer();
  await ws.ok(['online-endpoint', 'create', '-n', E, '-f', join(SAMPLE, 'endpoint.yml')]);
  await ws.ok(['online-deployment', 'create', '-n', D, '-e', E, '-f', join(SAMPLE, 'blue-deployment.yml')]);
});

after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

test('the contract §7.2 script runs unmodified, each output az-shaped', async () => {
  // DEPLOYMENT_RESOURCE_ID=$(az ml online-deployment show -e $ENDPOINT_NAME -n $DEPLOYMENT_NAME -o tsv --query "id")
  DEPLOYMENT_RESOURCE_ID = (await ws.ok(['ml', 'online-deployment', 'show', '-e', E, '-n', D, '-o', 'tsv', '--query', 'id'])).trim();
  assert.match(DEPLOYMENT_RESOURCE_ID, new RegExp(`^/workspaces/[^/]+/onlineEndpoints/${E}/deployments/${D}$`));
  // ENDPOINT_RESOURCE_ID=$(az ml online-endpoint show -n $ENDPOINT_NAME -o tsv --query "properties.\"azureml.onlineendpointid\"")
  ENDPOINT_RESOURCE_ID = (await ws.ok(['ml', 'online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'properties."azureml.onlineendpointid"'])).trim();
  assert.match(ENDPOINT_RESOURCE_ID, new RegExp(`^/workspaces/[^/]+/onlineendpoints/${E}$`));

  // az monitor autoscale create --name $AUTOSCALE_SETTINGS_NAME --resource $DEPLOYMENT_RESOURCE_ID --min-count 2 --max-count 5 --count 2
  const created = await json(['monitor', 'autoscale', 'create', '--name', NAME, '--resource', DEPLOYMENT_RESOURCE_ID, '--min-count', '2', '--max-count', '5', '--count', '2']);
  const workspaceName = DEPLOYMENT_RESOURCE_ID.split('/')[2];
  assert.deepEqual(created, {
    enabled: true,
    id: `/workspaces/${workspaceName}/autoscalesettings/${NAME}`,
    location: created.location,
    name: NAME,
    notifications: [],
    profiles: [{ capacity: { default: '2', maximum: '5', minimum: '2' }, name: 'default', rules: [] }],
    tags: {},
    targetResourceUri: DEPLOYMENT_RESOURCE_ID,
    type: 'Microsoft.Insights/autoscaleSettings',
  });
  assert.equal(typeof created.location, 'string');

  // az monitor autoscale rule create --autoscale-name $AUTOSCALE_SETTINGS_NAME --condition "CpuUtilizationPercentage > 70 avg 5m" --scale out 2
  const out = await json(['monitor', 'autoscale', 'rule', 'create', '--autoscale-name', NAME, '--condition', 'CpuUtilizationPercentage > 70 avg 5m', '--scale', 'out', '2']);
  assert.deepEqual(out, {
    metricTrigger: {
      dividePerInstance: false,
      metricName: 'CpuUtilizationPercentage',
      metricNamespace: 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints/deployments',
      metricResourceUri: DEPLOYMENT_RESOURCE_ID,
      operator: 'GreaterThan',
      statistic: 'Average',
      threshold: 70,
      timeAggregation: 'Average',
      timeGrain: 'PT1M',
      timeWindow: 'PT5M',
    },
    scaleAction: { cooldown: 'PT5M', direction: 'Increase', type: 'ChangeCount', value: '2' },
  });
  // az monitor autoscale rule create --autoscale-name $AUTOSCALE_SETTINGS_NAME --condition "CpuUtilizationPercentage < 25 avg 5m" --scale in 1
  const scaleIn = await json(['monitor', 'autoscale', 'rule', 'create', '--autoscale-name', NAME, '--condition', 'CpuUtilizationPercentage < 25 avg 5m', '--scale', 'in', '1']);
  assert.deepEqual([scaleIn.metricTrigger.operator, scaleIn.metricTrigger.threshold, scaleIn.scaleAction.direction, scaleIn.scaleAction.value], ['LessThan', 25, 'Decrease', '1']);
  // az monitor autoscale rule create --autoscale-name $AUTOSCALE_SETTINGS_NAME --condition "RequestLatency > 70 avg 5m" --scale out 1 --resource $ENDPOINT_RESOURCE_ID
  const latency = await json(['monitor', 'autoscale', 'rule', 'create', '--autoscale-name', NAME, '--condition', 'RequestLatency > 70 avg 5m', '--scale', 'out', '1', '--resource', ENDPOINT_RESOURCE_ID]);
  assert.equal(latency.metricTrigger.metricName, 'RequestLatency');
  assert.equal(latency.metricTrigger.metricResourceUri, ENDPOINT_RESOURCE_ID);
  assert.equal(latency.metricTrigger.metricNamespace, 'Microsoft.MachineLearningServices/workspaces/onlineEndpoints');

  // az monitor autoscale profile create --name weekend-profile --autoscale-name $AUTOSCALE_SETTINGS_NAME --min-count 2 --count 2 --max-count 2 --recurrence week sat sun --timezone "Pacific Standard Time"
  const weekend = await json(['monitor', 'autoscale', 'profile', 'create', '--name', 'weekend-profile', '--autoscale-name', NAME, '--min-count', '2', '--count', '2', '--max-count', '2', '--recurrence', 'week', 'sat', 'sun', '--timezone', 'Pacific Standard Time']);
  assert.deepEqual(weekend, {
    capacity: { default: '2', maximum: '2', minimum: '2' },
    name: 'weekend-profile',
    recurrence: { frequency: 'Week', schedule: { days: ['Saturday', 'Sunday'], hours: [], minutes: [], timeZone: 'Pacific Standard Time' } },
    rules: [],
  });

  // The reading verbs: show, list, rule list (with az's indexes), profile list/show, history; -o and --query.
  const shown = await json(['monitor', 'autoscale', 'show', '-n', NAME, '-g', 'ignored-rg']);
  assert.deepEqual(shown.profiles.map((p: Json) => p.name), ['default', 'weekend-profile']);
  assert.deepEqual(shown.profiles[0].rules, [out, scaleIn, latency]);
  assert.deepEqual((await json(['monitor', 'autoscale', 'list'])) as unknown, [shown]);
  const rules = (await json(['monitor', 'autoscale', 'rule', 'list', '--autoscale-name', NAME])) as unknown as Json[];
  assert.deepEqual(rules.map((r) => r.index), [0, 1, 2]);
  assert.deepEqual(rules[2], { ...latency, index: 2 });
  assert.equal((await ws.ok(['monitor', 'autoscale', 'rule', 'list', '--autoscale-name', NAME, '-o', 'tsv', '--query', '[].metricTrigger.metricName'])).trim().split(/\s+/).join(' '), 'CpuUtilizationPercentage CpuUtilizationPercentage RequestLatency');
  assert.deepEqual((await json(['monitor', 'autoscale', 'profile', 'list', '--autoscale-name', NAME])) as unknown, shown.profiles);
  assert.deepEqual(await json(['monitor', 'autoscale', 'profile', 'show', '--autoscale-name', NAME, '-n', 'weekend-profile']), weekend);
  assert.match(await ws.ok(['monitor', 'autoscale', 'show', '-n', NAME, '-o', 'yaml']), new RegExp(`^name: ${NAME}$`, 'm'));
  assert.equal((await ws.ok(['monitor', 'autoscale', 'show', '-n', NAME, '-o', 'tsv', '--query', 'profiles[0].capacity.maximum'])).trim(), '5');
  assert.match(await ws.ok(['monitor', 'autoscale', 'list', '-o', 'table', '--query', '[].{Name:name, Enabled:enabled}']), new RegExp(`${NAME}\\s+True`));
  assert.ok(Array.isArray(await json(['monitor', 'autoscale', 'history', '-n', NAME])));
});

test('--count 2 (minimum 2): the autoscaler takes the deployment from 1 to 2 instances', async () => {
  const count = await until('instance_count 2', async () => {
    const d = await json(['online-deployment', 'show', '-e', E, '-n', D]);
    return d.instance_count === 2 && d.provisioning_state === 'Succeeded' ? d.instance_count : undefined;
  }, 20_000, 200);
  assert.equal(count, 2);
});

test('bad input: each refused with its code, and the setting is unchanged', async () => {
  const before = await ws.ok(['monitor', 'autoscale', 'show', '-n', NAME]);
  const cases: Array<[string[], string, RegExp]> = [
    [['rule', 'create', '--autoscale-name', NAME, '--condition', 'GpuMagic > 70 avg 5m', '--scale', 'out', '1'], 'InvalidAutoscaleSetting', /unknown metric 'GpuMagic'/],
    [['rule', 'create', '--autoscale-name', NAME, '--condition', 'CpuUtilizationPercentage > 70 5m', '--scale', 'out', '1'], 'InvalidAutoscaleSetting', /is not "<metric> <operator> <threshold> <aggregation> <window>"/],
    [['rule', 'create', '--autoscale-name', NAME, '--condition', 'CpuUtilizationPercentage > 70 avg 5m', '--scale', 'sideways', '1'], 'InvalidAutoscaleSetting', /--scale 'sideways 1'/],
    [['rule', 'create', '--autoscale-name', NAME, '--condition', 'Bogus ~ x avg 5m', '--scale', 'up', '--cooldown', 'later'], 'InvalidAutoscaleSetting', /has 5 problems/],
    [['create', '-n', 'other', '--resource', DEPLOYMENT_RESOURCE_ID.replace(/blue$/, 'nope'), '--min-count', '1', '--max-count', '2'], 'ResourceNotFound', /no such deployment in this workspace/],
    [['create', '-n', 'other', '--resource', DEPLOYMENT_RESOURCE_ID.replace(/blue$/, 'nope'), '--min-count', '3', '--max-count', '2'], 'InvalidAutoscaleSetting', /has 2 problems[\s\S]*\(ResourceNotFound\)[\s\S]*minimum count 3 is greater than the maximum count 2/],
    [['create', '-n', 'other', '--resource', DEPLOYMENT_RESOURCE_ID, '--min-count', '1', '--max-count', '2'], 'AutoscaleSettingConflict', new RegExp(`has an autoscale setting already \\('${NAME}'\\)`)],
    [['create', '-n', NAME, '--resource', DEPLOYMENT_RESOURCE_ID, '--count', '1'], 'AutoscaleSettingConflict', /has 2 conflicts/],
    [['update', '--autoscale-name', NAME, '--min-count', '4', '--max-count', '3'], 'InvalidAutoscaleSetting', /minimum count 4 is greater than the maximum count 3/],
    [['update', '--autoscale-name', NAME, '--count', '9'], 'InvalidAutoscaleSetting', /count 9 is outside \[minimum 2, maximum 5\]/],
    [['update', '--autoscale-name', 'no-such-setting', '--enabled', 'false'], 'AutoscaleSettingNotFound', /'no-such-setting' not found/],
    [['profile', 'create', '--autoscale-name', NAME, '-n', 'w', '--count', '2', '--recurrence', 'week'], 'InvalidAutoscaleSetting', /no days/],
    [['profile', 'create', '--autoscale-name', NAME, '-n', 'w', '--count', '2', '--recurrence', 'week', 'sat', '--timezone', 'Atlantis Standard Time'], 'InvalidAutoscaleSetting', /--timezone 'Atlantis Standard Time'/],
    [['profile', 'create', '--autoscale-name', NAME, '-n', 'weekend-profile', '--count', '2', '--recurrence', 'week', 'sat'], 'AutoscaleSettingConflict', /has a profile named 'weekend-profile' already/],
    [['rule', 'delete', '--autoscale-name', NAME, '--index', '0', '7'], 'InvalidAutoscaleSetting', /--index 7: profile 'default' has 3 rule\(s\) \(indexes 0 to 2/],
    [['profile', 'delete', '--autoscale-name', NAME, '-n', 'default'], 'InvalidAutoscaleSetting', /is the default profile/],
    [['show'], 'BadArgument', /Give the autoscale setting's name/],
  ];
  for (const [args, code, message] of cases) refused(await ws.cli(['monitor', 'autoscale', ...args]), code, message);
  assert.equal(await ws.ok(['monitor', 'autoscale', 'show', '-n', NAME]), before);
  assert.deepEqual((await json(['monitor', 'autoscale', 'list'])).map((s: Json) => s.name), [NAME]);
});

test('the setting survives a server restart', async () => {
  const before = await ws.ok(['monitor', 'autoscale', 'show', '-n', NAME]);
  assert.equal(await ws.stopServer(), 0);
  await ws.startServer();
  assert.equal(await ws.ok(['monitor', 'autoscale', 'show', '-n', NAME]), before);
});

test('update --enabled false, delete; a setting goes with its deployment', async () => {
  // az monitor autoscale update --autoscale-name $AUTOSCALE_SETTINGS_NAME --enabled false
  const updated = await json(['monitor', 'autoscale', 'update', '--autoscale-name', NAME, '--enabled', 'false']);
  assert.equal(updated.enabled, false);
  assert.equal((await json(['monitor', 'autoscale', 'show', '-n', NAME])).enabled, false);
  await ws.ok(['monitor', 'autoscale', 'rule', 'delete', '--autoscale-name', NAME, '--index', '1']);
  assert.deepEqual((await json(['monitor', 'autoscale', 'rule', 'list', '--autoscale-name', NAME])).map((r: Json) => r.metricTrigger.metricName), ['CpuUtilizationPercentage', 'RequestLatency']);
  await ws.ok(['monitor', 'autoscale', 'profile', 'delete', '--autoscale-name', NAME, '-n', 'weekend-profile']);
  // az monitor autoscale delete -n "$AUTOSCALE_SETTINGS_NAME"
  assert.equal(await ws.ok(['monitor', 'autoscale', 'delete', '-n', NAME]), '');
  refused(await ws.cli(['monitor', 'autoscale', 'show', '-n', NAME]), 'AutoscaleSettingNotFound', new RegExp(`'${NAME}' not found`));
  assert.deepEqual(await json(['monitor', 'autoscale', 'list']), []);

  // Every change is in the audit log with the setting's name, as the other routes' changes are.
  const audited = await until('the audit lines of the autoscale changes', async () => {
    const lines = readFileSync(join(ws.dir, 'logs', 'audit.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Json);
    const mine = lines.filter((l) => String(l.route).startsWith('/api/autoscale') && l.autoscale_setting === NAME);
    return mine.some((l) => l.method === 'DELETE' && l.route === '/api/autoscale/:name' && l.status === 200) ? mine : undefined;
  });
  assert.ok(audited.some((l) => l.method === 'POST' && l.route === '/api/autoscale' && l.status === 201));
  assert.ok(audited.some((l) => l.method === 'PATCH' && l.status === 200));
  assert.ok(audited.some((l) => l.method === 'POST' && l.route === '/api/autoscale/:name/rules' && l.status === 400), 'refused changes are audited too');

  await ws.ok(['monitor', 'autoscale', 'create', '-n', 'again', '--resource', DEPLOYMENT_RESOURCE_ID, '--count', '1']);
  await ws.ok(['online-deployment', 'delete', '-e', E, '-n', D, '--yes']);
  refused(await ws.cli(['monitor', 'autoscale', 'show', '-n', 'again']), 'AutoscaleSettingNotFound', /'again' not found/);
});
