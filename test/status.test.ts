// --status-socket and `tcpdaemon status`: what a running daemon reports about itself.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, modelArgs, readyPids, runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, roundTrip } from './helpers/net.js';
import { socketPath, status } from './helpers/status.js';
import { waitUntil } from './helpers/supervisor.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const ECHO = join(FIXTURES, 'worker-echo.mjs');

test('IOMP -c 2: workers with pids and states; a killed worker and a reload show; the socket goes at stop', async () => {
  const path = socketPath();
  const { daemon, port } = await startDaemon(modelArgs('IOMP', 2, ECHO, '--status-socket', path));
  try {
    assert.equal(statSync(path).mode & 0o777, 0o600, 'only the owner may ask');
    await waitUntil(() => readyPids(daemon).length === 2, 'two workers ready');
    const first = await status(path);
    assert.equal(first.pid, daemon.pid);
    assert.equal(first.state, 'serving');
    assert.equal(first.model, 'IOMP -c 2');
    assert.equal(first.address, `127.0.0.1:${port}`);
    assert.equal(first.handler, ECHO);
    const ready = daemon.logs.filter((l) => l.msg === 'worker ready');
    assert.deepEqual(
      first.workers?.workers.map((w) => [w.workerId, w.pid, w.state]),
      [0, 1].map((slot) => [slot + 1, ready.find((l) => l.slot === slot)?.workerPid, 'ready']),
    );
    assert.equal(first.workers?.started, 2);
    assert.equal(first.workers?.failedExits, 0);

    const table = await runCli(['status', path]);
    assert.equal(table.code, 0, table.stderr);
    assert.match(table.stdout, new RegExp(`pid ${daemon.pid}, serving`));
    assert.match(table.stdout, /IOMP -c 2 on 127\.0\.0\.1:\d+, handler .*worker-echo\.mjs/);
    assert.match(table.stdout, /workers: 2 live, 2 started, 0 failed exits, 0 planned exits\n/);
    assert.match(table.stdout, /id +pid +state +up +served +active +rss MiB/);

    process.kill(readyPids(daemon)[0]!, 'SIGKILL');
    await waitUntil(() => readyPids(daemon).length === 3, 'a replacement ready');
    const afterKill = await status(path);
    assert.equal(afterKill.workers?.failedExits, 1);
    assert.equal(afterKill.workers?.started, 3);
    assert.deepEqual(afterKill.workers?.workers.map((w) => w.pid).sort(), readyPids(daemon).slice(1).sort());

    daemon.signal('SIGHUP');
    await daemon.waitForMsg('reload done');
    const afterReload = await status(path);
    assert.equal(afterReload.reloads, 1);
    assert.equal(afterReload.workers?.plannedExits, 2, 'the two retired by the reload');
    assert.equal((await roundTrip(await connect(port), 'ping\n')).trim(), 'ping', 'still serving');
    await stopCleanly(daemon);
    assert.equal(existsSync(path), false, 'socket removed at stop');
  } finally {
    await daemon.kill();
  }
});

test('IOMP -c 1 counts open connections; LF -c 1 shows the connection waiting for its worker', async () => {
  const iompPath = socketPath();
  const iomp = await startDaemon(modelArgs('IOMP', 1, ECHO, '--status-socket', iompPath));
  try {
    const s = await connect(iomp.port);
    await roundTrip(s, 'x\n');
    const report = await status(iompPath);
    assert.equal(report.connections, 1);
    assert.equal(report.workers, undefined, 'no worker processes');
    s.destroy();
    await stopCleanly(iomp.daemon);
  } finally {
    await iomp.daemon.kill();
  }

  const lfPath = socketPath();
  const lf = await startDaemon(modelArgs('LF', 1, ECHO, '--status-socket', lfPath));
  try {
    const busy = await connect(lf.port);
    await roundTrip(busy, 'x\n');
    const waiting = await connect(lf.port);
    // The daemon queues the second connection as soon as it accepts it; poll until it has.
    let report = await status(lfPath);
    for (let tries = 0; report.waiting !== 1 && tries < 50; tries++) report = await status(lfPath);
    assert.equal(report.waiting, 1, 'one connection waiting');
    assert.equal(report.connections, 2);
    assert.equal(report.workers?.workers.length, 1);
    busy.destroy();
    waiting.write('y\n');
    assert.equal((await readBytes(waiting, 2)).toString(), 'y\n', 'served once the worker is free');
    waiting.destroy();
    await stopCleanly(lf.daemon);
  } finally {
    await lf.daemon.kill();
  }
});

