// sd_notify(3) for Type=notify and Type=notify-reload services: READY=1, RELOADING=1 with
// MONOTONIC_USEC, STOPPING=1, STATUS= and WATCHDOG=1, sent to $NOTIFY_SOCKET.
//
// Node cannot open a unix datagram socket, so each message is sent by systemd's own
// `systemd-notify --pid=OUR_PID VAR=VALUE...` (README: "systemd"): it ships with systemd itself,
// so it is there wherever NOTIFY_SOCKET is, it knows abstract (@) sockets, it waits until systemd
// has read the message (BARRIER=1), and nothing needs compiling. The message comes from a child,
// not from the main pid: systemd takes it with NotifyAccess=all, or, when we are privileged
// (root), with the default NotifyAccess=main because --pid= makes it carry our pid
// (SCM_CREDENTIALS). Messages go out one at a time, in order; a missing systemd-notify costs one
// log line and nothing else.
import { type ChildProcess, spawn } from 'node:child_process';
import type { Logger } from '../types.js';

/** What a command tells the service manager, given to it in its start options. */
export interface ServiceManager {
  /**
   * Asked before each watchdog ping: undefined = healthy, or why the ping is held back.
   * `intervalMs`: the ping interval (a worker silent longer than that is not healthy).
   */
  watch(probe: (intervalMs: number) => string | undefined): void;
  /** RELOADING=1 (with MONOTONIC_USEC), then run the reload, then READY=1 again. */
  reloading<T>(reload: () => Promise<T>): Promise<T>;
  /** STOPPING=1: the graceful stop has begun. */
  stopping(): void;
}

const COMMAND = 'systemd-notify';
/** A systemd-notify still running after this is killed (it waits 5 s at most for systemd), ms. */
const CHILD_TIMEOUT_MS = 10_000;
/** Messages waiting for their turn; more are dropped (only a stuck systemd-notify queues any). */
const MAX_QUEUED = 32;
/** STATUS= text is cut to this length. */
const MAX_STATUS = 200;
/** How long the last messages may take at exit, ms. */
const FLUSH_MS = 3000;

type Level = 'debug' | 'info' | 'warn' | 'error';

export class SystemdNotifier implements ServiceManager {
  private readonly queue: string[][] = [];
  private busy = false;
  private unavailable = false;
  private failures = 0;
  private logger: Logger | undefined;
  /** Lines logged before the logger was known. */
  private readonly early: [Level, object, string][] = [];
  private probe: ((intervalMs: number) => string | undefined) | undefined;
  private timer: NodeJS.Timeout | undefined;
  private heldBack: string | undefined;
  private isStopping = false;
  private serving = '';
  private readonly idle: (() => void)[] = [];

  /**
   * @param socket $NOTIFY_SOCKET (a path, or @name for an abstract socket).
   * @param watchdogMs the ping interval (half of $WATCHDOG_USEC), or undefined when no watchdog is ours.
   */
  constructor(
    readonly socket: string,
    readonly watchdogMs: number | undefined,
    private readonly command = COMMAND,
  ) {}

  watch(probe: (intervalMs: number) => string | undefined): void {
    this.probe = probe;
  }

  /**
   * Starts the watchdog pings, if the watchdog is ours: from the start on, since systemd counts
   * during start-up too (the probe, set once the command runs, judges the workers).
   */
  start(): void {
    if (this.watchdogMs === undefined || this.timer !== undefined || this.isStopping) return;
    this.timer = setInterval(() => this.ping(), this.watchdogMs);
    this.timer.unref();
  }

  /** READY=1 with STATUS=`status`; the logger is known from now on. */
  ready(logger: Logger, status: string): void {
    this.logger = logger;
    for (const [level, obj, msg] of this.early.splice(0)) logger[level](obj, msg);
    this.serving = status;
    this.send('READY=1', `STATUS=${status}`);
    if (this.timer !== undefined) logger.debug({ intervalMs: this.watchdogMs }, 'systemd watchdog: pinging');
  }

  async reloading<T>(reload: () => Promise<T>): Promise<T> {
    // CLOCK_MONOTONIC, as systemd wants it: libuv's hrtime reads that clock.
    const usec = process.hrtime.bigint() / 1000n;
    this.send('RELOADING=1', `MONOTONIC_USEC=${usec}`, 'STATUS=reloading');
    try {
      return await reload();
    } finally {
      if (!this.isStopping) this.send('READY=1', `STATUS=${this.serving}`);
    }
  }

  stopping(): void {
    if (this.isStopping) return;
    this.isStopping = true;
    clearInterval(this.timer);
    this.send('STOPPING=1', 'STATUS=stopping');
  }

