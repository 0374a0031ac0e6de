// A gateway process: started and supervised by the gateway daemon. Gets accepted client sockets
// from the daemon, serves them with GatewayServer, reaches workers (and other gateways) through
// the queue. Retiring: finish what is in flight, close clients, exit.
import { randomBytes } from 'node:crypto';
import { setMaxListeners } from 'node:events';
import type { Socket } from 'node:net';
import { ConnectionRunner } from '../connection.js';
import { ConnectionTracker } from '../connection-tracker.js';
import { createLogger } from '../logger.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { onParentLost } from '../supervisor/parent-lost.js';
import { joinSupervisor } from '../supervisor/worker-channel.js';
import { readTlsSnapshot } from '../tls/snapshot.js';
import { outstandingPerWorker } from './balancer.js';
import { readChildParams } from './child-env.js';
import { GatewayServer } from './gateway-server.js';
import { Rpc } from './ipc-rpc.js';
import { openGatewayQueue } from './queues/index.js';
import type { GatewayQueue } from './queues/queue.js';

/** How often closed connections are reported to the daemon in one message, ms. */
const CLOSED_FLUSH_MS = 20;
/** How often a lost daemon is looked for besides 'disconnect' (supervisor/parent-lost.ts), ms. */
const PARENT_POLL_MS = 1000;

const params = readChildParams();
const stopper = new AbortController();
// Every client connection listens on it (the message layer closes them on stop).
setMaxListeners(0, stopper.signal);
let server: GatewayServer | undefined;
const tracker = new ConnectionTracker();
const channel = joinSupervisor({
  counts: () => ({ served: 0, active: tracker.size }),
  onRetire: (graceMs) => void retire(graceMs),
  onReopenLog: () => log.reopen(),
});
const log = createLogger({
  logfile: params.logfile,
  level: params.loglevel,
  format: params.logFormat,
  workerId: channel.workerId,
});
const logger = log.logger.child({ role: 'gateway' });
keepServingOnUncaught(logger);

// ipc: session ids carry the spawn id, which the daemon maps back to this process.
const instance = params.queue.kind === 'ipc' ? `g${channel.spawnId}` : randomBytes(5).toString('hex');
const rpc = new Rpc({
  post: (m, handle) => {
    if (!process.connected) return false;
    process.send!(m, handle as never, {}, () => undefined);
    return true;
  },
});
process.on('message', (m: unknown, handle: unknown) => rpc.receive(m, handle));
onParentLost(() => rpc.closed('the daemon is gone'), PARENT_POLL_MS);

server = new GatewayServer({
  instance,
  codec: params.codec,
  maxBody: params.maxBody,
  requestTimeoutMs: params.requestTimeoutMs,
  retryOnCrash: params.retryOnCrash,
  maxInflightPerConn: params.maxInflightPerConn,
  refuseOverInflight: params.refuseOverInflight,
  maxSessionBytes: params.maxSessionBytes,
  maxWaiting: params.maxWaitingRequests,
  logger,
});
let queue: GatewayQueue;
try {
  queue = await openGatewayQueue(
    params.queue,
    {
      instance,
      logger,
      maxBody: params.maxBody,
      perWorkerBound: outstandingPerWorker(params.workerConcurrency, params.gateways),
      storeMax: params.storeMax,
      storeTtlMs: params.storeTtlMs,
    },
    server.events,
    { rpc },
  );
} catch (err) {
  logger.fatal({ err: (err as Error).message }, 'gateway start-up failed');
  log.flush();
  process.exit(1);
}
server.attach(queue);

let closedBatch: string[] = [];
server.onSessionClosed = (remote) => {
  if (closedBatch.length === 0) setTimeout(flushClosed, CLOSED_FLUSH_MS).unref();
  closedBatch.push(remote);
};
function flushClosed(): void {
  if (closedBatch.length === 0) return;
  rpc.post({ gw: 'closed', remotes: closedBatch });
  closedBatch = [];
}

const tlsSnapshot = params.tlsWorker ? readTlsSnapshot(params.tlsWorker.snapshot) : undefined;
const tls =
  params.tlsWorker && tlsSnapshot
    ? new (await import('../tls/terminator.js')).TlsTerminator(
        tlsSnapshot.material,
        params.tlsWorker.settings,
        logger,
        tlsSnapshot.ticketKeys,
      )
    : undefined;
rpc.on('tls-reload', () => {
  if (params.tlsWorker) tls?.update(readTlsSnapshot(params.tlsWorker.snapshot).material);
});

const runner = new ConnectionRunner({
  model: 'IOMP',
  workerId: channel.workerId,
  tcpmain: server.handler,
  logger,
  signal: stopper.signal,
  tracker,
  params: {},
  idleTimeout: params.timeout,
  tcpNodelay: false,
  tcpLinger: undefined,
  unix: params.listenAddress?.kind === 'unix',
  tls,
});
if (params.metrics !== undefined)
  (await import('./metrics.js')).installGatewayMetrics(channel, runner, server);
rpc.on('conn', (m, handle) => {
  const socket = handle as Socket | undefined;
  if (!socket) return;
  if (stopper.signal.aborted) {
    socket.destroy();
    return;
  }
  runner.serve(socket, { address: String(m.address), port: Number(m.port) });
});
rpc.on('stats', () => server?.stats);
// A config reload in the daemon: the live values this process applies to what comes next.
rpc.on('reconfigure', (m) => {
  const next = m.params as Pick<
    typeof params,
    'loglevel' | 'timeout' | 'maxWaitingRequests' | 'maxSessionBytes'
  >;
  log.logger.level = next.loglevel;
  runner.levelChanged();
  runner.opts.idleTimeout = next.timeout;
  server?.setLimits({ maxWaiting: next.maxWaitingRequests, maxSessionBytes: next.maxSessionBytes });
});

channel.ready();
logger.debug({ instance }, 'gateway ready');

async function retire(graceMs: number): Promise<void> {
  stopper.abort();
  const cut = await tracker.drain(graceMs);
  if (cut > 0) logger.warn({ count: cut }, 'shutdown timeout: open client connections destroyed');
  flushClosed();
  logger.info({ ...server!.stats }, 'gateway stopped');
  await queue.close().catch(() => undefined);
  log.flush();
  process.exit(0);
}
