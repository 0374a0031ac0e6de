// IOMP -c 1: the daemon process serves every connection on its own event loop.
// IOMP -c N: N worker processes accept from the socket the daemon bound (workers.ts).
import type { Socket } from 'node:net';
import { admitHere } from '../../address-gate.js';
import { refused } from '../../close-reasons.js';
import { ConnectionRunner } from '../../connection.js';
import { ConnectionTracker } from '../../connection-tracker.js';
import { loadHandler } from '../../handler/load.js';
import { canBindShared } from '../../listen.js';
import { ThrottledCount } from '../../throttled-count.js';
import type { TlsTerminator } from '../../tls/terminator.js';
import type { Model, ModelHost, RunningModel } from '../model.js';
import { workerLaunchProblem } from '../worker-pool.js';
import { startIompWorkers } from './workers.js';

export const iomp: Model = {
  unavailable: (params) => {
    if (params.workers === 1) return undefined;
    if (!canBindShared()) return `model IOMP with -c > 1 needs a Node.js that can share a listening socket`;
    return workerLaunchProblem(params.handler);
  },
  pauseOnConnect: () => false,
  servesInWorkers: (params) => params.workers > 1,
  listenMode: (params) => (params.workers > 1 ? 'shared' : 'accept'),
  start: async (host) => (host.params.workers > 1 ? startIompWorkers(host) : startInProcess(host)),
};

async function startInProcess(host: ModelHost): Promise<RunningModel> {
  const { params, logger } = host;
  const server = host.server;
  if (!server) throw new Error('IOMP -c 1 needs the listening server');
  const tracker = new ConnectionTracker();
  // The daemon is the worker here: it terminates TLS, and a reload swaps its contexts in place.
  let tls: TlsTerminator | undefined;
  if (host.tls) {
    const { TlsTerminator } = await import('../../tls/terminator.js');
    const terminator = new TlsTerminator(host.tls.material, host.tls.settings, logger);
    host.tls.onUpdate((m) => terminator.update(m));
    tls = terminator;
  }
  const runner = new ConnectionRunner({
    model: 'IOMP',
    workerId: 0,
    tcpmain: host.tcpmain,
    logger,
    signal: host.stopSignal,
    tracker,
    params: params.params,
    idleTimeout: params.timeout,
    proxyProtocol: params.proxyProtocol ? { timeoutMs: params.proxyHeaderTimeout * 1000 } : undefined,
    tcpNodelay: params.tcpNodelay,
    tcpLinger: params.tcpLinger,
    unix: params.listenAddress.kind === 'unix',
    maxOutputBuffer: params.maxOutputBuffer,
    tls,
  });
  host.metrics?.meterRunner(runner);
  const gate = host.addressGate;
  const serve = (socket: Socket) => runner.serve(socket);
  server.on('connection', gate ? (socket: Socket) => admitHere(gate, socket, serve) : serve);
  // 'drop' only fires under a limit; a reload may set one later.
  const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');
  server.on('drop', (data) => {
    refused('max_connections');
    drops.add({ max: params.maxConnections, remote: data?.remoteAddress });
  });
  const limit = () => {
    if (params.maxConnections > 0) server.maxConnections = params.maxConnections;
    else if (server.maxConnections !== undefined) server.maxConnections = Number.POSITIVE_INFINITY;
  };
  limit();
  return {
    get connections() {
      return tracker.size;
    },
    // Each reload imports a new copy of the module; ESM offers no way to unload the old one.
    async reload() {
      if (host.handlerPath === undefined) {
        logger.warn('SIGHUP: the handler is a function, not a module; nothing to reload');
        return;
      }
      try {
        runner.opts.tcpmain = await loadHandler(host.handlerPath, { fresh: true, logger });
        logger.info({ handler: host.handlerPath }, 'handler reloaded; new connections use it');
      } catch (err) {
        logger.error(
          { err: (err as Error).message },
          'reload failed; still serving with the previous handler',
        );
      }
    },
    reconfigure() {
      limit();
      Object.assign(runner.opts, {
        params: params.params,
        idleTimeout: params.timeout,
        proxyProtocol: params.proxyProtocol ? { timeoutMs: params.proxyHeaderTimeout * 1000 } : undefined,
        tcpNodelay: params.tcpNodelay,
        tcpLinger: params.tcpLinger,
        maxOutputBuffer: params.maxOutputBuffer,
      });
      runner.levelChanged();
    },
    async close(deadlineMs) {
      const cut = await tracker.drain(deadlineMs);
      if (cut > 0) logger.warn({ count: cut }, 'shutdown timeout: open connections destroyed');
    },
  };
}
