// The JSON Schemas derived from the combinators (issue 14) against the validator itself: every document
// the validator accepts passes its schema (the Azure examples and every golden input), and documents the
// validator refuses for a structural reason (unknown key, wrong type, out of range, bad enum value) are
// refused by the schema too. The control plane serves them without a token.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import ajvModule from 'ajv/dist/2020.js';
import type { Backend } from '../backend/types.js';
import { Controller } from '../reconcile/controller.js';
import { MemoryStateStore } from '../store/memory.js';
import { buildApi } from '../api/server.js';
import {
  loadDeploymentYaml,
  loadEndpointYaml,
  parseDeploymentObject,
  parseEndpointObject,
  parseEnvironmentObject,
  parseModelObject,
  type LoadResult,
  type ObjectContext,
} from './index.js';
import { SCHEMA_NAMES, schemaId, yamlSchemas, type SchemaName } from './json-schema.js';
import { parseYamlTree, toValue } from './tree.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const schemas = yamlSchemas();

// ajv is CommonJS: under NodeNext its default import is module.exports, whose `default` is the class.
const Ajv2020 = ajvModule.default;
// strict: a keyword ajv does not know, or one that cannot apply, is a bug in the generator.
const ajv = new Ajv2020({ strict: true, allowUnionTypes: true, allErrors: true });
const validators = Object.fromEntries(SCHEMA_NAMES.map((n) => [n, ajv.compile(schemas[n])])) as Record<SchemaName, ReturnType<typeof ajv.compile>>;

/** The schema's verdict: undefined when valid, else its errors in one line. */
function schemaErrors(name: SchemaName, value: unknown): string | undefined {
  const validate = validators[name];
  return validate(value) ? undefined : ajv.errorsText(validate.errors);
}

const dir = mkdtempSync(join(tmpdir(), 'infergate-json-schema-'));
after(() => rmSync(dir, { recursive: true, force: true }));
mkdirSync(join(dir, 'model'));
mkdirSync(join(dir, 'code'));
writeFileSync(join(dir, 'code', 'score.py'), 'def init(): pass\ndef run(d): return d\n');
writeFileSync(join(dir, 'conda.yaml'), 'name: env\ndependencies: [python=3.11]\n');
const ctx: ObjectContext = { source: 'test', baseDir: dir };

function yamlFiles(d: string, suffix: RegExp): string[] {
  return readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? yamlFiles(join(d, e.name), suffix) : suffix.test(e.name) ? [join(d, e.name)] : []));
}

test('the five schemas: draft 2020-12, an $id under infergate.dev, a title and the validator-only rules named', () => {
  assert.deepEqual(Object.keys(schemas), [...SCHEMA_NAMES]);
  for (const name of SCHEMA_NAMES) {
    const s = schemas[name];
    assert.equal(s.$schema, 'https://json-schema.org/draft/2020-12/schema');
    assert.equal(s.$id, `https://infergate.dev/schemas/${name}.json`);
    assert.equal(s.$id, schemaId(name));
    assert.equal(typeof s.title, 'string');
    assert.match(String(s.description), /checked by infergate itself/);
    assert.equal(s.additionalProperties, false, `${name}: unknown keys are refused`);
  }
});

test('every YAML document the validator accepts passes its schema: Azure examples and golden inputs', () => {
  const files = [...yamlFiles('/work/shared/examples/azureml', /\.ya?ml$/), ...yamlFiles(join(here, 'testdata'), /\.in\.yaml$/), ...yamlFiles(join(root, 'test/fixtures'), /\.ya?ml$/)]
    // conda files are not infergate documents.
    .filter((f) => !/conda\.ya?ml$/.test(f));
  let accepted = 0;
  let refused = 0;
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    const isDeployment = /deployment/.test(file.split('/').pop()!);
    const r: LoadResult<{ type?: string } | object> = isDeployment ? loadDeploymentYaml(text, file) : loadEndpointYaml(text, file);
    if (!r.spec) {
      refused++;
      continue;
    }
    accepted++;
    const name: SchemaName = isDeployment ? ('type' in r.spec && r.spec.type === 'kubernetes' ? 'kubernetesDeployment' : 'managedDeployment') : 'endpoint';
    // The same tree the validator read (anchors and merge keys resolved), as plain data.
    const value = toValue(parseYamlTree(text, file).root);
    assert.equal(schemaErrors(name, value), undefined, `${file} against ${name}`);
  }
  // So this test cannot pass by finding nothing: the 6 Azure examples and their golden copies at least.
  assert.ok(accepted >= 12, `${accepted} accepted documents`);
  assert.ok(refused >= 5, `${refused} refused documents (the broken golden cases) were skipped`);
});

