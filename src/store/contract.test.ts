// The StateStore contract, run against every implementation, so the in-memory store that unit tests use
// cannot drift from the SQLite store that production uses.

import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { InfergateError } from '../errors/index.js';
import { DEFAULT_PROBE, DEFAULT_REQUEST_SETTINGS, type DeploymentSpec, type EndpointSpec } from '../spec/types.js';
import type { AutoscaleEvent, AutoscaleSetting } from '../spec/autoscale.js';
import {
  AUTOSCALE_HISTORY_LIMIT,
  MemoryStateStore,
  openStateStore,
  SCHEMA_VERSION,
  SqliteStateStore,
  type Clock,
  type EndpointKeys,
  type EnvironmentAsset,
  type ModelAsset,
  type StateStore,
  type StoreOptions,
} from './index.js';

function endpointSpec(name: string, overrides: Partial<EndpointSpec> = {}): EndpointSpec {
  return {
    name,
    kind: 'managed',
    tags: {},
    properties: {},
    authMode: 'key',
    traffic: {},
    mirrorTraffic: {},
    publicNetworkAccess: 'enabled',
    ...overrides,
  };
}

function deploymentSpec(endpointName: string, name: string, overrides: Partial<DeploymentSpec> = {}): DeploymentSpec {
  return {
    name,
    endpointName,
    type: 'managed',
    tags: {},
    properties: {},
    model: { kind: 'inline', path: '/models/sklearn_regression_model.pkl', type: 'custom_model' },
    codeConfiguration: { code: '/code', scoringScript: 'score.py' },
    environmentVariables: {},
    instanceType: 'Standard_DS3_v2',
    instanceCount: 1,
    appInsightsEnabled: false,
    scaleSettings: { type: 'default' },
    requestSettings: { ...DEFAULT_REQUEST_SETTINGS },
    livenessProbe: { ...DEFAULT_PROBE },
    readinessProbe: { ...DEFAULT_PROBE },
    egressPublicNetworkAccess: 'enabled',
    ...overrides,
  };
}

function modelAsset(name: string, version: string, overrides: Partial<ModelAsset> = {}): ModelAsset {
  return { name, version, type: 'custom_model', path: `/ws/assets/models/${name}/${version}/model`, tags: {}, properties: {}, ...overrides };
}

function environmentAsset(name: string, version: string, overrides: Partial<EnvironmentAsset> = {}): EnvironmentAsset {
  return { name, version, tags: {}, osType: 'linux', image: 'python:3.11-slim', ...overrides };
}

function autoscaleSetting(name: string, endpoint: string, deployment: string, overrides: Partial<AutoscaleSetting> = {}): AutoscaleSetting {
  return {
    id: `/workspaces/ws/autoscalesettings/${name}`,
    name,
    location: 'local',
    type: 'Microsoft.Insights/autoscaleSettings',
    targetResourceUri: `/workspaces/ws/onlineEndpoints/${endpoint}/deployments/${deployment}`,
    enabled: true,
    profiles: [{ name: 'default', capacity: { minimum: '1', maximum: '3', default: '1' }, rules: [] }],
    notifications: [],
    tags: {},
    ...overrides,
  };
}

function autoscaleEvent(setting: string, n: number): AutoscaleEvent {
  return { time: at(n), setting, profile: 'default', outcome: 'unchanged', from: 1, to: 1, message: `event ${n}` };
}

const KEYS: EndpointKeys = { primaryKey: 'pk-secret', secondaryKey: 'sk-secret', tokenSecret: 'dG9rZW4tc2VjcmV0' };

/** A clock that moves one second per reading, so every write gets a distinct, predictable timestamp. */
function steppingClock(): Clock {
  let t = Date.parse('2026-01-01T00:00:00.000Z');
  return () => new Date((t += 1000));
}
const at = (seconds: number): string => new Date(Date.parse('2026-01-01T00:00:00.000Z') + seconds * 1000).toISOString();

interface Harness {
  store: StateStore;
  /** Closes the store and opens it again on the same data; only persistent stores have it. */
  reopen?: () => StateStore;
  cleanup: () => void;
}

