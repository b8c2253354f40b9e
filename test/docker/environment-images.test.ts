// Issue 11 item 2 through the real CLI: environment images on the docker backend. An image + conda file
// is built once and reused by every deployment with the same one; a `build:` context is built and what
// it adds is what the instance sees; and every way an image cannot be had (a failing Dockerfile, an image
// not on this machine, a conda file that cannot be installed, a JavaScript module on an image without
// Node) fails the deployment with its own code, and the reason in create's output and get-logs.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type Docker from 'dockerode';
import { FIXTURES as E2E_FIXTURES, until, Workspace } from '../e2e/harness.js';
import { EnvironmentImages } from '../../src/backend/docker/images.js';
import { BASE_IMAGE, dockerCheck, dockerCli, dockerSkip, removeImages, removeWorkspaceContainers, workspaceContainers } from './engine.js';

const SKIP = await dockerSkip();
const FIXTURES = join(import.meta.dirname, 'fixtures');
const ws = new Workspace('docker');
const E = 'envimg-docker';
/** Makes this run's conda files and build contexts unlike any earlier run's, so each image is built here. */
const NONCE = randomBytes(4).toString('hex');
const FAKE_CONDA_IMAGE = `infergate-test-fake-conda:${NONCE}`;
let docker: Docker;
/** Images this file made: removed after (never BASE_IMAGE). */
const made = new Set<string>([FAKE_CONDA_IMAGE]);

before(async () => {
  if (SKIP) return;
  docker = (await dockerCheck()).docker!;
  await ws.startServer();
  await ws.ok(['online-endpoint', 'create', '-n', E]);
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  for (const m of ws.serverLog.matchAll(/environment image: (?:building|built) (infergate-env:\w+)/g)) made.add(m[1]);
  if (!SKIP) {
    await ws.stopServer();
    await removeWorkspaceContainers(docker, ws.dir);
    await removeImages(docker, made);
  }
  await ws.dispose();
});

/** A deployment of the env-score fixture (or `code`) with `environment` lines; returns the YAML file. */
function deployment(name: string, environment: string[], code = 'env-score', script = 'score.py'): string {
  const dir = join(ws.dir, 'scratch', name);
  mkdirSync(dir, { recursive: true });
  cpSync(code.startsWith('/') ? code : join(FIXTURES, code), join(dir, 'code'), { recursive: true });
  const file = join(dir, 'deployment.yml');
  writeFileSync(file, [
    `name: ${name}`,
    `endpoint_name: ${E}`,
    'code_configuration:',
    '  code: code/',
    `  scoring_script: ${script}`,
    'environment:',
    ...environment.map((l) => `  ${l}`),
    'instance_type: Standard_DS2_v2',
    'instance_count: 1',
    '',
  ].join('\n'));
  return file;
}

function condaFile(name: string): string {
  const file = join(ws.dir, 'scratch', `${name}-conda.yaml`);
  mkdirSync(join(ws.dir, 'scratch'), { recursive: true });
  writeFileSync(file, [`name: envimg-${NONCE}`, 'channels: [conda-forge]', 'dependencies:', '  - python=3.11', '  - pip:', '    - joblib', ''].join('\n'));
  return file;
}

async function invoke(deployment: string): Promise<unknown> {
  const r = await ws.cli(['online-endpoint', 'invoke', '-n', E, '--deployment-name', deployment, '-r', join(FIXTURES, '..', '..', '..', 'examples', 'azureml', 'model-1', 'sample-request.json'), '-o', 'json']);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(JSON.parse(r.stdout) as string);
}

async function state(name: string): Promise<string> {
  return (await ws.cli(['online-deployment', 'show', '-n', name, '-e', E, '--query', 'provisioning_state', '-o', 'tsv'])).stdout.trim();
}

async function deleteDeployment(name: string): Promise<void> {
  await ws.ok(['online-deployment', 'delete', '-n', name, '-e', E, '--yes']);
}

