// The script the daemon forks as a worker when the handler is a module: read the config the
// daemon put in the environment, load the handler, serve. Imports little, to start fast; the
// build also bundles it into one CommonJS file (scripts/bundle-worker.mjs), which IF forks per
// connection, so it has no top-level await.
import { loadHandler } from '../handler/load.js';
import { takeWorkerConfig } from './config.js';
import { startWorker } from './run.js';

const config = takeWorkerConfig();
if (!config || config.handlerPath === null) {
  process.stderr.write('tcpdaemon worker: no worker config in the environment (the daemon starts workers)\n');
  process.exit(1);
}
const handlerPath = config.handlerPath;
startWorker(config, (logger) => loadHandler(handlerPath, { logger })).catch((err: unknown) => {
  process.stderr.write(`tcpdaemon worker: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
