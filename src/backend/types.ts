// The Backend interface (DESIGN.md "backend/"): runs instances from InstancePlans. Every method is
// idempotent: starting an instance id that runs already, or stopping one that is gone, is a no-op.
// Backends import ir, errors, telemetry and util only.

import type { InstanceAddress, InstancePlan, InstanceUsage } from '../ir/types.js';

export type InstanceState =
  /** storage initializer or init() still running */
  | 'starting'
  | 'ready'
  /** running, but its readiness probe fails: no traffic until it passes again */
  | 'unready'
  /** crashed; will be started again after a back-off */
  | 'restarting'
  /** gave up: init() failed, or the environment cannot run the script */
  | 'failed'
  | 'stopping';

export type LogContainer = 'inference-server' | 'storage-initializer';

export interface ObservedInstance {
  id: string;
  endpoint: string;
  deployment: string;
  revision: string;
  index: number;
  state: InstanceState;
  address?: InstanceAddress;
  restarts: number;
  error?: { code: string; message: string };
}

export type { InstanceUsage };

export interface Backend {
  readonly kind: 'process' | 'docker' | 'kubernetes';
  observe(): ObservedInstance[];
  /** Starts instance `id` (index `index` of `plan`) unless it exists. Resolves once it is launched, not ready. */
  start(id: string, plan: InstancePlan, index: number): Promise<void>;
  /** Stops the instance after its in-flight requests finish (bounded); removes it from observe(). */
  stop(id: string): Promise<void>;
  /** The last `lines` lines of a deployment's log for one container, newest instance first. */
  logs(endpoint: string, deployment: string, container: LogContainer, lines: number): Promise<string>;
  /**
   * A deleted deployment, none of whose instances runs any more: removes what the backend kept for it
   * (logs, instance directories). Optional: a backend that keeps nothing need not have it.
   */
  forget?(endpoint: string, deployment: string): Promise<void>;
  /**
   * CPU and memory of the instances that have processes or a container running now. Read every second
   * by the autoscale sampler, so it reads the kernel's files (procfs, cgroups), never a slow API.
   * Optional: a backend without it gives no CPU or memory metrics.
   */
  usage?(): Promise<InstanceUsage[]>;
  /** Writes a line of infergate's own into the deployment's console logs (get-logs). Optional. */
  note?(endpoint: string, deployment: string, line: string): void;
  /** Called whenever an instance changes state. */
  onChange(listener: () => void): void;
  close(): Promise<void>;
}
