import assert from 'node:assert/strict';
import { createSocket, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { describe, test } from 'node:test';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import {
  createUdpMessageHandler,
  type MessageError,
  UdpMessageClient,
  type UdpMessageHandlerOptions,
} from '../src/message/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { captureLogs, type LogCapture, until } from './helpers/message.js';

checkNoLeftoverProcesses();

interface UdpServer {
  socket: Socket;
  port: number;
  logs: LogCapture;
  handler: ReturnType<typeof createUdpMessageHandler>;
}

async function withUdpServer(
  options: UdpMessageHandlerOptions,
  fn: (srv: UdpServer) => Promise<void>,
): Promise<void> {
  const logs = captureLogs();
  const handler = createUdpMessageHandler({ ...options, logger: logs.logger });
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const detach = handler(socket);
  try {
    await fn({ socket, port: socket.address().port, logs, handler });
  } finally {
    detach();
    await new Promise<void>((r) => socket.close(() => r()));
  }
}

async function withClient(
  port: number,
  opts: Partial<ConstructorParameters<typeof UdpMessageClient>[0]>,
  fn: (c: UdpMessageClient) => Promise<void>,
): Promise<void> {
  const c = new UdpMessageClient({ port, logger: captureLogs('warn').logger, ...opts });
  await c.connect();
  try {
    await fn(c);
  } finally {
    await c.close();
  }
}

describe('UDP', () => {
  for (const codec of ['lars', 'seq', 'u32be', 'tdhb:4', 'line']) {
    test(`${codec}: a request and its reply, one datagram each`, async () => {
      await withUdpServer({ codec, routes: { 0: (b) => `re: ${b}`, 1: (b) => `re: ${b}` } }, async (srv) => {
        await withClient(srv.port, { codec }, async (c) => {
          const reply = await c.request(1, 'ping', { timeout: 5000 });
          assert.equal(reply.toString(), 're: ping');
        });
      });
    });
  }

  test('seq: replies matched by seq, and an error reply', async () => {
    await withUdpServer(
      {
        codec: 'seq',
        routes: {
          1: async (b) => {
            await sleep(Number(b.toString()));
            return b;
          },
          2: () => {
            throw new Error('refused');
          },
        },
      },
      async (srv) => {
        await withClient(srv.port, { codec: 'seq' }, async (c) => {
          const replies = await Promise.all(['60', '5', '30'].map((d) => c.request(1, d, { timeout: 5000 })));
          assert.deepEqual(
            replies.map((r) => r.toString()),
            ['60', '5', '30'],
          );
          await assert.rejects(
            c.request(2, 'x', { timeout: 5000 }),
            (err: MessageError) => err.code === 'ERR_MESSAGE_REMOTE' && err.message === 'refused',
          );
        });
      },
    );
  });

  test('a datagram whose header length disagrees with its size is dropped and logged; the server keeps serving', async () => {
    await withUdpServer({ routes: { 1: (b) => b } }, async (srv) => {
      const raw = createSocket('udp4');
      try {
        const header = Buffer.alloc(8);
        header.writeInt32LE(1, 0);
        header.writeInt32LE(10, 4);
        raw.send(Buffer.concat([header, Buffer.from('abc')]), srv.port, '127.0.0.1');
        const line = await srv.logs.waitFor((l) => l.msg === 'malformed datagram dropped');
        assert.equal(line.reason, 'datagram of 11 bytes holds no whole frame');
        assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/);
        header.writeInt32LE(3, 4);
        raw.send(Buffer.concat([header, Buffer.from('abcdef')]), srv.port, '127.0.0.1');
        await until(() => srv.handler.stats.malformed === 2, 5000, 'second malformed datagram');
        await withClient(srv.port, {}, async (c) => {
          assert.equal((await c.request(1, 'fine', { timeout: 5000 })).toString(), 'fine');
        });
      } finally {
        raw.close();
      }
    });
  });

  test('a flood of 2,000 malformed datagrams from one sender costs a few log lines, counted in a summary', async () => {
    await withUdpServer({ routes: { 1: (b) => b } }, async (srv) => {
      const raw = createSocket('udp4');
      try {
        const bad = Buffer.from([1, 0, 0, 0, 10, 0, 0, 0, 0x61]);
        for (let i = 0; i < 2000; i++) {
          raw.send(bad, srv.port, '127.0.0.1');
          // Let the server read: a sender that never yields only overflows its receive buffer.
          if (i % 10 === 9) await nextTurn();
        }
        await withClient(srv.port, {}, async (c) => {
          assert.equal((await c.request(1, 'fine', { timeout: 5000 })).toString(), 'fine');
        });
        const received = srv.handler.stats.malformed;
        assert.ok(received >= 200, `${received} of 2000 datagrams arrived`);
        const msg = 'malformed datagram dropped';
        const counted = () =>
          srv.logs.lines
            .filter((l) => l.msg === msg)
            .reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 1), 0);
        await srv.logs.waitFor(() => counted() === received);
        const lines = srv.logs.lines.filter((l) => l.msg === msg);
        assert.ok(lines.length <= 4, `${lines.length} lines`);
        assert.equal(lines.find((l) => typeof l.suppressed === 'number')?.remote, '127.0.0.1');
      } finally {
        raw.close();
      }
    });
  });

  test('conn.send from a route goes to the sender; client routes get it', async () => {
    await withUdpServer(
      {
        routes: {
          1: (_b, _id, peer) => {
            peer.send(101, 'welcome! you online..');
          },
        },
      },
      async (srv) => {
        const got: string[] = [];
        await withClient(srv.port, { routes: { 101: (b) => void got.push(b.toString()) } }, async (c) => {
          c.send(1, 'hello');
          await until(() => got.length === 1, 5000, 'push from the server');
          assert.deepEqual(got, ['welcome! you online..']);
        });
      },
    );
  });

  test('a lost reply is a timeout; send before connect is a clear error', async () => {
    await withUdpServer({ routes: { 1: () => undefined } }, async (srv) => {
      await withClient(srv.port, {}, async (c) => {
        await assert.rejects(
          c.request(1, 'x', { timeout: 100 }),
          (err: MessageError) => err.code === 'ERR_MESSAGE_TIMEOUT',
        );
      });
      const idle = new UdpMessageClient({ port: srv.port });
      assert.throws(() => idle.send(1, 'x'), /not connected: call connect\(\) first/);
      await idle.close();
    });
  });
});
