// The environment builder: what a conda file asks pip for, and building, reusing and falling back with
// a real /usr/bin/python3 and a wheel made by hand (no network).

import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { condaToPip, prepareEnvironment, readRequirements } from './env-builder.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
const MODEL_1_CONDA = join(ROOT, 'examples/azureml/model-1/environment/conda.yaml');
const PYTHON = '/usr/bin/python3';
const canBuild = existsSync(PYTHON);

const tmp = mkdtempSync(join(tmpdir(), 'infergate-env-builder-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

/** Options with a captured log and an environment without INFERGATE_PYTHON (which turns building off). */
function options(workspace: string) {
  const lines: string[] = [];
  const env = { ...process.env };
  delete env.INFERGATE_PYTHON;
  delete env.INFERGATE_BUILD_ENVIRONMENTS;
  return { lines, o: { workspace, log: (l: string) => lines.push(l), basePython: PYTHON, env } };
}

function wheel(dir: string, name: string, value: number): string {
  mkdirSync(dir, { recursive: true });
  return execFileSync(PYTHON, [join(ROOT, 'test/fixtures/wheel/make_wheel.py'), dir, name, '1.0.0', String(value)], { encoding: 'utf8' }).trim();
}

test('condaToPip: conda version specs as pip requirements', () => {
  const cases: [string, string][] = [
    ['numpy=2.3.1', 'numpy==2.3.1'],
    ['numpy=2.3.*', 'numpy==2.3.*'],
    ['scipy=1.16.0=py312h0', 'scipy==1.16.0'],
    ['conda-forge::scikit-learn=1.7.0', 'scikit-learn==1.7.0'],
    ['pandas>=2,<3', 'pandas>=2,<3'],
    ['pandas==2.1', 'pandas==2.1'],
    ['joblib', 'joblib'],
    ['numpy 1.26', 'numpy==1.26'],
  ];
  for (const [conda, pip] of cases) assert.equal(condaToPip(conda), pip, conda);
});

test("readRequirements: model-1's conda file (contract §9.1) asks pip for its packages, not for what infergate provides", async () => {
  const r = await readRequirements(MODEL_1_CONDA);
  assert.deepEqual(r.args, ['numpy==2.3.1', 'scikit-learn==1.7.0', 'scipy==1.16.0', 'joblib']);
  assert.deepEqual(r.skipped, ['pip=25.1.1', 'azureml-inference-server-http==1.4.1', 'inference-schema[numpy-support]']);
  assert.equal(r.pythonVersion, '3.12');
  assert.equal(r.allLocal, false);
  assert.deepEqual(r.problems, []);
});

test('readRequirements: local entries resolve against the conda file folder; missing files and relative entries in inline content are problems', async () => {
  const dir = join(tmp, 'reqs');
  mkdirSync(join(dir, 'wheels'), { recursive: true });
  writeFileSync(join(dir, 'wheels', 'a-1.0-py3-none-any.whl'), 'x');
  writeFileSync(join(dir, 'conda.yaml'), 'dependencies:\n  - python=3.11\n  - pip:\n    - ./wheels/a-1.0-py3-none-any.whl\n');
  const r = await readRequirements(join(dir, 'conda.yaml'));
  assert.deepEqual(r.args, [join(dir, 'wheels', 'a-1.0-py3-none-any.whl')]);
  assert.deepEqual(r.local, r.args);
  assert.equal(r.allLocal, true);
  writeFileSync(join(dir, 'missing.yaml'), 'dependencies:\n  - pip:\n    - ./nope.whl\n');
  assert.deepEqual((await readRequirements(join(dir, 'missing.yaml'))).problems, [`pip entry './nope.whl' names ${join(dir, 'nope.whl')}, which does not exist`]);
  assert.deepEqual((await readRequirements({ dependencies: [{ pip: ['./x.whl'] }] })).problems, ["pip entry './x.whl' is a relative path in an inline conda mapping"]);
  assert.deepEqual((await readRequirements({ dependencies: ['python=3.11', 'pip'] })).args, [], 'nothing to install');
  assert.match((await readRequirements(join(dir, 'nowhere.yaml'))).problems[0], /could not read conda file/);
});

test('prepareEnvironment builds a virtual environment from a local wheel once, then reuses it', { skip: !canBuild && 'no /usr/bin/python3' }, async () => {
  const dir = join(tmp, 'build');
  const whl = wheel(join(dir, 'wheels'), 'infergate_unit_pkg', 7);
  writeFileSync(join(dir, 'conda.yaml'), `dependencies:\n  - python=3.11\n  - pip\n  - pip:\n    - ./wheels/${whl.split('/').pop()}\n`);
  const ws = join(tmp, 'ws');
  const first = options(ws);
  const built = await prepareEnvironment({ condaFile: join(dir, 'conda.yaml') }, first.o);
  assert.ok(built, first.lines.join('\n'));
  assert.match(first.lines.join('\n'), new RegExp(`building environment ${built.hash}`));
  assert.equal(built.python, join(ws, 'envs', built.hash, 'bin', 'python'));
  // The package is importable, and so are the system's packages (--system-site-packages).
  const out = execFileSync(built.python, ['-c', 'import infergate_unit_pkg, json; print(infergate_unit_pkg.answer(), json.__name__)'], { encoding: 'utf8' });
  assert.equal(out.trim(), '7 json');

  // Another conda file with the same packages and the same wheel bytes, elsewhere: the same environment.
  const other = join(tmp, 'other');
  mkdirSync(other, { recursive: true });
  writeFileSync(join(other, 'env.yaml'), `name: other\ndependencies:\n  - pip:\n    - ${whl}\n`);
  const second = options(ws);
  const reused = await prepareEnvironment({ condaFile: join(other, 'env.yaml'), image: 'python:3.11-slim' }, second.o);
  assert.equal(reused?.hash, built.hash);
  assert.match(second.lines.join('\n'), new RegExp(`reusing environment ${built.hash}`));
  assert.match(second.lines.join('\n'), /running the scoring script on the host/);
  assert.doesNotMatch(second.lines.join('\n'), /building environment/);

  // Different wheel bytes: a different environment.
  const changed = join(tmp, 'changed');
  wheel(join(changed, 'wheels'), 'infergate_unit_pkg', 8);
  writeFileSync(join(changed, 'conda.yaml'), `dependencies:\n  - pip:\n    - ./wheels/${whl.split('/').pop()}\n`);
  const third = options(ws);
  const rebuilt = await prepareEnvironment({ condaFile: join(changed, 'conda.yaml') }, third.o);
  assert.ok(rebuilt && rebuilt.hash !== built.hash, third.lines.join('\n'));
});

test('prepareEnvironment: concurrent instances build an environment once', { skip: !canBuild && 'no /usr/bin/python3' }, async () => {
  const dir = join(tmp, 'concurrent');
  const whl = wheel(join(dir, 'wheels'), 'infergate_unit_concurrent', 1);
  writeFileSync(join(dir, 'conda.yaml'), `dependencies:\n  - pip:\n    - ${whl}\n`);
  const a = options(join(tmp, 'ws-concurrent'));
  const b = options(join(tmp, 'ws-concurrent'));
  const [x, y] = await Promise.all([prepareEnvironment({ condaFile: join(dir, 'conda.yaml') }, a.o), prepareEnvironment({ condaFile: join(dir, 'conda.yaml') }, b.o)]);
  assert.ok(x && y && x.hash === y.hash);
  const logs = [...a.lines, ...b.lines].join('\n');
  assert.equal((logs.match(/building environment/g) ?? []).length, 1, logs);
  assert.match(logs, /waiting for environment/);
});

test('prepareEnvironment falls back (undefined) when pip fails, says why, and does not try again at once', { skip: !canBuild && 'no /usr/bin/python3' }, async () => {
  const dir = join(tmp, 'broken');
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'broken-1.0-py3-none-any.whl'), 'not a zip file');
  writeFileSync(join(dir, 'conda.yaml'), 'dependencies:\n  - pip:\n    - ./broken-1.0-py3-none-any.whl\n');
  const ws = join(tmp, 'ws-broken');
  const first = options(ws);
  assert.equal(await prepareEnvironment({ condaFile: join(dir, 'conda.yaml') }, first.o), undefined);
  const log = first.lines.join('\n');
  const hash = /building environment ([0-9a-f]{16})/.exec(log)?.[1];
  assert.ok(hash, log);
  assert.match(log, new RegExp(`environment ${hash} could not be built: pip could not install the local files: .+; falling back to a host interpreter`));
  assert.equal(existsSync(join(ws, 'envs', hash)), false, 'a failed build leaves no environment behind');
  assert.ok(existsSync(join(ws, 'envs', `${hash}.log`)), 'pip output is kept next to it');
  const second = options(ws);
  assert.equal(await prepareEnvironment({ condaFile: join(dir, 'conda.yaml') }, second.o), undefined);
  assert.match(second.lines.join('\n'), new RegExp(`environment ${hash} could not be built \\d+ s ago`));
});

