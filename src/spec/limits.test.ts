// Hostile documents (issue 8): loading is linear in the keys, nesting and alias expansion are bounded,
// paths that name a FIFO, a device or a link loop are PathNotReadable with their location, conda files have
// a size limit, and environment variables a size limit and valid names.

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { InfergateError } from '../errors/index.js';
import { applyOverrides, loadDeploymentYaml, loadEndpointYaml, loadEnvironmentYaml, parseDeploymentObject, parseModelObject } from './index.js';
import { fromValue } from './tree.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata', 'model-1');
let dir: string;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'infergate-spec-limits-'));
});
after(() => rmSync(dir, { recursive: true, force: true }));

const tagsYaml = (n: number, extra = '') => {
  const lines = ['name: my-endpoint', 'auth_mode: key', 'tags:'];
  for (let i = 0; i < n; i++) lines.push(`  k${i}: v${i}`);
  return lines.join('\n') + '\n' + extra;
};

function fastest(run: () => void, times = 2): number {
  let best = Infinity;
  for (let i = 0; i < times; i++) {
    const t0 = performance.now();
    run();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

test('loading is linear in the number of keys: 100,000 tags cost well under 20x 10,000 (it was ~100x)', () => {
  const small = tagsYaml(10_000);
  const large = tagsYaml(100_000);
  let problems = 0;
  const tSmall = fastest(() => (problems += loadEndpointYaml(small, 'e.yml').problems.length));
  const tLarge = fastest(() => (problems += loadEndpointYaml(large, 'e.yml').problems.length));
  assert.equal(problems, 0);
  assert.ok(tLarge < 20 * tSmall, `10k keys: ${tSmall.toFixed(0)} ms, 100k keys: ${tLarge.toFixed(0)} ms`);
});

test('a duplicate among 100,000 keys is still a problem at its line and column; the later value wins', () => {
  const { problems } = loadEndpointYaml(tagsYaml(100_000, '  k5: again\n'), 'e.yml');
  assert.deepEqual(problems, [{ file: 'e.yml', line: 100_004, column: 3, path: '', message: 'invalid YAML: Map keys must be unique' }]);
  // `1` and `"1"` are different keys (as the yaml package compared them); `a` twice in a flow map is not.
  const flow = loadEndpointYaml('name: my-endpoint\ntags: {1: x, "1": y, a: 1, a: 2}\n', 'e.yml');
  assert.deepEqual(flow.problems.map((p) => `${p.line}:${p.column} ${p.message}`), ['2:28 invalid YAML: Map keys must be unique']);
});

test('nesting past 64 levels is a problem before the yaml package recurses (100,000 levels once aborted the process)', () => {
  for (const [text, line] of [
    ['name: e\ntags: ' + '['.repeat(100_000) + ']'.repeat(100_000) + '\n', 2],
    ['name: e\ntags:\n  - ' + '- '.repeat(100_000) + 'x\n', 3],
    ['name: e\ntags: ' + '{a: '.repeat(100_000) + '\n', 2],
  ] as const) {
    const t0 = performance.now();
    const { spec, problems } = loadEndpointYaml(text, 'e.yml');
    assert.equal(spec, undefined);
    assert.equal(problems.length, 1, JSON.stringify(problems));
    assert.match(problems[0].message, /^invalid YAML: nested more than 64 levels deep/);
    assert.equal(problems[0].line, line);
    assert.ok(performance.now() - t0 < 10_000);
  }
  // 64 levels are fine (and then just the wrong type for tags).
  const ok = loadEndpointYaml('name: my-endpoint\ndescription: ' + '['.repeat(63) + ']'.repeat(63) + '\n', 'e.yml');
  assert.deepEqual(ok.problems.map((p) => p.path), ['description']);
});

test('aliases cannot multiply a document: a billion-laughs file is one problem, quickly', () => {
  const laughs = ['name: my-endpoint', 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]'];
  for (let i = 1; i < 9; i++) laughs.push(`${String.fromCharCode(97 + i)}: &${String.fromCharCode(97 + i)} [${Array(9).fill('*' + String.fromCharCode(96 + i)).join(',')}]`);
  const t0 = performance.now();
  const { problems } = loadEndpointYaml(laughs.join('\n') + '\n', 'e.yml');
  assert.ok(performance.now() - t0 < 2000);
  assert.equal(problems.filter((p) => /invalid YAML: alias \*\w is one too many \(at most 100 per file\)/.test(p.message)).length, 1);

  // Few aliases of one large anchored list: bounded by the nodes they expand to.
  const big = `name: my-endpoint\nx: &x [${Array(5000).fill('1').join(',')}]\ny: [${Array(30).fill('*x').join(',')}]\n`;
  const r = loadEndpointYaml(big, 'e.yml');
  assert.ok(r.problems.some((p) => p.message === 'invalid YAML: aliases expand to more than 100000 nodes'), JSON.stringify(r.problems.slice(0, 3)));
});

test('--set values are nesting-limited too, and a deep plain object is BodyTooDeep', () => {
  const doc: Record<string, unknown> = { name: 'e' };
  const problems = applyOverrides(doc, [`tags=${'['.repeat(100_000)}${']'.repeat(100_000)}`]);
  assert.equal(problems.length, 1);
  assert.match(problems[0].message, /nested more than 64 levels deep/);
  const longKey = applyOverrides({ name: 'e' }, [`${Array(60_000).fill('a').join('.')}=1`]);
  assert.equal(longKey.length, 1);
  assert.match(longKey[0].message, /the key has more than 64 parts/);
  let deep: unknown = 1;
  for (let i = 0; i < 100_000; i++) deep = [deep];
  assert.throws(() => fromValue({ tags: deep }), (e: unknown) => e instanceof InfergateError && e.code === 'BodyTooDeep');
});

const deploymentYaml = (extra: string) =>
  [
    'name: blue',
    'endpoint_name: my-endpoint',
    `model:\n  path: ${join(testdata, 'model')}`,
    `code_configuration:\n  code: ${join(testdata, 'onlinescoring')}\n  scoring_script: score.py`,
    extra,
    'instance_type: Standard_DS3_v2',
    'instance_count: 1',
  ].join('\n') + '\n';

function pathError(code: string, pattern: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof InfergateError, String(e));
    assert.equal(e.code, code);
    assert.match(e.message, pattern);
    return true;
  };
}

