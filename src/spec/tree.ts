// The one tree the validator reads. YAML documents and plain JSON objects (REST bodies) are both turned
// into it, so there is exactly one set of rules (schema.ts) whatever the input; nodes from YAML know
// where they came from (1-based line:column), nodes from JSON do not, nodes made by `--set` say so.

import { isAlias, isMap, isPair, isScalar, isSeq, LineCounter, type Document, type Node as YamlNode } from 'yaml';
import { errorOf, type Problem } from '../errors/index.js';
import { MAX_NESTING, parseYamlDocument } from '../util/yaml.js';

export interface Pos {
  line: number;
  column: number;
}

export interface Origin {
  /** Where the node starts in the YAML text; absent for JSON input and `--set` values. */
  pos?: Pos;
  /** The `--set` override that produced this node. */
  from?: string;
}

export interface SEntry {
  key: string;
  keyPos?: Pos;
  value: SNode;
}

export interface SMap extends Origin {
  kind: 'map';
  entries: SEntry[];
}

export interface SSeq extends Origin {
  kind: 'seq';
  items: SNode[];
}

export interface SScalar extends Origin {
  kind: 'scalar';
  value: string | number | boolean | null;
  /** Source text of an unquoted YAML scalar: `version: 1.10` must stay "1.10", not become 1.1. */
  text?: string;
}

export type SNode = SMap | SSeq | SScalar;

export const isNull = (n: SNode): boolean => n.kind === 'scalar' && n.value === null;

// Syntax errors after which the composed document is still the one the user meant (the later duplicate
// wins, as in PyYAML). After any other syntax error the tree is a guess, and validating it would only add
// misleading follow-on problems, so validation is skipped.
const BENIGN_YAML_ERRORS = new Set(['DUPLICATE_KEY']);

/** Parses YAML text into a tree; syntax errors become problems. `trusted` is false when the tree is a guess. */
export function parseYamlTree(text: string, file: string): { root: SNode; problems: Problem[]; trusted: boolean } {
  const lines = new LineCounter();
  // Nesting-limited, and without the yaml package's quadratic duplicate-key check: YamlConverter finds
  // duplicates with a hash map (util/yaml.ts says why).
  const doc = parseYamlDocument(text, { lineCounter: lines });
  const at = (offset: number): Pos => {
    const { line, col } = lines.linePos(offset);
    return { line, column: col };
  };
  const problems: Problem[] = doc.errors.map((e) => ({ file, ...at(e.pos[0]), path: '', message: `invalid YAML: ${e.message}` }));
  const trusted = doc.errors.every((e) => BENIGN_YAML_ERRORS.has(e.code));
  const root = doc.contents ? new YamlConverter(doc, at, file, problems).node(doc.contents) : nullNode({ line: 1, column: 1 });
  return { root, problems, trusted };
}

const nullNode = (pos?: Pos): SScalar => ({ kind: 'scalar', value: null, ...(pos ? { pos } : {}) });

/** Alias expansions allowed per document (the yaml package's own default): stops "billion laughs" files. */
const MAX_ALIASES = 100;
/**
 * Nodes that alias expansions may create in all. A hundred aliases of one large anchored list would still
 * multiply a 4 MiB file a hundred times; Azure's documents alias a few settings at most.
 */
const MAX_ALIAS_NODES = 100_000;

class YamlConverter {
  /** Collections being converted, to catch an alias that refers to its own ancestor. */
  private readonly open = new Set<unknown>();
  private aliases = 0;
  /** Nodes created inside alias expansions (expanding > 0), against MAX_ALIAS_NODES. */
  private expanding = 0;
  private expanded = 0;
  /** Problems of a kind reported once per file (alias limits, nesting): the rest are the same problem. */
  private readonly said = new Set<string>();

  constructor(
    private readonly doc: Document,
    private readonly at: (offset: number) => Pos,
    private readonly file: string,
    private readonly problems: Problem[],
  ) {}

  private posOf(n: YamlNode | null | undefined): Pos | undefined {
    return n?.range ? this.at(n.range[0]) : undefined;
  }

  private once(kind: string, pos: Pos | undefined, message: string): SScalar {
    if (!this.said.has(kind)) {
      this.said.add(kind);
      this.problems.push({ file: this.file, ...pos, path: '', message: `invalid YAML: ${message}` });
    }
    return nullNode(pos);
  }

