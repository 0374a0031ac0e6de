// A command re-run as a worker process (a function handler: the proxy's front workers) parses the
// same argv again. With --config it must not read the file itself: the file may have changed, or
// broken, since the daemon accepted it. The daemon hands its accepted input down in one variable;
// a worker with the same command and argv takes it instead of the file (the child channel's
// commandInput, src/child-channel.ts).
import { handDown, readVar, takeVar } from '../child-channel.js';

interface HandedDown {
  name: string;
  argv: string[];
  input: Record<string, unknown>;
}

/** Sets (or, after a reload, replaces) the input the daemon's future workers take. */
export function handDownInput(name: string, argv: readonly string[], input: Record<string, unknown>): void {
  const value: HandedDown = { name, argv: [...argv], input };
  handDown('commandInput', JSON.stringify(value));
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
  if (readVar('commandInput') === undefined || typeof process.send !== 'function') return undefined;
  const raw = takeVar('commandInput')!;
  let value: HandedDown;
  try {
    value = JSON.parse(raw) as HandedDown;
  } catch {
    return undefined;
  }
  const sameArgv = value.argv.length === argv.length && value.argv.every((a, i) => a === argv[i]);
  return value.name === name && sameArgv ? value.input : undefined;
}
