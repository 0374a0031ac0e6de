import { createRequire } from 'node:module';
import type { DestinationStream, Level, Logger } from 'pino';

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
}

export interface DaemonLogger {
  logger: Logger;
  /** Reopen the logfile (SIGUSR1, after logrotate moved it). No-op on stdout. */
  reopen(): void;
  /** Write out what is buffered; call before process.exit. */
  flush(): void;
}

interface Reopenable extends DestinationStream {
  reopen(): void;
  flushSync(): void;
}

export function createLogger(opts: LogOptions): DaemonLogger {
  const pino = requirePino();
  const dest = pino.destination({
    dest: opts.logfile ?? 1,
    sync: false,
    mkdir: opts.logfile !== undefined,
    minLength: 0,
  }) as Reopenable;
  const logger = pino(
    {
      level: opts.level as Level,
      base: { pid: process.pid, worker: opts.workerId },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    dest,
  );
  return {
    logger,
    reopen() {
      if (opts.logfile !== undefined) dest.reopen();
    },
    flush() {
      try {
        dest.flushSync();
      } catch {
        // sonic-boom throws when nothing is open yet (very early exit); nothing to flush then.
      }
    },
  };
}
