// The result of a run, as one JSON object (--json) or as text for people.
import { availableParallelism } from 'node:os';
import type { BenchOptions } from './options.js';
import type { RunOutcome } from './pool.js';
import { ERROR_KINDS, type ErrorKind } from './tally.js';

/** Above this event-loop utilization a load thread may be what limits the figure. */
export const BUSY_WARNING = 0.9;

export interface BenchResult {
  mode: BenchOptions['mode'];
  target: string;
  codec: string;
  connections: number;
  depth: number;
  /** bytes per message body */
  size: number;
  threads: number;
  /** Seconds measured: the load (echo, connect) or the hold (hold). */
  seconds: number;
  /** echo: messages echoed and verified; request: right replies; connect: connect cycles; hold: connections opened. */
  completed: number;
  /** `completed` per second; hold: connections opened per second of ramp. */
  perSecond: number;
  /** echo: verified body bytes per second in EACH direction; request: bytes of right replies per second; in MB (10^6 bytes). */
  mbPerSecond: number;
  /**
   * echo, request: write to last byte of its reply; connect, hold: connect call to last echoed
   * byte; connect with --rate: the time the start was due to its last echoed byte.
   */
  latencyMs: { p50: number; p90: number; p99: number; p999: number; max: number; mean: number };
  errors: Record<ErrorKind, number>;
  errorTotal: number;
  /** errno codes behind the connect and reset errors. */
  errorCodes: Record<string, number>;
  hold?: { open: number; failed: number; dropped: number; rampSeconds: number; holdSeconds: number };
  /**
   * connect with --rate: the offered rate (starts per second); starts that came due; of them,
   * the late ones (due while `connections` were in flight) and, of those, the ones still waiting
   * when the run ended. Late starts make the exit status 2: the rate was not offered.
   */
  paced?: { rate: number; due: number; late: number; unstarted: number };
  tool: {
    /** Event-loop utilization of each load thread, 0..1. */
    threadBusy: number[];
    /** CPU time of the tool / wall time. */
    cpuCores: number;
    /** Cores of this machine. */
    cores: number;
    /** Set when a load thread was busy above BUSY_WARNING. */
    warning?: string;
  };
}

export function buildResult(options: BenchOptions, run: RunOutcome): BenchResult {
  const { tally } = run;
  const h = tally.latency;
  const ms = (us: number) => Math.round(us) / 1000;
  const rateSeconds = run.ramp ? run.ramp.seconds : run.elapsed;
  const busiest = Math.max(...run.threadBusy);
  return {
    mode: options.mode,
    target: 'path' in options.target ? options.target.path : `${options.target.host}:${options.target.port}`,
    codec: options.codec,
    connections: options.connections,
    depth: options.depth,
    size: options.size,
    threads: run.threadBusy.length,
    seconds: round(run.elapsed, 3),
    completed: tally.done,
    perSecond: rateSeconds > 0 ? round(tally.done / rateSeconds, 1) : 0,
    mbPerSecond:
      options.mode === 'echo' || options.mode === 'request' ? round(tally.bytes / run.elapsed / 1e6, 3) : 0,
    latencyMs: {
      p50: ms(h.quantile(0.5)),
      p90: ms(h.quantile(0.9)),
      p99: ms(h.quantile(0.99)),
      p999: ms(h.quantile(0.999)),
      max: ms(h.max),
      mean: ms(h.mean),
    },
    errors: { ...tally.errors },
    errorTotal: tally.errorTotal,
    errorCodes: { ...tally.codes },
    ...(run.ramp
      ? {
          hold: {
            open: run.ramp.open,
            failed: run.ramp.failed,
            dropped: tally.dropped,
            rampSeconds: round(run.ramp.seconds, 3),
            holdSeconds: round(run.elapsed, 3),
          },
        }
      : {}),
    ...(options.rate !== undefined
      ? { paced: { rate: options.rate, due: tally.due, late: tally.late, unstarted: tally.unstarted } }
      : {}),
    tool: {
      threadBusy: run.threadBusy.map((b) => round(b, 3)),
      cpuCores: round(run.cpuCores, 3),
      cores: availableParallelism(),
      ...(busiest > BUSY_WARNING
        ? {
            warning: `a load thread was busy ${pct(busiest)} of the time: the tool may limit this figure (try more --threads, or a machine with spare cores)`,
          }
        : {}),
    },
  };
}

export function formatText(r: BenchResult): string {
  const lines: string[] = [];
  const what = r.paced
    ? `${r.paced.rate} starts/s, at most ${r.connections} in flight`
    : `${r.connections} ${r.mode === 'connect' ? 'loops' : 'connections'}`;
  const depth = r.mode === 'echo' || r.mode === 'request' ? ` x depth ${r.depth}` : '';
  const sizes = r.mode === 'request' ? '' : `, ${r.size}-byte messages`;
  lines.push(`${r.mode} ${r.target}: ${what}${depth}${sizes}, ${r.threads} threads`);
  if (r.mode === 'request') {
    lines.push(`  replies     ${r.completed} right in ${r.seconds} s = ${r.perSecond} replies/s`);
    lines.push(`  throughput  ${r.mbPerSecond} MB/s of right replies (1 MB = 10^6 B)`);
  } else if (r.mode === 'echo') {
    lines.push(`  messages    ${r.completed} in ${r.seconds} s = ${r.perSecond} msg/s`);
    lines.push(`  throughput  ${r.mbPerSecond} MB/s each way (verified body bytes, 1 MB = 10^6 B)`);
  } else if (r.mode === 'connect') {
    lines.push(`  connections ${r.completed} in ${r.seconds} s = ${r.perSecond} conn/s`);
    if (r.paced) {
      const p = r.paced;
      lines.push(
        `  paced       ${p.due} starts due at ${p.rate}/s, ${p.late} late (${p.unstarted} never started)${p.late > 0 ? ': the rate was not offered' : ''}; latency from the due time`,
      );
    }
  } else if (r.hold) {
    const h = r.hold;
    lines.push(
      `  opened      ${h.open} of ${r.connections} in ${h.rampSeconds} s (${r.perSecond} conn/s), ${h.failed} failed`,
    );
    lines.push(`  held        ${h.holdSeconds} s, ${h.dropped} dropped while idle`);
  }
  const l = r.latencyMs;
  const label = r.mode === 'echo' || r.mode === 'request' ? 'latency ms ' : 'connect+echo ms';
  lines.push(`  ${label} p50 ${l.p50}  p90 ${l.p90}  p99 ${l.p99}  p99.9 ${l.p999}  max ${l.max}`);
  const errs = ERROR_KINDS.filter((k) => r.errors[k] > 0).map((k) => `${k} ${r.errors[k]}`);
  const codes = Object.entries(r.errorCodes).map(([c, n]) => `${c} ${n}`);
  lines.push(
    `  errors      ${errs.length ? errs.join(', ') : 'none'}${codes.length ? ` (${codes.join(', ')})` : ''}`,
  );
  const busy = r.tool.threadBusy.map(pct).join(' ');
  lines.push(
    `  tool        threads busy ${busy} (event loop), CPU ${r.tool.cpuCores} of ${r.tool.cores} cores`,
  );
  if (r.tool.warning) lines.push(`  warning     ${r.tool.warning}`);
  return lines.join('\n');
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function pct(x: number): string {
  return `${Math.round(x * 100)}%`;
}
