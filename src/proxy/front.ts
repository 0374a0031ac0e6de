import type { Tcpmain } from '../types.js';
import { type ForwardOptions, forward } from './forward.js';
import type { BackendPool } from './pool.js';

/**
 * The proxy's front as an ordinary connection handler: every model runs it like any user
 * handler, and the client the backend hears about (hash key, PROXY header) is `env`'s, so a
 * PROXY header read by the daemon itself (`--proxy-protocol`) carries through.
 */
export function createProxyHandler(pool: BackendPool, opts: ForwardOptions): Tcpmain {
  return (socket, env) =>
    forward(socket, { address: env.remoteAddress, port: env.remotePort }, pool, opts, env.logger);
}
