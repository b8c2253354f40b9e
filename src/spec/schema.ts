// A small validation vocabulary over the tree of tree.ts. Every rule of contract §1 is written once with
// these combinators (endpoint.ts, deployment.ts); YAML and JSON input go through the same rules.
//
// Conventions:
// - A Type's decode() returns the decoded value, or undefined after reporting at least one problem.
// - Every problem is reported, never thrown: a user fixing a file wants the whole list at once.
// - A struct whose keys (or children) had problems decodes to undefined, so code after it (to(), builders)
//   only ever sees complete, valid values and needs no defensive checks.
// - Every combinator also describes itself as a JSON Schema (schema()), for editors and the OpenAPI
//   document (issue 14). It is derived, never used to validate: decode() stays the one validator, so the
//   schema may accept more than decode() (cross-field rules, path existence) but must accept all it accepts.

import type { Problem } from '../errors/index.js';
import { isNull, type Origin, type SNode, type SScalar, toValue } from './tree.js';

export type Kind = 'managed' | 'kubernetes';

/** What a validation run knows about its input. */
export interface Cx {
  /** Problem.file: the YAML file, or the source named by the caller for JSON input. */
  readonly file: string;
  /** Directory that relative paths resolve against (contract §1.1). */
  readonly baseDir?: string;
  /**
   * 'uploads' (the control plane): a file path is refused, only `upload:sha256:` references to uploaded
   * trees are accepted (issue 9: the server never reads a path a client names). Default 'local' (the CLI).
   */
  readonly paths?: 'local' | 'uploads';
  /**
   * With 'uploads': by key path (`model.path`), the paths the server itself stored earlier for this very document (a deployment created
   * before uploads existed, updated with `update --set` and no `-f`). Kept as written and never opened:
   * such an update keeps the snapshot and versions they resolved to (api/assets.ts resolveDeployment).
   */
  readonly storedPaths?: ReadonlyMap<string, string>;
  /** Decided before validation from `compute` / `type` (contract §1.1). */
  readonly kind: Kind;
  readonly what: 'endpoint' | 'deployment' | 'model' | 'environment';
  readonly problems: Problem[];
}

/** A JSON Schema (draft 2020-12) object. */
export type JsonSchema = { [keyword: string]: unknown };

/** What a schema describes: the documents of one kind, or (no kind) of any kind. */
export interface SchemaCx {
  readonly kind?: Kind;
}

export interface Type<T> {
  /** How an expected value is described in messages: "expected <label>, got ...". */
  readonly label: string;
  decode(node: SNode, path: string, cx: Cx): T | undefined;
  /** The values decode() can accept, as a JSON Schema. Absent on a Type made outside this file: see schemaOf. */
  schema?(sx: SchemaCx): JsonSchema;
}

/** The JSON Schema of a Type; one without a schema() accepts anything, so no valid document is refused. */
export const schemaOf = (t: Type<unknown>, sx: SchemaCx = {}): JsonSchema => t.schema?.(sx) ?? {};

/** `t` described by another schema, given the one it would have had: Types made in files that know no schemas (paths.ts, names.ts). */
export function withSchema<T>(t: Type<T>, schema: (base: JsonSchema, sx: SchemaCx) => JsonSchema): Type<T> {
  return { label: t.label, decode: (node, path, cx) => t.decode(node, path, cx), schema: (sx) => schema(schemaOf(t, sx), sx) };
}

/** The schema also accepting null: `key:` with no value means "not given" (struct). */
function nullable(s: JsonSchema): JsonSchema {
  if (Object.keys(s).length === 0) return s;
  // Keywords for strings, numbers and objects ignore other types, so widening `type` is enough.
  if (typeof s.type === 'string') return { ...s, type: [s.type, 'null'] };
  if (Array.isArray(s.type)) return s.type.includes('null') ? s : { ...s, type: [...s.type, 'null'] };
  if (Array.isArray(s.anyOf)) return { ...s, anyOf: [...s.anyOf, { type: 'null' }] };
  return { anyOf: [s, { type: 'null' }] };
}

const escapeRe = (s: string): string => s.replace(/[\\^$.*+?()[\]{}|]/g, (c) => `\\${c}`);

/**
 * A pattern source matching what enumKey() maps to one of `words`: letters in either case, underscores
 * anywhere. JSON Schema patterns take no flags, hence the [aA] classes.
 */
