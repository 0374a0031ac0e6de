import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DaemonProcess, EXAMPLES, FIXTURES, runCli, startDaemon, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, roundTrip, untilClosed } from './helpers/net.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();
const drain = join(FIXTURES, 'drain.mjs');

test('SIGTERM drains an in-flight connection, refuses new ones, then exits 0', async () => {
  await withDaemon(['-l', '127.0.0.1:0', '-s', drain], async ({ daemon, port }) => {
    const s = await connect(port);
    assert.equal((await readBytes(s, 8)).toString(), 'started\n');
    const closed = untilClosed(s);
    daemon.signal('SIGTERM');
    await daemon.waitForMsg('stopping: no new connections');
    await assert.rejects(connect(port), /ECONNREFUSED/);
    const { data, error } = await closed;
    assert.equal(data, 'finished\n');
    assert.equal(error, undefined);
    const exit = await daemon.waitForExit();
    assert.deepEqual(exit, { code: 0, signal: null });
    assert.ok(daemon.logs.some((l) => l.msg === 'stopped'));
  });
});

test('SIGINT stops the same way', async () => {
  const { daemon, port } = await startDaemon(['-l', '127.0.0.1:0', '-s', join(EXAMPLES, 'echo.js')]);
  const s = await connect(port);
  assert.equal(await roundTrip(s, 'x'), 'x');
  s.end();
  daemon.signal('SIGINT');
  assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
});

test('--shutdown-timeout: connections still open then are destroyed, exit 0', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    drain,
    '--param',
    'ignore=1',
    '--shutdown-timeout',
    '0.5',
  ]);
  const s = await connect(port);
  await readBytes(s, 8);
  const closed = untilClosed(s);
  daemon.signal('SIGTERM');
  await closed;
  assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
  const cut = daemon.logs.find((l) => l.msg === 'shutdown timeout: open connections destroyed');
  assert.equal(cut?.count, 1);
});

test('a second SIGTERM forces the exit at once', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    drain,
    '--param',
    'ignore=1',
    '--shutdown-timeout',
    '600',
  ]);
  const s = await connect(port);
  await readBytes(s, 8);
  const closed = untilClosed(s);
  daemon.signal('SIGTERM');
  await daemon.waitForMsg('stopping: no new connections');
  daemon.signal('SIGTERM');
  const exit = await daemon.waitForExit(10_000);
  assert.deepEqual(exit, { code: 1, signal: null });
  await daemon.waitForMsg('second stop signal: exiting now');
  await closed;
});

test('a SIGTERM during start-up is not lost: the daemon stops cleanly', async () => {
  const daemon = new DaemonProcess(['-l', '127.0.0.1:0', '-s', join(FIXTURES, 'slow-load.mjs')]);
  try {
    while (!daemon.stderr.includes('slow-load: loading')) {
      assert.equal(daemon.child.exitCode, null, 'still starting');
      await sleep(20);
    }
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    assert.ok(daemon.logs.some((l) => l.msg === 'stopped'));
  } finally {
    await daemon.kill();
  }
});

test('SIGUSR1 reopens the log file after it was moved away', async () => {
  const dir = tempDir('tcpdaemon-log-');
  const logfile = join(dir, 'app.log');
  const daemon = new DaemonProcess([
    '-l',
    '127.0.0.1:0',
    '-s',
    join(EXAMPLES, 'echo.js'),
    '--logfile',
    logfile,
  ]);
  try {
    while (!existsSync(logfile) || !readFileSync(logfile, 'utf8').includes('"listening"')) await sleep(20);
    renameSync(logfile, `${logfile}.1`);
    daemon.signal('SIGUSR1');
    while (!existsSync(logfile) || !readFileSync(logfile, 'utf8').includes('log file reopened'))
      await sleep(20);
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    assert.match(readFileSync(`${logfile}.1`, 'utf8'), /"msg":"listening"/);
    const fresh = readFileSync(logfile, 'utf8');
    assert.match(fresh, /"msg":"stopped"/);
    assert.doesNotMatch(fresh, /"msg":"listening"/);
    assert.equal(daemon.stdoutLines.length, 0, 'nothing logged to stdout with --logfile');
  } finally {
    await daemon.kill();
  }
});

