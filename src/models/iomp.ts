// IOMP -c 1: the daemon process serves every connection on its own event loop.
import { ConnectionRunner } from '../connection.js';
import { ConnectionTracker } from '../connection-tracker.js';
import { ThrottledCount } from '../throttled-count.js';
import type { Model, ModelHost, RunningModel } from './model.js';

export const iomp: Model = {
  unavailable: (params) =>
    params.workers > 1
      ? 'model IOMP with -c > 1 (several event-loop processes) is not available yet'
      : undefined,
  pauseOnConnect: () => false,
  start: async (host) => startInProcess(host),
};

function startInProcess(host: ModelHost): RunningModel {
  const { params, server, logger } = host;
  const tracker = new ConnectionTracker();
  const runner = new ConnectionRunner({
    model: 'IOMP',
    workerId: 0,
    tcpmain: host.tcpmain,
    logger,
    signal: host.stopSignal,
    tracker,
    params: params.params,
    idleTimeout: params.timeout,
    tcpNodelay: params.tcpNodelay,
    tcpLinger: params.tcpLinger,
    unix: params.listenAddress.kind === 'unix',
  });
  server.on('connection', (socket) => runner.serve(socket));
  if (params.maxConnections > 0) {
    server.maxConnections = params.maxConnections;
    const drops = new ThrottledCount(logger, 'connection refused: --max-connections reached');
    server.on('drop', (data) => drops.add({ max: params.maxConnections, remote: data?.remoteAddress }));
  }
  return {
    get connections() {
      return tracker.size;
    },
    async close(deadlineMs) {
      const cut = await tracker.drain(deadlineMs);
      if (cut > 0) logger.warn({ count: cut }, 'shutdown timeout: open connections destroyed');
    },
  };
}
