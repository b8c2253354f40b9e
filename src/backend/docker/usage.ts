// CPU and memory of docker instances (issue 12: CpuUtilizationPercentage, MemoryUtilizationPercentage),
// read from the container's cgroup files on this machine. The Engine's stats API would say the same but
// takes 1-2 s per call (it waits for a second reading), and the autoscale sampler asks every second.
// An Engine on another machine (DOCKER_HOST=tcp://...) has no cgroup files here: no readings, no error.

import { readFile } from 'node:fs/promises';

export interface ContainerUsage {
  /** CPU time since the container started. */
  cpuSeconds: number;
  /** Memory in use less inactive file pages (page cache the kernel can drop), as `docker stats` shows it. */
  memoryBytes: number;
}

/** Where one layout keeps a container's CPU and memory accounting. */
interface CgroupFiles {
  cpu: string;
  memory: string;
  memoryStat: string;
  v2: boolean;
}

/**
 * The layouts dockerd uses: cgroup v1 with the cgroupfs driver (this project's machines), v1 with the
 * systemd driver, v2 with systemd (the common default) and v2 with cgroupfs.
 */
function candidates(root: string, id: string): CgroupFiles[] {
  const v1 = (parent: string): CgroupFiles => ({
    cpu: `${root}/cpuacct/${parent}/cpuacct.usage`,
    memory: `${root}/memory/${parent}/memory.usage_in_bytes`,
    memoryStat: `${root}/memory/${parent}/memory.stat`,
    v2: false,
  });
  const v2 = (dir: string): CgroupFiles => ({ cpu: `${dir}/cpu.stat`, memory: `${dir}/memory.current`, memoryStat: `${dir}/memory.stat`, v2: true });
  return [v1(`docker/${id}`), v1(`system.slice/docker-${id}.scope`), v2(`${root}/system.slice/docker-${id}.scope`), v2(`${root}/docker/${id}`)];
}

const read = (path: string): Promise<string | undefined> => readFile(path, 'utf8').catch(() => undefined);

function statField(text: string | undefined, name: string): number {
  const m = text === undefined ? null : new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

/** Reads containers' cgroups; remembers which layout each container was found in. */
export class CgroupUsage {
  private readonly found = new Map<string, CgroupFiles>();

  constructor(private readonly root = '/sys/fs/cgroup') {}

  /** A container's usage, or undefined when its cgroup is not on this machine (gone, or a remote Engine). */
  async read(containerId: string): Promise<ContainerUsage | undefined> {
    const known = this.found.get(containerId);
    if (known) {
      const u = await this.readFiles(known);
      if (u) return u;
      this.found.delete(containerId);
      return undefined;
    }
    for (const files of candidates(this.root, containerId)) {
      const u = await this.readFiles(files);
      if (u) {
        this.found.set(containerId, files);
        return u;
      }
    }
    return undefined;
  }

  /** Drops what is remembered of containers not in `ids` (removed ones). */
  retain(ids: ReadonlySet<string>): void {
    for (const id of this.found.keys()) if (!ids.has(id)) this.found.delete(id);
  }

  private async readFiles(f: CgroupFiles): Promise<ContainerUsage | undefined> {
    const [cpu, memory, stat] = await Promise.all([read(f.cpu), read(f.memory), read(f.memoryStat)]);
    if (cpu === undefined || memory === undefined) return undefined;
    // v1 cpuacct.usage: nanoseconds; v2 cpu.stat usage_usec: microseconds.
    const cpuSeconds = f.v2 ? statField(cpu, 'usage_usec') / 1e6 : Number(cpu.trim()) / 1e9;
    const inactive = f.v2 ? statField(stat, 'inactive_file') : statField(stat, 'total_inactive_file');
    const used = Number(memory.trim());
    if (!Number.isFinite(cpuSeconds) || !Number.isFinite(used)) return undefined;
    return { cpuSeconds, memoryBytes: Math.max(0, used - (inactive < used ? inactive : 0)) };
  }
}
