// --pid-file: created exclusively (never through a symlink, never over a live daemon's), a stale
// one replaced with a log line, and removed at exit only while it still holds our pid. The daemon,
// the proxy (through the daemon) and the gateway each write one.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, lstatSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXAMPLES, runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const ECHO = join(EXAMPLES, 'echo.js');

function pidDir(): string {
  return tempDir('tcpd-pid-');
}

const COMMANDS = {
  daemon: (pidFile: string) => ['-l', '127.0.0.1:0', '-s', ECHO, '--pid-file', pidFile],
  proxy: (pidFile: string) => [
    'proxy',
    '-l',
    '127.0.0.1:0',
    '--backend',
    '127.0.0.1:1',
    '--pid-file',
    pidFile,
  ],
  gateway: (pidFile: string) => [
    'gateway',
    '-l',
    '127.0.0.1:0',
    '-s',
    join(EXAMPLES, 'gateway-echo.ts'),
    '--business-workers',
    '1',
    '--pid-file',
    pidFile,
  ],
};

for (const [command, args] of Object.entries(COMMANDS)) {
  test(`${command}: a pid file that is a symlink is refused and nothing is written through it`, async () => {
    const dir = pidDir();
    const target = join(dir, 'target.txt');
    writeFileSync(target, 'keep me\n');
    const pidFile = join(dir, 'd.pid');
    symlinkSync(target, pidFile);
    const res = await runCli(args(pidFile));
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      /--pid-file .*d\.pid: the path exists and is not a regular file \(a symlink is not followed\); left untouched\n$/,
    );
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'one line, no stack');
    assert.equal(readFileSync(target, 'utf8'), 'keep me\n');
    assert.ok(lstatSync(pidFile).isSymbolicLink());

    // A dangling symlink: following it would create the file it points to.
    const nowhere = join(dir, 'created-through-the-link');
    const dangling = join(dir, 'dangling.pid');
    symlinkSync(nowhere, dangling);
    assert.equal((await runCli(args(dangling))).code, 1);
    assert.equal(existsSync(nowhere), false);
  });

  test(`${command}: a second instance with a live daemon's pid file is refused; the first's file stays`, async () => {
    const pidFile = join(pidDir(), 'd.pid');
    const first = await startDaemon(args(pidFile));
    try {
      assert.equal(readFileSync(pidFile, 'utf8'), `${first.daemon.pid}\n`);
      const second = await runCli(args(pidFile));
      assert.equal(second.code, 1, second.stderr);
      assert.match(
        second.stderr,
        new RegExp(
          `--pid-file .*d\\.pid: process ${first.daemon.pid} named in it is running \\(another daemon\\?\\); not started\\n$`,
        ),
      );
      assert.equal(
        readFileSync(pidFile, 'utf8'),
        `${first.daemon.pid}\n`,
        'the first daemon keeps its pid file',
      );
      await stopCleanly(first.daemon);
      assert.equal(existsSync(pidFile), false, 'removed at exit');
    } finally {
      await first.daemon.kill();
    }
  });
}

test('a stale pid file (its process is gone, or no pid in it) is replaced with a log line', async () => {
  const dir = pidDir();
  const pidFile = join(dir, 'd.pid');
  const gone = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))']);
  const deadPid = Number(gone.stdout.toString());
  assert.ok(deadPid > 0);
  for (const [content, stalePid] of [
    [`${deadPid}\n`, deadPid],
    ['not a pid\n', null],
  ] as const) {
    writeFileSync(pidFile, content);
    const { daemon } = await startDaemon(COMMANDS.daemon(pidFile));
    try {
      const line = await daemon.waitForMsg('replacing stale pid file (the process it names is gone)');
      assert.equal(line.stalePid, stalePid);
      assert.equal(line.path, pidFile);
      assert.equal(readFileSync(pidFile, 'utf8'), `${daemon.pid}\n`);
      await stopCleanly(daemon);
      assert.equal(existsSync(pidFile), false);
    } finally {
      await daemon.kill();
    }
  }
});

test('at exit the pid file is removed only while it still holds our pid', async () => {
  const pidFile = join(pidDir(), 'd.pid');
  const { daemon } = await startDaemon(COMMANDS.daemon(pidFile));
  try {
    // Another start took the file over (say, after an operator removed ours by hand).
    writeFileSync(pidFile, '4194000\n');
    await stopCleanly(daemon);
    assert.equal(readFileSync(pidFile, 'utf8'), '4194000\n');
  } finally {
    await daemon.kill();
  }
});

test('a start that fails after the pid file was created removes it', async () => {
  const dir = pidDir();
  const pidFile = join(dir, 'd.pid');
  const file = join(dir, 'data.db');
  writeFileSync(file, 'rows\n');
  const res = await runCli(['-l', file, '-s', ECHO, '--pid-file', pidFile]);
  assert.equal(res.code, 1);
  assert.equal(existsSync(pidFile), false);
});
