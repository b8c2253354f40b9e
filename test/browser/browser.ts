// Shared by the browser suites: Debian's chromium driven by playwright-core, headless, with a fresh
// profile per launch (Playwright makes one per launch()). Without /usr/bin/chromium a developer's
// `npm test` skips the suites and says why; CI sets INFERGATE_REQUIRE_BROWSER=1, so a machine that lost
// its browser fails instead of passing quietly (scripts/setup.sh installs chromium).

import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { ROOT } from '../e2e/harness.js';

export const CHROMIUM = process.env.INFERGATE_CHROMIUM ?? '/usr/bin/chromium';
export const ARTIFACTS = join(ROOT, 'test-artifacts', 'studio');

/** The `skip` option of a browser suite's tests; throws under INFERGATE_REQUIRE_BROWSER=1 when chromium is missing. */
export function browserSkip(): string | false {
  if (existsSync(CHROMIUM)) return false;
  const why = `${CHROMIUM} is missing (scripts/setup.sh installs Debian's chromium)`;
  if (process.env.INFERGATE_REQUIRE_BROWSER === '1') throw new Error(`INFERGATE_REQUIRE_BROWSER=1 but ${why}`);
  return why;
}

export function launch(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

export function artifact(name: string): string {
  mkdirSync(ARTIFACTS, { recursive: true });
  return join(ARTIFACTS, name);
}
