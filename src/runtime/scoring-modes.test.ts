// Inference-server parity through the instance host with real frames (issue #5 items 1, 2, 7): the
// @input_schema / @rawhttp / AMLResponse compat modules, the routes (/, /score, /swagger.json, 404, 405),
// and the JavaScript counterparts (inputSchema, rawHttp with WHATWG Request / Response). Scripts are the
// fixtures in test/fixtures/, written as a user would.

import assert from 'node:assert/strict';
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { decodeResponse, encodeRequestHead, FrameReader, type HeaderList, type ResponseFrame } from '../protocol/frame.js';
import type { HostMessage } from '../protocol/messages.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const HOST = join(ROOT, 'src/runtime/host.ts');
const FIXTURES = join(ROOT, 'test/fixtures');
/** The schemas the schema fixtures publish (shared with the end-to-end test). */
const SCHEMAS = JSON.parse(readFileSync(join(FIXTURES, 'swagger-schemas.json'), 'utf8')) as Record<'standard' | 'numpy' | 'pandas', { input: unknown; output?: unknown }>;
const PYTHON = '/usr/bin/python3';
const hasModule = (m: string) => spawnSync(PYTHON, ['-c', `import ${m}`]).status === 0;
const HAS_PANDAS = hasModule('pandas');
const HAS_PIL = hasModule('PIL');

let tmp: string;
let counter = 0;
before(() => {
  tmp = mkdtempSync(join(tmpdir(), 'infergate-modes-'));
});
after(() => rmSync(tmp, { recursive: true, force: true }));

interface Host {
  child: ChildProcess;
  client: Client;
  first: HostMessage;
  stderr(): string;
  stop(): Promise<void>;
}

async function startHost(fixture: string, script: string, env: Record<string, string> = {}): Promise<Host> {
  const socket = join(tmp, `m${++counter}.sock`);
  const child = fork(HOST, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    env: { PATH: process.env.PATH, HOME: process.env.HOME, INFERGATE_SOCKET: socket, AZUREML_ENTRY_SCRIPT: script, AML_APP_ROOT: join(FIXTURES, fixture), AZUREML_MODEL_DIR: tmp, INFERGATE_PYTHON: PYTHON, ...env },
  });
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout!.resume();
  const exited = new Promise<void>((res) => child.on('exit', () => res()));
  const first = await new Promise<HostMessage>((resolve, reject) => {
    child.once('message', resolve);
    void exited.then(() => reject(new Error(`host exited before reporting\n${stderr}`)));
  });
  if (first.type !== 'ready') throw new Error(`host did not start: ${JSON.stringify(first)}\n${stderr}`);
  const client = await Client.connect(socket);
  return {
    child,
    client,
    first,
    stderr: () => stderr,
    async stop() {
      client.close();
      child.kill('SIGTERM');
      await exited;
    },
  };
}

class Client {
  private readonly waiting = new Map<number, (r: ResponseFrame) => void>();
  private nextId = 1;
  private constructor(private readonly sock: net.Socket) {
    const reader = new FrameReader((frame) => {
      const r = decodeResponse(Buffer.from(frame));
      this.waiting.get(r.id)?.(r);
      this.waiting.delete(r.id);
    });
    sock.on('data', (c: Buffer) => reader.push(c));
  }
  static connect(path: string): Promise<Client> {
    return new Promise((res, rej) => {
      const sock = net.connect(path, () => res(new Client(sock)));
      sock.once('error', rej);
    });
  }
  send(method: string, url: string, headers: HeaderList = [], body: Buffer | string = ''): Promise<ResponseFrame> {
    const id = this.nextId++;
    const b = typeof body === 'string' ? Buffer.from(body) : body;
    const p = new Promise<ResponseFrame>((res) => this.waiting.set(id, res));
    this.sock.write(encodeRequestHead(id, method, url, headers, b.length));
    if (b.length > 0) this.sock.write(b);
    return p;
  }
  postJson(value: unknown, url = '/score', extra: HeaderList = []): Promise<ResponseFrame> {
    return this.send('POST', url, [['content-type', 'application/json'], ...extra], JSON.stringify(value));
  }
  close(): void {
    this.sock.end();
  }
}

