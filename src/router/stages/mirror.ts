// Stage 5, mirror: a copy of a live scoring request to the endpoint's mirror deployment (Azure's
// mirror_traffic), after the live request went out so the copy never delays it. Fire and forget: the
// client never waits for, or sees, the mirror's answer; only the deployment's mirror counters do.

import { FRAME_BUSY, responseStatus } from '../../protocol/frame.js';
import type { DeploymentState } from '../state.js';
import { pickFree, type Admission } from './admission.js';

/**
 * A copy goes only to an instance with a free slot (max_concurrent_requests_per_instance holds for
 * mirrors too) and is never queued: no free slot means the copy is dropped and counted. A mirror
 * deployment scaled to zero is asked for an instance (the user asked for it to see this traffic), and
 * gets copies once one is ready.
 */
export function sendMirror(d: DeploymentState, method: string, path: string, headers: string[], requestId: string, body: Buffer, admission: Admission): void {
  const m = d.m;
  // With instance admission the router's bound per instance includes the host's waiting places (2 ×
  // max_concurrent): a copy takes only a running slot, so it never queues ahead of live requests there.
  const conn = pickFree(d, null, d.hostAdmission ? d.route.maxConcurrentRequestsPerInstance : d.perInstance);
  if (conn === null) {
    m.mirror.dropped++;
    if (d.connections.length === 0 && d.route.scaleFromZero) admission.demand(d);
    return;
  }
  m.mirror.sent++;
  m.mirrorInFlight++;
  const started = performance.now();
  conn.send(method, path, headers, requestId, body, {
    deadline: started + d.route.requestTimeoutMs,
    onResponse(frame) {
      m.mirrorInFlight--;
      // The instance had no room (instance admission): as a copy that found no free slot here.
      if (frame[8] === FRAME_BUSY) return void m.mirror.dropped++;
      const status = responseStatus(frame);
      m.mirrorLatencyMs += performance.now() - started;
      if (status === 200) m.mirror.answered++;
      else m.mirror.error++;
    },
    onFailure() {
      m.mirrorInFlight--;
      m.mirror.failed++;
    },
  });
}
