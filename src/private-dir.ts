// Private directories of a running daemon under the temp dir (mode 0700: sockets its children
// connect to, the TLS snapshot), named `${prefix}${pid}-XXXXXX` so that a later daemon can tell
// whose they are: a daemon killed with SIGKILL cannot remove its own, so the next one that makes
// a directory with the same prefix removes every one whose daemon (the pid in its name) is gone.
// Others' directories (EPERM) stay.
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processExists } from './process-exists.js';

/** A new private directory for this process; stale ones of dead daemons with `prefix` go first. */
export function makePrivateDir(prefix: string): string {
  removeStale(prefix);
  return mkdtempSync(join(tmpdir(), `${prefix}${process.pid}-`));
}

function removeStale(prefix: string): void {
  let names: string[];
  try {
    names = readdirSync(tmpdir());
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(prefix.length))?.[1]);
    if (!pid || processExists(pid)) continue;
    try {
      rmSync(join(tmpdir(), name), { recursive: true, force: true });
    } catch {
      // not ours
    }
  }
}