const endpoint = { name: 'my-endpoint' };
const managed = { name: 'blue', endpoint_name: 'my-endpoint', instance_type: 'Standard_DS3_v2', instance_count: 1 };
const kubernetes = { name: 'blue', endpoint_name: 'my-endpoint', type: 'kubernetes', instance_count: 1 };
const model = { name: 'my-model', path: 'model' };
const environment = { name: 'my-env', image: 'python:3.11-slim' };

type Case = [SchemaName, string, Record<string, unknown>];

function validator(name: SchemaName, doc: Record<string, unknown>): LoadResult<unknown> {
  if (name === 'endpoint') return parseEndpointObject(doc, ctx);
  if (name === 'model') return parseModelObject(doc, ctx);
  if (name === 'environment') return parseEnvironmentObject(doc, ctx);
  return parseDeploymentObject(doc, ctx);
}

/** Valid documents the schema must not refuse: the spellings and shapes the validator reads beyond the canonical ones. */
const good: Case[] = [
  ['endpoint', 'the smallest endpoint', endpoint],
  ['endpoint', 'REST enum spellings (AMLToken, SystemAssigned)', { ...endpoint, auth_mode: 'AMLToken', identity: { type: 'SystemAssigned' } }],
  ['endpoint', 'empty values mean "not given"', { ...endpoint, description: null, traffic: null, auth_mode: null }],
  ['endpoint', 'a Kubernetes endpoint with traffic', { ...endpoint, compute: 'azureml:k8s', traffic: { blue: 100 }, tags: { rank: 1, on: true } }],
  ['endpoint', "`show`'s output keys", { ...endpoint, id: '/x', provisioning_state: 'Succeeded', scoring_uri: 'http://x', kind: 'Managed' }],
  ['managedDeployment', 'the smallest managed deployment', managed],
  ['managedDeployment', 'type managed, in capitals', { ...managed, type: 'Managed' }],
  ['managedDeployment', 'empty values of every shape', { ...managed, type: null, app_insights_enabled: null, model: null, environment_variables: null, liveness_probe: null, id: null }],
  ['managedDeployment', 'YAML 1.1 booleans as strings, a numeric version', { ...managed, app_insights_enabled: 'yes', model: { path: 'model', version: 1 } }],
  ['managedDeployment', 'registered assets', { ...managed, model: 'azureml:m:1', environment: 'azureml:e@latest' }],
  ['managedDeployment', 'ARM id and registry references', { ...managed, model: '/subscriptions/x/resourceGroups/y', environment: 'azureml://registries/r/environments/e/versions/1' }],
  ['managedDeployment', 'code, inline environment, settings, data collector', {
    ...managed,
    code_configuration: { code: 'code', scoring_script: 'score.py' },
    environment: { image: 'python:3.11', conda_file: 'conda.yaml', inference_config: { liveness_route: { port: 5001, path: '/' }, readiness_route: { port: 5001, path: '/' }, scoring_route: { port: 5001, path: '/score' } } },
    environment_variables: { A: 1, B: 'x', C: false },
    request_settings: { request_timeout_ms: 180000, max_concurrent_requests_per_instance: 2 },
    liveness_probe: { period: 5, success_threshold: 1 },
    scale_settings: { type: 'target_utilization', min_instances: 0, max_instances: 3 },
    data_collector: { sampling_rate: 0.5, rolling_rate: 'Hour', collections: { model_inputs: { enabled: 'True' } } },
  }],
  ['managedDeployment', 'an inline conda file', { ...managed, environment: { image: 'python:3.11', conda_file: { name: 'env', dependencies: ['python=3.11'] } } }],
  ['kubernetesDeployment', 'the smallest Kubernetes deployment (no instance_type)', kubernetes],
  ['kubernetesDeployment', '300 s timeout and resources', { ...kubernetes, type: 'Kubernetes', request_timeout_ms: undefined, request_settings: { request_timeout_ms: 300000 }, resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: 1, 'nvidia.com/gpu': 1 } } }],
  ['model', 'the smallest model', model],
  ['model', 'a numeric version, type, flavors', { ...model, version: 2, type: 'mlflow_model', flavors: { python_function: {} }, tags: { a: 1 } }],
  ['environment', 'an image', environment],
  ['environment', 'a build context', { name: 'my-env', version: '1', build: { path: 'code', dockerfile_path: 'Dockerfile' }, os_type: 'Linux' }],
];

