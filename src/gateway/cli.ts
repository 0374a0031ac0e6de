// `tcpdaemon gateway ...` and `tcpdaemon worker ...`: the gateway's declarations (params.ts) through
// the one command runner.
import { parseCommandLine } from '../platform/command-line.js';
import type { CommandSpec } from '../platform/fields.js';
import { type Command, runCommand } from '../platform/runner.js';
import { renderUsage } from '../platform/usage.js';
import { GATEWAY_COMMAND, type GatewayParams, validateGatewayParams, WORKER_COMMAND } from './params.js';

export const GATEWAY_USAGE = renderUsage(GATEWAY_COMMAND);

/** argv (after the subcommand) -> parameters, or 'help'. Throws ParamError with a one-line reason. */
export function parseGatewayArgs(
  argv: string[],
  spec: CommandSpec = GATEWAY_COMMAND,
): GatewayParams | 'help' {
  const line = parseCommandLine(spec, argv);
  return line.kind === 'run' ? (line.input as GatewayParams) : 'help';
}

function command(role: 'gateway' | 'worker'): Command {
  return {
    spec: role === 'gateway' ? GATEWAY_COMMAND : WORKER_COMMAND,
    words: [role],
    check: (input) => {
      validateGatewayParams(input as GatewayParams, role);
    },
    start: async (input, options) => {
      const { startGateway, startWorkers } = await import('./daemon.js');
      return (role === 'gateway' ? startGateway : startWorkers)(input as GatewayParams, options);
    },
  };
}

/** `tcpdaemon gateway ...`; resolves with the exit code once stopped (or at once on bad flags). */
export function gatewayMain(argv: string[]): Promise<number> {
  return runCommand(command('gateway'), argv);
}

/** `tcpdaemon worker ...` (NATS workers). */
export function workerMain(argv: string[]): Promise<number> {
  return runCommand(command('worker'), argv);
}
