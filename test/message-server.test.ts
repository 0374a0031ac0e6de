import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  createCodec,
  createMessageHandler,
  type MessageConn,
  type MessageHandlerOptions,
  Router,
} from '../src/message/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import {
  FramedSocket,
  type InProcessServer,
  serveInProcess,
  until,
  withMessageServer,
} from './helpers/message.js';

checkNoLeftoverProcesses();

const lars = createCodec('lars');

describe('replies', () => {
  test('a route may reply with a msgid of its own ({ msgid, body }), with lars and with seq', async () => {
    for (const name of ['lars', 'seq'] as const) {
      const codec = createCodec(name);
      await withMessageServer(
        { codec: name, routes: { 1: (body) => ({ msgid: 2, body: `re:${body}` }), 3: (body) => body } },
        async (srv) => {
          const peer = await FramedSocket.connect(srv.port, codec);
          try {
            peer.send(1, 'a', 5);
            peer.send(3, 'b', 6);
            const [own, same] = await peer.waitFrames(2);
            assert.equal(own!.msgid, 2, `${name}: the route's own msgid`);
            assert.equal(own!.body.toString(), 're:a');
            assert.equal(same!.msgid, 3, `${name}: a plain body keeps the request's msgid`);
            if (name === 'seq')
              assert.deepEqual([own!.seq, same!.seq], [5, 6], 'replies carry their request seq');
          } finally {
            peer.destroy();
          }
        },
      );
    }
  });
});

