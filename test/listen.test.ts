import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { parseListenAddress } from '../src/listen-address.js';
import { EXAMPLES, runCli, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip } from './helpers/net.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();
const echo = join(EXAMPLES, 'echo.js');

test('listen address spellings', () => {
  assert.deepEqual(parseListenAddress('0:9527'), { kind: 'tcp', host: '0.0.0.0', port: 9527 });
  assert.deepEqual(parseListenAddress('127.0.0.1:0'), { kind: 'tcp', host: '127.0.0.1', port: 0 });
  assert.deepEqual(parseListenAddress('[::1]:80'), { kind: 'tcp', host: '::1', port: 80 });
  assert.deepEqual(parseListenAddress('localhost:8080'), { kind: 'tcp', host: 'localhost', port: 8080 });
  assert.deepEqual(parseListenAddress('/run/app.sock'), { kind: 'unix', path: '/run/app.sock' });
  assert.deepEqual(parseListenAddress('./app.sock'), { kind: 'unix', path: './app.sock' });
  assert.deepEqual(parseListenAddress('unix:app.sock'), { kind: 'unix', path: 'app.sock' });
  assert.throws(() => parseListenAddress('9527'), /expected ip:port/);
  assert.throws(() => parseListenAddress(':9527'), /missing host/);
  assert.throws(() => parseListenAddress('1.2.3.4:99999'), /port must be/);
  assert.throws(() => parseListenAddress(`/${'x'.repeat(120)}`), /longer than 107 bytes/);
});

test('IPv6 [::1]:0', async () => {
  await withDaemon(['-l', '[::1]:0', '-s', echo], async ({ port, host }) => {
    assert.equal(host, '::1');
    const s = await connect(port, '::1');
    assert.equal(await roundTrip(s, 'v6'), 'v6');
    s.end();
  });
});

test('0:port listens on all IPv4 addresses', async () => {
  await withDaemon(['-l', '0:0', '-s', echo], async ({ port, host }) => {
    assert.equal(host, '0.0.0.0');
    const s = await connect(port, '127.0.0.1');
    assert.equal(await roundTrip(s, 'any'), 'any');
    s.end();
  });
});

test('unix socket, and a stale socket file from a crashed daemon is replaced', async () => {
  const dir = tempDir('tcpdaemon-unix-');
  const path = join(dir, 'echo.sock');
  // A socket file nobody listens on: what a SIGKILLed daemon leaves behind.
  const crashed = spawn(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => process.stdout.write('up'))`,
  ]);
  await once(crashed.stdout, 'data');
  crashed.kill('SIGKILL');
  await once(crashed, 'exit');
  assert.ok(existsSync(path), 'the killed listener left its socket file');
  await withDaemon(['-l', path, '-s', echo], async ({ daemon }) => {
    assert.ok(daemon.logs.some((l) => l.msg === 'removing stale unix socket (nothing listens on it)'));
    const s = await connect(path);
    assert.equal(await roundTrip(s, 'over unix'), 'over unix');
    s.end();
  });
});

test('a live unix socket is not taken over', async () => {
  const dir = tempDir('tcpdaemon-unix-');
  const path = join(dir, 'busy.sock');
  const live = createServer();
  await new Promise<void>((r) => live.listen(path, r));
  try {
    const res = await runCli(['-l', path, '-s', echo]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /cannot listen on .*busy\.sock: address already in use/);
  } finally {
    live.close();
  }
});

// A regular file refuses a connect (ECONNREFUSED) just as a stale socket does: only the file type
// tells them apart. Every command that takes -l, in both ways of binding (IOMP -c 1 listens in
// the daemon; -c 2 binds a socket for the workers), must leave a file that is not a socket alone.
for (const [what, args] of [
  ['daemon IOMP -c 1', (path: string) => ['-m', 'IOMP', '-c', '1', '-l', path, '-s', echo]],
  ['daemon IOMP -c 2', (path: string) => ['-m', 'IOMP', '-c', '2', '-l', path, '-s', echo]],
  ['proxy', (path: string) => ['proxy', '-l', path, '--backend', '127.0.0.1:1']],
  [
    'gateway',
    (path: string) => [
      'gateway',
      '-l',
      path,
      '-s',
      join(EXAMPLES, 'gateway-echo.ts'),
      '--business-workers',
      '1',
    ],
  ],
] as const) {
  test(`${what}: a regular file at the -l path is left untouched and the start fails naming it`, async () => {
    const dir = tempDir('tcpdaemon-unix-');
    const path = join(dir, 'data1.db');
    writeFileSync(path, 'precious rows\n');
    const res = await runCli(args(path));
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      /cannot listen on .*data1\.db: the path exists and is not a socket \(left untouched\)/,
    );
    assert.doesNotMatch(res.stderr, /\n\s+at /, 'one line, no stack');
    assert.equal(readFileSync(path, 'utf8'), 'precious rows\n');
    assert.ok(!res.stdout.includes('removing stale unix socket'), res.stdout);
  });
}
