import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import { pythonFloatRepr, pythonJsonDumps } from './py-json.js';

// Debian's interpreter (reference/dependencies.md finding 7); any CPython 3 would do for json.dumps.
const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/** json.dumps of each line's JSON value in CPython, numbers parsed as floats. */
function pythonDumps(lines: string[]): string[] {
  const script = 'import json,sys\nfor l in sys.stdin: print(json.dumps(json.loads(l, parse_int=float)))';
  const out = execFileSync(PYTHON, ['-c', script], { input: lines.join('\n') + '\n', maxBuffer: 1 << 30 });
  return out.toString('latin1').trimEnd().split('\n');
}

describe('pythonJsonDumps', () => {
  it('writes the canonical model-1 answer byte for byte (contract §5.4, §9.2)', () => {
    const s = pythonJsonDumps([11055.977245525679, 4503.079536107787]);
    assert.equal(s, '[11055.977245525679, 4503.079536107787]');
    assert.equal(Buffer.byteLength(s), 39);
  });

  it("uses json.dumps' default separators", () => {
    assert.equal(pythonJsonDumps({ a: [1, 2, { b: null }], c: true, d: false, e: 'x' }), '{"a": [1, 2, {"b": null}], "c": true, "d": false, "e": "x"}');
    assert.equal(pythonJsonDumps([]), '[]');
    assert.equal(pythonJsonDumps({}), '{}');
    assert.equal(pythonJsonDumps([[], {}]), '[[], {}]');
  });

  it('writes integers as ints and other numbers as Python floats', () => {
    assert.equal(pythonJsonDumps(1), '1');
    assert.equal(pythonJsonDumps(-42), '-42');
    assert.equal(pythonJsonDumps(0), '0');
    assert.equal(pythonJsonDumps(-0), '0');
    assert.equal(pythonJsonDumps(Number.MAX_SAFE_INTEGER), '9007199254740991');
    assert.equal(pythonJsonDumps(2 ** 53 + 2), '9007199254740994.0');
    assert.equal(pythonJsonDumps(1e16), '1e+16');
    assert.equal(pythonJsonDumps(1e21), '1e+21');
    assert.equal(pythonJsonDumps(1.5e300), '1.5e+300');
    assert.equal(pythonJsonDumps(0.1), '0.1');
    assert.equal(pythonJsonDumps(0.0001), '0.0001');
    assert.equal(pythonJsonDumps(0.00001), '1e-05');
    assert.equal(pythonJsonDumps(1.5e-7), '1.5e-07');
    assert.equal(pythonJsonDumps(5e-324), '5e-324');
    assert.equal(pythonJsonDumps(-2.5e-10), '-2.5e-10');
    assert.equal(pythonJsonDumps(123456.789), '123456.789');
    assert.equal(pythonJsonDumps(1.7976931348623157e308), '1.7976931348623157e+308');
    assert.equal(pythonJsonDumps(12n ** 30n), (12n ** 30n).toString());
  });

  it('writes NaN and the infinities as Python does (allow_nan=True)', () => {
    assert.equal(pythonJsonDumps([NaN, Infinity, -Infinity]), '[NaN, Infinity, -Infinity]');
  });

  it('pythonFloatRepr adds ".0" to integral floats', () => {
    assert.equal(pythonFloatRepr(1), '1.0');
    assert.equal(pythonFloatRepr(-0), '-0.0');
    assert.equal(pythonFloatRepr(1e15), '1000000000000000.0');
    assert.equal(pythonFloatRepr(100), '100.0');
  });

  it('escapes strings as ensure_ascii=True does', () => {
    assert.equal(pythonJsonDumps('plain text ~'), '"plain text ~"');
    assert.equal(pythonJsonDumps('q"b\\s/'), '"q\\"b\\\\s/"');
    assert.equal(pythonJsonDumps('\n\r\t\b\f\u0000\u001f\u007f'), '"\\n\\r\\t\\b\\f\\u0000\\u001f\\u007f"');
    assert.equal(pythonJsonDumps('é€😀'), '"\\u00e9\\u20ac\\ud83d\\ude00"');
    assert.equal(pythonJsonDumps({ 'ключ': 'значение' }), '{"\\u043a\\u043b\\u044e\\u0447": "\\u0437\\u043d\\u0430\\u0447\\u0435\\u043d\\u0438\\u0435"}');
  });

  it('follows JSON.stringify for JavaScript-only values', () => {
    assert.equal(pythonJsonDumps(undefined), 'null');
    assert.equal(pythonJsonDumps([undefined, () => 1]), '[null, null]');
    assert.equal(pythonJsonDumps({ a: undefined, b: 1, f() {} }), '{"b": 1}');
    assert.equal(pythonJsonDumps(new Date(0)), '"1970-01-01T00:00:00.000Z"');
    assert.equal(pythonJsonDumps(new Float64Array([0.5, 2])), '[0.5, 2]');
    assert.equal(pythonJsonDumps({ toJSON: () => ({ x: 1 }) }), '{"x": 1}');
  });

  it('refuses circular structures, as Python does', () => {
    const a: unknown[] = [];
    a.push(a);
    assert.throws(() => pythonJsonDumps(a), /Circular reference/);
    const shared = { v: 1 };
    assert.equal(pythonJsonDumps([shared, shared]), '[{"v": 1}, {"v": 1}]'); // repeated is not circular
  });

  it('matches CPython json.dumps on 60,000 random doubles', () => {
    const bits = new Float64Array(40_000);
    const words = new Uint32Array(bits.buffer);
    for (let i = 0; i < words.length; i++) words[i] = (Math.random() * 2 ** 32) >>> 0;
    const values: number[] = [];
    // Random bit patterns cover every exponent; scaled uniforms cover the everyday range densely.
    for (const v of bits) if (Number.isFinite(v)) values.push(v);
    for (let i = 0; i < 20_000; i++) values.push((Math.random() - 0.5) * 10 ** Math.floor(Math.random() * 44 - 22));
    // Safe integers are where JavaScript cannot tell int from float (written as ints by design): skip.
    const floats = values.filter((v) => !Number.isSafeInteger(v));
    const expected = pythonDumps(floats.map((v) => JSON.stringify(v)));
    const mismatches = floats.map((v, i) => [v, pythonJsonDumps(v), expected[i]] as const).filter(([, ours, py]) => ours !== py);
    assert.deepEqual(mismatches.slice(0, 5), []);
  });

  it('matches CPython json.dumps on random strings and nested values', () => {
    const samples: unknown[] = [];
    for (let i = 0; i < 300; i++) {
      let s = '';
      const n = Math.floor(Math.random() * 20);
      for (let k = 0; k < n; k++) {
        const r = Math.random();
        // ASCII, controls, Latin-1, BMP (no lone surrogates: JSON text for Python must be valid), astral.
        if (r < 0.4) s += String.fromCharCode(0x20 + Math.floor(Math.random() * 95));
        else if (r < 0.5) s += String.fromCharCode(Math.floor(Math.random() * 0x20));
        else if (r < 0.7) s += String.fromCharCode(0x7f + Math.floor(Math.random() * 0x81));
        else if (r < 0.9) s += String.fromCharCode(0x100 + Math.floor(Math.random() * 0xd700));
        else s += String.fromCodePoint(0x10000 + Math.floor(Math.random() * 0xfffff));
      }
      samples.push(i % 3 === 0 ? { [s]: [s, i + 0.5, null, true] } : s);
    }
    const expected = pythonDumps(samples.map((v) => JSON.stringify(v)));
    samples.forEach((v, i) => assert.equal(pythonJsonDumps(v), expected[i], JSON.stringify(v)));
  });
});
