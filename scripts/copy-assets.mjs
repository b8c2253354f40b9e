// Copies non-TypeScript runtime assets next to the compiled JavaScript, so dist/ is self-contained: the
// Python inference host with its compat/ packages (*.py, any depth) and the swagger templates (*.json);
// then the JSON Schemas of the YAML documents (json-schemas.mjs).
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';

const pairs = [['src/runtime/python', 'dist/runtime/python']];

function copyTree(from, to) {
  mkdirSync(to, { recursive: true });
  for (const entry of readdirSync(from, { withFileTypes: true })) {
    if (entry.name === '__pycache__') continue;
    const src = join(from, entry.name);
    const dst = join(to, entry.name);
    if (entry.isDirectory()) copyTree(src, dst);
    else if (entry.name.endsWith('.py') || entry.name.endsWith('.json')) cpSync(src, dst);
  }
}

for (const [from, to] of pairs) {
  rmSync(to, { recursive: true, force: true }); // files deleted from src/ must not linger in dist/
  copyTree(from, to);
}

// The JSON Schemas of the YAML documents, generated from the compiled spec/ (not copied: derived).
await import('./json-schemas.mjs');
