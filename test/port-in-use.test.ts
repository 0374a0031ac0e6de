// An address already in use stops every model and every command before anything serves: one line
// naming the address and the reason, exit 1; the library throws ListenError with its code.
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { after, describe, test } from 'node:test';
import { ListenError, startProxy, TcpdaemonError, tcpdaemon } from '../src/index.js';
import { EXAMPLES, runCli } from './helpers/daemon.js';
import { gatewayArgs } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

after(checkNoLeftoverProcesses);

const echo = `${EXAMPLES}/echo.js`;

async function withBusyPort(body: (port: number) => Promise<void>): Promise<void> {
  const blocker: Server = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  try {
    await body((blocker.address() as { port: number }).port);
  } finally {
    blocker.close();
  }
}

function assertInUse(res: { code: number | null; stderr: string }, port: number, prefix: string): void {
  assert.equal(res.code, 1, res.stderr);
  const lines = res.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `one line: ${res.stderr}`);
  assert.equal(lines[0], `${prefix}: cannot listen on 127.0.0.1:${port}: address already in use`);
}

describe('port in use', () => {
  for (const [model, workers] of [
    ['IOMP', 1],
    ['IOMP', 2],
    ['LF', 2],
    ['IF', 2],
    ['TLF', 2],
  ] as const) {
    test(`${model} -c ${workers}: one line, exit 1`, () =>
      withBusyPort(async (port) => {
        const res = await runCli(['-m', model, '-c', String(workers), '-l', `127.0.0.1:${port}`, '-s', echo]);
        assertInUse(res, port, 'tcpdaemon');
      }));
  }

  test('proxy: one line, exit 1', () =>
    withBusyPort(async (port) => {
      const res = await runCli(['proxy', '-l', `127.0.0.1:${port}`, '--backend', '127.0.0.1:1']);
      assertInUse(res, port, 'tcpdaemon proxy');
    }));

  test('gateway: one line, exit 1', () =>
    withBusyPort(async (port) => {
      const args = gatewayArgs().map((a) => (a === '127.0.0.1:0' ? `127.0.0.1:${port}` : a));
      const res = await runCli(args);
      assertInUse(res, port, 'tcpdaemon gateway');
    }));

  for (const [model, workers] of [
    ['IOMP', 1],
    ['IOMP', 2],
    ['TLF', 2],
  ] as const) {
    test(`library, ${model} -c ${workers}: ListenError with code and errno`, () =>
      withBusyPort(async (port) => {
        await assert.rejects(
          tcpdaemon({ model, workers, listen: `127.0.0.1:${port}`, handler: echo, loglevel: 'fatal' }),
          (err: unknown) => {
            assert.ok(err instanceof ListenError, String(err));
            assert.ok(err instanceof TcpdaemonError);
            assert.equal(err.code, 'TD_ERR_LISTEN');
            assert.equal(err.errno, 'EADDRINUSE');
            assert.match(err.message, /address already in use/);
            return true;
          },
        );
      }));
  }

  test('library proxy: ListenError', () =>
    withBusyPort(async (port) => {
      await assert.rejects(
        startProxy({ listen: `127.0.0.1:${port}`, backends: ['127.0.0.1:1'], loglevel: 'fatal' }),
        (err: unknown) => err instanceof ListenError && err.code === 'TD_ERR_LISTEN',
      );
    }));
});
