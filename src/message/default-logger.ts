import pino, { type Logger } from 'pino';

let shared: Logger | undefined;

/** For clients given no logger: warnings and errors as JSON lines on stderr. */
export function defaultLogger(component: string): Logger {
  shared ??= pino({ level: 'warn' }, pino.destination({ dest: 2, sync: true }));
  return shared.child({ component });
}
