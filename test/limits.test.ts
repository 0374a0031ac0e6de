import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXAMPLES, FIXTURES, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip, untilClosed } from './helpers/net.js';

checkNoLeftoverProcesses();
const echo = join(EXAMPLES, 'echo.js');

test('--timeout closes an idle peer, not an active one', async () => {
  const { daemon, port } = await startDaemon(['-l', '127.0.0.1:0', '-s', echo, '--timeout', '0.4']);
  try {
    const idle = await connect(port);
    const active = await connect(port);
    const idleClosed = untilClosed(idle);
    let activeClosed = false;
    active.on('close', () => {
      activeClosed = true;
    });
    // The active peer talks every 100 ms, well inside the 400 ms idle timeout, until the idle one is cut.
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
    await sleep(600);
    done = true;
    const pings = await talking;
    assert.ok(pings >= 5, `active peer exchanged ${pings} messages`);
    assert.equal(activeClosed, false, 'the active connection stays open');
    const line = await daemon.waitForMsg('idle timeout; connection closed');
    assert.equal(line.conn, '0-1');
    active.end();
  } finally {
    await daemon.kill();
  }
});

test('--max-connections: excess connections are closed at once and counted', async () => {
  const { daemon, port } = await startDaemon(['-l', '127.0.0.1:0', '-s', echo, '--max-connections', '2']);
  try {
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
  } finally {
    await daemon.kill();
  }
});

test('--tcp-linger 0 closes with RST', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    join(FIXTURES, 'settle.mjs'),
    '--param',
    'mode=resolve',
    '--tcp-linger',
    '0',
  ]);
  try {
    const s = await connect(port);
    const { error } = await untilClosed(s);
    assert.equal(error?.code, 'ECONNRESET');
  } finally {
    await daemon.kill();
  }
});

test('without --tcp-linger the same handler closes with FIN', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    join(FIXTURES, 'settle.mjs'),
    '--param',
    'mode=resolve',
  ]);
  try {
    const { data, error } = await untilClosed(await connect(port));
    assert.equal(data, 'bye\n');
    assert.equal(error, undefined);
  } finally {
    await daemon.kill();
  }
});

test('--tcp-linger N resets a peer that does not close within N s after our FIN', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    join(FIXTURES, 'settle.mjs'),
    '--param',
    'mode=resolve',
    '--tcp-linger',
    '1',
  ]);
  try {
    const { connect: rawConnect } = await import('node:net');
    // allowHalfOpen: this peer reads our FIN but keeps its own side open, and writes 1.5 s later.
    const s = rawConnect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const closed = untilClosed(s);
    await new Promise((r) => s.once('end', r));
    await sleep(1500);
    s.write('too late');
    const { error } = await closed;
    assert.ok(
      error?.code === 'EPIPE' || error?.code === 'ECONNRESET',
      `the daemon reset the connection after the linger time (got ${error?.code})`,
    );
  } finally {
    await daemon.kill();
  }
});
