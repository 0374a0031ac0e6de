// Every process a test file starts inherits TEST_MARK through its environment, so a scan of
// /proc finds them even after they were re-parented to init (a daemon's orphaned workers).
import { randomUUID } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { afterEach } from 'node:test';

const MARK_NAME = 'TCPDAEMON_TEST_MARK';
const mark = `${MARK_NAME}=${process.pid}-${randomUUID()}`;
process.env[MARK_NAME] = mark.slice(MARK_NAME.length + 1);

interface Leftover {
  pid: number;
  cmdline: string;
  zombie: boolean;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return fallback;
  }
}

/**
 * esbuild's service run by this very process: tsx starts one (Node >= 22) the first time a lazily
 * imported .ts file is not in its cache, so after the mark. It is the loader's, not the test's, and
 * ends with this process (it pings its parent).
 */
function isOwnEsbuildService(ppid: number, cmdline: string): boolean {
  return ppid === process.pid && /\besbuild --service=/.test(cmdline);
}

/** Live processes carrying this file's mark, plus zombies whose parent carries it. */
export function findLeftovers(): Leftover[] {
  const marked = new Set<number>();
  const stats: { pid: number; ppid: number; state: string }[] = [];
  for (const name of readdirSync('/proc')) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    const environ = readOr(`/proc/${pid}/environ`, '');
    if (environ.split('\0').includes(mark)) marked.add(pid);
    const stat = readOr(`/proc/${pid}/stat`, '');
    const m = /\) (\S) (\d+)/.exec(stat);
    if (m) stats.push({ pid, state: m[1]!, ppid: Number(m[2]) });
  }
  const ppids = new Map(stats.map((s) => [s.pid, s.ppid]));
  const out: Leftover[] = [];
  for (const pid of marked) {
    const cmdline = readOr(`/proc/${pid}/cmdline`, '').replaceAll('\0', ' ').trim();
    if (!isOwnEsbuildService(ppids.get(pid) ?? 0, cmdline)) out.push({ pid, cmdline, zombie: false });
  }
  for (const s of stats) {
    if (s.state === 'Z' && marked.has(s.ppid)) out.push({ pid: s.pid, cmdline: '<zombie>', zombie: true });
  }
  return out;
}

/** Waits up to `graceMs` for marked processes to go; kills and reports what is left. */
export async function assertNoLeftoverProcesses(graceMs = 5000): Promise<void> {
  const deadline = Date.now() + graceMs;
  let left = findLeftovers();
  while (left.length > 0 && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
    left = findLeftovers();
  }
  if (left.length === 0) return;
  for (const p of left) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  throw new Error(`test left processes behind: ${left.map((p) => `${p.pid} ${p.cmdline}`).join('; ')}`);
}

/** Fails whichever test leaves a process behind. Call once at the top of a test file. */
export function checkNoLeftoverProcesses(): void {
  afterEach(() => assertNoLeftoverProcesses());
}
