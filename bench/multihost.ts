// Multi-host figures (issue 20), on simulated hosts 5 ms apart (test/helpers/netns.ts; needs root):
//   npm run build && node --import tsx bench/multihost.ts [--rounds N] [--seconds S]
// A 3-node NATS cluster (one node per host), test/fixtures/fleet-service.mjs announced on hosts 1
// and 2 (TTL 2 s), callers on host 3 (test/fixtures/caller.mjs, 4 loops). Per path (MessageClient
// by service name, proxy --discover, agent --upstream SERVICE):
//   - announce → first reply from the new host (host 2 announced while host 3 calls host 1);
//   - kill -9 of host 1 → the balancer drops it (its log line) and → host 1's last reply;
// and the agent's round trip against a direct MessageClient connection to the same server.
// One JSON object on stdout; the markdown for BENCHMARKS.md on stderr.
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { BIN, DaemonProcess, FIXTURES, type LogLine, ROOT } from '../test/helpers/daemon.js';
import { NatsCluster } from '../test/helpers/nats-cluster.js';
import { type Host, Network, netnsUnavailable } from '../test/helpers/netns.js';

const { values } = parseArgs({
  options: { rounds: { type: 'string', default: '3' }, seconds: { type: 'string', default: '5' } },
});
const rounds = Number(values.rounds);
const seconds = Number(values.seconds);
if (!(Number.isInteger(rounds) && rounds >= 1 && rounds <= 10) || !(seconds > 0 && seconds <= 30)) {
  process.stderr.write('bench/multihost.ts: --rounds 1..10, --seconds in (0, 30]\n');
  process.exit(1);
}
const why = netnsUnavailable();
if (why !== undefined) {
  process.stderr.write(`bench/multihost.ts: ${why}\n`);
  process.exit(1);
}

const DELAY_MS = 5;
const TTL_S = '2';
const LOOPS = 4;
const SERVICE_HANDLER = `${FIXTURES}/fleet-service.mjs`;

const net = await Network.create(3, { delayMs: DELAY_MS });
const nats = await NatsCluster.start(net.hosts);
const h = (i: number) => net.host(i);
const urls = (host: Host) => nats.urlsFrom(host).join(',');

/** A log line's time (pino's ISO or epoch-ms `time`, or a caller's `at`), ms since the epoch. */
const timeOf = (l: LogLine) =>
  typeof l.at === 'number' ? l.at : typeof l.time === 'number' ? l.time : Date.parse(String(l.time));

async function server(host: Host, service: string): Promise<{ daemon: DaemonProcess; announcedAt: number }> {
  const { daemon, announced } = await nats.announcing(host, service, SERVICE_HANDLER, TTL_S);
  return { daemon, announcedAt: timeOf(announced) };
}

function caller(target: string, msgid = 1): DaemonProcess {
  return new DaemonProcess(['test/fixtures/caller.mjs', target, urls(h(3)), String(LOOPS), String(msgid)], {
    command: [...h(3).exec, process.execPath],
    cwd: ROOT,
  });
}

interface Path {
  name: string;
  target: string;
  balancer?: DaemonProcess;
  removed: (l: LogLine) => boolean;
  stop(): Promise<void>;
}

