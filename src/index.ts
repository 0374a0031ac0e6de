export { type DaemonOptions, type TcpdaemonHandle, tcpdaemon } from './daemon.js';
export { HandlerLoadError } from './handler/load.js';
export { ListenError } from './listen.js';
export * from './message/index.js';
export { WorkerStartError } from './models/worker-pool.js';
export { ParamError, type TcpdaemonParams } from './params.js';
export type { Logger, ModelFlag, ModelName, TcpdaemonEnv, Tcpmain } from './types.js';
export { VERSION } from './version.js';
export { isWorkerProcess as isTcpdaemonWorker } from './worker/config.js';
