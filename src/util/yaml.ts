// YAML text from users (CLI files, `--set` values, conda files) parsed with limits.
//
// The `yaml` package composes nodes recursively. Past a few thousand levels of nesting (`[[[[...`, or
// `- - - - ...` on one line, a few bytes per level) V8 runs out of stack; yaml catches the RangeError
// where it can, but with 10,000 levels the overflow lands in a regular-expression compilation and V8
// aborts the whole process ("RegExpCompiler Allocation failed"), which no try/catch can stop: one conda
// file would take down the control plane. The package's parser (CST) keeps its own stack and is linear,
// so the nesting is measured on the CST, iteratively, before anything recursive sees it.
//
// Duplicate keys are not checked by the package here (`uniqueKeys: false`): its check compares each new key
// with every earlier one, quadratic in the keys of a mapping (100,000 tags took 57 s). Callers that
// report duplicates do it with a hash map (spec/tree.ts).

import { Composer, Document, LineCounter, Parser, YAMLParseError, type CST, type DocumentOptions, type ParseOptions, type SchemaOptions } from 'yaml';

/** Levels of nested mappings and lists accepted. Azure's documents use fewer than 10; JSON bodies have the same limit. */
export const MAX_NESTING = 64;

/** The nesting of a CST document and the offset where it first passes `limit` (undefined when it does not). */
function tooDeepAt(doc: CST.Document, limit: number): number | undefined {
  const pending: [CST.Token | undefined, number][] = [[doc.value, 0]];
  while (pending.length) {
    const [t, depth] = pending.pop()!;
    if (!t) continue;
    if (t.type === 'block-map' || t.type === 'block-seq' || t.type === 'flow-collection') {
      if (depth + 1 > limit) return t.offset;
      for (const item of t.items) {
        if ('key' in item && item.key) pending.push([item.key, depth + 1]);
        if (item.value) pending.push([item.value, depth + 1]);
      }
    }
  }
  return undefined;
}

export type SafeParseOptions = ParseOptions & DocumentOptions & SchemaOptions & { maxNesting?: number };

/**
 * parseDocument with a nesting limit and without the quadratic duplicate-key check: a document nested
 * deeper than `maxNesting` is an empty document with one RESOURCE_EXHAUSTION error at the first node too
 * deep. Several documents in one text are an error, as with parseDocument.
 */
export function parseYamlDocument(text: string, options: SafeParseOptions = {}): Document.Parsed | Document {
  const { maxNesting = MAX_NESTING, ...rest } = options;
  const opts = { ...rest, uniqueKeys: false, prettyErrors: false } as const;
  const lines = rest.lineCounter as LineCounter | undefined;
  const tokens = Array.from(new Parser(lines?.addNewLine).parse(text));
  for (const t of tokens) {
    if (t.type !== 'document') continue;
    const at = tooDeepAt(t, maxNesting);
    if (at !== undefined) {
      const doc = new Document(null, opts);
      doc.errors.push(new YAMLParseError([at, at + 1], 'RESOURCE_EXHAUSTION', `nested more than ${maxNesting} levels deep (mappings and lists); refused before parsing`));
      return doc;
    }
  }
  let doc: Document.Parsed | undefined;
  for (const d of new Composer(opts).compose(tokens, true, text.length)) {
    if (!doc) doc = d;
    else {
      doc.errors.push(new YAMLParseError(d.range.slice(0, 2) as [number, number], 'MULTIPLE_DOCS', 'Source contains multiple documents; please use YAML.parseAllDocuments()'));
      break;
    }
  }
  return doc!;
}

/** Alias expansions allowed when a conda file is turned into data (the yaml package's default). */
const MAX_ALIAS_COUNT = 100;

/**
 * `yaml.parse` for files we only read as data (conda files): nesting limited, aliases limited ("billion
 * laughs" throws), the first error thrown.
 */
export function parseYamlData(text: string): unknown {
  const doc = parseYamlDocument(text);
  if (doc.errors.length) throw doc.errors[0];
  return doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT });
}
