#!/usr/bin/env python3
"""infergate's MLflow loader: the scoring script of a no-code mlflow_model deployment (docs/no-code.md).

Azure generates a score.py for an MLflow model deployed without one; infergate runs this file in its place,
as the entry script of the Python instance host (infergate_worker.py: init() once, run() per request), with:
  INFERGATE_NO_CODE   JSON written by the control plane from the model's MLmodel (src/compile/no-code.ts):
                      modelFile (relative to AZUREML_MODEL_DIR), flavor, serializationFormat, predictFn,
                      signature {inputs, outputs, inputKind}, modelName, modelVersion
  AZUREML_MODEL_DIR   where the model folder is
The MLmodel itself is read in TypeScript at create time (no PyYAML in the image): only JSON here.
Standard library + numpy + the model's framework (scikit-learn); pandas when the environment has it.

Flavors: sklearn (pickled_model, serialization_format pickle or cloudpickle) and python_function whose
loader_module is mlflow.sklearn. A cloudpickle file is read with cloudpickle when installed, else with pickle
(cloudpickle writes standard pickles; only a model holding functions defined at runtime needs cloudpickle).

POST /score takes (section "Request formats" of docs/no-code.md):
  {"input_data": {"columns": [...], "index": [...], "data": [[...]]}}   Azure, pandas split orientation
  {"input_data": [[...]]}                                                Azure, tensor
  {"dataframe_split": {...}}, {"dataframe_records": [{...}]}             MLflow
  {"instances": [...]}, {"inputs": [...] | {"<column>": [...]}}          MLflow (TF-serving style)
and answers the predictions as a JSON list, as Azure's generated script does. The signature is enforced as
MLflow enforces it: every input column present (extra ones ignored), put in the signature's order, each
value convertible without loss to the column's type; otherwise 400 {"error": "..."} naming the column.

The Open Inference Protocol (v2) is served on /v2/... through infergate_routes(), which the worker calls
for those paths (infergate_worker.py: Script.extra_routes).

Every problem of a request is a 400-class answer naming it; the model failing on input it accepted is a
400 too (a ValueError from predict: the input does not fit the model). Nothing here ever answers as a
failing user script: there is no user script.
"""

import json
import logging
import os
import pickle

import numpy as np

try:  # optional: Debian's python3-pandas; the container image may not have it
    import pandas as pd
except ImportError:  # pragma: no cover - depends on the environment
    pd = None

_cfg = {}
_model = None
_predict = None
_columns = None  # signature input columns [(name, type)], or None
_tensor = None  # signature input tensor spec (dtype, shape), or None
_logger = logging.getLogger("azmlinfsrv.mlflow")


class RequestError(Exception):
    """A client error: 400 (or the status given) with {"error": message}."""

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class _Answer:
    """Shaped as an AMLResponse, so the worker sends its status and body as they are."""

    def __init__(self, status, value):
        self.status_code = status
        self.headers = {"Content-Type": "application/json"}
        self._body = json.dumps(value, default=_json_default).encode()

    def get_data(self):
        return self._body


