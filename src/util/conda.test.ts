import assert from 'node:assert/strict';
import { test } from 'node:test';
import { condaDependencies, isLocalPipEntry, localPipPath } from './conda.js';

test('condaDependencies reads the conda and pip lists of model-1/environment/conda.yaml (contract §9.1)', () => {
  const conda = {
    name: 'model-env',
    channels: ['conda-forge'],
    dependencies: ['python=3.12', 'numpy=2.3.1', 'pip=25.1.1', { pip: ['azureml-inference-server-http==1.4.1', 'inference-schema[numpy-support]', 'joblib'] }],
  };
  assert.deepEqual(condaDependencies(conda), {
    conda: ['python=3.12', 'numpy=2.3.1', 'pip=25.1.1'],
    pip: ['azureml-inference-server-http==1.4.1', 'inference-schema[numpy-support]', 'joblib'],
  });
  assert.deepEqual(condaDependencies(undefined), { conda: [], pip: [] });
  assert.deepEqual(condaDependencies({ dependencies: 'numpy' }), { conda: [], pip: [] });
  assert.deepEqual(condaDependencies({ dependencies: [null, 3, { pip: [1, null] }] }), { conda: ['3'], pip: ['1'] });
});

test('isLocalPipEntry: paths and archive names are local; requirements, URLs and options are not', () => {
  for (const local of ['./wheels/x-1.0-py3-none-any.whl', '../dist/pkg.tar.gz', '/abs/pkg.whl', 'file:///abs/pkg.whl', 'pkg-1.0-py3-none-any.whl', './project', '.']) {
    assert.equal(isLocalPipEntry(local), true, local);
  }
  for (const remote of ['joblib', 'numpy==1.2', 'inference-schema[numpy-support]', 'https://x.org/pkg.whl', '--extra-index-url https://x', '-r requirements.txt', 'pkg @ https://x/p.whl', '']) {
    assert.equal(isLocalPipEntry(remote), false, remote);
  }
});

test('localPipPath resolves relative entries against the conda file folder', () => {
  assert.equal(localPipPath('./wheels/x.whl', '/env'), '/env/wheels/x.whl');
  assert.equal(localPipPath('x.whl', '/env'), '/env/x.whl');
  assert.equal(localPipPath('../x.whl', '/env/sub'), '/env/x.whl');
  assert.equal(localPipPath('/abs/x.whl', undefined), '/abs/x.whl');
  assert.equal(localPipPath('file:///abs/x.whl', '/env'), '/abs/x.whl');
  assert.equal(localPipPath('./x.whl', undefined), undefined);
});
