// What the process and docker backends share: instances kept in a map by id, their observed state, the
// change listeners, failure and log-line bookkeeping, get-logs over the console-log files, and the
// removal of a deleted deployment's files found at start-up. How an instance runs is the subclass's.

import { formatLogLine } from '../protocol/log.js';
import { linkCurrent, readDeploymentLogs, unknownDeployments } from './files.js';
import { ConsoleLog, CONSOLE_LOG_DEFAULTS, type ConsoleLogOptions } from './process/console-log.js';
import type { InstanceAddress, InstancePlan } from '../ir/types.js';
import type { ProbeCallbacks } from './process/probe.js';
import type { LogContainer, ObservedInstance } from './types.js';

export interface LocalInstance {
  observed: ObservedInstance;
  log: ConsoleLog | null;
  stopping: boolean;
  restartTimer: NodeJS.Timeout | null;
  stopProbes: (() => void) | null;
}

export abstract class LocalBackend<I extends LocalInstance> {
  protected readonly instances = new Map<string, I>();
  protected readonly consoleLog: Required<ConsoleLogOptions>;
  private readonly listeners: (() => void)[] = [];

  constructor(
    protected readonly workspace: string,
    protected readonly serverLog: ((line: string) => void) | undefined,
    consoleLog: ConsoleLogOptions | undefined,
  ) {
    this.consoleLog = { ...CONSOLE_LOG_DEFAULTS, ...consoleLog };
  }

  observe(): ObservedInstance[] {
    return [...this.instances.values()].map((i) => ({ ...i.observed, ...(i.observed.address ? { address: { ...i.observed.address } } : {}) }));
  }

  onChange(listener: () => void): void {
    this.listeners.push(listener);
  }

  abstract forget(endpoint: string, deployment: string): Promise<void>;

  logs(endpoint: string, deployment: string, container: LogContainer, lines: number): Promise<string> {
    return readDeploymentLogs(this.workspace, endpoint, deployment, container, lines, this.idsOf(endpoint, deployment), this.consoleLog.keepFiles);
  }

  /** At start-up: removes the files of deployments deleted just before an earlier server died. */
  async forgetUnknown(exists: (endpoint: string, deployment: string) => boolean): Promise<void> {
    for (const [endpoint, deployment] of await unknownDeployments(this.workspace, exists)) {
      this.serverLog?.(`removing the files of deleted deployment ${endpoint}/${deployment}`);
      await this.forget(endpoint, deployment);
    }
  }

  /** A line of infergate's own (the autoscaler's decisions) in the console log of each of the deployment's instances. */
  note(endpoint: string, deployment: string, line: string): void {
    for (const inst of this.instances.values()) if (inst.observed.endpoint === endpoint && inst.observed.deployment === deployment) inst.log?.write(formatLogLine('I', 'infergate.autoscale', line));
  }

  /**
   * The first step of every stop: the instance leaves traffic (no address), restarts and probes end.
   * False when a stop was already under way (the caller only waits for it then).
   */
  protected markStopping(inst: I): boolean {
    if (inst.stopping) return false;
    inst.stopping = true;
    inst.observed.state = 'stopping';
    delete inst.observed.address;
    if (inst.restartTimer) clearTimeout(inst.restartTimer);
    inst.stopProbes?.();
    return true;
  }

  /**
   * What a ready instance's probes do, the same on every local backend: readiness moves it in and out of
   * traffic, liveness failing kills it (the exit restarts it). `current()` is false once the process or
   * container the probes were started for is gone or being stopped.
   */
  protected probeCallbacks(inst: I & { plan: InstancePlan }, current: () => boolean, address: InstanceAddress, kill: () => void): ProbeCallbacks {
    return {
      onReadiness: (ready) => {
        if (inst.stopping || !current()) return;
        this.writeLog(inst, ready ? 'Readiness probe passed: the instance takes traffic again' : `Readiness probe failed ${inst.plan.readinessProbe.failureThreshold} times: no traffic until it passes`);
        inst.observed.state = ready ? 'ready' : 'unready';
        if (ready) inst.observed.address = address;
        else delete inst.observed.address;
        this.changed();
      },
      onDead: (failures) => {
        if (inst.stopping || !current()) return;
        // Azure's event: "Container inference-server failed liveness probe, will be restarted".
        this.writeLog(inst, `Killing: the instance failed its liveness probe ${failures} times in a row, will be restarted`);
        kill();
      },
    };
  }

  /** Ids of this backend's instances of one deployment (running, starting or stopping). */
  protected idsOf(endpoint: string, deployment: string): Set<string> {
    return new Set([...this.instances.values()].filter((i) => i.observed.endpoint === endpoint && i.observed.deployment === deployment).map((i) => i.observed.id));
  }

  protected changed(): void {
    this.updateCurrentLinks();
    for (const l of this.listeners) l();
  }

  /** Per deployment ("endpoint/deployment"), the instance its `current` log link names (files.ts). */
  private readonly currentLinks = new Map<string, string>();
  /** Link changes run one after another, so the last change is the one left on disk. */
  private linking: Promise<void> = Promise.resolve();

  /** Moves each deployment's `current` link to its newest live instance: the last started (map order) that is not failed or stopping. */
  private updateCurrentLinks(): void {
    const newest = new Map<string, ObservedInstance>();
    for (const i of this.instances.values()) {
      const o = i.observed;
      if (i.stopping || o.state === 'failed' || o.state === 'stopping') continue;
      newest.set(`${o.endpoint}/${o.deployment}`, o);
    }
    // A deployment with no live instance keeps its link (the last instance's logs stay); forgotten here
    // so that its next instance is linked again.
    for (const key of this.currentLinks.keys()) if (!newest.has(key)) this.currentLinks.delete(key);
    for (const [key, o] of newest) {
      if (this.currentLinks.get(key) === o.id) continue;
      this.currentLinks.set(key, o.id);
      this.linking = this.linking
        .then(async () => {
          if (this.currentLinks.get(key) !== o.id) return; // superseded before it ran
          if (!(await linkCurrent(this.workspace, o.endpoint, o.deployment, o.id)) && this.currentLinks.get(key) === o.id) this.currentLinks.delete(key);
        })
        .catch((e: unknown) => this.serverLog?.(`logs/${key}/current not updated: ${(e as Error).message}`));
    }
  }

  /** Final for the instance: its deployment shows `code` and `message` (a stop in progress wins). */
  protected setFailed(inst: I, code: string, message: string): void {
    if (inst.stopping) return;
    inst.observed.state = 'failed';
    inst.observed.error = { code, message };
    delete inst.observed.address;
    this.changed();
  }

  /** A line of the backend's own in the instance's console log (get-logs) and in the server's log. */
  protected writeLog(inst: I, message: string): void {
    inst.log?.write(formatLogLine('I', 'infergate.backend', message));
    this.serverLog?.(`[${inst.observed.id}] ${message}`);
  }
}