const header = (r: ResponseFrame, name: string) => r.headers.find(([k]) => k === name)?.[1];
const headerAll = (r: ResponseFrame, name: string) => r.headers.filter(([k]) => k === name).map(([, v]) => v);
const json = (r: ResponseFrame) => JSON.parse(r.body.toString()) as Record<string, unknown>;
const message = (r: ResponseFrame) => (json(r) as { message: string }).message;

/** A multipart/form-data body as a browser or curl -F would send it (WHATWG FormData's own encoder). */
async function multipart(fields: Record<string, string | { name: string; type: string; data: Uint8Array }>): Promise<{ body: Buffer; type: string }> {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) {
    if (typeof v === 'string') form.append(k, v);
    else form.append(k, new Blob([v.data as Uint8Array<ArrayBuffer>], { type: v.type }), v.name);
  }
  const req = new Request('http://localhost/score', { method: 'POST', body: form });
  return { body: Buffer.from(await req.arrayBuffer()), type: req.headers.get('content-type')! };
}

/** A 3x2 binary PPM whose pixel bytes include CR, LF and the boundary-like "--". */
function ppm(): Buffer {
  const pixels = Buffer.from([0, 13, 10, 45, 45, 255, 1, 2, 3, 200, 100, 50, 13, 10, 13, 10, 0, 7]);
  return Buffer.concat([Buffer.from('P6\n# a comment\n3 2\n255\n'), pixels]);
}

// ---- Python ---------------------------------------------------------------------------------------------

