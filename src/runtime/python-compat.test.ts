// The Python compat modules (src/runtime/python/compat) on their own: the parts of Flask's request /
// response API and of inference-schema that scoring scripts use, checked from Python with the compat
// folder on sys.path, as the worker puts it (at the end).

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const COMPAT = fileURLToPath(new URL('./python/compat', import.meta.url));
const PYTHON = '/usr/bin/python3';

/** Runs a Python snippet with compat/ at the end of sys.path; returns its stdout (the test fails on an error). */
function py(code: string): string {
  const r = spawnSync(PYTHON, ['-B', '-c', `import sys\nsys.path.append(${JSON.stringify(COMPAT)})\n${code}`], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout.trim();
}

describe('compat: AMLRequest', () => {
  it('parses multipart/form-data byte for byte, with RFC 2231 and UTF-8 file names', () => {
    const out = py(`
from azureml.contrib.services.aml_request import AMLRequest
body = (b'preamble\\r\\n--XyZ\\r\\n'
        b'Content-Disposition: form-data; name="note"\\r\\n\\r\\nh\\xc3\\xa9llo\\r\\n'
        b'--XyZ\\r\\n'
        b'Content-Disposition: form-data; name="file"; filename*=UTF-8\\'\\'na%C3%AFve.bin\\r\\n'
        b'Content-Type: application/octet-stream\\r\\n\\r\\n\\x00\\r\\n--X\\r\\n\\xff\\r\\n'
        b'--XyZ\\r\\n'
        b'Content-Disposition: form-data; name="file"; filename="b.txt"\\r\\n\\r\\nsecond\\r\\n'
        b'--XyZ--\\r\\nepilogue')
req = AMLRequest("POST", "/score", [("content-type", "multipart/form-data; boundary=XyZ")], body)
files = req.files.getlist("file")
print(req.form["note"], [f.filename for f in files], files[0].read() == b'\\x00\\r\\n--X\\r\\n\\xff', files[0].mimetype, files[1].content_type, bool(files[1]))
print(repr(req.data), len(req.get_data()), "note" in req.values, req.files.get("missing"))
`);
    assert.equal(out, "héllo ['naïve.bin', 'b.txt'] True application/octet-stream None True\nb'' 307 True None");
  });

  it('gives urlencoded forms, query arguments, headers and JSON as Flask does', () => {
    const out = py(`
from azureml_inference_server_http.api.aml_request import AMLRequest
req = AMLRequest("POST", "/score?a=1&a=2&b=x%20y", [("content-type", "application/x-www-form-urlencoded"), ("x-custom-thing", "v"), ("cookie", "s=1; t=2")], b"k=v&k=w&e=")
print(req.args.getlist("a", type=int), req.args["b"], req.form.getlist("k"), repr(req.form["e"]), req.full_path, req.url)
print(req.headers["X-CUSTOM-THING"], req.headers.get("missing", "dflt"), dict(req.headers)["X-Custom-Thing"], req.cookies.to_dict(), req.environ["HTTP_X_CUSTOM_THING"])
try:
    req.form["nope"]
except KeyError as e:
    print("KeyError", e.code)
try:
    req.get_json()
except Exception as e:
    print(type(e).__name__, e.code)
j = AMLRequest("POST", "/score", [("content-type", "application/vnd.api+json")], b'{"x": [1]}')
print(j.is_json, j.json, AMLRequest("POST", "/score", [("content-type", "application/json")], b"{").get_json(silent=True))
print(AMLRequest("GET", "/score", [], b"").full_path)
`);
    assert.equal(
      out,
      [
        "[1, 2] x y ['v', 'w'] '' /score?a=1&a=2&b=x%20y http://localhost/score?a=1&a=2&b=x%20y",
        "v dflt v {'s': '1', 't': '2'} v",
        'KeyError 400',
        'UnsupportedMediaType 415',
        "True {'x': [1]} None",
        '/score?',
      ].join('\n'),
    );
  });
});

describe('compat: AMLResponse', () => {
  it("follows azmlinfsrv's constructor and Flask's setters", () => {
    const out = py(`
from azureml.contrib.services.aml_response import AMLResponse
r = AMLResponse("No file uploaded", status_code=422)
print(r.status_code, r.status, r.content_type, r.get_data(), r.headers["x-ms-run-function-failed"])
j = AMLResponse({"a": 1}, 201, {"X-Tags": "a, b", "Content-Type": "application/problem+json"}, json_str=True, run_function_failed=True)
print(j.headers.getlist("Content-Type"), j.headers.getlist("x-tags"), j.headers["X-MS-RUN-FUNCTION-FAILED"], j.get_json())
n = AMLResponse(None, 200)
b = AMLResponse(b"\\x89PNG", 200, {"Content-Type": "image/png"})
print(n.get_data(), n.mimetype, b.headers.getlist("content-type"), b.content_length)
b.mimetype = "text/csv"
b.status = "404 NOT FOUND"
b.data = "é"
print(b.content_type, b.status_code, b.get_data(), repr(b))
`);
    assert.equal(
      out,
      [
        '422 422 UNPROCESSABLE ENTITY text/html; charset=utf-8 b\'No file uploaded\' False',
        "['application/json', 'application/problem+json'] ['a', 'b'] True {'a': 1}",
        "b'{}' application/json ['image/png'] 4",
        "text/csv; charset=utf-8 404 b'\\xc3\\xa9' <AMLResponse 2 bytes [404 NOT FOUND]>",
      ].join('\n'),
    );
  });
});

describe('compat: inference_schema', () => {
  it('describes standard samples as inference-schema does', () => {
    const out = py(`
import datetime, json
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType as S
for sample in (1, 1.5, "s", True, b"ab", datetime.date(2024, 1, 2), [1, 2], {"k": [0.5], "n": S(3)}):
    print(json.dumps(S(sample).input_to_swagger(), sort_keys=True))
`);
    assert.deepEqual(out.split('\n').map((l) => JSON.parse(l) as unknown), [
      { type: 'integer', format: 'int64', example: 1 },
      { type: 'number', format: 'double', example: 1.5 },
      { type: 'string', example: 's' },
      { type: 'boolean', example: true },
      { type: 'string', format: 'byte', example: 'YWI=' },
      { type: 'string', format: 'date', example: '2024-01-02' },
      { type: 'array', items: { type: 'integer', format: 'int64' }, example: [1, 2] },
      { type: 'object', required: ['k', 'n'], properties: { k: { type: 'array', items: { type: 'number', format: 'double' } }, n: { type: 'integer', format: 'int64' } }, example: { k: [0.5], n: 3 } },
    ]);
  });

  it('converts nested parameter types and reports values that do not fit', () => {
    const out = py(`
import numpy as np
from inference_schema.schema_decorators import input_schema
from inference_schema.schema_util import is_schema_decorated, get_supported_versions
from inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType as S
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType as N

@input_schema("p", S({"arr": N(np.array([[1, 2]], dtype=np.int32)), "when": S(__import__("datetime").date(2020, 1, 1)), "plain": 0}))
def run(p):
    return type(p["arr"]).__name__, str(p["arr"].dtype), p["plain"]

print(run(p={"arr": [[3, 4], [5, 6]], "when": "2021-05-06", "plain": 7}), is_schema_decorated(run), get_supported_versions(run))
print(run({"arr": [[1, 2]], "plain": 1}))
for bad in ({"arr": [[1, 2, 3]]}, "text"):
    try:
        run(p=bad)
    except ValueError as e:
        print(type(e).__name__, e)
`);
    assert.equal(
      out,
      [
        "('ndarray', 'int32', 7) True ['2.0', '3.0', '3.1']",
        "('ndarray', 'int32', 1)",
        "SchemaInputError Invalid value for the 'p' parameter: Invalid input array: array has size 3 on dimension #1, while expected value is 2",
        "SchemaInputError Invalid value for the 'p' parameter: expected a JSON object, got a string",
      ].join('\n'),
    );
  });
});
