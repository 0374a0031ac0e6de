// The supervisor manages child processes. A worker thread is adapted to the part of ChildProcess
// the supervisor uses (pid, connected, send, kill, 'message' and 'exit'), so threads get the same
// lifetimes as processes: readiness, restarts with backoff, hang detection, reload, graceful stop.
import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { SupervisorMessage } from '../supervisor/protocol.js';

export class ThreadProcess extends EventEmitter {
  exitCode: number | null = null;
  readonly signalCode: NodeJS.Signals | null = null;
  /** The thread id, shown in the supervisor's log lines as `workerPid` (kept: it reads -1 after exit). */
  readonly pid: number;

  /** `graceMs`: what a SIGTERM (retire without a message) gives the thread to drain, ms. */
  constructor(
    readonly thread: Worker,
    private readonly graceMs: number,
  ) {
    super();
    this.pid = thread.threadId;
    thread.on('message', (m: unknown) => this.emit('message', m));
    thread.once('exit', (code) => {
      this.exitCode = code;
      this.emit('exit', code, null);
    });
  }

  get connected(): boolean {
    return this.exitCode === null;
  }

  send(message: unknown, _handle?: unknown, _opts?: unknown, cb?: (err: Error | null) => void): boolean {
    if (this.exitCode !== null) {
      cb?.(new Error('thread has exited'));
      return false;
    }
    try {
      this.thread.postMessage(message);
    } catch (err) {
      cb?.(err as Error);
      return false;
    }
    cb?.(null);
    return true;
  }

  /** SIGKILL terminates the thread; any other signal asks it to retire within graceMs. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.exitCode !== null) return false;
    if (signal === 'SIGKILL') {
      this.thread.terminate().catch(() => undefined);
    } else {
      const retire: SupervisorMessage = { tdw: 'retire', graceMs: this.graceMs };
      this.send(retire);
    }
    return true;
  }

  /** The supervisor's WorkerSpec.start returns a ChildProcess; this is the one cast. */
  asChildProcess(): ChildProcess {
    return this as unknown as ChildProcess;
  }
}
