// dump is the inverse of parse: parse(dump(spec)) deep-equals spec, through objects and through YAML text.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import {
  applyOverrides,
  dumpDeployment,
  dumpEndpoint,
  loadDeploymentYaml,
  loadEndpointYaml,
  parseDeploymentObject,
  parseEndpointObject,
  type DeploymentSpec,
  type EndpointSpec,
} from './index.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

function specs(): { name: string; endpoint?: EndpointSpec; deployment?: DeploymentSpec }[] {
  const out = [];
  const walk = (dir: string): string[] =>
    readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : d.name.endsWith('.in.yaml') ? [join(dir, d.name)] : []));
  for (const file of walk(testdata)) {
    const text = readFileSync(file, 'utf8');
    if (file.includes('deployment')) {
      const { spec } = loadDeploymentYaml(text, file);
      if (spec) out.push({ name: file, deployment: spec });
    } else {
      const { spec } = loadEndpointYaml(text, file);
      if (spec) out.push({ name: file, endpoint: spec });
    }
  }
  return out;
}

const all = specs();

test('there are specs of every kind to round-trip', () => {
  assert.ok(all.filter((s) => s.endpoint?.kind === 'managed').length >= 2);
  assert.ok(all.some((s) => s.endpoint?.kind === 'kubernetes'));
  assert.ok(all.filter((s) => s.deployment?.type === 'managed').length >= 4);
  assert.ok(all.filter((s) => s.deployment?.type === 'kubernetes').length >= 3);
});

test('parse(dump(spec)) deep-equals spec, as an object (no base directory needed: paths are absolute)', () => {
  for (const { name, endpoint, deployment } of all) {
    const r = endpoint ? parseEndpointObject(dumpEndpoint(endpoint), { source: name }) : parseDeploymentObject(dumpDeployment(deployment!), { source: name });
    assert.deepEqual(r.problems, [], name);
    assert.deepEqual(r.spec, endpoint ?? deployment, name);
  }
});

test('parse(dump(spec)) deep-equals spec, through YAML text and JSON text', () => {
  for (const { name, endpoint, deployment } of all) {
    const doc = endpoint ? dumpEndpoint(endpoint) : dumpDeployment(deployment!);
    const yaml = stringify(doc);
    const viaYaml = endpoint ? loadEndpointYaml(yaml, '/elsewhere/x.yml') : loadDeploymentYaml(yaml, '/elsewhere/x.yml');
    assert.deepEqual(viaYaml.spec, endpoint ?? deployment, name);
    const json = JSON.parse(JSON.stringify(doc));
    const viaJson = endpoint ? parseEndpointObject(json, { source: name }) : parseDeploymentObject(json, { source: name });
    assert.deepEqual(viaJson.spec, endpoint ?? deployment, name);
  }
});

test('dump writes the snake_case document, only keys with values', () => {
  const { spec } = loadEndpointYaml('name: my-endpoint\ncompute: azureml:k8s\n', 'e.yml');
  assert.deepEqual(dumpEndpoint(spec!), { name: 'my-endpoint', auth_mode: 'key', compute: 'azureml:k8s' });
  const full = all.find((s) => s.name.endsWith('/endpoint-full.in.yaml'))!.endpoint!;
  assert.deepEqual(dumpEndpoint(full), {
    name: 'My-Endpoint-1',
    description: 'every endpoint key, with the spellings Azure accepts',
    tags: { team: 'vision', cost_center: '4711', preview: 'True', ratio: '1.50' },
    properties: { owner: 'alice' },
    auth_mode: 'aml_token',
    identity: {
      type: 'user_assigned',
      user_assigned_identities: [{ resource_id: '/subscriptions/x/resourceGroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uai' }],
    },
    traffic: { blue: 90, green: 10 },
    mirror_traffic: { shadow: 20 },
    public_network_access: 'disabled',
  });
  const registered = all.find((s) => s.name.endsWith('/deployment-registered.in.yaml'))!.deployment!;
  const d = dumpDeployment(registered);
  assert.equal(d.model, 'azureml:my-model:3');
  assert.equal(d.environment, 'azureml:sklearn-env@latest');
  assert.equal(d.type, 'managed');
});

test('the CLI update path: dump, apply --set, parse', () => {
  const blue = all.find((s) => s.name.endsWith('managed/sample/blue-deployment.in.yaml'))!.deployment!;
  const doc = dumpDeployment(blue);
  assert.deepEqual(applyOverrides(doc, ['instance_count=3', 'request_settings.max_concurrent_requests_per_instance=4', 'environment_variables.A=1']), []);
  const { spec, problems } = parseDeploymentObject(doc, { source: 'update' });
  assert.deepEqual(problems, []);
  assert.deepEqual(spec, {
    ...blue,
    instanceCount: 3,
    requestSettings: { ...blue.requestSettings, maxConcurrentRequestsPerInstance: 4 },
    environmentVariables: { A: '1' },
  });
  const bad = dumpDeployment(blue);
  assert.deepEqual(applyOverrides(bad, ['oops']).map((p) => p.path), ['--set']);
});

test('applyOverrides changes the document in place and keeps odd keys plain', () => {
  const doc: Record<string, unknown> = { name: 'a', tags: { x: '1' } };
  applyOverrides(doc, ['tags.y=2', 'auth_mode=key', '__proto__.polluted=1']);
  assert.deepEqual(doc, { name: 'a', tags: { x: '1', y: 2 }, auth_mode: 'key', ['__proto__']: { polluted: 1 } });
  assert.equal(Object.getPrototypeOf(doc), Object.prototype);
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
});

test('a dump shares nothing with the spec', () => {
  const full = all.find((s) => s.name.endsWith('/deployment-full.in.yaml'))!.deployment!;
  const before = structuredClone(full);
  const doc = dumpDeployment(full) as { tags: Record<string, string>; data_collector: { collections: Record<string, unknown> } };
  doc.tags.changed = 'yes';
  doc.data_collector.collections.changed = {};
  assert.deepEqual(full, before);
});
