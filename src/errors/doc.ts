// Renders docs/errors.md from the catalogue and its message templates, so the reference cannot drift from
// the code (as Fastify's docs/Reference/Errors.md lists every FST_ERR_*). Regenerate with
// `node --import tsx scripts/errors-doc.ts`; src/errors/errors.test.ts fails while the file is stale.

import { catalogue, messages, type ErrorCode } from './catalogue.js';

const cell = (text: string): string => text.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function renderErrorsDoc(): string {
  const byCode = new Map<ErrorCode, [string, string][]>();
  for (const [situation, m] of Object.entries(messages)) {
    const list = byCode.get(m.code) ?? [];
    list.push([situation, m.template]);
    byCode.set(m.code, list);
  }
  const out: string[] = [
    '# Error codes',
    '',
    '<!-- Generated from src/errors/catalogue.ts by `node --import tsx scripts/errors-doc.ts`; do not edit. -->',
    '',
    'Every error infergate reports carries one of these codes: in API answers',
    '(`{ "error": { "code", "message", "details" } }`, with the HTTP status below), on the CLI\'s stderr, and in a',
    "deployment's or endpoint's `error`. Codes are a public contract: they are never renamed, only added. Where",
    "Azure ML has a code for the same situation, it is Azure's.",
    '',
    'Each situation has one wording, its message template; `{name}` stands for a value of that request (an',
    'endpoint name, a limit). Codes without a template word their messages from what they report (a',
    "validation problem list, a scoring script's traceback, an error the server reported and the CLI re-raises).",
    '',
    '## Codes',
    '',
    '| Code | HTTP status | Summary |',
    '| --- | --- | --- |',
  ];
  for (const [code, entry] of Object.entries(catalogue)) out.push(`| \`${code}\` | ${entry.status} | ${cell(entry.summary)} |`);
  out.push('', '## Message templates', '');
  for (const code of Object.keys(catalogue) as ErrorCode[]) {
    const list = byCode.get(code);
    if (!list) continue;
    out.push(`### ${code} (${catalogue[code].status})`, '', '| Situation | Message |', '| --- | --- |');
    for (const [situation, template] of list) out.push(`| \`${situation}\` | \`${cell(template)}\` |`);
    out.push('');
  }
  return out.join('\n');
}
