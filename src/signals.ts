export type DaemonSignal = 'SIGTERM' | 'SIGINT' | 'SIGHUP' | 'SIGUSR1';
const SIGNALS: DaemonSignal[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1'];

/**
 * Takes the daemon's signals from the first line of the CLI on, so one that arrives while the
 * handler is still loading is kept and acted on once the daemon is up (not lost, not fatal).
 */
export class SignalInbox {
  private queued: DaemonSignal[] = [];
  private handler: ((sig: DaemonSignal) => void) | undefined;
  private readonly listeners = new Map<DaemonSignal, () => void>();

  constructor() {
    for (const sig of SIGNALS) {
      const listener = () => this.deliver(sig);
      this.listeners.set(sig, listener);
      process.on(sig, listener);
    }
  }

  private deliver(sig: DaemonSignal): void {
    if (this.handler) this.handler(sig);
    else this.queued.push(sig);
  }

  /** Starts delivering, queued signals first. */
  attach(handler: (sig: DaemonSignal) => void): void {
    this.handler = handler;
    for (const sig of this.queued.splice(0)) handler(sig);
  }

  dispose(): void {
    for (const [sig, listener] of this.listeners) process.off(sig, listener);
  }
}
