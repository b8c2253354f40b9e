// Writes docs/errors.md from the error catalogue (src/errors/doc.ts). Run after changing
// src/errors/catalogue.ts: `node --import tsx scripts/errors-doc.ts`.
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderErrorsDoc } from '../src/errors/doc.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'errors.md');
writeFileSync(file, renderErrorsDoc());
console.log(`wrote ${file}`);