test('image + conda file: built once, reused by a second deployment with the same conda file', { skip: SKIP, timeout: 180_000 }, async (t) => {
  const conda = condaFile('shared');
  const started = Date.now();
  await ws.ok(['online-deployment', 'create', '-f', deployment('conda-a', [`image: ${BASE_IMAGE}`, `conda_file: ${conda}`])]);
  t.diagnostic(`first deployment (builds the image): ${Date.now() - started} ms`);
  const first = await ws.ok(['online-deployment', 'get-logs', '-n', 'conda-a', '-e', E, '--lines', '500']);
  const tag = /environment image: building (infergate-env:\w+)/.exec(first)?.[1];
  assert.ok(tag, `the first deployment builds the image:\n${first}`);
  assert.match(first, new RegExp(`environment image: built ${tag} in [\\d.]+ s`));
  assert.match(first, /image build: .*infergate: the image has neither conda nor pip/, 'the build output is in get-logs');

  const again = Date.now();
  await ws.ok(['online-deployment', 'create', '-f', deployment('conda-b', [`image: ${BASE_IMAGE}`, `conda_file: ${conda}`])]);
  t.diagnostic(`second deployment (reuses it): ${Date.now() - again} ms`);
  const second = await ws.ok(['online-deployment', 'get-logs', '-n', 'conda-b', '-e', E, '--lines', '500']);
  assert.match(second, new RegExp(`environment image: reusing ${tag} \\(${BASE_IMAGE} \\+ conda file\\)`));
  assert.doesNotMatch(second, /image build:/, 'nothing was built for the second deployment');
  const images = new Set((await workspaceContainers(docker, ws.dir)).filter((c) => c.Labels['io.infergate.deployment']?.startsWith('conda-')).map((c) => c.Image));
  assert.deepEqual([...images], [tag], 'both containers run the one image');
  assert.deepEqual(await invoke('conda-b'), { greeting: null });
  await deleteDeployment('conda-a');
  await deleteDeployment('conda-b');
});

// The CLI uploads the build context (cli/uploads.ts) and the server stores `build.path` as the upload
// reference (control/assets.ts registerEnvironmentWith keeps spec.build as it came), so the backend is
// handed `upload:sha256:...` for a folder: the context must be materialised into the environment asset, as
// the conda file is. Outside the docker backend; see the report of issue 11's docker tests.

test('build: {path, dockerfile_path} builds the context, and the instance sees what it added', { skip: SKIP, timeout: 180_000 }, async () => {
  const context = join(ws.dir, 'scratch', 'context');
  mkdirSync(join(context, 'docker'), { recursive: true });
  writeFileSync(join(context, 'greeting.txt'), `hello from the build context ${NONCE}\n`);
  writeFileSync(join(context, 'docker', 'Dockerfile'), [`FROM ${BASE_IMAGE}`, 'COPY greeting.txt /opt/infergate-test/greeting.txt', 'RUN echo "context build step ran"', ''].join('\n'));
  await ws.ok(['online-deployment', 'create', '-f', deployment('built', ['build:', `  path: ${context}`, '  dockerfile_path: docker/Dockerfile'])]);
  assert.deepEqual(await invoke('built'), { greeting: `hello from the build context ${NONCE}` });
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'built', '-e', E, '--lines', '500']);
  // The CLI uploaded the context; the server built from its stored copy (assets/environments/.../build).
  assert.match(logs, /environment image: building infergate-env:\w+ from \S+\/assets\/environments\/CliV2AnonymousEnvironment\/\w+\/build\n/);
  assert.match(logs, /image build: context build step ran/);
  await deleteDeployment('built');
});

test('the image builder alone: a local build context is built, tagged by content, and reused', { skip: SKIP, timeout: 120_000 }, async () => {
  const context = join(ws.dir, 'scratch', 'direct-context');
  mkdirSync(join(context, 'docker'), { recursive: true });
  writeFileSync(join(context, 'greeting.txt'), `direct ${NONCE}\n`);
  writeFileSync(join(context, 'docker', 'Dockerfile'), [`FROM ${BASE_IMAGE}`, 'COPY greeting.txt /opt/infergate-test/greeting.txt', ''].join('\n'));
  const images = new EnvironmentImages(docker);
  const lines: string[] = [];
  const tag = await images.resolve({ build: { path: context, dockerfilePath: 'docker/Dockerfile' } }, BASE_IMAGE, (l) => lines.push(l));
  made.add(tag);
  assert.match(tag, /^infergate-env:\w+$/);
  assert.ok(lines.some((l) => l.startsWith(`environment image: built ${tag}`)), lines.join('\n'));
  const read = await dockerCli(['run', '--rm', '--network', 'none', tag, 'cat', '/opt/infergate-test/greeting.txt']);
  assert.equal(read.stdout, `direct ${NONCE}\n`);
  const image = await docker.getImage(tag).inspect();
  assert.equal(image.Config.Labels?.['io.infergate.managed'], 'true', 'labelled as infergate\'s, so it may be removed');
  const again: string[] = [];
  assert.equal(await images.resolve({ build: { path: context, dockerfilePath: 'docker/Dockerfile' } }, BASE_IMAGE, (l) => again.push(l)), tag);
  assert.ok(again.some((l) => l.startsWith(`environment image: reusing ${tag}`)), again.join('\n'));
});

