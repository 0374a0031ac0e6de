import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { EXAMPLES, FIXTURES, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, roundTrip, untilClosed } from './helpers/net.js';

checkNoLeftoverProcesses();

for (const file of ['echo.js', 'echo.ts']) {
  test(`echo through bin/tcpdaemon with a ${file.slice(-2)} handler`, async () => {
    await withDaemon(
      ['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', join(EXAMPLES, file)],
      async ({ daemon, port }) => {
        const line = daemon.logs.find((l) => l.msg === 'listening')!;
        assert.equal(line.model, 'IOMP');
        assert.equal(line.handler, join(EXAMPLES, file));
        assert.match(String(line.version), /^\d+\.\d+\.\d+/);
        const a = await connect(port);
        const b = await connect(port);
        assert.equal(await roundTrip(a, 'hello from a'), 'hello from a');
        assert.equal(await roundTrip(b, 'x'.repeat(100_000)), 'x'.repeat(100_000));
        assert.equal(await roundTrip(a, 'again'), 'again');
        a.end();
        b.end();
      },
    );
  });
}

test('a CommonJS handler exporting { tcpmain } serves', async () => {
  await withDaemon(['-l', '127.0.0.1:0', '-s', join(FIXTURES, 'echo.cjs')], async ({ port }) => {
    const s = await connect(port);
    assert.equal(await roundTrip(s, 'cjs'), 'cjs');
    s.end();
  });
});

test('env carries model, ids, remote address, params, signal, state; --tcp-nodelay applied', async () => {
  await withDaemon(
    [
      '-l',
      '127.0.0.1:0',
      '-s',
      join(FIXTURES, 'env-report.ts'),
      '--param',
      'greeting=hi',
      '--param',
      'answer=42',
      '--tcp-nodelay',
    ],
    async ({ port }) => {
      const s = await connect(port);
      const localPort = s.localPort;
      const { data, error } = await untilClosed(s);
      assert.equal(error, undefined);
      const env = JSON.parse(data.trim()) as Record<string, unknown>;
      assert.equal(env.model, 'IOMP');
      assert.equal(env.workerId, 0);
      assert.equal(env.connectionId, '0-1');
      assert.equal(env.remoteAddress, '127.0.0.1');
      assert.equal(env.remotePort, localPort);
      assert.deepEqual(env.params, { greeting: 'hi', answer: '42' });
      assert.equal(env.signalAborted, false);
      assert.deepEqual(env.state, { seen: true });
      assert.equal(env.loggerHasInfo, true);
      assert.equal(env.noDelay, true);
    },
  );
});

// IPv4 peers come through the native addon (one number per connection), IPv6 ones and all of them
// without the addon through node: the handler sees the same either way.
for (const [host, listen, native] of [
  ['127.0.0.1', '127.0.0.1:0', true],
  ['127.0.0.1', '127.0.0.1:0', false],
  ['::1', '[::1]:0', true],
] as const) {
  test(`env.remoteAddress and remotePort: ${host}, ${native ? 'with' : 'without'} the native addon`, async () => {
    const env = { ...process.env, ...(native ? {} : { TCPDAEMON_NATIVE: '0' }) };
    await withDaemon(
      ['-l', listen, '-s', join(FIXTURES, 'env-report.ts')],
      async ({ port }) => {
        for (let i = 0; i < 2; i++) {
          const s = await connect(port, host);
          const localPort = s.localPort;
          const { data } = await untilClosed(s);
          const seen = JSON.parse(data.trim()) as Record<string, unknown>;
          assert.equal(seen.remoteAddress, host);
          assert.equal(seen.remotePort, localPort);
        }
      },
      { env },
    );
  });
}

test('a resolved promise ends the connection', async () => {
  await withDaemon(
    ['-l', '127.0.0.1:0', '-s', join(FIXTURES, 'settle.mjs'), '--param', 'mode=resolve'],
    async ({ port }) => {
      const { data, error } = await untilClosed(await connect(port));
      assert.equal(data, 'bye\n');
      assert.equal(error, undefined);
    },
  );
});

for (const mode of ['reject', 'throw'] as const) {
  test(`a ${mode === 'reject' ? 'rejection' : 'sync throw'} is logged with the connection id; the next connection is served`, async () => {
    await withDaemon(
      ['-l', '127.0.0.1:0', '-s', join(FIXTURES, 'settle.mjs'), '--param', `mode=${mode}`],
      async ({ daemon, port }) => {
        const first = await connect(port);
        const closed = untilClosed(first);
        if (mode === 'reject') first.write('please fail');
        await closed;
        const line = await daemon.waitForMsg('handler failed; connection closed');
        assert.equal(line.level, 'error');
        assert.equal(line.conn, '0-1');
        assert.match(String((line.err as { message: string }).message), /boom from handler/);
        const second = await connect(port);
        assert.equal(await roundTrip(second, 'still serving'), 'still serving');
        second.end();
        assert.equal(daemon.child.exitCode, null);
      },
    );
  });
}

test('a throw inside a handler callback is logged and the process keeps serving', async () => {
  await withDaemon(
    ['-l', '127.0.0.1:0', '-s', join(FIXTURES, 'settle.mjs'), '--param', 'mode=callback-throw'],
    async ({ daemon, port }) => {
      const first = await connect(port);
      first.write('trigger');
      await daemon.waitForMsg('uncaught exception in handler code; process keeps serving');
      first.destroy();
      const second = await connect(port);
      second.write('ok?');
      assert.equal((await readBytes(second, 3)).toString(), 'ok?');
      second.end();
    },
  );
});
