// The proxy's public surface (re-exported by the package's index).

export { type BackendState, DEFAULT_PASSIVE_HEALTH, type PassiveHealthOptions } from '../balance/health.js';
export { DEFAULT_STRATEGY, STRATEGY_NAMES, type StrategyName } from '../balance/strategies/index.js';
export {
  encodeProxyV1,
  encodeProxyV2,
  type ProxyHeader,
  ProxyHeaderParser,
  parseProxyHeader,
  type ReadProxyHeaderResult,
  readProxyHeader,
} from '../proxy-protocol/header.js';
export { type BackendAddress, type BackendSpec, parseBackendSpec } from './backend.js';
export type { ProxyConfig } from './config.js';
export { DEFAULT_ACTIVE_CHECK } from './health-check.js';
export { type ProxyHandle, startProxy } from './run.js';
export type { BackendStatsSnapshot, ProxyStatsSnapshot } from './stats.js';
