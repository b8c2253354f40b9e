// `--set a.b=c` overrides (contract §1.1: applied on top of the YAML before validation, as the SDK's
// `params_override`). Values are read as YAML scalars, so `instance_count=2` is the number 2 and
// `auth_mode=aml_token` a string; dotted paths create the maps they need; `a[0]` addresses list items.

import { isMap, isScalar, isSeq } from 'yaml';
import type { Problem } from '../errors/index.js';
import { MAX_NESTING, parseYamlDocument } from '../util/yaml.js';
import { fromValue, toValue, type SMap, type SNode } from './tree.js';

type KeyPath = (string | number)[];

const SEGMENT = /^([^[\]]+)((?:\[\d+\])*)$/;

function parseKeyPath(key: string): KeyPath | undefined {
  const path: KeyPath = [];
  for (const segment of key.split('.')) {
    const m = SEGMENT.exec(segment);
    if (!m) return undefined;
    path.push(m[1]);
    for (const index of m[2].matchAll(/\[(\d+)\]/g)) path.push(Number(index[1]));
  }
  return path;
}

/** The value of an override as a node: a YAML scalar, a flow collection (`{}`, `[a, b]`), else the raw text. */
function parseValue(raw: string, from: string): SNode {
  const t = raw.trim();
  // Nesting-limited (util/yaml.ts): `--set a=[[[[...` must not take the CLI's stack.
  const doc = parseYamlDocument(t);
  const c = doc.contents;
  // Only when the whole text is that one value: `a #b` is the string "a #b", not "a" and a comment.
  const whole = c?.range?.[1] === t.length;
  if (doc.errors.length === 0) {
    if (c === null) return fromValue(null, from);
    if (isScalar(c) && whole) return fromValue(c.value, from, t);
    if ((isMap(c) || isSeq(c)) && c.flow && whole) {
      let value: unknown;
      try {
        value = c.toJS(doc, { maxAliasCount: 100 });
      } catch (e) {
        throw new OverrideError(`the value cannot be used: ${(e as Error).message}`);
      }
      return fromValue(value, from);
    }
  }
  const deep = doc.errors.find((e) => e.code === 'RESOURCE_EXHAUSTION');
  if (deep) throw new OverrideError(`the value is ${deep.message}`);
  return fromValue(raw, from);
}

class OverrideError extends Error {}

function setIn(node: SNode | undefined, path: KeyPath, value: SNode, from: string): SNode {
  if (path.length === 0) return value;
  const [head, ...rest] = path;
  if (typeof head === 'number') {
    if (node?.kind !== 'seq') throw new OverrideError(`[${head}] addresses a list item, but there is no list there`);
    if (head > node.items.length) throw new OverrideError(`[${head}] is past the end of a list of ${node.items.length}`);
    node.items[head] = setIn(node.items[head], rest, value, from);
    return node;
  }
  // Whatever was there (a string, nothing) is replaced by a mapping, as pydash's set_ does for the SDK.
  const map: SMap = node?.kind === 'map' ? node : { kind: 'map', entries: [], from };
  let entry = undefined;
  // With duplicate keys the last one counts, so that is the one to replace.
  for (let i = map.entries.length - 1; i >= 0 && !entry; i--) if (map.entries[i].key === head) entry = map.entries[i];
  if (entry) entry.value = setIn(entry.value, rest, value, from);
  else map.entries.push({ key: head, value: setIn(undefined, rest, value, from) });
  return map;
}

/** Applies overrides to a tree (returning the new root) and reports malformed ones with path `--set`. */
export function applyOverridesToTree(root: SNode, overrides: readonly string[], problems: Problem[]): SNode {
  for (const text of overrides) {
    const eq = text.indexOf('=');
    const path = eq > 0 ? parseKeyPath(text.slice(0, eq).trim()) : undefined;
    if (!path) {
      problems.push({ path: '--set', message: `'${text}' is not an override: expected key=value, e.g. instance_count=2 or request_settings.request_timeout_ms=9000` });
      continue;
    }
    // setIn recurses once per part: `a.a.a...` with 60,000 parts fits in one argument and would overflow.
    if (path.length > MAX_NESTING) {
      problems.push({ path: '--set', message: `'${text.slice(0, 80)}${text.length > 80 ? '...' : ''}': the key has more than ${MAX_NESTING} parts` });
      continue;
    }
    try {
      root = setIn(root, path, parseValue(text.slice(eq + 1), text), text);
    } catch (e) {
      if (!(e instanceof OverrideError)) throw e;
      problems.push({ path: '--set', message: `'${text}': ${e.message}` });
    }
  }
  return root;
}

/**
 * Applies `--set` overrides to a plain snake_case document in place (the CLI's update: GET, dump,
 * override, parse). Returns the malformed ones as problems.
 */
export function applyOverrides(doc: Record<string, unknown>, overrides: readonly string[]): Problem[] {
  const problems: Problem[] = [];
  const result = toValue(applyOverridesToTree(fromValue(doc), overrides, problems)) as Record<string, unknown>;
  for (const key of Object.keys(doc)) delete doc[key];
  // defineProperty, not assignment: a key named `__proto__` must stay a plain key.
  for (const [key, value] of Object.entries(result)) Object.defineProperty(doc, key, { value, enumerable: true, writable: true, configurable: true });
  return problems;
}
