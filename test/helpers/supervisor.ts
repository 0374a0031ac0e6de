import { fork } from 'node:child_process';
import { resolve } from 'node:path';
import pino, { type Logger } from 'pino';
import {
  type ExitInfo,
  Supervisor,
  type SupervisorOptions,
  type WorkerHandle,
  type WorkerSpec,
} from '../../src/supervisor/index.js';
import { FIXTURES, type LogLine } from './daemon.js';

/** A pino logger whose JSON lines land in `lines` (synchronously). */
export function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino(
    { level: 'debug', formatters: { level: (label) => ({ level: label }) } },
    { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) },
  );
  return { logger, lines };
}

/** Polls `cond` every 20 ms; rejects with `what` after `timeoutMs`. */
export async function waitUntil<T>(
  cond: () => T | undefined | false,
  what: string,
  timeoutMs = 10000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = cond();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface FixtureEvent {
  fixture: 'event';
  pid: number;
  event: string;
  [k: string]: unknown;
}

/**
 * Forks a test fixture as a supervised node worker (with tsx when the fixture is TypeScript).
 * `env` is read at each start. `quiet` drops the worker's stderr (for workers meant to crash).
 */
export function forkFixture(
  name: string,
  env: () => NodeJS.ProcessEnv = () => ({}),
  opts: { quiet?: boolean } = {},
): WorkerSpec['start'] {
  const file = resolve(FIXTURES, name);
  const execArgv = file.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const stdio = ['ignore', 'inherit', opts.quiet ? 'ignore' : 'inherit', 'ipc'] as const;
  return (ctx) =>
    fork(file, [], { execArgv, stdio: [...stdio], env: { ...process.env, ...env(), ...ctx.env } });
}

/** A supervisor with everything it does recorded, for assertions. */
export class Recorded {
  readonly supervisor: Supervisor;
  readonly lines: LogLine[];
  readonly readies: WorkerHandle[] = [];
  readonly retires: WorkerHandle[] = [];
  readonly exits: { worker: WorkerHandle; info: ExitInfo }[] = [];
  readonly events: FixtureEvent[] = [];
  /** Every supervisor event in order: 'ready:PID', 'retire:PID', 'exit:PID'. */
  readonly order: string[] = [];

  constructor(opts: Omit<SupervisorOptions, 'logger'>) {
    const { logger, lines } = captureLogger();
    this.lines = lines;
    this.supervisor = new Supervisor({ ...opts, logger });
    this.supervisor.on('ready', (w) => {
      this.readies.push(w);
      this.order.push(`ready:${w.pid}`);
    });
    this.supervisor.on('retire', (w) => {
      this.retires.push(w);
      this.order.push(`retire:${w.pid}`);
    });
    this.supervisor.on('exit', (worker, info) => {
      this.exits.push({ worker, info });
      this.order.push(`exit:${worker.pid}`);
    });
    this.supervisor.on('message', (_w, m) => {
      if ((m as FixtureEvent).fixture === 'event') this.events.push(m as FixtureEvent);
    });
  }

  logs(msg: string): LogLine[] {
    return this.lines.filter((l) => l.msg === msg);
  }

  waitLog(msg: string, pred: (l: LogLine) => boolean = () => true, timeoutMs?: number): Promise<LogLine> {
    return waitUntil(() => this.lines.find((l) => l.msg === msg && pred(l)), `log '${msg}'`, timeoutMs);
  }

  waitEvent(event: string, pid?: number, timeoutMs?: number): Promise<FixtureEvent> {
    return waitUntil(
      () => this.events.find((e) => e.event === event && (pid === undefined || e.pid === pid)),
      `fixture event '${event}'${pid ? ` from ${pid}` : ''}`,
      timeoutMs,
    );
  }

  waitExit(pid: number, timeoutMs?: number): Promise<ExitInfo> {
    return waitUntil(() => this.exits.find((e) => e.worker.pid === pid)?.info, `exit of ${pid}`, timeoutMs);
  }

  pids(): number[] {
    return this.supervisor.readyWorkers().map((w) => w.pid!);
  }

  /** Tells the fixture worker `pid` to do something ({ fixture: 'hang' }, ...). */
  tell(pid: number, message: object): void {
    const w = this.supervisor.workers().find((x) => x.pid === pid);
    if (!w) throw new Error(`no live worker ${pid}`);
    w.send(message).catch(() => undefined);
  }
}
