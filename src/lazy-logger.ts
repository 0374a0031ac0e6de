import { createLogger, type DaemonLogger, LOG_LEVELS, type LogOptions } from './logger.js';
import type { Logger } from './types.js';

/**
 * A DaemonLogger whose pino logger is built on first use. `isLevelEnabled` answers without
 * building it, so a process that logs nothing never loads pino (IF connection processes).
 */
export function createLazyLogger(opts: LogOptions): DaemonLogger {
  let real: DaemonLogger | undefined;
  const get = () => {
    real ??= createLogger(opts);
    return real;
  };
  const rank = (level: string) => LOG_LEVELS.indexOf(level as (typeof LOG_LEVELS)[number]);
  const logger = new Proxy({} as Logger, {
    get(_target, prop) {
      if (!real && prop === 'isLevelEnabled') return (level: string) => rank(level) >= rank(opts.level);
      if (!real && prop === 'level') return opts.level;
      const target = get().logger as unknown as Record<string | symbol, unknown>;
      const value = target[prop];
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  return {
    logger,
    reopen: () => real?.reopen(),
    flush: () => real?.flush(),
  };
}