test('a stale socket file is replaced; a socket another daemon answers on stops the start', async () => {
  const path = socketPath();
  // A socket file nobody listens on, as a daemon killed with SIGKILL leaves behind.
  const bound = spawnSync('python3', [
    '-c',
    'import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])',
    path,
  ]);
  assert.equal(bound.status, 0, String(bound.stderr));
  assert.ok(existsSync(path));
  const { daemon } = await startDaemon(modelArgs('IOMP', 1, ECHO, '--status-socket', path));
  try {
    assert.equal((await status(path)).pid, daemon.pid);
    const second = await runCli(modelArgs('IOMP', 1, ECHO, '--status-socket', path));
    assert.equal(second.code, 1);
    assert.match(second.stderr, /--status-socket .*status\.sock: another process answers on it/);
    assert.equal((await status(path)).pid, daemon.pid, 'the first daemon still answers');
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

test('tcpdaemon status: a missing socket, a socket that is not a daemon, bad arguments', async () => {
  const missing = await runCli(['status', join(tmpdir(), 'tcpd-no-such-dir', 's.sock')]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /^tcpdaemon status: no status from .*s\.sock: ENOENT\n$/);

  const path = socketPath();
  const impostor = createServer((s) => s.end('hello\n'));
  await new Promise<void>((r) => impostor.listen(path, r));
  try {
    const wrong = await runCli(['status', path]);
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /the answer is not a status report/);
  } finally {
    impostor.close();
  }

  const none = await runCli(['status']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /give exactly one SOCKET path[\s\S]*usage: tcpdaemon status SOCKET/);
  const flag = await runCli(['status', path, '--bogus']);
  assert.equal(flag.code, 1);
  assert.match(flag.stderr, /Unknown option '--bogus'/);
});

test('--status-socket at a regular file: the file is left untouched and the start fails naming it', async () => {
  const dir = tempDir('tcpd-status-');
  const path = join(dir, 'precious.txt');
  writeFileSync(path, 'do not delete\n');
  const res = await runCli(modelArgs('IOMP', 1, ECHO, '--status-socket', path));
  assert.equal(res.code, 1, res.stderr);
  assert.match(
    res.stderr,
    /^tcpdaemon: --status-socket .*precious\.txt: the path exists and is not a socket \(left untouched\)\n$/,
  );
  assert.equal(readFileSync(path, 'utf8'), 'do not delete\n');
});

test('--status-socket answered by a process that is not a daemon: one line, exit 1', async () => {
  const path = socketPath();
  const other = createServer((s) => s.on('error', () => undefined).end('hello\n'));
  await new Promise<void>((r) => other.listen(path, r));
  try {
    const res = await runCli(modelArgs('IOMP', 1, ECHO, '--status-socket', path));
    assert.equal(res.code, 1);
    assert.match(res.stderr, /^tcpdaemon: --status-socket .*status\.sock: another process answers on it\n$/);
  } finally {
    other.close();
  }
});

test('tcpdaemon status: JSON that is not a status report is refused, not printed', async () => {
  for (const answer of ['{}', '[1]', '42', '"x"', '{"pid":1,"workers":{"workers":[{}]}}']) {
    const path = socketPath();
    const other = createServer((s) => s.end(`${answer}\n`));
    await new Promise<void>((r) => other.listen(path, r));
    try {
      const res = await runCli(['status', path]);
      assert.equal(res.code, 1, `${answer}: ${res.stdout}`);
      assert.match(res.stderr, /^tcpdaemon status: no status from .*: the answer is not a status report\n$/);
      assert.equal(res.stdout, '');
    } finally {
      other.close();
    }
  }
});
