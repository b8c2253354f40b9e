// Copies non-TypeScript runtime assets (the Python inference host) next to the compiled JavaScript,
// so dist/ is self-contained.
import { cpSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';

const pairs = [['src/runtime/python', 'dist/runtime/python']];
for (const [from, to] of pairs) {
  mkdirSync(to, { recursive: true });
  for (const f of readdirSync(from)) {
    if (f.endsWith('.py')) cpSync(join(from, f), join(to, f));
  }
}
