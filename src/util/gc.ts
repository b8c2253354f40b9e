// The router's garbage collection (issue 13, bench/README.md "The long scavenges"). V8 scavenges the young
// generation with helper threads by default; when the router's core is busy (instances, wrk, a pinned
// router) the main thread waits for helpers that are not scheduled. Started with --no-parallel-scavenge
// on the command line, the bench's router scavenged 21x 24 ms (max 2.1 ms) per run instead of 20x 246 ms
// (max 19.3 ms). Set here at run time, the scavenger stops using helpers (--trace-gc-nvp:
// background.scavenge.parallel=0.00 once the server serves), but the quiet bench still showed long
// scavenges: the command-line effect is not reproduced yet (open, bench/README.md). Kept because a
// router's survivors are small and one thread never waits for another. INFERGATE_PARALLEL_SCAVENGE=1
// keeps V8's default.

import { setFlagsFromString } from 'node:v8';

export function scavengeOnMainThread(): void {
  if (process.env.INFERGATE_PARALLEL_SCAVENGE === '1') return;
  setFlagsFromString('--no-parallel-scavenge');
}
