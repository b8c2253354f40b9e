// The error catalogue's contract: docs/errors.md is what the catalogue says (regenerate it, never edit
// it), every template fills completely and keeps its code's status, and the API and service layer word
// their errors only through templates.

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

test('src/api and src/control word their errors through templates (errorOf), never new InfergateError(...)', () => {
  const offenders: string[] = [];
  for (const folder of ['api', 'control']) {
    const dir = join(root, 'src', folder);
    for (const name of readdirSync(dir)) {
      if (!name.endsWith('.ts') || name.endsWith('.test.ts')) continue;
      const text = readFileSync(join(dir, name), 'utf8');
      for (const [i, line] of text.split('\n').entries()) if (/new InfergateError\(/.test(line)) offenders.push(`src/${folder}/${name}:${i + 1}`);
    }
  }
  assert.deepEqual(offenders, []);
});
