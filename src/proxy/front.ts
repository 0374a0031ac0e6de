import type { Tcpmain } from '../types.js';
import { type ClientPeer, type ForwardOptions, forwardThen } from './forward.js';
import type { BackendPool } from './pool.js';

/**
 * The proxy's front as an ordinary connection handler, so every model runs it like any user
 * handler. The client the backend hears about (hash key, PROXY header) is `env`'s: with
 * --proxy-protocol the daemon has read a balancer's header and env names the real client.
 */
export function createProxyHandler(pool: BackendPool, opts: ForwardOptions): Tcpmain {
  // Returns nothing: forwarding closes both sockets itself, so the daemon has nothing to end
  // afterwards, and a connection costs no promise.
  return (socket, env) => {
    // Where the client connected to is only needed for the PROXY header we send (--send-proxy):
    // env.localAddress costs a getsockname(2), so a connection without one does not ask.
    const peer: ClientPeer =
      opts.sendProxy === undefined
        ? { address: env.remoteAddress, port: env.remotePort }
        : {
            address: env.remoteAddress,
            port: env.remotePort,
            localAddress: env.localAddress,
            localPort: env.localPort,
          };
    forwardThen(socket, peer, pool, opts, env);
  };
}
