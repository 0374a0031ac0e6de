import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { FairShare, fairCeilings, loadReportDelay } from '../src/models/iomp/fair-share.js';
import type { WorkerHandle } from '../src/supervisor/supervisor.js';
import { LOAD_REPORT_MS, LOAD_SETTLE_MS } from '../src/worker/messages.js';
import {
  assertSigtermDrains,
  type DaemonProcess,
  FIXTURES,
  type LogLine,
  modelArgs,
  readyPids,
  runCli,
  startDaemon,
} from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { backToBack, connect, roundTrip, startLoadLoop, untilClosed } from './helpers/net.js';
import { waitUntil } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const ECHO = join(FIXTURES, 'worker-echo.mjs');

/** Asks a worker-echo connection who serves it: [pid, workerId, version]. */
async function who(port: number | string): Promise<[number, number, string]> {
  const s = await connect(port);
  try {
    const [pid, id, version] = (await roundTrip(s, 'who\n')).trim().split(' ');
    return [Number(pid), Number(id), version!];
  } finally {
    s.destroy();
  }
}

function exitsOf(daemon: DaemonProcess, pred: (l: LogLine) => boolean = () => true): LogLine[] {
  return daemon.logs.filter((l) => l.msg === 'worker exited' && pred(l));
}

test('fair share: a worker may hold the busiest other load plus a slack; never two at their ceiling', () => {
  assert.deepEqual(fairCeilings([0, 0], 0), { ceilings: [6, 6], full: false });
  // 50 open: a slack of ceil(3 * sqrt(50)) = 22, above a fifth of the average (4).
  assert.deepEqual(fairCeilings([30, 10, 10], 0), { ceilings: [32, 52, 52], full: false });
  // 3000 open: a fifth of the average (200) is the larger.
  assert.deepEqual(fairCeilings([1500, 500, 1000], 0), { ceilings: [1200, 1700, 1700], full: false });
  assert.deepEqual(fairCeilings([7], 0), { ceilings: [null], full: false });
  assert.deepEqual(fairCeilings([2, 2], 2).full, true);
  assert.deepEqual(fairCeilings([2, 1], 2).full, false);
  fc.assert(
    fc.property(fc.array(fc.nat(500), { minLength: 2, maxLength: 16 }), (loads) => {
      const { ceilings } = fairCeilings(loads, 0);
      // From one snapshot, at most one worker is at or above its ceiling: someone always accepts.
      return loads.filter((l, i) => l >= ceilings[i]!).length <= 1;
    }),
  );
});

test('fair share: a worker hears of a moved ceiling when it moved by half the slack, or when the worker is near it', () => {
  const told: Record<string, unknown[]> = { a: [], b: [] };
  const worker = (name: string) =>
    ({
      send: (m: unknown) => {
        told[name]!.push(m);
        return Promise.resolve();
      },
    }) as unknown as WorkerHandle;
  const fair = new FairShare({ perWorkerMax: 0, enabled: true });
  const a = worker('a');
  const b = worker('b');
  fair.add(a);
  fair.add(b);
  const lastToB = () => (told.b!.at(-1) as { ceiling: number }).ceiling;
  fair.report(a, 25); // 25 open, a slack of 15: b may hold 40
  fair.report(b, 25); // 50 open, a slack of 22: b's ceiling 47, 7 from what it was told
  assert.equal(lastToB(), 40);
  const heard = told.b!.length;
  // Churn: a's count wanders and b's ceiling with it (43 to 50), by less than half the slack from 40.
  for (const n of [28, 22, 26, 20]) fair.report(a, n);
  assert.equal(told.b!.length, heard, JSON.stringify(told.b!.slice(heard)));
  fair.report(a, 33); // 58 open, a slack of 23: 56, 16 from 40
  assert.equal(lastToB(), 56);
  // Near its ceiling every move is told: b may be holding back for a raise.
  fair.report(b, 62); // 95 open, a slack of 30: 63
  assert.equal(lastToB(), 63);
  fair.report(a, 34); // 64
  assert.equal(lastToB(), 64);
  assert.deepEqual(told.b!.at(-1), { tdm: 'accept', ceiling: 64, full: false });
});

