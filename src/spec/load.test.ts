// YAML specifics: positions, several problems at once, syntax errors, the real Azure examples, `--set`.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { formatProblem } from '../errors/index.js';
import { loadDeploymentYaml, loadEndpointYaml, parseDeploymentObject } from './index.js';

const here = dirname(fileURLToPath(import.meta.url));
const testdata = join(here, 'testdata');
/** The Azure examples: the repository's copy, and the shared one beside the repository, where present. */
const exampleRoots = [resolve(here, '../../examples/azureml'), resolve(here, '../../../shared/examples/azureml')].filter((d) => existsSync(d));

test('a broken deployment reports every problem with its line and column', () => {
  const text = [
    'name: x', //                              bad name: at the value
    'endpoint_name: my-endpoint',
    'instance_type: Standard_DS3_v2',
    'instance_count: two', //                  wrong type: at the value
    'colour: blue', //                         unknown key: at the key
    'request_settings:',
    '  request_timeout_ms: 5000',
    '  max_queue_wait: 10', //                 unknown nested key, with a suggestion
    'code_configuration:',
    '  code: azureml:code:1', //               missing scoring_script: at the parent mapping
    '',
  ].join('\n');
  const { spec, problems } = loadDeploymentYaml(text, 'd.yml');
  assert.equal(spec, undefined);
  assert.deepEqual(problems, [
    { file: 'd.yml', line: 1, column: 7, path: 'name', message: 'The name for a deployment must be at least 3 and at most 32 characters long (inclusive of both limits).' },
    { file: 'd.yml', line: 4, column: 17, path: 'instance_count', message: 'expected an integer, got the string "two"' },
    { file: 'd.yml', line: 5, column: 1, path: 'colour', message: "unknown key 'colour'" },
    { file: 'd.yml', line: 8, column: 3, path: 'request_settings.max_queue_wait', message: "unknown key 'max_queue_wait'; did you mean 'max_queue_wait_ms'?" },
    { file: 'd.yml', line: 10, column: 3, path: 'code_configuration.scoring_script', message: "missing required key 'scoring_script'" },
  ]);
  assert.equal(formatProblem(problems[2]), "d.yml:5:1: colour: unknown key 'colour'");
});

test('flow-style values are located too', () => {
  const { problems } = loadEndpointYaml('name: my-endpoint\ntraffic: {blue: 100, green: "x"}\n', 'e.yml');
  assert.deepEqual(problems, [{ file: 'e.yml', line: 2, column: 29, path: 'traffic.green', message: 'expected an integer, got the string "x"' }]);
});

test('YAML syntax errors are problems, and a misparsed tree is not validated further', () => {
  const { spec, problems } = loadEndpointYaml('name: my-endpoint\n  auth_mode: key\n', 'e.yml');
  assert.equal(spec, undefined);
  assert.ok(problems.length > 0);
  assert.ok(problems.every((p) => p.message.startsWith('invalid YAML: ') && p.line !== undefined));
});

test('a duplicate key is reported alongside the validation problems (the later one wins)', () => {
  const { problems } = loadEndpointYaml('name: my-endpoint\nauth_mode: key\nauth_mode: bogus\n', 'e.yml');
  assert.deepEqual(
    problems.map((p) => `${p.line}:${p.column} ${p.path} ${p.message}`),
    ['3:1  invalid YAML: Map keys must be unique', '3:12 auth_mode expected one of key, aml_token, aad_token, got the string "bogus"'],
  );
});

test('several YAML documents in one file are a problem', () => {
  const { problems } = loadEndpointYaml('name: a-b-c\n---\nname: d-e-f\n', 'e.yml');
  assert.equal(problems.length, 1);
  assert.match(problems[0].message, /multiple documents/);
});

test('the real Azure examples: endpoint.yml and kubernetes-endpoint.yml load as they are', () => {
  assert.ok(exampleRoots.length > 0, 'no copy of the Azure examples found');
  for (const root of exampleRoots) {
    for (const file of ['managed/sample/endpoint.yml', 'kubernetes/kubernetes-endpoint.yml']) {
      const path = join(root, file);
      const { spec, problems } = loadEndpointYaml(readFileSync(path, 'utf8'), path);
      assert.deepEqual(problems, [], path);
      assert.equal(spec?.name, 'my-endpoint');
    }
  }
});

