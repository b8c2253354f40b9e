// Liveness and readiness probes (contract §1.7): `GET /` to the instance over its own framed socket,
// as Azure's probes call the inference server's `/` route. A fresh connection per probe, so a probe
// never queues behind scoring traffic on the router's connection. Custom containers (BYOC) are probed
// over HTTP at their liveness_route and readiness_route instead (httpProbeOnce, startProbesWith).

import { randomUUID } from 'node:crypto';
import { request } from 'node:http';
import { performance } from 'node:perf_hooks';
import { InstanceConnection } from '../../protocol/client.js';
import { FRAME_BUSY, responseStatus } from '../../protocol/frame.js';

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
      // A BUSY frame (instance admission) has no status to read: the probe failed, as for a non-200.
      onResponse: (frame) => finish(frame[8] !== FRAME_BUSY && responseStatus(frame) === 200),
      onFailure: () => finish(false),
    });
  });
}

/**
 * True when `GET http://host:port<path>` answers 200-399 within `timeoutMs` (Kubernetes' httpGet rule,
 * which Azure's probes of a custom container follow). Refused, reset, a timeout or any other status fail.
 * A connection of its own, closed after the answer: a probe never waits behind scoring requests for one
 * of the router's sockets, and a hung container cannot keep a probe's socket open past its timeout.
 */
export function httpProbeOnce(host: string, port: number, path: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      req.destroy();
      resolve(ok);
    };
    const req = request({ host, port, path: path.startsWith('/') ? path : `/${path}`, method: 'GET', agent: false, headers: { connection: 'close', 'user-agent': 'infergate-probe' } }, (res) => {
      const status = res.statusCode ?? 0;
      // The status is the answer; the body is not read (a large or endless one must not hold the probe).
      finish(status >= 200 && status < 400);
    });
    req.on('error', () => finish(false));
    const timer = setTimeout(() => finish(false), timeoutMs).unref();
    req.end();
  });
}

/** One probe attempt: resolves true when it passed. `timeoutMs` is the probe's timeout setting. */
export type ProbeFn = (timeoutMs: number) => Promise<boolean>;

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
  const framed: ProbeFn = (timeoutMs) => probeOnce(socketPath, timeoutMs);
  return startProbesWith(framed, framed, liveness, readiness, cb);
}

/**
 * startProbes with the probe attempts given: a custom container's liveness and readiness routes may differ
 * (port and path each), e.g. `(t) => httpProbeOnce('127.0.0.1', port, route.path, t)`.
 */
export function startProbesWith(liveProbe: ProbeFn, readyProbe: ProbeFn, liveness: ProbeSettings, readiness: ProbeSettings, cb: ProbeCallbacks): () => void {
  const timers: (NodeJS.Timeout | null)[] = [null, null];
  let stopped = false;
  const loop = (slot: number, p: ProbeSettings, probe: ProbeFn, onResult: (ok: boolean) => void) => {
    const tick = async () => {
      if (stopped) return;
      const ok = await probe(p.timeout * 1000);
      if (stopped) return;
      onResult(ok);
      if (!stopped) timers[slot] = setTimeout(tick, p.period * 1000).unref();
    };
    timers[slot] = setTimeout(tick, p.initialDelay * 1000).unref();
  };

  let liveFailures = 0;
  loop(0, liveness, liveProbe, (ok) => {
    liveFailures = ok ? 0 : liveFailures + 1;
    if (liveFailures >= liveness.failureThreshold) {
      stopped = true;
      cb.onDead(liveFailures);
    }
  });
  let ready = true;
  let streak = 0;
  loop(1, readiness, readyProbe, (ok) => {
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
