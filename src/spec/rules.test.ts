// Every enum and range rule of contract §1, one row each. Variants are made from a valid document with
// `--set` overrides (applyOverrides), and checked through the object path (REST bodies).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { applyOverrides, parseDeploymentObject, parseEndpointObject, type DeploymentSpec, type EndpointSpec, type LoadResult } from './index.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

const endpointDoc = (): Record<string, unknown> => ({ name: 'my-endpoint' });
const deploymentDoc = (): Record<string, unknown> => ({
  name: 'blue',
  endpoint_name: 'my-endpoint',
  model: { path: 'model-1/model' },
  code_configuration: { code: 'model-1/onlinescoring', scoring_script: 'score.py' },
  environment: { image: 'python:3.12', conda_file: 'model-1/environment/conda.yaml' },
  instance_type: 'Standard_DS3_v2',
  instance_count: 1,
});

function variant<T>(make: () => Record<string, unknown>, parse: (o: unknown) => LoadResult<T>, sets: string[]): LoadResult<T> {
  const doc = make();
  assert.deepEqual(applyOverrides(doc, sets), []);
  return parse(doc);
}
const deployment = (...sets: string[]) => variant(deploymentDoc, (o) => parseDeploymentObject(o, { source: 'test', baseDir: testdata }), sets);
const endpoint = (...sets: string[]) => variant(endpointDoc, (o) => parseEndpointObject(o, { source: 'test' }), sets);
const messages = (r: LoadResult<unknown>): string[] => r.problems.map((p) => `${p.path}: ${p.message}`);

/** [--set overrides, expected problems as "path: message"] */
type Row = [string[], string[]];

function table<T>(name: string, run: (...sets: string[]) => LoadResult<T>, rows: Row[]): void {
  test(name, () => {
    for (const [sets, expected] of rows) assert.deepEqual(messages(run(...sets)), expected, sets.join(' '));
  });
}

table('deployment: instance_count (managed 1..50, integer)', deployment, [
  [['instance_count=0'], ['instance_count: must be between 1 and 50, got 0']],
  [['instance_count=51'], ['instance_count: must be between 1 and 50, got 51']],
  [['instance_count=1.5'], ['instance_count: expected an integer, got the number 1.5']],
  [['instance_count="2"'], ['instance_count: expected an integer, got the string "2"']],
  [['instance_count=50'], []],
  [['instance_count='], ["instance_count: missing required key 'instance_count'"]],
  [['instance_type='], ["instance_type: missing required key 'instance_type'"]],
]);

table('deployment: request_settings ranges (contract §1.7)', deployment, [
  [['request_settings.request_timeout_ms=0'], ['request_settings.request_timeout_ms: must be between 1 and 180000, got 0']],
  [['request_settings.request_timeout_ms=180001'], ['request_settings.request_timeout_ms: must be between 1 and 180000, got 180001']],
  [['request_settings.request_timeout_ms=180000'], []],
  [['request_settings.max_concurrent_requests_per_instance=0'], ['request_settings.max_concurrent_requests_per_instance: must be at least 1, got 0']],
  [['request_settings.max_queue_wait_ms=-1'], ['request_settings.max_queue_wait_ms: must be at least 0, got -1']],
  [['request_settings.max_queue_wait_ms=0'], []],
]);

table('deployment: probes (contract §1.7)', deployment, [
  [['liveness_probe.initial_delay=0'], ['liveness_probe.initial_delay: must be at least 1, got 0']],
  [['readiness_probe.period=0'], ['readiness_probe.period: must be at least 1, got 0']],
  [['readiness_probe.timeout=0'], ['readiness_probe.timeout: must be at least 1, got 0']],
  [['liveness_probe.failure_threshold=0'], ['liveness_probe.failure_threshold: must be at least 1, got 0']],
  [['liveness_probe.success_threshold=2'], ['liveness_probe.success_threshold: must be 1 for liveness_probe, got 2']],
  [['liveness_probe.success_threshold=1', 'readiness_probe.success_threshold=3'], []],
  [['readiness_probe.success_threshold=0'], ['readiness_probe.success_threshold: must be at least 1, got 0']],
]);