export function loosePattern(words: readonly string[]): string {
  const one = (w: string): string => [...w.replace(/_/g, '')].map((c) => anyCase(c) + '_*').join('');
  return `^_*(?:${words.map(one).join('|')})$`;
}

/** A pattern source matching `word` in any case. */
export const anyCase = (word: string): string =>
  [...word].map((c) => (c.toLowerCase() !== c.toUpperCase() ? `[${c.toLowerCase()}${c.toUpperCase()}]` : escapeRe(c))).join('');

export const joinPath = (path: string, key: string): string => (path ? `${path}.${key}` : key);

/** Records a problem located at `at` (a node, or a bare position for keys). */
export function report(cx: Cx, path: string, at: Origin | undefined, message: string): undefined {
  const suffix = at?.from && !at.pos ? ` (set by --set ${at.from})` : '';
  cx.problems.push({
    file: cx.file,
    ...(at?.pos ? { line: at.pos.line, column: at.pos.column } : {}),
    path,
    message: message + suffix,
  });
  return undefined;
}

function describe(n: SNode): string {
  if (n.kind === 'map') return 'a mapping';
  if (n.kind === 'seq') return 'a list';
  if (n.value === null) return 'nothing';
  if (typeof n.value === 'string') return `the string ${JSON.stringify(n.value)}`;
  return `the ${typeof n.value} ${n.text ?? String(n.value)}`;
}

function mismatch(cx: Cx, path: string, node: SNode, label: string): undefined {
  return report(cx, path, node, `expected ${label}, got ${describe(node)}`);
}

/** Runs `decode`; a value decoded while problems were reported inside it is unusable, so that gives undefined. */
function clean<T>(cx: Cx, decode: () => T | undefined): T | undefined {
  const before = cx.problems.length;
  const v = decode();
  return cx.problems.length === before ? v : undefined;
}

// ---- scalars -----------------------------------------------------------------------------------------

function scalar<T>(label: string, pick: (n: SScalar, cx: Cx) => T | undefined, schema: JsonSchema): Type<T> {
  return {
    label,
    schema: () => schema,
    decode(node, path, cx) {
      const v = node.kind === 'scalar' ? pick(node, cx) : undefined;
      return v === undefined ? mismatch(cx, path, node, label) : v;
    },
  };
}

/** Any string, empty allowed (descriptions). */
export const text: Type<string> = scalar('a string', (n) => (typeof n.value === 'string' ? n.value : undefined), { type: 'string' });

/**
 * Adds a rule to a type; the rule returns a message when the (well-typed) value is not acceptable.
 * `schema` narrows the type's schema by what the rule allows, where JSON Schema can say it.
 */
export function refine<T>(
  t: Type<T>,
  rule: (v: T, cx: Cx) => string | undefined,
  label = t.label,
  schema: (base: JsonSchema, sx: SchemaCx) => JsonSchema = (base) => base,
): Type<T> {
  return {
    label,
    schema: (sx) => schema(schemaOf(t, sx), sx),
    decode(node, path, cx) {
      const v = t.decode(node, path, cx);
      if (v === undefined) return undefined;
      const message = rule(v, cx);
      return message === undefined ? v : report(cx, path, node, message);
    },
  };
}

/** A non-empty string. */
export const str: Type<string> = refine(text, (s) => (s.trim() === '' ? 'must not be empty' : undefined), 'a non-empty string', (base) => ({ ...base, pattern: '\\S' }));

/**
 * A scalar as a string, the way the Azure CLI sends `tags`, `properties` and `environment_variables`
 * (Python `str()`): numbers as written, booleans as True/False.
 */
export const scalarString: Type<string> = scalar('a string', (n) => {
  if (typeof n.value === 'string') return n.value;
  if (typeof n.value === 'number') return n.text ?? String(n.value);
  if (typeof n.value === 'boolean') return n.value ? 'True' : 'False';
  return undefined;
}, { type: ['string', 'number', 'boolean'] });

/** Asset versions: `version: 1` and `version: "1"` both mean "1". */
export const versionString: Type<string> = scalar('a version (string or number)', (n) => {
  if (typeof n.value === 'string' && n.value.trim() !== '') return n.value;
  if (typeof n.value === 'number') return n.text ?? String(n.value);
  return undefined;
}, { type: ['string', 'number'], pattern: '\\S' });

// YAML 1.2 (our parser) reads `yes`/`on` as strings where PyYAML (the Azure CLI's, YAML 1.1) read booleans,
// and marshmallow's Boolean accepts such strings too; accepting them keeps Azure files working unmodified.
const TRUE_WORDS = new Set(['true', 'yes', 'on']);
const FALSE_WORDS = new Set(['false', 'no', 'off']);

