// Issue #5's scoring-script parity, end to end: the Python fixtures that src/cli/serve.test.ts and
// src/runtime/scoring-modes.test.ts check through `infergate serve` and the instance host, deployed with the
// real CLI on a real server and reached as a user reaches them — the router's scoring URI with a key.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES, run, until, Workspace } from './harness.js';

const PYTHON = '/usr/bin/python3';
const hasModule = (m: string) => spawnSync(PYTHON, ['-c', `import ${m}`]).status === 0;
const HAS_PANDAS = hasModule('pandas');
const HAS_PIL = hasModule('PIL');
const NO_PANDAS = 'pandas is not installed for /usr/bin/python3 (apt-get install python3-pandas)';
const NO_PIL = 'Pillow is not installed for /usr/bin/python3 (apt-get install python3-pil)';
const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
const RUN_FAILED = '{"message": "An unexpected error occurred in scoring script. Check the logs for more info."}';

/** The schemas the schema fixtures publish (shared with src/runtime/scoring-modes.test.ts). */
const SCHEMAS = JSON.parse(readFileSync(join(FIXTURES, 'swagger-schemas.json'), 'utf8')) as Record<'standard' | 'numpy' | 'pandas', { input: unknown; output?: unknown }>;

const ws = new Workspace();
let yamlDir = '';
const keys: Record<string, string> = {};
const uris: Record<string, string> = {};
const openapi: Record<string, string> = {};

const ok = (args: string[]) => ws.ok(args);

async function deploy(endpoint: string, name: string, fixture: string, allTraffic = false): Promise<void> {
  const file = join(yamlDir, `${endpoint}-${name}.yml`);
  writeFileSync(file, [
    '$schema: https://azuremlschemas.azureedge.net/latest/managedOnlineDeployment.schema.json',
    `name: ${name}`,
    `endpoint_name: ${endpoint}`,
    'code_configuration:',
    `  code: ${join(FIXTURES, fixture)}`,
    '  scoring_script: score.py',
    'instance_type: Standard_DS3_v2',
    'instance_count: 1',
    '',
  ].join('\n'));
  await ok(['online-deployment', 'create', '-f', file, ...(allTraffic ? ['--all-traffic'] : [])]);
}

/** One endpoint and its deployments; the first takes all the traffic, the others answer only when pinned. */
async function endpoint(name: string, deployments: [string, string][]): Promise<void> {
  await ok(['online-endpoint', 'create', '-n', name]);
  await Promise.all(deployments.map(([d, fixture], i) => deploy(name, d, fixture, i === 0)));
  keys[name] = (await ok(['online-endpoint', 'get-credentials', '-n', name, '-o', 'tsv', '--query', 'primaryKey'])).trim();
  uris[name] = (await ok(['online-endpoint', 'show', '-n', name, '-o', 'tsv', '--query', 'scoring_uri'])).trim();
  openapi[name] = (await ok(['online-endpoint', 'show', '-n', name, '-o', 'tsv', '--query', 'openapi_uri'])).trim();
}

interface Answer {
  status: number;
  headers: Headers;
  body: Buffer;
  text: string;
}

async function call(url: string, init: RequestInit): Promise<Answer> {
  const r = await fetch(url, init);
  const body = Buffer.from(await r.arrayBuffer());
  return { status: r.status, headers: r.headers, body, text: body.toString() };
}

interface ScoreOptions {
  method?: string;
  query?: string;
  headers?: Record<string, string>;
  body?: BodyInit;
  deployment?: string;
}

function score(name: string, o: ScoreOptions = {}): Promise<Answer> {
  const headers: Record<string, string> = { authorization: `Bearer ${keys[name]}`, ...o.headers };
  if (o.deployment !== undefined) headers['azureml-model-deployment'] = o.deployment;
  return call(uris[name] + (o.query ?? ''), { method: o.method ?? 'POST', headers, body: o.body });
}

