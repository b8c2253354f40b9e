// Writes the YAML documents' JSON Schemas to dist/schemas/<name>.json (issue 14), from the compiled
// combinators, so editors can use them offline from the installed package. Run by copy-assets.mjs after
// tsc; `node scripts/json-schemas.mjs <dist>` writes them from another build directory.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const dist = resolve(process.argv[2] ?? join(dirname(fileURLToPath(import.meta.url)), '..', 'dist'));
const { yamlSchemas } = await import(pathToFileURL(join(dist, 'spec', 'json-schema.js')).href);

const out = join(dist, 'schemas');
rmSync(out, { recursive: true, force: true }); // a schema dropped from the source must not linger
mkdirSync(out, { recursive: true });
for (const [name, schema] of Object.entries(yamlSchemas())) {
  // Same bytes as GET /schemas/<name>.json serves.
  writeFileSync(join(out, `${name}.json`), JSON.stringify(schema, null, 2) + '\n');
}