test('the real Azure examples: deployments load, or miss only the scoring code the examples do not ship', () => {
  const cases: [string, number][] = [
    ['managed/sample/blue-deployment.yml', 7],
    ['managed/sample/green-deployment.yml', 7],
    ['kubernetes/kubernetes-blue-deployment.yml', 8],
    ['kubernetes/kubernetes-green-deployment.yml', 9],
  ];
  for (const root of exampleRoots) {
    // blue-deployment.yml has `environment: ` with a trailing space; that must not matter.
    assert.match(readFileSync(join(root, 'managed/sample/blue-deployment.yml'), 'utf8'), /^environment: $/m);
    for (const [file, line] of cases) {
      const path = join(root, file);
      const { spec, problems } = loadDeploymentYaml(readFileSync(path, 'utf8'), path);
      const code = resolve(dirname(path), file.startsWith('managed') ? '../..' : '..', file.includes('blue') ? 'model-1' : 'model-2', 'onlinescoring');
      if (existsSync(join(code, 'score.py'))) {
        assert.deepEqual(problems, [], path);
        assert.equal(spec?.codeConfiguration?.code, code);
      } else {
        assert.equal(problems.length, 1, path);
        assert.equal(problems[0].path, 'code_configuration.code');
        assert.equal(problems[0].line, line);
        assert.match(problems[0].message, /onlinescoring.* does not exist$/);
      }
    }
  }
});

test('the examples with scoring code present (testdata copy) give full specs', () => {
  const path = join(testdata, 'managed/sample/blue-deployment.in.yaml');
  const { spec, problems } = loadDeploymentYaml(readFileSync(path, 'utf8'), path);
  assert.deepEqual(problems, []);
  assert.equal(spec?.codeConfiguration?.code, join(testdata, 'model-1/onlinescoring'));
  assert.deepEqual(spec?.environment, {
    kind: 'inline',
    image: 'mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu22.04:latest',
    condaFile: join(testdata, 'model-1/environment/conda.yaml'),
    osType: 'linux',
  });
});

// ---- --set -----------------------------------------------------------------------------------------

const blueFile = join(testdata, 'managed/sample/blue-deployment.in.yaml');
const blueText = readFileSync(blueFile, 'utf8');

test('--set overrides apply before validation, values read as YAML scalars', () => {
  const { spec, problems } = loadDeploymentYaml(blueText, blueFile, [
    'instance_count=3',
    'request_settings.request_timeout_ms=9000',
    'environment_variables.WORKER_COUNT=4',
    'tags.owner=alice',
    'description=a #b',
    'model.version=1.10',
    'app_insights_enabled=true',
  ]);
  assert.deepEqual(problems, []);
  assert.equal(spec?.instanceCount, 3);
  assert.equal(spec?.requestSettings.requestTimeoutMs, 9000);
  assert.equal(spec?.requestSettings.maxQueueWaitMs, 500);
  assert.deepEqual(spec?.environmentVariables, { WORKER_COUNT: '4' });
  assert.deepEqual(spec?.tags, { owner: 'alice' });
  assert.equal(spec?.description, 'a #b');
  assert.equal(spec?.model?.kind === 'inline' && spec.model.version, '1.10');
  assert.equal(spec?.appInsightsEnabled, true);
});

test('--set: strings stay strings, quotes and flow collections work, an empty value clears', () => {
  const { spec, problems } = loadEndpointYaml('name: my-endpoint\ndescription: old\n', 'e.yml', [
    'auth_mode=aml_token',
    'tags="{not: a map}"',
    'tags={a: "1", b: 2}',
    'traffic={}',
    'description=',
  ]);
  assert.deepEqual(problems, []);
  assert.equal(spec?.authMode, 'aml_token');
  assert.deepEqual(spec?.tags, { a: '1', b: '2' });
  assert.equal(spec?.description, undefined);
});

test('--set can replace a reference by a mapping and address list items', () => {
  const text = 'name: my-endpoint\nidentity:\n  type: user_assigned\n  user_assigned_identities:\n    - resource_id: old\n';
  const { spec } = loadEndpointYaml(text, 'e.yml', ['identity.user_assigned_identities[0].resource_id=new', 'identity.user_assigned_identities[1].resource_id=more']);
  assert.deepEqual(spec?.identity, { type: 'user_assigned', userAssignedIdentities: [{ resourceId: 'new' }, { resourceId: 'more' }] });
});

test('--set on an empty file builds the whole document (create -n NAME with no file)', () => {
  const { spec, problems } = loadEndpointYaml('', 'e.yml', ['name=from-set', 'compute=azureml:k8s']);
  assert.deepEqual(problems, []);
  assert.equal(spec?.name, 'from-set');
  assert.equal(spec?.kind, 'kubernetes');
});

