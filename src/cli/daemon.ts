// `tcpdaemon -m MODEL -l ADDRESS -s HANDLER ...`: the daemon command, by its declarations (params.ts).
import { tcpdaemon } from '../daemon.js';
import { modelFor } from '../models/index.js';
import { DAEMON_COMMAND, type TcpdaemonParams, validateParams } from '../params.js';
import { logApplied, planReload } from '../platform/reload-config.js';
import { type Command, runCommand } from '../platform/runner.js';

const DAEMON: Command = {
  spec: DAEMON_COMMAND,
  words: [],
  check: (input) => {
    modelFor(validateParams(input));
  },
  start: (input, options) => {
    const { config } = options;
    return tcpdaemon(input as unknown as TcpdaemonParams, {
      ...options,
      // SIGHUP re-reads --config: live values apply, the others wait for a restart.
      reconfigure: config
        ? (logger) => {
            const plan = planReload(config, logger);
            if (!plan) return undefined;
            return {
              params: plan.input as unknown as TcpdaemonParams,
              applied: () => logApplied(plan, logger),
            };
          }
        : undefined,
    });
  },
};

export function daemonMain(argv: string[]): Promise<number> {
  return runCommand(DAEMON, argv);
}
