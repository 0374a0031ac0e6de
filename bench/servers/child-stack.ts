// What a benchmark "server" made of several programs needs (proxy-stack.ts, tls-stack.ts): its
// children, which die with it, a temp dir removed on stop, and the waits for a child to listen.
// Any child that exits, or fails to run, stops the whole stack with exit 1.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const ROOT = resolve(import.meta.dirname, '../..');

export class ChildStack {
  readonly children: ChildProcess[] = [];
  /** Removed on stop. */
  readonly tmp: string;

  /** `name` prefixes error lines and the temp dir; SIGTERM and SIGINT stop the stack with exit 0. */
  constructor(private readonly name: string) {
    this.tmp = mkdtempSync(join(tmpdir(), `tcpdaemon-bench-${name}-`));
    for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void this.shutdown());
  }

  private stopping = false;

  /** SIGTERM to the children first, so that a tcpdaemon among them removes its private dirs (a
   *  copy of the TLS keys); up to 3 s for them to exit, inside the runner's 5 s grace. */
  private async shutdown(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const live = this.children.filter((c) => c.exitCode === null && c.signalCode === null);
    const exited = live.map((c) => new Promise((res) => c.once('exit', res)));
    for (const c of live) c.kill('SIGTERM');
    await Promise.race([Promise.all(exited), new Promise((res) => setTimeout(res, 3000))]);
    this.stop(0);
  }

  stop(code: number): never {
    for (const c of this.children) c.kill('SIGKILL');
    rmSync(this.tmp, { recursive: true, force: true });
    process.exit(code);
  }

  fail(why: string): never {
    process.stderr.write(`${this.name}: ${why}\n`);
    return this.stop(1);
  }

  /** Starts `argv` in the repository root; `onLine` gets each line of its stdout. */
  run(argv: string[], onLine?: (line: string) => void): ChildProcess {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    this.children.push(child);
    child.once('error', (err: NodeJS.ErrnoException) =>
      this.fail(`cannot run ${argv[0]}: ${err.code ?? err.message}`),
    );
    child.once('exit', (code, sig) => {
      if (!this.stopping) this.fail(`${argv[0]} exited (${sig ?? code})`);
    });
    let buf = '';
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      buf += d;
      for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
        onLine?.(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    return child;
  }

  /** Starts `argv` and resolves with the port of its `listening` log line. */
  started(argv: string[]): Promise<number> {
    return new Promise((res) => {
      this.run(argv, (line) => {
        const port = listeningPort(line);
        if (port) res(port);
      });
    });
  }

  /** Resolves once something accepts on `port` (for programs that print no `listening` line). */
  async untilAccepting(port: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const ok = await new Promise<boolean>((res) => {
        const s = connect(port, '127.0.0.1');
        s.once('connect', () => res(true)).once('error', () => res(false));
        s.once('connect', () => s.destroy());
      });
      if (ok) return;
      await new Promise((r) => setTimeout(r, 50));
    }
    this.fail(`nothing accepts on port ${port}`);
  }
}

/** A port free right now: for programs that cannot listen on port 0 and report it. */
export function freePort(): Promise<number> {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** The port of a `{"msg":"listening","address":"HOST:PORT"}` line; undefined for any other line. */
export function listeningPort(line: string): number | undefined {
  try {
    const l = JSON.parse(line) as { msg?: string; address?: string };
    if (l.msg === 'listening' && l.address) return Number(/:(\d+)$/.exec(l.address)?.[1]);
  } catch {
    // not a log line
  }
  return undefined;
}
