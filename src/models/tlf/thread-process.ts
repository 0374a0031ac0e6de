// A TLF worker thread as the supervisor's SupervisedChild (pid, connected, send, kill, 'message',
// 'exit'), so threads get the same lifetimes as processes: readiness, restarts with backoff, hang
// detection, reload, graceful stop.
import { EventEmitter } from 'node:events';
import type { Worker } from 'node:worker_threads';
import type { SupervisedChild } from '../../supervisor/child.js';
import type { SupervisorMessage } from '../../supervisor/protocol.js';
import { isModelMessage } from '../../worker/messages.js';

/**
 * Longest wait (ms) for a thread's listening-socket helper before a SIGKILL terminates the thread
 * anyway; the thread itself gives its helper 15 s (listener-copy.ts).
 */
const COPY_WAIT_MS = 20_000;

export class ThreadProcess extends EventEmitter implements SupervisedChild {
  exitCode: number | null = null;
  /** The thread id, shown in the supervisor's log lines as `workerPid` (kept: it reads -1 after exit). */
  readonly pid: number;
  /**
   * Until the thread says 'copied', its helper process may be running. A thread terminated then
   * leaves the helper a zombie until the daemon exits (the thread's event loop was to reap it), so
   * a SIGKILL waits for 'copied' (at most COPY_WAIT_MS).
   */
  private copying = true;
  private killWhenCopied: NodeJS.Timeout | undefined;

  /** `graceMs`: what a SIGTERM (retire without a message) gives the thread to drain, ms. */
  constructor(
    readonly thread: Worker,
    private readonly graceMs: number,
  ) {
    super();
    this.pid = thread.threadId;
    thread.on('message', (m: unknown) => {
      if (isModelMessage(m) && m.tdm === 'copied') this.copied();
      else this.emit('message', m, undefined);
    });
    thread.once('exit', (code) => {
      this.exitCode = code;
      clearTimeout(this.killWhenCopied);
      this.emit('exit', code, null);
    });
  }

  get connected(): boolean {
    return this.exitCode === null;
  }

  send(message: unknown, _handle: unknown, _opts: unknown, cb: (err: Error | null) => void): boolean {
    if (this.exitCode !== null) {
      cb(new Error('thread has exited'));
      return false;
    }
    try {
      this.thread.postMessage(message);
    } catch (err) {
      cb(err as Error);
      return false;
    }
    cb(null);
    return true;
  }

  /** SIGKILL terminates the thread; any other signal asks it to retire within graceMs. */
  kill(signal: NodeJS.Signals = 'SIGTERM'): boolean {
    if (this.exitCode !== null) return false;
    if (signal !== 'SIGKILL') {
      const retire: SupervisorMessage = { tdw: 'retire', graceMs: this.graceMs };
      this.send(retire, undefined, undefined, () => undefined);
    } else if (!this.copying) {
      this.terminate();
    } else {
      this.killWhenCopied ??= setTimeout(() => this.terminate(), COPY_WAIT_MS);
    }
    return true;
  }

  private copied(): void {
    this.copying = false;
    if (this.killWhenCopied === undefined) return;
    clearTimeout(this.killWhenCopied);
    this.terminate();
  }

  private terminate(): void {
    this.thread.terminate().catch(() => undefined);
  }
}
