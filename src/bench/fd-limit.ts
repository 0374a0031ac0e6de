// The soft limit on open files of this process (ulimit -n), from /proc on Linux.
import { readFileSync } from 'node:fs';

/** Descriptors the tool needs besides its sockets (stdio, threads, event loops). */
export const FD_RESERVE = 64;

/** The soft open-file limit, or undefined where /proc/self/limits cannot be read. */
export function openFileLimit(): number | undefined {
  let text: string;
  try {
    text = readFileSync('/proc/self/limits', 'utf8');
  } catch {
    return undefined;
  }
  const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
  if (!m || m[1] === 'unlimited') return undefined;
  return Number(m[1]);
}
