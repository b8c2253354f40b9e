// What the instance host's connection handling needs from the two ways of running a scoring script:
// in-process JavaScript/TypeScript (js-scorer.ts) and a pool of Python workers (python-pool.ts).

import type { HeaderList } from '../protocol/frame.js';
import type { HostMessage } from '../protocol/messages.js';
import { pythonJsonDumps } from './py-json.js';

/** One framed connection from a router (or a test). Answers are matched to requests by id. */
export interface Peer {
  /** True once the connection is gone; answers for it are dropped. */
  readonly closed: boolean;
  /**
   * Queues a RESPONSE frame built from parts (coalesced with the rest of this event-loop turn).
   * `instanceError`: the answer is the host's own because the instance failed (a worker died, shutdown),
   * not the scoring script's: sent as INSTANCE_ERROR so the router reports an infrastructure error (502/
   * 503) instead of a model error (424). Peers that are not a router connection may ignore it.
   */
  respond(id: number, status: number, headers: HeaderList, body: Buffer, instanceError?: boolean): void;
  /** Queues a RESPONSE frame that is already encoded, id included (the Python relay). */
  sendFrame(frame: Buffer): void;
}

export interface Scorer {
  /**
   * Handles one REQUEST frame (a view into the read buffer, from its length field on; the host never
   * reuses read buffers, so keeping the view until the answer is written is safe).
   */
  handle(peer: Peer, frame: Buffer, id: number): void;
  /**
   * The peer sent CANCEL for request `id`: drop it if its work has not started (no answer is then sent;
   * the router has answered its client already). One already running finishes; its answer is discarded
   * by the router.
   */
  cancel(peer: Peer, id: number): void;
  /** Requests accepted and not yet answered (graceful shutdown waits for 0). */
  readonly inflight: number;
  /** Releases what the scorer runs (the Python workers); resolves when they are gone. */
  stop(): Promise<void>;
}

export type InitFailedCode = Extract<HostMessage, { type: 'init-failed' }>['code'];

/** Why an instance could not start its scoring script; becomes the 'init-failed' IPC message. */
export class InitFailure extends Error {
  constructor(
    readonly code: InitFailedCode,
    message: string,
  ) {
    super(message);
    this.name = 'InitFailure';
  }
}

/** Bodies and headers shared by both scorers (contract §5.5, §5.6). */
export const RUN_FAILED_MESSAGE = 'An unexpected error occurred in scoring script. Check the logs for more info.';
export const INTERNAL_ERROR_MESSAGE = 'An unexpected internal error occurred. Check the logs for more info.';

/** `{"message": "..."}` exactly as azmlinfsrv writes it (json.dumps: a space after the colon, ASCII only). */
export function messageBody(message: string): Buffer {
  return Buffer.from(pythonJsonDumps({ message }), 'latin1');
}