test('prepareEnvironment: nothing to build without a conda file, with nothing to install, or when turned off', async () => {
  const { lines, o } = options(join(tmp, 'ws-none'));
  assert.equal(await prepareEnvironment({}, o), undefined);
  assert.equal(await prepareEnvironment({ condaFile: { dependencies: ['python=3.11', 'pip', { pip: ['azureml-inference-server-http'] }] } }, o), undefined);
  assert.equal(await prepareEnvironment({ condaFile: MODEL_1_CONDA }, { ...o, env: { ...o.env, INFERGATE_BUILD_ENVIRONMENTS: '0' } }), undefined);
  assert.equal(await prepareEnvironment({ condaFile: MODEL_1_CONDA }, { ...o, env: { ...o.env, INFERGATE_PYTHON: '/usr/bin/python3' } }), undefined);
  assert.doesNotMatch(lines.join('\n'), /building environment/);
  assert.match(lines.join('\n'), /INFERGATE_BUILD_ENVIRONMENTS=0/);
  assert.match(lines.join('\n'), /INFERGATE_PYTHON is set/);
});

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;
test('as root, a local source distribution is not built (its setup.py would run as root); wheels only', { skip: (!canBuild && 'no /usr/bin/python3') || (!isRoot && 'not root: pip runs as an unprivileged server user') }, async () => {
  const dir = join(tmp, 'sdist');
  const marker = join(dir, 'SETUP_RAN');
  mkdirSync(join(dir, 'evilpkg-0.1'), { recursive: true });
  writeFileSync(join(dir, 'evilpkg-0.1', 'setup.py'), `open(${JSON.stringify(marker)}, 'w').write('ran')\nfrom setuptools import setup\nsetup(name='evilpkg', version='0.1')\n`);
  writeFileSync(join(dir, 'evilpkg-0.1', 'PKG-INFO'), 'Metadata-Version: 1.0\nName: evilpkg\nVersion: 0.1\n');
  execFileSync('tar', ['czf', 'evilpkg-0.1.tar.gz', 'evilpkg-0.1'], { cwd: dir });
  writeFileSync(join(dir, 'conda.yaml'), 'dependencies:\n  - pip:\n    - ./evilpkg-0.1.tar.gz\n');
  const { lines, o } = options(join(tmp, 'ws-sdist'));
  assert.equal(await prepareEnvironment({ condaFile: join(dir, 'conda.yaml') }, o), undefined);
  assert.match(lines.join('\n'), /evilpkg-0\.1\.tar\.gz: not a wheel; building a source distribution runs its code as the server's user \(root\)/);
  assert.equal(existsSync(marker), false, 'setup.py never ran');
});
