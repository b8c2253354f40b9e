// The no-code compiler's checks that the golden plans (plan-no-code.*) do not reach: the ONNX check on a
// model larger than its read window, pickles outside the model folder, batching settings.

import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import onnxProto from 'onnx-proto';
import { batchingOf, compileNoCode } from './no-code.js';

const { onnx } = onnxProto;
const F = onnx.TensorProto.DataType.FLOAT;
const dir = mkdtempSync(join(tmpdir(), 'no-code-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Y = X + P with P a 1 MiB initializer: the graph's inputs and outputs come after it in the file. */
function heavyModel(file: string): void {
  const n = 256 * 1024;
  const m = onnx.ModelProto.create({
    irVersion: 7,
    opsetImport: [{ domain: '', version: 13 }],
    graph: {
      name: 'heavy',
      node: [{ opType: 'Add', input: ['X', 'P'], output: ['Y'] }],
      initializer: [{ name: 'P', dims: [n], dataType: F, rawData: Buffer.alloc(n * 4) }],
      input: [{ name: 'X', type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: n }] } } } }],
      output: [{ name: 'Y', type: { tensorType: { elemType: F, shape: { dim: [{ dimValue: n }] } } } }],
    },
  });
  writeFileSync(file, onnx.ModelProto.encode(m).finish());
}

const onnxModel = (path: string) => ({ name: 'm', version: '1', path, type: 'triton_model' });

test('an ONNX model larger than the read window is checked through to its graph inputs and outputs', () => {
  const file = join(dir, 'heavy.onnx');
  heavyModel(file);
  assert.ok(readFileSync(file).length > 1024 * 1024);
  assert.deepEqual(compileNoCode(onnxModel(file), 'here', undefined), { kind: 'onnx', modelName: 'm', modelVersion: '1', modelFile: 'heavy.onnx' });
  // Cut inside the initializer: the graph's length runs past the end of the file.
  const cut = join(dir, 'cut.onnx');
  writeFileSync(cut, readFileSync(file).subarray(0, 512 * 1024));
  assert.throws(() => compileNoCode(onnxModel(cut), 'here', undefined), /cut\.onnx cannot be loaded as an ONNX model: it is not a protobuf message \(field 7 at byte \d+ runs past the end\)/);
});

test('an MLmodel whose pickled_model leaves the model folder is refused', () => {
  const folder = join(dir, 'mlflow');
  mkdirSync(folder, { recursive: true });
  writeFileSync(join(dir, 'outside.pkl'), 'x');
  writeFileSync(join(folder, 'MLmodel'), 'flavors:\n  sklearn:\n    pickled_model: ../outside.pkl\n    serialization_format: pickle\n');
  assert.throws(() => compileNoCode({ name: 'm', version: '1', path: folder, type: 'mlflow_model' }, 'here', undefined), /names pickled_model '\.\.\/outside\.pkl', which is not a readable file in the model folder/);
});

test('batching settings: defaults for the one not given, whole numbers in range only', () => {
  assert.equal(batchingOf({}, 'here'), undefined);
  assert.deepEqual(batchingOf({ 'infergate.batching.max_batch_size': '8' }, 'here'), { maxBatchSize: 8, maxDelayUs: 1000 });
  for (const bad of ['0', '-1', '1.5', '4097', 'eight', '']) {
    assert.throws(() => batchingOf({ 'infergate.batching.max_batch_size': bad }, 'here'), /properties 'infergate\.batching\.max_batch_size'/, bad);
  }
});
