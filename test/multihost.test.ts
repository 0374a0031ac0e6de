// Several hosts (Linux network namespaces, 5 ms apart, test/helpers/netns.ts), a 3-node NATS
// cluster with JetStream (one node per host, the route table replicated 3 times), servers
// announcing on hosts 1 and 2, readers on host 3. Faults: a server host's processes killed, a NATS
// node killed, a host partitioned and healed. Traffic only between the namespaces' own addresses.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { BIN, DaemonProcess, EXAMPLES, FIXTURES, type LogLine, ROOT, stopCleanly } from './helpers/daemon.js';
import { assertNoLeftoverProcesses } from './helpers/leftovers.js';
import { NatsCluster } from './helpers/nats-cluster.js';
import { type Host, Network, netnsUnavailable } from './helpers/netns.js';
import { tempDir } from './helpers/temp-dir.js';

const skip = netnsUnavailable();
const ECHO = `${EXAMPLES}/echo.js`;
const TTL_S = '2';
/** One-way delay between hosts (netem's role; this kernel has none: test/fixtures/delay-switch.c). */
const DELAY_MS = 5;
/** Concurrent call loops of the service caller: at most this many calls are in flight. */
const LOOPS = 4;

// Times a TCP connect to a closed port on another host: SYN out, reset back, one round trip.
const RTT_PROBE = `
const net = require('node:net');
const t = process.hrtime.bigint();
const s = net.connect(9, process.argv[1]);
s.on('error', () => {
  console.log(JSON.stringify({ msg: 'rtt', ms: Number(process.hrtime.bigint() - t) / 1e6 }));
});
`;

let net: Network;
let nats: NatsCluster;

/** A daemon serving echo on the host's own address, announcing `service`. */
/** A daemon serving `handler` (default echo) on the host's own address, announcing `service`. */
const server = (host: Host, service: string, handler = ECHO) =>
  nats.announcing(host, service, handler, TTL_S);

/** test/fixtures/route-watch.ts on `host`: its lines say which addresses the table holds. */
async function watcher(host: Host, service: string): Promise<DaemonProcess> {
  const w = new DaemonProcess(
    ['--import', 'tsx', 'test/fixtures/route-watch.ts', service, nats.urlsFrom(host).join(',')],
    { command: [...host.exec, process.execPath], cwd: ROOT },
  );
  await w.waitForMsg('routes', 30_000);
  return w;
}

/** The simulated host a process runs in. */
function namespaceOf(pid: number): string {
  return execFileSync('ip', ['netns', 'identify', String(pid)], { encoding: 'utf8' }).trim();
}

const routes = (addresses: string[]) => (l: LogLine) =>
  l.msg === 'routes' && JSON.stringify(l.addresses) === JSON.stringify([...addresses].sort());

/** The next 'routes' line that holds exactly `addresses`, seen after `from` lines. */
function nextRoutes(w: DaemonProcess, addresses: string[], timeoutMs: number, from = w.logs.length) {
  const want = routes(addresses);
  return w.waitForLog((l) => w.logs.indexOf(l) >= from && want(l), timeoutMs);
}

