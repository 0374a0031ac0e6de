import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXAMPLES, FIXTURES, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip, untilClosed } from './helpers/net.js';

checkNoLeftoverProcesses();
const echo = join(EXAMPLES, 'echo.js');

test('--timeout closes an idle peer, not an active one', async () => {
  await withDaemon(['-l', '127.0.0.1:0', '-s', echo, '--timeout', '1'], async ({ daemon, port }) => {
    const idle = await connect(port);
    const active = await connect(port);
    const idleClosed = untilClosed(idle);
    let activeClosed = false;
    active.on('close', () => {
      activeClosed = true;
    });
    // The active peer talks every 100 ms, well inside the 1 s idle timeout (a loaded machine may
    // stall it for some hundreds of ms), until the idle one is cut and a while after.
    let done = false;
    const talking = (async () => {
      let i = 0;
      while (!done) {
        assert.equal(await roundTrip(active, `ping${i}`), `ping${i}`);
        i++;
        await sleep(100);
      }
      return i;
    })();
    await idleClosed;
    await sleep(1500);
    done = true;
    const pings = await talking;
    assert.ok(pings >= 5, `active peer exchanged ${pings} messages`);
    assert.equal(activeClosed, false, 'the active connection stays open');
    const line = await daemon.waitForMsg('idle timeout; connection closed');
    assert.equal(line.conn, '0-1');
    active.end();
  });
});

test('--max-connections: excess connections are closed at once and counted', async () => {
  await withDaemon(['-l', '127.0.0.1:0', '-s', echo, '--max-connections', '2'], async ({ daemon, port }) => {
    const a = await connect(port);
    const b = await connect(port);
    assert.equal(await roundTrip(a, 'a'), 'a');
    assert.equal(await roundTrip(b, 'b'), 'b');
    const extra = await Promise.all([connect(port), connect(port), connect(port)]);
    const results = await Promise.all(extra.map((s) => untilClosed(s)));
    for (const r of results) assert.equal(r.data, '', 'an excess connection gets nothing and is closed');
    const line = await daemon.waitForMsg('connection refused: --max-connections reached');
    assert.equal(line.level, 'warn');
    assert.equal(line.max, 2);
    // The accepted ones are untouched, and a slot that frees up is usable again.
    assert.equal(await roundTrip(a, 'still'), 'still');
    const bClosed = untilClosed(b);
    b.end();
    await bClosed;
    await sleep(100);
    const c = await connect(port);
    assert.equal(await roundTrip(c, 'c'), 'c');
    a.end();
    c.end();
  });
});

// Without --tcp-linger the same handler closes with FIN: handler-contract.test.ts, 'a resolved promise ...'.
/**
 * Whether the daemon reset the connection: libuv reports a hang-up after a partial read as EOF,
 * so the peer (half-open) also writes after the close, which fails only on a reset connection.
 */
async function closedWithReset(port: number, delayMs: number): Promise<NodeJS.ErrnoException | undefined> {
  const s = netConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
  await once(s, 'connect');
  const closed = untilClosed(s);
  s.write('hi');
  try {
    await once(s, 'end');
  } catch (err) {
    return err as NodeJS.ErrnoException; // the reset surfaced directly
  }
  await sleep(delayMs);
  s.end('after close');
  return (await closed).error;
}

test('--tcp-linger 0 closes with RST; without it the same handler closes with FIN', async () => {
  const args = [
    '-l',
    '127.0.0.1:0',
    '-s',
    join(FIXTURES, 'settle.mjs'),
    '--param',
    'mode=resolve-after-data',
  ];
  await withDaemon([...args, '--tcp-linger', '0'], async ({ port }) => {
    const error = await closedWithReset(port, 50);
    assert.ok(error?.code === 'EPIPE' || error?.code === 'ECONNRESET', `reset (got ${error?.code})`);
  });
  await withDaemon(args, async ({ port }) => {
    assert.equal(await closedWithReset(port, 50), undefined, 'a FIN close lets the half-open peer finish');
  });
});

test('--tcp-linger N resets a peer that does not close within N s after our FIN', async () => {
  await withDaemon(
    [
      '-l',
      '127.0.0.1:0',
      '-s',
      join(FIXTURES, 'settle.mjs'),
      '--param',
      'mode=resolve-after-data',
      '--tcp-linger',
      '1',
    ],
    async ({ port }) => {
      const error = await closedWithReset(port, 1500);
      assert.ok(
        error?.code === 'EPIPE' || error?.code === 'ECONNRESET',
        `reset after 1 s (got ${error?.code})`,
      );
    },
  );
});
