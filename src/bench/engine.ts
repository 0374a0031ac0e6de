// What every load mode implements, and what a load thread hands it.
import type { Socket } from 'node:net';
import { type EchoCodec, echoCodec } from './codec.js';
import type { BenchOptions } from './options.js';
import type { Tally } from './tally.js';

export interface RampResult {
  /** Connections open and verified when the ramp ended. */
  open: number;
  /** Connections that could not be opened. */
  failed: number;
}

/** One thread's part of a run. */
export interface LoadShare {
  options: BenchOptions;
  /** Connection ids of this thread, distinct over all threads (they pick payloads). */
  connIds: number[];
  tally: Tally;
  codec: EchoCodec;
}

export interface LoadEngine {
  /** Opens the connections and starts the load. */
  start(): void;
  /** hold mode: resolves once every connection is open or has failed. */
  readonly ramped?: Promise<RampResult>;
  /** Stops counting and closes every socket; resolves when they are closed. */
  stop(): Promise<void>;
}

export function makeShare(options: BenchOptions, connIds: number[], tally: Tally): LoadShare {
  return { options, connIds, tally, codec: echoCodec(options.codec, options.msgid) };
}

/** ms a socket gets to close after our FIN before it is destroyed. */
const CLOSE_GRACE_MS = 1000;

/** Ends `socket` (FIN), discards what still arrives, resolves once it is closed. */
export function closeGently(socket: Socket): Promise<void> {
  if (socket.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.destroy(), CLOSE_GRACE_MS);
    socket.removeAllListeners('data').removeAllListeners('end').removeAllListeners('error');
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
    socket.resume();
    socket.end();
  });
}
