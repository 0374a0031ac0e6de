// Client-side balancing: HostPool (src/balance/host-pool.ts) on its own, then MessageClient and
// ServiceConnector by service name against a real nats-server and announcing daemons: calls spread
// over the hosts, a failing host is overloaded, probed and returns, hosts come and go live, no host
// is a clear error, and call outcomes are reported for `tcpdaemon routes`.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { connect as natsConnect } from '@nats-io/transport-node';
import { HostPool, type HostSpec } from '../src/balance/host-pool.js';
import { ServiceConnector } from '../src/fleet/connector.js';
import { openRouteTable } from '../src/fleet/index.js';
import { type OutcomeReport, parseReport } from '../src/fleet/report.js';
import { MessageClient, type MessageClientOptions, MessageError } from '../src/message/index.js';
import { EXAMPLES, FIXTURES, type Listening, runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { type NatsServer, startNats } from './helpers/gateway.js';
import { assertNoLeftoverProcesses } from './helpers/leftovers.js';
import { captureLogs, type LogCapture } from './helpers/message.js';
import { deadPort } from './helpers/proxy.js';

const quickHealth = { probeNum: 4, continErrLimit: 3, continSuccLimit: 2, overloadTimeoutMs: 60_000 };

describe('HostPool', () => {
  test('round robin over a static list; weights and removal are followed', () => {
    const pool = new HostPool([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2', weight: 2 }], {
      strategy: 'roundrobin',
    });
    try {
      const picks = Array.from({ length: 6 }, () => pool.pick()!.id);
      assert.equal(picks.filter((p) => p === '127.0.0.1:1').length, 2);
      assert.equal(picks.filter((p) => p === '127.0.0.1:2').length, 4);
      pool.setHosts([{ address: '127.0.0.1:2' }]);
      assert.deepEqual(
        Array.from({ length: 3 }, () => pool.pick()!.id),
        ['127.0.0.1:2', '127.0.0.1:2', '127.0.0.1:2'],
      );
      pool.setHosts([]);
      assert.equal(pool.pick(), undefined);
      assert.throws(() => pool.setHosts([{ address: 'nope' }]), /not HOST:PORT/);
    } finally {
      pool.close();
    }
  });

  test('errors overload a host; it gets only probes, and successes on probes bring it back', () => {
    const pool = new HostPool([{ address: 'a:1' }, { address: 'b:1' }], {
      strategy: 'roundrobin',
      health: quickHealth,
    });
    const changes: string[] = [];
    pool.on('health', (c) => changes.push(`${c.id} ${c.from}->${c.to}`));
    try {
      for (let i = 0; i < 3; i++) pool.report('a:1', 'timeout');
      assert.equal(pool.state('a:1'), 'overloaded');
      const picks = Array.from({ length: 8 }, () => pool.pick()!.id);
      assert.equal(picks.filter((p) => p === 'a:1').length, 2, `one pick in 4 probes a: ${picks}`);
      pool.report('a:1', 'ok');
      pool.report('a:1', 'ok');
      assert.equal(pool.state('a:1'), 'up');
      assert.deepEqual(changes, ['a:1 up->overloaded', 'a:1 overloaded->up']);
      const counts = pool.takeCounts();
      assert.deepEqual(counts.get('a:1'), { ok: 2, error: 0, timeout: 3 });
      assert.equal(pool.takeCounts().size, 0, 'counts restart');
    } finally {
      pool.close();
    }
  });

  test('follow(): the pool takes the source entries of its service, and stops on close', () => {
    const source = new EventEmitter() as EventEmitter & { entries(s: string): HostSpec[] };
    let current: HostSpec[] = [{ address: '[::1]:7' }];
    source.entries = () => current;
    const pool = HostPool.follow(source as never, 'svc');
    assert.deepEqual(
      pool.hosts().map((h) => [h.id, h.host, h.port]),
      [['[::1]:7', '::1', 7]],
    );
    current = [{ address: '10.0.0.1:7' }];
    source.emit('change', 'other', [{ address: '10.0.0.9:9' }]);
    assert.equal(pool.size, 1);
    source.emit('change', 'svc', current);
    assert.deepEqual(
      pool.hosts().map((h) => h.id),
      ['10.0.0.1:7'],
    );
    pool.close();
    assert.equal(source.listenerCount('change'), 0);
  });
});

const SERVICE = `${FIXTURES}/fleet-service.mjs`;
let nats: NatsServer;

before(async () => {
  nats = await startNats();
});
after(async () => {
  await nats?.stop();
  await assertNoLeftoverProcesses();
});

/** A daemon serving `handler` that announces itself under `service` (TTL 2 s). */
async function announced(service: string, handler = SERVICE): Promise<Listening> {
  const d = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    handler,
    '--announce',
    service,
    '--discovery',
    nats.url,
    '--announce-ttl',
    '2',
  ]);
  await d.daemon.waitForMsg('announced');
  return d;
}

