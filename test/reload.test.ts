import assert from 'node:assert/strict';
import { copyFileSync, existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  DaemonProcess,
  FIXTURES,
  type LogLine,
  modelArgs,
  startDaemon,
  stopCleanly,
} from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip, startLoadLoop } from './helpers/net.js';
import { waitUntil } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

/** A copy of worker-echo.mjs in a fresh folder, so a test can rewrite it. */
function handlerCopy(): string {
  const path = join(tempDir('tcpd-reload-'), 'handler.mjs');
  copyFileSync(join(FIXTURES, 'worker-echo.mjs'), path);
  return path;
}

function setVersion(path: string, version: string): void {
  const text = readFileSync(path, 'utf8').replace(
    /const VERSION = '[^']*';/,
    `const VERSION = '${version}';`,
  );
  writeFileSync(path, text);
}

async function version(port: number): Promise<string> {
  const s = await connect(port);
  try {
    return (await roundTrip(s, 'who\n')).trim().split(' ')[2]!;
  } finally {
    s.destroy();
  }
}

for (const model of ['IOMP', 'LF']) {
  test(`${model}: SIGHUP under a load loop: zero failed connections, the new handler code answers afterwards`, async () => {
    const handler = handlerCopy();
    const { daemon, port } = await startDaemon(['-m', model, '-c', '2', '-l', '127.0.0.1:0', '-s', handler]);
    try {
      assert.equal(await version(port), 'v1');
      const before = daemon.logs.filter((l) => l.msg === 'worker ready').map((l) => l.workerPid);
      const load = startLoadLoop(port, { loops: 2 });
      await waitUntil(() => load.stats.ok >= 30, 'load before the reload');
      setVersion(handler, 'v2');
      daemon.signal('SIGHUP');
      await daemon.waitForMsg('reload done');
      const during = load.stats.ok;
      await waitUntil(() => load.stats.ok >= during + 30, 'load after the reload');
      const stats = await load.stop();
      assert.deepEqual(stats.errors, []);
      assert.equal(stats.failed, 0);
      for (let i = 0; i < 4; i++) assert.equal(await version(port), 'v2');
      // Every old worker was retired gracefully (exit 0), after its replacement was ready.
      const exits = await waitUntil(() => {
        const found = daemon.logs.filter((l) => l.msg === 'worker exited' && before.includes(l.workerPid));
        return found.length === 2 && found;
      }, 'old workers to exit');
      assert.deepEqual(
        exits.map((l) => [l.code, l.reason]),
        [
          [0, 'reload'],
          [0, 'reload'],
        ],
      );
    } finally {
      await stopCleanly(daemon);
    }
  });
}

// With a per-address limit each new connection waits for the daemon's answer (one round trip): a
// worker told to retire meanwhile must serve it, not close it. Before the fix 1 to 3 of these
// connections failed in 5 of 6 runs (Node 20, 24): IOMP and LF closed them, a TLF thread exited.
for (const model of ['IOMP', 'LF', 'TLF']) {
  test(`${model} -c 2 --max-conns-per-ip: SIGHUPs under connect loops fail no connection`, async () => {
    const { daemon, port } = await startDaemon(
      modelArgs(model, 2, join(FIXTURES, 'worker-echo.mjs'), '--max-conns-per-ip', '1000'),
    );
    try {
      const load = startLoadLoop(port, { loops: 4, maxMs: 120_000 });
      for (let i = 1; i <= 5; i++) {
        const ok = load.stats.ok;
        await waitUntil(() => load.stats.ok >= ok + 30, `load before reload ${i}`, 30_000);
        const done = daemon.logs.filter((l) => l.msg === 'reload done').length;
        daemon.signal('SIGHUP');
        await waitUntil(
          () => daemon.logs.filter((l) => l.msg === 'reload done').length > done,
          `reload ${i} done`,
          30_000,
        );
      }
      const stats = await load.stop();
      assert.equal(
        stats.failed,
        0,
        `${stats.failed} of ${stats.ok + stats.failed} failed: ${stats.errors.join(', ')}`,
      );
    } finally {
      await stopCleanly(daemon);
    }
  });
}

test('IF: SIGHUP replaces the spares with the new code, no connection fails, a served connection keeps its process', async () => {
  const handler = handlerCopy();
  const { daemon, port } = await startDaemon([
    '-m',
    'IF',
    '-c',
    '4',
    '--spares',
    '2',
    '-l',
    '127.0.0.1:0',
    '-s',
    handler,
  ]);
  try {
    const held = await connect(port);
    const heldWho = await roundTrip(held, 'who\n');
    assert.equal(heldWho.trim().split(' ')[2], 'v1');
    // The other spare loaded v1 at start and waits: without the reload it would serve next.
    setVersion(handler, 'v2');
    daemon.signal('SIGHUP');
    await daemon.waitForMsg('reload done');
    for (let i = 0; i < 3; i++) assert.equal(await version(port), 'v2');
    // A reload under load: connections wait for the new spares, none fails.
    const load = startLoadLoop(port, { loops: 2 });
    await waitUntil(() => load.stats.ok >= 10, 'load before the second reload');
    daemon.signal('SIGHUP');
    await daemon.waitForLog(
      (l) => l.msg === 'reload done' && l !== daemon.logs.find((x) => x.msg === 'reload done'),
    );
    const during = load.stats.ok;
    await waitUntil(() => load.stats.ok >= during + 10, 'load after the reload');
    const stats = await load.stop();
    assert.deepEqual(stats.errors, []);
    // The connection taken before the reloads is still served by its own process.
    assert.equal(await roundTrip(held, 'who\n'), heldWho);
    held.destroy();
  } finally {
    await stopCleanly(daemon);
  }
});

