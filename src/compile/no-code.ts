// No-code deployments (docs/no-code.md): an mlflow_model or triton_model without code_configuration is
// served by infergate's own loaders. Everything the host needs is read from the model here, when the
// deployment is created or updated, so a model that cannot be served is refused with a code naming the
// file instead of an instance failing to start later, with a traceback from a script the user did not write.

import { closeSync, existsSync, fstatSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { parse as parseYaml } from 'yaml';
import { errorOf } from '../errors/index.js';
import type { NoCodePlan, NoCodeTensorSpec } from '../ir/types.js';

/** Deployment properties that turn batching on (infergate only; Azure keeps properties as free-form strings). */
export const BATCH_SIZE_PROPERTY = 'infergate.batching.max_batch_size';
export const BATCH_DELAY_PROPERTY = 'infergate.batching.max_delay_us';
const MAX_BATCH_SIZE = 4096;
const MAX_DELAY_US = 1_000_000;

/** The model as the plan has it, and its type (custom_model, mlflow_model, triton_model). */
export interface NoCodeModel {
  name: string;
  version: string;
  path: string;
  type: string;
}

/** The batching settings from the deployment's properties; undefined when not asked for. */
export function batchingOf(properties: Record<string, string>, where: string): NoCodePlan['batching'] {
  const size = properties[BATCH_SIZE_PROPERTY];
  const delay = properties[BATCH_DELAY_PROPERTY];
  if (size === undefined && delay === undefined) return undefined;
  const read = (key: string, value: string | undefined, fallback: number, min: number, max: number): number => {
    if (value === undefined) return fallback;
    const n = Number(value);
    if (!/^\s*\d+\s*$/.test(value) || n < min || n > max) {
      throw errorOf('BatchingSettingInvalid', { where, key, value, expected: `expected a whole number from ${min} to ${max}` });
    }
    return n;
  };
  return {
    maxBatchSize: read(BATCH_SIZE_PROPERTY, size, 32, 1, MAX_BATCH_SIZE),
    maxDelayUs: read(BATCH_DELAY_PROPERTY, delay, 1000, 0, MAX_DELAY_US),
  };
}

/** The no-code plan of a model, or throws ModelNotServable naming the file. */
export function compileNoCode(model: NoCodeModel, where: string, batching: NoCodePlan['batching']): NoCodePlan {
  const plan = model.type === 'mlflow_model' ? mlflowPlan(model, where) : onnxPlan(model, where);
  // The plan reaches the instance as one environment variable (INFERGATE_NO_CODE): Linux refuses one
  // over 128 KiB at spawn (E2BIG), so a model with a huge signature is refused here, where it can be said why.
  const bytes = Buffer.byteLength(JSON.stringify(plan));
  if (bytes > MAX_NO_CODE_BYTES) throw errorOf('NoCodeConfigTooLarge', { where, bytes, limit: MAX_NO_CODE_BYTES });
  return batching ? { ...plan, batching } : plan;
}

const MAX_NO_CODE_BYTES = 96 * 1024;

// ---- MLflow ---------------------------------------------------------------------------------------------

const SERIALIZATIONS = new Set(['pickle', 'cloudpickle']);
/** The sklearn flavor's loaders: the flavor itself, or python_function whose loader is mlflow.sklearn. */
const SKLEARN_LOADER = 'mlflow.sklearn';

function mlflowPlan(model: NoCodeModel, where: string): NoCodePlan {
  const folder = model.path;
  const file = join(folder, 'MLmodel');
  if (!existsSync(file) || !statSync(folder).isDirectory()) throw errorOf('MlmodelMissing', { where, path: folder, file });
  let doc: unknown;
  try {
    doc = parseYaml(readFileSync(file, 'utf8'));
  } catch (e) {
    throw errorOf('MlmodelUnreadable', { where, file, reason: (e as Error).message.split('\n')[0] });
  }
  if (!isMap(doc) || !isMap(doc.flavors)) throw errorOf('MlmodelUnreadable', { where, file, reason: "it has no 'flavors' mapping" });
  const flavors = doc.flavors;
  const pyfunc = isMap(flavors.python_function) ? flavors.python_function : undefined;
  const sk = isMap(flavors.sklearn) ? flavors.sklearn : undefined;
  let pickle: string | undefined;
  let format = 'pickle';
  if (sk) {
    pickle = str(sk.pickled_model);
    format = str(sk.serialization_format) ?? format;
  } else if (pyfunc && pyfunc.loader_module === SKLEARN_LOADER) {
    pickle = str(pyfunc.model_path);
  }
  if (pickle === undefined) throw errorOf('MlflowFlavorUnsupported', { where, file, flavors: Object.keys(flavors).join(', ') || '(none)' });
  if (!SERIALIZATIONS.has(format)) throw errorOf('MlflowSerializationUnsupported', { where, file, format });
  const pickled = join(folder, pickle);
  // The pickle must stay inside the model folder: it is copied with it, nothing outside is.
  if (relative(folder, pickled).startsWith('..') || !isReadableFile(pickled)) throw errorOf('MlflowPickleMissing', { where, file, pickle });
  const signature = isMap(doc.signature) ? signatureOf(doc.signature, where, file) : undefined;
  const predictFn = str(pyfunc?.predict_fn);
  return {
    kind: 'mlflow',
    modelName: model.name,
    modelVersion: model.version,
    modelFile: join(basename(folder), pickle),
    flavor: 'sklearn',
    serializationFormat: format,
    ...(predictFn && predictFn !== 'predict' ? { predictFn } : {}),
    ...(signature ? { signature } : {}),
  };
}

const MLFLOW_TYPES = new Set(['double', 'float', 'long', 'integer', 'boolean', 'string', 'binary', 'datetime']);

/** MLflow writes inputs/outputs as JSON strings inside the YAML. */
function signatureOf(sig: Record<string, unknown>, where: string, file: string): NonNullable<NoCodePlan['signature']> {
  const fail = (reason: string): never => {
    throw errorOf('MlflowSignatureInvalid', { where, file, reason });
  };
  const part = (key: 'inputs' | 'outputs'): { specs: NoCodeTensorSpec[]; tensor: boolean } => {
    const raw = sig[key];
    if (raw === undefined || raw === null) return { specs: [], tensor: false };
    let list: unknown;
    try {
      list = typeof raw === 'string' ? JSON.parse(raw) : raw;
    } catch (e) {
      return fail(`signature.${key} is not JSON: ${(e as Error).message}`);
    }
    if (!Array.isArray(list)) return fail(`signature.${key} is not a list`);
    let tensor = false;
    const specs = list.map((c: unknown, i: number): NoCodeTensorSpec => {
      if (!isMap(c)) return fail(`signature.${key}[${i}] is not a mapping`);
      if (c.type === 'tensor') {
        tensor = true;
        const ts = isMap(c['tensor-spec']) ? c['tensor-spec'] : fail(`signature.${key}[${i}] has no tensor-spec`);
        const shape = Array.isArray(ts.shape) ? ts.shape.map(Number) : undefined;
        return { name: str(c.name) ?? (key === 'inputs' ? `input-${i}` : i === 0 ? 'predict' : `predict-${i}`), type: String(ts.dtype ?? 'float64'), ...(shape ? { shape } : {}) };
      }
      const type = str(c.type) ?? fail(`signature.${key}[${i}] has no type`);
      if (!MLFLOW_TYPES.has(type)) fail(`signature.${key}[${i}] has type '${type}' (known: ${[...MLFLOW_TYPES].join(', ')})`);
      return { name: str(c.name) ?? String(i), type };
    });
    return { specs, tensor };
  };
  const inputs = part('inputs');
  const outputs = part('outputs');
  return { inputs: inputs.specs, outputs: outputs.specs, inputKind: inputs.tensor ? 'tensor' : 'columns' };
}

// ---- ONNX (triton_model) -------------------------------------------------------------------------------

function onnxPlan(model: NoCodeModel, where: string): NoCodePlan {
  const onnxFile = findOnnx(model.path);
  if (onnxFile === undefined) {
    const found = listing(model.path);
    throw errorOf('OnnxModelMissing', { where, path: model.path, found: found ? `; found ${found}` : '' });
  }
  // A Triton repository names the model by its folder (models/<name>/<version>/model.onnx).
  const rel = relative(model.path, onnxFile).split(/[\\/]/);
  const repoName = rel.length === 3 ? rel[0] : undefined;
  const repoVersion = rel.length === 3 ? rel[1] : undefined;
  checkOnnxLoads(onnxFile, where);
  const isFile = statSync(model.path).isFile();
  return {
    kind: 'onnx',
    modelName: repoName ?? model.name,
    modelVersion: repoVersion ?? model.version,
    modelFile: isFile ? basename(model.path) : join(basename(model.path), ...rel),
  };
}

/** A bare .onnx file, a folder with one, or a Triton model repository: <name>/<version>/model.onnx (highest version). */
function findOnnx(path: string): string | undefined {
  let st;
  try {
    st = statSync(path);
  } catch {
    return undefined;
  }
  if (st.isFile()) return path.toLowerCase().endsWith('.onnx') ? path : undefined;
  const entries = safeList(path);
  const direct = entries.find((n) => n.toLowerCase().endsWith('.onnx') && isReadableFile(join(path, n)));
  if (direct) return join(path, direct);
  // A repository folder itself (models/) or a model folder in one (models/<name>/).
  for (const name of entries.sort()) {
    const sub = join(path, name);
    if (/^\d+$/.test(name)) continue;
    const inner = highestVersion(sub);
    if (inner) return inner;
  }
  return highestVersion(path);
}

function highestVersion(modelFolder: string): string | undefined {
  const versions = safeList(modelFolder).filter((n) => /^\d+$/.test(n)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) {
    const f = join(modelFolder, v, 'model.onnx');
    if (isReadableFile(f)) return f;
  }
  return undefined;
}

/**
 * Reads the file as an ONNX ModelProto (protobuf) far enough to know it is one: every field well formed,
 * an ir_version, and a graph with inputs and outputs. In process and synchronous: the control plane
 * compiles on the router's event loop, where loading onnxruntime (~150 ms) would stall traffic. Only field
 * tags and lengths are read (a window at a time), never the weights they skip over: a model of gigabytes
 * costs as little time and memory as a small one. What only onnxruntime can tell (an operator or opset it
 * does not have) is found when the instance loads the model: the deployment fails with onnxruntime's own reason.
 */
function checkOnnxLoads(file: string, where: string): void {
  let reason: string | undefined;
  const fd = openSync(file, 'r');
  try {
    const size = fstatSync(fd).size;
    const window = Buffer.alloc(64 * 1024);
    let from = 0;
    let length = 0;
    reason = onnxProblem({
      length: size,
      at: (pos) => {
        if (pos < from || pos >= from + length) {
          from = pos;
          length = readSync(fd, window, 0, window.length, pos);
        }
        return window[pos - from];
      },
    });
  } finally {
    closeSync(fd);
  }
  if (reason !== undefined) throw errorOf('OnnxModelUnloadable', { where, file, reason });
}

/** Bytes read one at a time: a file through a window, or an array (tests). */
interface ByteSource {
  length: number;
  at(pos: number): number;
}

/** Why `bytes` is not an ONNX model, or undefined. */
export function onnxProblem(source: Uint8Array | ByteSource): string | undefined {
  const bytes: ByteSource = source instanceof Uint8Array ? { length: source.length, at: (pos) => source[pos] } : source;
  const model = fields(bytes, 0, bytes.length);
  if (typeof model === 'string') return `it is not a protobuf message (${model})`;
  if (!model.some((f) => f.field === 1 && f.wire === 0)) return 'it is not an ONNX model: it has no ir_version';
  const graph = model.find((f) => f.field === 7 && f.wire === 2);
  if (graph === undefined) return 'it is not an ONNX model: it has no graph';
  const g = fields(bytes, graph.start, graph.end);
  if (typeof g === 'string') return `its graph is not a protobuf message (${g})`;
  if (!g.some((f) => f.field === 11 && f.wire === 2)) return 'its graph has no inputs';
  if (!g.some((f) => f.field === 12 && f.wire === 2)) return 'its graph has no outputs';
  return undefined;
}

interface Field {
  field: number;
  wire: number;
  /** A length-delimited field's bytes. */
  start: number;
  end: number;
}

/** The fields of the protobuf message in bytes[from, to), or why they cannot be read. */
function fields(bytes: ByteSource, from: number, to: number): Field[] | string {
  const out: Field[] = [];
  let pos = from;
  const varint = (): number | undefined => {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (pos >= to) return undefined;
      const b = bytes.at(pos++);
      value += (b & 0x7f) * scale;
      if ((b & 0x80) === 0) return value;
      scale *= 128;
    }
    return undefined;
  };
  while (pos < to) {
    const at = pos;
    const tag = varint();
    if (tag === undefined) return `a truncated field tag at byte ${at}`;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) return `field number 0 at byte ${at}`;
    let start = pos;
    if (wire === 0) {
      if (varint() === undefined) return `a truncated number at byte ${at}`;
    } else if (wire === 1 || wire === 5) {
      pos += wire === 1 ? 8 : 4;
    } else if (wire === 2) {
      const n = varint();
      if (n === undefined) return `a truncated length at byte ${at}`;
      start = pos;
      pos += n;
    } else {
      return `wire type ${wire} at byte ${at}`;
    }
    if (pos > to) return `field ${field} at byte ${at} runs past the end`;
    out.push({ field, wire, start, end: pos });
  }
  return out;
}

// ---- helpers -------------------------------------------------------------------------------------------

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: unknown): string | undefined {
  return typeof v === 'string' && v !== '' ? v : undefined;
}

function isReadableFile(p: string): boolean {
  try {
    return statSync(p).isFile();
  } catch {
    return false;
  }
}

function safeList(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

function listing(path: string): string {
  const names = safeList(path);
  return names.length ? names.slice(0, 8).join(', ') + (names.length > 8 ? ', ...' : '') : '';
}
