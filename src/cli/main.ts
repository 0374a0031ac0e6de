// `tcpdaemon ...`: the entry. A subcommand runs its own command; otherwise the daemon runs.
// Every command goes through the one runner (platform/runner.ts); this file only picks which.
import { daemonMain } from './daemon.js';

/** Subcommands, loaded only when used so the daemon's start stays lean. */
const SUBCOMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  bench: async () => (await import('../bench/cli.js')).benchMain,
  proxy: async () => (await import('../proxy/cli.js')).proxyMain,
  gateway: async () => (await import('../gateway/cli.js')).gatewayMain,
  worker: async () => (await import('../gateway/cli.js')).workerMain,
  status: async () => (await import('./status.js')).statusMain,
  routes: async () => (await import('./routes.js')).routesMain,
};

const argv = process.argv.slice(2);
const sub = argv[0] === undefined ? undefined : SUBCOMMANDS[argv[0]];
const run = sub ? sub().then((main) => main(argv.slice(1))) : daemonMain(argv);
// Not a top-level await: a command whose last handle closed before it called exit would then end
// with node's "unsettled top-level await" (13) instead of 0.
run.then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`tcpdaemon: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  },
);