function postJson(name: string, value: unknown, o: ScoreOptions = {}): Promise<Answer> {
  return score(name, { ...o, headers: { 'content-type': 'application/json', ...o.headers }, body: JSON.stringify(value) });
}

/** GET <openapi_uri>: no Authorization header, as Azure serves it. */
function swagger(name: string, query = '', deployment?: string): Promise<Answer> {
  return call(openapi[name] + query, { headers: deployment === undefined ? {} : { 'azureml-model-deployment': deployment } });
}

const json = (a: Answer) => JSON.parse(a.text) as Record<string, any>;

/** The managed front end's shape for a model answer other than 200 (README "Scoring URI"). */
function assertModelStatus(a: Answer, status: number, reason?: string): void {
  assert.equal(a.status, 424, `expected the model's ${status} inside a 424, got ${a.status}: ${a.text}`);
  assert.equal(a.headers.get('ms-azureml-model-error-statuscode'), String(status));
  if (reason !== undefined) assert.equal(a.headers.get('ms-azureml-model-error-reason'), reason);
}

/** A 3x2 binary PPM whose pixel bytes include CR, LF and the boundary-like "--" (as scoring-modes.test.ts). */
function ppm(): { image: Buffer; negative: Buffer } {
  return withNegative(Buffer.from('P6\n# a comment\n3 2\n255\n'), Buffer.from([0, 13, 10, 45, 45, 255, 1, 2, 3, 200, 100, 50, 13, 10, 13, 10, 0, 7]));
}

function withNegative(head: Buffer, pixels: Buffer): { image: Buffer; negative: Buffer } {
  return { image: Buffer.concat([head, pixels]), negative: Buffer.concat([head, Buffer.from(pixels.map((b) => 255 - b))]) };
}

before(async () => {
  await ws.startServer();
  yamlDir = join(ws.dir, 'scratch', 'yaml');
  mkdirSync(yamlDir, { recursive: true });
  await Promise.all([
    endpoint('ss-raw', [['raw', 'py-rawhttp'], ...(HAS_PIL ? [['binary', 'py-binary-payload'] as [string, string]] : [])]),
    endpoint('ss-schema', [['standard', 'py-schema-standard'], ['numpy', 'py-schema-numpy'], ...(HAS_PANDAS ? [['pandas', 'py-schema-pandas'] as [string, string]] : [])]),
    endpoint('ss-plain', [['plain', 'py-behaviours']]),
  ]);
});
after(async () => {
  if (process.exitCode) console.error(ws.serverLog);
  await ws.dispose();
});

// ---- @rawhttp ------------------------------------------------------------------------------------------

test('@rawhttp: a multipart/form-data upload comes back as the negative image, byte for byte', async () => {
  const { image, negative } = ppm();
  const form = new FormData();
  form.append('caption', 'négatif');
  form.append('file', new Blob([image as Uint8Array<ArrayBuffer>], { type: 'image/x-portable-pixmap' }), 'photo.ppm');
  const r = await score('ss-raw', { body: form });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'image/x-portable-pixmap');
  assert.equal(r.headers.get('content-disposition'), 'attachment; filename="negative-photo.ppm"');
  assert.equal(r.headers.get('x-caption'), 'négatif');
  assert.equal(r.headers.get('x-ms-run-function-failed'), 'False');
  assert.equal(r.headers.get('azureml-model-deployment'), 'raw');
  assert.match(r.headers.get('x-request-id') ?? '', GUID);
  assert.equal(r.headers.get('content-length'), String(negative.length));
  assert.deepEqual(r.body, negative);
});

