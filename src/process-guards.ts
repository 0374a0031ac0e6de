import type { Logger } from './types.js';

/**
 * A throw inside a handler's own event callback (socket.on('data', ...)) cannot be tied to its
 * connection; it is logged and the process keeps serving its other connections.
 */
export function keepServingOnUncaught(logger: Logger): void {
  process.on('uncaughtException', (err) => {
    logger.error({ err }, 'uncaught exception in handler code; process keeps serving');
  });
  process.on('unhandledRejection', (reason) => {
    logger.error({ err: reason }, 'unhandled promise rejection in handler code; process keeps serving');
  });
}

/** A throw inside handler code is logged and ends the process (it serves one connection: IF). */
export function exitOnUncaught(logger: Logger, flush: () => void): void {
  const end = (err: unknown, what: string) => {
    logger.error({ err }, `${what} in handler code; the connection process exits`);
    flush();
    process.exit(1);
  };
  process.on('uncaughtException', (err) => end(err, 'uncaught exception'));
  process.on('unhandledRejection', (reason) => end(reason, 'unhandled promise rejection'));
}