test('load reports: a burst within LOAD_REPORT_MS, churn within LOAD_SETTLE_MS, no change not at all', () => {
  assert.equal(loadReportDelay(5, 5), undefined);
  assert.equal(loadReportDelay(1, 0), LOAD_SETTLE_MS);
  assert.equal(loadReportDelay(2, 0), LOAD_REPORT_MS);
  assert.equal(loadReportDelay(0, 2), LOAD_REPORT_MS);
  // 25 open: a move of 4 is churn, of 5 (the square root) a burst, either way.
  assert.equal(loadReportDelay(29, 25), LOAD_SETTLE_MS);
  assert.equal(loadReportDelay(21, 25), LOAD_SETTLE_MS);
  assert.equal(loadReportDelay(30, 25), LOAD_REPORT_MS);
  assert.equal(loadReportDelay(20, 25), LOAD_REPORT_MS);
  assert.equal(loadReportDelay(1100, 1000), LOAD_REPORT_MS);
  assert.equal(loadReportDelay(1031, 1000), LOAD_SETTLE_MS);
});

/** Descriptors `pid` has open (its /proc entry). */
function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

// A worker at its ceiling closes its listening handle and listens again on a spare: with the
// native dup it makes the next spare itself, without it (TCPDAEMON_NATIVE=0) the daemon sends it.
for (const native of [true, false])
  test(`IOMP -c 2: two worker processes serve, each many connections at once, spread evenly (${native ? 'spares made by dup' : 'spares from the daemon'})`, async () => {
    const env = { ...process.env, ...(native ? {} : { TCPDAEMON_NATIVE: '0' }) };
    const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO), { env });
    try {
      const workers = readyPids(daemon);
      assert.equal(workers.length, 2);
      const fdsBefore = workers.map(openFds);
      const listening = daemon.logs.find((l) => l.msg === 'listening')!;
      assert.equal(listening.workers, 2);
      // 40 connections held open together: both workers serve, neither holds them all. They come
      // in bursts of 8, each answered before the next: the workers' load reports (within 10 ms of a burst, at
      // most) set the ceilings between bursts even on a loaded machine, where one worker's event
      // loop can stall long enough for the other to take a single burst of 40 whole.
      const sockets: Awaited<ReturnType<typeof connect>>[] = [];
      const seen = new Map<number, number>();
      for (let burst = 0; burst < 5; burst++) {
        const batch = await Promise.all(Array.from({ length: 8 }, () => connect(port)));
        sockets.push(...batch);
        for (const s of batch) {
          const [pid, id] = (await roundTrip(s, 'who\n')).trim().split(' ').map(Number) as [number, number];
          assert.ok(workers.includes(pid), `served by a worker, not the daemon (${pid})`);
          assert.ok(id === 1 || id === 2, `worker id ${id}`);
          seen.set(pid, (seen.get(pid) ?? 0) + 1);
        }
      }
      for (const s of sockets) s.destroy();
      assert.equal(seen.size, 2, `both workers serve: ${JSON.stringify([...seen])}`);
      for (const n of seen.values()) assert.ok(n >= 10, `spread ${JSON.stringify([...seen])}`);
      // Each stop and start left no descriptor behind: one listening, one spare, one kept for dup.
      await waitUntil(
        () => workers.every((pid, i) => openFds(pid) <= fdsBefore[i]! + 2),
        `descriptors back near ${fdsBefore.join(', ')}: ${workers.map(openFds).join(', ')}`,
      );
    } finally {
      daemon.signal('SIGTERM');
      assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    }
  });

