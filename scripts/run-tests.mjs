// Runs every test with node's own runner under tsx. Node 20's runner neither expands quoted globs nor
// discovers .ts files, so we list them here. `--unit` leaves out the end-to-end tests in test/e2e.
import { spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';

const unitOnly = process.argv.includes('--unit');
const files = [];
function walk(dir) {
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (name === 'node_modules' || name === 'fixtures' || name === 'testdata') continue;
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.ts')) files.push(p);
  }
}
walk('src');
if (!unitOnly) walk('test');
files.sort();
const extra = process.argv.slice(2).filter((a) => a !== '--unit');
// A test that hangs fails after 5 minutes instead of holding CI to its own limit (the slowest test, the
// package install, takes ~2 minutes; a test that needs longer says so with its own timeout option).
const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-concurrency=2', '--test-timeout=300000', ...extra, ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