  /** `depth`: mappings and lists above this node, aliases expanded (the CST check cannot see through them). */
  node(n: YamlNode | null | undefined, fallback?: Pos, depth = 0): SNode {
    const pos = this.posOf(n) ?? fallback;
    if (n == null) return nullNode(pos);
    if (this.expanding > 0 && ++this.expanded > MAX_ALIAS_NODES) return this.once('alias-nodes', pos, `aliases expand to more than ${MAX_ALIAS_NODES} nodes`);
    if (isAlias(n)) {
      const target = n.resolve(this.doc);
      if (!target || this.open.has(target)) {
        this.problems.push({ file: this.file, ...pos, path: '', message: `invalid YAML: alias *${n.source} cannot be resolved` });
        return nullNode(pos);
      }
      if (++this.aliases > MAX_ALIASES) return this.once('aliases', pos, `alias *${n.source} is one too many (at most ${MAX_ALIASES} per file)`);
      this.expanding++;
      try {
        // Point at the alias, not at the anchor: that is where the value is used.
        return { ...this.node(target, undefined, depth), ...(pos ? { pos } : {}) };
      } finally {
        this.expanding--;
      }
    }
    if (isScalar(n)) {
      const v = n.value;
      const value = v === null || v === undefined ? null : typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : String(v);
      const text = n.type === 'PLAIN' && typeof n.source === 'string' && n.source !== '' ? n.source : undefined;
      return { kind: 'scalar', value, ...(text !== undefined && typeof value !== 'string' ? { text } : {}), ...(pos ? { pos } : {}) };
    }
    if (depth >= MAX_NESTING) return this.once('nesting', pos, `nested more than ${MAX_NESTING} levels deep (mappings and lists, aliases expanded)`);
    this.open.add(n);
    try {
      if (isSeq(n)) return { kind: 'seq', items: n.items.map((item) => this.node(item as YamlNode, pos, depth + 1)), ...(pos ? { pos } : {}) };
      if (isMap(n)) return { kind: 'map', entries: this.entries(n.items, depth + 1), ...(pos ? { pos } : {}) };
    } finally {
      this.open.delete(n);
    }
    return nullNode(pos);
  }

  private entries(pairs: unknown[], depth: number): SEntry[] {
    const own: SEntry[] = [];
    const merged: SEntry[] = [];
    // Keys seen, by value as the yaml package compares them (`1` and `"1"` differ): one lookup per key,
    // where the package's own check compared each key with every earlier one.
    const seen = new Set<unknown>();
    for (const pair of pairs) {
      if (!isPair(pair)) continue;
      const keyNode = pair.key as YamlNode | null;
      const keyPos = this.posOf(keyNode);
      if (keyNode != null && !isScalar(keyNode)) {
        this.problems.push({ file: this.file, ...keyPos, path: '', message: 'invalid YAML: a mapping key must be a plain value' });
        continue;
      }
      const raw = keyNode?.value;
      // The later duplicate still wins (it is kept after the first; lookups take the last), as in PyYAML.
      if (seen.has(raw ?? null)) this.problems.push({ file: this.file, ...keyPos, path: '', message: 'invalid YAML: Map keys must be unique' });
      else seen.add(raw ?? null);
      const key = raw == null ? '' : typeof raw === 'string' ? raw : (keyNode?.source ?? String(raw));
      // `<<: *anchor` merge keys: PyYAML (what the Azure CLI uses) honours them, so we do too.
      // Explicit keys win over merged ones, earlier merge sources over later ones (YAML merge spec).
      if (key === '<<' && keyNode?.type === 'PLAIN') {
        const value = this.node(pair.value as YamlNode, keyPos, depth);
        const sources = value.kind === 'seq' ? value.items : [value];
        for (const src of sources) {
          if (src.kind === 'map') merged.push(...src.entries);
          else this.problems.push({ file: this.file, ...(src.pos ?? keyPos), path: '', message: 'invalid YAML: << must merge a mapping' });
        }
        continue;
      }
      own.push({ key, ...(keyPos ? { keyPos } : {}), value: this.node(pair.value as YamlNode, keyPos, depth) });
    }
    const have = new Set(own.map((e) => e.key));
    for (const e of merged) {
      if (have.has(e.key)) continue;
      have.add(e.key);
      own.push(e);
    }
    return own;
  }
}

/**
 * A plain JSON-like value as a tree without positions. `from` marks nodes made by a `--set` override.
 * Deeper than MAX_NESTING is BodyTooDeep: the API refuses such bodies when it parses them, this guards
 * every other caller (the recursion would otherwise end in a RangeError, a 500).
 */
export function fromValue(v: unknown, from?: string, text?: string, depth = 0): SNode {
  const o = from ? { from } : {};
  if (v !== null && typeof v === 'object' && depth >= MAX_NESTING) {
    throw errorOf('DocumentTooDeep', { limit: MAX_NESTING });
  }
  if (Array.isArray(v)) return { kind: 'seq', items: v.map((x) => fromValue(x, from, undefined, depth + 1)), ...o };
  if (v !== null && typeof v === 'object') {
    const entries = Object.entries(v)
      .filter(([, x]) => x !== undefined)
      .map(([key, x]) => ({ key, value: fromValue(x, from, undefined, depth + 1) }));
    return { kind: 'map', entries, ...o };
  }
  if (v === undefined || v === null) return { kind: 'scalar', value: null, ...o };
  if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') {
    return { kind: 'scalar', value: v, ...(text !== undefined && typeof v !== 'string' ? { text } : {}), ...o };
  }
  return { kind: 'scalar', value: String(v), ...o };
}

/** The tree back as plain JSON data (for parts of a spec kept as written: data_collector, inline conda). */
export function toValue(n: SNode): unknown {
  if (n.kind === 'scalar') return n.value;
  if (n.kind === 'seq') return n.items.map(toValue);
  // fromEntries defines own properties, so a key named `__proto__` stays a plain key.
  return Object.fromEntries(n.entries.map((e) => [e.key, toValue(e.value)]));
}
