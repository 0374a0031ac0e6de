import type { EventEmitter } from 'node:events';
import { createRequire } from 'node:module';
import type { DestinationStream, Level, Logger } from 'pino';
import { type LogFormat, prettyStream } from './log-format.js';

// pino is loaded on the first createLogger call, not at import: a process that may never log
// (an IF connection process, see lazy-logger.ts) starts ~12 ms sooner without it.
const requirePino = () => createRequire(import.meta.url)('pino') as typeof import('pino');

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error', 'fatal'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface LogOptions {
  /** Append JSON lines here; stdout when absent. */
  logfile?: string | undefined;
  level: LogLevel;
  /** 0 = the daemon process. */
  workerId: number;
  /** --log-format: JSON lines (default) or one readable line per record (log-format.ts). */
  format?: LogFormat | undefined;
}

export interface DaemonLogger {
  logger: Logger;
  /** Reopen the logfile (SIGUSR1, after logrotate moved it). No-op on stdout. */
  reopen(): void;
  /** Write out what is buffered; call before process.exit. */
  flush(): void;
}

interface Reopenable extends DestinationStream, EventEmitter {
  reopen(): void;
  flushSync(): void;
}

export function createLogger(opts: LogOptions): DaemonLogger {
  const pino = requirePino();
  // Synchronous writes: nothing is lost at exit, and nothing needs flushing then. (sonic-boom's
  // flushSync retries a failed write forever, so an exit flush after EPIPE or ENOSPC would spin.)
  const dest = pino.destination({
    dest: opts.logfile ?? 1,
    sync: true,
    mkdir: opts.logfile !== undefined,
  }) as Reopenable;
  let broken = false;
  // pino silences EPIPE itself; any other failure (disk full, ...) is said once on stderr, not thrown.
  dest.on('error', (err: NodeJS.ErrnoException) => {
    if (broken) return;
    broken = true;
    process.stderr.on('error', () => undefined);
    process.stderr.write(
      `tcpdaemon: log destination failed (${err.code ?? err.message}); log lines are lost\n`,
    );
  });
  // Colour only for a person: a terminal on stdout, and NO_COLOR not set.
  const color = opts.logfile === undefined && process.stdout.isTTY === true && !process.env.NO_COLOR;
  const logger = pino(
    {
      level: opts.level as Level,
      base: { pid: process.pid, worker: opts.workerId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    opts.format === 'pretty' ? (prettyStream(dest, color) as DestinationStream) : dest,
  );
  return {
    logger,
    reopen() {
      if (opts.logfile !== undefined) dest.reopen();
    },
    flush() {
      if (broken) return;
      try {
        dest.flushSync();
      } catch {
        // sonic-boom throws when nothing is open yet (very early exit); nothing to flush then.
      }
    },
  };
}
