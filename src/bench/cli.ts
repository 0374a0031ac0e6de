// `tcpdaemon bench`: parse flags, run the load threads, print the result.
import { FD_RESERVE, openFileLimit } from './fd-limit.js';
import { BenchUsageError, parseBenchArgs, USAGE } from './options.js';
import { runLoad } from './pool.js';
import { buildResult, formatText } from './report.js';
import { loadProtocol } from './request-protocol.js';

/** Where benchMain writes; tests pass collectors. */
export interface BenchIO {
  out(text: string): void;
  err(text: string): void;
}

const processIO: BenchIO = {
  out: (text) => process.stdout.write(text),
  err: (text) => process.stderr.write(text),
};

/**
 * Runs `tcpdaemon bench <argv>` and returns the exit code: 0 the run counted no errors,
 * 2 it finished but counted errors or, with --rate, late starts (the report says which),
 * 1 bad flags (a --module that cannot load or exports the wrong things) or a failure of the tool
 * itself (a --module function that throws or returns the wrong shape during the run). The result goes to stdout (text, or one JSON object with --json);
 * hold mode writes `holding N open F failed` on stderr once its ramp is over.
 */
export async function benchMain(argv: string[], io: BenchIO = processIO): Promise<number> {
  let options: ReturnType<typeof parseBenchArgs>;
  try {
    options = parseBenchArgs(argv);
    if (options === 'help') {
      io.out(`${USAGE}\n`);
      return 0;
    }
    const limit = openFileLimit();
    if (limit !== undefined && options.connections + FD_RESERVE > limit) {
      throw new BenchUsageError(
        `--connections ${options.connections} needs more open files than the limit of ${limit} (raise ulimit -n)`,
      );
    }
    // Each load thread loads it again; here a missing or wrong module is refused before any load.
    if (options.request) await loadProtocol(options.request);
  } catch (err) {
    if (!(err instanceof BenchUsageError)) throw err;
    io.err(`tcpdaemon bench: ${err.message}\n${USAGE}\n`);
    return 1;
  }

  try {
    const run = await runLoad(options, {
      onRamped: (r) => io.err(`holding ${r.open} open ${r.failed} failed\n`),
    });
    const result = buildResult(options, run);
    io.out(options.json ? `${JSON.stringify(result)}\n` : `${formatText(result)}\n`);
    return result.errorTotal > 0 || (result.paced?.late ?? 0) > 0 ? 2 : 0;
  } catch (err) {
    io.err(`tcpdaemon bench: ${(err as Error).message}\n`);
    return 1;
  }
}
