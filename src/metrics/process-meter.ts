// The meter of one serving process (a worker, a TLF thread, or the daemon itself): connections
// served through its ConnectionRunner, why they closed, bytes, message-layer frames and its
// event-loop delay. Installed only with --metrics: without it, nothing here runs or is loaded.
import type { Socket } from 'node:net';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type CloseReason, closeCounts } from '../close-reasons.js';
import { frameCounts } from '../message/frame-counts.js';
import { Meter } from './meter.js';

/** What the connection path does, summed over this process's connections. */
export interface ConnectionTotals {
  served: number;
  closed: number;
  /** Bytes on the wire (under TLS: the encrypted stream), counted at close. */
  received: number;
  sent: number;
}

/** The reasons a served connection can be marked with; the rest of its closes are 'normal'. */
const SERVED_REASONS: readonly CloseReason[] = ['idle_timeout', 'output_cap', 'peer_reset', 'handler_error'];
/** The reasons of connections closed before any handler saw them. */
const REFUSED_REASONS: readonly CloseReason[] = ['max_connections', 'queue_full', 'wait_timeout'];

/**
 * Counts what `runner` serves: replaces its serve() with one that counts and listens for the
 * close. Only called with --metrics, so the connection path without it stays as it is.
 */
export function meterRunner(runner: { serve(socket: Socket, ...rest: never[]): void }): ConnectionTotals {
  const totals: ConnectionTotals = { served: 0, closed: 0, received: 0, sent: 0 };
  const serve = runner.serve.bind(runner) as (socket: Socket, ...rest: unknown[]) => void;
  function onClose(this: Socket): void {
    totals.closed++;
    totals.received += this.bytesRead;
    totals.sent += this.bytesWritten;
  }
  (runner as { serve: (socket: Socket, ...rest: unknown[]) => void }).serve = (socket, ...rest) => {
    totals.served++;
    socket.once('close', onClose);
    serve(socket, ...rest);
  };
  return totals;
}

export interface ProcessMeterOptions {
  /** This process's runner totals (from meterRunner); absent in a daemon that only hands sockets out. */
  totals?: ConnectionTotals;
  /** Label of the per-worker gauges ('1'..'N', the slot; '0' = the daemon serving itself); absent = none. */
  worker?: string;
}

export function processMeter(opts: ProcessMeterOptions): Meter {
  const meter = new Meter();
  const { totals } = opts;
  meter.collect((out) => {
    let refused = 0;
    for (const r of REFUSED_REASONS) {
      refused += closeCounts[r];
      out.counter('closed', closeCounts[r], { reason: r });
    }
    let marked = 0;
    for (const r of SERVED_REASONS) {
      marked += closeCounts[r];
      out.counter('closed', closeCounts[r], { reason: r });
    }
    const served = totals?.served ?? 0;
    const closed = totals?.closed ?? 0;
    out.counter('closed', Math.max(0, closed - marked), { reason: 'normal' });
    out.counter('accepted', served + refused);
    out.gauge('active', served - closed);
    out.counter('receivedBytes', totals?.received ?? 0);
    out.counter('sentBytes', totals?.sent ?? 0);
    out.counter('handlerErrors', closeCounts.handler_error);
    out.counter('framesIn', frameCounts.received);
    out.counter('framesOut', frameCounts.sent);
    out.counter('decodeErrors', frameCounts.decodeErrors);
  });
  if (opts.worker !== undefined) {
    const worker = opts.worker;
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    meter.collect((out) => {
      // ns → s; the histogram restarts for each heartbeat period.
      const p99 = delay.count > 0 ? delay.percentile(99) / 1e9 : 0;
      const max = delay.count > 0 ? delay.max / 1e9 : 0;
      delay.reset();
      out.gauge('workerLoopP99', p99, { worker });
      out.gauge('workerLoopMax', max, { worker });
    });
  }
  return meter;
}
