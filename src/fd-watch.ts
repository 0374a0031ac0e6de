// Out of file descriptors (EMFILE, ENFILE), libuv accepts pending connections and closes them at
// once (its reserve-descriptor trick), and node reports nothing. This probe notices: once a second
// it opens /dev/null (two syscalls), and while that fails it says so, throttled.
import { closeSync, openSync } from 'node:fs';
import { ThrottledCount } from './throttled-count.js';
import type { Logger } from './types.js';

const PROBE_MS = 1000;
/** While out of descriptors: the first probe logs at once, then one summary per this many ms. */
const LOG_EVERY_MS = 10_000;

/** Starts the probe (unref'd: it keeps no process alive); the returned function stops it. */
export function watchDescriptors(logger: Logger): () => void {
  const out = new ThrottledCount(
    logger,
    'out of file descriptors: new connections are closed at accept until some free up',
    LOG_EVERY_MS,
  );
  let exhausted = false;
  const probe = () => {
    let fd: number;
    try {
      fd = openSync('/dev/null', 'r');
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EMFILE' && code !== 'ENFILE') return;
      exhausted = true;
      out.add({ code });
      return;
    }
    closeSync(fd);
    if (!exhausted) return;
    exhausted = false;
    logger.info({ totalSecondsOut: out.total }, 'file descriptors available again');
  };
  const timer = setInterval(probe, PROBE_MS);
  timer.unref();
  return () => clearInterval(timer);
}