async function openPath(name: string, service: string): Promise<Path> {
  const dead = h(1).ip;
  if (name === 'client')
    return {
      name,
      target: `service:${service}`,
      removed: (l) => l.msg === 'host removed' && String(l.host).startsWith(`${dead}:`),
      stop: async () => undefined,
    };
  if (name === 'proxy') {
    const proxy = new DaemonProcess(
      ['proxy', '-l', `${h(3).ip}:0`, '--discover', service, '--discovery', urls(h(3))],
      {
        command: [...h(3).exec, BIN],
      },
    );
    const line = await proxy.waitForMsg('listening', 30_000);
    return {
      name,
      target: `tcp:${String(line.address)}`,
      balancer: proxy,
      removed: (l) =>
        l.msg === 'backend removed by route table: no new connections, open ones finish' &&
        String(l.backend).startsWith(`${dead}:`),
      stop: () => proxy.kill(),
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'td-bench-agent-'));
  const sock = join(dir, 'agent.sock');
  const agent = new DaemonProcess(
    ['agent', '-l', `unix:${sock}`, '--upstream', service, '--discovery', urls(h(3))],
    {
      command: [...h(3).exec, BIN],
    },
  );
  await agent.waitForMsg('listening', 30_000);
  return {
    name,
    target: `unix:${sock}`,
    balancer: agent,
    removed: (l) =>
      l.msg === 'upstream hosts from the route table' &&
      (l.upstreams as string[]).length > 0 &&
      !(l.upstreams as string[]).some((u) => u.startsWith(`${dead}:`)),
    stop: async () => {
      await agent.kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

interface Shift {
  path: string;
  announceToFirstMs: number;
  killToRemovedMs: number;
  killToLastReplyMs: number;
  failedCalls: number;
}

async function shift(pathName: string, round: number): Promise<Shift> {
  const service = `bench-${pathName}-${round}`;
  const a = await server(h(1), service);
  const path = await openPath(pathName, service);
  const c = caller(path.target);
  try {
    const first = await c.waitForMsg('first reply', 30_000);
    const aPid = Number(first.pid);
    const b = await server(h(2), service);
    try {
      const firstB = await c.waitForLog((l) => l.msg === 'first reply' && Number(l.pid) !== aPid, 30_000);
      const killedAt = Date.now();
      net.killAll(
        1,
        nats.nodes.map((n) => n.child.pid!),
      );
      const removed = await (path.balancer ?? c).waitForLog(path.removed, 30_000);
      c.signal('SIGTERM');
      const summary = await c.waitForMsg('summary', 30_000);
      const lastA = (summary.lastAt as Record<string, number>)[String(aPid)] ?? killedAt;
      return {
        path: pathName,
        announceToFirstMs: timeOf(firstB) - b.announcedAt,
        killToRemovedMs: timeOf(removed) - killedAt,
        killToLastReplyMs: Math.max(0, lastA - killedAt),
        failedCalls: Object.values(summary.errors as Record<string, number>).reduce((x, y) => x + y, 0),
      };
    } finally {
      await b.daemon.kill();
    }
  } finally {
    await Promise.all([a.daemon.kill(), c.kill()]);
    await path.stop();
  }
}

interface Overhead {
  path: 'direct' | 'agent';
  callsPerSec: number;
  p50Ms: number;
  p99Ms: number;
}

async function overhead(round: number): Promise<Overhead[]> {
  const service = `bench-overhead-${round}`;
  const a = await server(h(1), service);
  const agentPath = await openPath('agent', service);
  const address = String((await a.daemon.waitForMsg('listening')).address);
  const out: Overhead[] = [];
  try {
    // Alternating, so the machine's drift falls on both.
    for (const [name, target] of round % 2 === 0
      ? ([
          ['direct', `conn:${address}`],
          ['agent', agentPath.target],
        ] as const)
      : ([
          ['agent', agentPath.target],
          ['direct', `conn:${address}`],
        ] as const)) {
      const c = caller(target);
      try {
        await c.waitForMsg('first reply', 30_000);
        c.signal('SIGUSR2');
        await c.waitForMsg('marked');
        await new Promise((r) => setTimeout(r, seconds * 1000));
        c.signal('SIGTERM');
        const s = await c.waitForMsg('summary', 30_000);
        const after = Object.values((s.afterMark ?? {}) as Record<string, number>).reduce((x, y) => x + y, 0);
        out.push({
          path: name,
          callsPerSec: Math.round((after * 1000) / (Number(s.stoppedAt) - Number(s.markedAt))),
          p50Ms: Number(s.p50Ms),
          p99Ms: Number(s.p99Ms),
        });
      } finally {
        await c.kill();
      }
    }
  } finally {
    await a.daemon.kill();
    await agentPath.stop();
  }
  return out;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((x, y) => x - y);
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

const load = loadavg()[0];
const shifts: Shift[] = [];
const overheads: Overhead[][] = [];
try {
  for (let r = 0; r < rounds; r++) {
    for (const p of r % 2 === 0 ? ['client', 'proxy', 'agent'] : ['agent', 'proxy', 'client'])
      shifts.push(await shift(p, r));
    overheads.push(await overhead(r));
  }
} finally {
  await nats.stop();
  net.destroy();
}

const result = {
  machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model, node: process.version, loadBefore: load },
  delayMs: DELAY_MS,
  ttlS: Number(TTL_S),
  loops: LOOPS,
  rounds,
  shifts,
  overheads,
};
process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);

const lines = [
  `| path | announce → first reply from the new host, ms | kill -9 → dropped by the balancer, ms | kill -9 → last reply from the dead host, ms | failed calls |`,
  '| --- | --- | --- | --- | --- |',
];
for (const p of ['client', 'proxy', 'agent']) {
  const mine = shifts.filter((s) => s.path === p);
  lines.push(
    `| ${p} | ${median(mine.map((s) => s.announceToFirstMs)).toFixed(0)} | ${median(mine.map((s) => s.killToRemovedMs)).toFixed(0)} | ${median(mine.map((s) => s.killToLastReplyMs)).toFixed(0)} | ${mine.map((s) => s.failedCalls).join(', ')} |`,
  );
}
lines.push(
  '',
  '| path | calls/s (4 in flight) | p50 ms | p99 ms | agent ÷ direct |',
  '| --- | --- | --- | --- | --- |',
);
const ratio = median(
  overheads.map(
    (o) => o.find((x) => x.path === 'agent')!.callsPerSec / o.find((x) => x.path === 'direct')!.callsPerSec,
  ),
);
for (const p of ['direct', 'agent'] as const) {
  const mine = overheads.map((o) => o.find((x) => x.path === p)!);
  lines.push(
    `| ${p} | ${median(mine.map((o) => o.callsPerSec)).toFixed(0)} | ${median(mine.map((o) => o.p50Ms)).toFixed(2)} | ${median(mine.map((o) => o.p99Ms)).toFixed(2)} | ${p === 'agent' ? ratio.toFixed(2) : ''} |`,
  );
}
process.stderr.write(`${lines.join('\n')}\n`);
