// compileInstancePlan's revision: what needs new instances changes it, what does not leaves it alone.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDeploymentObject } from '../spec/index.js';
import type { DeploymentSpec } from '../spec/types.js';
import type { InfergateError } from '../errors/index.js';
import { assetLookup, MemoryStateStore, type AssetLookup } from '../store/index.js';
import { compileInstancePlan, instanceId, scriptName, stableJson } from './plan.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

function base(): Record<string, unknown> {
  return {
    name: 'blue',
    endpoint_name: 'my-endpoint',
    model: { name: 'm', version: '1', path: 'assets/model' },
    code_configuration: { code: 'assets/py', scoring_script: 'score.py' },
    environment: { image: 'python:3.11-slim', conda_file: 'assets/conda.yaml' },
    environment_variables: { A: '1' },
    instance_type: 'Standard_DS3_v2',
    instance_count: 1,
    request_settings: { request_timeout_ms: 5000 },
  };
}

function spec(change: (doc: Record<string, any>) => void = () => {}): DeploymentSpec {
  const doc = base();
  change(doc);
  const { spec, problems } = parseDeploymentObject(doc, { source: 'test', baseDir: testdata });
  assert.deepEqual(problems, []);
  return spec!;
}

const revision = (change?: (doc: Record<string, any>) => void) => compileInstancePlan(spec(change)).revision;

test('the revision is a short hex hash and is the same for the same spec', () => {
  const r = revision();
  assert.match(r, /^[0-9a-f]{10}$/);
  assert.equal(revision(), r);
});

test('instance_count and request_timeout_ms change the plan but not the revision', () => {
  const before = compileInstancePlan(spec());
  const after = compileInstancePlan(
    spec((d) => {
      d.instance_count = 5;
      d.request_settings = { request_timeout_ms: 60000, max_concurrent_requests_per_instance: 3 };
    }),
  );
  assert.equal(after.instanceCount, 5);
  assert.equal(after.requestTimeoutMs, 60000);
  assert.equal(after.revision, before.revision);
});

test('environment variables, model, code, environment and script change the revision', () => {
  const r = revision();
  const changes: [string, (d: Record<string, any>) => void][] = [
    ['env var value', (d) => (d.environment_variables = { A: '2' })],
    ['env var added', (d) => (d.environment_variables = { A: '1', B: '1' })],
    ['WORKER_COUNT', (d) => (d.environment_variables = { A: '1', WORKER_COUNT: '2' })],
    ['model path', (d) => (d.model = { name: 'm', version: '1', path: 'assets/single/model.onnx' })],
    ['model version', (d) => (d.model = { name: 'm', version: '2', path: 'assets/model' })],
    ['model name', (d) => (d.model = { name: 'n', version: '1', path: 'assets/model' })],
    ['no model', (d) => delete d.model],
    ['code folder', (d) => (d.code_configuration = { code: 'assets/js', scoring_script: 'score.mjs' })],
    ['image', (d) => (d.environment = { image: 'python:3.12-slim', conda_file: 'assets/conda.yaml' })],
    ['conda file', (d) => (d.environment = { image: 'python:3.11-slim', conda_file: { dependencies: ['python=3.11'] } })],
    ['registered environment', (d) => (d.environment = 'azureml:my-env:1')],
  ];
  const seen = new Map<string, string>([[r, 'base']]);
  for (const [what, change] of changes) {
    const next = revision(change);
    assert.notEqual(next, r, `${what} must change the revision`);
    assert.ok(!seen.has(next), `${what} gives the same revision as ${seen.get(next)}`);
    seen.set(next, what);
  }
});

