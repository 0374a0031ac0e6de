// Every metric tcpdaemon exposes on /metrics, declared once: name, type, help, labels and (for
// histograms) buckets. Workers fill values by these names (plain numbers over the heartbeat); the
// daemon renders them with prom-client. Label values come from bounded sets: reasons, causes,
// states, worker slots (1..-c), backend and upstream addresses from the configuration or the route
// table; never a peer address.

export type MetricType = 'counter' | 'gauge' | 'histogram';

export interface MetricDef {
  name: string;
  type: MetricType;
  help: string;
  labels: readonly string[];
  /** Histograms: upper bounds in the metric's unit, ascending (+Inf is implied). */
  buckets?: readonly number[];
}

/** Seconds: from a loopback connect (~0.1 ms) to a distant one. */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const def = (
  name: string,
  type: MetricType,
  help: string,
  labels: readonly string[] = [],
  buckets?: readonly number[],
): MetricDef => ({ name, type, help, labels, ...(buckets ? { buckets } : {}) });

export const METRICS = {
  accepted: def('tcpdaemon_connections_accepted_total', 'counter', 'Client connections accepted'),
  active: def('tcpdaemon_connections_active', 'gauge', 'Client connections open now'),
  closed: def('tcpdaemon_connections_closed_total', 'counter', 'Client connections closed, by reason', [
    'reason',
  ]),
  receivedBytes: def(
    'tcpdaemon_connection_received_bytes_total',
    'counter',
    'Bytes received from clients (counted when each connection closes)',
  ),
  sentBytes: def(
    'tcpdaemon_connection_sent_bytes_total',
    'counter',
    'Bytes sent to clients (counted when each connection closes)',
  ),
  handlerErrors: def('tcpdaemon_handler_errors_total', 'counter', 'Handler throws and rejections'),
  waiting: def('tcpdaemon_waiting_connections', 'gauge', 'LF, IF: connections waiting for a free worker'),
  workerStarts: def('tcpdaemon_worker_starts_total', 'counter', 'Worker processes or threads started'),
  workerExits: def('tcpdaemon_worker_exits_total', 'counter', 'Worker exits, by cause', ['cause']),
  workersReady: def('tcpdaemon_workers_ready', 'gauge', 'Workers in service now'),
  crashLooping: def('tcpdaemon_workers_crash_looping', 'gauge', 'Worker slots whose last starts all failed'),
  reloads: def('tcpdaemon_reloads_total', 'counter', 'Reloads done (SIGHUP)'),
  workerRss: def(
    'tcpdaemon_worker_resident_memory_bytes',
    'gauge',
    "Resident memory of each worker slot's processes (TLF threads: the daemon process)",
    ['worker'],
  ),
  workerLoopP99: def(
    'tcpdaemon_worker_event_loop_delay_p99_seconds',
    'gauge',
    'Event-loop delay, 99th percentile over the last heartbeat period',
    ['worker'],
  ),
  workerLoopMax: def(
    'tcpdaemon_worker_event_loop_delay_max_seconds',
    'gauge',
    'Event-loop delay, maximum over the last heartbeat period',
    ['worker'],
  ),
  backendState: def(
    'tcpdaemon_proxy_backend_state',
    'gauge',
    'Serving processes that see the backend in this state',
    ['backend', 'state'],
  ),
  backendActive: def(
    'tcpdaemon_proxy_backend_active_connections',
    'gauge',
    'Connections open to the backend',
    ['backend'],
  ),
  backendConnections: def(
    'tcpdaemon_proxy_backend_connections_total',
    'counter',
    'Connections forwarded to the backend',
    ['backend'],
  ),
  backendErrors: def(
    'tcpdaemon_proxy_backend_connect_errors_total',
    'counter',
    'Failed connects to the backend',
    ['backend'],
  ),
  backendConnectSeconds: def(
    'tcpdaemon_proxy_backend_connect_duration_seconds',
    'histogram',
    'Time to connect to the backend (successful connects)',
    ['backend'],
    LATENCY_BUCKETS,
  ),
  proxyRejected: def(
    'tcpdaemon_proxy_clients_rejected_total',
    'counter',
    'Clients closed: no backend available',
  ),
  gatewayRequests: def('tcpdaemon_gateway_requests_total', 'counter', 'Gateway requests, by outcome', [
    'outcome',
  ]),
  gatewayInFlight: def(
    'tcpdaemon_gateway_requests_in_flight',
    'gauge',
    'Requests sent to a worker, not answered',
  ),
  gatewayWaiting: def(
    'tcpdaemon_gateway_requests_waiting',
    'gauge',
    'Requests waiting for a worker with room',
  ),
  gatewaySessions: def(
    'tcpdaemon_gateway_sessions',
    'gauge',
    'Client connections held by the gateway processes',
  ),
  gatewayStored: def('tcpdaemon_gateway_stored_messages', 'gauge', 'Messages stored for offline names'),
  gatewayRoundTrip: def(
    'tcpdaemon_gateway_queue_round_trip_seconds',
    'histogram',
    'From a request arriving to its reply (waiting for a worker included)',
    [],
    LATENCY_BUCKETS,
  ),
  agentLocals: def('tcpdaemon_agent_local_connections', 'gauge', 'Local connections to the agent'),
  agentInFlight: def(
    'tcpdaemon_agent_requests_in_flight',
    'gauge',
    'Requests sent upstream or waiting for an upstream connection, not answered',
  ),
  agentRefused: def(
    'tcpdaemon_agent_requests_refused_total',
    'counter',
    'Requests the agent answered with an error frame itself, by reason (busy: a bound; unavailable: no upstream)',
    ['reason'],
  ),
  agentDropped: def(
    'tcpdaemon_agent_frames_dropped_total',
    'counter',
    'Frames dropped: a one-way frame with no upstream connection, or a frame of the wrong kind',
  ),
  agentLateDrops: def(
    'tcpdaemon_agent_late_replies_dropped_total',
    'counter',
    'Upstream replies that came after their request had timed out, dropped',
  ),
  agentUpstreamState: def(
    'tcpdaemon_agent_upstream_state',
    'gauge',
    'Serving processes that see the upstream host in this state',
    ['upstream', 'state'],
  ),
  agentUpstreamRequests: def(
    'tcpdaemon_agent_upstream_requests_total',
    'counter',
    'Requests sent to the upstream host',
    ['upstream'],
  ),
  agentUpstreamReplies: def(
    'tcpdaemon_agent_upstream_replies_total',
    'counter',
    'Replies from the upstream host routed back (its error replies included)',
    ['upstream'],
  ),
  agentUpstreamErrors: def(
    'tcpdaemon_agent_upstream_errors_total',
    'counter',
    'Requests answered with an error frame: their upstream connection was lost with them in flight',
    ['upstream'],
  ),
  agentUpstreamTimeouts: def(
    'tcpdaemon_agent_upstream_timeouts_total',
    'counter',
    'Requests answered with a timeout error frame',
    ['upstream'],
  ),
  agentUpstreamConnectErrors: def(
    'tcpdaemon_agent_upstream_connect_errors_total',
    'counter',
    'Failed connects to the upstream host',
    ['upstream'],
  ),
  framesIn: def('tcpdaemon_message_frames_received_total', 'counter', 'Message-layer frames decoded'),
  framesOut: def('tcpdaemon_message_frames_sent_total', 'counter', 'Message-layer frames encoded and sent'),
  decodeErrors: def(
    'tcpdaemon_message_decode_errors_total',
    'counter',
    'Message-layer frames refused (bad or oversized), each closing its connection',
  ),
} as const satisfies Record<string, MetricDef>;

export type MetricKey = keyof typeof METRICS;

export const DEFS_BY_NAME: ReadonlyMap<string, MetricDef> = new Map(
  Object.values(METRICS).map((d) => [d.name, d]),
);
