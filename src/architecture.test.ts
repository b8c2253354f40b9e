// Keeps the import arrows of DESIGN.md pointing down the pipeline: each src/ folder may import only the
// folders listed for it. A new folder must be added here, on purpose.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = dirname(fileURLToPath(import.meta.url));

const ALLOWED: Record<string, string[]> = {
  errors: [],
  util: ['errors'],
  // The instance protocol (frames, the framed client, the batching writer, host ↔ backend messages, log
  // lines, hop-by-hop headers): a leaf that router, backends, runtime and the CLI share.
  protocol: ['errors', 'util'],
  telemetry: ['errors', 'util'],
  ir: ['util'],
  spec: ['errors', 'util'],
  store: ['spec', 'errors', 'util'],
  compile: ['spec', 'store', 'ir', 'errors', 'util'],
  // Router and backends see only the IR (the narrow waist).
  router: ['ir', 'protocol', 'errors', 'telemetry', 'util'],
  backend: ['ir', 'protocol', 'errors', 'telemetry', 'util'],
  // Runs inside an instance: nothing of the control plane or router, only the protocol it speaks.
  runtime: ['protocol', 'util'],
  reconcile: ['backend', 'compile', 'store', 'spec', 'ir', 'errors', 'telemetry', 'util'],
  // Autoscale (issue 12): settings, metrics, the pure engine and its runner; it scales through an
  // injected Scaler (main/ wires it to the control plane), never by importing it.
  autoscale: ['store', 'spec', 'ir', 'errors', 'telemetry', 'util'],
  // The service layer: the rules of endpoints, deployments, traffic and assets, behind any front end.
  control: ['reconcile', 'compile', 'store', 'spec', 'ir', 'errors', 'telemetry', 'util'],
  api: ['control', 'autoscale', 'reconcile', 'compile', 'store', 'spec', 'ir', 'errors', 'telemetry', 'util'],
  client: ['errors', 'util'],
  // backend: `infergate serve` runs its instance host with the process backend's supervisor.
  cli: ['client', 'backend', 'protocol', 'spec', 'errors', 'util', 'main'],
  main: ['api', 'autoscale', 'control', 'backend', 'reconcile', 'router', 'protocol', 'store', 'compile', 'spec', 'ir', 'errors', 'telemetry', 'util'],
};

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? files(p) : n.endsWith('.ts') && !n.endsWith('.test.ts') ? [p] : [];
  });
}

test('every src/ folder is known to the architecture rules', () => {
  const folders = readdirSync(SRC).filter((n) => statSync(join(SRC, n)).isDirectory());
  for (const f of folders) assert.ok(f in ALLOWED, `src/${f} has no entry in ALLOWED (architecture.test.ts)`);
});

test('imports point only where DESIGN.md allows', () => {
  const violations: string[] = [];
  for (const file of files(SRC)) {
    const from = relative(SRC, file).split(/[\\/]/)[0];
    if (!(from in ALLOWED)) continue;
    const text = readFileSync(file, 'utf8');
    for (const m of text.matchAll(/(?:import|export)\s[^'"]*?from\s+['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)) {
      const spec = m[1] ?? m[2];
      const target = relative(SRC, resolve(dirname(file), spec)).split(/[\\/]/)[0];
      if (target === from || target.startsWith('..')) continue;
      if (!ALLOWED[from].includes(target)) violations.push(`${relative(SRC, file)} imports ${spec} (${from} → ${target})`);
    }
  }
  assert.deepEqual(violations, []);
});