test('kill -9 of one worker under a load loop: the other keeps serving, a replacement gets ready, nothing refused', async () => {
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO, '--restart-delay', '0.05'));
  try {
    const [victim] = readyPids(daemon) as [number];
    const load = startLoadLoop(port, { loops: 3 });
    await waitUntil(() => load.stats.ok >= 50, 'load before the kill');
    process.kill(victim, 'SIGKILL');
    const exit = await daemon.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === victim);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(typeof exit.nextDelayMs, 'number');
    await daemon.waitForLog(
      (l) =>
        l.msg === 'worker ready' &&
        !readyPids(daemon)
          .slice(0, 2)
          .includes(l.workerPid as number),
    );
    const before = load.stats.ok;
    await waitUntil(() => load.stats.ok >= before + 50, 'load after the replacement');
    const stats = await load.stop();
    // Only the connections the killed worker was serving at that moment may be lost: reset, or
    // closed with nothing echoed (the kernel sends a FIN for a socket with no unread input).
    assert.ok(!stats.errors.includes('ECONNREFUSED'), `refused: ${stats.errors.join(', ')}`);
    assert.ok(stats.failed <= 3, `failed: ${stats.errors.join(', ')}`);
    assert.ok(
      stats.errors.every((e) => e === 'ECONNRESET' || /^socket closed after 0\/\d+ bytes$/.test(e)),
      stats.errors.join(', '),
    );
  } finally {
    daemon.signal('SIGTERM');
    await daemon.waitForExit();
  }
});

test('-n recycles a worker after N connections: its pid changes, the connection count is logged', async () => {
  const { daemon, port } = await startDaemon([
    '-m',
    'IOMP',
    '-c',
    '2',
    '-n',
    '3',
    '-l',
    '127.0.0.1:0',
    '-s',
    ECHO,
    '--loglevel', // routine recycling is logged at debug
    'debug',
  ]);
  try {
    const first = readyPids(daemon);
    for (let i = 0; i < 12; i++) await who(port);
    const recycled = await daemon.waitForLog(
      (l) => l.msg === 'worker exited' && l.reason === 'recycle: served 3 connections',
    );
    assert.equal(recycled.code, 0);
    assert.ok(first.includes(recycled.workerPid as number), 'a first-generation worker was recycled');
    // Serving goes on with new processes (a worker may serve before its 'worker ready' line is read).
    const [pid] = await who(port);
    await waitUntil(() => readyPids(daemon).includes(pid), `worker ${pid} to be a logged replacement`);
    assert.ok(!first.includes(pid), 'served by a replacement');
  } finally {
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
  }
});

test('SIGTERM drains an in-flight connection in a worker, then exits 0 with no child left', async () => {
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, join(FIXTURES, 'drain.mjs')));
  const workers = readyPids(daemon);
  await assertSigtermDrains(daemon, port);
  assert.deepEqual(
    exitsOf(daemon).map((l) => [l.code, l.reason]),
    [
      [0, 'stop'],
      [0, 'stop'],
    ],
  );
  for (const pid of workers) assert.throws(() => process.kill(pid, 0), /ESRCH/);
});

test('hang detection replaces a worker stuck in a busy loop; the others keep serving', async () => {
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO, '--hang-timeout', '0.6'));
  try {
    const stuck = await connect(port);
    const [pid] = (await roundTrip(stuck, 'who\n')).trim().split(' ').map(Number) as [number];
    stuck.write('hang\n');
    const lost = untilClosed(stuck);
    // Meanwhile the other worker answers.
    assert.notEqual((await who(port))[0], pid);
    const hung = await daemon.waitForMsg('worker hung; killing it');
    assert.equal(hung.workerPid, pid);
    await lost;
    const exit = await daemon.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === pid);
    assert.equal(exit.reason, 'hung');
    await waitUntil(() => readyPids(daemon).length === 3, 'a replacement');
    const [other] = await who(port);
    assert.notEqual(other, pid);
  } finally {
    daemon.signal('SIGTERM');
    await daemon.waitForExit();
  }
});

