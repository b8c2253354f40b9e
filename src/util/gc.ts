// The router's garbage collection (issue 13, bench/README.md "Tail stalls"). V8 scavenges the young
// generation with helper threads by default; on a machine whose cores are busy (the instances, wrk, other
// routers — or a router pinned to one core) the main thread waits for helpers that are not scheduled, and a
// scavenge of ~1.5 MB of survivors took 6-24 ms instead of ~1.5 ms: 17-20 such pauses per 5 s run were the
// router's whole p99 at half its maximum rate (bench: scavenges 20x 246 ms, max 19.3 ms → 21x 24 ms,
// max 2.1 ms with it off). The router's survivors are small, so one thread is enough and never waits.
// Set at run time (the scavenger reads the flag at each scavenge; checked with --trace-gc-nvp:
// background.scavenge.parallel goes to 0). INFERGATE_PARALLEL_SCAVENGE=1 keeps V8's default.

import { setFlagsFromString } from 'node:v8';

export function scavengeOnMainThread(): void {
  if (process.env.INFERGATE_PARALLEL_SCAVENGE === '1') return;
  setFlagsFromString('--no-parallel-scavenge');
}