export const bool: Type<boolean> = scalar('a boolean (true or false)', (n) => {
  if (typeof n.value === 'boolean') return n.value;
  if (typeof n.value === 'string') {
    const w = n.value.toLowerCase();
    if (TRUE_WORDS.has(w)) return true;
    if (FALSE_WORDS.has(w)) return false;
  }
  return undefined;
}, { type: ['boolean', 'string'], pattern: `^(?:${[...TRUE_WORDS, ...FALSE_WORDS].map(anyCase).join('|')})$` });

export interface Range {
  min?: number;
  /** A function when the limit depends on the kind (e.g. request_timeout_ms, contract §1.7/§1.8). */
  max?: number | ((cx: Cx) => number | undefined);
}

function inRange(v: number, range: Range, cx: Cx): string | undefined {
  const { min } = range;
  const max = typeof range.max === 'function' ? range.max(cx) : range.max;
  if ((min === undefined || v >= min) && (max === undefined || v <= max)) return undefined;
  if (min !== undefined && max !== undefined) return `must be between ${min} and ${max}, got ${v}`;
  return min !== undefined ? `must be at least ${min}, got ${v}` : `must be at most ${max}, got ${v}`;
}

/** minimum/maximum of a range; a kind-dependent maximum without a kind is the largest of the kinds'. */
function rangeSchema(range: Range, sx: SchemaCx): JsonSchema {
  let max: number | undefined;
  if (typeof range.max === 'function') {
    const at = (kind: Kind): number | undefined => (range.max as (cx: Cx) => number | undefined)({ file: '', kind, what: 'deployment', problems: [] });
    const maxes = sx.kind ? [at(sx.kind)] : [at('managed'), at('kubernetes')];
    max = maxes.some((m) => m === undefined) ? undefined : Math.max(...(maxes as number[]));
  } else max = range.max;
  return { ...(range.min !== undefined ? { minimum: range.min } : {}), ...(max !== undefined ? { maximum: max } : {}) };
}

export function int(range: Range = {}): Type<number> {
  const t = scalar('an integer', (n) => (typeof n.value === 'number' && Number.isInteger(n.value) ? n.value : undefined), { type: 'integer' });
  return refine(t, (v, cx) => inRange(v, range, cx), t.label, (base, sx) => ({ ...base, ...rangeSchema(range, sx) }));
}

export function num(range: Range = {}): Type<number> {
  const t = scalar('a number', (n) => (typeof n.value === 'number' && Number.isFinite(n.value) ? n.value : undefined), { type: 'number' });
  return refine(t, (v, cx) => inRange(v, range, cx), t.label, (base, sx) => ({ ...base, ...rangeSchema(range, sx) }));
}

// Azure's StringTransformedEnum is case-insensitive and the REST API spells the same values in CamelCase
// (`AMLToken`, `SystemAssigned`), so both `Key` and `AMLToken` are read; the value is always the
// canonical lower-case form (contract §1.1, §1.11).
const enumKey = (s: string): string => s.toLowerCase().replace(/_/g, '');

/** The canonical enum value that `s` spells, if any. */
export function matchEnum<const V extends string>(values: readonly V[], s: string): V | undefined {
  return values.find((v) => enumKey(v) === enumKey(s));
}

export function oneOf<const V extends string>(values: readonly V[]): Type<V> {
  const label = `one of ${values.join(', ')}`;
  // enum for editors' completion; the pattern for the other spellings decode() reads (`AMLToken`).
  return scalar(label, (n) => (typeof n.value === 'string' ? matchEnum(values, n.value) : undefined), {
    type: 'string',
    anyOf: [{ enum: [...values] }, { pattern: loosePattern(values) }],
  });
}

// ---- collections -------------------------------------------------------------------------------------

export function list<T>(item: Type<T>): Type<T[]> {
  const label = 'a list';
  return {
    label,
    schema: (sx) => ({ type: 'array', items: schemaOf(item, sx) }),
    decode(node, path, cx) {
      if (node.kind !== 'seq') return mismatch(cx, path, node, label);
      return clean(cx, () => node.items.map((n, i) => item.decode(n, `${path}[${i}]`, cx)) as T[]);
    },
  };
}

/**
 * A mapping with keys chosen by the user (tags, traffic ...); `key` may reject a key with a message, and
 * `keys` says what it allows as a JSON Schema (propertyNames).
 */
