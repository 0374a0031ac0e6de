import pino, { type Logger } from 'pino';

let shared: Logger | undefined;

/** For clients given no logger: warnings and errors as JSON lines on stderr, shaped like the daemon's. */
export function defaultLogger(component: string): Logger {
  shared ??= pino(
    {
      level: 'warn',
      base: { pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ dest: 2, sync: true }),
  );
  return shared.child({ component });
}