test('a Dockerfile that fails (RUN exit 3): Failed with EnvironmentImageBuildFailed, the build output in get-logs', { skip: SKIP, timeout: 120_000 }, async () => {
  const context = join(ws.dir, 'scratch', 'failing-context');
  mkdirSync(context, { recursive: true });
  writeFileSync(join(context, 'Dockerfile'), [`FROM ${BASE_IMAGE}`, `RUN echo "about to fail ${NONCE}" && exit 3`, ''].join('\n'));
  const r = await ws.cli(['online-deployment', 'create', '-f', deployment('badbuild', ['build:', `  path: ${context}`])]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /EnvironmentImageBuildFailed/);
  assert.match(r.stderr, /returned a non-zero code: 3/);
  assert.equal(await state('badbuild'), 'Failed');
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'badbuild', '-e', E, '--lines', '500']);
  assert.match(logs, new RegExp(`image build: about to fail ${NONCE}`), 'the build output is in get-logs');
  assert.match(logs, /EnvironmentImageBuildFailed|Building the environment image .* failed/);
  await deleteDeployment('badbuild');
});

test('a build context FROM an image that is not here: Failed at once with EnvironmentImageNotFound (the engine would try to pull it)', { skip: SKIP, timeout: 60_000 }, async (t) => {
  const context = join(ws.dir, 'scratch', 'missing-from-context');
  mkdirSync(context, { recursive: true });
  writeFileSync(join(context, 'Dockerfile'), ['FROM nosuch/base:7 AS build', 'FROM build', 'RUN echo never', ''].join('\n'));
  const started = Date.now();
  const r = await ws.cli(['online-deployment', 'create', '-f', deployment('nofrom', ['build:', `  path: ${context}`])]);
  t.diagnostic(`create → Failed in ${Date.now() - started} ms`);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /EnvironmentImageNotFound/);
  assert.match(r.stderr, /nosuch\/base:7/);
  assert.ok(Date.now() - started < 15_000, 'no pull was waited for');
  await deleteDeployment('nofrom');
});

test('an image that is not on this machine: Failed at once with EnvironmentImageNotFound, naming docker load and docker tag', { skip: SKIP, timeout: 60_000 }, async (t) => {
  const started = Date.now();
  const r = await ws.cli(['online-deployment', 'create', '-f', deployment('noimage', ['image: nosuch/image:1'])]);
  const took = Date.now() - started;
  t.diagnostic(`create → Failed in ${took} ms`);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /EnvironmentImageNotFound/);
  assert.match(r.stderr, /nosuch\/image:1/);
  assert.match(r.stderr, /docker load/);
  assert.match(r.stderr, /docker tag/);
  // Nothing waits on a pull: the whole CLI round trip (Node start, storage initializer) is well under 5 s.
  assert.ok(took < 5000, `create took ${took} ms`);
  assert.equal(await state('noimage'), 'Failed');
  assert.deepEqual((await workspaceContainers(docker, ws.dir)).filter((c) => c.Labels['io.infergate.deployment'] === 'noimage'), [], 'no container was made');
  await deleteDeployment('noimage');
});

test('a conda file that cannot be installed (conda exits 1): Failed with EnvironmentImageBuildFailed', { skip: SKIP, timeout: 120_000 }, async () => {
  const built = await dockerCli(['build', '-q', '-t', FAKE_CONDA_IMAGE, join(FIXTURES, 'fake-conda')]);
  assert.equal(built.code, 0, built.stderr);
  const r = await ws.cli(['online-deployment', 'create', '-f', deployment('badconda', [`image: ${FAKE_CONDA_IMAGE}`, `conda_file: ${condaFile('badconda')}`])]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /EnvironmentImageBuildFailed/);
  assert.equal(await state('badconda'), 'Failed');
  const logs = await ws.ok(['online-deployment', 'get-logs', '-n', 'badconda', '-e', E, '--lines', '500']);
  assert.match(logs, /image build: .*installing the conda file with \/usr\/local\/bin\/conda env update/);
  assert.match(logs, /image build: .*CondaHTTPError/, "conda's own words are in get-logs");
  // The layers the failed build made (its COPY step) went with it: nothing untagged is left on the image.
  const base = (await docker.getImage(FAKE_CONDA_IMAGE).inspect()).Id;
  const children = (await docker.listImages({ all: true })).filter((i) => i.ParentId === base);
  assert.deepEqual(children.map((i) => i.Id), [], 'no intermediate image of the failed build is left');
  await deleteDeployment('badconda');
});

test('a JavaScript scoring module on an image without Node: Failed with EnvironmentNotSatisfied naming node', { skip: SKIP, timeout: 60_000 }, async () => {
  const r = await ws.cli(['online-deployment', 'create', '-f', deployment('jsnonode', [`image: ${BASE_IMAGE}`], join(E2E_FIXTURES, 'js-model'), 'score.mjs')]);
  assert.equal(r.code, 1, r.stdout);
  assert.match(r.stderr, /EnvironmentNotSatisfied/);
  assert.match(r.stderr, /no 'node' on its PATH/);
  assert.match(r.stderr, new RegExp(BASE_IMAGE));
  assert.equal(await state('jsnonode'), 'Failed');
  await deleteDeployment('jsnonode');
  await until('no container of the deployment', async () => (await workspaceContainers(docker, ws.dir)).every((c) => c.Labels['io.infergate.deployment'] !== 'jsnonode'), 10_000);
});
