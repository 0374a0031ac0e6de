// --pid-file: created exclusively before the daemon listens (never through a symlink, never over a
// live daemon's), removed at exit only while it still holds our pid.
import { closeSync, constants, fstatSync, openSync, readSync, unlinkSync, writeSync } from 'node:fs';
import { TcpdaemonError } from './errors.js';
import { processExists } from './process-exists.js';
import type { Logger } from './types.js';

export class PidFileError extends TcpdaemonError {
  override name = 'PidFileError';
  override readonly code = 'TD_ERR_PID_FILE';
}

/** What a pid file holds: a pid, nothing usable (empty, not a number), or it is not a plain file. */
type Holder = number | 'no pid' | 'not a regular file' | 'gone';

/**
 * Creates `path` holding this process's pid, with O_EXCL (an existing file or symlink is never
 * written through). An existing file whose pid is alive stops the start (PidFileError); one whose
 * process is gone, or that holds no pid, is replaced with a log line. Anything that is not a
 * regular file is left as it is, and is an error.
 */
export function createPidFile(path: string, logger: Logger): void {
  for (let attempt = 1; ; attempt++) {
    try {
      const fd = openSync(
        path,
        constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
        0o644,
      );
      try {
        writeSync(fd, `${process.pid}\n`);
      } finally {
        closeSync(fd);
      }
      return;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') throw new PidFileError(`--pid-file ${path}: cannot create it (${code ?? err})`);
      // A second EEXIST: another start created it between our removal and our create.
      if (attempt > 1)
        throw new PidFileError(`--pid-file ${path}: another process created it while we started`);
    }
    const holder = readHolder(path);
    if (holder === 'not a regular file')
      throw new PidFileError(
        `--pid-file ${path}: the path exists and is not a regular file (a symlink is not followed); left untouched`,
      );
    if (typeof holder === 'number' && holder !== process.pid && processExists(holder))
      throw new PidFileError(
        `--pid-file ${path}: process ${holder} named in it is running (another daemon?); not started`,
      );
    if (holder !== 'gone') {
      logger.warn(
        { path, stalePid: typeof holder === 'number' ? holder : null },
        'replacing stale pid file (the process it names is gone)',
      );
      try {
        unlinkSync(path);
      } catch {
        // removed meanwhile: the next create says whether someone else made it
      }
    }
  }
}

/** Removes `path` if it still holds this process's pid (another start may have taken it over). */
export function removePidFile(path: string): void {
  try {
    if (readHolder(path) === process.pid) unlinkSync(path);
  } catch {
    // unreadable or already gone: nothing of ours to remove
  }
}

function readHolder(path: string): Holder {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return 'gone';
    if (code === 'ELOOP') return 'not a regular file';
    throw new PidFileError(`--pid-file ${path}: cannot read it (${code ?? err})`);
  }
  try {
    if (!fstatSync(fd).isFile()) return 'not a regular file';
    const buf = Buffer.alloc(32);
    const text = buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, 0));
    const m = /^\s*(\d{1,10})\s*$/.exec(text);
    const pid = m ? Number(m[1]) : 0;
    return pid > 0 && pid <= 0x7fffffff ? pid : 'no pid';
  } finally {
    closeSync(fd);
  }
}