test('@rawhttp: `curl -F file=@photo.ppm` with the key, as the script\'s docstring says, for a 768 KiB image', async () => {
  // Big enough to arrive at the router, and leave it, in many chunks; random, so every byte value occurs.
  const { image, negative } = withNegative(Buffer.from('P6\n512 512\n255\n'), randomBytes(512 * 512 * 3));
  const photo = join(yamlDir, 'photo.ppm');
  const out = join(yamlDir, 'negative.ppm');
  writeFileSync(photo, image);
  const r = await run('curl', ['-sS', '-F', `file=@${photo}`, '-H', `Authorization: Bearer ${keys['ss-raw']}`, uris['ss-raw'], '--output', out, '-w', '%{http_code} %{content_type}']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, '200 image/x-portable-pixmap');
  assert.ok(readFileSync(out).equals(negative), 'the answer is the negative, byte for byte');
});

test('@rawhttp: an AMLResponse with another status reaches the client as 424 with the model\'s status in ms-azureml-model-error-statuscode', async () => {
  const none = new FormData();
  none.append('caption', 'no file');
  const r422 = await score('ss-raw', { body: none });
  assertModelStatus(r422, 422, 'Unprocessable Entity');
  assert.equal(r422.text, 'No file uploaded');
  assert.equal(r422.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(r422.headers.get('x-ms-run-function-failed'), 'False');
  assert.equal(r422.headers.get('azureml-model-deployment'), 'raw');

  const r503 = await score('ss-raw', { method: 'GET', query: '?status=503' });
  assertModelStatus(r503, 503, 'Service Unavailable');
  assert.equal(r503.text, 'status 503 requested');
  assert.equal(r503.headers.get('x-ms-run-function-failed'), 'True');

  // json_str=True, a 202 and a header value with a comma, which the script sends as two headers.
  const r202 = await postJson('ss-raw', { a: [1, 2] });
  assertModelStatus(r202, 202);
  assert.equal(r202.text, '{"received": {"a": [1, 2]}, "data_bytes": 11}');
  assert.equal(r202.headers.get('content-type'), 'application/json');
  assert.equal(r202.headers.get('x-answer'), 'a, b');
  // fetch joins repeated headers; curl -i shows they stay two on the wire, as azmlinfsrv sends them.
  const wire = await run('curl', ['-sS', '-i', '-H', `Authorization: Bearer ${keys['ss-raw']}`, '-H', 'Content-Type: application/json', '--data', '{"a":[1,2]}', uris['ss-raw']]);
  const head = wire.stdout.slice(0, wire.stdout.indexOf('\r\n\r\n'));
  assert.match(head, /^HTTP\/1\.1 424 /);
  assert.deepEqual([...head.matchAll(/^x-answer: (.*)$/gim)].map((m) => m[1]), ['a', 'b']);

  assert.equal((await call(uris['ss-raw'], { method: 'POST', body: none })).status, 401, 'scoring needs the key');
});

test('@rawhttp: run() sees the path, query arguments and headers the client sent to the scoring URI', async () => {
  const r = await score('ss-raw', { method: 'GET', query: '?n=5&n=6&tag=a%20b', headers: { 'user-agent': 'curl/8', 'x-custom': '1' } });
  assert.equal(r.status, 200, r.text);
  assert.deepEqual(json(r), { path: '/score', full_path: '/score?n=5&n=6&tag=a%20b', args: { n: ['5', '6'], tag: ['a b'] }, first_n: 5, user_agent: 'curl/8', has_custom: true });
});

test('@rawhttp with Pillow (Azure\'s binary-payloads pattern): an uploaded PNG comes back as a 128x128 JPEG', { skip: HAS_PIL ? false : NO_PIL }, async () => {
  const png = spawnSync(PYTHON, ['-c', 'import io,sys\nfrom PIL import Image\nb=io.BytesIO()\nImage.new("RGB",(300,200),(200,30,30)).save(b,format="PNG")\nsys.stdout.buffer.write(b.getvalue())']).stdout;
  const form = new FormData();
  form.append('file', new Blob([png], { type: 'image/png' }), 'red.png');
  const r = await score('ss-raw', { body: form, deployment: 'binary' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('content-type'), 'image/jpg');
  assert.equal(r.headers.get('azureml-model-deployment'), 'binary');
  const size = spawnSync(PYTHON, ['-c', 'import io,sys\nfrom PIL import Image\nim=Image.open(io.BytesIO(sys.stdin.buffer.read()))\nprint(im.format, im.size)'], { input: r.body, encoding: 'utf8' });
  assert.equal(size.stdout.trim(), 'JPEG (128, 128)', size.stderr);
  const none = await score('ss-raw', { deployment: 'binary', headers: { 'content-type': 'multipart/form-data; boundary=x' }, body: '--x--\r\n' });
  assertModelStatus(none, 422, 'Unprocessable Entity');
  assert.equal(none.text, 'No file uploaded');
});

// ---- @input_schema / @output_schema ----------------------------------------------------------------------

test('@input_schema with standard types: run() gets keyword arguments converted to the declared types', async () => {
  const r = await postJson('ss-schema', { sepal_length: [7.2, 4], sepal_width: [3.2, 3.5], species: 'virginica', count: 3 }, { headers: { 'user-agent': 'tests/1' } });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('azureml-model-deployment'), 'standard');
  assert.equal(r.headers.get('x-ms-run-function-failed'), 'False');
  assert.deepEqual(json(r), { types: ['list', 'list', 'str', 'int'], sepal_length: [7.2, 4], sepal_width: [3.2, 3.5], species: 'virginica', count: 3, user_agent: 'tests/1' });

  const defaulted = await postJson('ss-schema', { sepal_length: [1.5], sepal_width: [2.5], species: 'setosa' });
  assert.equal(json(defaulted).count, 1, 'a parameter with a default may be left out');

  const get = await score('ss-schema', { method: 'GET', query: '?sepal_length=[1.5]&sepal_width=[2]&species=setosa&count=4' });
  assert.equal(get.status, 200, get.text);
  assert.deepEqual(json(get).types, ['list', 'list', 'str', 'int']);
  assert.equal(json(get).count, 4);
});

test('@input_schema with standard types: bad input is the model\'s 400 (or 415) with azmlinfsrv\'s message, inside a 424', async () => {
  const cases: [string, string, number, string][] = [
    ['application/json', JSON.stringify({ sepal_length: [1.0], species: 'setosa' }), 400, "A value is not provided for the 'sepal_width' parameter."],
    ['application/json', JSON.stringify({ sepal_length: 'long', sepal_width: [1.0], species: 'setosa' }), 400, "Invalid value for the 'sepal_length' parameter: expected a JSON array, got a string"],
    ['application/json', JSON.stringify({ sepal_length: [1.0], sepal_width: [1.0], species: 'setosa', count: 1.5 }), 400, "Invalid value for the 'count' parameter: expected an integer, got a number"],
    ['application/json; charset=utf-8', '', 400, 'POST body is empty. Expecting a JSON dictionary.'],
    ['application/json; charset=utf-8', '{"species": ', 400, 'POST body could not be decoded as JSON: Expecting value: line 1 column 13 (char 12)'],
    ['application/json', '[1, 2]', 400, 'POST body should be a JSON dictionary.'],
    ['text/plain', '{"species": "x"}', 415, 'Expects Content-Type to be application/json'],
  ];
  for (const [type, body, status, message] of cases) {
    const r = await score('ss-schema', { headers: { 'content-type': type }, body });
    assertModelStatus(r, status, status === 400 ? 'Bad Request' : 'Unsupported Media Type');
    assert.deepEqual(json(r), { message }, `${type} ${body}`);
    assert.equal(r.headers.get('azureml-model-deployment'), 'standard');
  }
});

test('@input_schema with standard types: GET <openapi_uri> serves the swagger document, versions 2, 3 and 3.1, without a key', async () => {
  assert.equal(openapi['ss-schema'], uris['ss-schema'].replace(/\/score$/, '/swagger.json'));
  const expectedInput = SCHEMAS.standard.input;
  const expectedOutput = SCHEMAS.standard.output;
  // Unpinned: the deployment with the traffic answers.
  const v2 = await swagger('ss-schema');
  assert.equal(v2.status, 200, v2.text);
  assert.equal(v2.headers.get('content-type'), 'application/json');
  assert.equal(v2.headers.get('azureml-model-deployment'), 'standard');
  const d2 = json(v2);
  assert.equal(d2.swagger, '2.0');
  assert.deepEqual(d2.info, { title: 'ML service', description: 'API specification for the Azure Machine Learning service ML service', version: '1.0' });
  assert.deepEqual(Object.keys(d2.paths), ['/', '/score', '/swagger.json']);
  assert.deepEqual(d2.definitions.ServiceInput, expectedInput);
  assert.deepEqual(d2.definitions.ServiceOutput, expectedOutput);
  assert.deepEqual(json(await swagger('ss-schema', '?version=2.0')), d2);
  assert.deepEqual((await swagger('ss-schema', '', 'standard')).body, v2.body, 'pinned or not, the same document');

  const v3 = json(await swagger('ss-schema', '?version=3'));
  assert.equal(v3.openapi, '3.0.3');
  assert.deepEqual(v3.components.schemas.ServiceInput, expectedInput);
  assert.deepEqual(v3.components.schemas.ServiceOutput, expectedOutput);
  const v31 = json(await swagger('ss-schema', '?version=3.1'));
  assert.equal(v31.openapi, '3.1.0');
  assert.deepEqual(v31.components.schemas.ServiceInput, expectedInput);
});

test('@input_schema with numpy (pinned with azureml-model-deployment): an ndarray of the sample dtype, 400 for a wrong shape, its own swagger', async () => {
  const r = await postJson('ss-schema', { data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]] }, { deployment: 'numpy' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('azureml-model-deployment'), 'numpy');
  const out = json(r) as { type: string; dtype: string; shape: number[]; output: number[] };
  assert.deepEqual([out.type, out.dtype, out.shape], ['ndarray', 'float64', [2, 10]]);
  assert.equal(out.output.length, 2);
  assert.ok(Math.abs(out.output[0] - 11055.977245525679) < 1e-6 && Math.abs(out.output[1] - 4503.079536107787) < 1e-6, String(out.output));

  const bad = await postJson('ss-schema', { data: [[1, 2, 3]] }, { deployment: 'numpy' });
  assertModelStatus(bad, 400, 'Bad Request');
  assert.deepEqual(json(bad), { message: "Invalid value for the 'data' parameter: Invalid input array: array has size 3 on dimension #1, while expected value is 10" });

  const expectedInput = SCHEMAS.numpy.input;
  const v3 = await swagger('ss-schema', '?version=3', 'numpy');
  assert.equal(v3.status, 200, v3.text);
  assert.equal(v3.headers.get('azureml-model-deployment'), 'numpy');
  assert.deepEqual(json(v3).components.schemas.ServiceInput, expectedInput);
  const v2 = json(await swagger('ss-schema', '', 'numpy'));
  assert.equal(v2.swagger, '2.0');
  assert.deepEqual(v2.definitions.ServiceInput, expectedInput);
  assert.deepEqual(v2.definitions.ServiceOutput, SCHEMAS.numpy.output);
});