/** Tells the service process behind `port` to fail (or serve again), over its own connection. */
async function setFailing(port: number, failing: boolean): Promise<void> {
  const direct = new MessageClient({
    port,
    codec: 'seq',
    reconnect: false,
    logger: captureLogs('warn').logger,
  });
  try {
    await direct.connect();
    await direct.request(2, failing ? '1' : '0');
  } finally {
    await direct.close();
  }
}

function byService(
  service: string,
  logs: LogCapture,
  extra: Partial<MessageClientOptions> = {},
): MessageClient {
  return new MessageClient({
    service,
    discovery: { servers: [nats.url] },
    codec: 'seq',
    strategy: 'roundrobin',
    requestTimeout: 5000,
    logger: logs.logger,
    ...extra,
  });
}

const pidOf = async (c: MessageClient) => Number((await c.request(1)).toString());

/** Outcomes of `n` calls: the pid that answered, or the error code. */
async function calls(c: MessageClient, n: number): Promise<(number | string)[]> {
  const out: (number | string)[] = [];
  for (let i = 0; i < n; i++) {
    try {
      out.push(await pidOf(c));
    } catch (err) {
      out.push((err as MessageError).code);
    }
  }
  return out;
}

const count = <T>(xs: T[], x: T) => xs.filter((y) => y === x).length;

