// Daemon side of the supervisor. Workers import './worker-channel.js' directly (it stays lean).
export { accountExit, type BackoffOptions, DEFAULT_BACKOFF, restartDelay } from './backoff.js';
export { ENV, type SupervisorMessage, type WorkerMessage } from './protocol.js';
export {
  type ConnectAddress,
  type Readiness,
  type ReadinessTarget,
  readyOnMessage,
  readyOnSpawn,
  readyOnTcpPort,
  readyWhenAccepting,
  type TcpReadinessOptions,
} from './readiness.js';
export {
  type ExitInfo,
  type ReloadResult,
  Supervisor,
  type SupervisorEvents,
  type SupervisorOptions,
  type SupervisorStatus,
  type WorkerHandle,
  type WorkerSpec,
  type WorkerStartContext,
  type WorkerState,
  type WorkerStatus,
} from './supervisor.js';