table('deployment: enums are case-insensitive, other values rejected', deployment, [
  [['scale_settings.type=Default'], []],
  [['scale_settings.type=TARGET_UTILIZATION'], []],
  [['scale_settings.type=manual'], ['scale_settings.type: expected one of default, target_utilization, got the string "manual"']],
  [['scale_settings={}'], ["scale_settings.type: missing required key 'type'"]],
  [['egress_public_network_access=DISABLED'], []],
  [['egress_public_network_access=off'], ['egress_public_network_access: expected one of enabled, disabled, got the string "off"']],
  [['model.type=MLflow_Model'], []],
  [['model.type=onnx'], ['model.type: expected one of custom_model, mlflow_model, triton_model, got the string "onnx"']],
  [['environment.os_type=Windows'], []],
  [['environment.os_type=mac'], ['environment.os_type: expected one of linux, windows, got the string "mac"']],
  [['type=serverless'], ['type: expected one of managed, kubernetes, got the string "serverless"']],
  [['app_insights_enabled=on'], []],
  [['app_insights_enabled=1'], ['app_insights_enabled: expected a boolean (true or false), got the number 1']],
]);

table('deployment: names (contract §1.8)', deployment, [
  [['name=ab'], ['name: The name for a deployment must be at least 3 and at most 32 characters long (inclusive of both limits).']],
  [['name=blue_1'], ["name: The name for a deployment must start with an upper- or lowercase letter\n and only consist of '-'s and alphanumeric characters."]],
  [['endpoint_name=e'], ['endpoint_name: The name for an endpoint must be at least 3 and at most 32 characters long (inclusive of both limits).']],
  [['name=12345'], ['name: expected a string, got the number 12345']],
]);

table('deployment: assets and code (contract §1.4-1.6)', deployment, [
  [['model=azureml:m:1', 'environment=azureml:e@latest'], []],
  [['model=./model'], ["model: './model' is not a model reference (azureml:<name>:<version>, azureml:<name>@<label>, azureml://registries/..., or an ARM id); a local model is written as a mapping, e.g. {path: ./model}"]],
  [['model=[1]'], ['model: expected a model reference or an inline model mapping, got a list']],
  [['code_configuration.scoring_script=/etc/passwd'], ["code_configuration.scoring_script: scoring_script must be a path inside the code folder, got '/etc/passwd'"]],
  [['code_configuration.scoring_script=sub/../../score.py'], ["code_configuration.scoring_script: scoring_script must be a path inside the code folder, got 'sub/../../score.py'"]],
  [['code_configuration.scoring_script=./sub/../score.py'], []],
  [['code_configuration.scoring_script='], ["code_configuration.scoring_script: missing required key 'scoring_script'"]],
  [['code_configuration.code=model-1/model/sklearn_regression_model.pkl'], [`code_configuration.code: path 'model-1/model/sklearn_regression_model.pkl' (${testdata}/model-1/model/sklearn_regression_model.pkl) is a file, expected a folder`]],
  [['environment.conda_file=model-1'], [`environment.conda_file: path 'model-1' (${testdata}/model-1) is a folder, expected a file`]],
  [['environment.dependencies=[python]'], ["environment.dependencies: 'dependencies' belongs in the conda file (conda_file), not directly under 'environment'"]],
  [['environment.build.path=model-1/environment'], ["environment.build: 'image' and 'build' cannot both be given: an environment is either an image or a build context"]],
  [['environment.inference_config.liveness_route.port=5001'], [
    "environment.inference_config.liveness_route.path: missing required key 'path'",
    "environment.inference_config.readiness_route: missing required key 'readiness_route'",
    "environment.inference_config.scoring_route: missing required key 'scoring_route'",
  ]],
  [['environment_variables.N=1', 'environment_variables.B=false', 'tags.t=2.50'], []],
  [['environment_variables.L=[1]'], ['environment_variables.L: expected a string, got a list']],
  [['data_collector.sampling_rate=0', 'data_collector.rolling_rate=day'], []],
  [['data_collector.sampling_rate=1.01'], ['data_collector.sampling_rate: must be between 0 and 1, got 1.01']],
  [['data_collector.request_logging.capture_headers=[a, 1]'], ['data_collector.request_logging.capture_headers[1]: expected a string, got the number 1']],
]);

