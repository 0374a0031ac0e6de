// The facts a benchmark figure depends on: machine, system limits, software versions.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem } from 'node:os';
import { ROOT } from './processes.js';
import { SERVER_NODE_VERSION } from './server-node.js';

export interface Machine {
  date: string;
  cpu: string;
  /** Cores this process may use. */
  cores: number;
  /** bytes */
  memory: number;
  kernel: string;
  /** The runner's and the load tool's node. */
  node: string;
  /** The servers' node (`--node PATH`); the same as `node` by default. */
  serverNode?: string;
  /** 1-minute load average when the run started: how quiet the machine was. */
  load1: number;
  /** Hard open-file limit the children run with (ulimit -Hn). */
  openFiles: string;
  /** Commit of the code measured, with `+dirty` when the tree has changes. */
  commit: string;
  /**
   * RSA-2048 signatures per second on one core (`openssl speed`), when the run started and when it
   * ended: how fast the machine was, so that runs on a slowed-down (shared) host can be told apart.
   */
  rsaSignsPerSecond?: { start?: number; end?: number };
}

export function describeMachine(): Machine {
  return {
    date: new Date().toISOString(),
    cpu: cpus()[0]?.model.trim() ?? 'unknown',
    cores: availableParallelism(),
    memory: totalmem(),
    kernel: release(),
    node: process.version,
    serverNode: SERVER_NODE_VERSION,
    load1: Math.round(loadavg()[0]! * 100) / 100,
    openFiles: hardOpenFiles(),
    commit: commit(),
    rsaSignsPerSecond: { start: rsaSignsPerSecond() },
  };
}

/** One core's RSA-2048 signatures per second over 1 s (`openssl speed`); undefined without openssl. */
export function rsaSignsPerSecond(): number | undefined {
  try {
    const out = execFileSync('openssl', ['speed', '-seconds', '1', 'rsa2048'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 30_000,
    });
    const m = /^rsa 2048 bits\s+\S+\s+\S+\s+([\d.]+)/m.exec(out);
    return m ? Math.round(Number(m[1])) : undefined;
  } catch {
    return undefined;
  }
}

function hardOpenFiles(): string {
  try {
    const m = /^Max open files\s+\S+\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    return m?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function commit(): string {
  const git = (...args: string[]) => execFileSync('git', args, { cwd: ROOT, encoding: 'utf8' }).trim();
  try {
    const head = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') === '' ? head : `${head}+dirty`;
  } catch {
    return 'unknown';
  }
}