/** Structurally invalid documents: the validator and the schema must both refuse them. */
const bad: Case[] = [
  ['endpoint', 'no name', {}],
  ['endpoint', 'a misspelt key', { ...endpoint, auth_modes: 'key' }],
  ['endpoint', 'a name too short', { name: 'ab' }],
  ['endpoint', 'a name starting with a digit', { name: '1-endpoint' }],
  ['endpoint', 'a bad auth_mode', { ...endpoint, auth_mode: 'password' }],
  ['endpoint', 'traffic over 100', { ...endpoint, traffic: { blue: 101 } }],
  ['endpoint', 'negative traffic', { ...endpoint, traffic: { blue: -1 } }],
  ['endpoint', 'traffic as a string', { ...endpoint, traffic: { blue: 'all' } }],
  ['endpoint', 'a fractional traffic', { ...endpoint, traffic: { blue: 50.5 } }],
  ['endpoint', 'a bad deployment name in traffic', { ...endpoint, traffic: { b: 100 } }],
  ['endpoint', 'mirror traffic over 50', { ...endpoint, mirror_traffic: { blue: 60 } }],
  ['endpoint', 'tags as a list', { ...endpoint, tags: ['a'] }],
  ['endpoint', 'a tag whose value is a mapping', { ...endpoint, tags: { a: { b: 1 } } }],
  ['endpoint', 'identity without type', { ...endpoint, identity: { user_assigned_identities: [] } }],
  ['endpoint', 'an unknown identity key', { ...endpoint, identity: { type: 'none', kind: 'x' } }],
  ['endpoint', 'public_network_access on Kubernetes', { ...endpoint, compute: 'azureml:k8s', public_network_access: 'enabled' }],
  ['endpoint', 'a description that is a number', { ...endpoint, description: 5 }],
  ['managedDeployment', 'no instance_type', { name: 'blue', endpoint_name: 'my-endpoint', instance_count: 1 }],
  ['managedDeployment', 'no endpoint_name', { name: 'blue', instance_type: 'x', instance_count: 1 }],
  ['managedDeployment', 'instance_count 0', { ...managed, instance_count: 0 }],
  ['managedDeployment', 'instance_count over the managed quota', { ...managed, instance_count: 51 }],
  ['managedDeployment', 'instance_count as a string', { ...managed, instance_count: 'two' }],
  ['managedDeployment', 'a 200 s timeout (managed allows 180 s)', { ...managed, request_settings: { request_timeout_ms: 200000 } }],
  ['managedDeployment', 'a misspelt request setting', { ...managed, request_settings: { request_timeout: 1000 } }],
  ['managedDeployment', 'a bad scale_settings type', { ...managed, scale_settings: { type: 'automatic' } }],
  ['managedDeployment', 'scale_settings without type', { ...managed, scale_settings: { min_instances: 1 } }],
  ['managedDeployment', 'target utilization over 100', { ...managed, scale_settings: { type: 'target_utilization', target_utilization_percentage: 101 } }],
  ['managedDeployment', 'a probe period of 0', { ...managed, liveness_probe: { period: 0 } }],
  ['managedDeployment', 'resources on a managed deployment', { ...managed, resources: { requests: { cpu: '1' } } }],
  ['managedDeployment', 'app_insights_enabled: maybe', { ...managed, app_insights_enabled: 'maybe' }],
  ['managedDeployment', 'a model string that is no reference', { ...managed, model: 'my-model' }],
  ['managedDeployment', 'a model that is a number', { ...managed, model: 42 }],
  ['managedDeployment', 'an inline model without path', { ...managed, model: { name: 'm' } }],
  ['managedDeployment', 'a bad model type', { ...managed, model: { path: 'model', type: 'onnx_model' } }],
  ['managedDeployment', 'channels directly under environment', { ...managed, environment: { image: 'x', channels: ['conda-forge'] } }],
  ['managedDeployment', 'a port out of range', { ...managed, environment: { image: 'x', inference_config: { liveness_route: { port: 70000, path: '/' }, readiness_route: { port: 1, path: '/' }, scoring_route: { port: 1, path: '/' } } } }],
  ['managedDeployment', 'code_configuration without scoring_script', { ...managed, code_configuration: { code: 'code' } }],
  ['managedDeployment', "an environment variable name with '='", { ...managed, environment_variables: { 'A=B': 'x' } }],
  ['managedDeployment', 'an environment variable that is a list', { ...managed, environment_variables: { A: [1] } }],
  ['managedDeployment', 'a sampling rate over 1', { ...managed, data_collector: { sampling_rate: 2 } }],
  ['managedDeployment', 'a bad rolling rate', { ...managed, data_collector: { rolling_rate: 'week' } }],
  ['managedDeployment', 'an empty instance_type', { ...managed, instance_type: '  ' }],
  ['kubernetesDeployment', 'egress_public_network_access on Kubernetes', { ...kubernetes, egress_public_network_access: 'enabled' }],
  ['kubernetesDeployment', 'a timeout over 300 s', { ...kubernetes, request_settings: { request_timeout_ms: 300001 } }],
  ['kubernetesDeployment', 'a negative cpu quantity', { ...kubernetes, resources: { requests: { cpu: -1 } } }],
  ['kubernetesDeployment', 'a malformed memory quantity', { ...kubernetes, resources: { limits: { memory: '1 GB' } } }],
  ['kubernetesDeployment', 'an unknown resource', { ...kubernetes, resources: { limits: { disk: '1Gi' } } }],
  ['model', 'no path', { name: 'my-model' }],
  ['model', 'a name starting with a dash', { ...model, name: '-model' }],
  ['model', 'a version with a slash', { ...model, version: '1/2' }],
  ['model', 'a bad type', { ...model, type: 'onnx_model' }],
  ['model', 'an unknown key', { ...model, framework: 'sklearn' }],
  ['environment', 'dependencies directly under the environment', { ...environment, dependencies: ['python=3.11'] }],
  ['environment', 'a bad os_type', { ...environment, os_type: 'macos' }],
  ['environment', 'a build without path', { name: 'my-env', build: { dockerfile_path: 'Dockerfile' } }],
  ['environment', 'no name', { image: 'x' }],
];

