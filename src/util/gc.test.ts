import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';

// The flag set at run time reaches the scavenger: with it, no scavenge runs on helper threads.
const PROGRAM = `
const mode = process.argv[1];
if (mode === 'off') (await import(${JSON.stringify(new URL('./gc.ts', import.meta.url).href)})).scavengeOnMainThread();
console.log('MEASURE');
const keep = [];
for (let i = 0; i < 1e6; i++) { keep.push({ a: i, b: [i] }); if (keep.length > 100000) keep.length = 0; }
`;

function backgroundScavengeMs(mode: string): number {
  const out = execFileSync(process.execPath, ['--import', 'tsx', '--trace-gc-nvp', '--input-type=module', '-e', PROGRAM, mode], { encoding: 'utf8', env: { ...process.env, INFERGATE_PARALLEL_SCAVENGE: '' } });
  let sum = 0;
  // Only scavenges after the flag is set (tsx's loading before it runs with V8's default).
  for (const m of out.slice(out.indexOf('MEASURE')).matchAll(/ background\.scavenge\.parallel=([\d.]+)/g)) sum += Number(m[1]);
  return sum;
}

test('scavengeOnMainThread: scavenges run on the main thread only (V8 helpers wait for a free core, util/gc.ts)', () => {
  assert.ok(backgroundScavengeMs('on') > 0, 'V8 uses helper threads by default (else this test shows nothing)');
  assert.equal(backgroundScavengeMs('off'), 0);
});
