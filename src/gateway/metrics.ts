// The gateway's values on /metrics (--metrics): in each gateway process, its client connections
// (the connection path's meter), requests by outcome, in flight, waiting, sessions and the queue
// round trip; in the daemon, the stored messages and the readiness of both kinds of process.
import type { Socket } from 'node:net';
import type { Meter } from '../metrics/meter.js';
import { installWorkerMetrics } from '../metrics/worker-metrics.js';
import type { GatewayServer } from './gateway-server.js';
import { GATEWAY_LABEL } from './metric-labels.js';

export function installGatewayMetrics(
  channel: { workerId: number; setMetrics(metrics: () => unknown): void },
  runner: { serve(socket: Socket, ...rest: never[]): void },
  server: GatewayServer,
): Meter {
  const meter = installWorkerMetrics(channel, runner, GATEWAY_LABEL);
  const { requests } = server;
  requests.onRoundTrip = (s) => meter.observe('gatewayRoundTrip', s);
  meter.collect((out) => {
    const stats = server.stats;
    out.counter('gatewayRequests', requests.replied, { outcome: 'ok' });
    out.counter('gatewayRequests', requests.failed, { outcome: 'error' });
    out.counter('gatewayRequests', stats.timeouts, { outcome: 'timeout' });
    out.counter('gatewayRequests', stats.lateReplies, { outcome: 'late_reply_dropped' });
    out.gauge('gatewayInFlight', stats.pending);
    out.gauge('gatewayWaiting', stats.waiting);
    out.gauge('gatewaySessions', stats.sessions);
  });
  return meter;
}
