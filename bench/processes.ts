// Child processes of the benchmark runner: servers (started, read back, measured,
// stopped) and load-tool runs. Every child runs in its own process group with its
// open-file limit raised to the hard limit, and is killed if the runner is interrupted.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { serverEnv } from './server-node.js';

export const ROOT = resolve(import.meta.dirname, '..');

const live = new Set<ChildProcess>();
for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => void stopLive().then(() => process.exit(130)));
}

/** How long an interrupted runner's children get after SIGTERM before their groups are SIGKILLed. */
const INTERRUPT_GRACE_MS = 3000;

/**
 * Interrupted: SIGTERM to every child, so a stack stops its own children and a tcpdaemon removes
 * its private dirs (a copy of the TLS keys); then SIGKILL to their groups, whatever is left.
 */
async function stopLive(): Promise<void> {
  const children = [...live];
  const exits = children.map((c) => new Promise((res) => c.once('exit', res)));
  for (const child of children) child.kill('SIGTERM');
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(exits),
    new Promise((res) => (timer = setTimeout(res, INTERRUPT_GRACE_MS))),
  ]);
  clearTimeout(timer);
  for (const child of children) killGroup(child, 'SIGKILL');
}

/** Spawns argv in ROOT after `ulimit -n <hard limit>`, in a new process group. */
function spawnRaised(argv: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const raise = 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@"';
  const child = spawn('/bin/sh', ['-c', raise, 'sh', ...argv], {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  live.add(child);
  child.once('exit', () => live.delete(child));
  return child;
}

function killGroup(child: ChildProcess, sig: NodeJS.Signals): void {
  try {
    process.kill(-child.pid!, sig);
  } catch {
    // already gone
  }
}

/** Calls `onLine` for each line the stream gives. */
function eachLine(stream: NodeJS.ReadableStream, onLine: (line: string) => void): void {
  let buf = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    buf += d;
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      onLine(buf.slice(0, i));
      buf = buf.slice(i + 1);
    }
  });
}

export interface RunningServer {
  pid: number;
  host: string;
  port: number;
  /** Connections each worker process served, from its `worker exited` line (after stop()). */
  workerCounts(): number[];
  /** SIGTERM, then SIGKILL to the whole group after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/** Starts a server and waits (up to `timeoutMs`) for its `listening` line. */
export function startServer(command: string[], timeoutMs = 30_000): Promise<RunningServer> {
  // On the node chosen with --node (server-node.ts); the load tool stays on the runner's.
  const child = spawnRaised(command, serverEnv());
  const exited = new Promise<void>((res) => child.once('exit', () => res()));
  const counts: number[] = [];
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    stderr = (stderr + d).slice(-2000);
  });
  const stop = async (graceMs = 5000) => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const timer = setTimeout(() => killGroup(child, 'SIGKILL'), graceMs);
    await exited;
    clearTimeout(timer);
    killGroup(child, 'SIGKILL'); // cluster workers or helpers left behind
  };
  return new Promise((resolvePromise, reject) => {
    let settled = false;
    const fail = (why: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      stop(0).then(() => reject(new Error(`${command.join(' ')}: ${why}\n${stderr}`)));
    };
    const timer = setTimeout(() => fail(`no listening line within ${timeoutMs} ms`), timeoutMs);
    const early = (code: number | null, sig: NodeJS.Signals | null) =>
      fail(`exited (${sig ?? code}) before listening`);
    child.once('exit', early);
    eachLine(child.stdout!, (line) => {
      let log: { msg?: unknown; address?: unknown; served?: unknown };
      try {
        log = JSON.parse(line);
      } catch {
        return;
      }
      if (log.msg === 'worker exited' && typeof log.served === 'number') counts.push(log.served);
      if (log.msg !== 'listening' || typeof log.address !== 'string') return;
      const m = /^\[?(.*?)\]?:(\d+)$/.exec(log.address);
      if (!m) return fail(`unreadable address ${log.address}`);
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.off('exit', early);
      resolvePromise({ pid: child.pid!, host: m[1]!, port: Number(m[2]), stop, workerCounts: () => counts });
    });
  });
}

/** Pids of `pid` and its descendants, leaving out tsx's esbuild transform service (a helper of the TypeScript loader, not of the server). */
function serverTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    const p = Number(name);
    if (!Number.isInteger(p)) continue;
    const m = /\) \S (\d+)/.exec(readOr(`/proc/${p}/stat`));
    if (!m) continue;
    const ppid = Number(m[1]);
    children.set(ppid, [...(children.get(ppid) ?? []), p]);
  }
  const tree: number[] = [];
  const todo = [pid];
  while (todo.length > 0) {
    const p = todo.pop()!;
    todo.push(...(children.get(p) ?? []));
    if (!/^Name:\s+esbuild$/m.test(readOr(`/proc/${p}/status`))) tree.push(p);
  }
  return tree;
}

/** Resident memory in bytes (VmRSS) of the server `pid` and its worker processes. */
export function treeRss(pid: number): number {
  let total = 0;
  for (const p of serverTree(pid)) {
    const rss = /^VmRSS:\s+(\d+) kB/m.exec(readOr(`/proc/${p}/status`));
    if (rss) total += Number(rss[1]) * 1024;
  }
  return total;
}

const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** Pins every thread of the server `pid` and its worker processes to `cpus` (taskset's list, e.g. '1'); children forked later inherit it. */
export function pinTree(pid: number, cpus: string): void {
  for (const p of serverTree(pid)) {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(p)], { stdio: 'ignore' });
    const allowed = /^Cpus_allowed_list:\s+(\S+)$/m.exec(readOr(`/proc/${p}/status`))?.[1];
    if (allowed !== undefined && allowed !== cpus)
      throw new Error(`pid ${p}: CPUs ${allowed} after taskset -c ${cpus}`);
  }
}

/** CPU seconds (user + system) the server `pid` and its worker processes have used so far. */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  for (const p of serverTree(pid)) {
    // Fields after the command: state ppid ... utime (14th field) stime (15th).
    const fields = readOr(`/proc/${p}/stat`).split(') ')[1]?.split(' ') ?? [];
    ticks += Number(fields[11] ?? 0) + Number(fields[12] ?? 0);
  }
  return ticks / CLOCK_TICKS;
}

function readOr(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return '';
  }
}

export interface ToolRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the load tool to completion (killed after `timeoutMs`). `onStderrLine` sees each
 * line of its stderr as it comes (hold mode's `holding ...`).
 */
export function runTool(
  argv: string[],
  timeoutMs: number,
  onStderrLine: (line: string) => void = () => undefined,
): Promise<ToolRun> {
  const child = spawnRaised(argv);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  eachLine(child.stderr!, (line) => {
    stderr += `${line}\n`;
    onStderrLine(line);
  });
  const timer = setTimeout(() => killGroup(child, 'SIGKILL'), timeoutMs);
  return new Promise((res) => {
    child.once('close', (code) => {
      clearTimeout(timer);
      res({ code, stdout, stderr });
    });
  });
}
