// `tcpdaemon status SOCKET [--json]`: asks a daemon started with --status-socket SOCKET what runs.
import { parseArgs } from 'node:util';
import { formatStatus, readStatus } from '../status.js';

const USAGE = `usage: tcpdaemon status SOCKET [--json]
  SOCKET   the path the daemon was given as --status-socket
  --json   print the report as one JSON line instead of a table

exit status: 0 the daemon answered; 1 bad arguments or no answer (the reason on stderr)`;

export async function statusMain(argv: string[]): Promise<number> {
  let parsed: ReturnType<typeof parse>;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`tcpdaemon status: ${(err as Error).message}\n\n${USAGE}\n`);
    return 1;
  }
  if (parsed.values.help) {
    process.stdout.write(`${USAGE}\n`);
    return 0;
  }
  const [path, extra] = parsed.positionals;
  if (path === undefined || extra !== undefined) {
    process.stderr.write(`tcpdaemon status: give exactly one SOCKET path\n\n${USAGE}\n`);
    return 1;
  }
  try {
    const status = await readStatus(path);
    process.stdout.write(`${parsed.values.json ? JSON.stringify(status) : formatStatus(status)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`tcpdaemon status: ${(err as Error).message}\n`);
    return 1;
  }
}

function parse(argv: string[]) {
  return parseArgs({
    args: argv,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
  });
}
