// For tests (kept out of the build, as every *-testing.ts): wait for a state instead of sleeping a fixed
// time and hoping it was reached. A fixed sleep is either too short on a loaded machine (a flaky test)
// or longer than needed everywhere else (a slow one); polling a condition with a deadline is neither.

import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Resolves once `condition()` holds, polling every `everyMs`; rejects naming `what` (and `detail()`, when
 * given, e.g. the log so far) if it does not hold within `timeoutMs`.
 */
export async function waitFor(what: string, condition: () => boolean, timeoutMs = 10_000, everyMs = 5, detail?: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${detail ? `\n${detail()}` : ''}`);
    await sleep(everyMs);
  }
}
