// For tests that run the real command from src/ (through tsx, no build needed): main.ts runs nothing
// when imported, so this is what bin/infergate.js does for dist/, as node arguments.

import { fileURLToPath, pathToFileURL } from 'node:url';

const MAIN_URL = pathToFileURL(fileURLToPath(new URL('./main.ts', import.meta.url))).href;

/** `node <these> ` runs `infergate <args>` from source; the working directory must resolve `tsx`. */
export function sourceCliArgs(args: string[], nodeOptions: string[] = []): string[] {
  const run = `import { main } from ${JSON.stringify(MAIN_URL)}; process.exitCode = await main(process.argv.slice(1));`;
  return [...nodeOptions, '--import', 'tsx', '--input-type=module', '--eval', run, '--', ...args];
}
