// Open-file limit: a gateway process holds one descriptor per client, so the daemon raises its
// soft limit to the hard one before it starts its children (they inherit it). Node has no
// setrlimit; util-linux's prlimit does it for our pid where it is installed.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export interface FdLimit {
  soft: number | undefined;
  hard: number | undefined;
}

export function readFdLimit(): FdLimit {
  try {
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    const n = (v: string | undefined) => (v === undefined || v === 'unlimited' ? undefined : Number(v));
    return { soft: n(m?.[1]), hard: n(m?.[2]) };
  } catch {
    return { soft: undefined, hard: undefined };
  }
}

/** Raises the soft limit to the hard one where possible; returns the limit in force afterwards. */
export function raiseFdLimit(): FdLimit & { raised: boolean } {
  const before = readFdLimit();
  if (before.soft === undefined || before.hard === undefined || before.soft >= before.hard) {
    return { ...before, raised: false };
  }
  const r = spawnSync('prlimit', ['--pid', String(process.pid), `--nofile=${before.hard}:${before.hard}`], {
    stdio: 'ignore',
    timeout: 5000,
  });
  const after = readFdLimit();
  return { ...after, raised: r.status === 0 && after.soft !== before.soft };
}
