// Serialises a JavaScript value exactly as Python's `json.dumps(value)` with its defaults would
// (contract §5.4: azmlinfsrv answers with `json.dumps(run(...))`), so a JavaScript scoring module and a
// Python score.py returning the same numbers produce the same bytes, e.g. the 39-byte canonical answer
// `[11055.977245525679, 4503.079536107787]`. Clients compare response bodies as text more often than one
// would hope, and safe-rollout tests compare blue and green byte for byte.
//
// Python's defaults, reproduced:
// - separators `", "` and `": "`;
// - `ensure_ascii=True`: every character outside printable ASCII (0x20-0x7e) is escaped as `\uXXXX`
//   (lower-case hex, UTF-16 code units, so astral characters become surrogate pairs), `"` and `\` are
//   escaped, and `\n \r \t \b \f` use their short forms;
// - `allow_nan=True`: NaN, Infinity and -Infinity are written bare as `NaN`, `Infinity`, `-Infinity`;
// - floats as `repr(float)`: the shortest digits that round-trip (JavaScript's Number#toString finds the
//   same digits) but in Python's layout: positional when 1e-4 <= |x| < 1e16, else `d.ddde+XX` with a
//   sign and at least two exponent digits, and `.0` on an integral float (`1e+16`, `1e-05`,
//   `9007199254740994.0`).
//
// The one thing JavaScript cannot know is whether `1` was meant as Python's int 1 or float 1.0. Integral
// numbers within ±2^53 are written as integers (what JSON.stringify does too); integral numbers beyond that
// can only come from floating-point arithmetic, so they are written as Python writes floats (`1e+20`).
// `-0` is written `0`. A BigInt is written as its digits, like a Python int.
//
// Where Python would raise (a circular structure) this throws a TypeError. JavaScript-only values follow
// JSON.stringify: `toJSON()` is honoured, `undefined`, functions and symbols are left out of objects and
// become `null` in arrays and at the top level (Python's `None`); typed arrays become lists.

const PLAIN_ASCII = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
const HEX = '0123456789abcdef';

/** Python's `json.dumps(value)` (default arguments) as a string; the result is always pure ASCII. */
export function pythonJsonDumps(value: unknown): string {
  return dump(value, new Set<object>());
}

function dump(value: unknown, seen: Set<object>): string {
  switch (typeof value) {
    case 'number':
      return pythonNumber(value);
    case 'string':
      return pythonString(value);
    case 'boolean':
      return value ? 'true' : 'false';
    case 'bigint':
      return value.toString();
    case 'object':
      return value === null ? 'null' : dumpObject(value, seen);
    default:
      // undefined, function, symbol: Python's None is the nearest thing.
      return 'null';
  }
}

function dumpObject(value: object, seen: Set<object>): string {
  const withToJSON = value as { toJSON?: unknown };
  if (typeof withToJSON.toJSON === 'function') {
    return dump((withToJSON.toJSON as (key: string) => unknown).call(value, ''), seen);
  }
  if (seen.has(value)) throw new TypeError('Circular reference detected');
  seen.add(value);
  let out: string;
  if (Array.isArray(value)) {
    out = dumpList(value, seen);
  } else if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    out = dumpList(value as unknown as ArrayLike<unknown>, seen);
  } else {
    out = '{';
    let first = true;
    for (const key of Object.keys(value)) {
      const v = (value as Record<string, unknown>)[key];
      if (v === undefined || typeof v === 'function' || typeof v === 'symbol') continue;
      out += (first ? '' : ', ') + pythonString(key) + ': ' + dump(v, seen);
      first = false;
    }
    out += '}';
  }
  seen.delete(value);
  return out;
}

function dumpList(list: ArrayLike<unknown>, seen: Set<object>): string {
  const n = list.length;
  if (n === 0) return '[]';
  let out = '[' + dump(list[0], seen);
  for (let i = 1; i < n; i++) out += ', ' + dump(list[i], seen);
  return out + ']';
}

/** A number as Python's json.dumps writes an int (integral, |x| <= 2^53) or a float (anything else). */
export function pythonNumber(x: number): string {
  if (Number.isInteger(x)) {
    if (x <= Number.MAX_SAFE_INTEGER && x >= -Number.MAX_SAFE_INTEGER) return x === 0 ? '0' : String(x);
    return pythonFloatRepr(x);
  }
  const a = x < 0 ? -x : x;
  // Fast path: in this range both languages write the same shortest digits positionally, and a
  // non-integral value never needs Python's trailing ".0".
  if (a >= 1e-4 && a < 1e16) return String(x);
  return pythonFloatRepr(x);
}

/** Python's `repr(float(x))` (which is also what json.dumps writes for a float, NaN/Infinity aside). */
export function pythonFloatRepr(x: number): string {
  if (x !== x) return 'NaN';
  if (x === Infinity) return 'Infinity';
  if (x === -Infinity) return '-Infinity';
  if (x === 0) return Object.is(x, -0) ? '-0.0' : '0.0';
  // toExponential() without an argument gives the shortest round-tripping digits: "d.ddde±X".
  const s = (x < 0 ? -x : x).toExponential();
  const e = s.indexOf('e');
  const digits = s[0] + s.slice(2, e); // drop the "." (absent when there is one digit: slice(2, 1) is "")
  const exp = Number(s.slice(e + 1));
  const decpt = exp + 1; // value = 0.<digits> * 10^decpt, as in CPython's format_float_short
  const sign = x < 0 ? '-' : '';
  if (decpt > -4 && decpt <= 16) {
    if (decpt <= 0) return sign + '0.' + '0'.repeat(-decpt) + digits;
    if (decpt >= digits.length) return sign + digits + '0'.repeat(decpt - digits.length) + '.0';
    return sign + digits.slice(0, decpt) + '.' + digits.slice(decpt);
  }
  const mantissa = digits.length === 1 ? digits : digits[0] + '.' + digits.slice(1);
  const absExp = exp < 0 ? -exp : exp;
  return sign + mantissa + (exp < 0 ? 'e-' : 'e+') + (absExp < 10 ? '0' : '') + absExp;
}

/** A string as json.dumps writes it with ensure_ascii=True. */
export function pythonString(s: string): string {
  if (PLAIN_ASCII.test(s)) return '"' + s + '"';
  let out = '"';
  let start = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x20 && c <= 0x7e && c !== 0x22 && c !== 0x5c) continue;
    if (i > start) out += s.slice(start, i);
    start = i + 1;
    switch (c) {
      case 0x22: out += '\\"'; break;
      case 0x5c: out += '\\\\'; break;
      case 0x0a: out += '\\n'; break;
      case 0x0d: out += '\\r'; break;
      case 0x09: out += '\\t'; break;
      case 0x08: out += '\\b'; break;
      case 0x0c: out += '\\f'; break;
      default:
        out += '\\u' + HEX[(c >> 12) & 15] + HEX[(c >> 8) & 15] + HEX[(c >> 4) & 15] + HEX[c & 15];
    }
  }
  if (start < s.length) out += s.slice(start);
  return out + '"';
}