test('--max-connections holds for the whole daemon: split across workers, the excess closed at once', async () => {
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO, '--max-connections', '4'));
  try {
    const held = [];
    for (let i = 0; i < 4; i++) {
      const s = await connect(port);
      assert.equal(await roundTrip(s, 'x'), 'x', `connection ${i + 1} of 4 is served`);
      held.push(s);
    }
    const extra = await Promise.all([connect(port), connect(port)]);
    for (const r of await Promise.all(extra.map((s) => untilClosed(s)))) {
      assert.equal(r.data, '', 'an excess connection gets nothing and is closed');
    }
    const line = await daemon.waitForMsg('connection refused: --max-connections reached');
    assert.equal(line.max, 2, 'each of the 2 workers holds at most 4 / 2');
    const closed = untilClosed(held[0]!);
    held[0]!.end();
    await closed;
    // The worker at its cap learns that the other left its own through the daemon: until then a
    // connection it takes is refused.
    let again: Socket | undefined;
    for (const deadline = Date.now() + 15_000; again === undefined; ) {
      const s = await connect(port);
      const answer = await roundTrip(s, 'y').catch(() => undefined);
      if (answer === 'y') again = s;
      else {
        s.destroy();
        assert.ok(Date.now() < deadline, 'a connection served again after one of the 4 closed');
        await sleep(100);
      }
    }
    for (const s of [...held, again]) s.destroy();
  } finally {
    daemon.signal('SIGTERM');
    await daemon.waitForExit();
  }
});

// A client that closes a connection and opens the next at once may find the worker still counting
// the closed one: with 2 workers of 1 each and one client, that worker is at its share while the
// other has room. None of these connections may be refused (6 to 72 of 300 were, on Node 20-24).
test('--max-connections 2 over 2 workers: one client opening each connection as it closes the last is never refused', async () => {
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO, '--max-connections', '2'));
  try {
    const stats = await backToBack(port, 300);
    assert.equal(stats.failed, 0, `${stats.failed} of 300 failed: ${stats.errors.join(', ')}`);
    assert.equal(stats.ok, 300);
    assert.equal(exitsOf(daemon).length, 0, 'no worker restarted meanwhile');
  } finally {
    daemon.signal('SIGTERM');
    await daemon.waitForExit();
  }
});

test('kill -9 of the daemon: its workers drain and exit on their own', async () => {
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO, '--shutdown-timeout', '0.5'));
  const workers = readyPids(daemon);
  await who(port);
  await daemon.kill();
  await waitUntil(
    () =>
      workers.every((pid) => {
        try {
          process.kill(pid, 0);
          return false;
        } catch {
          return true;
        }
      }),
    'orphaned workers to exit',
    5000,
  );
});

test('IOMP -c 2 on a unix socket', async () => {
  const path = join(tempDir('tcpd-'), 'd.sock');
  const { daemon } = await startDaemon(['-m', 'IOMP', '-c', '2', '-l', path, '-s', ECHO]);
  try {
    const [pid] = await who(path);
    await waitUntil(() => readyPids(daemon).includes(pid), `worker ${pid} in the log`);
  } finally {
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
  }
});

test('workers that cannot load the handler: start-up fails with the reason, exit 1, nothing left', async () => {
  const res = await runCli(
    modelArgs('IOMP', 2, join(FIXTURES, 'throws-in-workers.mjs'), '--restart-delay', '0.02'),
  );
  assert.equal(res.code, 1);
  assert.match(
    res.stderr,
    /tcpdaemon: workers could not start: handler .*throws-in-workers\.mjs: failed to load: Error: fixture: broken in workers/,
  );
});

for (const model of ['IOMP', 'LF', 'IF']) {
  test(`library, ${model}: a function handler runs in workers that re-run the calling script`, async () => {
    const script = spawn(process.execPath, ['--import', 'tsx', join(FIXTURES, 'library-workers.ts')], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, FIXTURE_MODEL: model },
    });
    let out = '';
    script.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    try {
      const line = await waitUntil(
        () => out.includes('\n') && out.split('\n')[0],
        'the script to listen',
        15000,
      );
      const { port } = JSON.parse(line) as { port: number };
      const seen = new Set<string>();
      // Which worker accepts is the kernel's pick: under load one may win many times in a row.
      for (let i = 0; i < 200 && seen.size < 2; i++) {
        const s = await connect(port);
        const [pid, id] = (await roundTrip(s, 'q')).split(' ');
        s.destroy();
        assert.notEqual(Number(pid), script.pid, 'served in a worker, not in the calling process');
        seen.add(id!);
      }
      assert.deepEqual([...seen].sort(), ['1', '2']);
    } finally {
      script.kill('SIGTERM');
      await new Promise((r) => script.once('exit', r));
    }
  });
}
