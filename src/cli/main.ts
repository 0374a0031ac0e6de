// `tcpdaemon ...`: the entry. A subcommand runs its own command; otherwise the daemon runs.
// Every command goes through the one runner (platform/runner.ts); this file only picks which.
import { tcpdaemon } from '../daemon.js';
import { modelFor } from '../models/index.js';
import { DAEMON_COMMAND, type TcpdaemonParams, validateParams } from '../params.js';
import { type Command, runCommand } from '../platform/runner.js';

/** Subcommands, loaded only when used so the daemon's start stays lean. */
const SUBCOMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  bench: async () => (await import('../bench/cli.js')).benchMain,
  proxy: async () => (await import('../proxy/cli.js')).proxyMain,
  gateway: async () => (await import('../gateway/cli.js')).gatewayMain,
  worker: async () => (await import('../gateway/cli.js')).workerMain,
  status: async () => (await import('./status.js')).statusMain,
};

const DAEMON: Command = {
  spec: DAEMON_COMMAND,
  words: [],
  check: (input) => {
    modelFor(validateParams(input));
  },
  start: (input, options) => tcpdaemon(input as unknown as TcpdaemonParams, options),
};

const argv = process.argv.slice(2);
const sub = argv[0] === undefined ? undefined : SUBCOMMANDS[argv[0]];
process.exit(await (sub ? (await sub())(argv.slice(1)) : runCommand(DAEMON, argv)));