test('a new version of a registered environment changes the revision', () => {
  const v1 = compileInstancePlan(spec((d) => (d.environment = 'azureml:my-env:1')));
  const v2 = compileInstancePlan(spec((d) => (d.environment = 'azureml:my-env:2')));
  const latest = compileInstancePlan(spec((d) => (d.environment = 'azureml:my-env@latest')));
  assert.deepEqual(v1.environment, { image: 'azureml:my-env:1' });
  assert.deepEqual(latest.environment, { image: 'azureml:my-env@latest' });
  assert.notEqual(v1.revision, v2.revision);
  assert.notEqual(v1.revision, latest.revision);
});

test('environment variable order does not matter', () => {
  assert.equal(revision((d) => (d.environment_variables = { A: '1', B: '2' })), revision((d) => (d.environment_variables = { B: '2', A: '1' })));
});

test('the plan copies environment variables instead of aliasing the spec', () => {
  const s = spec();
  const p = compileInstancePlan(s);
  s.environmentVariables.A = 'changed';
  assert.equal(p.environmentVariables.A, '1');
});

test('instanceId, scriptName and stableJson', () => {
  const p = compileInstancePlan(spec((d) => (d.code_configuration = { code: 'assets', scoring_script: 'py/score.py' })));
  assert.equal(instanceId(p, 2), `my-endpoint.blue.${p.revision}.2`);
  assert.equal(scriptName(p), 'score.py');
  assert.equal(stableJson({ b: [1, { d: 1, c: null }], a: 'x' }), '{"a":"x","b":[1,{"c":null,"d":1}]}');
});

// ---- registered assets ----------------------------------------------------------------------------

function lookupWith(register: (store: MemoryStateStore) => void): AssetLookup {
  const store = new MemoryStateStore();
  register(store);
  return assetLookup(store);
}

const storedModel = (version: string, path = join(testdata, 'assets/model')) => ({ name: 'm', version, type: 'custom_model' as const, path, tags: {}, properties: {} });

test('a registered model resolves to its stored copy, named and versioned as registered', () => {
  const assets = lookupWith((s) => s.putAsset('model', storedModel('1', '/ws/assets/models/m/1/model')));
  const p = compileInstancePlan(spec((d) => (d.model = 'azureml:m:1')), assets);
  assert.deepEqual(p.model, { name: 'm', version: '1', path: '/ws/assets/models/m/1/model' });
});

test('@latest resolves when compiled, but a recorded version (resolvedAssets) does not move when a new one is registered', () => {
  const store = new MemoryStateStore();
  store.putAsset('model', storedModel('1', '/a/1/model'));
  const assets = assetLookup(store);
  const s = spec((d) => (d.model = 'azureml:m@latest'));
  const pinned = { ...s, resolvedAssets: { model: { name: 'm', version: '1' } } };
  const before = compileInstancePlan(pinned, assets);
  store.putAsset('model', storedModel('2', '/a/2/model'));
  assert.equal(compileInstancePlan(pinned, assets).revision, before.revision);
  assert.equal(compileInstancePlan(pinned, assets).model!.version, '1');
  const unpinned = compileInstancePlan(s, assets);
  assert.equal(unpinned.model!.version, '2');
  assert.notEqual(unpinned.revision, before.revision);
});

test('an inline model recorded as an anonymous asset runs from the stored copy and keeps its mount name', () => {
  const assets = lookupWith((s) => s.putAsset('model', { ...storedModel('1', '/ws/assets/models/azureml_anonymous/abc/model'), name: 'azureml_anonymous', version: 'abc' }, { anonymous: true }));
  const s = { ...spec(), resolvedAssets: { model: { name: 'azureml_anonymous', version: 'abc' } } };
  assert.deepEqual(compileInstancePlan(s, assets).model, { name: 'm', version: '1', path: '/ws/assets/models/azureml_anonymous/abc/model' });
  // Without a lookup (no workspace) the source path is used, as before assets existed.
  assert.equal(compileInstancePlan(s).model!.path, join(testdata, 'assets/model'));
});

