// `-o json|jsonc|yaml|yamlc|table|tsv|none` and `--query`, reproducing Azure CLI 2.x (knack's output.py and
// query.py), because users' scripts parse what `az` prints: `$(infergate ... --query scoring_uri -o tsv)`.
//
// How az behaves, and so how we do:
// - --query is JMESPath, applied to the command's result before formatting.
// - A null result (a --query that matches nothing) prints nothing at all, in every format.
// - json and yaml sort object keys at every level (json.dumps(sort_keys=True), yaml.safe_dump).
// - tsv and table keep the order of an object built by --query (`{Name:name,State:provisioning_state}`)
//   and sort the keys of every object that came from the command itself. We get both by sorting the
//   command's result before the query runs: objects the query builds then keep their expression's order.
// Known difference: JavaScript objects always list integer-like keys ("10", "9") first in numeric order,
// where Python sorts them as strings. No key in our output is integer-like except, rarely, a user's tag.

import jmespath from 'jmespath';
import { stringify as toYaml } from 'yaml';
import { errorOf } from '../errors/index.js';

export const OUTPUT_FORMATS = ['json', 'jsonc', 'yaml', 'yamlc', 'table', 'tsv', 'none'] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];

export interface OutputOptions {
  output: OutputFormat;
  /** JMESPath expression (`--query`). */
  query?: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

/** The text to print for a command's result: ends with a newline, or is empty when there is nothing to print. */
export function formatOutput(value: unknown, opts: OutputOptions): string {
  let data = sortKeys(toJson(value));
  if (opts.query) data = applyQuery(data, opts.query);
  if (data === null) return '';
  switch (opts.output) {
    // No colours: jsonc/yamlc are what az prints when stdout is not a terminal.
    case 'json':
    case 'jsonc':
      return JSON.stringify(sortKeys(data), null, 2) + '\n';
    case 'yaml':
    case 'yamlc':
      return formatYaml(sortKeys(data));
    case 'tsv':
      return formatTsv(data);
    case 'table':
      return formatTable(data);
    case 'none':
      return '';
  }
}

/** Runs a JMESPath expression; a bad one is the user's mistake, reported as BadArgument. */
export function applyQuery(data: unknown, query: string): Json {
  try {
    return (jmespath.search(data, query) as Json | undefined) ?? null;
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw errorOf('QueryInvalid', { query, reason });
  }
}

/** What the result looks like on the wire: drops undefined, turns Dates into strings, and so on. */
function toJson(value: unknown): Json {
  const text = JSON.stringify(value);
  return text === undefined ? null : (JSON.parse(text) as Json);
}

function isObject(value: Json): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sortKeys(value: Json): Json {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (!isObject(value)) return value;
  const sorted: JsonObject = {};
  for (const key of Object.keys(value).sort()) sorted[key] = sortKeys(value[key]);
  return sorted;
}

/** Python's str(): az's tsv and table are Python printing values. */
function pyStr(value: Json): string {
  if (value === null) return 'None';
  if (value === true) return 'True';
  if (value === false) return 'False';
  return typeof value === 'string' ? value : String(value);
}

function formatYaml(data: Json): string {
  // Block style with unindented sequences and single quotes, as PyYAML's safe_dump writes; YAML 1.1
  // so strings like 'yes', 'on' and timestamps are quoted for the YAML 1.1 readers most scripts use.
  // lineWidth 0: never fold a long value onto two lines.
  return toYaml(data, { version: '1.1', indentSeq: false, singleQuote: true, lineWidth: 0 });
}

// ---- tsv (knack _TsvOutput) -----------------------------------------------------------------------

/** One line per item of a list, or one line for anything else. */
function formatTsv(data: Json): string {
  const rows = Array.isArray(data) ? data : [data];
  return rows.map((row) => tsvRow(row) + '\n').join('');
}

function tsvRow(row: Json): string {
  if (isObject(row)) return Object.values(row).map(tsvCell).join('\t');
  if (Array.isArray(row)) return row.map(tsvCell).join('\t');
  // knack lower-cases a boolean that is a whole row, but not one inside an object (that stays True/False).
  if (typeof row === 'boolean') return String(row);
  return tsvCell(row);
}

function tsvCell(value: Json): string {
  // A nested list prints its length and a nested object prints nothing, but each still takes its column,
  // so rows line up even when one item has an object where another has null.
  if (Array.isArray(value)) return String(value.length);
  if (isObject(value)) return '';
  return pyStr(value);
}

// ---- table (knack _TableOutput + tabulate "simple") --------------------------------------------------

/** Columns az never shows in a table: long or uninteresting. */
const TABLE_SKIP_KEYS = new Set(['id', 'type', 'etag']);
/** tabulate makes every column at least this much wider than its header. */
const MIN_PADDING = 2;

/**
 * One row per item (a single object is a one-row table). An object's scalar fields are its columns,
 * headed by the key with its first letter capitalised; nested objects, lists and nulls are left out.
 */
function formatTable(data: Json): string {
  const rows = (Array.isArray(data) ? data : [data]).map(tableRow);
  if (rows.length === 0) return '';
  // Columns in order of first appearance; a row without one shows an empty cell.
  const headers = [...new Set(rows.flatMap((row) => [...row.keys()]))];
  if (headers.length === 0) {
    throw errorOf('TableOutputUnavailable');
  }
  const cells = rows.map((row) => headers.map((h) => row.get(h) ?? ''));
  const widths = headers.map((h, i) => Math.max(width(h) + MIN_PADDING, ...cells.map((r) => width(r[i]))));
  const line = (texts: string[]): string => texts.map((t, i) => t + ' '.repeat(widths[i] - width(t))).join('  ').trimEnd();
  const lines = [line(headers), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.map(line)];
  return lines.join('\n') + '\n';
}

function tableRow(item: Json): Map<string, string> {
  const row = new Map<string, string>();
  if (isObject(item)) {
    for (const [key, value] of Object.entries(item)) {
      if (TABLE_SKIP_KEYS.has(key) || value === null || typeof value === 'object') continue;
      row.set(key.charAt(0).toUpperCase() + key.slice(1), pyStr(value));
    }
  } else if (Array.isArray(item)) {
    item.forEach((value, i) => row.set(`Column${i + 1}`, value === null ? '' : typeof value === 'object' ? JSON.stringify(value) : pyStr(value)));
  } else {
    row.set('Result', item === null ? '' : pyStr(item));
  }
  return row;
}

/** Width in characters (code points), not UTF-16 units. */
function width(text: string): number {
  return [...text].length;
}