describe('MessageClient by service name', () => {
  test('calls spread over the announced hosts, one connection per host', async () => {
    const a = await announced('spread');
    const b = await announced('spread');
    const logs = captureLogs('info');
    const client = byService('spread', logs);
    try {
      await client.connect();
      const pids = await calls(client, 20);
      assert.equal(count(pids, a.daemon.pid), 10, `round robin: ${pids}`);
      assert.equal(count(pids, b.daemon.pid), 10, `round robin: ${pids}`);
      assert.deepEqual(
        client.hosts().map((h) => [h.address, h.state, h.connected]),
        [
          [`127.0.0.1:${a.port}`, 'up', true],
          [`127.0.0.1:${b.port}`, 'up', true],
        ].sort(),
      );
      assert.equal(client.stats.connects, 2, 'one connection per host, kept');
    } finally {
      await client.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });

  test('a host answering errors is overloaded, gets only probes, and returns once it serves again', async () => {
    const a = await announced('lars');
    const b = await announced('lars');
    const logs = captureLogs('info');
    const client = byService('lars', logs, {
      health: { continErrLimit: 3, probeNum: 5, continSuccLimit: 2, overloadTimeoutMs: 60_000 },
    });
    try {
      await client.connect();
      await setFailing(a.port, true);
      const failing = await calls(client, 6);
      assert.equal(count(failing, 'ERR_MESSAGE_REMOTE'), 3, `3 errors from a, then overloaded: ${failing}`);
      await logs.waitFor((l) => l.msg === 'host overloaded' && l.host === `127.0.0.1:${a.port}`);
      assert.equal(client.hosts().find((h) => h.address === `127.0.0.1:${a.port}`)?.state, 'overloaded');
      // Overloaded: one pick in 5 probes it (and fails); the others go to b.
      const probed = await calls(client, 20);
      assert.equal(count(probed, 'ERR_MESSAGE_REMOTE'), 4, `probes only: ${probed}`);
      assert.equal(count(probed, b.daemon.pid), 16);
      await setFailing(a.port, false);
      const back = logs.waitFor((l) => l.msg === 'host back in rotation' && l.host === `127.0.0.1:${a.port}`);
      const recovering = await calls(client, 10);
      assert.ok(count(recovering, a.daemon.pid) >= 2, `two successful probes bring a back: ${recovering}`);
      assert.equal(count(recovering, 'ERR_MESSAGE_REMOTE'), 0);
      await back;
      const again = await calls(client, 10);
      assert.ok(Math.abs(count(again, a.daemon.pid) - 5) <= 1, `in rotation again: ${again}`);
    } finally {
      await client.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });

  test('kill -9 of a host: its calls fail over at connect, it is overloaded, and its route expires; a new host is taken live', async () => {
    const a = await announced('moving');
    const b = await announced('moving');
    const logs = captureLogs('info');
    const client = byService('moving', logs, {
      health: { continErrLimit: 3, probeNum: 5, continSuccLimit: 2 },
    });
    try {
      await client.connect();
      const before = await calls(client, 4);
      assert.equal(count(before, a.daemon.pid), 2);
      a.daemon.signal('SIGKILL');
      await a.daemon.waitForExit();
      await logs.waitFor((l) => l.msg === 'host connection closed' && l.host === `127.0.0.1:${a.port}`);
      // Reconnects to a are refused: each such call is retried on b and succeeds.
      const during = await calls(client, 12);
      assert.ok(
        during.every((p) => p === b.daemon.pid || p === 'ERR_MESSAGE_CLOSED'),
        `only b answers; at most a call already sent to a fails: ${during}`,
      );
      assert.ok(count(during, 'ERR_MESSAGE_CLOSED') <= 1, `${during}`);
      assert.ok(
        logs.lines.some((l) => l.msg === 'host overloaded' && l.host === `127.0.0.1:${a.port}`),
        'refused connects overload it before its route expires',
      );
      await logs.waitFor((l) => l.msg === 'host removed' && l.host === `127.0.0.1:${a.port}`, 15_000);
      assert.deepEqual(
        client.hosts().map((h) => h.address),
        [`127.0.0.1:${b.port}`],
      );
      const c = await announced('moving');
      try {
        await logs.waitFor((l) => l.msg === 'host added' && l.host === `127.0.0.1:${c.port}`);
        const after = await calls(client, 10);
        assert.ok(Math.abs(count(after, c.daemon.pid) - 5) <= 1, `the new host takes its share: ${after}`);
        assert.equal(count(after, b.daemon.pid) + count(after, c.daemon.pid), 10);
      } finally {
        await c.daemon.kill();
      }
    } finally {
      await client.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });

  test('a host that stops gracefully answers the call it is running, then takes no more', async () => {
    const a = await announced('leaving');
    const b = await announced('leaving');
    const logs = captureLogs('info');
    const client = byService('leaving', logs);
    try {
      await client.connect();
      // Round robin alternates: with both connections open, the slow call goes where the first went.
      const first = await pidOf(client);
      await pidOf(client);
      const leaving = first === a.daemon.pid ? a : b;
      const staying = leaving === a ? b : a;
      const slow = client.request(3, '1500');
      await new Promise(setImmediate);
      assert.equal(client.hosts().find((h) => h.address === `127.0.0.1:${leaving.port}`)?.active, 1);
      const removed = logs.waitFor((l) => l.msg === 'host removed' && l.host === `127.0.0.1:${leaving.port}`);
      const stopped = stopCleanly(leaving.daemon);
      await removed;
      assert.equal(Number((await slow).toString()), leaving.daemon.pid, 'the running call is answered');
      await stopped;
      const after = await calls(client, 4);
      assert.deepEqual(after, [
        staying.daemon.pid,
        staying.daemon.pid,
        staying.daemon.pid,
        staying.daemon.pid,
      ]);
    } finally {
      await client.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });

  test('a fixed host list: timeouts count as errors and overload the host', async () => {
    const a = await announced('timeouts');
    const logs = captureLogs('info');
    const client = new MessageClient({
      hosts: [`127.0.0.1:${a.port}`],
      codec: 'seq',
      health: { continErrLimit: 2 },
      logger: logs.logger,
    });
    try {
      for (let i = 0; i < 2; i++)
        await assert.rejects(client.request(3, '2000', { timeout: 100 }), { code: 'ERR_MESSAGE_TIMEOUT' });
      assert.deepEqual(
        client.hosts().map((h) => [h.address, h.state, h.active]),
        [[`127.0.0.1:${a.port}`, 'overloaded', 0]],
      );
      // Alone and overloaded, it still takes the calls.
      assert.equal(await pidOf(client), a.daemon.pid);
    } finally {
      await client.close();
      await a.daemon.kill();
    }
  });

  test('send(): frames go to hosts picked per frame, also those sent before the host list is in', async () => {
    const a = await announced('sends');
    const b = await announced('sends');
    const client = byService('sends', captureLogs('warn'));
    try {
      assert.equal(client.send(4), false, 'queued: the route table is not open yet');
      await client.connect();
      for (let i = 0; i < 5; i++) client.send(4);
      // A request behind the sends on each connection: the seq server answers in order per connection.
      await calls(client, 2);
      const counted = async (port: number) => {
        const direct = new MessageClient({
          port,
          codec: 'seq',
          reconnect: false,
          logger: captureLogs('warn').logger,
        });
        try {
          await direct.connect();
          return Number((await direct.request(5)).toString());
        } finally {
          await direct.close();
        }
      };
      const [na, nb] = [await counted(a.port), await counted(b.port)];
      assert.equal(na + nb, 6, `every frame arrived once (a ${na}, b ${nb})`);
      assert.ok(na > 0 && nb > 0, `both hosts took frames (a ${na}, b ${nb})`);
    } finally {
      await client.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });

  test('a route table given to several clients is shared, and stays open after they close', async () => {
    const a = await announced('shared');
    const table = await openRouteTable({ servers: [nats.url], logger: captureLogs('warn').logger });
    try {
      const one = byService('shared', captureLogs('warn'), { discovery: table });
      const two = byService('shared', captureLogs('warn'), { discovery: table });
      assert.equal(await pidOf(one), a.daemon.pid);
      assert.equal(await pidOf(two), a.daemon.pid);
      await one.close();
      await two.close();
      assert.deepEqual(
        table.entries('shared').map((e) => e.address),
        [`127.0.0.1:${a.port}`],
        'the table still follows the bucket',
      );
      assert.equal(table.listenerCount('change'), 0, 'the clients stopped following it');
    } finally {
      await table.close();
      await a.daemon.kill();
    }
  });

  test('hash: calls with the same key go to the same host', async () => {
    const a = await announced('hashed');
    const b = await announced('hashed');
    const client = new MessageClient({
      hosts: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`],
      codec: 'seq',
      strategy: 'hash',
      logger: captureLogs('warn').logger,
    });
    try {
      const byKey = async (key: string) => Number((await client.request(1, '', { key })).toString());
      const first = await byKey('user-7');
      for (let i = 0; i < 5; i++) assert.equal(await byKey('user-7'), first);
      const spread = new Set<number>();
      for (let i = 0; i < 20; i++) spread.add(await byKey(`user-${i}`));
      assert.deepEqual([...spread].sort(), [a.daemon.pid, b.daemon.pid].sort(), 'keys spread over both');
    } finally {
      await client.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });

  test('a service with no live host: a clear error', async () => {
    const logs = captureLogs('info');
    const client = byService('nobody', logs);
    try {
      await assert.rejects(client.request(1), (err: unknown) => {
        assert.ok(err instanceof MessageError);
        assert.equal(err.code, 'ERR_MESSAGE_NO_HOST');
        assert.match(err.message, /service 'nobody' has no live host in the route table/);
        return true;
      });
      await assert.rejects(client.connect(), /service 'nobody' has no live host/);
    } finally {
      await client.close();
    }
    assert.throws(() => new MessageClient({ service: 'x' }), /needs discovery/);
  });
});

describe('reports and tcpdaemon routes', () => {
  test('call outcomes per host are published each window, and `tcpdaemon routes` shows hosts, state and counts', async () => {
    const a = await announced('reported');
    const b = await announced('reported');
    const nc = await natsConnect({ servers: nats.url });
    const logs = captureLogs('info');
    const client = byService('reported', logs, { reportWindow: 300, health: { continErrLimit: 2 } });
    try {
      const sub = nc.subscribe('tcpdaemon.reports.reported');
      await nc.flush();
      await client.connect();
      await setFailing(a.port, true);
      const outcomes = await calls(client, 6);
      assert.equal(count(outcomes, 'ERR_MESSAGE_REMOTE'), 2);
      // The first window holding calls sums to what the client saw.
      const totals = new Map<string, { ok: number; error: number }>();
      let last: OutcomeReport | undefined;
      for await (const m of sub) {
        const r = parseReport(m.data);
        assert.ok(r, 'a report');
        for (const h of r.hosts) {
          const t = totals.get(h.address) ?? { ok: 0, error: 0 };
          t.ok += h.ok;
          t.error += h.error + h.timeout;
          totals.set(h.address, t);
        }
        last = r;
        const sum = [...totals.values()].reduce((n, t) => n + t.ok + t.error, 0);
        if (sum >= 6 + 2) break; // 6 calls and 2 connects
      }
      sub.unsubscribe();
      assert.equal(last?.service, 'reported');
      assert.deepEqual(totals.get(`127.0.0.1:${a.port}`), { ok: 1, error: 2 }, 'a: its connect, 2 errors');
      assert.deepEqual(totals.get(`127.0.0.1:${b.port}`), { ok: 5, error: 0 }, 'b: its connect, 4 calls');

      const shown = await runCli(['routes', '--discovery', nats.url, '--wait', '1', '--json']);
      assert.equal(shown.code, 0, shown.stderr);
      const view = JSON.parse(shown.stdout) as {
        services: {
          service: string;
          hosts: { address: string; state: string; ok: number; error: number; pid: number }[];
        }[];
      };
      const svc = view.services.find((s) => s.service === 'reported');
      assert.ok(svc, shown.stdout);
      const ha = svc.hosts.find((h) => h.address === `127.0.0.1:${a.port}`)!;
      const hb = svc.hosts.find((h) => h.address === `127.0.0.1:${b.port}`)!;
      assert.equal(ha.state, 'overloaded', 'the client reports a overloaded');
      assert.equal(hb.state, 'up');
      assert.equal(ha.pid, a.daemon.pid);
      // Keep calling while routes listens: its window sees b's successes.
      let done = false;
      const table = runCli(['routes', '--discovery', nats.url, '--wait', '1.5']);
      const busy = (async () => {
        while (!done) await calls(client, 5);
      })();
      const text = await table.finally(() => {
        done = true;
      });
      await busy;
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /SERVICE\s+HOST\s+STATE/);
      assert.match(text.stdout, new RegExp(`reported\\s+127\\.0\\.0\\.1:${a.port}\\s+overloaded`));
      assert.match(text.stdout, new RegExp(`reported\\s+127\\.0\\.0\\.1:${b.port}\\s+up\\s+[1-9]\\d*\\s+0`));
    } finally {
      await client.close();
      await nc.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }
  });
});

test('tcpdaemon routes: no --discovery, a bad URL or NATS down is one line and exit 1; an empty table says so', async () => {
  const none = await runCli(['routes']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /tcpdaemon routes: discovery \(--discovery\) is needed/);
  const bad = await runCli(['routes', '--discovery', 'http://x']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /'http:\/\/x' is not a nats:\/\/HOST:PORT URL/);
  const down = await runCli(['routes', '--discovery', `nats://127.0.0.1:${await deadPort()}`]);
  assert.equal(down.code, 1);
  assert.match(down.stderr, /cannot connect: connection refused/);
  const help = await runCli(['routes', '--help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /--wait SECONDS/);
  const empty = await runCli(['routes', '--discovery', nats.url, '--service', 'none-here', '--wait', '0']);
  assert.equal(empty.code, 0, empty.stderr);
  assert.match(empty.stdout, /no service in the route table and no report heard/);
});

describe('ServiceConnector (plain TCP)', () => {
  test('connects to the announced hosts in turn; a dead host is reported, skipped and overloaded', async () => {
    const a = await announced('tcp-echo', `${EXAMPLES}/echo.js`);
    const b = await announced('tcp-echo', `${EXAMPLES}/echo.js`);
    const connector = await ServiceConnector.open({
      service: 'tcp-echo',
      discovery: { servers: [nats.url] },
      strategy: 'roundrobin',
      reportWindow: false,
    });
    try {
      const ports: number[] = [];
      for (let i = 0; i < 4; i++) {
        const s = await connector.connect();
        ports.push(s.remotePort!);
        s.write('hi\n');
        const [echoed] = (await EventEmitter.once(s, 'data')) as [Buffer];
        assert.equal(echoed.toString(), 'hi\n');
        s.destroy();
      }
      assert.deepEqual(ports.sort(), [a.port, a.port, b.port, b.port].sort());
    } finally {
      await connector.close();
      await a.daemon.kill();
      await b.daemon.kill();
    }

    const dead = await deadPort();
    const live = await startDaemon(['-l', '127.0.0.1:0', '-s', `${EXAMPLES}/echo.js`]);
    const fixed = await ServiceConnector.open({
      hosts: [`127.0.0.1:${dead}`, `127.0.0.1:${live.port}`],
      strategy: 'roundrobin',
      health: { continErrLimit: 2 },
    });
    try {
      for (let i = 0; i < 4; i++) {
        const s = await fixed.connect();
        assert.equal(s.remotePort, live.port, 'a refused connect is retried on the other host');
        s.destroy();
      }
      assert.equal(fixed.pool.state(`127.0.0.1:${dead}`), 'overloaded');
      await stopCleanly(live.daemon);
      await assert.rejects(
        fixed.connect(),
        /no host could be reached \(127\.0\.0\.1:\d+: ECONNREFUSED; 127\.0\.0\.1:\d+: ECONNREFUSED\)/,
      );
    } finally {
      await fixed.close();
      await live.daemon.kill();
    }
  });
});