describe('Python @input_schema with standard types', () => {
  let h: Host;
  before(async () => {
    h = await startHost('py-schema-standard', 'score.py');
  });
  after(() => h.stop());

  it('logs the input mode and the prepared swagger versions', () => {
    assert.match(h.stderr(), /run\(\) is decorated with @input_schema\. Server will invoke it with the following arguments: sepal_length, sepal_width, species, count\./);
    assert.match(h.stderr(), /azmlinfsrv\.swagger - Swaggers are prepared for the following versions: \[2, 3, 3\.1\]\./);
  });

  it('calls run() with keyword arguments converted to the declared types', async () => {
    const r = await h.client.postJson({ sepal_length: [7.2, 4], sepal_width: [3.2, 3.5], species: 'virginica', count: 3 }, '/score', [['user-agent', 'tests/1']]);
    assert.equal(r.status, 200);
    assert.equal(header(r, 'x-ms-run-function-failed'), 'False');
    assert.deepEqual(json(r), { types: ['list', 'list', 'str', 'int'], sepal_length: [7.2, 4], sepal_width: [3.2, 3.5], species: 'virginica', count: 3, user_agent: 'tests/1' });
  });

  it('leaves out parameters that have a default', async () => {
    const r = await h.client.postJson({ sepal_length: [1.5], sepal_width: [2.5], species: 'setosa' });
    assert.equal(json(r).count, 1);
  });

  it('takes GET query parameters, each JSON-parsed', async () => {
    const r = await h.client.send('GET', '/score?sepal_length=[1.5]&sepal_width=[2]&species=setosa&count=4');
    assert.equal(r.status, 200);
    assert.deepEqual(json(r).types, ['list', 'list', 'str', 'int']);
    assert.equal(json(r).count, 4);
  });

  it('answers 415 without Content-Type: application/json', async () => {
    const r = await h.client.send('POST', '/score', [['content-type', 'text/plain']], '{"species": "x"}');
    assert.equal(r.status, 415);
    assert.equal(r.body.toString(), '{"message": "Expects Content-Type to be application/json"}');
  });

  it("answers azmlinfsrv's 400 messages for bodies that are not a usable JSON object", async () => {
    const ct: HeaderList = [['content-type', 'application/json; charset=utf-8']];
    const empty = await h.client.send('POST', '/score', ct, '');
    assert.equal(empty.status, 400);
    assert.equal(message(empty), 'POST body is empty. Expecting a JSON dictionary.');
    const bad = await h.client.send('POST', '/score', ct, '{"species": ');
    assert.equal(bad.status, 400);
    assert.equal(message(bad), 'POST body could not be decoded as JSON: Expecting value: line 1 column 13 (char 12)');
    const list = await h.client.send('POST', '/score', ct, '[1, 2]');
    assert.equal(message(list), 'POST body should be a JSON dictionary.');
    const missing = await h.client.postJson({ sepal_length: [1.0], species: 'setosa' });
    assert.equal(missing.status, 400);
    assert.equal(message(missing), "A value is not provided for the 'sepal_width' parameter.");
  });

  it('answers 400 with the reason when a value does not fit its declared type', async () => {
    const r = await h.client.postJson({ sepal_length: 'long', sepal_width: [1.0], species: 'setosa' });
    assert.equal(r.status, 400);
    assert.equal(message(r), "Invalid value for the 'sepal_length' parameter: expected a JSON array, got a string");
    const count = await h.client.postJson({ sepal_length: [1.0], sepal_width: [1.0], species: 'setosa', count: 1.5 });
    assert.equal(message(count), "Invalid value for the 'count' parameter: expected an integer, got a number");
  });

  it('answers OPTIONS /score with 200 and an empty body', async () => {
    const r = await h.client.send('OPTIONS', '/score');
    assert.equal(r.status, 200);
    assert.equal(r.body.length, 0);
  });

  it('publishes the decorators in /swagger.json, versions 2 (default), 3 and 3.1', async () => {
    const expectedInput = SCHEMAS.standard.input;
    const expectedOutput = SCHEMAS.standard.output;
    const v2 = await h.client.send('GET', '/swagger.json');
    assert.equal(v2.status, 200);
    assert.equal(header(v2, 'content-type'), 'application/json');
    const d2 = json(v2) as { swagger: string; info: Record<string, string>; paths: Record<string, unknown>; definitions: Record<string, unknown> };
    assert.equal(d2.swagger, '2.0');
    assert.deepEqual(d2.info, { title: 'ML service', description: 'API specification for the Azure Machine Learning service ML service', version: '1.0' });
    assert.deepEqual(Object.keys(d2.paths), ['/', '/score', '/swagger.json']);
    assert.deepEqual(d2.definitions.ServiceInput, expectedInput);
    assert.deepEqual(d2.definitions.ServiceOutput, expectedOutput);
    assert.deepEqual(json(await h.client.send('GET', '/swagger.json?version=2.0')), d2);

    const v3 = json(await h.client.send('GET', '/swagger.json?version=3')) as { openapi: string; components: { schemas: Record<string, unknown> } };
    assert.equal(v3.openapi, '3.0.3');
    assert.deepEqual(v3.components.schemas.ServiceInput, expectedInput);
    assert.deepEqual(v3.components.schemas.ServiceOutput, expectedOutput);
    const v31 = json(await h.client.send('GET', '/swagger.json?version=3.1')) as { openapi: string; components: { schemas: Record<string, unknown> } };
    assert.equal(v31.openapi, '3.1.0');
    assert.deepEqual(v31.components.schemas.ServiceInput, expectedInput);
  });

  it('answers an unknown swagger version with 404 and the supported ones', async () => {
    const r = await h.client.send('GET', '/swagger.json?version=3.0a');
    assert.equal(r.status, 404);
    assert.equal(r.body.toString(), '{"message": "Swagger version [3.0a] is not valid. Supported versions: [2, 3, 3.1]."}');
  });
});

