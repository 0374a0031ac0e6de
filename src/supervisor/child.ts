// What the supervisor needs of a worker: the part of node's ChildProcess it uses. A ChildProcess is
// one; a worker thread fits behind a small adapter (src/models/tlf/thread-process.ts).
import type { MessageOptions, SendHandle } from 'node:child_process';

export interface SupervisedChild {
  /** undefined until spawned (and for a spawn that failed). */
  readonly pid?: number | undefined;
  /** Whether `send` can deliver now. */
  readonly connected: boolean;
  /** `callback` runs once the message is written, or with the error. */
  send(
    message: unknown,
    handle: SendHandle | undefined,
    options: MessageOptions,
    callback: (err: Error | null) => void,
  ): boolean;
  /** SIGTERM asks the worker to finish; SIGKILL ends it at once. */
  kill(signal?: NodeJS.Signals): boolean;
  on(event: 'message', listener: (message: unknown, handle: unknown) => void): this;
  /** Once per worker, when it is gone (reaped). */
  on(event: 'exit', listener: (code: number | null, signal: NodeJS.Signals | null) => void): this;
  /** A failed spawn (pid undefined, no 'exit' follows) or a channel error. */
  on(event: 'error', listener: (err: Error) => void): this;
  once(event: 'spawn', listener: () => void): this;
  off(event: 'message', listener: (message: unknown, handle: unknown) => void): this;
}
