// Golden files: every testdata/**/<case>.in.yaml is loaded and compared with <case>.out.json (the spec,
// or the problems). Cases whose name contains "deployment" are deployments, the others endpoints.
// The copies of the Azure examples keep their relative layout so their `../../model-1/...` paths resolve.
// UPDATE_GOLDEN=1 rewrites the .out.json files; review the diff before committing it.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadDeploymentYaml, loadEndpointYaml } from './index.js';

const testdata = join(dirname(fileURLToPath(import.meta.url)), 'testdata');

function cases(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) =>
    d.isDirectory() ? cases(join(dir, d.name)) : d.name.endsWith('.in.yaml') ? [join(dir, d.name)] : [],
  );
}

/** JSON with the machine-specific testdata directory replaced by <dir>. */
const render = (v: unknown): string => JSON.stringify(v, null, 2).replaceAll(testdata, '<dir>') + '\n';

for (const input of cases(testdata).sort()) {
  const name = relative(testdata, input).replace(/\.in\.yaml$/, '');
  test(`golden ${name}`, () => {
    const text = readFileSync(input, 'utf8');
    const result = name.includes('deployment') ? loadDeploymentYaml(text, input) : loadEndpointYaml(text, input);
    const actual = render(result.spec ? { spec: result.spec } : { problems: result.problems });
    const golden = input.replace(/\.in\.yaml$/, '.out.json');
    if (process.env.UPDATE_GOLDEN === '1') writeFileSync(golden, actual);
    assert.ok(existsSync(golden), `${golden} is missing; run with UPDATE_GOLDEN=1 to create it`);
    assert.equal(actual, readFileSync(golden, 'utf8'));
  });
}
