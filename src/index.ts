export type { AgentConfig } from './agent/params.js';
export { type AgentHandle, type AgentOptions, startAgent } from './agent/run.js';
export { type DaemonOptions, type TcpdaemonHandle, tcpdaemon } from './daemon.js';
export {
  ConnectError,
  HandlerLoadError,
  ListenError,
  ParamError,
  StatusSocketError,
  TcpdaemonError,
  TlsConfigError,
  WorkerStartError,
} from './errors.js';
export * from './fleet/index.js';
export type { AnnounceParams } from './fleet/settings.js';
export type {
  BusinessHandler,
  BusinessReply,
  DeliverResult,
  GatewayContext,
  GatewayMessage,
  GatewaySession,
} from './gateway/business.js';
export { type GatewayHandle, startGateway, startWorkers } from './gateway/daemon.js';
export type { GatewayParams } from './gateway/params.js';
export { decodeRelay, encodeRelay, GATEWAY_MSGID } from './gateway/protocol.js';
export * from './message/index.js';
export type { TcpdaemonParams } from './params.js';
export { PidFileError } from './pid-file.js';
export * from './proxy/index.js';
export type { TlsParams } from './tls/settings.js';
export type { Logger, ModelFlag, ModelName, TcpdaemonEnv, Tcpmain, TlsFacts } from './types.js';
export { VERSION } from './version.js';
export { isWorkerProcess as isTcpdaemonWorker } from './worker/config.js';
export { BroadcastFullError } from './worker-bus.js';
