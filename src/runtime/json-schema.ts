// A small JSON Schema checker for a JavaScript scoring module's `inputSchema` (the counterpart of
// Python's @input_schema: contract §5.4 and docs/scoring-scripts.md). It covers the keywords input
// schemas use — type (incl. OpenAPI's `nullable`), enum, const, properties, required,
// additionalProperties, items, min/maxItems, min/maxLength, pattern, minimum/maximum (and the exclusive
// forms), allOf/anyOf/oneOf — and ignores the rest (format, example, description, ...), so any schema
// published in the swagger document can be used as it is. A full validator (ajv) would be a dependency
// for little gain here; the answer is one readable message, sent as the 400's text.

export type JsonSchema = Record<string, unknown>;

/** null if `value` satisfies `schema`, else the first problem, e.g. `$.data[1]: expected number, got string`. */
export function validateJson(schema: JsonSchema, value: unknown, path = '$'): string | null {
  if (typeof schema !== 'object' || schema === null) return null;
  const s = schema as Record<string, unknown>;

  if (value === null && s.nullable === true) return null;
  if (s.type !== undefined) {
    const types = Array.isArray(s.type) ? (s.type as string[]) : [s.type as string];
    if (!types.some((t) => isType(value, t))) return `${path}: expected ${types.join(' or ')}, got ${typeOf(value)}`;
  }
  if (Array.isArray(s.enum) && !s.enum.some((e) => deepEqual(e, value))) {
    return `${path}: must be one of ${JSON.stringify(s.enum)}`;
  }
  if ('const' in s && !deepEqual(s.const, value)) return `${path}: must be ${JSON.stringify(s.const)}`;

  if (typeof value === 'number') {
    if (typeof s.minimum === 'number' && value < s.minimum) return `${path}: must be >= ${s.minimum}`;
    if (typeof s.maximum === 'number' && value > s.maximum) return `${path}: must be <= ${s.maximum}`;
    if (typeof s.exclusiveMinimum === 'number' && value <= s.exclusiveMinimum) return `${path}: must be > ${s.exclusiveMinimum}`;
    if (typeof s.exclusiveMaximum === 'number' && value >= s.exclusiveMaximum) return `${path}: must be < ${s.exclusiveMaximum}`;
  }
  if (typeof value === 'string') {
    if (typeof s.minLength === 'number' && [...value].length < s.minLength) return `${path}: must be at least ${s.minLength} characters long`;
    if (typeof s.maxLength === 'number' && [...value].length > s.maxLength) return `${path}: must be at most ${s.maxLength} characters long`;
    if (typeof s.pattern === 'string' && !new RegExp(s.pattern, 'u').test(value)) return `${path}: must match ${s.pattern}`;
  }
  if (Array.isArray(value)) {
    if (typeof s.minItems === 'number' && value.length < s.minItems) return `${path}: must have at least ${s.minItems} items`;
    if (typeof s.maxItems === 'number' && value.length > s.maxItems) return `${path}: must have at most ${s.maxItems} items`;
    if (s.items !== undefined && typeof s.items === 'object' && !Array.isArray(s.items)) {
      for (let i = 0; i < value.length; i++) {
        const e = validateJson(s.items as JsonSchema, value[i], `${path}[${i}]`);
        if (e !== null) return e;
      }
    }
  }
  if (isPlainObject(value)) {
    const props = isPlainObject(s.properties) ? (s.properties as Record<string, JsonSchema>) : {};
    if (Array.isArray(s.required)) {
      for (const name of s.required as string[]) {
        if (!Object.prototype.hasOwnProperty.call(value, name)) return `${path}: '${name}' is required`;
      }
    }
    for (const [k, v] of Object.entries(value)) {
      const sub = Object.prototype.hasOwnProperty.call(props, k) ? props[k] : undefined;
      if (sub !== undefined) {
        const e = validateJson(sub, v, `${path}.${k}`);
        if (e !== null) return e;
      } else if (s.additionalProperties === false) {
        return `${path}: '${k}' is not allowed`;
      } else if (isPlainObject(s.additionalProperties)) {
        const e = validateJson(s.additionalProperties as JsonSchema, v, `${path}.${k}`);
        if (e !== null) return e;
      }
    }
  }
  if (Array.isArray(s.allOf)) {
    for (const sub of s.allOf as JsonSchema[]) {
      const e = validateJson(sub, value, path);
      if (e !== null) return e;
    }
  }
  for (const key of ['anyOf', 'oneOf'] as const) {
    const list = s[key];
    if (!Array.isArray(list)) continue;
    const errors = (list as JsonSchema[]).map((sub) => validateJson(sub, value, path));
    const passed = errors.filter((e) => e === null).length;
    if (passed === 0) return errors[0] ?? `${path}: matches none of ${key}`;
    if (key === 'oneOf' && passed > 1) return `${path}: matches more than one schema of oneOf`;
  }
  return null;
}

function isType(v: unknown, t: string): boolean {
  switch (t) {
    case 'null':
      return v === null;
    case 'boolean':
      return typeof v === 'boolean';
    case 'string':
      return typeof v === 'string';
    case 'number':
      return typeof v === 'number';
    case 'integer':
      return typeof v === 'number' && Number.isInteger(v);
    case 'array':
      return Array.isArray(v);
    case 'object':
      return isPlainObject(v);
    default:
      return true; // an unknown type name constrains nothing
  }
}

function typeOf(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'number';
  return typeof v;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  return ka.every((k) => deepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
}
