// Issue 11's acceptance on the docker backend: Azure's deploy-managed-online-endpoint sequence (as
// test/e2e/deploy-and-score.test.ts runs it on processes), with the instance a container of the
// environment image built from Azure's conda file on top of the local base image, and what a user sees
// of that container: get-logs, docker inspect, and nothing left once the endpoint is deleted.

import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import type Docker from 'dockerode';
import { curl, EXAMPLES, SAMPLE_ANSWER, until, Workspace } from '../e2e/harness.js';
import { AZURE_IMAGE, dockerCheck, dockerCli, dockerSkip, removeImages, removeWorkspaceContainers, tagAzureImage, workspaceContainers } from './engine.js';

const SKIP = await dockerSkip();
const ws = new Workspace('docker');
const E = 'endpt-docker-1';
const SAMPLE = join(EXAMPLES, 'managed', 'sample');
const REQUEST = join(EXAMPLES, 'model-1', 'sample-request.json');
let docker: Docker;
/** Environment images this file's server built (not ones it found and reused): removed after. */
const built = new Set<string>();

before(async () => {
  if (SKIP) return;
  docker = (await dockerCheck()).docker!;
  await tagAzureImage(docker);
  await ws.startServer();
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  for (const m of ws.serverLog.matchAll(/environment image: built (infergate-env:\w+)/g)) built.add(m[1]);
  if (!SKIP) {
    await ws.stopServer();
    await removeWorkspaceContainers(docker, ws.dir);
    await removeImages(docker, built);
  }
  await ws.dispose();
});

