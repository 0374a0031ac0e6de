import type { Logger, Tcpmain } from '../types.js';
import { type ForwardOptions, forward } from './forward.js';
import type { BackendPool } from './pool.js';
import { readProxyHeader } from './proxy-protocol.js';

export interface FrontOptions extends ForwardOptions {
  /** Read a PROXY header (v1 or v2) from every client first: a balancer sits in front. */
  proxyProtocol: boolean;
  /** The header must arrive within this, ms. */
  headerTimeoutMs: number;
}

/**
 * The proxy's front as an ordinary connection handler, so every model runs it like any user
 * handler. The client the backend hears about (hash key, PROXY header) is `env`'s, or the one
 * a PROXY header from a balancer in front names.
 */
export function createProxyHandler(pool: BackendPool, opts: FrontOptions): Tcpmain {
  if (!opts.proxyProtocol) {
    return (socket, env) =>
      forward(socket, { address: env.remoteAddress, port: env.remotePort }, pool, opts, env);
  }
  return async (socket, env) => {
    const r = await readProxyHeader(socket, { timeoutMs: opts.headerTimeoutMs });
    if (!r.ok) {
      env.logger.warn({ reason: r.reason }, 'PROXY header refused; connection closed');
      return;
    }
    const client = `${r.remoteAddress}:${r.remotePort}`;
    let logger: Logger | undefined;
    const log = {
      get logger() {
        logger ??= env.logger.child({ client });
        return logger;
      },
    };
    return forward(socket, { address: r.remoteAddress, port: r.remotePort }, pool, opts, log);
  };
}
