// --daemon-level: the terminal process re-runs itself detached and waits until the detached copy
// listens (or fails), so start-up errors still reach the terminal with exit code 1.
import { spawn } from 'node:child_process';
import { childEnv, forgetVar, readVar } from '../child-channel.js';

type StartReport = { ready: true; address: string } | { ready: false; error: string };

export function isDetachedCopy(): boolean {
  return readVar('detached') === '1' && typeof process.send === 'function';
}

/** In the detached copy: tell the waiting terminal process how start-up went, then let it go. */
export function reportStart(report: StartReport): Promise<void> {
  forgetVar('detached');
  const send = process.send?.bind(process);
  if (!send) return Promise.resolve();
  return new Promise((resolve) =>
    send(report, () => {
      process.disconnect();
      resolve();
    }),
  );
}

/** In the terminal process: start the detached copy, wait for its report, return the exit code. */
export function detach(argv: string[], name = 'tcpdaemon'): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...argv], {
    detached: true,
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
    env: childEnv({ detached: '1' }),
  });
  return new Promise((resolve) => {
    let reported = false;
    child.once('message', (msg: StartReport) => {
      reported = true;
      if (msg.ready) {
        process.stdout.write(
          `${name}: running in the background as pid ${child.pid}, listening on ${msg.address}\n`,
        );
        resolve(0);
      } else {
        process.stderr.write(`${name}: ${msg.error}\n`);
        resolve(1);
      }
      child.unref();
      if (child.connected) child.disconnect();
    });
    child.once('exit', (code, signal) => {
      if (reported) return;
      process.stderr.write(
        `${name}: the detached daemon exited during start-up (${signal ?? `code ${code}`})\n`,
      );
      resolve(1);
    });
  });
}
