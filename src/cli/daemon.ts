// `tcpdaemon -m MODEL -l ADDRESS -s HANDLER ...`: the daemon command, by its declarations (params.ts).
import { tcpdaemon } from '../daemon.js';
import { modelFor } from '../models/index.js';
import { DAEMON_COMMAND, type TcpdaemonParams, validateParams } from '../params.js';
import { type Command, runCommand } from '../platform/runner.js';

const DAEMON: Command = {
  spec: DAEMON_COMMAND,
  words: [],
  check: (input) => {
    modelFor(validateParams(input));
  },
  start: (input, options) => tcpdaemon(input as unknown as TcpdaemonParams, options),
};

export function daemonMain(argv: string[]): Promise<number> {
  return runCommand(DAEMON, argv);
}