test('the deploy-managed-online-endpoint.sh sequence on the docker backend: a byte-exact answer from a locked-down container', { skip: SKIP, timeout: 240_000 }, async (t) => {
  assert.match(ws.serverLog, /backend: docker \(engine at [^)]+\)/, 'the server says at start where instances run');
  assert.equal((await ws.cli(['ml', 'online-endpoint', 'create', '--name', E, '-f', join(SAMPLE, 'endpoint.yml')])).code, 0);

  const started = Date.now();
  const dep = await ws.cli(['ml', 'online-deployment', 'create', '--name', 'blue', '--endpoint', E, '-f', join(SAMPLE, 'blue-deployment.yml'), '--all-traffic']);
  assert.equal(dep.code, 0, dep.stderr);
  t.diagnostic(`online-deployment create --all-traffic (image ${AZURE_IMAGE} + conda file) returned after ${Date.now() - started} ms`);
  const depState = await ws.cli(['ml', 'online-deployment', 'show', '--name', 'blue', '--endpoint', E, '--query', 'provisioning_state', '-o', 'tsv']);
  assert.equal(depState.stdout, 'Succeeded\n');

  const invoke = await ws.cli(['ml', 'online-endpoint', 'invoke', '--name', E, '--request-file', REQUEST]);
  assert.equal(invoke.code, 0, invoke.stderr);
  assert.equal(invoke.stdout, JSON.stringify(SAMPLE_ANSWER, null, 2) + '\n');
  const key = (await ws.cli(['ml', 'online-endpoint', 'get-credentials', '-n', E, '-o', 'tsv', '--query', 'primaryKey'])).stdout.trim();
  const uri = (await ws.cli(['ml', 'online-endpoint', 'show', '-n', E, '-o', 'tsv', '--query', 'scoring_uri'])).stdout.trim();
  const answer = await curl(uri, { Authorization: `Bearer ${key}`, 'Content-Type': 'application/json' }, REQUEST);
  assert.equal(answer.status, 200);
  assert.equal(answer.body, SAMPLE_ANSWER); // the exact bytes, from inside the container
  assert.equal((await curl(uri, { Authorization: 'Bearer not-the-key' }, REQUEST)).status, 401);

  const logs = await ws.ok(['ml', 'online-deployment', 'get-logs', '--name', 'blue', '--endpoint', E]);
  assert.match(logs, /Init complete/, "the script's init() output, from the container");
  assert.match(logs, /model 1: request received/);
  assert.match(logs, /backend: docker \(engine at [^)]+\); instance runs as uid \d+ in a container/, 'get-logs says where the instance runs');
  assert.match(logs, /environment image: (building|reusing) infergate-env:\w+/, 'the environment image built from the conda file');
  const init = await ws.ok(['online-deployment', 'get-logs', '-n', 'blue', '-e', E, '--container', 'storage-initializer']);
  assert.match(init, /sklearn_regression_model\.pkl|model/);

  // The container, as `docker inspect` shows it.
  const containers = await workspaceContainers(docker, ws.dir);
  assert.equal(containers.length, 1, 'one instance, one container');
  const inspected = JSON.parse((await dockerCli(['inspect', containers[0].Id])).stdout) as Docker.ContainerInspectInfo[];
  const c = inspected[0];
  assert.equal(c.State.Running, true);
  const labels = c.Config.Labels;
  assert.equal(labels['io.infergate.endpoint'], E);
  assert.equal(labels['io.infergate.deployment'], 'blue');
  assert.match(labels['io.infergate.instance'], new RegExp(`^${E}\\.blue\\.`));
  assert.ok(labels['io.infergate.revision'] && labels['io.infergate.workspace'], 'revision and workspace labels');
  assert.equal(labels['io.infergate.managed'], 'true');
  const [uid, gid] = c.Config.User.split(':').map(Number);
  assert.ok(Number.isInteger(uid) && uid > 0 && gid > 0, `runs as a non-root uid (User=${c.Config.User})`);
  assert.equal(c.HostConfig.ReadonlyRootfs, true);
  assert.deepEqual(c.HostConfig.CapDrop, ['ALL']);
  assert.ok(c.HostConfig.CapAdd === null || c.HostConfig.CapAdd === undefined || c.HostConfig.CapAdd.length === 0);
  assert.equal(c.HostConfig.Privileged, false);
  assert.ok(c.HostConfig.SecurityOpt?.includes('no-new-privileges'));
  assert.equal(c.HostConfig.NetworkMode, 'none');
  assert.deepEqual(Object.keys(c.NetworkSettings.Ports ?? {}), [], 'no port published');
  // Standard_DS3_v2: 4 vCPU / 14 GiB (contract §8.1), the CPUs clamped to this machine's.
  // Standard_DS3_v2 has 4 vCPUs: a quota only on a machine with more (one of the whole machine limits nothing).
  assert.equal(c.HostConfig.NanoCpus, availableParallelism() > 4 ? 4e9 : 0);
  assert.equal(c.HostConfig.Memory, 14 * 1024 ** 3);
  // Only the instance's own files, read-only, and its socket folder: nothing else of this machine.
  for (const m of c.Mounts) {
    if (m.Destination === '/var/infergate/socket') assert.equal(m.RW, true);
    else assert.equal(m.RW, false, `${m.Destination} is mounted read-only`);
    assert.ok(!m.Source.startsWith(ws.dir) || m.Source.startsWith(join(ws.dir, 'instances', E, 'blue')), `${m.Source}: only the instance's own directory of the workspace`);
  }
  t.diagnostic(`container ${c.Name}: User=${c.Config.User}, NanoCpus=${c.HostConfig.NanoCpus}, Memory=${c.HostConfig.Memory}, mounts=${c.Mounts.map((m) => `${m.Destination}${m.RW ? '' : ':ro'}`).join(',')}`);

  const del = await ws.cli(['ml', 'online-endpoint', 'delete', '--name', E, '--yes']);
  assert.equal(del.code, 0, del.stderr);
  assert.match((await ws.cli(['online-endpoint', 'show', '-n', E])).stderr, /EndpointNotFound/);
  await until('the container to be removed', async () => (await dockerCli(['inspect', containers[0].Id])).code !== 0, 30_000);
  assert.deepEqual(await workspaceContainers(docker, ws.dir), [], 'no container of this workspace is left');
});