test('--set decides the kind: type=kubernetes makes a Kubernetes deployment', () => {
  const { spec } = loadDeploymentYaml(blueText, blueFile, ['type=kubernetes', 'instance_type=']);
  assert.equal(spec?.type, 'kubernetes');
  assert.equal(spec?.instanceType, 'defaultinstancetype');
});

test('a problem in a value set by --set names the override', () => {
  const { problems } = loadDeploymentYaml(blueText, blueFile, ['instance_count=0', 'request_settings.bogus=1']);
  assert.deepEqual(problems, [
    { file: blueFile, path: 'instance_count', message: 'must be between 1 and 50, got 0 (set by --set instance_count=0)' },
    { file: blueFile, path: 'request_settings.bogus', message: "unknown key 'bogus' (set by --set request_settings.bogus=1)" },
  ]);
});

test('malformed overrides are problems with path --set, and the rest is still validated', () => {
  const { problems } = loadEndpointYaml('name: x\n', 'e.yml', ['nonsense', '=1', 'a..b=1', 'traffic[0]=1']);
  assert.deepEqual(
    problems.map((p) => `${p.path}: ${p.message}`),
    [
      "--set: 'nonsense' is not an override: expected key=value, e.g. instance_count=2 or request_settings.request_timeout_ms=9000",
      "--set: '=1' is not an override: expected key=value, e.g. instance_count=2 or request_settings.request_timeout_ms=9000",
      "--set: 'a..b=1' is not an override: expected key=value, e.g. instance_count=2 or request_settings.request_timeout_ms=9000",
      "--set: 'traffic[0]=1': [0] addresses a list item, but there is no list there",
      'name: The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits).',
    ],
  );
});

test('aliases: a self-reference and an alias bomb are problems, not hangs', () => {
  const self = loadEndpointYaml('name: my-endpoint\ntags: &t\n  a: *t\n', 'e.yml');
  assert.match(self.problems[0].message, /alias \*t cannot be resolved/);
  const levels = ['a: &a [x, x, x, x, x, x, x, x, x, x]'];
  for (let i = 1; i < 9; i++) levels.push(`l${i}: &l${i} [${Array(10).fill(i === 1 ? '*a' : `*l${i - 1}`).join(', ')}]`);
  const bomb = loadEndpointYaml(levels.join('\n') + '\nname: my-endpoint\n', 'e.yml');
  assert.equal(bomb.problems.filter((p) => /is one too many/.test(p.message)).length, 1);
});

test('documents from API clients: a path is refused unless the server stored that very path for the deployment before', () => {
  const doc = (path: string) => ({ name: 'blue', endpoint_name: 'my-endpoint', model: { path }, code_configuration: { code: `upload:sha256:${'1'.repeat(64)}`, scoring_script: 'score.py' }, instance_type: 'Standard_DS3_v2', instance_count: 2 });
  const old = '/srv/projects/model-1/model';
  // A deployment created before uploads existed recorded the absolute path; `update --set` sends it back unchanged.
  const kept = parseDeploymentObject(doc(old), { source: 'request body', paths: 'uploads', storedPaths: new Map([['model.path', old]]) });
  assert.deepEqual(kept.problems, []);
  assert.equal(kept.spec?.model && typeof kept.spec.model === 'object' && 'path' in kept.spec.model ? kept.spec.model.path : undefined, old);
  // Any other path, or the same one without the stored deployment, is still refused before anything is opened.
  assert.throws(() => parseDeploymentObject(doc('/etc/shadow'), { source: 'request body', paths: 'uploads', storedPaths: new Map([['model.path', old]]) }), /the server reads no path a client names/);
  // A value stored at another key (an environment variable, a tag) is no path: refused at model.path.
  assert.throws(() => parseDeploymentObject(doc(old), { source: 'request body', paths: 'uploads', storedPaths: new Map([['environment_variables.NOTE', old]]) }), /the server reads no path a client names/);
  // Made-up URIs are refused (they would reach the storage initializer as relative paths); registered assets pass.
  assert.throws(() => parseDeploymentObject(doc('x://../../../../etc/shadow'), { source: 'request body', paths: 'uploads' }), /the server reads no path a client names/);
  assert.throws(() => parseDeploymentObject(doc('azureml://../../etc/shadow'), { source: 'request body', paths: 'uploads' }), /the server reads no path a client names/);
  assert.throws(() => parseDeploymentObject(doc(old), { source: 'request body', paths: 'uploads' }), /the server reads no path a client names/);
});