test('a registered environment gives its stored conda file and image; references that do not resolve are AssetNotFound', () => {
  const assets = lookupWith((s) => s.putAsset('environment', { name: 'e', version: '1', tags: {}, osType: 'linux', image: 'img:1', conda: { name: 'x' }, condaFile: '/ws/assets/environments/e/1/conda.yaml' }));
  assert.deepEqual(compileInstancePlan(spec((d) => (d.environment = 'azureml:e:1')), assets).environment, { condaFile: '/ws/assets/environments/e/1/conda.yaml', image: 'img:1' });
  for (const [field, ref] of [['environment', 'azureml:e:2'], ['environment', 'azureml:nope@latest'], ['model', 'azureml:m:1']] as const) {
    assert.throws(
      () => compileInstancePlan(spec((d) => (d[field] = ref)), assets),
      (e: unknown) => (e as InfergateError).code === 'AssetNotFound' && (e as Error).message.includes(`'${ref}' does not resolve`),
      ref,
    );
  }
});

// ---- custom containers (BYOC), instance sizes and egress ----------------------------------------------

const tfserving = {
  image: 'docker.io/tensorflow/serving:latest',
  inference_config: {
    liveness_route: { port: 8501, path: '/v1/models/half_plus_two' },
    readiness_route: { port: 8501, path: '/v1/models/half_plus_two' },
    scoring_route: { port: 8501, path: '/v1/models/half_plus_two:predict' },
  },
};

const customContainer = (d: Record<string, any>) => {
  delete d.code_configuration;
  d.environment = tfserving;
};

test('an environment with inference_config and no code_configuration compiles to a container with its routes', () => {
  const p = compileInstancePlan(spec(customContainer));
  assert.equal(p.runtime, 'container');
  assert.equal(p.code, undefined);
  assert.deepEqual(p.environment, {
    image: 'docker.io/tensorflow/serving:latest',
    inferenceConfig: {
      liveness: { port: 8501, path: '/v1/models/half_plus_two' },
      readiness: { port: 8501, path: '/v1/models/half_plus_two' },
      scoring: { port: 8501, path: '/v1/models/half_plus_two:predict' },
    },
  });
  assert.equal(scriptName(p), '');
});

test('a custom container with a scoring script (an inference image) is a container too, and keeps its code', () => {
  const p = compileInstancePlan(spec((d) => (d.environment = tfserving)));
  assert.equal(p.runtime, 'container');
  assert.deepEqual(p.code, { path: join(testdata, 'assets/py'), scoringScript: 'score.py' });
});

test('without inference_config and without code_configuration the deployment is still refused', () => {
  for (const environment of [{ image: 'docker.io/tensorflow/serving:latest' }, { build: { path: 'assets/build' } }, undefined]) {
    assert.throws(
      () =>
        compileInstancePlan(
          spec((d) => {
            delete d.code_configuration;
            if (environment) d.environment = environment;
            else delete d.environment;
          }),
        ),
      // CodeConfigurationRequired: a BadArgument, known by its message.
      (e: unknown) => (e as InfergateError).code === 'BadArgument' && (e as Error).message.startsWith("deployment 'blue': code_configuration is required"),
      JSON.stringify(environment),
    );
  }
});

test('a registered environment with inference_config makes a container', () => {
  const routes = { livenessRoute: { port: 8080, path: '/live' }, readinessRoute: { port: 8080, path: '/ready' }, scoringRoute: { port: 8080, path: '/score' } };
  const assets = lookupWith((s) => s.putAsset('environment', { name: 'byoc', version: '1', tags: {}, osType: 'linux', image: 'my/image:1', inferenceConfig: routes }));
  const p = compileInstancePlan(spec((d) => ((d.environment = 'azureml:byoc:1'), delete d.code_configuration)), assets);
  assert.equal(p.runtime, 'container');
  assert.deepEqual(p.environment, {
    image: 'my/image:1',
    inferenceConfig: { liveness: { port: 8080, path: '/live' }, readiness: { port: 8080, path: '/ready' }, scoring: { port: 8080, path: '/score' } },
  });
});

