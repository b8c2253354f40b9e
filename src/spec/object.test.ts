// Plain objects (REST bodies) go through the same rules as YAML; only positions differ.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { loadDeploymentYaml, loadEndpointYaml, parseDeploymentObject, parseEndpointObject } from './index.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

test('an object gives the same problems as the same YAML, without line and column', () => {
  for (const name of ['deployment-broken', 'deployment-more-broken', 'deployment-k8s-broken', 'endpoint-broken', 'endpoint-k8s-broken', 'endpoint-traffic-rules']) {
    const file = join(testdata, `${name}.in.yaml`);
    const text = readFileSync(file, 'utf8');
    const isDeployment = name.startsWith('deployment');
    const fromYaml = isDeployment ? loadDeploymentYaml(text, file) : loadEndpointYaml(text, file);
    const obj = parse(text, { uniqueKeys: false });
    const ctx = { source: 'PUT /test', baseDir: testdata };
    const fromObject = isDeployment ? parseDeploymentObject(obj, ctx) : parseEndpointObject(obj, ctx);
    const strip = (ps: typeof fromYaml.problems) => ps.filter((p) => !p.message.startsWith('invalid YAML')).map((p) => `${p.path}: ${p.message}`).sort();
    assert.deepEqual(strip(fromObject.problems), strip(fromYaml.problems), name);
    assert.ok(fromObject.problems.every((p) => p.file === 'PUT /test' && p.line === undefined && p.column === undefined));
  }
});

test('an object gives the same spec as the same YAML', () => {
  for (const name of ['deployment-full', 'deployment-k8s-autoscale', 'endpoint-full']) {
    const file = join(testdata, `${name}.in.yaml`);
    const text = readFileSync(file, 'utf8');
    const ctx = { source: 'test', baseDir: testdata };
    if (name.startsWith('deployment')) {
      const a = loadDeploymentYaml(text, file).spec!;
      const b = parseDeploymentObject(parse(text), ctx).spec!;
      // JSON cannot say `1.10` or `0.50`: as numbers these read 1.1 and 0.5; everything else is identical.
      assert.deepEqual({ ...b, model: undefined, environmentVariables: undefined }, { ...a, model: undefined, environmentVariables: undefined });
    } else {
      const a = loadEndpointYaml(text, file).spec!;
      const b = parseEndpointObject(parse(text), ctx).spec!;
      assert.deepEqual(a.tags.ratio, '1.50');
      assert.deepEqual(b.tags.ratio, '1.5');
      assert.deepEqual({ ...b, tags: undefined }, { ...a, tags: undefined });
    }
  }
});

test('relative paths need a base directory when the input is an object', () => {
  const doc = {
    name: 'blue',
    endpoint_name: 'my-endpoint',
    model: { path: 'model-1/model' },
    instance_type: 'Standard_DS3_v2',
    instance_count: 1,
  };
  assert.deepEqual(parseDeploymentObject(doc, { source: 'api' }).problems, [
    { file: 'api', path: 'model.path', message: "relative path 'model-1/model' cannot be resolved here (no base directory); give an absolute path" },
  ]);
  const model = parseDeploymentObject(doc, { source: 'api', baseDir: testdata }).spec?.model;
  assert.deepEqual(model, { kind: 'inline', path: join(testdata, 'model-1/model'), type: 'custom_model' });
  const absolute = parseDeploymentObject({ ...doc, model: { path: join(testdata, 'model-1/model/') } }, { source: 'api' }).spec?.model;
  assert.deepEqual(absolute, model);
  // References are not paths and need nothing.
  const remote = { ...doc, model: { path: 'azureml://datastores/workspaceblobstore/paths/model' }, code_configuration: { code: 'https://example.com/code.zip', scoring_script: 'score.py' } };
  assert.deepEqual(parseDeploymentObject(remote, { source: 'api' }).problems, []);
});

test('a body that is not a mapping is one problem', () => {
  for (const body of [null, [], 'name: x', 42]) {
    const { spec, problems } = parseEndpointObject(body, { source: 'api' });
    assert.equal(spec, undefined);
    assert.equal(problems.length, 1);
    assert.equal(problems[0].path, '');
    assert.match(problems[0].message, /^expected a mapping, got /);
  }
});

test('keys that look like prototype keys stay plain keys', () => {
  const body = JSON.parse('{"name": "my-endpoint", "tags": {"__proto__": "x", "constructor": "y"}}');
  const { spec } = parseEndpointObject(body, { source: 'api' });
  assert.deepEqual(Object.keys(spec!.tags), ['__proto__', 'constructor']);
  assert.equal(Object.getPrototypeOf(spec!.tags), Object.prototype);
  assert.deepEqual(parseEndpointObject(JSON.parse('{"name": "my-endpoint", "__proto__": {"auth_mode": "x"}}'), { source: 'api' }).problems, [
    { file: 'api', path: '__proto__', message: "unknown key '__proto__'" },
  ]);
});

test('undefined properties are absent, as in JSON', () => {
  assert.deepEqual(parseEndpointObject({ name: 'my-endpoint', description: undefined }, { source: 'api' }).problems, []);
});