table('deployment: Kubernetes (contract §1.10)', deployment, [
  [['type=kubernetes', 'instance_type=', 'request_settings.request_timeout_ms=300000'], []],
  [['type=kubernetes', 'request_settings.request_timeout_ms=300001'], ['request_settings.request_timeout_ms: must be between 1 and 300000, got 300001']],
  [['type=kubernetes', 'instance_count=500'], []],
  [['type=kubernetes', 'instance_count='], ["instance_count: missing required key 'instance_count' (required with default scale settings)"]],
  [['type=kubernetes', 'instance_count=', 'scale_settings.type=target_utilization'], []],
  [['type=kubernetes', 'scale_settings.type=target_utilization', 'scale_settings.min_instances=3', 'scale_settings.max_instances=2'], ['scale_settings.max_instances: max_instances (2) must be at least min_instances (3)']],
  [['type=kubernetes', 'scale_settings.type=target_utilization', 'scale_settings.target_utilization_percentage=101'], ['scale_settings.target_utilization_percentage: must be between 1 and 100, got 101']],
  [['type=kubernetes', 'resources.requests.cpu=2', 'resources.limits.cpu=1500m'], ['resources.requests: requests.cpu (2) must not be more than limits.cpu (1500m)']],
  [['type=kubernetes', 'resources.requests.memory=1Gi', 'resources.limits.memory=1024Mi'], []],
  [['type=kubernetes', 'egress_public_network_access=enabled'], ["egress_public_network_access: 'egress_public_network_access' is not supported on Kubernetes deployments (only on managed ones)"]],
  [['resources.requests.cpu=1'], ["resources: 'resources' is not supported on managed deployments (only on Kubernetes ones)"]],
  [['type=kubernetes', 'environment=azureml://registries/azureml/environments/e/versions/1'], ['environment: registry environments are not supported on Kubernetes deployments']],
]);

test('deployment: a Kubernetes autoscaled deployment starts at min_instances and gets the default instance type', () => {
  const { spec } = deployment('type=kubernetes', 'instance_type=', 'instance_count=', 'scale_settings.type=target_utilization', 'scale_settings.min_instances=2', 'scale_settings.max_instances=5');
  assert.equal(spec?.instanceCount, 2);
  assert.equal(spec?.instanceType, 'defaultinstancetype');
  assert.deepEqual(spec?.scaleSettings, { type: 'target_utilization', minInstances: 2, maxInstances: 5, pollingInterval: 1, targetUtilizationPercentage: 70 });
});

table('deployment: target_utilization on managed deployments too (beyond Azure, issue 12)', deployment, [
  [['scale_settings.type=target_utilization'], []],
  [['instance_count=', 'scale_settings.type=target_utilization'], []],
  [['instance_count=', 'scale_settings.type=default'], ["instance_count: missing required key 'instance_count'"]],
  [['scale_settings.type=target_utilization', 'scale_settings.min_instances=4', 'scale_settings.max_instances=2'], ['scale_settings.max_instances: max_instances (2) must be at least min_instances (4)']],
]);

test('deployment: a managed target_utilization deployment without instance_count starts at min_instances', () => {
  const { spec } = deployment('instance_count=', 'scale_settings.type=target_utilization', 'scale_settings.min_instances=2', 'scale_settings.max_instances=4', 'scale_settings.polling_interval=5');
  assert.equal(spec?.instanceCount, 2);
  assert.deepEqual(spec?.scaleSettings, { type: 'target_utilization', minInstances: 2, maxInstances: 4, pollingInterval: 5, targetUtilizationPercentage: 70 });
});

test('deployment: enum values are stored in canonical lower case', () => {
  const { spec } = deployment('egress_public_network_access=DISABLED', 'model.type=MLflow_Model', 'environment.os_type=Windows', 'type=Managed');
  const s = spec as DeploymentSpec;
  assert.equal(s.egressPublicNetworkAccess, 'disabled');
  assert.equal(s.model?.kind === 'inline' && s.model.type, 'mlflow_model');
  assert.equal(s.environment?.kind === 'inline' && s.environment.osType, 'windows');
  assert.equal(s.type, 'managed');
});

test('deployment: scale_settings type default drops the other keys (SDK _set_scale_settings)', () => {
  assert.deepEqual(deployment('scale_settings.type=default', 'scale_settings.max_instances=9').spec?.scaleSettings, { type: 'default' });
});

