// Loaded with `node --import bench/probe.mjs` into the infergate server and its Node instance hosts by
// bench/run.mjs (issue 13 part 1): what the event loop and the GC of each process did during each measured
// phase, so that every stall in a run can be attributed to a process and to a cause.
//
// On SIGUSR2 it writes what it saw since the previous SIGUSR2 to $INFERGATE_BENCH_PROBE_DIR/<pid>.json
// (written to a temp name, then renamed: the bench never reads half a file) and starts afresh. The bench
// signals every process before and after a measured run and keeps the second file.
//
// - Event-loop delay: perf_hooks.monitorEventLoopDelay at 1 ms resolution (p50/p99/max, ms of delay beyond
//   the 1 ms tick).
// - Stalls: a 1 ms timer of its own that, when its callback runs more than STALL_MS late, records when, how
//   long, and how much CPU the process used meanwhile (process.cpuUsage: all threads). CPU ~ the gap means
//   the loop was busy (our JS, or a GC pause); CPU far below the gap means the process was not running
//   (descheduled: another process had the core) — the attribution the issue asks for.
// - GC: PerformanceObserver 'gc' entries (count, total and max pause by kind), each with its start so a
//   stall can be matched to the GC pauses inside it.
// - Scheduling: /proc/self/schedstat (time on CPU, time waiting on a run queue, timeslices) and the
//   voluntary / involuntary context switches of /proc/self/status, as deltas over the phase.
//
// Cost: one timer callback per ms (~1-2 µs each with the cpuUsage call): ~0.1-0.2 % of a core.
import { monitorEventLoopDelay, PerformanceObserver, constants } from 'node:perf_hooks';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const DIR = process.env.INFERGATE_BENCH_PROBE_DIR;
const STALL_MS = Number(process.env.INFERGATE_BENCH_PROBE_STALL_MS ?? 5);
const RESOLUTION_MS = 1;

if (DIR) {
  const KINDS = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'scavenge',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'mark-compact',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental-marking',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak-callbacks',
  };
  const role = process.argv.some((a) => a.endsWith('host.js')) ? 'instance-host' : 'server';
  let eld = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
  eld.enable();
  let gc = {};
  let gcEvents = [];
  let stalls = [];
  const obs = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = KINDS[e.detail?.kind ?? e.kind] ?? `kind-${e.detail?.kind ?? e.kind}`;
      const k = (gc[kind] ??= { count: 0, total_ms: 0, max_ms: 0 });
      k.count++;
      k.total_ms += e.duration;
      if (e.duration > k.max_ms) k.max_ms = e.duration;
      if (e.duration >= 1 && gcEvents.length < 2000) gcEvents.push([Math.round(e.startTime * 10) / 10, kind, Math.round(e.duration * 100) / 100]);
    }
  });
  obs.observe({ entryTypes: ['gc'] });

  let last = performance.now();
  let lastCpu = process.cpuUsage();
  setInterval(() => {
    const now = performance.now();
    const gap = now - last;
    const cpu = process.cpuUsage();
    if (gap - RESOLUTION_MS > STALL_MS && stalls.length < 5000) {
      const cpuMs = (cpu.user - lastCpu.user + cpu.system - lastCpu.system) / 1000;
      stalls.push([Math.round(last * 10) / 10, Math.round(gap * 100) / 100, Math.round(cpuMs * 100) / 100]);
    }
    last = now;
    lastCpu = cpu;
  }, RESOLUTION_MS).unref();

  const sched = () => {
    const s = {};
    try {
      const [run, wait, slices] = readFileSync('/proc/self/schedstat', 'latin1').trim().split(/\s+/).map(Number);
      Object.assign(s, { run_ns: run, wait_ns: wait, timeslices: slices });
    } catch {}
    try {
      const st = readFileSync('/proc/self/status', 'latin1');
      s.voluntary = Number(st.match(/^voluntary_ctxt_switches:\s+(\d+)/m)?.[1]);
      s.involuntary = Number(st.match(/^nonvoluntary_ctxt_switches:\s+(\d+)/m)?.[1]);
    } catch {}
    return s;
  };
  let since = performance.now();
  let sched0 = sched();

  process.on('SIGUSR2', () => {
    const now = performance.now();
    const s1 = sched();
    const q = (p) => Math.max(0, eld.percentile(p) / 1e6 - RESOLUTION_MS);
    const round = (o) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, { count: v.count, total_ms: Math.round(v.total_ms * 100) / 100, max_ms: Math.round(v.max_ms * 100) / 100 }]));
    // Each stall with the GC pauses that overlap it (ms of GC inside the gap).
    const withGc = stalls.map(([t, gap, cpuMs]) => {
      let gcMs = 0;
      for (const [gt, , d] of gcEvents) {
        const overlap = Math.min(t + gap, gt + d) - Math.max(t, gt);
        if (overlap > 0) gcMs += overlap;
      }
      return { at_ms: Math.round(t - since), gap_ms: gap, cpu_ms: cpuMs, gc_ms: Math.round(gcMs * 100) / 100 };
    });
    const out = {
      pid: process.pid,
      role,
      cwd: process.cwd(),
      phase_ms: Math.round(now - since),
      eld_ms: eld.count > 0 ? { p50: q(50), p99: q(99), p999: q(99.9), max: Math.max(0, eld.max / 1e6 - RESOLUTION_MS), samples: eld.count } : null,
      gc: round(gc),
      gc_pauses_over_1ms: gcEvents.map(([t, k, d]) => [Math.round(t - since), k, d]),
      stalls: withGc,
      sched: {
        run_ms: Math.round((s1.run_ns - sched0.run_ns) / 1e4) / 100,
        runqueue_wait_ms: Math.round((s1.wait_ns - sched0.wait_ns) / 1e4) / 100,
        timeslices: s1.timeslices - sched0.timeslices,
        voluntary_switches: s1.voluntary - sched0.voluntary,
        involuntary_switches: s1.involuntary - sched0.involuntary,
      },
      heap: process.memoryUsage(),
    };
    const file = join(DIR, `${process.pid}.json`);
    try {
      writeFileSync(`${file}.tmp`, JSON.stringify(out));
      renameSync(`${file}.tmp`, file);
    } catch {
      // the probe must never take the process down; the bench then reports no figures for it
    }
    eld.disable();
    eld = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    eld.enable();
    gc = {};
    gcEvents = [];
    stalls = [];
    since = performance.now();
    sched0 = s1;
  });
}