describe('Python @input_schema with numpy', () => {
  let h: Host;
  before(async () => {
    h = await startHost('py-schema-numpy', 'score.py');
  });
  after(() => h.stop());

  it('gives run() an ndarray of the sample dtype and sends ndarrays back as lists', async () => {
    const r = await h.client.postJson({ data: [[1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [10, 9, 8, 7, 6, 5, 4, 3, 2, 1]] });
    assert.equal(r.status, 200);
    const out = json(r) as { type: string; dtype: string; shape: number[]; output: number[] };
    assert.deepEqual([out.type, out.dtype, out.shape], ['ndarray', 'float64', [2, 10]]);
    assert.equal(out.output.length, 2);
    assert.ok(Math.abs(out.output[0] - 11055.977245525679) < 1e-6 && Math.abs(out.output[1] - 4503.079536107787) < 1e-6, String(out.output));
  });

  it('answers 400 when the shape does not match the sample', async () => {
    const r = await h.client.postJson({ data: [[1, 2, 3]] });
    assert.equal(r.status, 400);
    assert.equal(message(r), "Invalid value for the 'data' parameter: Invalid input array: array has size 3 on dimension #1, while expected value is 10");
  });

  it('describes the array in ServiceInput', async () => {
    const d = json(await h.client.send('GET', '/swagger.json?version=3')) as { components: { schemas: Record<string, unknown> } };
    assert.deepEqual(d.components.schemas.ServiceInput, SCHEMAS.numpy.input);
  });
});

describe('Python @input_schema with pandas', { skip: HAS_PANDAS ? false : 'pandas is not installed (apt-get install python3-pandas)' }, () => {
  let h: Host;
  before(async () => {
    h = await startHost('py-schema-pandas', 'score.py');
  });
  after(() => h.stop());

  it('gives run() a DataFrame with the sample column types, from records', async () => {
    const r = await h.client.postJson({ frame: [{ name: 'Ann', age: 31, height: 2 }, { name: 'Bo', age: 40, height: 1.5 }] });
    assert.equal(r.status, 200);
    assert.deepEqual(json(r), {
      type: 'DataFrame',
      columns: ['name', 'age', 'height'],
      dtypes: { name: 'object', age: 'int64', height: 'float64' },
      rows: 2,
      mean_age: 35.5,
      records: [{ name: 'Ann', age: 31, height: 2.0 }, { name: 'Bo', age: 40, height: 1.5 }],
    });
  });

  it('answers 400 when a column is missing', async () => {
    const r = await h.client.postJson({ frame: [{ name: 'Ann', age: 31 }] });
    assert.equal(r.status, 400);
    assert.match(message(r), /^Invalid value for the 'frame' parameter: Invalid input data frame: data frame has size 2 on dimension #1, while expected value is 3$/);
  });

  it('describes the records in ServiceInput', async () => {
    const d = json(await h.client.send('GET', '/swagger.json')) as { definitions: Record<string, unknown> };
    assert.deepEqual(d.definitions.ServiceInput, SCHEMAS.pandas.input);
  });
});

describe('Python @rawhttp with AMLRequest and AMLResponse', () => {
  let h: Host;
  before(async () => {
    h = await startHost('py-rawhttp', 'score.py');
  });
  after(() => h.stop());

  it('logs the raw input mode', () => {
    assert.match(h.stderr(), /run\(\) is decorated with @rawhttp\. Server will invoke it with the request object\./);
  });

  it('reads a multipart upload and sends the binary answer byte for byte', async () => {
    const image = ppm();
    const { body, type } = await multipart({ caption: 'négatif', file: { name: 'photo.ppm', type: 'image/x-portable-pixmap', data: image } });
    const r = await h.client.send('POST', '/score', [['content-type', type]], body);
    assert.equal(r.status, 200, r.body.toString());
    assert.equal(header(r, 'content-type'), 'image/x-portable-pixmap');
    assert.equal(header(r, 'content-disposition'), 'attachment; filename="negative-photo.ppm"');
    assert.equal(header(r, 'x-caption'), 'négatif');
    assert.equal(header(r, 'x-ms-run-function-failed'), 'False');
    const headLength = 'P6\n# a comment\n3 2\n255\n'.length;
    const expected = Buffer.concat([image.subarray(0, headLength), Buffer.from(image.subarray(headLength).map((b) => 255 - b))]);
    assert.deepEqual(r.body, expected);
  });

  it('answers AMLResponse("No file uploaded", status_code=422) as it is', async () => {
    const { body, type } = await multipart({ caption: 'no file' });
    const r = await h.client.send('POST', '/score', [['content-type', type]], body);
    assert.equal(r.status, 422);
    assert.equal(r.body.toString(), 'No file uploaded');
    assert.equal(header(r, 'content-type'), 'text/html; charset=utf-8');
    assert.equal(header(r, 'x-ms-run-function-failed'), 'False');
  });

  it('sets x-ms-run-function-failed: True on an AMLResponse with a 5xx status', async () => {
    const r = await h.client.send('GET', '/score?status=503');
    assert.equal(r.status, 503);
    assert.equal(r.body.toString(), 'status 503 requested');
    assert.deepEqual(headerAll(r, 'x-ms-run-function-failed'), ['True']);
    assert.match(header(r, 'x-ms-run-fn-exec-ms') ?? '', /^\d+\.\d{3}$/);
  });

  it('gives run() the query arguments, path and case-insensitive headers', async () => {
    const r = await h.client.send('GET', '/score?n=5&n=6&tag=a%20b', [['user-agent', 'curl/8'], ['x-custom', '1']]);
    assert.deepEqual(json(r), { path: '/score', full_path: '/score?n=5&n=6&tag=a%20b', args: { n: ['5', '6'], tag: ['a b'] }, first_n: 5, user_agent: 'curl/8', has_custom: true });
  });

  it('passes OPTIONS to run() as azmlinfsrv does for @rawhttp', async () => {
    const r = await h.client.send('OPTIONS', '/score', [['content-type', 'text/plain']]);
    assert.equal(r.status, 422); // run() saw a request without a file
  });

  it('answers json_str=True with JSON, a custom status and comma-split headers', async () => {
    const r = await h.client.postJson({ a: [1, 2] });
    assert.equal(r.status, 202);
    assert.equal(r.body.toString(), '{"received": {"a": [1, 2]}, "data_bytes": 11}');
    assert.equal(header(r, 'content-type'), 'application/json');
    assert.deepEqual(headerAll(r, 'x-answer'), ['a', 'b']);
  });
});

describe('Python @rawhttp: Azure binary-payloads pattern with Pillow', { skip: HAS_PIL ? false : 'Pillow is not installed' }, () => {
  it('resizes an uploaded image to a 128x128 JPEG', async () => {
    const h = await startHost('py-binary-payload', 'score.py');
    try {
      const png = spawnSync(PYTHON, ['-c', 'import io,sys\nfrom PIL import Image\nb=io.BytesIO()\nImage.new("RGB",(300,200),(200,30,30)).save(b,format="PNG")\nsys.stdout.buffer.write(b.getvalue())']).stdout;
      const { body, type } = await multipart({ file: { name: 'red.png', type: 'image/png', data: png } });
      const r = await h.client.send('POST', '/score', [['content-type', type]], body);
      assert.equal(r.status, 200);
      assert.equal(header(r, 'content-type'), 'image/jpg');
      const size = spawnSync(PYTHON, ['-c', 'import io,sys\nfrom PIL import Image\nim=Image.open(io.BytesIO(sys.stdin.buffer.read()))\nprint(im.format, im.size)'], { input: r.body, encoding: 'utf8' });
      assert.equal(size.stdout.trim(), 'JPEG (128, 128)');
      const none = await h.client.send('POST', '/score', [['content-type', 'multipart/form-data; boundary=x']], '--x--\r\n');
      assert.equal(none.status, 422);
      assert.equal(none.body.toString(), 'No file uploaded');
    } finally {
      await h.stop();
    }
  });
});

describe('Python routes and headers (azmlinfsrv §5.3, §5.5)', () => {
  let h: Host;
  before(async () => {
    h = await startHost('py-own-swagger', 'score.py', { HTTP_X_MS_SERVER_VERSION: 'infergate/test' });
  });
  after(() => h.stop());

  it('serves GET / and 404 / 405 with werkzeug messages', async () => {
    const health = await h.client.send('GET', '/');
    assert.equal(health.body.toString(), 'Healthy');
    const missing = await h.client.send('GET', '/predict');
    assert.equal(missing.status, 404);
    assert.equal(missing.body.toString(), '{"message": "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again."}');
    for (const [method, url] of [['PUT', '/score'], ['DELETE', '/score'], ['POST', '/'], ['POST', '/swagger.json']]) {
      const r = await h.client.send(method, url, [], '{}');
      assert.equal(r.status, 405, `${method} ${url}`);
      assert.equal(message(r), 'The method is not allowed for the requested URL.');
    }
  });

  it("serves the app root's swagger.json as it is for version 2 and generates version 3", async () => {
    assert.deepEqual(json(await h.client.send('GET', '/swagger.json')), { swagger: '2.0', info: { title: 'hand-written', version: '7' }, paths: {} });
    const v3 = json(await h.client.send('GET', '/swagger.json?version=3')) as { components: { schemas: Record<string, unknown> } };
    assert.deepEqual(v3.components.schemas.ServiceInput, { type: 'object', example: {} });
    assert.deepEqual(v3.components.schemas.ServiceOutput, { type: 'object', example: {} });
  });

  it('echoes TraceId and the id headers, adds x-ms-server-version', async () => {
    const r = await h.client.postJson({ a: 1 }, '/score', [['traceid', 't-1'], ['x-ms-client-request-id', 'c-1']]);
    assert.equal(r.body.toString(), '{"a": 1}');
    assert.equal(header(r, 'traceid'), 't-1');
    assert.equal(header(r, 'x-ms-client-request-id'), 'c-1');
    assert.equal(header(r, 'x-ms-request-id'), 'c-1');
    assert.equal(header(r, 'x-ms-server-version'), 'infergate/test');
  });
});

describe('Python: run() decorated with both @rawhttp and @input_schema', () => {
  it('fails to start with azmlinfsrv\'s message', async () => {
    const { writeFileSync, mkdirSync } = await import('node:fs');
    const dir = join(tmp, 'both');
    mkdirSync(dir);
    writeFileSync(
      join(dir, 'score.py'),
      'from azureml_inference_server_http.api.aml_request import rawhttp\nfrom inference_schema.schema_decorators import input_schema\nfrom inference_schema.parameter_types.standard_py_parameter_type import StandardPythonParameterType\n\ndef init():\n    pass\n\n@rawhttp\n@input_schema("data", StandardPythonParameterType(1))\ndef run(data):\n    return data\n',
    );
    const socket = join(tmp, 'both.sock');
    const child = fork(HOST, [], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'ignore', 'ipc'], env: { PATH: process.env.PATH, INFERGATE_SOCKET: socket, AZUREML_ENTRY_SCRIPT: 'score.py', AML_APP_ROOT: dir, INFERGATE_PYTHON: PYTHON } });
    const msg = await new Promise<HostMessage>((res) => child.once('message', res));
    assert.deepEqual(msg, { type: 'init-failed', code: 'UserScriptImportError', message: 'run() cannot be decorated with both @rawhttp and @input_schema' });
    await new Promise((res) => child.on('exit', res));
  });
});

