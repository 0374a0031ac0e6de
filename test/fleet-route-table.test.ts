// The route table's reader (src/fleet/route-table.ts) against a real nats-server and announcing
// daemons: an announce is pushed to it, a graceful stop removes the entry at once, and a killed
// process's entry leaves it within its TTL.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, test } from 'node:test';
import pino from 'pino';
import type { RouteEntry } from '../src/fleet/route.js';
import { RouteTable } from '../src/fleet/route-table.js';
import { EXAMPLES, startDaemon, stopCleanly } from './helpers/daemon.js';
import { type NatsServer, startNats } from './helpers/gateway.js';
import { assertNoLeftoverProcesses } from './helpers/leftovers.js';

const ECHO = `${EXAMPLES}/echo.js`;
const silent = pino({ level: 'silent' });
let nats: NatsServer;

before(async () => {
  nats = await startNats();
});
after(async () => {
  await nats?.stop();
  await assertNoLeftoverProcesses();
});

const announcing = (service: string, ttl: string) =>
  startDaemon([
    '-m',
    'IOMP',
    '-l',
    '127.0.0.1:0',
    '-s',
    ECHO,
    '--announce',
    service,
    '--discovery',
    nats.url,
    '--announce-ttl',
    ttl,
  ]);

/** Resolves with the service's entries at the first change that satisfies `pred`. */
function changeWhere(
  table: RouteTable,
  service: string,
  pred: (entries: RouteEntry[]) => boolean,
): Promise<RouteEntry[]> {
  return new Promise((resolve) => {
    const onChange = (s: string, entries: RouteEntry[]) => {
      if (s !== service || !pred(entries)) return;
      table.off('change', onChange);
      resolve(entries);
    };
    table.on('change', onChange);
  });
}

test('RouteTable: an announce is pushed in, a graceful stop takes it out, entries already there are read at open', async () => {
  const first = await announcing('rt-a', '5');
  const table = await RouteTable.open({ servers: [nats.url], logger: silent });
  try {
    // Present before open: in the snapshot.
    assert.deepEqual(
      table.entries('rt-a').map((e) => e.address),
      [`127.0.0.1:${first.port}`],
    );
    const added = changeWhere(table, 'rt-a', (es) => es.length === 2);
    const second = await announcing('rt-a', '5');
    const both = await added;
    assert.deepEqual(
      both.map((e) => e.address),
      [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`].sort(),
    );
    assert.equal(both[0]!.pid > 0, true);
    assert.deepEqual(table.services(), ['rt-a']);
    const removed = changeWhere(table, 'rt-a', (es) => es.length === 1);
    await stopCleanly(second.daemon);
    assert.deepEqual(
      (await removed).map((e) => e.address),
      [`127.0.0.1:${first.port}`],
    );
    await stopCleanly(first.daemon);
  } finally {
    await table.close();
  }
});

test('RouteTable: a kill -9 announcer leaves the table within its TTL; a watch of one service ignores others', async () => {
  const table = await RouteTable.open({
    servers: [nats.url],
    logger: silent,
    services: ['rt-b'],
    sweepMs: 200,
  });
  const other = await announcing('rt-c', '5');
  const seen = changeWhere(table, 'rt-b', (es) => es.length === 1);
  const victim = await announcing('rt-b', '1');
  try {
    await seen;
    const gone = changeWhere(table, 'rt-b', (es) => es.length === 0);
    victim.daemon.child.kill('SIGKILL');
    await once(victim.daemon.child, 'exit');
    await gone;
    assert.deepEqual(table.entries('rt-b'), []);
    assert.deepEqual(table.entries('rt-c'), [], 'rt-c is not watched');
  } finally {
    await table.close();
    await victim.daemon.kill();
    await stopCleanly(other.daemon);
  }
});

test('RouteTable.open: a watch of a service with no entry, in a bucket holding others, opens without waiting out the snapshot wait', {
  timeout: 30_000,
}, async () => {
  const other = await announcing('rt-d', '5');
  try {
    // A snapshot wait longer than the test's timeout: open must see there is nothing to wait for.
    const table = await RouteTable.open({
      servers: [nats.url],
      logger: silent,
      services: ['rt-nobody'],
      snapshotWaitMs: 120_000,
    });
    try {
      assert.deepEqual(table.entries('rt-nobody'), []);
    } finally {
      await table.close();
    }
    // The service's own entries are still read at open with such a wait.
    const withEntry = await RouteTable.open({
      servers: [nats.url],
      logger: silent,
      services: ['rt-d'],
      snapshotWaitMs: 120_000,
    });
    try {
      assert.deepEqual(
        withEntry.entries('rt-d').map((e) => e.address),
        [`127.0.0.1:${other.port}`],
      );
    } finally {
      await withEntry.close();
    }
  } finally {
    await stopCleanly(other.daemon);
  }
});

test('RouteTable.open: NATS down is a ConnectError naming the URL', async () => {
  await assert.rejects(
    RouteTable.open({ servers: ['nats://127.0.0.1:1'], logger: silent }),
    (err: Error & { code?: string }) =>
      /--discovery nats:\/\/127\.0\.0\.1:1: cannot connect: connection refused/.test(err.message) &&
      typeof err.code === 'string',
  );
});