describe('multi-host: route table across hosts', { skip }, () => {
  before(async () => {
    net = await Network.create(3, { delayMs: DELAY_MS });
    nats = await NatsCluster.start(net.hosts);
  });
  after(async () => {
    await nats?.stop();
    net?.destroy();
    await assertNoLeftoverProcesses();
  });

  test('the links: a TCP round trip between two hosts takes at least twice the one-way delay', async () => {
    const probe = new DaemonProcess(['-e', RTT_PROBE, net.host(2).ip], {
      command: [...net.host(1).exec, process.execPath],
    });
    const line = await probe.waitForMsg('rtt', 15_000);
    assert.ok(Number(line.ms) >= 2 * DELAY_MS, `round trip ${line.ms} ms`);
    assert.equal((await probe.waitForExit()).code, 0);
  });

  test('servers on hosts 1 and 2 (2 % loss) are seen on host 3; kill -9 of host 1 servers: its route leaves within the TTL', async () => {
    net.setLoss(1, 2);
    net.setLoss(2, 2);
    const w = await watcher(net.host(3), 'mh-kill');
    // Created by whoever came first, over the cluster's three servers: no node's loss loses a route.
    assert.equal((await w.waitForMsg('bucket')).replicas, 3);
    const a = await server(net.host(1), 'mh-kill');
    const b = await server(net.host(2), 'mh-kill');
    try {
      assert.match(a.address, new RegExp(`^${net.host(1).ip.replaceAll('.', '\\.')}:\\d+$`));
      await nextRoutes(w, [a.address, b.address], 15_000, 0);
      const spare = nats.nodes.map((n) => n.child.pid!);
      const killedAt = Date.now();
      assert.ok(net.killAll(1, spare).length >= 1, 'the server was killed');
      await nextRoutes(w, [b.address], 15_000);
      // TTL 2 s, plus the reader's sweep: well inside 15 s (a generous bound, not a timing claim).
      assert.ok(Date.now() - killedAt < 15_000);
    } finally {
      net.setLoss(1, 0);
      net.setLoss(2, 0);
      await Promise.all([a.daemon.kill(), b.daemon.kill(), w.kill()]);
    }
  });

  /** Where host 3's calls go: the caller's target, the process balancing them, its log of host 1 leaving. */
  interface Via {
    target: string;
    /** undefined: the caller balances (MessageClient by service). */
    balancer?: DaemonProcess;
    removed: (l: LogLine) => boolean;
    stop(): Promise<void>;
  }

  /**
   * fleet-service.mjs announced as `service` on hosts 1 and 2, called from host 3 through `via`;
   * then kill -9 of host 1: calls go on to host 2 and at most the calls in flight fail.
   */
  async function failover(service: string, via: (service: string, dead: string) => Promise<Via>) {
    const a = await server(net.host(1), service, `${FIXTURES}/fleet-service.mjs`);
    const b = await server(net.host(2), service, `${FIXTURES}/fleet-service.mjs`);
    const path = await via(service, net.host(1).ip);
    const caller = new DaemonProcess(
      ['test/fixtures/caller.mjs', path.target, nats.urlsFrom(net.host(3)).join(','), String(LOOPS)],
      { command: [...net.host(3).exec, process.execPath], cwd: ROOT },
    );
    try {
      const pids = new Set<number>();
      await caller.waitForLog((l) => l.msg === 'first reply' && pids.add(Number(l.pid)).size === 2, 30_000);
      net.killAll(
        1,
        nats.nodes.map((n) => n.child.pid!),
      );
      // Once host 1's route has expired (TTL) where the calls are balanced, host 2 answers every one.
      await (path.balancer ?? caller).waitForLog(path.removed, 30_000);
      caller.signal('SIGUSR2');
      await caller.waitForMsg('marked', 15_000);
      const after = await caller.waitForMsg('reply after mark', 15_000);
      assert.equal(namespaceOf(Number(after.pid)), net.host(2).ns);
      caller.signal('SIGTERM');
      const summary = await caller.waitForMsg('summary', 15_000);
      const errors = Object.values(summary.errors as Record<string, number>).reduce((x, y) => x + y, 0);
      const replies = summary.replies as Record<string, number>;
      assert.ok(
        errors <= LOOPS,
        `at most the ${LOOPS} calls in flight fail; errors: ${JSON.stringify(summary.errors)}; the caller's log:\n${caller.logs
          .filter((l) => l.msg !== 'first reply')
          .map((l) => JSON.stringify(l))
          .join('\n')}`,
      );
      assert.equal(Object.keys(replies).length, 2, JSON.stringify(replies));
      assert.deepEqual(Object.keys(summary.afterMark as object), [String(after.pid)]);
      assert.equal((await caller.waitForExit()).code, 0);
    } finally {
      await Promise.all([a.daemon.kill(), b.daemon.kill(), caller.kill()]);
      await path.stop();
    }
  }

  test('MessageClient by service name on host 3: kill -9 of host 1 moves calls to host 2; at most those in flight fail', async () => {
    await failover('mh-client', async (service, dead) => ({
      target: `service:${service}`,
      removed: (l) => l.msg === 'host removed' && String(l.host).startsWith(`${dead}:`),
      stop: async () => undefined,
    }));
  });

  test('proxy --discover on host 3: kill -9 of host 1 moves connections to host 2; at most those in flight fail', async () => {
    await failover('mh-proxy', async (service, dead) => {
      const host = net.host(3);
      const proxy = new DaemonProcess(
        ['proxy', '-l', `${host.ip}:0`, '--discover', service, '--discovery', nats.urlsFrom(host).join(',')],
        { command: [...host.exec, BIN] },
      );
      const line = await proxy.waitForMsg('listening', 30_000);
      return {
        target: `tcp:${String(line.address)}`,
        balancer: proxy,
        removed: (l) =>
          l.msg === 'backend removed by route table: no new connections, open ones finish' &&
          String(l.backend).startsWith(`${dead}:`),
        stop: async () => {
          await stopCleanly(proxy);
        },
      };
    });
  });

  test('agent --upstream SERVICE on host 3: kill -9 of host 1 moves requests to host 2; at most those in flight fail', async () => {
    await failover('mh-agent', async (service, dead) => {
      const host = net.host(3);
      const dir = tempDir('td-mh-agent-');
      const sock = join(dir, 'agent.sock');
      const agent = new DaemonProcess(
        ['agent', '-l', `unix:${sock}`, '--upstream', service, '--discovery', nats.urlsFrom(host).join(',')],
        { command: [...host.exec, BIN] },
      );
      await agent.waitForMsg('listening', 30_000);
      return {
        target: `unix:${sock}`,
        balancer: agent,
        removed: (l) =>
          l.msg === 'upstream hosts from the route table' &&
          (l.upstreams as string[]).length > 0 &&
          !(l.upstreams as string[]).some((u) => u.startsWith(`${dead}:`)),
        stop: async () => {
          await stopCleanly(agent);
          rmSync(dir, { recursive: true, force: true });
        },
      };
    });
  });

  test('a NATS node killed (host 3’s, where the reader runs): the route table keeps following announces; it comes back', async () => {
    const w = await watcher(net.host(3), 'mh-nats');
    const a = await server(net.host(1), 'mh-nats');
    try {
      await nextRoutes(w, [a.address], 15_000, 0);
      await nats.kill(3);
      const mark = w.logs.length;
      const b = await server(net.host(2), 'mh-nats');
      try {
        await nextRoutes(w, [a.address, b.address], 30_000, mark);
        // And a withdraw still reaches it.
        b.daemon.signal('SIGTERM');
        await nextRoutes(w, [a.address], 30_000).catch((e: Error) => {
          throw new Error(`${e.message}\nserver b:\n${b.daemon.stdoutLines.join('\n')}${b.daemon.stderr}`);
        });
        assert.equal((await b.daemon.waitForExit()).code, 0);
      } finally {
        await b.daemon.kill();
      }
      // The node comes back and rejoins; the table still follows.
      await nats.restart(3);
      const before = w.logs.length;
      const c = await server(net.host(3), 'mh-nats');
      try {
        await nextRoutes(w, [a.address, c.address], 30_000, before);
      } finally {
        await c.daemon.kill();
      }
    } finally {
      await Promise.all([a.daemon.kill(), w.kill()]);
    }
  });

  test('gateway on host 3, business workers on hosts 1 and 2 over the NATS cluster: a NATS node killed, requests go on', async () => {
    const host3 = net.host(3);
    const gateway = new DaemonProcess(
      ['gateway', '-l', `${host3.ip}:0`, '--queue', nats.urlsFrom(host3).join(',')],
      { command: [...host3.exec, BIN] },
    );
    const workers = [1, 2].map(
      (i) =>
        new DaemonProcess(
          [
            'worker',
            '-s',
            `${FIXTURES}/gateway-business.ts`,
            '--queue',
            nats.urlsFrom(net.host(i)).join(','),
          ],
          {
            command: [...net.host(i).exec, BIN],
          },
        ),
    );
    let caller: DaemonProcess | undefined;
    const named = (): [string, DaemonProcess | undefined][] => [
      ['gateway', gateway],
      ['worker on host 1', workers[0]],
      ['worker on host 2', workers[1]],
      ['caller', caller],
    ];
    try {
      await explainedBy(named, async () => {
        const line = await gateway.waitForMsg('listening', 30_000);
        await Promise.all(workers.map((w) => w.waitForMsg('workers ready', 30_000)));
        caller = new DaemonProcess(
          ['test/fixtures/caller.mjs', `conn:${String(line.address)}`, '', String(LOOPS), '5'],
          { command: [...host3.exec, process.execPath], cwd: ROOT },
        );
        const pids = new Set<number>();
        await caller.waitForLog((l) => l.msg === 'first reply' && pids.add(Number(l.pid)).size === 2, 30_000);
        // Host 1's node: the host-1 worker's own; the other two keep quorum.
        await nats.kill(1);
        caller.signal('SIGUSR2');
        await caller.waitForMsg('marked', 15_000);
        await caller.waitForMsg('reply after mark', 30_000);
        caller.signal('SIGTERM');
        const summary = await caller.waitForMsg('summary', 30_000);
        const errors = Object.values(summary.errors as Record<string, number>).reduce((x, y) => x + y, 0);
        assert.ok(
          errors <= LOOPS,
          `at most the ${LOOPS} requests in flight fail; errors: ${JSON.stringify(summary.errors)}`,
        );
        assert.equal((await caller.waitForExit()).code, 0);
        await nats.restart(1);
      });
    } finally {
      await Promise.all([gateway.kill(), ...workers.map((w) => w.kill()), caller?.kill()]);
    }
  });

  test('host 2 partitioned for 10 s: its route expires on host 1, and returns after the heal', async () => {
    const w = await watcher(net.host(1), 'mh-part');
    const b = await server(net.host(2), 'mh-part');
    try {
      await nextRoutes(w, [b.address], 15_000, 0);
      net.partition(2);
      const partitionedAt = Date.now();
      try {
        await nextRoutes(w, [], 15_000);
        // The partition lasts 10 s in all, whatever the expiry took.
        await new Promise((r) => setTimeout(r, Math.max(0, 10_000 - (Date.now() - partitionedAt))));
      } finally {
        net.heal(2);
      }
      await nextRoutes(w, [b.address], 60_000);
    } finally {
      await Promise.all([b.daemon.kill(), w.kill()]);
    }
  });
});

/** Runs `fn`; a failure carries the last lines each process printed (what the assertion alone does not say). */
async function explainedBy(
  processes: () => [string, DaemonProcess | undefined][],
  fn: () => Promise<void>,
): Promise<void> {
  try {
    await fn();
  } catch (err) {
    const e = err as Error;
    for (const [name, p] of processes()) {
      if (!p) continue;
      const tail = p.stdoutLines.slice(-40).join('\n');
      e.message += `\n--- ${name}, last lines:\n${tail}${p.stderr ? `\n${p.stderr.slice(-2000)}` : ''}`;
    }
    throw e;
  }
}