// ---- JavaScript / TypeScript ----------------------------------------------------------------------------

describe('JavaScript rawHttp = true (WHATWG Request and Response)', () => {
  let h: Host;
  before(async () => {
    h = await startHost('js-rawhttp', 'score.mjs');
  });
  after(() => h.stop());

  it('reads a multipart upload with request.formData() and sends bytes back', async () => {
    const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) % 256);
    const { body, type } = await multipart({ caption: 'rev', file: { name: 'blob.bin', type: 'application/octet-stream', data } });
    const r = await h.client.send('POST', '/score', [['content-type', type], ['host', '127.0.0.1:5001']], body);
    assert.equal(r.status, 200, r.body.toString());
    assert.deepEqual(r.body, Buffer.from(data).reverse());
    assert.equal(header(r, 'content-type'), 'application/octet-stream');
    assert.equal(header(r, 'x-filename'), 'blob.bin');
    assert.equal(header(r, 'x-caption'), 'rev');
  });

  it('answers { status: 422, body } as it is', async () => {
    const { body, type } = await multipart({ caption: 'no file' });
    const r = await h.client.send('POST', '/score', [['content-type', type]], body);
    assert.equal(r.status, 422);
    assert.equal(r.body.toString(), 'No file uploaded');
  });

  it('gives run() the URL and headers, and sends a Response with its own status', async () => {
    const get = await h.client.send('GET', '/score?a=1&b=two', [['x-custom', 'c'], ['host', 'example.test']]);
    assert.deepEqual(json(get), { path: '/score', args: { a: '1', b: 'two' }, custom: 'c' });
    const post = await h.client.postJson({ n: 1 });
    assert.equal(post.status, 202);
    assert.equal(post.body.toString(), '{"received":{"n":1}}');
    assert.equal(header(post, 'x-answer'), 'yes');
  });

  it('logs the raw input mode', () => {
    assert.match(h.stderr(), /rawHttp is exported\. Server will invoke run\(\) with the request/);
  });
});

