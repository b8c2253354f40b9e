// Which requests instance admission counts (src/runtime/admission.ts isScoring, and is_scoring in the
// Python host): scoring (/score and OIP infer), never probes, swagger.json or OIP health and metadata.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { encodeRequestHead } from '../protocol/frame.js';
import { isScoring } from './admission.js';

const CASES: [string, boolean][] = [
  ['/score', true],
  ['/score?verbose=1', true],
  ['/scores', false],
  ['/', false],
  ['/swagger.json', false],
  ['/v2/models/iris/infer', true],
  ['/v2/models/iris/versions/2/infer', true],
  ['/v2/models/iris/infer?x=1', true],
  ['/v2/models/iris', false],
  ['/v2/models/iris/ready', false],
  ['/v2/health/ready', false],
  ['/v2/models/infer', false], // the metadata of a model named "infer"
  ['/v2/models/iris/inferx', false],
  ['/v2/models/iris?/infer', false],
];

test('the Node host admits /score and OIP infer, and lets probes, swagger.json and OIP metadata pass', () => {
  for (const [url, want] of CASES) assert.equal(isScoring(encodeRequestHead(1, 'POST', url, [], 0)), want, url);
});

test('the Python host decides the same for every URL', () => {
  const hostDir = fileURLToPath(new URL('./python/', import.meta.url));
  const frames = CASES.map(([url]) => encodeRequestHead(1, 'POST', url, [], 0).toString('hex'));
  const script = `import sys, json\nsys.path.insert(0, ${JSON.stringify(hostDir)})\nimport infergate_host as h\nprint(json.dumps([bool(h.is_scoring(bytes.fromhex(f), 0)) for f in json.load(sys.stdin)]))`;
  const out = execFileSync('/usr/bin/python3', ['-c', script], { input: JSON.stringify(frames), encoding: 'utf8' });
  assert.deepEqual(JSON.parse(out), CASES.map(([, want]) => want));
});
