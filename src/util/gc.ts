// The router's garbage collection (issue 13, bench/README.md "The long scavenges"). V8 scavenges the young
// generation with helper threads by default, and the main thread waits for them; when the router's core
// is busy (instances, wrk, a pinned router) the helpers are not scheduled and the pause grows (pinned
// bench, the server started with --no-parallel-scavenge: 21 scavenges, 24 ms in all, max 2.1 ms, against
// 20, 246 ms, max 19.3 ms). A router's survivors are small, so one thread is enough and never waits for
// another. (The 40-80 ms scavenges were another cause, found later: protocol/pending.ts.)
// INFERGATE_PARALLEL_SCAVENGE=1 keeps V8's default.

import { setFlagsFromString } from 'node:v8';

export function scavengeOnMainThread(): void {
  if (process.env.INFERGATE_PARALLEL_SCAVENGE === '1') return;
  setFlagsFromString('--no-parallel-scavenge');
}
