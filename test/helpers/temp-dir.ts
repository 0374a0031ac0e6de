// Temp directories of a test file, removed when its process exits (each test file runs in its own),
// so that runs of the suite leave nothing in the temp dir.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const made: string[] = [];
// A child the test left running may still be writing into a directory (a status socket, a log), so
// removal retries on ENOTEMPTY and one directory that cannot go does not keep the others.
process.on('exit', () => {
  for (const d of made) {
    try {
      rmSync(d, { recursive: true, force: true, maxRetries: 5, retryDelay: 20 });
    } catch (err) {
      process.stderr.write(`temp dir ${d} not removed: ${(err as Error).message}\n`);
    }
  }
});

/** A new directory `${tmpdir()}/${prefix}XXXXXX`, removed at exit. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  made.push(dir);
  return dir;
}