describe('JavaScript inputSchema / outputSchema', () => {
  let h: Host;
  before(async () => {
    h = await startHost('js-schema', 'score.mjs');
  });
  after(() => h.stop());

  it('gives run() the parsed, validated input', async () => {
    const r = await h.client.postJson({ data: [[1, 2, 3], [0.5, 0.25, 0.25]], scale: 2 });
    assert.equal(r.status, 200);
    assert.equal(r.body.toString(), '[12, 2]');
  });

  it('answers 400 with the first problem, and 415 / 400 like Python', async () => {
    const short = await h.client.postJson({ data: [[1, 2]] });
    assert.equal(short.status, 400);
    assert.equal(message(short), 'Invalid input: $.data[0]: must have at least 3 items');
    const extra = await h.client.postJson({ data: [], colour: 'red' });
    assert.equal(message(extra), "Invalid input: $: 'colour' is not allowed");
    const negative = await h.client.postJson({ data: [], scale: -1 });
    assert.equal(message(negative), 'Invalid input: $.scale: must be >= 0');
    const missing = await h.client.postJson({ scale: 1 });
    assert.equal(message(missing), "Invalid input: $: 'data' is required");
    const text = await h.client.send('POST', '/score', [['content-type', 'text/plain']], '{}');
    assert.equal(text.status, 415);
    assert.equal(text.body.toString(), '{"message": "Expects Content-Type to be application/json"}');
    const empty = await h.client.send('POST', '/score', [['content-type', 'application/json']], ' ');
    assert.equal(message(empty), 'POST body is empty. Expecting a JSON dictionary.');
    const broken = await h.client.send('POST', '/score', [['content-type', 'application/json']], '{"data": ');
    assert.equal(broken.status, 400);
    assert.match(message(broken), /^POST body could not be decoded as JSON: /);
  });

  it('publishes the schemas in /swagger.json', async () => {
    const d = json(await h.client.send('GET', '/swagger.json?version=3.1')) as { openapi: string; components: { schemas: Record<string, Record<string, unknown>> } };
    assert.equal(d.openapi, '3.1.0');
    assert.deepEqual(d.components.schemas.ServiceInput.required, ['data']);
    assert.deepEqual(d.components.schemas.ServiceInput.example, { data: [[1, 2, 3]], scale: 2 });
    assert.deepEqual(d.components.schemas.ServiceOutput, { type: 'array', items: { type: 'number' }, example: [12] });
  });

  it('serves the routes and errors as Python does', async () => {
    assert.equal((await h.client.send('GET', '/')).body.toString(), 'Healthy');
    assert.equal((await h.client.send('GET', '/nope')).status, 404);
    assert.equal((await h.client.send('PUT', '/score', [], '{}')).status, 405);
    const bad = await h.client.send('GET', '/swagger.json?version=4');
    assert.equal(bad.body.toString(), '{"message": "Swagger version [4] is not valid. Supported versions: [2, 3, 3.1]."}');
  });
});

describe('TypeScript inputSchema module', () => {
  it('runs with the validated input and the request headers', async () => {
    const h = await startHost('ts-schema', 'score.ts');
    try {
      const r = await h.client.postJson({ text: 'ab', times: 2 }, '/score', [['user-agent', 'ts-test']]);
      assert.equal(r.body.toString(), '{"echo": "abab", "agent": "ts-test"}');
      const bad = await h.client.postJson({ text: 'ab', times: 1.5 });
      assert.equal(message(bad), 'Invalid input: $.times: expected integer, got number');
    } finally {
      await h.stop();
    }
  });
});

describe('swagger documents: Python and JavaScript say the same thing', () => {
  it('are byte-identical for undecorated scripts', async () => {
    const py = await startHost('py-behaviours', 'score.py');
    const js = await startHost('js-behaviours', 'score.mjs');
    try {
      for (const v of ['2', '3', '3.1']) {
        const a = await py.client.send('GET', `/swagger.json?version=${v}`);
        const b = await js.client.send('GET', `/swagger.json?version=${v}`);
        assert.equal(a.status, 200);
        assert.deepEqual(b.body, a.body, `version ${v}`);
      }
    } finally {
      await Promise.all([py.stop(), js.stop()]);
    }
  });
});
