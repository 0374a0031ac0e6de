// The small addon native/sockets.c (built by `npm run build` when a C compiler and node's headers
// are there: scripts/build-native.mjs): dup(2), which node lacks, and a cheap getpeername. Without
// it, or with TCPDAEMON_NATIVE=0, every caller keeps its way without (an LF worker then asks the
// daemon for each copy of the listening socket; peers are read through node).
import { closeSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { readVar } from '../child-channel.js';

export type Dup = (fd: number) => number;
/** An IPv4 peer as address * 65536 + port, or -1 (not IPv4, not a descriptor, no peer any more). */
export type Peer4 = (fd: number) => number;

interface Addon {
  dup: Dup;
  peer4: Peer4;
}

/** Where the build puts it: dist/native/, seen from dist/native/, dist/worker/ (the bundle) or src/native/. */
const CANDIDATES = ['../native/sockets.node', '../../dist/native/sockets.node'];

let loaded: Addon | null | undefined;

function addon(): Addon | null {
  if (loaded === undefined) loaded = load();
  return loaded;
}

/** The addon's dup, or undefined when it is not built or turned off. */
export function nativeDup(): Dup | undefined {
  return addon()?.dup;
}

/** The addon's peer4, or undefined when it is not built or turned off. */
export function nativePeer4(): Peer4 | undefined {
  return addon()?.peer4;
}

/**
 * A descriptor of our own of the socket behind `handle` (a node handle, which has `fd`), or
 * undefined: no descriptor to read, or none left (EMFILE).
 */
export function dupHandle(dup: Dup, handle: unknown): number | undefined {
  const fd = (handle as { fd?: unknown }).fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return dup(fd);
  } catch {
    return undefined;
  }
}

/** Closes a descriptor made by dup; one already closed is no error (nothing is left to leak). */
export function closeDup(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function load(): Addon | null {
  if (readVar('native') === '0') return null;
  const require = createRequire(import.meta.url);
  for (const candidate of CANDIDATES) {
    const file = fileURLToPath(new URL(candidate, import.meta.url));
    if (!existsSync(file)) continue;
    try {
      const found = require(file) as Partial<Addon>;
      if (typeof found.dup === 'function' && typeof found.peer4 === 'function') return found as Addon;
    } catch {
      // built for another platform, or damaged: go without
    }
  }
  return null;
}