test('a build context passes through: absolute folder, Dockerfile relative to it (default Dockerfile)', () => {
  const built = compileInstancePlan(spec((d) => (d.environment = { build: { path: 'assets/build', dockerfile_path: 'sub/Dockerfile.gpu' }, inference_config: tfserving.inference_config })));
  assert.deepEqual(built.environment.build, { path: join(testdata, 'assets/build'), dockerfilePath: 'sub/Dockerfile.gpu' });
  assert.equal(built.environment.image, undefined);
  const byDefault = compileInstancePlan(spec((d) => (d.environment = { build: { path: 'assets/build' }, conda_file: 'assets/conda.yaml' })));
  assert.deepEqual(byDefault.environment, { condaFile: join(testdata, 'assets/conda.yaml'), build: { path: join(testdata, 'assets/build'), dockerfilePath: 'Dockerfile' } });
  // A scoring script beside a build context without routes runs on infergate's own host, as before.
  assert.equal(byDefault.runtime, 'python');
});

test('egress: false when egress_public_network_access is disabled, true only when enabled is written', () => {
  assert.equal(compileInstancePlan(spec((d) => (d.egress_public_network_access = 'disabled'))).egress, false);
  assert.equal(compileInstancePlan(spec((d) => (d.egress_public_network_access = 'enabled'))).egress, true);
  assert.equal(compileInstancePlan(spec()).egress, false);
});

test('instance type and resources: the SKU sizes a managed instance, limits size a Kubernetes one', () => {
  const managed = compileInstancePlan(spec());
  assert.equal(managed.instanceType, 'Standard_DS3_v2');
  assert.deepEqual(managed.resources, { cpus: 4, memoryBytes: 14 * 1024 ** 3, from: 'instance_type Standard_DS3_v2' });
  const k8s = compileInstancePlan(
    spec((d) => {
      d.type = 'kubernetes';
      d.resources = { requests: { cpu: '250m', memory: '32Mi' }, limits: { cpu: '500m', memory: '64Mi' } };
    }),
  );
  assert.deepEqual(k8s.resources, { cpus: 0.5, memoryBytes: 64 * 1024 ** 2, from: 'resources.limits' });
});

test('model_mount_path is kept as written, and absent when not written', () => {
  assert.equal(compileInstancePlan(spec((d) => (customContainer(d), (d.model_mount_path = '/models/half_plus_two')))).modelMountPath, '/models/half_plus_two');
  assert.equal('modelMountPath' in compileInstancePlan(spec(customContainer)), false);
});

test('routes, build context, instance type, egress and model mount path change the revision', () => {
  const r = revision(customContainer);
  const withRoute = (scoring: { port: number; path: string }) => ({ ...tfserving, inference_config: { ...tfserving.inference_config, scoring_route: scoring } });
  const changes: [string, (d: Record<string, any>) => void][] = [
    ['scoring port', (d) => (customContainer(d), (d.environment = withRoute({ port: 8502, path: '/v1/models/half_plus_two:predict' })))],
    ['scoring path', (d) => (customContainer(d), (d.environment = withRoute({ port: 8501, path: '/v1/models/half_plus_two:classify' })))],
    ['build instead of image', (d) => (customContainer(d), (d.environment = { build: { path: 'assets/build' }, inference_config: tfserving.inference_config }))],
    ['instance type', (d) => (customContainer(d), (d.instance_type = 'Standard_DS4_v2'))],
    ['egress', (d) => (customContainer(d), (d.egress_public_network_access = 'enabled'))],
    ['model mount path', (d) => (customContainer(d), (d.model_mount_path = '/models'))],
    ['code added', (d) => (d.environment = tfserving)],
  ];
  const seen = new Map<string, string>([[r, 'base']]);
  for (const [what, change] of changes) {
    const next = revision(change);
    assert.ok(!seen.has(next), `${what} gives the same revision as ${seen.get(next)}`);
    seen.set(next, what);
  }
});