export function dict<T>(value: Type<T>, key?: (k: string) => string | undefined, keys?: JsonSchema): Type<Record<string, T>> {
  const label = 'a mapping';
  return {
    label,
    schema: (sx) => ({ type: 'object', ...(keys ? { propertyNames: keys } : {}), additionalProperties: schemaOf(value, sx) }),
    decode(node, path, cx) {
      if (node.kind !== 'map') return mismatch(cx, path, node, label);
      return clean(cx, () => {
        const out: [string, T][] = [];
        for (const e of node.entries) {
          const p = joinPath(path, e.key);
          const bad = key?.(e.key);
          if (bad !== undefined) report(cx, p, { pos: e.keyPos, from: e.value.from }, bad);
          const v = value.decode(e.value, p, cx);
          if (v !== undefined) out.push([e.key, v]);
        }
        // fromEntries defines own properties: a user key `__proto__` cannot reach the prototype.
        return Object.fromEntries(out);
      });
    },
  };
}

/** tags, properties, environment_variables: string values (contract §1.2, §1.4). */
export const stringMap: Type<Record<string, string>> = dict(scalarString);

/** Accepted as any well-formed value and kept as plain data. */
export const anything: Type<unknown> = { label: 'a value', decode: (node) => toValue(node), schema: () => ({}) };

/** A mapping kept as plain data (conda file given inline, model flavors). */
export const anyMap: Type<Record<string, unknown>> = {
  label: 'a mapping',
  schema: () => ({ type: 'object' }),
  decode: (node, path, cx) => (node.kind === 'map' ? (toValue(node) as Record<string, unknown>) : mismatch(cx, path, node, 'a mapping')),
};

/** Validates with `t`, but keeps the value exactly as written (data_collector, contract §1.9). */
export function keepAsWritten<T>(t: Type<T>): Type<Record<string, unknown>> {
  return {
    label: t.label,
    schema: (sx) => schemaOf(t, sx),
    decode: (node, path, cx) => (clean(cx, () => t.decode(node, path, cx)) === undefined ? undefined : (toValue(node) as Record<string, unknown>)),
  };
}

/** Picks a form by the node's shape: `model: azureml:m:1` vs `model: {path: ...}` (contract §1.5, §1.6). */
export function byShape<S, M>(label: string, forms: { scalar: Type<S>; map: Type<M> }): Type<S | M> {
  return {
    label,
    // The scalar form's schema says `type: string` itself: decode() gives it strings only.
    schema: (sx) => ({ anyOf: [schemaOf(forms.scalar, sx), schemaOf(forms.map, sx)] }),
    decode(node, path, cx) {
      if (node.kind === 'map') return forms.map.decode(node, path, cx);
      if (node.kind === 'scalar' && typeof node.value === 'string') return forms.scalar.decode(node, path, cx);
      return mismatch(cx, path, node, label);
    },
  };
}

/** Maps a successfully decoded value to another one. */
export function to<A, B>(t: Type<A>, f: (a: A, cx: Cx) => B): Type<B> {
  return {
    label: t.label,
    schema: (sx) => schemaOf(t, sx),
    decode(node, path, cx) {
      const a = clean(cx, () => t.decode(node, path, cx));
      return a === undefined ? undefined : f(a, cx);
    },
  };
}

// ---- structs (fixed keys, unknown keys are errors: marshmallow `unknown = RAISE`, contract §1.1) --------

export interface Field<T> {
  type: Type<T>;
  /** true, or the only kind for which the key is required. */
  required?: boolean | Kind;
  /** The key exists only for this kind; elsewhere it is reported as not supported. */
  only?: Kind;
  /** Message when a required key is missing, where Azure has its own. */
  missing?: string;
  /** The key's description in the JSON Schema (editors show it on hover). */
  doc?: string;
}

export const req = <T>(type: Type<T>, missing?: string): Field<T> & { required: true } => ({ type, required: true, ...(missing ? { missing } : {}) });
export const opt = <T>(type: Type<T>, more: Omit<Field<T>, 'type'> = {}): Field<T> => ({ type, ...more });

type Shape = Record<string, Field<unknown>>;
type ValueOf<F> = F extends Field<infer T> ? T : never;
type RequiredKeys<S extends Shape> = { [K in keyof S]: S[K] extends { required: true } ? K : never }[keyof S];
/** A decoded struct: keys as in the YAML, required keys guaranteed present. */
export type Raw<S extends Shape> = { [K in RequiredKeys<S>]: ValueOf<S[K]> } & { [K in Exclude<keyof S, RequiredKeys<S>>]?: ValueOf<S[K]> };

