// The error catalogue's contract: docs/errors.md is what the catalogue says (regenerate it, never edit
// it), every template fills completely and keeps its code's status, and everything in src/ words
// its errors only through templates (the few exceptions are listed below with their reason).

import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { catalogue, errorOf, formatMessage, isErrorCode, messages, type Situation } from './index.js';
import { renderErrorsDoc } from './doc.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

test('docs/errors.md is generated from the catalogue (run `node --import tsx scripts/errors-doc.ts` after changing it)', () => {
  const doc = readFileSync(join(root, 'docs', 'errors.md'), 'utf8');
  assert.equal(doc, renderErrorsDoc());
  // And the rendering covers the whole catalogue: a code or situation missing from it would still "match".
  for (const code of Object.keys(catalogue)) assert.ok(doc.includes(`| \`${code}\` | ${catalogue[code as keyof typeof catalogue].status} |`), code);
  for (const [situation, m] of Object.entries(messages)) assert.ok(doc.includes(`| \`${situation}\` | \`${m.template.replace(/\|/g, '\\|')}\` |`), situation);
});

test('every template names a catalogued code and fills completely; errorOf keeps the code and its status', () => {
  for (const [situation, m] of Object.entries(messages) as [Situation, (typeof messages)[Situation]][]) {
    assert.ok(isErrorCode(m.code), `${situation}: ${m.code} is not in the catalogue`);
    // Braces appear only as {identifier} placeholders, so nothing is left half-filled.
    assert.doesNotMatch(m.template.replace(/\{[A-Za-z][A-Za-z0-9]*\}/g, ''), /[{}]/, `${situation}: stray brace`);
    const names = [...m.template.matchAll(/\{([A-Za-z][A-Za-z0-9]*)\}/g)].map((x) => x[1]);
    const params = Object.fromEntries(names.map((n) => [n, `<${n}-value>`]));
    const e = (errorOf as (s: Situation, p: Record<string, string>) => ReturnType<typeof errorOf>)(situation, params);
    assert.equal(e.code, m.code);
    assert.equal(e.status, catalogue[m.code].status);
    assert.doesNotMatch(e.message, /\{[A-Za-z]/, `${situation}: unfilled placeholder in "${e.message}"`);
    for (const n of names) assert.ok(e.message.includes(`<${n}-value>`), `${situation}: {${n}} not filled`);
  }
});

test('formatMessage fills every occurrence, with numbers, and leaves an unknown name as written', () => {
  assert.equal(formatMessage('{a} and {a}, {n} of {max}; {missing}', { a: 'x', n: 0, max: 20 }), 'x and x, 0 of 20; {missing}');
  const e = errorOf('DeploymentNotFound', { deployment: 'blue', endpoint: 'my-endpoint' });
  assert.equal(e.message, "Deployment 'blue' not found in endpoint 'my-endpoint'.");
  assert.deepEqual(e.toBody(), { error: { code: 'DeploymentNotFound', message: "Deployment 'blue' not found in endpoint 'my-endpoint'." } });
  assert.equal(errorOf('InternalError', { requestId: 'r1' }, [{ request_id: 'r1' }]).details?.length, 1);
});

/**
 * The places that may still construct an InfergateError directly, each because its wording is not its own:
 * the count keeps the list honest (a new call in one of these files fails too, and so does a stale entry).
 */
const DIRECT_CONSTRUCTION: Record<string, { count: number; why: string }> = {
  'src/client/client.ts': { count: 1, why: "re-raises the server's error answer: code, message and details are the server's, already worded by a template there" },
  'src/cli/main.ts': { count: 1, why: "failedError reports an operation's error as the server recorded it (its code and message, behind '<what> failed: ')" },
};

/** Every non-test .ts file under src/, as a repository-relative path, skipping src/errors/ (errorOf itself). */
function sourceFiles(dir: string, rel: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = `${rel}/${entry.name}`;
    if (entry.isDirectory()) {
      if (path !== 'src/errors') out.push(...sourceFiles(join(dir, entry.name), path));
    } else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.test.ts') && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

test('src/ words its errors through templates (errorOf), never new InfergateError(...), except the documented places', () => {
  const offenders: string[] = [];
  const counts = new Map<string, number>();
  const files = sourceFiles(join(root, 'src'), 'src');
  assert.ok(files.includes('src/api/server.ts') && files.includes('src/backend/process/backend.ts'), 'the walk reaches nested folders');
  for (const file of files) {
    const text = readFileSync(join(root, file), 'utf8');
    for (const [i, line] of text.split('\n').entries()) {
      if (!/new InfergateError\(/.test(line)) continue;
      counts.set(file, (counts.get(file) ?? 0) + 1);
      if (!Object.hasOwn(DIRECT_CONSTRUCTION, file)) offenders.push(`${file}:${i + 1}`);
    }
  }
  assert.deepEqual(offenders, []);
  for (const [file, { count }] of Object.entries(DIRECT_CONSTRUCTION)) assert.equal(counts.get(file) ?? 0, count, `${file}: update DIRECT_CONSTRUCTION`);
});
