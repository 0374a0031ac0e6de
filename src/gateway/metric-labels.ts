// The worker label of the gateway's two kinds of process on /metrics (both have slots 1..N).
export const GATEWAY_LABEL = 'gateway-';
export const WORKER_LABEL = 'worker-';