test('valid documents beyond the examples pass both the validator and the schema', () => {
  for (const [name, what, doc] of good) {
    const r = validator(name, doc);
    assert.deepEqual(r.problems, [], `validator, ${name}: ${what}`);
    assert.equal(schemaErrors(name, JSON.parse(JSON.stringify(doc))), undefined, `schema ${name}: ${what}`);
  }
});

test('structurally invalid documents are refused by the validator and by the schema', () => {
  for (const [name, what, doc] of bad) {
    assert.ok(validator(name, doc).problems.length > 0, `validator, ${name}: ${what}`);
    assert.notEqual(schemaErrors(name, doc), undefined, `schema ${name}: ${what}`);
  }
});

test('kind-dependent limits differ between the managed and the Kubernetes deployment schemas', () => {
  const k8sTimeout = { ...kubernetes, request_settings: { request_timeout_ms: 250000 } };
  assert.equal(schemaErrors('kubernetesDeployment', k8sTimeout), undefined);
  assert.notEqual(schemaErrors('managedDeployment', { ...managed, request_settings: { request_timeout_ms: 250000 } }), undefined);
  // The kind is the document's own `type`: a Kubernetes document is no managed deployment, and back.
  assert.notEqual(schemaErrors('managedDeployment', { ...managed, type: 'kubernetes' }), undefined);
  assert.notEqual(schemaErrors('kubernetesDeployment', { ...kubernetes, type: undefined }), undefined);
  assert.equal(schemaErrors('kubernetesDeployment', { ...kubernetes, instance_count: 51 }), undefined, 'the 50-instance quota is managed only');
});

test('a rule across keys stays the validator\'s, as the schema\'s description says', () => {
  const doc = { ...endpoint, traffic: { blue: 40 } };
  assert.equal(schemaErrors('endpoint', doc), undefined);
  assert.match(parseEndpointObject(doc, ctx).problems[0].message, /sum to 0 or 100/);
  assert.match(String(schemas.endpoint.description), /traffic must sum to 0 or 100/);
});

test('GET /schemas/<name>.json: the control plane serves each schema without a token; other names are 404', async (t) => {
  const store = new MemoryStateStore();
  const backend: Backend = {
    kind: 'process',
    observe: () => [],
    start: async () => {},
    stop: async () => {},
    logs: async () => '',
    onChange: () => {},
    close: async () => {},
  } as unknown as Backend;
  const controller = new Controller({ store, backend, publish: () => {}, deregistrationDelayMs: 0 });
  const app = await buildApi({ store, controller, logs: async () => '', routerUrl: 'http://127.0.0.1:1', workspace: 'ws', location: 'local', version: '0.0.0-test', assetsDir: join(dir, 'assets') });
  t.after(async () => {
    controller.stop();
    await app.close();
  });
  const base = await app.listen({ host: '127.0.0.1', port: 0 });
  for (const name of SCHEMA_NAMES) {
    const res = await fetch(`${base}/schemas/${name}.json`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 200, name);
    assert.match(res.headers.get('content-type') ?? '', /^application\/schema\+json/);
    assert.deepEqual(await res.json(), schemas[name]);
  }
  for (const path of ['/schemas/nothing.json', '/schemas/endpoint', '/schemas/endpoint.yaml']) {
    const res = await fetch(`${base}${path}`, { signal: AbortSignal.timeout(5000) });
    assert.equal(res.status, 404, path);
    assert.equal(((await res.json()) as { error: { code: string } }).error.code, 'RouteNotFound');
  }
});