  /** Stops the watchdog; resolves once the messages sent so far are out (FLUSH_MS at most). */
  close(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    if (!this.busy && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle.push(resolve);
      setTimeout(resolve, FLUSH_MS).unref();
    });
  }

  private ping(): void {
    if (this.isStopping) return;
    const problem = this.probe?.(this.watchdogMs ?? 0);
    if (problem === undefined) {
      if (this.heldBack !== undefined) {
        this.heldBack = undefined;
        this.log('info', {}, 'systemd watchdog: healthy again, pinging');
        this.send(`STATUS=${this.serving}`);
      }
      // One queued ping is as good as several.
      if (!this.queue.some((m) => m[0] === 'WATCHDOG=1')) this.send('WATCHDOG=1');
      return;
    }
    if (problem !== this.heldBack) {
      this.heldBack = problem;
      this.log(
        'error',
        { reason: problem },
        'systemd watchdog: ping held back (systemd acts when WatchdogSec= passes)',
      );
      this.send(`STATUS=unhealthy: ${problem}`);
    }
  }

  private send(...fields: string[]): void {
    if (this.unavailable) return;
    if (this.queue.length >= MAX_QUEUED) {
      this.log('warn', { dropped: fields[0] }, 'systemd-notify is behind: message dropped');
      return;
    }
    this.queue.push(fields.map((f) => (f.startsWith('STATUS=') ? statusField(f) : f)));
    this.pump();
  }

  private pump(): void {
    if (this.busy) return;
    const fields = this.queue.shift();
    if (fields === undefined || this.unavailable) {
      for (const done of this.idle.splice(0)) done();
      return;
    }
    this.busy = true;
    let child: ChildProcess;
    try {
      child = spawn(this.command, [`--pid=${process.pid}`, ...fields], {
        env: { PATH: process.env.PATH ?? '/usr/bin:/bin', NOTIFY_SOCKET: this.socket },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
    } catch (err) {
      // Arguments spawn refuses (a NUL byte): this message only.
      this.busy = false;
      this.failed(fields, null, null, (err as Error).message);
      this.pump();
      return;
    }
    let stderr = '';
    let ended = false;
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      if (stderr.length < 500) stderr += text;
    });
    const end = (failure?: () => void) => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      this.busy = false;
      failure?.();
      this.pump();
    };
    child.once('error', (err: NodeJS.ErrnoException) => end(() => this.cannotRun(err)));
    child.once('close', (code, signal) =>
      end(code === 0 ? undefined : () => this.failed(fields, code, signal, stderr.trim())),
    );
  }

  private cannotRun(err: NodeJS.ErrnoException): void {
    this.unavailable = true;
    this.queue.length = 0;
    clearInterval(this.timer);
    this.log(
      'warn',
      { notifySocket: this.socket, err: err.code ?? err.message },
      `NOTIFY_SOCKET is set but ${this.command} cannot run: systemd gets no READY=1, WATCHDOG=1 or STOPPING=1 from this service (install systemd's systemd-notify, or use Type=simple)`,
    );
  }

  private failed(fields: string[], code: number | null, signal: NodeJS.Signals | null, stderr: string): void {
    this.failures++;
    this.log(
      this.failures === 1 ? 'warn' : 'debug',
      { message: fields[0], exit: signal ?? code, stderr, failures: this.failures },
      this.failures === 1
        ? `${this.command} failed (later failures are logged at debug level)`
        : `${this.command} failed`,
    );
  }

  private log(level: Level, obj: object, msg: string): void {
    if (this.logger) this.logger[level](obj, msg);
    else if (this.early.length < 8) this.early.push([level, obj, msg]);
  }
}

function statusField(field: string): string {
  const text = field.slice(7).replace(/\s+/g, ' ');
  return `STATUS=${text.length > MAX_STATUS ? `${text.slice(0, MAX_STATUS - 1)}…` : text}`;
}

/**
 * The notifier for this process when systemd asked for one ($NOTIFY_SOCKET), else undefined.
 * Removes NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from `env` either way: they are for this
 * process, not for the workers and backends it starts. The watchdog is ours when WATCHDOG_USEC is
 * set and WATCHDOG_PID is unset or our pid.
 */
export function systemdNotifier(env: NodeJS.ProcessEnv = process.env): SystemdNotifier | undefined {
  const socket = env.NOTIFY_SOCKET;
  const usec = env.WATCHDOG_USEC;
  const pid = env.WATCHDOG_PID;
  delete env.NOTIFY_SOCKET;
  delete env.WATCHDOG_USEC;
  delete env.WATCHDOG_PID;
  if (socket === undefined || socket === '') return undefined;
  const interval = usec !== undefined && /^\d{1,15}$/.test(usec) ? Number(usec) / 2000 : 0;
  const ours = pid === undefined || pid === String(process.pid);
  return new SystemdNotifier(socket, interval > 0 && ours ? Math.max(interval, 1) : undefined);
}