test('--daemon-level detaches, writes --pid-file, logs to --logfile; start-up errors reach the terminal', async () => {
  const dir = tempDir('tcpdaemon-detach-');
  const logfile = join(dir, 'd.log');
  const pidFile = join(dir, 'd.pid');
  const res = await runCli([
    '-l',
    '127.0.0.1:0',
    '-s',
    join(EXAMPLES, 'echo.js'),
    '--daemon-level',
    '--logfile',
    logfile,
    '--pid-file',
    pidFile,
  ]);
  assert.equal(res.code, 0, res.stderr);
  const m = /running in the background as pid (\d+), listening on 127\.0\.0\.1:(\d+)/.exec(res.stdout);
  assert.ok(m, res.stdout);
  const pid = Number(m[1]);
  try {
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(pid));
    const s = await connect(Number(m[2]));
    assert.equal(await roundTrip(s, 'detached'), 'detached');
    s.end();
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 200 && existsSync(pidFile); i++) await sleep(50);
    assert.equal(existsSync(pidFile), false, 'pid file removed at exit');
    assert.match(readFileSync(logfile, 'utf8'), /"msg":"stopped"/);
  } finally {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited already
    }
  }
  const failed = await runCli([
    '-l',
    '127.0.0.1:0',
    '-s',
    join(dir, 'missing.js'),
    '--daemon-level',
    '--logfile',
    logfile,
  ]);
  assert.equal(failed.code, 1);
  assert.match(failed.stderr, /missing\.js: no such file/);
});

test('SIGHUP (IOMP -c 1) re-reads the handler: new connections get it, open ones keep theirs, a broken module is refused', async () => {
  const dir = tempDir('tcpdaemon-hup-');
  const handler = join(dir, 'versioned.mjs');
  const version = (v: string) =>
    `export default async (s) => { for await (const c of s) s.write('${v}:' + c); };\n`;
  const ask = async (s: Socket, text: string) => {
    s.write(text);
    return (await readBytes(s, 3 + text.length)).toString();
  };
  writeFileSync(handler, version('v1'));
  await withDaemon(['-l', '127.0.0.1:0', '-s', handler], async ({ daemon, port }) => {
    const old = await connect(port);
    assert.equal(await ask(old, 'a'), 'v1:a');
    // A load loop runs through the reload: every connection is accepted and answered.
    let stop = false;
    let answered = 0;
    const loop = (async () => {
      while (!stop) {
        const s = await connect(port);
        assert.match(await ask(s, 'x'), /^v[12]:x$/);
        s.destroy();
        answered++;
      }
    })();
    writeFileSync(handler, version('v2'));
    daemon.signal('SIGHUP');
    await daemon.waitForMsg('handler reloaded; new connections use it');
    stop = true;
    await loop;
    assert.ok(answered > 0);
    const fresh = await connect(port);
    assert.equal(await ask(fresh, 'b'), 'v2:b');
    assert.equal(await ask(old, 'c'), 'v1:c', 'an open connection keeps its handler');
    writeFileSync(handler, 'export default async (s) => {\n');
    daemon.signal('SIGHUP');
    const failed = await daemon.waitForMsg('reload failed; still serving with the previous handler');
    assert.equal(failed.level, 'error');
    const after = await connect(port);
    assert.equal(await ask(after, 'd'), 'v2:d');
    for (const s of [old, fresh, after]) s.end();
  });
});

test('a daemon whose stdout reader went away still stops on SIGTERM (no spin on EPIPE)', async () => {
  const daemon = new DaemonProcess(['-l', '127.0.0.1:0', '-s', join(EXAMPLES, 'echo.js')]);
  try {
    await daemon.waitForMsg('listening');
    daemon.child.stdout!.destroy();
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(10_000), { code: 0, signal: null });
    assert.match(daemon.stderr, /log destination failed \(EPIPE\)/);
  } finally {
    await daemon.kill();
  }
});
