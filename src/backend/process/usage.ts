// CPU and memory of process instances (issue 12: CpuUtilizationPercentage, MemoryUtilizationPercentage),
// read from procfs. An instance is a process tree: its host (the pid the backend started) and whatever
// that started, its Python workers above all, and their children. The autoscale sampler asks every
// second, so one pass over /proc serves all instances, and only the files of tree members are read twice.

import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, totalmem } from 'node:os';
import type { InstanceUsage } from '../types.js';

/** One instance to measure: the root of its process tree and the limits it was planned with. */
export interface ProcessRoot {
  id: string;
  endpoint: string;
  deployment: string;
  pid: number;
  resources: { cpus?: number; memoryBytes?: number };
}

interface ProcStat {
  ppid: number;
  /** utime + stime + cutime + cstime, in clock ticks. */
  ticks: number;
}

let clockTicks: number | undefined;
/** USER_HZ (sysconf(_SC_CLK_TCK)), which Node cannot ask for: getconf, once; 100 on every Linux that matters. */
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    const r = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 2000 });
    const n = Number(r.stdout?.trim());
    clockTicks = Number.isInteger(n) && n > 0 ? n : 100;
  }
  return clockTicks;
}

/**
 * Parses /proc/<pid>/stat. The command name (field 2) is in parentheses and may hold spaces and ')',
 * so fields are counted from the last ')'. The waited-for children's times (cutime, cstime) count too:
 * a worker that died and was reaped keeps its CPU time in its parent's, so the tree's sum does not drop
 * when a worker is replaced, which the reader would take for a restart of the instance.
 */
export function parseStat(text: string): ProcStat | undefined {
  const close = text.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = text.slice(close + 2).split(' ');
  // f[0] is field 3 (state): ppid is field 4, utime..cstime fields 14..17.
  const ppid = Number(f[1]);
  const ticks = Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14]);
  return Number.isFinite(ppid) && Number.isFinite(ticks) ? { ppid, ticks } : undefined;
}

/** VmRSS of /proc/<pid>/status in bytes (0 for a kernel thread or a zombie, which have none). */
export function parseRss(status: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/**
 * procfs files are read synchronously, a few dozen between yields to the event loop: an asynchronous
 * read per file costs five times the CPU (one thread-pool round trip each; measured 8.7 ms against
 * 1.6 ms per pass over ~120 processes), and a whole pass at once would hold the router for ~3 ms.
 */
const BATCH = 32;
const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Usage of each root's process tree. A process that exits between the listing and its reads is left
 * out (ENOENT); a root that is gone gives no entry. Shared pages (libraries) count in every process's
 * RSS, so a tree with many workers reads somewhat higher than a container's cgroup would.
 */
export async function processUsage(roots: readonly ProcessRoot[], proc = '/proc'): Promise<InstanceUsage[]> {
  if (roots.length === 0) return [];
  let names: string[] = [];
  try {
    names = readdirSync(proc);
  } catch {
    // no procfs: nothing to measure
  }
  const stats = new Map<number, ProcStat>();
  let n = 0;
  for (const p of names) {
    if (!/^\d+$/.test(p)) continue;
    if (++n % BATCH === 0) await yieldToLoop();
    const text = read(`${proc}/${p}/stat`);
    const s = text === undefined ? undefined : parseStat(text);
    if (s) stats.set(Number(p), s);
  }
  const children = new Map<number, number[]>();
  for (const [pid, s] of stats) {
    const list = children.get(s.ppid);
    if (list) list.push(pid);
    else children.set(s.ppid, [pid]);
  }
  const hz = ticksPerSecond();
  const machineCpus = availableParallelism();
  const machineMemory = totalmem();
  const out: InstanceUsage[] = [];
  for (const r of roots) {
    if (!stats.has(r.pid)) continue;
    const tree: number[] = [];
    const seen = new Set<number>();
    for (const stack = [r.pid]; stack.length > 0; ) {
      const pid = stack.pop()!;
      if (seen.has(pid)) continue;
      seen.add(pid);
      tree.push(pid);
      for (const c of children.get(pid) ?? []) stack.push(c);
    }
    let ticks = 0;
    let rss = 0;
    for (const pid of tree) {
      ticks += stats.get(pid)!.ticks;
      if (++n % BATCH === 0) await yieldToLoop();
      rss += parseRss(read(`${proc}/${pid}/status`) ?? '');
    }
    out.push({
      id: r.id,
      endpoint: r.endpoint,
      deployment: r.deployment,
      cpuSeconds: ticks / hz,
      memoryBytes: rss,
      // Processes are not held to their instance type: a type larger than this machine is measured
      // against what the machine has, so that a rule such as "CPU > 70" can still be met.
      cpus: Math.min(r.resources.cpus ?? machineCpus, machineCpus),
      memoryLimitBytes: Math.min(r.resources.memoryBytes ?? machineMemory, machineMemory),
    });
  }
  return out;
}
