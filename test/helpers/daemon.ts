import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { connect, readBytes, untilClosed } from './net.js';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = resolve(ROOT, 'bin/tcpdaemon');
export const EXAMPLES = resolve(ROOT, 'examples');
export const FIXTURES = resolve(ROOT, 'test/fixtures');

export type LogLine = Record<string, unknown> & { msg?: string; level?: string };

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface SpawnOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Program and leading arguments to run instead of `bin/tcpdaemon` (e.g. a subcommand's entry). */
  command?: string[];
}

/** A spawned `bin/tcpdaemon` with its output collected line by line. */
export class DaemonProcess {
  readonly child: ChildProcess;
  readonly logs: LogLine[] = [];
  readonly stdoutLines: string[] = [];
  stderr = '';
  readonly exited: Promise<ExitResult>;
  /** Resolves once stdout and stderr have been read to their end. */
  readonly drained: Promise<void>;
  private waiters: { pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }[] = [];

  constructor(args: string[], opts: SpawnOptions = {}) {
    const [file, ...lead] = opts.command ?? [BIN];
    this.child = spawn(file!, [...lead, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.exited = new Promise((res) => {
      this.child.on('exit', (code, signal) => res({ code, signal }));
    });
    this.drained = Promise.all([once(this.child.stdout!, 'close'), once(this.child.stderr!, 'close')]).then(
      () => undefined,
    );
    let buf = '';
    this.child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      let i = buf.indexOf('\n');
      while (i >= 0) {
        this.onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
        i = buf.indexOf('\n');
      }
    });
    this.child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      this.stderr += d;
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  private onLine(line: string): void {
    this.stdoutLines.push(line);
    let parsed: LogLine;
    try {
      parsed = JSON.parse(line) as LogLine;
    } catch {
      return;
    }
    this.logs.push(parsed);
    this.waiters = this.waiters.filter((w) => {
      if (!w.pred(parsed)) return true;
      w.resolve(parsed);
      return false;
    });
  }

  /** Resolves with the first log line (past or future) matching `pred`. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 15000): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((res, rej) => {
      const timer = setTimeout(() => {
        rej(
          new Error(
            `no matching log line within ${timeoutMs} ms; stdout:\n${this.stdoutLines.join('\n')}\nstderr:\n${this.stderr}`,
          ),
        );
      }, timeoutMs);
      const done = (l: LogLine) => {
        clearTimeout(timer);
        res(l);
      };
      this.waiters.push({ pred, resolve: done });
      this.exited.then(() => {
        setTimeout(() => {
          clearTimeout(timer);
          rej(
            new Error(
              `daemon exited before the log line came; stdout:\n${this.stdoutLines.join('\n')}\nstderr:\n${this.stderr}`,
            ),
          );
        }, 50);
      });
    });
  }

  waitForMsg(msg: string, timeoutMs?: number): Promise<LogLine> {
    return this.waitForLog((l) => l.msg === msg, timeoutMs);
  }

  async waitForExit(timeoutMs = 20000): Promise<ExitResult> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rej) => {
      timer = setTimeout(() => rej(new Error(`daemon did not exit within ${timeoutMs} ms`)), timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  signal(sig: NodeJS.Signals): void {
    this.child.kill(sig);
  }

  /** SIGKILL if still running; resolves when it has exited and its private dirs are gone. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    await this.exited;
    if (this.child.pid !== undefined) removePrivateDirsOf(this.child.pid);
  }
}

export interface Listening {
  daemon: DaemonProcess;
  port: number;
  host: string;
}

/** Starts `bin/tcpdaemon args` and waits for its `listening` log line. */
export async function startDaemon(
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<Listening> {
  const daemon = new DaemonProcess(args, opts);
  try {
    const line = await daemon.waitForMsg('listening', opts.timeoutMs ?? 20000);
    const address = String(line.address);
    const m = /^\[?(.*?)\]?:(\d+)$/.exec(address);
    return { daemon, host: m ? m[1]! : address, port: m ? Number(m[2]) : 0 };
  } catch (err) {
    await daemon.kill();
    throw err;
  }
}

/** Runs `bin/tcpdaemon args` to completion. */
export async function runCli(
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<ExitResult & { stdout: string; stderr: string }> {
  const daemon = new DaemonProcess(args, opts);
  try {
    const res = await daemon.waitForExit(opts.timeoutMs ?? 20000);
    await daemon.drained;
    return { ...res, stdout: daemon.stdoutLines.join('\n'), stderr: daemon.stderr };
  } finally {
    await daemon.kill();
  }
}

/** Runs `body` against a started daemon and always kills it afterwards. */
export async function withDaemon<T>(
  args: string[],
  body: (d: Listening) => Promise<T>,
  opts: SpawnOptions & { timeoutMs?: number } = {},
): Promise<T> {
  const started = await startDaemon(args, opts);
  try {
    return await body(started);
  } finally {
    await started.daemon.kill();
  }
}

/**
 * With a daemon serving test/fixtures/drain.mjs: a connection in flight when SIGTERM comes gets
 * its handler's last words ("finished", no reset) and the daemon exits 0.
 */
export async function assertSigtermDrains(daemon: DaemonProcess, port: number): Promise<void> {
  const s = await connect(port);
  assert.equal((await readBytes(s, 8)).toString(), 'started\n');
  const closed = untilClosed(s);
  daemon.signal('SIGTERM');
  const { data, error } = await closed;
  assert.equal(data, 'finished\n');
  assert.equal(error, undefined);
  assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
}

/** `-m MODEL -c N -l 127.0.0.1:0 -s HANDLER ...extra`: the arguments of a worker-model daemon. */
export function modelArgs(model: string, workers: number, handler: string, ...extra: string[]): string[] {
  return ['-m', model, '-c', String(workers), '-l', '127.0.0.1:0', '-s', handler, ...extra];
}

/** Pids of the workers that have said ready so far, in order. */
export function readyPids(daemon: DaemonProcess): number[] {
  return daemon.logs.filter((l) => l.msg === 'worker ready').map((l) => l.workerPid as number);
}

/** SIGTERM, then the daemon must exit 0 by itself. */
export async function stopCleanly(daemon: DaemonProcess): Promise<void> {
  daemon.signal('SIGTERM');
  assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null }, 'a clean stop');
}

/** A killed daemon's private dirs (src/private-dir.ts: `tcpdaemon-KIND-PID-XXXXXX`, the TLS
 *  snapshot among them): the next daemon would sweep them, but the suite's last one has no next. */
function removePrivateDirsOf(pid: number): void {
  const own = new RegExp(`^tcpdaemon-[a-z]+-${pid}-`);
  for (const name of readdirSync(tmpdir())) {
    if (own.test(name)) rmSync(join(tmpdir(), name), { recursive: true, force: true });
  }
}
