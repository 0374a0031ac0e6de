// The frames a connection sends while it handles one read chunk go out in one write (a shared
// batch): order, large frames, the high-water mark, closing mid-chunk, codecs without
// encodeInto, and sending to another connection from a handler.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FrameBatch } from '../src/message/frame-batch.js';
import {
  type Codec,
  createCodec,
  type createMessageHandler,
  type MessageConn,
} from '../src/message/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { FramedSocket, until, withMessageServer } from './helpers/message.js';

checkNoLeftoverProcesses();

const lars = createCodec('lars');

/** Counts the reads and writes of a connection's socket. */
function countIo(conn: MessageConn): { reads: number; writes: number } {
  const io = { reads: 0, writes: 0 };
  const socket = conn.socket;
  socket.on('data', () => io.reads++);
  const write = socket.write;
  socket.write = ((...args: Parameters<typeof write>) => {
    io.writes++;
    return write.apply(socket, args);
  }) as typeof write;
  return io;
}

function frames(codec: Codec, list: [number, Buffer | string][]): Buffer {
  return Buffer.concat(list.map(([id, b]) => codec.encode(id, typeof b === 'string' ? Buffer.from(b) : b)));
}

/** Sends `bodies` as frames of `msgid` in one write to an echoing server; the bodies of the replies. */
async function echoInOneChunk(port: number, codec: Codec, msgid: number, bodies: (Buffer | string)[]) {
  const c = await FramedSocket.connect(port, codec);
  c.socket.write(
    frames(
      codec,
      bodies.map((b) => [msgid, b]),
    ),
  );
  const got = await c.waitFrames(bodies.length);
  c.destroy();
  return got.map((f) => f.body);
}

describe('one write per read chunk', () => {
  test('replies, sends and broadcasts made for one chunk keep their order, in at most one write per read', async () => {
    let io: { reads: number; writes: number } | undefined;
    let handler: ReturnType<typeof createMessageHandler> | undefined;
    await withMessageServer(
      {
        onConnect: (conn) => {
          io = countIo(conn);
        },
        routes: {
          1: (body, _id, conn) => {
            conn.send(9, `pre:${body}`);
            return body;
          },
          2: (body) => {
            handler!.broadcast(8, `all:${body}`);
            return body;
          },
        },
      },
      async (srv, h) => {
        handler = h;
        const c = await FramedSocket.connect(srv.port, lars);
        await until(() => io !== undefined, 5000, 'onConnect');
        c.socket.write(
          frames(lars, [
            [1, 'a'],
            [2, 'b'],
            [1, 'c'],
          ]),
        );
        const got = await c.waitFrames(6);
        assert.deepEqual(
          got.map((f) => `${f.msgid} ${f.body}`),
          ['9 pre:a', '1 a', '8 all:b', '2 b', '9 pre:c', '1 c'],
        );
        assert.ok(io!.writes <= io!.reads, `${io!.writes} writes for ${io!.reads} reads of 3 frames`);
        c.destroy();
      },
    );
  });

  test('frames larger than the shared slab, among small ones, arrive whole and in order', async () => {
    const big = (n: number, fill: number) => Buffer.alloc(n, fill);
    await withMessageServer({ maxBody: 200_000, fallback: (body) => body }, async (srv) => {
      const codec = createCodec('lars', { maxBody: 200_000 });
      const sent: Buffer[] = [
        Buffer.from('x'),
        big(100_000, 1),
        Buffer.from('y'),
        big(70_000, 2),
        big(10, 3),
      ];
      assert.deepEqual(await echoInOneChunk(srv.port, codec, 4, sent), sent);
    });
  });

  test('a chunk whose replies pass the high-water mark comes back whole and in order', async () => {
    await withMessageServer({ fallback: (body) => body }, async (srv) => {
      const bodies = Array.from({ length: 3000 }, (_, i) => `message ${i} `.padEnd(50, '.'));
      const got = await echoInOneChunk(srv.port, lars, 1, bodies);
      assert.deepEqual(
        got.map((b) => b.toString()),
        bodies,
      );
    });
  });

  test('a codec without encodeInto is batched through encode()', async () => {
    const { encodeInto: _, ...plain } = createCodec('lars', { maxBody: 100_000 });
    await withMessageServer({ codec: plain, fallback: (body) => body }, async (srv) => {
      const sent = [Buffer.from('one'), Buffer.alloc(80_000, 7), Buffer.from('three')];
      assert.deepEqual(await echoInOneChunk(srv.port, plain, 2, sent), sent);
    });
  });

  test('a handler that sends and closes mid-chunk: what it sent goes out before the FIN', async () => {
    const closes: string[] = [];
    await withMessageServer(
      {
        onClose: (_c, why) => void closes.push(why),
        routes: {
          1: (body) => body,
          5: (_b, _id, conn) => {
            conn.send(6, 'last');
            conn.close('done');
          },
        },
      },
      async (srv) => {
        const c = await FramedSocket.connect(srv.port, lars);
        c.socket.write(
          frames(lars, [
            [1, 'x'],
            [5, ''],
            [1, 'not dispatched'],
          ]),
        );
        await c.closed;
        assert.deepEqual(
          c.frames.map((f) => `${f.msgid} ${f.body}`),
          ['1 x', '6 last'],
        );
        await until(() => closes.length === 1, 5000, 'onClose');
        assert.equal(closes[0], 'done');
      },
    );
  });

  test('a handler sending to another connection reaches it', async () => {
    let handler: ReturnType<typeof createMessageHandler> | undefined;
    await withMessageServer(
      {
        routes: {
          3: (body, _id, conn) => {
            for (const other of handler!.connections.values()) if (other !== conn) other.send(3, body);
            return 'relayed';
          },
        },
      },
      async (srv, h) => {
        handler = h;
        const a = await FramedSocket.connect(srv.port, lars);
        const b = await FramedSocket.connect(srv.port, lars);
        await until(() => h.connections.size === 2, 5000, 'two connections');
        a.socket.write(
          frames(lars, [
            [3, 'hi'],
            [3, 'there'],
          ]),
        );
        assert.deepEqual(
          (await b.waitFrames(2)).map((f) => f.body.toString()),
          ['hi', 'there'],
        );
        assert.deepEqual(
          (await a.waitFrames(2)).map((f) => f.body.toString()),
          ['relayed', 'relayed'],
        );
        a.destroy();
        b.destroy();
      },
    );
  });
});