test('a FIFO, a device or a link loop named in a document is PathNotReadable with file:line:column, at once', () => {
  const fifo = join(dir, 'conda.fifo');
  execFileSync('mkfifo', [fifo]);
  symlinkSync(join(dir, 'loop2'), join(dir, 'loop1'));
  symlinkSync(join(dir, 'loop1'), join(dir, 'loop2'));
  const t0 = performance.now();
  assert.throws(
    () => loadDeploymentYaml(deploymentYaml(`environment:\n  image: python:3.12\n  conda_file: ${fifo}`), join(dir, 'd.yml')),
    pathError('PathNotReadable', /d\.yml:10:15: environment\.conda_file: '.*conda\.fifo' is a FIFO \(named pipe\), not a regular file or directory/),
  );
  assert.throws(
    () => loadEnvironmentYaml(`name: env\nimage: python:3.12\nconda_file: ${join(dir, 'loop1')}\n`, join(dir, 'env.yml')),
    pathError('PathNotReadable', /env\.yml:3:13: conda_file: '.*loop1' is a symbolic-link loop \(ELOOP\)/),
  );
  assert.throws(
    () => parseModelObject({ name: 'm', path: '/dev/zero' }, { source: 'request body' }),
    pathError('PathNotReadable', /request body: path: '\/dev\/zero' is a character device/),
  );
  assert.throws(
    () => parseDeploymentObject({ name: 'blue', endpoint_name: 'e', code_configuration: { code: join(dir, 'loop1'), scoring_script: 's.py' } }, { source: 'request body' }),
    pathError('PathNotReadable', /code_configuration\.code: '.*loop1' is a symbolic-link loop/),
  );
  assert.ok(performance.now() - t0 < 2000);
});

test('a conda file over 1 MiB is FileTooLarge at its key, from stat', () => {
  const big = join(dir, 'big-conda.yaml');
  writeFileSync(big, 'name: x\n' + '#'.repeat(1024 * 1024));
  assert.throws(
    () => loadEnvironmentYaml(`name: env\nimage: python:3.12\nconda_file: ${big}\n`, join(dir, 'env.yml')),
    pathError('FileTooLarge', /env\.yml:3:13: conda_file: '.*big-conda\.yaml' is 1048584 bytes; the limit for conda_file is 1048576 bytes/),
  );
});

test('environment_variables: a 3 MB value, a total over 256 KiB, names with = or NUL and values with NUL are refused at create', () => {
  const yaml = deploymentYaml(`environment_variables:\n  SMALL: ok\n  HUGE: ${'x'.repeat(3_000_000)}`);
  const { spec, problems } = loadDeploymentYaml(yaml, join(testdata, 'd.yml'));
  assert.equal(spec, undefined);
  assert.deepEqual(
    problems.map((p) => `${p.line}:${p.column} ${p.path}: ${p.message}`),
    ['10:9 environment_variables.HUGE: the value is 3000000 bytes; at most 32768 bytes (32 KiB) per environment variable'],
  );

  const many: Record<string, string> = {};
  for (let i = 0; i < 9; i++) many[`V${i}`] = 'y'.repeat(30_000);
  const base = { name: 'blue', endpoint_name: 'my-endpoint', instance_type: 'Standard_DS3_v2', instance_count: 1 };
  const total = parseDeploymentObject({ ...base, environment_variables: many }, { source: 'request body' });
  assert.deepEqual(total.problems.map((p) => `${p.path}: ${p.message}`), ['environment_variables: the variables take 270036 bytes in all; at most 262144 bytes (256 KiB) per deployment']);

  const names = parseDeploymentObject({ ...base, environment_variables: { 'A=B': '1', 'C\0D': '2', E: 'x\0y', '': 'z', OK: 1 } }, { source: 'request body' });
  assert.deepEqual(names.problems.map((p) => `${p.path}: ${p.message}`), [
    'environment_variables.A=B: environment variable name "A=B" contains \'=\', which no process environment can hold',
    'environment_variables.C\0D: environment variable name "C\\u0000D" contains a NUL character, which no process environment can hold',
    'environment_variables.E: the value contains a NUL character, which no process environment can hold',
    'environment_variables.: an environment variable needs a name',
  ]);
  const fine = parseDeploymentObject({ ...base, environment_variables: { A: 'x'.repeat(32 * 1024), B: 2 } }, { source: 'request body' });
  assert.deepEqual(fine.problems, []);
  assert.equal(fine.spec?.environmentVariables.B, '2');
});