describe('router', () => {
  test('a msgid registered twice is an error at definition time', () => {
    const h = () => undefined;
    assert.throws(
      () =>
        createMessageHandler({
          routes: [
            [1, h],
            [1, h],
          ],
        }),
      /msgid 1 is registered twice/,
    );
    const router = new Router().add(7, h);
    assert.throws(() => router.add(7, h), /msgid 7 is registered twice/);
    assert.throws(() => createMessageHandler({ routes: { '01': h } as never }), /int32/);
    assert.throws(() => createMessageHandler({ routes: { 1.5: h } as never }), /int32/);
    assert.throws(() => createMessageHandler({ routes: { 1: 'nope' } as never }), /must be a function/);
    assert.deepEqual(new Router({ 1: h, '-3': h }).msgids.sort(), [-3, 1]);
  });

  test('an unknown msgid goes to the fallback', async () => {
    const seen: number[] = [];
    await withMessageServer(
      {
        routes: { 1: (body) => body },
        fallback: (body, msgid) => {
          seen.push(msgid);
          return Buffer.concat([Buffer.from('fallback:'), body]);
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        c.send(42, 'x');
        c.send(1, 'y');
        const frames = await c.waitFrames(2);
        assert.deepEqual(
          frames.map((f) => [f.msgid, f.body.toString()]),
          [
            [42, 'fallback:x'],
            [1, 'y'],
          ],
        );
        assert.deepEqual(seen, [42]);
        c.destroy();
      },
    );
  });

  test('without a fallback an unknown msgid is dropped and logged; the connection stays', async () => {
    await withMessageServer({ routes: { 1: (body) => body } }, async (srv, handler) => {
      const c = await FramedSocket.connect(srv.port, lars);
      c.send(99, 'lost');
      c.send(1, 'kept');
      const [frame] = await c.waitFrames(1);
      assert.equal(frame!.body.toString(), 'kept');
      const line = await srv.logs.waitFor((l) => l.msg === 'no route for msgid; message dropped');
      assert.equal(line.msgid, 99);
      assert.equal(line.level, 'warn');
      assert.equal(handler.stats.unroutable, 1);
      assert.equal(handler.connections.size, 1);
      c.destroy();
    });
  });
});

describe('hooks', () => {
  test('an async onConnect finishes (and its welcome goes out) before the first message is dispatched', async () => {
    const events: string[] = [];
    await withMessageServer(
      {
        onConnect: async (conn) => {
          events.push('connect');
          await sleep(50);
          conn.send(101, 'welcome! you online..');
          events.push('welcomed');
        },
        routes: {
          1: (body) => {
            events.push(`message ${body}`);
            return body;
          },
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        c.send(1, 'first');
        const frames = await c.waitFrames(2);
        assert.deepEqual(
          frames.map((f) => [f.msgid, f.body.toString()]),
          [
            [101, 'welcome! you online..'],
            [1, 'first'],
          ],
        );
        assert.deepEqual(events, ['connect', 'welcomed', 'message first']);
        c.destroy();
      },
    );
  });

  /** Opens a connection, lets `act` end it, and checks onClose ran once with a reason matching `reason`. */
  async function closeOnce(
    options: MessageHandlerOptions,
    act: (c: FramedSocket, srv: InProcessServer) => Promise<void> | void,
    reason: RegExp,
  ): Promise<void> {
    const closes: string[] = [];
    let connects = 0;
    const handler = createMessageHandler({
      ...options,
      onConnect: () => {
        connects++;
      },
      onClose: (_conn, why) => {
        closes.push(why);
      },
    });
    const srv = await serveInProcess(handler);
    try {
      const c = await FramedSocket.connect(
        srv.port,
        options.codec === undefined ? lars : createCodec(options.codec as string),
      );
      await until(() => connects === 1, 5000, 'onConnect');
      await act(c, srv);
      await until(() => closes.length > 0, 10000, 'onClose');
      await c.closed;
      await sleep(50);
      assert.equal(closes.length, 1, `onClose ran ${closes.length} times: ${closes.join('; ')}`);
      assert.match(closes[0]!, reason);
      assert.equal(handler.connections.size, 0);
    } finally {
      await srv.close();
    }
  }

  test('onClose runs once: the peer closes', () =>
    closeOnce({}, (c) => void c.socket.end(), /^peer closed$/));

  test('onClose runs once: a protocol error (and it is logged with the peer address)', async () => {
    let logs: InProcessServer['logs'] | undefined;
    await closeOnce(
      {},
      (c, srv) => {
        logs = srv.logs;
        c.socket.write(Buffer.from([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff]));
      },
      /^protocol error: negative body length -1$/,
    );
    const line = await logs!.waitFor((l) => l.msg === 'protocol error; closing connection');
    assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/);
    assert.equal(line.reason, 'negative body length -1');
  });

  test('onClose runs once: the handler closes it', () =>
    closeOnce(
      { routes: { 5: (_b, _id, conn) => conn.close('bye') } },
      (c) => {
        c.send(5);
        c.send(5);
      },
      /^bye$/,
    ));

  test('onClose runs once: a route handler throws', () =>
    closeOnce(
      {
        routes: {
          5: () => {
            throw new Error('boom');
          },
        },
      },
      (c) => c.send(5),
      /^handler error: boom$/,
    ));

  test('onClose runs once: shutdown (env.signal aborted) ends the connection gracefully', () =>
    closeOnce({}, (_c, srv) => void srv.close(), /^shutdown$/));

  test('at shutdown a running handler finishes and its reply still goes out before the FIN', async () => {
    const closes: string[] = [];
    let started = false;
    const handler = createMessageHandler({
      onClose: (_c, why) => void closes.push(why),
      routes: {
        1: async (body) => {
          started = true;
          await sleep(150);
          return body;
        },
      },
    });
    const srv = await serveInProcess(handler);
    try {
      const c = await FramedSocket.connect(srv.port, lars);
      c.send(1, 'finish me');
      await until(() => started, 5000, 'handler running');
      const stopping = srv.close();
      const [frame] = await c.waitFrames(1);
      assert.equal(frame!.body.toString(), 'finish me');
      await c.closed;
      await stopping;
      assert.deepEqual(closes, ['shutdown']);
    } finally {
      await srv.close();
    }
  });

  test('onClose runs once: a non-numeric TDHB header', () =>
    closeOnce(
      { codec: 'tdhb:4' },
      (c) => void c.socket.write('12x4abcd'),
      /^protocol error: non-numeric header "12x4"$/,
    ));
});

describe('bad input costs only its own connection', () => {
  test('one peer sends garbage, another keeps being served', async () => {
    await withMessageServer({ routes: { 1: (body) => body } }, async (srv) => {
      const good = await FramedSocket.connect(srv.port, lars);
      const bad = await FramedSocket.connect(srv.port, lars);
      good.send(1, 'before');
      await good.waitFrames(1);
      bad.socket.write(Buffer.from([1, 0, 0, 0, 0x00, 0x00, 0x10, 0x00])); // 1 MiB announced
      await bad.closed;
      good.send(1, 'after');
      const frames = await good.waitFrames(2);
      assert.equal(frames[1]!.body.toString(), 'after');
      const line = await srv.logs.waitFor((l) => l.msg === 'protocol error; closing connection');
      assert.equal(line.reason, 'body length 1048576 is over the limit of 65527');
      good.destroy();
    });
  });
});

describe('ordering and concurrency', () => {
  test('lars: async handlers still answer in request order', async () => {
    await withMessageServer(
      {
        routes: {
          1: async (body) => {
            await sleep(Number(body.toString()) % 7);
            return body;
          },
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        const sent = Array.from({ length: 40 }, (_, i) => String(i * 13));
        c.socket.write(Buffer.concat(sent.map((s) => lars.encode(1, Buffer.from(s)))));
        const frames = await c.waitFrames(sent.length);
        assert.deepEqual(
          frames.map((f) => f.body.toString()),
          sent,
        );
        c.destroy();
      },
    );
  });
});

describe('backpressure and the output cap', () => {
  test('a peer that does not read is closed past outputCap bytes, and it is logged', async () => {
    const closes: string[] = [];
    let flood: NodeJS.Timeout | undefined;
    await withMessageServer(
      {
        outputCap: 1024 * 1024,
        onClose: (_c, why) => void closes.push(why),
        routes: {
          7: (_body, _msgid, conn) => {
            const chunk = Buffer.alloc(60000, 1);
            flood = setInterval(() => {
              for (let i = 0; i < 8 && conn.isOpen; i++) conn.send(8, chunk);
              if (!conn.isOpen) clearInterval(flood);
            }, 5);
          },
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        c.socket.pause();
        c.send(7);
        await until(() => closes.length === 1, 20000, 'the non-reading peer closed');
        clearInterval(flood);
        assert.match(closes[0]!, /^output cap exceeded: \d+ bytes queued$/);
        const line = await srv.logs.waitFor(
          (l) => l.msg === 'output cap exceeded: the peer does not read; closing connection',
        );
        assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/);
        assert.equal(line.outputCap, 1024 * 1024);
        c.destroy();
      },
    );
  });

  test('replies queued for a peer that does not read hold copies of their own size, not a shared slab', async () => {
    const backloggedWrites: { bytes: number; held: number }[] = [];
    await withMessageServer(
      {
        outputCap: 64 * 1024 * 1024,
        onConnect: (conn) => {
          const socket = conn.socket;
          const write = socket.write.bind(socket) as (chunk: Buffer) => boolean;
          socket.write = ((chunk: Buffer) => {
            if (socket.writableLength > 0)
              backloggedWrites.push({ bytes: chunk.length, held: chunk.buffer.byteLength });
            return write(chunk);
          }) as typeof socket.write;
        },
        routes: {
          // Sends until the socket queues output (the peer does not read).
          1: (_body, _msgid, conn) => {
            const frame = Buffer.alloc(1000, 3);
            while (conn.bufferedAmount === 0 && conn.isOpen) conn.send(2, frame);
          },
          // Replies later: each reply is batched into the shared slab, then written while queued.
          4: async (body) => {
            await sleep(5);
            return body;
          },
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        c.socket.pause();
        const asks = [1, 2, 3, 4, 5].map((i) => lars.encode(4, Buffer.from(`small ${i}`)));
        c.socket.write(Buffer.concat([lars.encode(1, Buffer.alloc(0)), ...asks]));
        await until(
          () => backloggedWrites.filter((w) => w.bytes < 100).length === 5,
          10000,
          'five small replies queued',
        );
        // Exactly its own bytes: a copy from node's buffer pool pins a pool slab (8 KiB on
        // Node 20 and 22, 64 KiB on 24) as long as it waits.
        for (const w of backloggedWrites)
          assert.ok(w.held === w.bytes, `a queued write of ${w.bytes} B holds ${w.held} B`);
        c.destroy();
      },
    );
  });

  test('a sender that waits for drained() never hits the cap with a slow but reading peer', async () => {
    const total = 120;
    const body = Buffer.alloc(50000, 2);
    const closes: string[] = [];
    await withMessageServer(
      {
        outputCap: 1024 * 1024,
        onClose: (_c, why) => void closes.push(why),
        routes: {
          7: async (_b, _id, conn) => {
            for (let i = 0; i < total; i++) {
              if (!conn.send(8, body)) await conn.drained();
            }
          },
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        c.send(7);
        // read slowly: pause the socket for a while, several times
        for (let i = 0; i < 5; i++) {
          c.socket.pause();
          await sleep(40);
          c.socket.resume();
          await sleep(10);
        }
        const frames = await c.waitFrames(total, 20000);
        assert.equal(frames.length, total);
        assert.deepEqual(closes, []);
        c.destroy();
      },
    );
  });
});

describe('connections of this process', () => {
  test('list and broadcast', async () => {
    await withMessageServer({}, async (srv, handler) => {
      const clients = await Promise.all([1, 2, 3].map(() => FramedSocket.connect(srv.port, lars)));
      await until(() => handler.connections.size === 3, 5000, 'three connections');
      const ids = [...handler.connections.keys()];
      assert.equal(new Set(ids).size, 3);
      assert.equal(handler.broadcast(50, 'to all'), 3);
      const skip = ids[0]!;
      assert.equal(
        handler.broadcast(51, 'to some', (conn: MessageConn) => conn.id !== skip),
        2,
      );
      for (const c of clients) await c.waitFrames(1);
      await until(
        () => clients.filter((c) => c.frames.length === 2).length === 2,
        5000,
        'filtered broadcast',
      );
      for (const c of clients) assert.equal(c.frames[0]!.body.toString(), 'to all');
      clients[0]!.destroy();
      await until(() => handler.connections.size === 2, 5000, 'closed connection removed');
      for (const c of clients) c.destroy();
    });
  });

  test('conn.state is per connection (env.state)', async () => {
    await withMessageServer(
      {
        routes: {
          1: (_b, _id, conn) => {
            conn.state.count = ((conn.state.count as number | undefined) ?? 0) + 1;
            return String(conn.state.count);
          },
        },
      },
      async (srv) => {
        const a = await FramedSocket.connect(srv.port, lars);
        const b = await FramedSocket.connect(srv.port, lars);
        a.send(1);
        a.send(1);
        b.send(1);
        await a.waitFrames(2);
        await b.waitFrames(1);
        assert.deepEqual(
          a.frames.map((f) => f.body.toString()),
          ['1', '2'],
        );
        assert.equal(b.frames[0]!.body.toString(), '1');
        a.destroy();
        b.destroy();
      },
    );
  });
});

describe('other codecs through the same handler', () => {
  for (const spec of ['tdhb:4', 'u32be', 'line', 'seq']) {
    test(`${spec}: echo, many frames in one write and one frame split in two`, async () => {
      const codec = createCodec(spec);
      await withMessageServer({ codec: spec, routes: { 0: (body) => body } }, async (srv) => {
        const c = await FramedSocket.connect(srv.port, codec);
        const bodies = ['alpha', 'beta', '', 'delta'];
        c.socket.write(Buffer.concat(bodies.map((b) => codec.encode(0, Buffer.from(b)))));
        const split = codec.encode(0, Buffer.from('split'));
        c.socket.write(split.subarray(0, 3));
        await sleep(20);
        c.socket.write(split.subarray(3));
        const frames = await c.waitFrames(5);
        assert.deepEqual(
          frames.map((f) => f.body.toString()),
          [...bodies, 'split'],
        );
        c.destroy();
      });
    });
  }

  test('an over-long line closes with a reason', async () => {
    const closes: string[] = [];
    await withMessageServer(
      { codec: 'line', maxBody: 10, onClose: (_c, why) => void closes.push(why) },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, createCodec('line'));
        c.socket.write('0123456789abc');
        await c.closed;
        await until(() => closes.length === 1, 5000, 'onClose');
        assert.equal(closes[0], 'protocol error: line longer than 10 bytes');
      },
    );
  });

  test('end of a peer: a request sent before FIN is still answered', async () => {
    await withMessageServer({ routes: { 1: (body) => body } }, async (srv) => {
      const c = await FramedSocket.connect(srv.port, lars);
      c.socket.end(lars.encode(1, Buffer.from('last words')));
      const [frame] = await c.waitFrames(1);
      assert.equal(frame!.body.toString(), 'last words');
      await c.closed;
    });
  });

  test('end of a peer inside a frame: the whole frames are answered, the cut one is logged', async () => {
    await withMessageServer({ routes: { 1: (body) => body } }, async (srv) => {
      const c = await FramedSocket.connect(srv.port, lars);
      const half = lars.encode(1, Buffer.from('never finished')).subarray(0, 20);
      c.socket.end(Buffer.concat([lars.encode(1, Buffer.from('whole')), half]));
      const [frame] = await c.waitFrames(1);
      assert.equal(frame!.body.toString(), 'whole');
      await c.closed;
      const line = await srv.logs.waitFor(
        (l) => l.msg === 'peer closed inside a frame; partial frame dropped',
      );
      assert.equal(line.level, 'warn');
      assert.equal(line.bytes, 20);
    });
  });

  test('end of a peer: an async reply that is ready only after the FIN still goes out, then our FIN', async () => {
    const closes: string[] = [];
    const handler = createMessageHandler({
      onClose: (_c, why) => void closes.push(why),
      routes: {
        1: async (body) => {
          await sleep(100);
          return body;
        },
      },
    });
    const srv = await serveInProcess(handler);
    try {
      const c = await FramedSocket.connect(srv.port, lars);
      c.socket.end(Buffer.concat([lars.encode(1, Buffer.from('one')), lars.encode(1, Buffer.from('two'))]));
      const frames = await c.waitFrames(2);
      assert.deepEqual(
        frames.map((f) => f.body.toString()),
        ['one', 'two'],
      );
      await c.closed;
      await until(() => closes.length > 0, 5000, 'onClose');
      assert.deepEqual(closes, ['peer closed']);
    } finally {
      await srv.close();
    }
  });
});
