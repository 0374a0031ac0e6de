// The script the daemon forks as a worker when the handler is a module: read the config the
// daemon put in the environment, load the handler, serve. Imports little, to start fast.
import { loadHandler } from '../handler/load.js';
import { takeWorkerConfig } from './config.js';
import { startWorker } from './run.js';

const config = takeWorkerConfig();
if (!config || config.handlerPath === null) {
  process.stderr.write('tcpdaemon worker: no worker config in the environment (the daemon starts workers)\n');
  process.exit(1);
}
const handlerPath = config.handlerPath;
await startWorker(config, () => loadHandler(handlerPath));
