// argv -> the library's parameter object, by the daemon's field declarations (params.ts).
import { DAEMON_COMMAND, type TcpdaemonParams } from '../params.js';
import { parseCommandLine } from '../platform/command-line.js';

export type CliCommand = { kind: 'help' } | { kind: 'version' } | { kind: 'run'; params: TcpdaemonParams };

/** Parses argv (without node and script). Throws ParamError with a one-line reason. */
export function parseCli(argv: string[]): CliCommand {
  const line = parseCommandLine(DAEMON_COMMAND, argv);
  if (line.kind !== 'run') return line;
  return { kind: 'run', params: line.input as unknown as TcpdaemonParams };
}