test('@input_schema with pandas (pinned): a DataFrame with the sample column types, 400 for a missing column, its own swagger', { skip: HAS_PANDAS ? false : NO_PANDAS }, async () => {
  const r = await postJson('ss-schema', { frame: [{ name: 'Ann', age: 31, height: 2 }, { name: 'Bo', age: 40, height: 1.5 }] }, { deployment: 'pandas' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.headers.get('azureml-model-deployment'), 'pandas');
  assert.deepEqual(json(r), {
    type: 'DataFrame',
    columns: ['name', 'age', 'height'],
    dtypes: { name: 'object', age: 'int64', height: 'float64' },
    rows: 2,
    mean_age: 35.5,
    records: [{ name: 'Ann', age: 31, height: 2.0 }, { name: 'Bo', age: 40, height: 1.5 }],
  });

  const bad = await postJson('ss-schema', { frame: [{ name: 'Ann', age: 31 }] }, { deployment: 'pandas' });
  assertModelStatus(bad, 400, 'Bad Request');
  assert.deepEqual(json(bad), { message: "Invalid value for the 'frame' parameter: Invalid input data frame: data frame has size 2 on dimension #1, while expected value is 3" });

  const expectedInput = SCHEMAS.pandas.input;
  const v2 = await swagger('ss-schema', '', 'pandas');
  assert.equal(v2.status, 200, v2.text);
  assert.equal(v2.headers.get('azureml-model-deployment'), 'pandas');
  assert.deepEqual(json(v2).definitions.ServiceInput, expectedInput);
  assert.deepEqual(json(await swagger('ss-schema', '?version=3', 'pandas')).components.schemas.ServiceInput, expectedInput);
});

test('swagger.json of an endpoint: an unknown pinned deployment is 404; no key needed, but scoring still needs one', async () => {
  const unknown = await swagger('ss-schema', '', 'purple');
  assert.equal(unknown.status, 404);
  assert.deepEqual(json(unknown), { message: "Deployment 'purple' not found in endpoint 'ss-schema'" });
  const raw = await swagger('ss-raw');
  assert.equal(raw.status, 200, raw.text);
  // @rawhttp declares no schema: azmlinfsrv's placeholder.
  assert.deepEqual(json(raw).definitions.ServiceInput, { type: 'object', example: {} });
  const noKey = await call(uris['ss-schema'], { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(noKey.status, 401);
});

// ---- undecorated run(raw_data, request_headers) -----------------------------------------------------------

test('undecorated run(): request_headers carry the router\'s x-request-id, a module next to score.py imports, the bytes are Python\'s json.dumps', async () => {
  const h = await postJson('ss-plain', { op: 'headers' }, { headers: { 'x-custom': 'v', 'x-ms-client-request-id': 'cli-1' } });
  assert.equal(h.status, 200, h.text);
  const seen = json(h);
  // Flask-style Title-Case names, as azmlinfsrv gives them.
  assert.equal(seen['Content-Type'], 'application/json');
  assert.equal(seen['X-Custom'], 'v');
  assert.equal(seen['X-Ms-Client-Request-Id'], 'cli-1');
  assert.equal(seen['X-Request-Id'], h.headers.get('x-request-id'), 'the script sees the request id the client gets back');
  assert.equal(h.headers.get('x-ms-client-request-id'), 'cli-1');

  assert.equal((await postJson('ss-plain', { op: 'helper' })).text, '42');

  const floats = await postJson('ss-plain', { op: 'floats' });
  const py = spawnSync(PYTHON, ['-c', 'import json; print(json.dumps([float("nan"), float("inf"), -float("inf"), 1e16, 1e-05, 1.0, 0.1, "\\u00e9\\u20ac\\U0001F600"]))'], { encoding: 'utf8' });
  assert.equal(floats.text, py.stdout.trimEnd());
});

test('undecorated run() raising: the script\'s 500 inside a 424, the traceback in get-logs', async () => {
  const r = await postJson('ss-plain', { op: 'raise', why: 'through the router' });
  assertModelStatus(r, 500, 'Internal Server Error');
  assert.equal(r.text, RUN_FAILED);
  assert.equal(r.headers.get('x-ms-run-function-failed'), 'True');
  await until('the traceback in get-logs', async () => {
    const logs = await ws.cli(['online-deployment', 'get-logs', '-n', 'plain', '-e', 'ss-plain']);
    return /ValueError: scoring exploded: through the router/.test(logs.stdout) && /Traceback/.test(logs.stdout);
  }, 10_000, 200);
});
