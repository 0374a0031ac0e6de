import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createConnection, createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createMessageHandler,
  MessageClient,
  type MessageClientOptions,
  MessageError,
  type MessageHandlerOptions,
} from '../src/message/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { captureLogs, type InProcessServer, serveInProcess, until } from './helpers/message.js';
import { deadPort } from './helpers/proxy.js';

checkNoLeftoverProcesses();

const fastRetry = { initialDelay: 20, maxDelay: 200 };

/** A port nobody listens on right now (bound, then released). */
async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await once(s, 'listening');
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

function client(port: number, opts: Partial<MessageClientOptions> = {}): MessageClient {
  return new MessageClient({ port, reconnect: fastRetry, logger: captureLogs('warn').logger, ...opts });
}

async function withServer(
  options: MessageHandlerOptions,
  fn: (srv: InProcessServer) => Promise<void>,
): Promise<void> {
  const srv = await serveInProcess(createMessageHandler(options));
  try {
    await fn(srv);
  } finally {
    await srv.close();
  }
}

async function rejectsWith(p: Promise<unknown>, code: string, message?: RegExp): Promise<void> {
  await assert.rejects(p, (err: unknown) => {
    assert.ok(err instanceof MessageError, `not a MessageError: ${err}`);
    assert.equal(err.code, code);
    if (message) assert.match(err.message, message);
    return true;
  });
}

const echo = { 1: (body: Buffer) => body };

describe('reconnect', () => {
  test('after the server restarts: onClose on the loss, onConnect again, requests work again', async () => {
    const events: string[] = [];
    let srv = await serveInProcess(createMessageHandler({ routes: echo }));
    const port = srv.port;
    const c = client(port, {
      onConnect: () => void events.push('connect'),
      onClose: (_conn, reason) => void events.push(`close: ${reason}`),
    });
    try {
      await c.connect();
      assert.equal((await c.request(1, 'one')).toString(), 'one');
      await srv.close();
      await until(() => events.length === 2, 5000, 'onClose');
      assert.equal(c.connected, false);
      srv = await serveInProcess(createMessageHandler({ routes: echo }), { port });
      await until(() => c.connected, 10000, 'reconnected');
      assert.equal((await c.request(1, 'two')).toString(), 'two');
      assert.deepEqual(events, ['connect', 'close: peer closed', 'connect']);
      assert.equal(c.stats.connects, 2);
    } finally {
      await c.close();
      await srv.close();
    }
  });

  test('the first connect is retried until a server comes (Lars gives up)', async () => {
    const port = await freePort();
    const c = client(port);
    let srv: InProcessServer | undefined;
    try {
      const connected = c.connect();
      await until(() => c.stats.failedConnects >= 2, 5000, 'two failed attempts');
      srv = await serveInProcess(createMessageHandler({ routes: echo }), { port });
      await connected;
      assert.equal((await c.request(1, 'late server')).toString(), 'late server');
    } finally {
      await c.close();
      await srv?.close();
    }
  });

  test('reconnect: false gives up on the first failure, with the reason', async () => {
    const c = client(await deadPort(), { reconnect: false });
    await assert.rejects(c.connect(), /ECONNREFUSED/);
    assert.equal(c.stats.failedConnects, 1);
    await c.close();
  });
});

