// dup(2), which node lacks, from the small addon native/dup.c (built by `npm run build` when a C
// compiler and node's headers are there: scripts/build-native.mjs). Without it, or with
// TCPDAEMON_NATIVE=0, every caller keeps its way without (an LF worker then asks the daemon for
// each copy of the listening socket).
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { readVar } from '../child-channel.js';

export type Dup = (fd: number) => number;

/** Where the build puts it: dist/native/, seen from dist/native/, dist/worker/ (the bundle) or src/native/. */
const CANDIDATES = ['../native/dup.node', '../../dist/native/dup.node'];

let loaded: Dup | null | undefined;

/** The addon's dup, or undefined when it is not built or turned off. Loaded once. */
export function nativeDup(): Dup | undefined {
  if (loaded === undefined) loaded = load();
  return loaded ?? undefined;
}

function load(): Dup | null {
  if (readVar('native') === '0') return null;
  const require = createRequire(import.meta.url);
  for (const candidate of CANDIDATES) {
    const file = fileURLToPath(new URL(candidate, import.meta.url));
    if (!existsSync(file)) continue;
    try {
      const addon = require(file) as { dup?: unknown };
      if (typeof addon.dup === 'function') return addon.dup as Dup;
    } catch {
      // built for another platform, or damaged: go without
    }
  }
  return null;
}
