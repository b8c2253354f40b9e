// environment_variables that change how Python, shells or the dynamic loader start are refused at their
// key (file:line:column), unless the deployment's tags name them; Azure's example deployments still load.

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { loadDeploymentYaml, parseDeploymentObject } from './index.js';
import { ALLOW_ENV_TAG, unsafeVariable } from './unsafe-env.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata', 'model-1');
const yaml = (lines: string[]) =>
  [
    'name: blue',
    'endpoint_name: my-endpoint',
    `model:\n  path: ${join(testdata, 'model')}`,
    `code_configuration:\n  code: ${join(testdata, 'onlinescoring')}\n  scoring_script: score.py`,
    ...lines,
    'instance_type: Standard_DS3_v2',
    'instance_count: 1',
  ].join('\n') + '\n';
const base = { name: 'blue', endpoint_name: 'my-endpoint', instance_type: 'Standard_DS3_v2', instance_count: 1 };

test("the issue's exploit (PYTHONWARNINGS + BROWSER) is refused at each key, with file, line and column", () => {
  const text = yaml(['environment_variables:', '  WORKER_COUNT: "2"', '  PYTHONWARNINGS: "ignore::antigravity.x"', '  BROWSER: "/bin/sh -c \'id > /tmp/pwned\' %s"']);
  const { spec, problems } = loadDeploymentYaml(text, join(testdata, 'd.yml'));
  assert.equal(spec, undefined);
  assert.deepEqual(
    problems.map((p) => `${p.line}:${p.column} ${p.path}`),
    ['10:3 environment_variables.PYTHONWARNINGS', '11:3 environment_variables.BROWSER'],
  );
  assert.ok(problems.every((p) => p.file === join(testdata, 'd.yml')));
  assert.match(problems[0].message, /^environment variable 'PYTHONWARNINGS' changes how Python starts .*refused unless .*infergate\.allow-environment-variables: "PYTHONWARNINGS"/);
  assert.match(problems[1].message, /webbrowser/);
});

test('the list: loader, Python (but its on/off switches), shells, other runtimes; names any case', () => {
  const refused = [
    'LD_PRELOAD', 'LD_LIBRARY_PATH', 'LD_AUDIT', 'ld_preload',
    'PYTHONPATH', 'PYTHONHOME', 'PYTHONSTARTUP', 'PYTHONINSPECT', 'PYTHONWARNINGS', 'PYTHONBREAKPOINT', 'PYTHONUSERBASE', 'PYTHONPYCACHEPREFIX', 'PYTHONEXECUTABLE', 'PYTHONSOMETHINGNEW',
    'BROWSER', 'BASH_ENV', 'ENV', 'SHELLOPTS', 'BASHOPTS', 'PS4', 'BASH_FUNC_ls%%',
    'NODE_OPTIONS', 'PERL5OPT', 'PERL5LIB', 'RUBYOPT', 'JAVA_TOOL_OPTIONS', '_JAVA_OPTIONS', 'GCONV_PATH', 'GLIBC_TUNABLES', 'OPENSSL_CONF',
  ];
  for (const name of refused) assert.ok(unsafeVariable(name), name);
  const allowed = [
    'PYTHONUNBUFFERED', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'PYTHONIOENCODING', 'PYTHONUTF8', 'PYTHONFAULTHANDLER',
    'WORKER_COUNT', 'AZUREML_LOG_LEVEL', 'SCORING_TIMEOUT_MS', 'AML_APP_INSIGHTS_ENABLED', 'PATH', 'HOME', 'OMP_NUM_THREADS', 'MKL_NUM_THREADS',
    'TRANSFORMERS_CACHE', 'MY_LD_SETTING', 'ENVIRONMENT', 'NODE_ENV',
  ];
  for (const name of allowed) assert.equal(unsafeVariable(name), undefined, name);
});

test('the deployment opts in by naming the variables in a tag; only those are let through', () => {
  const env = { PYTHONPATH: '/opt/lib', LD_LIBRARY_PATH: '/opt/cuda/lib64', PYTHONUNBUFFERED: '1' };
  const refused = parseDeploymentObject({ ...base, environment_variables: env }, { source: 'request body' });
  assert.deepEqual(refused.problems.map((p) => p.path), ['environment_variables.PYTHONPATH', 'environment_variables.LD_LIBRARY_PATH']);

  const partly = parseDeploymentObject({ ...base, tags: { [ALLOW_ENV_TAG]: 'PYTHONPATH' }, environment_variables: env }, { source: 'request body' });
  assert.deepEqual(partly.problems.map((p) => p.path), ['environment_variables.LD_LIBRARY_PATH']);

  const both = parseDeploymentObject({ ...base, tags: { [ALLOW_ENV_TAG]: 'PYTHONPATH, LD_LIBRARY_PATH' }, environment_variables: env }, { source: 'request body' });
  assert.deepEqual(both.problems, []);
  assert.deepEqual(both.spec!.environmentVariables, env);
  assert.equal(both.spec!.tags[ALLOW_ENV_TAG], 'PYTHONPATH, LD_LIBRARY_PATH');

  // A blanket value is not a name; a tag elsewhere (another key) does nothing.
  for (const tags of [{ [ALLOW_ENV_TAG]: '*' }, { [ALLOW_ENV_TAG]: 'true' }, { 'allow-environment-variables': 'PYTHONPATH LD_LIBRARY_PATH' }]) {
    assert.equal(parseDeploymentObject({ ...base, tags, environment_variables: env }, { source: 'request body' }).problems.length, 2, JSON.stringify(tags));
  }
});

test('in YAML the opt-in tag may come after the variables; --set cannot sneak a variable in', () => {
  const text = yaml(['environment_variables:', '  LD_PRELOAD: /opt/lib/libfast.so', 'tags:', `  ${ALLOW_ENV_TAG}: LD_PRELOAD`]);
  assert.deepEqual(loadDeploymentYaml(text, join(testdata, 'd.yml')).problems, []);
  const sneaked = loadDeploymentYaml(yaml([]), join(testdata, 'd.yml'), ['environment_variables.NODE_OPTIONS=--require /tmp/x.js']);
  assert.equal(sneaked.spec, undefined);
  assert.deepEqual(sneaked.problems.map((p) => p.path), ['environment_variables.NODE_OPTIONS']);
  assert.match(sneaked.problems[0].message, /set by --set environment_variables\.NODE_OPTIONS/);
});

test("Azure's example deployments still load", () => {
  const examples = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'examples', 'azureml');
  let loaded = 0;
  for (const folder of ['managed/sample', 'kubernetes']) {
    for (const f of readdirSync(join(examples, folder)).filter((n) => n.includes('deployment'))) {
      const file = join(examples, folder, f);
      const { problems } = loadDeploymentYaml(readFileSync(file, 'utf8'), file);
      assert.deepEqual(problems, [], file);
      loaded++;
    }
  }
  assert.equal(loaded, 4);
});
