import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { nativeDup } from '../src/native/addon.js';
import { FIXTURES, modelArgs, readyPids, startDaemon, stopCleanly } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip, startLoadLoop, untilClosed } from './helpers/net.js';
import { waitUntil } from './helpers/supervisor.js';

checkNoLeftoverProcesses();

const ECHO = join(FIXTURES, 'worker-echo.mjs');

test('LF -c 2: a third connection waits (not refused, not reset) until one of the first two closes', async () => {
  const { daemon, port } = await startDaemon(modelArgs('LF', 2, ECHO));
  try {
    const a = await connect(port);
    const b = await connect(port);
    const [pidA] = (await roundTrip(a, 'who\n')).split(' ');
    const [pidB] = (await roundTrip(b, 'who\n')).split(' ');
    assert.notEqual(pidA, pidB, 'one connection per worker');
    const c = await connect(port);
    let fromC = '';
    c.setEncoding('utf8').on('data', (d: string) => {
      fromC += d;
    });
    c.write('who\n');
    // Both workers are busy: c is accepted and waits.
    await sleep(500);
    assert.equal(fromC, '', 'no answer while both workers are busy');
    assert.equal(c.destroyed, false, 'not reset');
    const aClosed = untilClosed(a);
    a.end();
    await aClosed;
    await waitUntil(() => fromC.endsWith('\n'), 'the waiting connection to be served');
    const [pidC] = fromC.split(' ');
    assert.equal(pidC, pidA, 'served by the worker that became free');
    assert.equal(await roundTrip(b, 'still\n'), 'still\n');
    a.destroy();
    b.destroy();
    c.destroy();
  } finally {
    await stopCleanly(daemon);
  }
});

test('LF starts its workers in parallel', async () => {
  const { daemon } = await startDaemon(modelArgs('LF', 4, ECHO, '--loglevel', 'debug'));
  try {
    const firstReady = daemon.logs.findIndex((l) => l.msg === 'worker ready');
    const startedBefore = daemon.logs.slice(0, firstReady).filter((l) => l.msg === 'worker starting');
    assert.equal(startedBefore.length, 4, 'all four spawned before the first was ready');
  } finally {
    await stopCleanly(daemon);
  }
});

test('-n recycles an LF worker after N connections: pids change', async () => {
  const { daemon, port } = await startDaemon([
    '-m',
    'LF',
    '-c',
    '1',
    '-n',
    '2',
    '-l',
    '127.0.0.1:0',
    '-s',
    ECHO,
    '--loglevel', // routine recycling is logged at debug
    'debug',
  ]);
  try {
    const pids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const s = await connect(port);
      pids.push((await roundTrip(s, 'who\n')).split(' ')[0]!);
      const closed = untilClosed(s);
      s.end();
      await closed;
    }
    assert.equal(pids[0], pids[1]);
    assert.notEqual(pids[1], pids[2], `pids: ${pids.join(' ')}`);
    assert.equal(pids[2], pids[3]);
    assert.notEqual(pids[3], pids[4], `pids: ${pids.join(' ')}`);
    const recycled = await waitUntil(() => {
      const found = daemon.logs.filter(
        (l) => l.msg === 'worker exited' && l.reason === 'recycle: served 2 connections',
      );
      return found.length >= 2 && found;
    }, 'recycled workers to exit');
    assert.deepEqual(new Set(recycled.map((l) => l.code)), new Set([0]));
  } finally {
    await stopCleanly(daemon);
  }
});

test('a handler that blocks its event loop stalls only its own connection', async () => {
  const { daemon, port } = await startDaemon(modelArgs('LF', 2, ECHO, '--shutdown-timeout', '0.5'));
  try {
    const stuck = await connect(port);
    stuck.write('hang\n');
    await sleep(100);
    const other = await connect(port);
    assert.equal(await roundTrip(other, 'fine\n'), 'fine\n');
    other.destroy();
    stuck.destroy();
  } finally {
    daemon.signal('SIGTERM');
    // The stuck worker cannot drain: it is killed after the shutdown timeout; the daemon exits 0.
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    assert.equal(daemon.logs.filter((l) => l.msg === 'worker did not finish in time; killing it').length, 1);
  }
});

test('--max-connections counts busy and waiting connections of the whole pool', async () => {
  const { daemon, port } = await startDaemon(modelArgs('LF', 1, ECHO, '--max-connections', '2'));
  try {
    const served = await connect(port);
    assert.equal(await roundTrip(served, 'a'), 'a');
    const waiting = await connect(port);
    await sleep(100);
    const extra = await connect(port);
    assert.equal((await untilClosed(extra)).data, '');
    await daemon.waitForMsg('connection refused: --max-connections reached');
    served.destroy();
    assert.equal(await roundTrip(waiting, 'b'), 'b');
    waiting.destroy();
  } finally {
    await stopCleanly(daemon);
  }
});

