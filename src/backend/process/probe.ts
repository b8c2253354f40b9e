// Liveness and readiness probes (contract §1.7): `GET /` to the instance over its own framed socket,
// as Azure's probes call the inference server's `/` route. A fresh connection per probe, so a probe
// never queues behind scoring traffic on the router's connection.

import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { InstanceConnection } from '../../protocol/client.js';
import { responseStatus } from '../../protocol/frame.js';

const EMPTY = Buffer.alloc(0);

/**
 * True when the instance answers `GET /` with 200 within `timeoutMs`. The router's framed client on a
 * connection of its own, closed after the one answer: a timed-out probe sends CANCEL as a timed-out
 * request does, and an INSTANCE_ERROR answer (a worker died) counts as a failure like any non-200.
 */
export function probeOnce(socketPath: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const connection = new InstanceConnection({ socketPath });
    const finish = (ok: boolean) => {
      connection.close();
      resolve(ok);
    };
    connection.send('GET', '/', [], randomUUID(), EMPTY, {
      deadline: performance.now() + timeoutMs,
      onResponse: (frame) => finish(responseStatus(frame) === 200),
      onFailure: () => finish(false),
    });
  });
}

export interface ProbeSettings {
  initialDelay: number;
  period: number;
  timeout: number;
  successThreshold: number;
  failureThreshold: number;
}

export interface ProbeCallbacks {
  /** Readiness crossed its threshold one way or the other. */
  onReadiness(ready: boolean): void;
  /** Liveness failed `failureThreshold` times in a row. */
  onDead(failures: number): void;
}

/**
 * Runs both probes for one instance until stopped. Readiness: `failureThreshold` failures in a row
 * mark it unready, `successThreshold` successes ready again. Liveness: `failureThreshold` failures in a
 * row → onDead (its success threshold is fixed at 1, as Azure's).
 */
export function startProbes(socketPath: string, liveness: ProbeSettings, readiness: ProbeSettings, cb: ProbeCallbacks): () => void {
  const timers: (NodeJS.Timeout | null)[] = [null, null];
  let stopped = false;
  const loop = (slot: number, p: ProbeSettings, onResult: (ok: boolean) => void) => {
    const tick = async () => {
      if (stopped) return;
      const ok = await probeOnce(socketPath, p.timeout * 1000);
      if (stopped) return;
      onResult(ok);
      if (!stopped) timers[slot] = setTimeout(tick, p.period * 1000).unref();
    };
    timers[slot] = setTimeout(tick, p.initialDelay * 1000).unref();
  };

  let liveFailures = 0;
  loop(0, liveness, (ok) => {
    liveFailures = ok ? 0 : liveFailures + 1;
    if (liveFailures >= liveness.failureThreshold) {
      stopped = true;
      cb.onDead(liveFailures);
    }
  });
  let ready = true;
  let streak = 0;
  loop(1, readiness, (ok) => {
    if (ok === ready) {
      streak = 0;
      return;
    }
    streak++;
    if (streak >= (ok ? readiness.successThreshold : readiness.failureThreshold)) {
      ready = ok;
      streak = 0;
      cb.onReadiness(ready);
    }
  });
  return () => {
    stopped = true;
    for (const t of timers) if (t) clearTimeout(t);
  };
}