test('a reload to a broken handler keeps the old workers; a crashed worker then backs off with CPU to spare', async () => {
  const handler = handlerCopy();
  const { daemon, port } = await startDaemon(
    modelArgs('IOMP', 2, handler, '--restart-delay', '0.05', '--restart-delay-max', '0.4'),
  );
  try {
    writeFileSync(handler, "throw new Error('deployed a broken handler');\n");
    daemon.signal('SIGHUP');
    const failed = await daemon.waitForMsg('reload failed; remaining workers keep serving');
    assert.match(String(failed.err), /exited/);
    assert.equal(await version(port), 'v1', 'the old workers still serve');

    // A worker that dies now restarts into the broken file: a crash loop, visible and cheap.
    const [victim] = daemon.logs.filter((l) => l.msg === 'worker ready').map((l) => l.workerPid as number);
    const cpu0 = cpuSeconds(daemon.pid);
    const t0 = Date.now();
    process.kill(victim!, 'SIGKILL');
    // Waits for the crash loop rather than counting restarts in a fixed window: on a busy
    // machine a restart into the broken file can take most of a second.
    const crashes = () => daemon.logs.filter((l) => l.msg === 'worker exited' && l.reason === 'crashed');
    await waitUntil(() => crashes().length >= 5, 'five crash exits', 30_000);
    const elapsedMs = Date.now() - t0;
    const cpuShare = (cpuSeconds(daemon.pid) - cpu0) / (elapsedMs / 1000);
    const loop: LogLine[] = crashes();
    const delays = loop.map((l) => l.nextDelayMs as number);
    // The restarts waited out their delays: backoff, not a spin.
    const waited = delays.slice(0, loop.length - 1).reduce((a, b) => a + b, 0);
    assert.ok(elapsedMs >= waited, `${loop.length} restarts in ${elapsedMs} ms, delays ${delays.join(', ')}`);
    assert.ok(delays[1]! < delays[2]! && delays[2]! < delays[3]!, `delays grow: ${delays.join(', ')}`);
    assert.ok(
      delays.every((d) => d <= 400),
      `delays: ${delays.join(', ')}`,
    );
    assert.equal(loop.at(-1)!.crashLoop, true);
    assert.ok(
      daemon.logs.some(
        (l) => l.msg === 'worker could not start' && /deployed a broken handler/.test(String(l.err)),
      ),
      'the worker says why',
    );
    // A spin would keep at least a whole core busy; restarts that wait out their delays cost a
    // fraction (each start loads node and the handler, which on a busy machine takes longer).
    assert.ok(cpuShare < 0.9, `CPU share of one core (daemon and its workers): ${cpuShare.toFixed(2)}`);
    assert.equal(await version(port), 'v1', 'the other worker keeps serving');
  } finally {
    await stopCleanly(daemon);
  }
});

test('SIGUSR1: the daemon and every worker reopen the log file', async () => {
  const dir = tempDir('tcpd-log-');
  const logfile = join(dir, 'd.log');
  const daemon = new DaemonProcess(
    modelArgs('IOMP', 2, join(FIXTURES, 'worker-echo.mjs'), '--logfile', logfile, '--loglevel', 'debug'),
  );
  const lines = (path: string): LogLine[] =>
    existsSync(path)
      ? readFileSync(path, 'utf8')
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as LogLine)
      : [];
  try {
    const listening = await waitUntil(() => lines(logfile).find((l) => l.msg === 'listening'), 'listening');
    const port = Number(/:(\d+)$/.exec(String(listening.address))![1]);
    renameSync(logfile, `${logfile}.1`);
    daemon.signal('SIGUSR1');
    await waitUntil(
      () => lines(logfile).some((l) => l.msg === 'log file reopened (SIGUSR1)'),
      'the reopened file',
    );
    await sleep(200);
    // New connections in both workers log into the new file. They are held open: the kernel may
    // give one worker many in a row, and the fair share then sends the rest to the other.
    const workers = new Set<unknown>();
    const held: Socket[] = [];
    try {
      for (let i = 0; i < 200 && workers.size < 2; i++) {
        const s = await connect(port);
        held.push(s);
        await roundTrip(s, 'x');
        await sleep(20);
        for (const l of lines(logfile)) if (l.msg === 'connection open') workers.add(l.worker);
      }
    } finally {
      for (const s of held) s.destroy();
    }
    assert.deepEqual([...workers].sort(), [1, 2]);
  } finally {
    await stopCleanly(daemon);
  }
});

/** User and system CPU of `pid` and of its reaped children, seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'latin1').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}
