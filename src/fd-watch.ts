// Out of file descriptors (EMFILE, ENFILE), libuv accepts pending connections and closes them at
// once (its reserve-descriptor trick), and node reports nothing. This probe notices: once a second
// it opens /dev/null (two syscalls). Being out is a state, so it logs transitions: out (warn), still
// out (warn, at most every LOG_EVERY_MS), available again (info).
import { closeSync, openSync } from 'node:fs';
import type { Logger } from './types.js';

const PROBE_MS = 1000;
/** While out of descriptors, a reminder at most this often, ms. */
const LOG_EVERY_MS = 10_000;
const OUT = 'out of file descriptors: new connections are closed at accept until some free up';

/** Starts the probe (unref'd: it keeps no process alive); the returned function stops it. */
export function watchDescriptors(logger: Logger): () => void {
  /** Date.now() when the probe first failed; 0 while descriptors are available. */
  let outSince = 0;
  let loggedAt = 0;
  const probe = () => {
    let fd: number;
    try {
      fd = openSync('/dev/null', 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EMFILE' && code !== 'ENFILE') return;
      const now = Date.now();
      if (outSince === 0) outSince = now;
      else if (now - loggedAt < LOG_EVERY_MS) return;
      loggedAt = now;
      logger.warn({ code, outForS: Math.round((now - outSince) / 1000) }, OUT);
      return;
    }
    closeSync(fd);
    if (outSince === 0) return;
    logger.info({ outForS: Math.round((Date.now() - outSince) / 1000) }, 'file descriptors available again');
    outSince = 0;
  };
  const timer = setInterval(probe, PROBE_MS);
  timer.unref();
  return () => clearInterval(timer);
}
