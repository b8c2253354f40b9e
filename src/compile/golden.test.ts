// Golden files for compile/ (DESIGN.md "compile/"): every testdata/<case>.in.yaml → <case>.out.json.
//
// An input file is one YAML document with these top-level keys:
//   endpoint:     one endpoint document (Azure online-endpoint YAML), or
//   endpoints:    a list of them
//   deployments:  a list of deployment documents (Azure online-deployment YAML)
//   ready:        { "<endpoint>/<deployment>": [socket path, ...] } ready instances, in order; the
//                 instance id is the socket file's name without ".sock"
//   assets:       { models: [ModelAsset & {archived?}], environments: [EnvironmentAsset & {archived?}] }
//                 registered in this order (relative paths against testdata/); plan-* cases with this key
//                 compile with an asset lookup over them, cases without it compile with none
//   resolved:     { "<deployment>": {model?: {name, version}, environment?: {name, version}} } the
//                 versions recorded when the deployment was created (DeploymentSpec.resolvedAssets)
// Cases named plan-* compile every deployment with compileInstancePlan (a refused one gives its error);
// cases named routing-* compile the endpoints, deployments and ready instances with compileRoutingTable.
// Documents are read with the real spec loader, relative paths resolved against testdata/ (tiny model and
// code files live in testdata/assets). Endpoint keys are fixed, derived from the endpoint name.
// The absolute testdata path is written as <testdata>. UPDATE_GOLDEN=1 rewrites the .out.json files.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, isAbsolute, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { InfergateError } from '../errors/index.js';
import type { InstanceAddress, InstancePlan } from '../ir/types.js';
import { parseDeploymentObject, parseEndpointObject } from '../spec/index.js';
import type { DeploymentSpec, EndpointSpec } from '../spec/types.js';
import { assetLookup, MemoryStateStore, type AssetLookup } from '../store/index.js';
import type { EndpointKeys, EnvironmentAsset, ModelAsset } from '../store/types.js';
import { compileInstancePlan, compileRoutingTable, revisionOf } from './index.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

type Archivable<T> = Partial<T> & { name: string; version: string; archived?: boolean };

interface Input {
  endpoint?: unknown;
  endpoints?: unknown[];
  deployments?: unknown[];
  ready?: Record<string, string[]>;
  assets?: { models?: Archivable<ModelAsset>[]; environments?: Archivable<EnvironmentAsset>[] };
  resolved?: Record<string, DeploymentSpec['resolvedAssets']>;
}

function assetLookupOf(input: Input['assets']): AssetLookup {
  const store = new MemoryStateStore();
  const abs = (p: string | undefined) => (p === undefined || isAbsolute(p) ? p : join(testdata, p));
  for (const { archived, ...m } of input?.models ?? []) {
    store.putAsset('model', { tags: {}, properties: {}, type: 'custom_model', ...m, path: abs(m.path)! });
    if (archived) store.setAssetArchived('model', m.name, m.version, true);
  }
  for (const { archived, ...e } of input?.environments ?? []) {
    store.putAsset('environment', { tags: {}, osType: 'linux', ...e, ...(e.condaFile ? { condaFile: abs(e.condaFile) } : {}) });
    if (archived) store.setAssetArchived('environment', e.name, e.version, true);
  }
  return assetLookup(store);
}

function keysFor(endpoint: string): EndpointKeys {
  return {
    primaryKey: `${endpoint}-primary-key`,
    secondaryKey: `${endpoint}-secondary-key`,
    tokenSecret: Buffer.from(`${endpoint}-token-secret`).toString('base64url'),
  };
}

function loadEndpoint(doc: unknown, source: string): EndpointSpec {
  const { spec, problems } = parseEndpointObject(doc, { source, baseDir: testdata });
  assert.deepEqual(problems, [], `${source}: the endpoint document must be valid`);
  return spec!;
}

function loadDeployment(doc: unknown, source: string): DeploymentSpec {
  const { spec, problems } = parseDeploymentObject(doc, { source, baseDir: testdata });
  assert.deepEqual(problems, [], `${source}: the deployment document must be valid`);
  return spec!;
}

function compileCase(name: string, input: Input): unknown {
  const source = `${name}.in.yaml`;
  const deployments = (input.deployments ?? []).map((d, i) => loadDeployment(d, `${source} deployments[${i}]`));
  if (name.startsWith('plan-')) {
    const assets = input.assets ? assetLookupOf(input.assets) : undefined;
    return {
      plans: deployments.map((d) => {
        const resolvedAssets = input.resolved?.[d.name];
        try {
          return portable(compileInstancePlan(resolvedAssets ? { ...d, resolvedAssets } : d, assets));
        } catch (e) {
          assert.ok(e instanceof InfergateError, `unexpected error: ${(e as Error).stack}`);
          return { deployment: d.name, error: { code: e.code, message: e.message } };
        }
      }),
    };
  }
  const docs = input.endpoints ?? (input.endpoint !== undefined ? [input.endpoint] : []);
  const endpoints = docs.map((doc, i) => {
    const spec = loadEndpoint(doc, `${source} endpoints[${i}]`);
    return { spec, keys: keysFor(spec.name) };
  });
  const ready = new Map<string, InstanceAddress[]>(
    Object.entries(input.ready ?? {}).map(([k, paths]) => [
      k,
      paths.map((socketPath) => ({ instanceId: basename(socketPath, '.sock'), transport: 'framed' as const, socketPath })),
    ]),
  );
  return { routing: compileRoutingTable(7, { endpoints, deployments, ready }) };
}

/**
 * A plan's revision hashes absolute paths, which differ between checkouts: the golden holds the revision
 * of the plan with the testdata folder written as <testdata>, the same on every machine.
 */
function portable(plan: InstancePlan): InstancePlan {
  const { revision: _r, ...rest } = JSON.parse(JSON.stringify(plan).replaceAll(testdata, '<testdata>')) as InstancePlan;
  return { ...rest, revision: revisionOf(rest) };
}

const render = (v: unknown): string => JSON.stringify(v, null, 2).replaceAll(testdata, '<testdata>') + '\n';

const cases = readdirSync(testdata)
  .filter((f) => f.endsWith('.in.yaml'))
  .sort();

test('there are golden cases for plans and routing tables', () => {
  assert.ok(cases.some((c) => c.startsWith('plan-')));
  assert.ok(cases.some((c) => c.startsWith('routing-')));
});

for (const file of cases) {
  const name = file.replace(/\.in\.yaml$/, '');
  test(`golden ${name}`, () => {
    assert.ok(name.startsWith('plan-') || name.startsWith('routing-'), `${file}: case names start with plan- or routing-`);
    const input = parse(readFileSync(join(testdata, file), 'utf8')) as Input;
    const actual = render(compileCase(name, input));
    const golden = join(testdata, `${name}.out.json`);
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, actual);
    assert.ok(existsSync(golden), `${golden} is missing; run with UPDATE_GOLDEN=1 to create it`);
    assert.equal(actual, readFileSync(golden, 'utf8'));
  });
}