table('endpoint: auth_mode, public_network_access, identity', endpoint, [
  [['auth_mode=Key'], []],
  [['auth_mode=AMLToken'], []],
  [['auth_mode=aad_token'], []],
  [['auth_mode=token'], ['auth_mode: expected one of key, aml_token, aad_token, got the string "token"']],
  [['public_network_access=Disabled'], []],
  [['public_network_access=private'], ['public_network_access: expected one of enabled, disabled, got the string "private"']],
  [['identity.type=system_assigned'], []],
  [['identity.type=None'], []],
  [['identity.type=user_assigned'], ['identity.user_assigned_identities: type user_assigned needs at least one entry in user_assigned_identities']],
  [['identity.type=user_assigned', 'identity.user_assigned_identities=[]'], ['identity.user_assigned_identities: type user_assigned needs at least one entry in user_assigned_identities']],
  [['identity.type=SystemAssigned', 'identity.user_assigned_identities=[{resource_id: x}]'], ['identity.user_assigned_identities: not allowed with type system_assigned']],
  [['identity.type=user_assigned', 'identity.user_assigned_identities=[{id: x}]'], [
    "identity.user_assigned_identities[0].id: unknown key 'id'",
    "identity.user_assigned_identities[0].resource_id: missing required key 'resource_id'",
  ]],
  [['identity.user_assigned_identities=[]'], ['identity.type: Identity type not found in provided yaml file.']],
]);

table('endpoint: traffic and mirror_traffic (contract §2.4, §3)', endpoint, [
  [['traffic.blue=100'], []],
  [['traffic.blue=0'], []],
  [['traffic.blue=101'], ['traffic.blue: must be between 0 and 100, got 101']],
  [['traffic.blue=-1'], ['traffic.blue: must be between 0 and 100, got -1']],
  [['traffic.blue=50'], ['traffic: traffic percentages must sum to 0 or 100, got 50']],
  [['traffic={Blue: 50, blue: 50}'], ["traffic: deployment 'blue' is given twice (deployment names are not case-sensitive here)"]],
  [['traffic.blue=yes'], ['traffic.blue: expected an integer, got the string "yes"']],
  [['mirror_traffic.green=50'], []],
  [['mirror_traffic.green=51'], ['mirror_traffic.green: must be between 0 and 50, got 51']],
  [['mirror_traffic={green: 10, red: 0}'], []],
  [['mirror_traffic={green: 10, red: 5}'], ['mirror_traffic: mirror traffic can go to one deployment only, got green, red']],
  [['traffic.blue=100', 'mirror_traffic.blue=10'], ["mirror_traffic: deployment 'blue' cannot receive both live and mirror traffic"]],
  [['compute=azureml:k8s', 'mirror_traffic.green=10'], ['mirror_traffic: mirror traffic is not supported on Kubernetes endpoints']],
  [['compute=azureml:k8s', 'mirror_traffic={}'], []],
  [['compute=azureml:k8s', 'auth_mode=AADToken'], ['auth_mode: aad_token is not supported on Kubernetes endpoints; use key or aml_token']],
  [['compute=azureml:k8s', 'public_network_access=enabled'], ["public_network_access: 'public_network_access' is not supported on Kubernetes endpoints (only on managed ones)"]],
  [['name=my_endpoint'], ["name: The name for an endpoint must start with an upper- or lowercase letter\n and only consist of '-'s and alphanumeric characters."]],
]);

test('endpoint: traffic keys are lower-cased and zero entries stripped (contract §2.4)', () => {
  const { spec } = endpoint('traffic={BLUE: 90, Green: 10, red: 0}', 'mirror_traffic={Shadow: 5, other: 0}');
  assert.deepEqual((spec as EndpointSpec).traffic, { blue: 90, green: 10 });
  assert.deepEqual((spec as EndpointSpec).mirrorTraffic, { shadow: 5 });
});

test('endpoint: defaults (contract §1.2)', () => {
  assert.deepEqual(endpoint().spec, {
    name: 'my-endpoint',
    kind: 'managed',
    tags: {},
    properties: {},
    authMode: 'key',
    traffic: {},
    mirrorTraffic: {},
    publicNetworkAccess: 'enabled',
  });
});

test('endpoint: the output keys of show are accepted and ignored (contract §1.2)', () => {
  const r = endpoint('id=/subscriptions/x', 'provisioning_state=Succeeded', 'scoring_uri=http://x/score', 'openapi_uri=http://x/swagger.json', 'location=local', 'kind=Managed', 'identity.type=system_assigned', 'identity.principal_id=p', 'identity.tenant_id=t');
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.spec?.identity, { type: 'system_assigned' });
});