function contractSuite(name: string, create: (options: StoreOptions) => Harness, { persistent }: { persistent: boolean }): void {
  describe(`StateStore contract: ${name}`, () => {
    let h: Harness;
    let store: StateStore;
    beforeEach(() => {
      h = create({ clock: steppingClock() });
      store = h.store;
    });
    afterEach(() => h.cleanup());

    describe('computes', () => {
      const attach = (name: string) => ({ name, type: 'kubernetes' as const, kubeconfig: 'apiVersion: v1\nkind: Config\n', namespace: 'ml', registry: 'registry.example:5000' });

      test('attach, show (case-insensitively), list by name, detach', () => {
        assert.deepEqual(store.listComputes(), []);
        const b = store.putCompute({ ...attach('k8s-b'), context: 'ctx' });
        store.putCompute(attach('K8s-A'));
        assert.equal(b.createdAt, b.updatedAt);
        assert.equal(store.getCompute('K8S-B')?.context, 'ctx');
        assert.equal(store.getCompute('k8s-b')?.kubeconfig, 'apiVersion: v1\nkind: Config\n');
        assert.equal(store.getCompute('k8s-a')?.context, undefined, 'an absent context stays absent');
        assert.deepEqual(store.listComputes().map((c) => c.name), ['K8s-A', 'k8s-b']);
        assert.equal(store.deleteCompute('K8S-A'), true);
        assert.equal(store.deleteCompute('k8s-a'), false);
        assert.deepEqual(store.listComputes().map((c) => c.name), ['k8s-b']);
      });

      test('a name attached already is refused with ComputeAlreadyExists and changes nothing', () => {
        store.putCompute(attach('k8s'));
        assert.throws(() => store.putCompute({ ...attach('K8S'), namespace: 'other' }), (e: unknown) => e instanceof InfergateError && e.code === 'ComputeAlreadyExists');
        assert.equal(store.getCompute('k8s')?.namespace, 'ml');
      });

      test('a compute attached inside a failed transaction is not kept', () => {
        assert.throws(() => store.transaction(() => {
          store.putCompute(attach('k8s'));
          throw new Error('boom');
        }), /boom/);
        assert.equal(store.getCompute('k8s'), undefined);
      });

      if (persistent) {
        test('computes survive a reopen', () => {
          store.putCompute(attach('k8s'));
          store = h.reopen!();
          assert.equal(store.getCompute('k8s')?.registry, 'registry.example:5000');
        });
      }
    });

    test('an empty store has nothing', () => {
      assert.equal(store.getEndpoint('nope'), undefined);
      assert.equal(store.getDeployment('nope', 'blue'), undefined);
      assert.deepEqual(store.listEndpoints(), []);
      assert.deepEqual(store.listDeployments(), []);
      assert.deepEqual(store.listDeployments('nope'), []);
    });

    test('putEndpoint creates a record at generation 1 with status Creating, observedGeneration 0', () => {
      const spec = endpointSpec('ep1', { description: 'first', tags: { team: 'a' }, traffic: { blue: 100 } });
      const put = store.putEndpoint(spec, KEYS);
      const expected = {
        spec,
        keys: KEYS,
        generation: 1,
        createdAt: at(1),
        updatedAt: at(1),
        status: { provisioningState: 'Creating', observedGeneration: 0, updatedAt: at(1) },
      };
      assert.deepEqual(put, expected);
      assert.deepEqual(store.getEndpoint('ep1'), expected);
    });

    test('putEndpoint uses the given initial status for a new record', () => {
      const put = store.putEndpoint(endpointSpec('ep1'), KEYS, { provisioningState: 'Failed', error: { code: 'X', message: 'y' } });
      assert.deepEqual(put.status, { provisioningState: 'Failed', error: { code: 'X', message: 'y' }, observedGeneration: 0, updatedAt: at(1) });
    });

    test('putEndpoint on an existing record bumps generation, keeps createdAt and status, replaces spec and keys', () => {
      store.putEndpoint(endpointSpec('ep1'), KEYS);
      store.setEndpointStatus('ep1', { provisioningState: 'Succeeded', observedGeneration: 1 });
      const newKeys = { ...KEYS, primaryKey: 'rotated' };
      const put = store.putEndpoint(endpointSpec('ep1', { traffic: { blue: 90, green: 10 } }), newKeys, { provisioningState: 'Failed' });
      assert.equal(put.generation, 2);
      assert.equal(put.createdAt, at(1));
      assert.equal(put.updatedAt, at(3));
      assert.deepEqual(put.spec.traffic, { blue: 90, green: 10 });
      assert.equal(put.keys.primaryKey, 'rotated');
      assert.deepEqual(put.status, { provisioningState: 'Succeeded', observedGeneration: 1, updatedAt: at(2) });
      assert.equal(store.putEndpoint(endpointSpec('ep1'), newKeys).generation, 3);
      assert.deepEqual(store.getEndpoint('ep1'), { ...put, spec: endpointSpec('ep1'), generation: 3, updatedAt: at(4) });
    });

    test('setEndpointStatus changes only the status', () => {
      const before = store.putEndpoint(endpointSpec('ep1'), KEYS);
      store.setEndpointStatus('ep1', { provisioningState: 'Failed', error: { code: 'ResourceNotReady', message: 'boom' }, observedGeneration: 1 });
      const after = store.getEndpoint('ep1')!;
      assert.deepEqual(after.status, { provisioningState: 'Failed', error: { code: 'ResourceNotReady', message: 'boom' }, observedGeneration: 1, updatedAt: at(2) });
      assert.deepEqual({ ...after, status: before.status }, before);
      // A status without error clears the previous error.
      store.setEndpointStatus('ep1', { provisioningState: 'Succeeded', observedGeneration: 1 });
      assert.deepEqual(store.getEndpoint('ep1')!.status, { provisioningState: 'Succeeded', observedGeneration: 1, updatedAt: at(3) });
    });

    test('setEndpointStatus for an unknown endpoint is ignored and creates nothing', () => {
      store.setEndpointStatus('ghost', { provisioningState: 'Succeeded', observedGeneration: 1 });
      assert.equal(store.getEndpoint('ghost'), undefined);
      assert.deepEqual(store.listEndpoints(), []);
    });

    test('listEndpoints is ordered by name', () => {
      for (const n of ['charlie', 'alpha', 'bravo']) store.putEndpoint(endpointSpec(n), KEYS);
      assert.deepEqual(store.listEndpoints().map((e) => e.spec.name), ['alpha', 'bravo', 'charlie']);
    });

    test('putDeployment creates, then bumps generation and keeps createdAt and status', () => {
      store.putEndpoint(endpointSpec('ep1'), KEYS);
      const spec = deploymentSpec('ep1', 'blue');
      const created = store.putDeployment(spec);
      assert.deepEqual(created, {
        spec,
        generation: 1,
        createdAt: at(2),
        updatedAt: at(2),
        status: { provisioningState: 'Creating', observedGeneration: 0, updatedAt: at(2) },
      });
      assert.deepEqual(store.getDeployment('ep1', 'blue'), created);

      store.setDeploymentStatus('ep1', 'blue', { provisioningState: 'Succeeded', observedGeneration: 1 });
      const updated = store.putDeployment(deploymentSpec('ep1', 'blue', { instanceCount: 3 }), { provisioningState: 'Failed' });
      assert.equal(updated.generation, 2);
      assert.equal(updated.createdAt, at(2));
      assert.equal(updated.updatedAt, at(4));
      assert.equal(updated.spec.instanceCount, 3);
      assert.deepEqual(updated.status, { provisioningState: 'Succeeded', observedGeneration: 1, updatedAt: at(3) });
    });

    test('putDeployment uses the given initial status for a new record', () => {
      store.putEndpoint(endpointSpec('ep1'), KEYS);
      assert.equal(store.putDeployment(deploymentSpec('ep1', 'blue'), { provisioningState: 'Updating' }).status.provisioningState, 'Updating');
    });

    test('setDeploymentStatus changes only the status, and ignores unknown deployments', () => {
      store.putEndpoint(endpointSpec('ep1'), KEYS);
      const before = store.putDeployment(deploymentSpec('ep1', 'blue'));
      store.setDeploymentStatus('ep1', 'blue', { provisioningState: 'Failed', error: { code: 'UserScriptInitFailed', message: 'tb' }, observedGeneration: 1 });
      const after = store.getDeployment('ep1', 'blue')!;
      assert.deepEqual(after.status, { provisioningState: 'Failed', error: { code: 'UserScriptInitFailed', message: 'tb' }, observedGeneration: 1, updatedAt: at(3) });
      assert.deepEqual({ ...after, status: before.status }, before);
      store.setDeploymentStatus('ep1', 'green', { provisioningState: 'Succeeded', observedGeneration: 1 });
      store.setDeploymentStatus('ghost', 'blue', { provisioningState: 'Succeeded', observedGeneration: 1 });
      assert.equal(store.getDeployment('ep1', 'green'), undefined);
      assert.equal(store.listDeployments().length, 1);
    });

    test('putDeployment under a missing endpoint throws EndpointNotFound and writes nothing', () => {
      assert.throws(
        () => store.putDeployment(deploymentSpec('ghost', 'blue')),
        (err: unknown) => err instanceof InfergateError && err.code === 'EndpointNotFound',
      );
      assert.deepEqual(store.listDeployments(), []);
    });

    test('listDeployments is ordered by endpoint then name, and filters by endpoint', () => {
      store.putEndpoint(endpointSpec('zeta'), KEYS);
      store.putEndpoint(endpointSpec('alpha'), KEYS);
      store.putDeployment(deploymentSpec('zeta', 'blue'));
      store.putDeployment(deploymentSpec('alpha', 'green'));
      store.putDeployment(deploymentSpec('alpha', 'blue'));
      const names = (ds: { spec: DeploymentSpec }[]) => ds.map((d) => `${d.spec.endpointName}/${d.spec.name}`);
      assert.deepEqual(names(store.listDeployments()), ['alpha/blue', 'alpha/green', 'zeta/blue']);
      assert.deepEqual(names(store.listDeployments('alpha')), ['alpha/blue', 'alpha/green']);
      assert.deepEqual(names(store.listDeployments('zeta')), ['zeta/blue']);
    });

    test('deleteDeployment removes one deployment and says whether it existed', () => {
      store.putEndpoint(endpointSpec('ep1'), KEYS);
      store.putDeployment(deploymentSpec('ep1', 'blue'));
      store.putDeployment(deploymentSpec('ep1', 'green'));
      assert.equal(store.deleteDeployment('ep1', 'blue'), true);
      assert.equal(store.deleteDeployment('ep1', 'blue'), false);
      assert.equal(store.deleteDeployment('ghost', 'blue'), false);
      assert.equal(store.getDeployment('ep1', 'blue'), undefined);
      assert.deepEqual(store.listDeployments().map((d) => d.spec.name), ['green']);
      // Re-created, it starts over: generation 1, fresh status.
      store.setDeploymentStatus('ep1', 'green', { provisioningState: 'Succeeded', observedGeneration: 1 });
      const again = store.putDeployment(deploymentSpec('ep1', 'blue'));
      assert.equal(again.generation, 1);
      assert.equal(again.status.provisioningState, 'Creating');
    });

    test('deleteEndpoint cascades to its deployments and their statuses, and leaves others alone', () => {
      store.putEndpoint(endpointSpec('ep1'), KEYS);
      store.putEndpoint(endpointSpec('ep2'), KEYS);
      store.putDeployment(deploymentSpec('ep1', 'blue'));
      store.putDeployment(deploymentSpec('ep2', 'blue'));
      store.setEndpointStatus('ep1', { provisioningState: 'Succeeded', observedGeneration: 1 });
      store.setDeploymentStatus('ep1', 'blue', { provisioningState: 'Succeeded', observedGeneration: 1 });

      assert.equal(store.deleteEndpoint('ep1'), true);
      assert.equal(store.deleteEndpoint('ep1'), false);
      assert.equal(store.getEndpoint('ep1'), undefined);
      assert.deepEqual(store.listDeployments('ep1'), []);
      assert.deepEqual(store.listDeployments().map((d) => d.spec.endpointName), ['ep2']);

      // Nothing of the old records survives: the re-created ones start fresh.
      const ep = store.putEndpoint(endpointSpec('ep1'), KEYS);
      const dep = store.putDeployment(deploymentSpec('ep1', 'blue'));
      assert.equal(ep.generation, 1);
      assert.equal(ep.status.provisioningState, 'Creating');
      assert.equal(dep.generation, 1);
      assert.equal(dep.status.provisioningState, 'Creating');
    });

    test('transaction commits every write and returns fn’s value', () => {
      const result = store.transaction(() => {
        store.putEndpoint(endpointSpec('ep1'), KEYS);
        store.putDeployment(deploymentSpec('ep1', 'blue'));
        return 42;
      });
      assert.equal(result, 42);
      assert.ok(store.getEndpoint('ep1'));
      assert.ok(store.getDeployment('ep1', 'blue'));
    });

    test('transaction rolls back every write when fn throws', () => {
      store.putEndpoint(endpointSpec('kept'), KEYS);
      const before = store.getEndpoint('kept');
      assert.throws(
        () =>
          store.transaction(() => {
            store.putEndpoint(endpointSpec('ep1'), KEYS);
            store.putDeployment(deploymentSpec('ep1', 'blue'));
            store.putEndpoint(endpointSpec('kept', { description: 'changed' }), KEYS);
            store.setEndpointStatus('kept', { provisioningState: 'Failed', observedGeneration: 9 });
            store.deleteEndpoint('kept');
            throw new Error('abort');
          }),
        /abort/,
      );
      assert.equal(store.getEndpoint('ep1'), undefined);
      assert.deepEqual(store.listDeployments(), []);
      assert.deepEqual(store.listEndpoints(), [before]);
    });

    test('nested transactions: inner writes commit with the outer one', () => {
      store.transaction(() => {
        store.putEndpoint(endpointSpec('ep1'), KEYS);
        store.transaction(() => store.putDeployment(deploymentSpec('ep1', 'blue')));
      });
      assert.ok(store.getDeployment('ep1', 'blue'));
    });

    test('nested transactions: an outer throw undoes the inner writes too', () => {
      assert.throws(() =>
        store.transaction(() => {
          store.transaction(() => store.putEndpoint(endpointSpec('ep1'), KEYS));
          throw new Error('abort');
        }),
      );
      assert.equal(store.getEndpoint('ep1'), undefined);
    });

    test('nested transactions: an inner throw caught by the outer undoes only the inner writes (savepoint)', () => {
      store.transaction(() => {
        store.putEndpoint(endpointSpec('ep1'), KEYS);
        assert.throws(() =>
          store.transaction(() => {
            store.putDeployment(deploymentSpec('ep1', 'blue'));
            throw new Error('inner');
          }),
        );
        store.putDeployment(deploymentSpec('ep1', 'green'));
      });
      assert.ok(store.getEndpoint('ep1'));
      assert.deepEqual(store.listDeployments().map((d) => d.spec.name), ['green']);
    });

    test('transaction refuses an async function and writes nothing', () => {
      assert.throws(
        () =>
          store.transaction(() => {
            store.putEndpoint(endpointSpec('ep1'), KEYS);
            return Promise.resolve(1);
          }),
        /cannot return a promise/,
      );
      assert.equal(store.getEndpoint('ep1'), undefined);
    });

    test('records are copies: mutating a returned or a given object does not change the store', () => {
      const spec = endpointSpec('ep1', { tags: { a: '1' } });
      const keys = { ...KEYS };
      const put = store.putEndpoint(spec, keys);
      spec.tags.a = 'mutated-input';
      keys.primaryKey = 'mutated-input';
      put.spec.tags.a = 'mutated-output';
      put.keys.primaryKey = 'mutated-output';
      put.status.provisioningState = 'Failed';
      const got = store.getEndpoint('ep1')!;
      got.spec.traffic.blue = 100;
      store.listEndpoints()[0].spec.tags.b = '2';

      const now = store.getEndpoint('ep1')!;
      assert.deepEqual(now.spec, endpointSpec('ep1', { tags: { a: '1' } }));
      assert.deepEqual(now.keys, KEYS);
      assert.equal(now.status.provisioningState, 'Creating');

      const dspec = deploymentSpec('ep1', 'blue');
      const dput = store.putDeployment(dspec);
      dspec.instanceCount = 7;
      dput.spec.environmentVariables.X = '1';
      store.listDeployments()[0].status.observedGeneration = 99;
      const d = store.getDeployment('ep1', 'blue')!;
      assert.deepEqual(d.spec, deploymentSpec('ep1', 'blue'));
      assert.equal(d.status.observedGeneration, 0);
    });

    test('putAsset registers a version and getAsset returns it, not archived, not anonymous by default', () => {
      const m = modelAsset('my-model', '1', { description: 'd', tags: { a: '1' }, flavors: { python_function: { loader_module: 'x' } } });
      const stored = store.putAsset('model', m);
      assert.deepEqual(stored, { kind: 'model', asset: m, anonymous: false, archived: false, createdAt: at(1), updatedAt: at(1) });
      assert.deepEqual(store.getAsset('model', 'my-model', '1'), stored);
      assert.equal(store.getAsset('model', 'my-model', '2'), undefined);
      assert.equal(store.getAsset('environment', 'my-model', '1'), undefined, 'kinds are separate');
      const e = environmentAsset('my-env', '1', { conda: { dependencies: ['python=3.11'] }, condaFile: '/ws/assets/environments/my-env/1/conda.yaml' });
      assert.deepEqual(store.putAsset('environment', e, { anonymous: true }).asset, e);
      assert.equal(store.getAsset('environment', 'my-env', '1')!.anonymous, true);
    });

    test('an existing name:version throws AssetAlreadyExists and changes nothing (assets are immutable)', () => {
      store.putAsset('model', modelAsset('m', '1'));
      assert.throws(
        () => store.putAsset('model', modelAsset('m', '1', { path: '/elsewhere' })),
        (e: unknown) => e instanceof InfergateError && e.code === 'AssetAlreadyExists' && /m version 1 already exists/.test(e.message),
      );
      assert.equal(store.getAsset('model', 'm', '1')!.asset.path, modelAsset('m', '1').path);
      assert.equal(store.listAssets('model').length, 1);
      // The same name and version of the other kind is a different asset.
      store.putAsset('environment', environmentAsset('m', '1'));
      assert.equal(store.listAssets('environment').length, 1);
    });

    test('listAssets: by name, each name in registration order (not version order); filters by name and kind', () => {
      for (const [n, v] of [['b', '1'], ['a', '2'], ['a', '10'], ['a', '1'], ['b', 'v2']]) store.putAsset('model', modelAsset(n, v));
      store.putAsset('environment', environmentAsset('a', '1'));
      const ids = (list: { asset: { name: string; version: string } }[]) => list.map((x) => `${x.asset.name}:${x.asset.version}`);
      assert.deepEqual(ids(store.listAssets('model')), ['a:2', 'a:10', 'a:1', 'b:1', 'b:v2']);
      assert.deepEqual(ids(store.listAssets('model', 'a')), ['a:2', 'a:10', 'a:1']);
      assert.deepEqual(ids(store.listAssets('model', 'zz')), []);
      assert.deepEqual(ids(store.listAssets('environment')), ['a:1']);
    });

    test('setAssetArchived archives and restores one version, and says whether it existed', () => {
      store.putAsset('model', modelAsset('m', '1'));
      store.putAsset('model', modelAsset('m', '2'));
      assert.equal(store.setAssetArchived('model', 'm', '1', true), true);
      const archived = store.getAsset('model', 'm', '1')!;
      assert.equal(archived.archived, true);
      assert.equal(archived.updatedAt, at(3));
      assert.equal(archived.createdAt, at(1));
      assert.equal(store.getAsset('model', 'm', '2')!.archived, false);
      assert.deepEqual(store.listAssets('model', 'm').map((a) => a.archived), [true, false], 'archived versions are still listed by the store');
      assert.equal(store.setAssetArchived('model', 'm', '1', false), true);
      assert.equal(store.getAsset('model', 'm', '1')!.archived, false);
      assert.equal(store.setAssetArchived('model', 'm', '3', true), false);
      assert.equal(store.setAssetArchived('environment', 'm', '1', true), false);
    });

    test('asset writes roll back with the transaction, and records are copies', () => {
      assert.throws(() =>
        store.transaction(() => {
          store.putAsset('model', modelAsset('m', '1'));
          throw new Error('boom');
        }),
      );
      assert.equal(store.getAsset('model', 'm', '1'), undefined);
      const m = modelAsset('m', '1');
      const put = store.putAsset('model', m);
      m.tags.x = 'changed';
      put.asset.properties.y = 'changed';
      store.listAssets('model')[0].asset.tags.z = 'changed';
      assert.deepEqual(store.getAsset('model', 'm', '1')!.asset, modelAsset('m', '1'));
    });

    test('putToken stores a token with its creation time; getToken finds it by id; listTokens is oldest first', () => {
      const a = store.putToken({ id: 'b1', role: 'owner', hash: 'h1', description: 'local owner' });
      const b = store.putToken({ id: 'a2', role: 'reader', hash: 'h2', expiresAt: at(100) });
      assert.deepEqual(a, { id: 'b1', role: 'owner', hash: 'h1', description: 'local owner', createdAt: at(1) });
      assert.deepEqual(b, { id: 'a2', role: 'reader', hash: 'h2', createdAt: at(2), expiresAt: at(100) });
      assert.deepEqual(store.getToken('a2'), b);
      assert.equal(store.getToken('nope'), undefined);
      assert.deepEqual(store.listTokens().map((t) => t.id), ['b1', 'a2']);
    });

    test('putToken refuses an id that exists and changes nothing', () => {
      store.putToken({ id: 't', role: 'reader', hash: 'h1' });
      assert.throws(() => store.putToken({ id: 't', role: 'owner', hash: 'h2' }));
      assert.deepEqual(store.listTokens().map((t) => [t.id, t.role, t.hash]), [['t', 'reader', 'h1']]);
    });

    test('deleteToken revokes one token and says whether it existed; touchToken records the last use', () => {
      store.putToken({ id: 't1', role: 'contributor', hash: 'h1' });
      store.putToken({ id: 't2', role: 'reader', hash: 'h2' });
      store.touchToken('t2');
      store.touchToken('missing'); // ignored, creates nothing
      assert.equal(store.getToken('t2')!.lastUsedAt, at(3));
      assert.equal(store.getToken('t1')!.lastUsedAt, undefined);
      assert.equal(store.deleteToken('t1'), true);
      assert.equal(store.deleteToken('t1'), false);
      assert.deepEqual(store.listTokens().map((t) => t.id), ['t2']);
    });

    test('token writes roll back with the transaction, and records are copies', () => {
      assert.throws(() =>
        store.transaction(() => {
          store.putToken({ id: 't', role: 'reader', hash: 'h' });
          throw new Error('boom');
        }),
      );
      assert.equal(store.getToken('t'), undefined);
      const put = store.putToken({ id: 't', role: 'reader', hash: 'h' });
      put.role = 'owner';
      store.listTokens()[0].role = 'owner';
      assert.equal(store.getToken('t')!.role, 'reader');
    });

    describe('autoscale settings', () => {
      beforeEach(() => {
        store.putEndpoint(endpointSpec('ep1'), KEYS);
        store.putDeployment(deploymentSpec('ep1', 'blue'));
        store.putDeployment(deploymentSpec('ep1', 'green'));
      });

      test('put, get (names compare case-insensitively), list by name, replace keeps createdAt', () => {
        const put = store.putAutoscaleSetting(autoscaleSetting('scale-blue', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
        assert.deepEqual(put, { setting: autoscaleSetting('scale-blue', 'ep1', 'blue'), endpoint: 'ep1', deployment: 'blue', createdAt: at(4), updatedAt: at(4) });
        assert.deepEqual(store.getAutoscaleSetting('SCALE-BLUE'), put);
        store.putAutoscaleSetting(autoscaleSetting('a-green', 'ep1', 'green'), { endpoint: 'ep1', deployment: 'green' });
        assert.deepEqual(store.listAutoscaleSettings().map((s) => s.setting.name), ['a-green', 'scale-blue']);
        const replaced = store.putAutoscaleSetting(autoscaleSetting('scale-blue', 'ep1', 'blue', { enabled: false }), { endpoint: 'ep1', deployment: 'blue' });
        assert.equal(replaced.setting.enabled, false);
        assert.equal(replaced.createdAt, at(4));
        assert.equal(replaced.updatedAt, at(6));
        assert.equal(store.getAutoscaleSetting('nope'), undefined);
      });

      test('refuses a deployment that does not exist and a second setting for one deployment, writing nothing', () => {
        assert.throws(() => store.putAutoscaleSetting(autoscaleSetting('s', 'ep1', 'red'), { endpoint: 'ep1', deployment: 'red' }), (e: unknown) => e instanceof InfergateError && e.code === 'DeploymentNotFound');
        assert.throws(() => store.putAutoscaleSetting(autoscaleSetting('s', 'ep9', 'red'), { endpoint: 'ep9', deployment: 'red' }), (e: unknown) => e instanceof InfergateError && e.code === 'EndpointNotFound');
        store.putAutoscaleSetting(autoscaleSetting('first', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
        assert.throws(
          () => store.putAutoscaleSetting(autoscaleSetting('second', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' }),
          (e: unknown) => e instanceof InfergateError && e.code === 'AutoscaleSettingConflict' && /'first'/.test(e.message),
        );
        assert.deepEqual(store.listAutoscaleSettings().map((s) => s.setting.name), ['first']);
      });

      test('setting writes roll back with the transaction, and records are copies', () => {
        assert.throws(() =>
          store.transaction(() => {
            store.putAutoscaleSetting(autoscaleSetting('s', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
            store.appendAutoscaleEvent(autoscaleEvent('s', 1));
            throw new Error('boom');
          }),
        );
        assert.equal(store.getAutoscaleSetting('s'), undefined);
        const put = store.putAutoscaleSetting(autoscaleSetting('s', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
        put.setting.profiles[0].capacity.maximum = '99';
        store.getAutoscaleSetting('s')!.setting.profiles.pop();
        assert.equal(store.getAutoscaleSetting('s')!.setting.profiles[0].capacity.maximum, '3');
      });

      test('history: appended in order, the newest kept up to the limit, dropped for an unknown setting', () => {
        store.putAutoscaleSetting(autoscaleSetting('Scale', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
        store.putAutoscaleSetting(autoscaleSetting('other', 'ep1', 'green'), { endpoint: 'ep1', deployment: 'green' });
        for (let i = 1; i <= AUTOSCALE_HISTORY_LIMIT + 5; i++) store.appendAutoscaleEvent(autoscaleEvent(i % 2 ? 'scale' : 'Scale', i));
        store.appendAutoscaleEvent(autoscaleEvent('other', 1));
        store.appendAutoscaleEvent(autoscaleEvent('missing', 1));
        const all = store.listAutoscaleEvents('SCALE');
        assert.equal(all.length, AUTOSCALE_HISTORY_LIMIT);
        assert.equal(all[0].message, 'event 6');
        assert.equal(all.at(-1)!.message, `event ${AUTOSCALE_HISTORY_LIMIT + 5}`);
        assert.deepEqual(store.listAutoscaleEvents('scale', 2).map((e) => e.message), [`event ${AUTOSCALE_HISTORY_LIMIT + 4}`, `event ${AUTOSCALE_HISTORY_LIMIT + 5}`]);
        assert.deepEqual(store.listAutoscaleEvents('other'), [autoscaleEvent('other', 1)]);
        assert.deepEqual(store.listAutoscaleEvents('missing'), []);
        assert.equal(store.deleteAutoscaleSetting('scale'), true);
        assert.equal(store.deleteAutoscaleSetting('scale'), false);
        assert.deepEqual(store.listAutoscaleEvents('scale'), []);
        // A new setting of the same name starts with no history.
        store.putAutoscaleSetting(autoscaleSetting('scale', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
        assert.deepEqual(store.listAutoscaleEvents('scale'), []);
      });

      test('deleting a deployment deletes its setting and history; deleting the endpoint deletes the rest', () => {
        store.putAutoscaleSetting(autoscaleSetting('sb', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
        store.putAutoscaleSetting(autoscaleSetting('sg', 'ep1', 'green'), { endpoint: 'ep1', deployment: 'green' });
        store.appendAutoscaleEvent(autoscaleEvent('sb', 1));
        store.appendAutoscaleEvent(autoscaleEvent('sg', 1));
        assert.equal(store.deleteDeployment('ep1', 'blue'), true);
        assert.deepEqual(store.listAutoscaleSettings().map((s) => s.setting.name), ['sg']);
        assert.deepEqual(store.listAutoscaleEvents('sb'), []);
        // A deployment created again under the same name does not get the old setting back.
        store.putDeployment(deploymentSpec('ep1', 'blue'));
        assert.equal(store.getAutoscaleSetting('sb'), undefined);
        assert.equal(store.deleteEndpoint('ep1'), true);
        assert.deepEqual(store.listAutoscaleSettings(), []);
        assert.deepEqual(store.listAutoscaleEvents('sg'), []);
      });
    });

    if (persistent) {
      test('autoscale settings and their history persist across close and reopen', () => {
        store.putEndpoint(endpointSpec('ep1'), KEYS);
        store.putDeployment(deploymentSpec('ep1', 'blue'));
        store.putAutoscaleSetting(autoscaleSetting('s', 'ep1', 'blue', { enabled: false }), { endpoint: 'ep1', deployment: 'blue' });
        store.appendAutoscaleEvent(autoscaleEvent('s', 1));
        const settings = store.listAutoscaleSettings();
        const reopened = h.reopen!();
        store = reopened;
        assert.deepEqual(reopened.listAutoscaleSettings(), settings);
        assert.deepEqual(reopened.listAutoscaleEvents('s'), [autoscaleEvent('s', 1)]);
        // The cascade holds after a reopen too (foreign keys are on in every connection).
        reopened.deleteEndpoint('ep1');
        assert.deepEqual(reopened.listAutoscaleSettings(), []);
      });

      test('tokens persist across close and reopen', () => {
        store.putToken({ id: 't1', role: 'owner', hash: 'h1', description: 'd' });
        store.putToken({ id: 't2', role: 'reader', hash: 'h2', expiresAt: at(50) });
        store.touchToken('t1');
        const tokens = store.listTokens();
        const reopened = h.reopen!();
        store = reopened;
        assert.deepEqual(reopened.listTokens(), tokens);
      });

      test('assets persist across close and reopen, archived flag and order included', () => {
        store.putAsset('model', modelAsset('m', '2'));
        store.putAsset('model', modelAsset('m', '1'));
        store.putAsset('environment', environmentAsset('CliV2AnonymousEnvironment', 'abc'), { anonymous: true });
        store.setAssetArchived('model', 'm', '2', true);
        const models = store.listAssets('model');
        const environments = store.listAssets('environment');
        const reopened = h.reopen!();
        store = reopened;
        assert.deepEqual(reopened.listAssets('model'), models);
        assert.deepEqual(reopened.listAssets('environment'), environments);
        assert.equal(reopened.getAsset('model', 'm', '2')!.archived, true);
      });

      test('everything persists across close and reopen, keys included', () => {
        store.putEndpoint(endpointSpec('ep1', { traffic: { blue: 100 }, mirrorTraffic: { green: 10 } }), KEYS);
        store.putEndpoint(endpointSpec('ep1', { traffic: { blue: 90, green: 10 }, mirrorTraffic: {} }), KEYS);
        store.putDeployment(deploymentSpec('ep1', 'blue', { instanceCount: 2, environmentVariables: { A: 'b' } }));
        store.putDeployment(deploymentSpec('ep1', 'green'));
        store.setEndpointStatus('ep1', { provisioningState: 'Succeeded', observedGeneration: 2 });
        store.setDeploymentStatus('ep1', 'green', { provisioningState: 'Failed', error: { code: 'ResourceNotReady', message: 'x' }, observedGeneration: 1 });
        const endpoints = store.listEndpoints();
        const deployments = store.listDeployments();

        const reopened = h.reopen!();
        store = reopened;
        assert.deepEqual(reopened.listEndpoints(), endpoints);
        assert.deepEqual(reopened.listDeployments(), deployments);
        assert.deepEqual(reopened.getEndpoint('ep1')!.keys, KEYS);
        assert.equal(reopened.getEndpoint('ep1')!.generation, 2);
      });
    }
  });
}

contractSuite('MemoryStateStore', (options) => {
  const store = new MemoryStateStore(options);
  return { store, cleanup: () => store.close() };
}, { persistent: false });

contractSuite('SqliteStateStore', (options) => {
  const dir = mkdtempSync(join(tmpdir(), 'infergate-store-'));
  let current: StateStore = openStateStore(dir, options);
  return {
    store: current,
    reopen: () => {
      current.close();
      current = openStateStore(dir, options);
      return current;
    },
    cleanup: () => {
      current.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}, { persistent: true });

describe('SqliteStateStore specifics', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'infergate-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  test('opens in WAL mode at the current schema version, with its nine tables', () => {
    const file = join(dir, 'state.db');
    SqliteStateStore.open(file).close();
    const db = new Database(file, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), SCHEMA_VERSION);
      const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").pluck().all();
      assert.deepEqual(tables, ['assets', 'autoscale_events', 'autoscale_settings', 'computes', 'deployment_status', 'deployments', 'endpoint_status', 'endpoints', 'tokens']);
    } finally {
      db.close();
    }
  });

  test('openStateStore creates the workspace directory, and the database file is owner-only', () => {
    const workspace = join(dir, 'nested', 'ws');
    openStateStore(workspace).close();
    const mode = statSync(join(workspace, 'state.db')).mode & 0o777;
    assert.equal(mode & 0o077, 0, `state.db mode is ${mode.toString(8)}`);
  });

  test('refuses a database from a newer schema version, and leaves it untouched', () => {
    const file = join(dir, 'state.db');
    const db = new Database(file);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    assert.throws(() => SqliteStateStore.open(file), /schema version/);
    const again = new Database(file, { readonly: true });
    assert.equal(again.pragma('user_version', { simple: true }), SCHEMA_VERSION + 1);
    again.close();
  });

  test('a workspace from schema version 1 (before assets) is migrated and keeps its endpoints', () => {
    const file = join(dir, 'state.db');
    const old = SqliteStateStore.open(file);
    old.putEndpoint(endpointSpec('ep1'), KEYS);
    old.close();
    const db = new Database(file);
    db.exec('DROP TABLE autoscale_events; DROP TABLE autoscale_settings; DROP TABLE assets; DROP TABLE tokens; DROP TABLE computes');
    db.pragma('user_version = 1');
    db.close();
    const store = SqliteStateStore.open(file);
    try {
      assert.equal(store.getEndpoint('ep1')!.spec.name, 'ep1');
      store.putAsset('model', modelAsset('m', '1'));
      assert.equal(store.listAssets('model').length, 1);
      store.putToken({ id: 't', role: 'owner', hash: 'h' });
      assert.equal(store.getToken('t')!.role, 'owner');
      store.putDeployment(deploymentSpec('ep1', 'blue'));
      store.putAutoscaleSetting(autoscaleSetting('s', 'ep1', 'blue'), { endpoint: 'ep1', deployment: 'blue' });
      assert.equal(store.listAutoscaleSettings().length, 1);
      store.putCompute({ name: 'k8s', type: 'kubernetes', kubeconfig: 'x', namespace: 'ml' });
      assert.equal(store.listComputes().length, 1);
    } finally {
      store.close();
    }
  });

  test('refuses a file that is not a database', () => {
    const file = join(dir, 'state.db');
    writeFileSync(file, 'not a database, just some text that is long enough to have a header '.repeat(10));
    assert.throws(() => SqliteStateStore.open(file));
  });

  test('works on :memory:', () => {
    const store = SqliteStateStore.open(':memory:');
    store.putEndpoint(endpointSpec('ep1'), KEYS);
    assert.equal(store.listEndpoints().length, 1);
    store.close();
  });
});