test('kill -9 of an LF worker under a load loop: nothing refused, a replacement takes over', async () => {
  const { daemon, port } = await startDaemon(modelArgs('LF', 2, ECHO, '--restart-delay', '0.05'));
  try {
    const [victim] = readyPids(daemon) as [number];
    const load = startLoadLoop(port, { loops: 2 });
    await waitUntil(() => load.stats.ok >= 30, 'load before the kill');
    process.kill(victim, 'SIGKILL');
    await waitUntil(() => readyPids(daemon).length === 3, 'a replacement');
    const before = load.stats.ok;
    await waitUntil(() => load.stats.ok >= before + 30, 'load after the replacement');
    const stats = await load.stop();
    assert.ok(!stats.errors.includes('ECONNREFUSED'), stats.errors.join(', '));
    // At most the one connection the killed worker was serving is lost.
    assert.ok(stats.failed <= 1, `failed: ${stats.errors.join(', ')}`);
  } finally {
    await stopCleanly(daemon);
  }
});

/** The first line `socket` receives after `send` is written. */
function ask(socket: Socket, send: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const onData = (d: Buffer) => {
      got += d.toString();
      if (!got.includes('\n')) return;
      socket.off('data', onData);
      resolve(got);
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed after ${JSON.stringify(got)}`)));
    socket.write(send);
  });
}

/** An LF -c 2 daemon stopped (SIGSTOP) while `body` runs; continued and stopped cleanly after. */
async function whileDaemonStopped(
  body: (port: number, workerPids: () => number[]) => Promise<void>,
): Promise<void> {
  const { daemon, port } = await startDaemon(modelArgs('LF', 2, ECHO));
  process.kill(daemon.pid, 'SIGSTOP');
  try {
    await body(port, () => readyPids(daemon));
  } finally {
    process.kill(daemon.pid, 'SIGCONT');
    await stopCleanly(daemon);
  }
}

test('LF: idle workers take connections themselves: served while the daemon is stopped (SIGSTOP)', {
  timeout: 30_000,
}, async () => {
  await whileDaemonStopped(async (port, workerPids) => {
    const a = await connect(port);
    const b = await connect(port);
    const [pidA] = (await ask(a, 'who\n')).split(' ');
    const [pidB] = (await ask(b, 'who\n')).split(' ');
    assert.notEqual(pidA, pidB, 'one connection per worker');
    assert.deepEqual(new Set([Number(pidA), Number(pidB)]), new Set(workerPids()));
    a.destroy();
    b.destroy();
  });
});

test('LF with the native dup: with the daemon stopped (SIGSTOP), the workers serve short connection after connection', {
  skip: nativeDup() ? false : 'the native dup is not built',
  timeout: 90_000,
}, async () => {
  // Without the dup each worker takes one and then waits for its next copy from the daemon: 2
  // served, every time. With it a connection that happens to stay open 10 ms (a loaded machine)
  // is reported and ends the same way, so the loop stops at the first one not served within 5 s
  // (the SIGCONT after serves it), and a daemon whose both workers did that early is tried again.
  const counts: number[] = [];
  for (let attempt = 0; attempt < 3 && !(counts.at(-1)! > 2); attempt++) {
    await whileDaemonStopped(async (port, workerPids) => {
      const pids = new Set<number>();
      let served = 0;
      const open: Socket[] = [];
      for (let i = 0; i < 20; i++) {
        const s = await connect(port);
        open.push(s);
        const who = await Promise.race([ask(s, 'who\n'), sleep(5000, undefined, { ref: false })]);
        if (who === undefined) break;
        served++;
        pids.add(Number(who.split(' ')[0]));
        s.end();
        await untilClosed(s);
      }
      for (const s of open) s.destroy();
      counts.push(served);
      assert.ok(
        [...pids].every((p) => workerPids().includes(p)),
        'served by the workers',
      );
    });
  }
  assert.ok(
    counts.at(-1)! > 2,
    `more connections than workers served (served per daemon: ${counts.join(', ')})`,
  );
});

test('LF -c 1: a busy worker takes no second connection; it waits and is served next', async () => {
  const { daemon, port } = await startDaemon(modelArgs('LF', 1, ECHO));
  try {
    const a = await connect(port);
    const [pid] = (await ask(a, 'who\n')).split(' ');
    // Shorter than the 10 ms after which a busy worker is reported: b waits in the accept queue.
    const b = await connect(port);
    let fromB = '';
    b.setEncoding('utf8').on('data', (d: string) => {
      fromB += d;
    });
    b.write('who\n');
    await sleep(300);
    assert.equal(fromB, '', 'nothing for b while the one worker serves a');
    assert.equal(await roundTrip(a, 'still a'), 'still a');
    a.end();
    await waitUntil(() => fromB.endsWith('\n'), 'b to be served once a is over');
    assert.equal(fromB.split(' ')[0], pid);
    b.destroy();
  } finally {
    await stopCleanly(daemon);
  }
});