describe('FrameBatch', () => {
  test('one owner at a time; taken bytes are never written again', () => {
    const batch = new FrameBatch();
    const a = {};
    assert.equal(batch.open(a), true);
    assert.equal(batch.open({}), false, 'open for another');
    assert.equal(batch.take(), undefined, 'empty');
    assert.ok(batch.append(lars, 1, Buffer.from('ab'), 0, 0));
    assert.ok(batch.append(lars, 2, Buffer.from('c'), 0, 0));
    assert.equal(batch.length, 19);
    const first = batch.take()!;
    const copy = Buffer.from(first);
    assert.deepEqual(
      first,
      frames(lars, [
        [1, 'ab'],
        [2, 'c'],
      ]),
    );
    assert.equal(batch.length, 0);
    let full = 0;
    for (let i = 0; i < 10_000; i++) {
      if (batch.append(lars, 3, Buffer.alloc(20, i), 0, 0)) continue;
      full++; // the slab is used up: the caller takes the batch and tries again
      assert.ok(batch.take());
      assert.ok(batch.append(lars, 3, Buffer.alloc(20, i), 0, 0));
    }
    assert.ok(full >= 3, `${full} slabs filled`);
    assert.ok(first.equals(copy), 'a view handed out is left alone');
    batch.take();
    batch.close();
    assert.equal(batch.open({}), true, 'free again after close');
    assert.equal(batch.append(lars, 1, Buffer.alloc(65_000), 0, 0), true);
    assert.equal(batch.append(lars, 1, Buffer.alloc(1000), 0, 0), false, 'the slab is full');
    assert.equal(batch.take()!.length, 65_008);
    assert.equal(
      batch.append(createCodec('lars', { maxBody: 100_000 }), 1, Buffer.alloc(70_000), 0, 0),
      false,
      'bigger than a slab: never fits',
    );
    batch.close();
  });
});
