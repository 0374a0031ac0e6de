// `tcpdaemon ...`: parse, detach if asked, run the daemon, turn failures into one line and exit 1.
import { tcpdaemon } from '../daemon.js';
import { formatAddress, parseListenAddress } from '../listen-address.js';
import { modelFor } from '../models/index.js';
import { ParamError, validateParams } from '../params.js';
import { keepServingOnUncaught } from '../process-guards.js';
import { SignalInbox } from '../signals.js';
import { StartError } from '../start-error.js';
import { VERSION } from '../version.js';
import { detach, isDetachedCopy, reportStart } from './detach.js';
import { parseCli } from './flags.js';
import { USAGE } from './usage.js';

/** Subcommands, loaded only when used so the daemon's start stays lean. */
const SUBCOMMANDS: Record<string, () => Promise<(argv: string[]) => Promise<number>>> = {
  bench: async () => (await import('../bench/cli.js')).benchMain,
  proxy: async () => (await import('../proxy/cli.js')).proxyMain,
  gateway: async () => (await import('../gateway/cli.js')).gatewayMain,
  worker: async () => (await import('../gateway/cli.js')).workerMain,
  status: async () => (await import('./status.js')).statusMain,
};

function exitNow(code: number): never {
  process.exit(code);
}

async function main(argv: string[]): Promise<void> {
  const sub = argv[0] === undefined ? undefined : SUBCOMMANDS[argv[0]];
  if (sub) exitNow(await (await sub())(argv.slice(1)));

  const inbox = new SignalInbox();
  let command: ReturnType<typeof parseCli>;
  try {
    command = parseCli(argv);
    if (command.kind === 'run') modelFor(validateParams(command.params));
  } catch (err) {
    if (!(err instanceof ParamError)) throw err;
    process.stderr.write(`tcpdaemon: ${err.message}\n\n${USAGE}\n`);
    exitNow(1);
  }
  if (command.kind === 'help') {
    process.stdout.write(`${USAGE}\n`);
    exitNow(0);
  }
  if (command.kind === 'version') {
    process.stdout.write(`tcpdaemon ${VERSION} (node ${process.version})\n`);
    exitNow(0);
  }
  const detached = isDetachedCopy();
  if (command.params.daemonLevel && !detached) exitNow(await detach(argv));

  try {
    const handle = await tcpdaemon(command.params, { signals: inbox, exit: exitNow });
    keepServingOnUncaught(handle.logger);
    if (detached) {
      const a = handle.address();
      const address =
        typeof a === 'string' || a === null
          ? formatAddress(parseListenAddress(command.params.listen))
          : formatAddress({ kind: 'tcp', host: a.address, port: a.port });
      reportStart({ ready: true, address });
    }
  } catch (err) {
    const known = err instanceof ParamError || err instanceof StartError;
    const message = known
      ? (err as Error).message
      : `start-up failed: ${(err as Error).stack ?? String(err)}`;
    if (detached) reportStart({ ready: false, error: message });
    process.stderr.write(`tcpdaemon: ${message}\n`);
    // Let the report reach the terminal process before exiting.
    setTimeout(() => exitNow(1), detached ? 200 : 0);
  }
}

await main(process.argv.slice(2));
