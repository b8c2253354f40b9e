// Version rules: auto-increment, what @latest means (archived versions skipped), reference resolution.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assetLookup, findAsset, latestOf, nextVersion } from './assets.js';
import { MemoryStateStore } from './memory.js';
import type { ModelAsset } from './types.js';

const model = (name: string, version: string): ModelAsset => ({ name, version, type: 'custom_model', path: `/a/${name}/${version}/m`, tags: {}, properties: {} });

test('nextVersion: "1" for a new name, else the next integer after the highest integer version', () => {
  assert.equal(nextVersion([]), '1');
  assert.equal(nextVersion(['1']), '2');
  assert.equal(nextVersion(['1', '10', '9']), '11', 'numeric, not string, order');
  assert.equal(nextVersion(['3', '1']), '4', 'the highest, not the latest registered');
  assert.equal(nextVersion(['v2', '1.5', 'beta']), '1', 'versions that are not integers do not count');
  assert.equal(nextVersion(['2', 'v7']), '3');
  assert.equal(nextVersion(['007']), '8');
  assert.equal(nextVersion(['99999999999999999999']), '100000000000000000000', 'no float rounding');
});

test('latestOf: the last registered version that is not archived', () => {
  const store = new MemoryStateStore();
  for (const v of ['1', '3', '2']) store.putAsset('model', model('m', v));
  assert.equal(latestOf(store.listAssets('model', 'm'))!.asset.version, '2', 'registration order, not version order');
  store.setAssetArchived('model', 'm', '2', true);
  assert.equal(latestOf(store.listAssets('model', 'm'))!.asset.version, '3');
  store.setAssetArchived('model', 'm', '3', true);
  store.setAssetArchived('model', 'm', '1', true);
  assert.equal(latestOf(store.listAssets('model', 'm')), undefined, 'all archived: no latest');
  assert.equal(latestOf([]), undefined);
});

test('findAsset: explicit versions resolve even when archived; @latest and a bare name skip archived; unknown labels do not resolve', () => {
  const store = new MemoryStateStore();
  store.putAsset('model', model('m', '1'));
  store.putAsset('model', model('m', '2'));
  store.setAssetArchived('model', 'm', '2', true);
  assert.equal(findAsset(store, 'model', { name: 'm', version: '2' })!.asset.version, '2');
  assert.equal(findAsset(store, 'model', { name: 'm', label: 'latest' })!.asset.version, '1');
  assert.equal(findAsset(store, 'model', { name: 'm' })!.asset.version, '1');
  assert.equal(findAsset(store, 'model', { name: 'm', label: 'production' }), undefined);
  assert.equal(findAsset(store, 'model', { name: 'm', version: '3' }), undefined);
  assert.equal(findAsset(store, 'environment', { name: 'm', version: '1' }), undefined);
  const lookup = assetLookup(store);
  assert.equal(lookup.model({ name: 'm', label: 'latest' })!.path, '/a/m/1/m');
  assert.equal(lookup.environment({ name: 'm' }), undefined);
  // The lookup reads the store afresh: a version registered later is seen.
  store.putAsset('model', model('m', '3'));
  assert.equal(lookup.model({ name: 'm', label: 'latest' })!.version, '3');
});
