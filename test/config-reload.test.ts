// SIGHUP with --config: the file is read again, live values apply without dropping a connection,
// the others are reported as needing a restart, a broken file changes nothing (real processes).
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { DAEMON_COMMAND } from '../src/params.js';
import { renderUsage } from '../src/platform/usage.js';
import { PROXY_COMMAND } from '../src/proxy/config.js';
import { readStatus } from '../src/status.js';
import {
  type DaemonProcess,
  FIXTURES,
  type LogLine,
  runCli,
  startDaemon,
  stopCleanly,
} from './helpers/daemon.js';
import { BUSINESS, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { ask, connect, readLine, roundTrip, startLoadLoop, untilClosed } from './helpers/net.js';
import { type TestServer, taggedEcho } from './helpers/proxy.js';
import { waitUntil } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const ECHO = join(FIXTURES, 'worker-echo.mjs');

function configFile(config: object): { path: string; write(config: object | string): void } {
  const path = join(tempDir('tcpd-config-'), 'config.json');
  const write = (c: object | string) => writeFileSync(path, typeof c === 'string' ? c : JSON.stringify(c));
  write(config);
  return { path, write };
}

const isOutcome = (l: LogLine) => /^config reload/.test(String(l.msg));

/** Writes `config`, sends SIGHUP and resolves with the reload's outcome line (applied or failed). */
async function reloadTo(
  daemon: DaemonProcess,
  file: ReturnType<typeof configFile>,
  config: object | string,
): Promise<LogLine> {
  const seen = daemon.logs.filter(isOutcome).length;
  file.write(config);
  daemon.signal('SIGHUP');
  return waitUntil(() => daemon.logs.filter(isOutcome)[seen], 'the config reload outcome');
}

/** Opens `n` connections, each answered (so each is held by a worker) before the next. */
async function hold(port: number, n: number): Promise<Socket[]> {
  const held: Socket[] = [];
  for (let i = 0; i < n; i++) {
    const s = await connect(port);
    held.push(s);
    assert.match(await ask(s, 'who'), / v1$/, `connection ${i + 1} of ${n} is served`);
  }
  return held;
}

/** Resolves once a new connection is served (the daemon has seen earlier ones close). */
async function untilServed(port: number): Promise<void> {
  for (let i = 0; ; i++) {
    const s = await connect(port);
    s.on('error', () => undefined);
    try {
      if ((await ask(s, 'x')) === 'x') return;
    } catch (err) {
      if (i >= 100) throw err;
    } finally {
      s.destroy();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Resolves once the daemon's status counts no open connection (workers: as they last reported). */
async function untilNoConnections(statusSocket: string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while ((await readStatus(statusSocket)).connections !== 0) {
    if (Date.now() > deadline) throw new Error('timed out waiting for the daemon to count no connection');
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The next connection is closed unanswered (over --max-connections). */
async function assertRefused(port: number): Promise<void> {
  const s = await connect(port);
  s.on('error', () => undefined);
  s.write('who\n');
  const { data } = await untilClosed(s);
  assert.equal(data, '', 'a connection over the limit gets no answer');
}

const limitCases = [
  { model: 'IOMP', workers: 1 },
  { model: 'IOMP', workers: 2 },
  // LF serves one connection per worker: four workers, so four held connections are all served.
  { model: 'LF', workers: 4 },
];

for (const { model, workers } of limitCases) {
  test(`${model} -c ${workers}: --max-connections raised in the file applies after SIGHUP, zero failed connections under a connect loop`, async () => {
    const file = configFile({ maxConnections: 2, handler: ECHO });
    const statusSocket = join(tempDir('tcpd-status-'), 'status.sock');
    // Flags still override the file: -c and -m come from argv.
    const { daemon, port } = await startDaemon([
      '--config',
      file.path,
      '-m',
      model,
      '-c',
      String(workers),
      '-l',
      '127.0.0.1:0',
      '--status-socket',
      statusSocket,
    ]);
    try {
      let held = await hold(port, 2);
      await assertRefused(port);
      for (const s of held) s.destroy();
      await untilServed(port);

      // One loop: its closed connection (not yet seen closed by the server) and its next one fit in 2.
      const load = startLoadLoop(port, { loops: 1, maxMs: 60_000 });
      await waitUntil(() => load.stats.ok >= 20, 'load before the reload');
      const outcome = await reloadTo(daemon, file, { maxConnections: 4, handler: ECHO });
      assert.equal(outcome.msg, 'config reloaded');
      assert.deepEqual(outcome.changes, ['--max-connections (2 → 4)']);
      if (workers > 1 || model !== 'IOMP') await daemon.waitForMsg('reload done', 30_000);
      const during = load.stats.ok;
      await waitUntil(() => load.stats.ok >= during + 20, 'load after the reload', 30_000);
      const stats = await load.stop();
      assert.deepEqual(stats.errors, []);
      assert.equal(stats.failed, 0);

      // The loop's last connection may not have reached the server's close yet (then it would
      // take one of the 4; inferred, not observed): wait until the daemon counts none.
      await untilNoConnections(statusSocket);
      held = await hold(port, 4);
      await assertRefused(port);
      for (const s of held) s.destroy();
    } finally {
      await stopCleanly(daemon);
    }
  });
}

test('a value that cannot change live is reported as needing a restart and keeps its running value; the live ones in the same file apply', async () => {
  const file = configFile({ listen: '127.0.0.1:0', handler: ECHO, timeout: 0 });
  const { daemon, port } = await startDaemon(['--config', file.path]);
  try {
    const outcome = await reloadTo(daemon, file, {
      listen: '127.0.0.1:1',
      handler: ECHO,
      model: 'LF',
      timeout: 0.3,
    });
    assert.equal(outcome.msg, 'config reloaded');
    assert.deepEqual(outcome.changes, ['--timeout (0 → 0.3)']);
    const restart = daemon.logs.filter((l) => /^needs a restart/.test(String(l.msg))).map((l) => l.msg);
    assert.deepEqual(restart, [
      'needs a restart: -m (default → LF); the running value is kept',
      'needs a restart: -l (127.0.0.1:0 → 127.0.0.1:1); the running value is kept',
    ]);
    // Still the same listener and model; the new idle timeout closes an idle connection.
    const s = await connect(port);
    assert.match(await ask(s, 'who'), / 0 v1$/, 'IOMP -c 1 answers from the daemon (worker 0)');
    const closed = await untilClosed(s, 10_000);
    assert.equal(closed.error, undefined);
  } finally {
    await stopCleanly(daemon);
  }
});

test('a broken file (bad JSON, unknown key, invalid value) keeps the running config and logs why, as the start would', async () => {
  const file = configFile({ listen: '127.0.0.1:0', handler: ECHO, maxConnections: 1 });
  const { daemon, port } = await startDaemon(['--config', file.path]);
  try {
    const broken = [
      '{"maxConnections": 3,',
      { listen: '127.0.0.1:0', handler: ECHO, maxConections: 3 },
      { listen: '127.0.0.1:0', handler: ECHO, maxConnections: -3 },
    ];
    for (const config of broken) {
      const outcome = await reloadTo(daemon, file, config);
      assert.match(String(outcome.msg), /^config reload failed: .*; nothing changed$/);
      // The start with this file fails with the same reason.
      const start = await runCli(['--config', file.path]);
      assert.equal(start.code, 1);
      assert.equal(start.stderr.split('\n')[0], `tcpdaemon: ${outcome.reason}`);
    }
    assert.match(
      String(daemon.logs.filter(isOutcome)[1]!.reason),
      /unknown parameter 'maxConections' \(did you mean 'maxConnections'\?\)/,
    );
    // The running limit is still 1.
    const [held] = await hold(port, 1);
    await assertRefused(port);
    held!.destroy();
  } finally {
    await stopCleanly(daemon);
  }
});

for (const workers of [1, 2]) {
  test(`the log level set in the file takes effect on SIGHUP (-c ${workers})`, async () => {
    const file = configFile({ listen: '127.0.0.1:0', handler: ECHO, loglevel: 'info' });
    const { daemon, port } = await startDaemon(['--config', file.path, '-c', String(workers)]);
    try {
      const opened = () => daemon.logs.filter((l) => l.msg === 'connection open').length;
      const probe = async () => {
        const s = await connect(port);
        await ask(s, 'x');
        s.destroy();
      };
      await probe();
      const outcome = await reloadTo(daemon, file, {
        listen: '127.0.0.1:0',
        handler: ECHO,
        loglevel: 'debug',
      });
      assert.deepEqual(outcome.changes, ['--loglevel (info → debug)']);
      assert.equal(opened(), 0, 'no debug line at info');
      if (workers > 1) await daemon.waitForMsg('reload done', 30_000);
      await probe();
      await daemon.waitForMsg('connection open');
    } finally {
      await stopCleanly(daemon);
    }
  });
}

for (const workers of [1, 2]) {
  test(`proxy -c ${workers}: backends added and removed by SIGHUP under a connect loop, zero failed connections; a removed backend's open connection finishes`, async () => {
    const servers: TestServer[] = [await taggedEcho('a'), await taggedEcho('b')];
    const [a, b] = servers as [TestServer, TestServer];
    // A retiring front worker (-c 2) keeps the connection opened before the reloads this long.
    const base = { listen: '127.0.0.1:0', shutdownTimeout: 60 };
    const file = configFile({ ...base, backends: [`127.0.0.1:${a.port}`] });
    const { daemon, port } = await startDaemon(['proxy', '--config', file.path, '-c', String(workers)]);
    const tagOf = async (): Promise<string> => {
      const s = await connect(port);
      try {
        return await readLine(s);
      } finally {
        s.destroy();
      }
    };
    const readyAt = (from: number, to: number) =>
      daemon.logs
        .slice(from, to)
        .filter((l) => l.msg === 'worker ready')
        .map((l) => l.workerPid);
    try {
      const tagLoop = loopTags(tagOf);
      await waitUntil(() => tagLoop.seen.a >= 10, 'load through backend a');
      assert.equal(tagLoop.seen.b, 0);

      // A connection open on a now that stays open after a is removed.
      const kept = await connect(port);
      assert.equal(await readLine(kept), 'a');

      const added = await reloadTo(daemon, file, {
        ...base,
        backends: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port},weight=3`],
      });
      assert.equal(added.msg, 'config reloaded');
      if (workers > 1) await daemon.waitForMsg('reload done', 30_000);
      const secondGeneration = daemon.logs.length;
      await waitUntil(() => tagLoop.seen.b >= 10, 'load through the added backend b', 30_000);

      const removed = await reloadTo(daemon, file, { ...base, backends: [`127.0.0.1:${b.port}`] });
      assert.equal(removed.msg, 'config reloaded');
      if (workers > 1) {
        await daemon.waitForLog(
          (l) => l.msg === 'reload done' && l !== daemon.logs.find((x) => x.msg === 'reload done'),
          30_000,
        );
        // The workers that still had backend a must be gone (they may accept until told to retire).
        const replaced = readyAt(0, secondGeneration).slice(-workers);
        await waitUntil(
          () =>
            replaced.every((pid) =>
              daemon.logs.some((l) => l.msg === 'worker exited' && l.workerPid === pid),
            ) || undefined,
          'the workers of the first reload to exit',
          30_000,
        );
      }
      const removedAt = Date.now();
      const bAfter = tagLoop.seen.b;
      await waitUntil(() => tagLoop.seen.b >= bAfter + 20, 'load after the removal', 30_000);
      const stats = await tagLoop.stop();
      assert.deepEqual(stats.errors, []);
      assert.deepEqual(
        tagLoop.events.filter((e) => e.tag === 'a' && e.at > removedAt),
        [],
        'no new connection to the removed backend',
      );
      // The connection opened on a before its removal still goes through to a.
      assert.equal(await roundTrip(kept, 'still there'), 'still there');
      kept.destroy();
    } finally {
      await stopCleanly(daemon);
      for (const s of servers) await s.close();
    }
  });
}

/** Two connect loops asking `tagOf` which backend answered; counts per tag and failures. */
function loopTags(tagOf: () => Promise<string>) {
  const seen: Record<string, number> = { a: 0, b: 0 };
  /** Which backend answered each connection, and when it was opened (Date.now()). */
  const events: { tag: string; at: number }[] = [];
  const errors: string[] = [];
  let running = true;
  const deadline = Date.now() + 60_000;
  const loop = async () => {
    while (running && Date.now() < deadline) {
      const at = Date.now();
      try {
        const tag = await tagOf();
        seen[tag] = (seen[tag] ?? 0) + 1;
        events.push({ tag, at });
      } catch (err) {
        if (errors.length < 20) errors.push((err as NodeJS.ErrnoException).code ?? (err as Error).message);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  };
  const loops = [loop(), loop()];
  return {
    seen,
    events,
    async stop() {
      running = false;
      await Promise.all(loops);
      return { errors };
    },
  };
}

test('gateway: --max-connections and the idle timeout change with SIGHUP; open connections stay', async () => {
  const file = configFile({ listen: '127.0.0.1:0', business: BUSINESS, maxConnections: 1 });
  const { daemon, port } = await startDaemon(['gateway', '--config', file.path]);
  const clients: Awaited<ReturnType<typeof gatewayClient>>[] = [];
  try {
    const first = await gatewayClient(port);
    clients.push(first);
    assert.equal((await first.client.request(1, 'one')).toString(), 'one');
    const refused = await gatewayClient(port);
    clients.push(refused);
    await waitUntil(() => !refused.client.connected, 'the second connection refused');

    const outcome = await reloadTo(daemon, file, {
      listen: '127.0.0.1:0',
      business: BUSINESS,
      maxConnections: 2,
      timeout: 0.3,
    });
    assert.equal(outcome.msg, 'config reloaded');
    assert.deepEqual(outcome.changes, ['--timeout (default → 0.3)', '--max-connections (1 → 2)']);
    const second = await gatewayClient(port);
    clients.push(second);
    assert.equal((await second.client.request(1, 'two')).toString(), 'two');
    // The gateway processes took the new idle timeout: an idle client is closed.
    await waitUntil(() => !second.client.connected, 'the idle client closed by the new --timeout', 10_000);
    assert.ok(daemon.logs.some((l) => l.msg === 'client connection refused'));
  } finally {
    for (const c of clients) await c.close();
    await stopCleanly(daemon);
  }
});

test('help says which values SIGHUP applies live, from the declarations', () => {
  const help = renderUsage(DAEMON_COMMAND);
  const line = help.split('\n').find((l) => l.includes('SIGHUP re-reads it'));
  assert.ok(line, help);
  for (const flag of ['--timeout', '--max-connections', '--loglevel', '--max-waiting'])
    assert.ok(line.includes(flag), line);
  for (const flag of ['-l', '-m', '-c', '-s']) assert.ok(!line.includes(` ${flag},`), line);
  const proxyHelp = renderUsage(PROXY_COMMAND);
  assert.match(proxyHelp, /SIGHUP re-reads it: .*--backend/);
});
