// A command re-run as a worker process (a function handler: the proxy's front workers) parses the
// same argv again. With --config it must not read the file itself: the file may have changed, or
// broken, since the daemon accepted it. The daemon hands its accepted input down in one variable;
// a worker with the same command and argv takes it instead of the file.
const INPUT_ENV = 'TCPDAEMON_COMMAND_INPUT';

interface HandedDown {
  name: string;
  argv: string[];
  input: Record<string, unknown>;
}

/** Sets (or, after a reload, replaces) the input the daemon's future workers take. */
export function handDownInput(name: string, argv: readonly string[], input: Record<string, unknown>): void {
  const value: HandedDown = { name, argv: [...argv], input };
  process.env[INPUT_ENV] = JSON.stringify(value);
}

/**
 * In a worker (a process with an IPC channel to its daemon): the input its daemon runs with, when
 * the daemon ran the same command with the same argv; removed from the environment either way,
 * so processes the handler starts do not see it.
 */
export function takeHandedDownInput(
  name: string,
  argv: readonly string[],
): Record<string, unknown> | undefined {
  const raw = process.env[INPUT_ENV];
  if (raw === undefined || typeof process.send !== 'function') return undefined;
  delete process.env[INPUT_ENV];
  let value: HandedDown;
  try {
    value = JSON.parse(raw) as HandedDown;
  } catch {
    return undefined;
  }
  const sameArgv = value.argv.length === argv.length && value.argv.every((a, i) => a === argv[i]);
  return value.name === name && sameArgv ? value.input : undefined;
}
