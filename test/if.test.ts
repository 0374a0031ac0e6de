import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { assertSigtermDrains, FIXTURES, modelArgs, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses, findLeftovers } from './helpers/leftovers.js';
import { ask, connect, readBytes, readLine, untilClosed } from './helpers/net.js';
import { waitUntil } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();
const counter = join(FIXTURES, 'counter.mjs');
const commands = join(FIXTURES, 'commands.mjs');
const drain = join(FIXTURES, 'drain.mjs');

/** utime + stime of `pid` in clock ticks (1/100 s on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(fields[11]) + Number(fields[12]);
}

test('-m IF: every connection gets a process of its own, with fresh module state', async () => {
  await withDaemon(modelArgs('IF', 2, counter), async ({ daemon, port }) => {
    const pids = new Set<string>();
    const ids = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const s = await connect(port);
      const [count, pid, connectionId] = (await readLine(s)).split(' ');
      assert.equal(count, '1', 'module-level counter of a fresh process');
      assert.notEqual(Number(pid), daemon.pid);
      pids.add(pid!);
      ids.add(connectionId!);
      s.end();
      await untilClosed(s);
    }
    assert.equal(pids.size, 6, 'one process per connection');
    assert.equal(ids.size, 6, 'connection ids are unique across processes');
    // Each process exits as its connection closes; the daemon reaps it (never a lasting zombie).
    await waitUntil(
      () => findLeftovers().every((p) => !p.zombie),
      'exited connection processes to be reaped',
    );
  });
});

test('bytes the client sends before its process has the socket are all served', async () => {
  await withDaemon(
    ['-m', 'IF', '-c', '1', '--spares', '1', '-l', '127.0.0.1:0', '-s', counter],
    async ({ port }) => {
      const payload = Buffer.alloc(48 * 1024, 'abcdefgh');
      const first = await connect(port);
      first.write(payload); // at once: the daemon holds the socket, paused
      assert.equal((await readLine(first)).split(' ')[0], '1');
      assert.deepEqual(await readBytes(first, payload.length), payload);
      // A second connection waits in the queue (-c 1) and writes meanwhile.
      const second = await connect(port);
      second.write('queued bytes');
      await sleep(100);
      first.end();
      assert.equal((await readLine(second)).split(' ')[0], '1');
      assert.equal((await readBytes(second, 12)).toString(), 'queued bytes');
      second.end();
    },
  );
});

test('above -c N connections wait in a bounded queue; beyond --max-waiting they are closed with a logged reason', async () => {
  await withDaemon(
    // --max-waiting bounds the connections waiting for a free process.
    ['-m', 'IF', '-c', '1', '--spares', '1', '--max-waiting', '1', '-l', '127.0.0.1:0', '-s', counter],
    async ({ daemon, port }) => {
      const busy = await connect(port);
      await readLine(busy);
      const queued = await connect(port);
      const refused = await connect(port);
      const { data } = await untilClosed(refused);
      assert.equal(data, '');
      const line = await daemon.waitForMsg(
        'connection refused: no worker free and --max-waiting connections wait already',
      );
      assert.equal(line.waiting, 1);
      busy.end();
      assert.equal((await readLine(queued)).split(' ')[0], '1');
      queued.end();
    },
  );
});

test('a crashing connection process costs only its own connection', async () => {
  await withDaemon(modelArgs('IF', 3, commands), async ({ daemon, port }) => {
    const other = await connect(port);
    assert.equal(await ask(other, 'hello'), 'hello');
    const exiting = await connect(port);
    const exitClosed = untilClosed(exiting);
    exiting.write('exit\n');
    await exitClosed;
    const throwing = await connect(port);
    const throwClosed = untilClosed(throwing);
    throwing.write('throw\n');
    await throwClosed;
    await daemon.waitForMsg('uncaught exception in handler code; the connection process exits');
    await daemon.waitForLog(
      (l) => l.msg === 'connection process ended abnormally; its connection is lost' && l.code === 3,
    );
    assert.equal(await ask(other, 'still served'), 'still served');
    const fresh = await connect(port);
    assert.equal(await ask(fresh, 'new'), 'new');
    fresh.end();
    other.end();
    assert.equal(daemon.child.exitCode, null);
  });
});

test('SIGTERM with a connection process running: no spinning, the connection is cut after --shutdown-timeout, exit 0', async () => {
  await withDaemon(
    ['-m', 'IF', '-l', '127.0.0.1:0', '-s', drain, '--param', 'ignore=1', '--shutdown-timeout', '2'],
    async ({ daemon, port }) => {
      const s = await connect(port);
      assert.equal((await readBytes(s, 8)).toString(), 'started\n');
      const closed = untilClosed(s);
      daemon.signal('SIGTERM');
      await daemon.waitForMsg('stopping: no new connections');
      const before = cpuTicks(daemon.pid);
      await sleep(1500);
      const spent = cpuTicks(daemon.pid) - before;
      assert.ok(spent < 75, `daemon used ${spent * 10} ms of CPU in 1.5 s of waiting`);
      await closed;
      assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
      const cut = await daemon.waitForMsg('shutdown timeout: open connections destroyed');
      assert.notEqual(cut.pid, daemon.pid, 'cut by the connection process itself');
    },
  );
});

test('SIGTERM: a connection that finishes in time ends normally; env.signal is aborted in the child', async () => {
  await withDaemon(['-m', 'IF', '-l', '127.0.0.1:0', '-s', drain], ({ daemon, port }) =>
    assertSigtermDrains(daemon, port),
  );
});

test('a unix socket: every connection gets its own process; stop removes the socket file', async () => {
  const path = join(tempDir('tcpdaemon-if-'), 'if.sock');
  await withDaemon(['-m', 'IF', '-c', '2', '-l', path, '-s', counter], async ({ daemon }) => {
    const pids = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const s = await connect(path);
      const [count, pid, connectionId] = (await readLine(s)).split(' ');
      assert.equal(count, '1');
      assert.match(connectionId!, /^\d+\.\d+-1$/);
      pids.add(pid!);
      assert.equal(await ask(s, 'over unix'), 'over unix');
      s.end();
      await untilClosed(s);
    }
    assert.equal(pids.size, 3);
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    assert.equal(existsSync(path), false);
  });
});

test('--max-connections counts connections being served and waiting; the excess is closed at once', async () => {
  await withDaemon(
    ['-m', 'IF', '-c', '1', '--spares', '1', '--max-connections', '2', '-l', '127.0.0.1:0', '-s', counter],
    async ({ daemon, port }) => {
      const served = await connect(port);
      assert.equal((await readLine(served)).split(' ')[0], '1');
      const waiting = await connect(port); // -c 1: waits for the first to end
      const refused = await connect(port);
      const { data } = await untilClosed(refused);
      assert.equal(data, '');
      assert.equal((await daemon.waitForMsg('connection refused: --max-connections reached')).max, 2);
      served.end();
      assert.equal((await readLine(waiting)).split(' ')[0], '1', 'the waiting one is served next');
      const later = await connect(port);
      assert.equal(await ask(waiting, 'still'), 'still');
      waiting.end();
      assert.equal((await readLine(later)).split(' ')[0], '1', 'room again once one closed');
      later.end();
    },
  );
});