export interface StructRules<S extends Shape> {
  /** Keys rejected with a specific message instead of "unknown key". */
  deny?: Record<string, string>;
  /**
   * Rules across keys. `raw` holds the keys that decoded cleanly; `has` tells whether a key was written at
   * all (so a rule does not claim "missing" for a key that is present but wrong); `issue` reports at the
   * key's value, or at the mapping when the key is absent.
   */
  check?: (raw: Partial<Raw<S>>, ctx: { has(key: keyof S & string): boolean; issue(key: (keyof S & string) | null, message: string): void; cx: Cx }) => void;
}

const KIND_WORD: Record<Kind, string> = { managed: 'managed', kubernetes: 'Kubernetes' };

export function struct<S extends Shape>(shape: S, rules: StructRules<S> = {}): Type<Raw<S>> {
  const label = 'a mapping';
  const known = Object.keys(shape);
  return {
    label,
    schema(sx) {
      // Keys of the other kind are left out (additionalProperties refuses them), as decode() refuses them;
      // without a kind they are allowed and no kind's required keys are required. `check` rules stay
      // decode()'s alone.
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const [key, field] of Object.entries(shape)) {
        if (field.only && sx.kind && field.only !== sx.kind) continue;
        const must = field.required === true || (sx.kind !== undefined && field.required === sx.kind);
        const s = schemaOf(field.type, sx);
        properties[key] = { ...(field.doc ? { description: field.doc } : {}), ...(must ? s : nullable(s)) };
        if (must) required.push(key);
      }
      return { type: 'object', properties, ...(required.length ? { required } : {}), additionalProperties: false };
    },
    decode(node, path, cx) {
      if (node.kind !== 'map') return mismatch(cx, path, node, label);
      return clean(cx, () => {
        const raw: Record<string, unknown> = {};
        const written = new Map<string, SNode>();
        for (const e of node.entries) {
          const p = joinPath(path, e.key);
          const keyAt = { pos: e.keyPos, from: e.value.from };
          const field = Object.hasOwn(shape, e.key) ? shape[e.key] : undefined;
          if (!field) {
            const denied = rules.deny && Object.hasOwn(rules.deny, e.key) ? rules.deny[e.key] : undefined;
            report(cx, p, keyAt, denied ?? unknownKey(e.key, known));
            continue;
          }
          if (field.only && field.only !== cx.kind) {
            report(cx, p, keyAt, `'${e.key}' is not supported on ${KIND_WORD[cx.kind]} ${cx.what}s (only on ${KIND_WORD[field.only]} ones)`);
            continue;
          }
          written.set(e.key, e.value);
          // `key:` with no value means "not given" (an empty YAML value), as for marshmallow's missing keys.
          if (isNull(e.value)) continue;
          const v = field.type.decode(e.value, p, cx);
          if (v !== undefined) raw[e.key] = v;
        }
        for (const [key, field] of Object.entries(shape)) {
          const required = field.required === true || field.required === cx.kind;
          const v = written.get(key);
          // Located at the parent mapping: there is no node for a key that is not there.
          if (required && (v === undefined || isNull(v))) report(cx, joinPath(path, key), node, field.missing ?? `missing required key '${key}'`);
        }
        rules.check?.(raw as Partial<Raw<S>>, {
          has: (key) => written.has(key) && !isNull(written.get(key)!),
          issue: (key, message) => report(cx, key ? joinPath(path, key) : path, (key && written.get(key)) || node, message),
          cx,
        });
        return raw as Raw<S>;
      });
    },
  };
}

/** "unknown key", with the closest known key when it looks like a typo or a truncation of one. */
function unknownKey(key: string, known: string[]): string {
  const lower = key.toLowerCase();
  const near = known
    .map((k) => ({ k, d: editDistance(k.toLowerCase(), lower) }))
    .filter(({ k, d }) => d <= 2 || (lower.length >= 4 && (k.startsWith(lower) || lower.startsWith(k))))
    .sort((a, b) => a.d - b.d);
  return `unknown key '${key}'` + (near.length ? `; did you mean '${near[0].k}'?` : '');
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Drops keys whose value is undefined: specs carry only what is set, so deepEqual(parse(dump(s)), s). */
export function compact<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}