describe('connect timeout', () => {
  // A listener that never accepts, its backlog filled: Linux then drops further SYNs and a connect hangs.
  const python = spawnSync('python3', ['--version']).status === 0;
  test('a connect that hangs is abandoned after connectTimeout and retried', {
    skip: python ? false : 'no python3',
  }, async () => {
    const child = spawn(
      'python3',
      [
        '-c',
        'import socket,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(30)',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const fillers: Socket[] = [];
    try {
      const [line] = (await once(child.stdout!, 'data')) as [Buffer];
      const port = Number(line.toString().trim());
      // Fill the accept queue until a connect no longer completes.
      for (let i = 0; i < 8; i++) {
        const s = createConnection(port, '127.0.0.1');
        s.on('error', () => {});
        fillers.push(s);
        const connected = await Promise.race([
          once(s, 'connect').then(() => true),
          sleep(300).then(() => false),
        ]);
        if (!connected) break;
      }
      const logs = captureLogs('warn');
      const c = new MessageClient({ port, connectTimeout: 150, reconnect: fastRetry, logger: logs.logger });
      void c.connect().catch(() => undefined);
      await until(() => c.stats.failedConnects >= 2, 5000, 'two timed-out attempts');
      const line2 = await logs.waitFor((l) => l.msg === 'reconnecting');
      assert.equal(line2.reason, 'connect failed: connect timeout after 150 ms');
      await c.close();
    } finally {
      for (const s of fillers) s.destroy();
      child.kill('SIGKILL');
      await once(child, 'exit').catch(() => undefined);
    }
  });
});

describe('requests', () => {
  test('a request with no reply times out', async () => {
    await withServer({ routes: { 1: () => undefined } }, async (srv) => {
      const c = client(srv.port);
      await c.connect();
      await rejectsWith(c.request(1, 'x', { timeout: 100 }), 'ERR_MESSAGE_TIMEOUT', /no reply within 100 ms/);
      await c.close();
    });
  });

  for (const codec of ['seq', 'lars']) {
    test(`${codec}: a reply that comes after its timeout is dropped and counted, never given to a later request`, async () => {
      await withServer(
        {
          codec,
          routes: {
            1: async (body) => {
              if (body.toString() === 'slow') await sleep(300);
              return body;
            },
          },
        },
        async (srv) => {
          const c = client(srv.port, { codec });
          await c.connect();
          const slow = c.request(1, 'slow', { timeout: 100 });
          await rejectsWith(slow, 'ERR_MESSAGE_TIMEOUT');
          const fast = await c.request(1, 'fast', { timeout: 5000 });
          assert.equal(fast.toString(), 'fast');
          await until(() => c.stats.lateReplies === 1, 5000, 'late reply counted');
          await c.close();
        },
      );
    });
  }

  for (const codec of ['tdhb:4', 'u32be', 'line']) {
    test(`${codec} (no msgid on the wire): request() matches replies in order`, async () => {
      await withServer({ codec, routes: { 0: (body) => `re: ${body}` } }, async (srv) => {
        const c = client(srv.port, { codec });
        await c.connect();
        const replies = await Promise.all(['a', 'b', 'c'].map((b) => c.request(0, b, { timeout: 5000 })));
        assert.deepEqual(
          replies.map((r) => r.toString()),
          ['re: a', 're: b', 're: c'],
        );
        await c.close();
      });
    });
  }

  test('seq: replies come back out of order and each finds its request', async () => {
    await withServer(
      {
        codec: 'seq',
        routes: {
          1: async (body) => {
            await sleep(Number(body.toString()));
            return `done ${body}`;
          },
        },
      },
      async (srv) => {
        const c = client(srv.port, { codec: 'seq' });
        await c.connect();
        const order: string[] = [];
        const delays = ['200', '10', '100'];
        const replies = await Promise.all(
          delays.map(async (d) => {
            const r = (await c.request(1, d)).toString();
            order.push(r);
            return r;
          }),
        );
        assert.deepEqual(replies, ['done 200', 'done 10', 'done 100']);
        assert.deepEqual(order, ['done 10', 'done 100', 'done 200']);
        await c.close();
      },
    );
  });

  test('seq: a handler error comes back as an error reply; the connection stays', async () => {
    await withServer(
      {
        codec: 'seq',
        routes: {
          1: () => {
            throw new Error('no such account');
          },
          2: (body) => body,
        },
      },
      async (srv) => {
        const c = client(srv.port, { codec: 'seq' });
        await c.connect();
        await rejectsWith(c.request(1, 'x'), 'ERR_MESSAGE_REMOTE', /^no such account$/);
        assert.equal((await c.request(2, 'still here')).toString(), 'still here');
        await c.close();
      },
    );
  });

  test('close() fails waiting requests and later sends', async () => {
    await withServer({ routes: { 1: () => undefined } }, async (srv) => {
      const c = client(srv.port);
      await c.connect();
      const waiting = c.request(1, 'never answered');
      await c.close();
      await rejectsWith(waiting, 'ERR_MESSAGE_CLOSED');
      assert.throws(
        () => c.send(1, 'x'),
        (err: MessageError) => err.code === 'ERR_MESSAGE_CLOSED',
      );
      await rejectsWith(c.request(1, 'x'), 'ERR_MESSAGE_CLOSED');
    });
  });
});

describe('while disconnected', () => {
  test('sends queue up to the bound, then fail with ERR_MESSAGE_QUEUE_FULL', async () => {
    const port = await freePort();
    const c = client(port, { maxQueue: 3, maxQueueBytes: 100 });
    void c.connect().catch(() => undefined);
    let srv: InProcessServer | undefined;
    try {
      assert.equal(c.send(2, 'a'), false);
      assert.equal(c.send(2, 'b'), false);
      assert.equal(c.queued, 2);
      const queuedRequest = c.request(1, 'c', { timeout: 10000 });
      assert.throws(
        () => c.send(2, 'd'),
        (err: MessageError) =>
          err.code === 'ERR_MESSAGE_QUEUE_FULL' && /send queue is full \(3 frames/.test(err.message),
      );
      await rejectsWith(c.request(1, 'e'), 'ERR_MESSAGE_QUEUE_FULL');
      assert.equal(c.queued, 3);

      // When a server comes, the queue goes out in order and the queued request gets its reply.
      const seen: string[] = [];
      const record = (body: Buffer) => {
        seen.push(body.toString());
      };
      srv = await serveInProcess(
        createMessageHandler({
          routes: {
            1: (body) => {
              record(body);
              return body;
            },
            2: record,
          },
        }),
        { port },
      );
      assert.equal((await queuedRequest).toString(), 'c');
      assert.deepEqual(seen, ['a', 'b', 'c']);
      assert.equal(c.queued, 0);
    } finally {
      await c.close();
      await srv?.close();
    }
  });

  test('the byte bound counts too', async () => {
    const c = client(await deadPort(), { maxQueueBytes: 10 });
    void c.connect().catch(() => undefined);
    c.send(1, '12345678');
    assert.throws(
      () => c.send(1, '123'),
      (err: MessageError) => err.code === 'ERR_MESSAGE_QUEUE_FULL',
    );
    await c.close();
  });

  test('onConnect runs before the queue is flushed and before pushes are dispatched', async () => {
    const port = await freePort();
    const order: string[] = [];
    const c = client(port, {
      onConnect: async (conn) => {
        await sleep(30);
        conn.send(2, 'login');
        order.push('onConnect done');
      },
      routes: {
        101: (body) => void order.push(`push ${body}`),
      },
    });
    void c.connect();
    c.send(2, 'queued');
    const seen: string[] = [];
    const srv = await serveInProcess(
      createMessageHandler({
        onConnect: (conn) => void conn.send(101, 'welcome! you online..'),
        routes: { 2: (body) => void seen.push(body.toString()) },
      }),
      { port },
    );
    try {
      await until(() => seen.length === 2 && order.length === 2, 10000, 'login, queue and welcome');
      assert.deepEqual(seen, ['login', 'queued']);
      assert.deepEqual(order, ['onConnect done', 'push welcome! you online..']);
    } finally {
      await c.close();
      await srv.close();
    }
  });

  test('a queued request times out if no connection comes', async () => {
    const c = client(await deadPort());
    void c.connect().catch(() => undefined);
    await rejectsWith(c.request(1, 'x', { timeout: 100 }), 'ERR_MESSAGE_TIMEOUT', /never sent/);
    assert.equal(c.queued, 0);
    await c.close();
  });
});