def _json_default(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


# --- init -----------------------------------------------------------------------------------------------

def init():
    global _cfg, _model, _predict, _columns, _tensor
    _cfg = json.loads(os.environ["INFERGATE_NO_CODE"])
    path = os.path.join(os.environ.get("AZUREML_MODEL_DIR", ""), _cfg["modelFile"])
    fmt = _cfg.get("serializationFormat") or "pickle"
    loader = pickle
    if fmt == "cloudpickle":
        try:
            import cloudpickle as loader  # noqa: F811
        except ImportError:
            loader = pickle
    try:
        with open(path, "rb") as f:
            _model = loader.load(f)
    except ModuleNotFoundError as exc:
        hint = " (serialization_format cloudpickle: install python3-cloudpickle in the environment)" if fmt == "cloudpickle" else ""
        raise RuntimeError("The MLflow model %s needs the Python module '%s', which this environment cannot import%s."
                           % (path, exc.name, hint)) from None
    except Exception as exc:
        raise RuntimeError("The MLflow model %s cannot be loaded with %s: %s: %s (was it saved with another version of "
                           "its framework? sklearn here is %s)" % (path, loader.__name__, type(exc).__name__, exc, _sklearn_version())) from None
    fn = _cfg.get("predictFn") or "predict"
    _predict = getattr(_model, fn, None)
    if not callable(_predict):
        raise RuntimeError("The MLflow model %s (%s) has no %s() method." % (path, type(_model).__name__, fn))
    sig = _cfg.get("signature")
    if sig:
        if sig.get("inputKind") == "tensor" and sig.get("inputs"):
            t = sig["inputs"][0]
            _tensor = (t.get("type") or "float64", t.get("shape"))
        elif sig.get("inputs"):
            _columns = [(c["name"], c["type"]) for c in sig["inputs"]]


def _sklearn_version():
    try:
        import sklearn
        return sklearn.__version__
    except Exception:  # noqa: BLE001
        return "not installed"


# --- /score -------------------------------------------------------------------------------------------------

def run(raw_data):
    try:
        doc = _json_body(raw_data)
        columns, rows, tensor = _parse(doc)
        return _predict_answer(columns, rows, tensor)
    except RequestError as exc:
        return _Answer(exc.status, {"error": str(exc)})
    except Exception as exc:  # noqa: BLE001
        return _model_failed(exc)


def _json_body(raw):
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # RecursionError: arrays nested thousands deep
        raise RequestError("The request body is not valid JSON: %s" % str(exc)[:200])


def _model_failed(exc):
    """Anything else raised while scoring: 500 naming the model, never the worker's answer for a failing
    user script (there is none: the user did not write this one)."""
    _logger.exception("The MLflow model failed")
    return _Answer(500, {"error": "The model failed: %s: %s" % (type(exc).__name__, exc)})


def _predict_answer(columns, rows, tensor):
    x = _model_input(columns, rows, tensor)
    try:
        y = _predict(x)
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise RequestError("The model cannot score this input: %s" % exc)
    return y.tolist() if hasattr(y, "tolist") else y


def _parse(doc):
    """(columns or None, rows as a list of lists, None) for column data; (None, None, array) for a tensor."""
    if not isinstance(doc, dict):
        raise RequestError("The request body must be a JSON object with one of input_data, dataframe_split, "
                           "dataframe_records, instances or inputs.")
    keys = [k for k in ("input_data", "dataframe_split", "dataframe_records", "instances", "inputs") if k in doc]
    if len(keys) != 1:
        raise RequestError("The request body must have exactly one of input_data, dataframe_split, dataframe_records, "
                           "instances or inputs; it has %s." % (", ".join(keys) if keys else "none of them"))
    key = keys[0]
    value = doc[key]
    if key == "dataframe_split" or (key == "input_data" and isinstance(value, dict) and "data" in value):
        return _split(value, key)
    if key == "dataframe_records":
        return _records(value, key)
    if key in ("instances", "inputs") and isinstance(value, list) and value and all(isinstance(r, dict) for r in value):
        return _records(value, key)
    if isinstance(value, dict):
        # {"inputs": {"<column>": [values...]}}: named columns, one list each.
        cols = list(value.keys())
        lists = [value[c] if isinstance(value[c], list) else [value[c]] for c in cols]
        n = len(lists[0]) if lists else 0
        if any(len(l) != n for l in lists):
            raise RequestError("%s: every column needs the same number of values." % key)
        return cols, [list(r) for r in zip(*lists)], None
    if not isinstance(value, list):
        raise RequestError("%s must be a list (a tensor) or an object." % key)
    return None, None, value


def _split(value, key):
    if not isinstance(value, dict) or not isinstance(value.get("data"), list):
        raise RequestError("%s needs 'data', a list of rows (pandas split orientation)." % key)
    cols = value.get("columns")
    rows = value["data"]
    if cols is not None and not isinstance(cols, list):
        raise RequestError("%s.columns must be a list of column names." % key)
    for i, r in enumerate(rows):
        if not isinstance(r, list):
            raise RequestError("%s.data[%d] is not a list (a row)." % (key, i))
        if cols is not None and len(r) != len(cols):
            raise RequestError("%s.data[%d] has %d values for %d columns." % (key, i, len(r), len(cols)))
    return ([str(c) for c in cols] if cols is not None else None), rows, None


def _records(value, key):
    if not isinstance(value, list) or not all(isinstance(r, dict) for r in value):
        raise RequestError("%s must be a list of objects, one per row." % key)
    cols = []
    for r in value:
        for c in r:
            if c not in cols:
                cols.append(c)
    return cols, [[r.get(c) for c in cols] for r in value], None


# --- the signature ----------------------------------------------------------------------------------------

_INTEGER = {"long": np.int64, "integer": np.int32}
_INTEGER_RANGE = {"long": (-2 ** 63, 2 ** 63 - 1), "integer": (-2 ** 31, 2 ** 31 - 1)}
_FLOAT = {"double": np.float64, "float": np.float32}


def _column(name, kind, values):
    """The column as MLflow would accept it, or RequestError naming it."""
    def bad(v, what):
        raise RequestError("Incompatible input types for column %s: value %s %s (expected %s)."
                           % (name, json.dumps(v), what, kind))
    if kind in _INTEGER:
        out = []
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad(v, "is not a number")
            if isinstance(v, float) and not v.is_integer():
                bad(v, "cannot be converted to %s without loss" % kind)
            lo, hi = _INTEGER_RANGE[kind]
            if not lo <= v <= hi:
                bad(v, "is out of the range of %s" % kind)
            out.append(int(v))
        return np.array(out, dtype=_INTEGER[kind])
    if kind in _FLOAT:
        for v in values:
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                bad(v, "is not a number")
        try:
            return np.array(values, dtype=_FLOAT[kind])
        except OverflowError:  # a JSON integer beyond any float (10**400)
            raise RequestError("Incompatible input types for column %s: a value is out of the range of %s." % (name, kind))
    if kind == "boolean":
        for v in values:
            if not isinstance(v, bool):
                bad(v, "is not a boolean")
        return np.array(values, dtype=bool)
    if kind == "string":
        for v in values:
            if not isinstance(v, str):
                bad(v, "is not a string")
        return np.array(values, dtype=object)
    return np.array(values, dtype=object)


def _model_input(columns, rows, tensor):
    if tensor is not None:
        return _tensor_input(tensor)
    if _columns is None:
        # No signature: the columns as sent, in the order sent.
        try:
            arr = np.array(rows)
        except ValueError as exc:
            raise RequestError("The rows do not form a table: %s" % exc)
        return _frame(columns, arr) if columns else arr
    names = [n for n, _ in _columns]
    if columns is None:
        for r in rows:
            if len(r) != len(names):
                raise RequestError("A row has %d values; the model's signature has %d columns (%s)."
                                   % (len(r), len(names), ", ".join(names)))
        columns = names
    missing = [n for n in names if n not in columns]
    if missing:
        extra = [c for c in columns if c not in names]
        raise RequestError("Model is missing inputs %s.%s" % (
            missing, " Note that there were extra inputs: %s." % extra if extra else ""))
    at = {c: i for i, c in enumerate(columns)}
    cols = [_column(n, kind, [r[at[n]] for r in rows]) for n, kind in _columns]
    if pd is not None:
        return pd.DataFrame({n: c for (n, _), c in zip(_columns, cols)})
    kinds = {c.dtype.kind for c in cols}
    return np.column_stack(cols) if len(kinds) == 1 else np.column_stack([c.astype(object) for c in cols])


def _frame(columns, arr):
    if pd is not None and arr.ndim == 2:
        return pd.DataFrame(arr, columns=columns)
    return arr


_TENSOR_TYPES = {"float64": np.float64, "float32": np.float32, "int64": np.int64, "int32": np.int32,
                 "bool": np.bool_, "str": object, "object": object}


def _tensor_input(value):
    if _columns is not None:
        # Rows for a column signature, as sent: numpy would make a row that mixes strings and numbers all
        # strings ("1.0"), which the numeric columns would then refuse.
        rows = value if value and all(isinstance(r, list) for r in value) else [value]
        for r in rows:
            if any(isinstance(v, (list, dict)) for v in r):
                raise RequestError("input_data: each row must be a list of values, one per column (%s)."
                                   % ", ".join(n for n, _ in _columns))
        return _model_input(None, rows, None)
    try:
        arr = np.array(value)
    except (ValueError, OverflowError) as exc:
        raise RequestError("input_data is not a regular tensor (rows of different lengths?): %s" % exc)
    if arr.dtype == object:
        raise RequestError("input_data is not a regular tensor: rows of different lengths or mixed types.")
    if _tensor is not None:
        dtype, shape = _tensor
        want = _TENSOR_TYPES.get(dtype, np.float64)
        if want is not object:
            if not np.can_cast(arr.dtype, want, casting="same_kind") and not (arr.dtype.kind in "iu" and np.dtype(want).kind == "f"):
                raise RequestError("Input tensor of type %s cannot be converted to the signature's %s." % (arr.dtype, dtype))
            if arr.dtype.kind == "f" and np.dtype(want).kind in "iu":
                raise RequestError("Input tensor of type %s cannot be converted to the signature's %s without loss." % (arr.dtype, dtype))
            arr = arr.astype(want)
        if shape:
            if arr.ndim == len(shape) - 1 and shape[0] == -1:
                arr = arr.reshape((1,) + arr.shape)
            if arr.ndim != len(shape) or any(s != -1 and s != a for s, a in zip(shape, arr.shape)):
                raise RequestError("Shape of input %s does not match expected shape %s." % (list(arr.shape), shape))
    return arr


# --- the Open Inference Protocol (v2) ---------------------------------------------------------------------

_OIP_OF = {"long": "INT64", "integer": "INT32", "double": "FP64", "float": "FP32", "boolean": "BOOL",
           "string": "BYTES", "binary": "BYTES", "datetime": "BYTES",
           "float64": "FP64", "float32": "FP32", "int64": "INT64", "int32": "INT32", "bool": "BOOL", "str": "BYTES", "object": "BYTES"}
_NUMERIC = {"FP64", "FP32", "FP16", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "UINT16", "UINT8"}


def _spec(t, shape=None):
    return {"name": t["name"], "datatype": _OIP_OF.get(t["type"], "BYTES"), "shape": t.get("shape") or shape or [-1]}


def _metadata():
    sig = _cfg.get("signature") or {}
    return {
        "name": _cfg.get("modelName"),
        "versions": [_cfg.get("modelVersion")],
        "platform": "mlflow_sklearn",
        "inputs": [_spec(t) for t in sig.get("inputs", [])],
        "outputs": [_spec(t) for t in sig.get("outputs", [])] or [{"name": "predict", "datatype": "FP64", "shape": [-1]}],
    }


def infergate_routes(method, path, body):
    """(status, JSON-able answer) for /v2/... (the worker's hook); errors as {"error": "..."}."""
    try:
        return _v2(method, path, body)
    except RequestError as exc:
        return exc.status, {"error": str(exc)}
    except Exception as exc:  # noqa: BLE001
        answer = _model_failed(exc)
        return answer.status_code, json.loads(answer.get_data())


def _v2(method, path, body):
    if path == "/v2/health/live":
        return 200, {"live": True}
    if path == "/v2/health/ready":
        return 200, {"ready": True}
    if path in ("/v2", "/v2/"):
        return 200, {"name": "infergate", "version": "1", "extensions": []}
    parts = path.split("/")  # ['', 'v2', 'models', name, ('versions', v), (action)]
    if len(parts) < 4 or parts[2] != "models":
        raise RequestError("Not found: %s" % path, 404)
    import urllib.parse
    name = urllib.parse.unquote(parts[3])
    rest = parts[4:]
    version = None
    if len(rest) >= 2 and rest[0] == "versions":
        version = urllib.parse.unquote(rest[1])
        rest = rest[2:]
    action = rest[0] if rest else ""
    if len(rest) > 1 or action not in ("", "ready", "infer"):
        raise RequestError("Not found: %s" % path, 404)
    if name != _cfg.get("modelName"):
        raise RequestError("Request for unknown model: '%s' is not found; this deployment serves '%s'" % (name, _cfg.get("modelName")), 404)
    if version is not None and version != _cfg.get("modelVersion"):
        raise RequestError("Request for unknown model: '%s' version %s is not found; the version served is %s"
                           % (name, version, _cfg.get("modelVersion")), 404)
    if action == "infer":
        if method != "POST":
            raise RequestError("infer takes POST", 405)
        return 200, _infer(body)
    if method not in ("GET", "HEAD"):
        raise RequestError("%s is not allowed here" % method, 405)
    if action == "ready":
        return 200, {"name": name, "ready": True}
    return 200, _metadata()


def _infer(body):
    doc = _json_body(bytes(body))
    if not isinstance(doc, dict) or not isinstance(doc.get("inputs"), list) or not doc["inputs"]:
        raise RequestError("The request needs 'inputs': a list of {name, shape, datatype, data}.")
    tensors = []
    for i, t in enumerate(doc["inputs"]):
        if not isinstance(t, dict) or not isinstance(t.get("name"), str):
            raise RequestError("inputs[%d] needs a name." % i)
        shape = t.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise RequestError("Input '%s': shape must be a list of non-negative whole numbers." % t["name"])
        if not isinstance(t.get("datatype"), str):
            raise RequestError("Input '%s': datatype is missing." % t["name"])
        if "data" not in t:
            raise RequestError("Input '%s': data is missing (the binary tensor extension is not supported)." % t["name"])
        try:
            data = np.array(t["data"], dtype=object).reshape(-1).tolist() if isinstance(t["data"], list) else [t["data"]]
        except ValueError as exc:  # more than numpy's 32 dimensions
            raise RequestError("Input '%s': data is not a tensor: %s" % (t["name"], exc))
        count = 1
        for d in shape:
            count *= d
        if len(data) != count:
            raise RequestError("Input '%s': %d values for shape %s (%d expected)." % (t["name"], len(data), shape, count))
        tensors.append((t["name"], shape, t["datatype"], data))
    by_name = {t[0]: t for t in tensors}
    if _columns is not None and all(n in by_name for n, _ in _columns):
        # One input per column (as MLServer serves MLflow models), each [rows] or [rows, 1].
        for n, kind in _columns:
            want = _OIP_OF.get(kind, "BYTES")
            got = by_name[n][2]
            if got != want and not (want in _NUMERIC and got in _NUMERIC and kind in _FLOAT):
                raise RequestError("Input '%s': datatype %s does not match the signature's %s (%s)." % (n, got, want, kind))
        rows = len(by_name[_columns[0][0]][3])
        for n, _ in _columns:
            if len(by_name[n][3]) != rows:
                raise RequestError("Input '%s' has %d values; '%s' has %d: every column needs one value per row."
                                   % (n, len(by_name[n][3]), _columns[0][0], rows))
        names = [n for n, _ in _columns]
        result = _predict_answer(names, [list(r) for r in zip(*(by_name[n][3] for n in names))], None)
    elif len(tensors) == 1:
        name, shape, datatype, data = tensors[0]
        if _columns is not None and len(shape) != 2:
            missing = [n for n, _ in _columns if n not in by_name]
            raise RequestError("Model is missing inputs %s: send one input per column, or one [rows, %d] tensor."
                               % (missing, len(_columns)))
        if datatype not in _NUMERIC and datatype not in ("BOOL", "BYTES"):
            raise RequestError("Input '%s': datatype %s is not an Open Inference Protocol datatype." % (name, datatype))
        try:
            arr = np.array(data).reshape(shape) if shape else np.array(data)
        except (ValueError, OverflowError) as exc:  # nested lists left in data: a ragged tensor
            raise RequestError("Input '%s': data is not a regular tensor of shape %s: %s" % (name, shape, exc))
        result = _predict_answer(None, None, arr.tolist())
    else:
        missing = [n for n, _ in (_columns or []) if n not in by_name]
        raise RequestError("Model is missing inputs %s." % missing if missing else
                           "The model takes one tensor input; got %d inputs." % len(tensors))
    arr = np.asarray(result)
    out = {
        "model_name": _cfg.get("modelName"),
        "model_version": _cfg.get("modelVersion"),
        "outputs": [{"name": _output_name(), "shape": list(arr.shape), "datatype": _datatype(arr), "data": arr.reshape(-1).tolist()}],
    }
    if isinstance(doc.get("id"), str):
        out["id"] = doc["id"]
    return out


def _output_name():
    outputs = (_cfg.get("signature") or {}).get("outputs") or []
    return outputs[0]["name"] if outputs else "predict"


def _datatype(arr):
    k = arr.dtype.kind
    if k == "f":
        return "FP32" if arr.dtype.itemsize == 4 else "FP64"
    if k in "iu":
        return "INT32" if arr.dtype.itemsize == 4 else "INT64"
    if k == "b":
        return "BOOL"
    return "BYTES"
