// tcpdaemon's `for await` iterator on served sockets (src/socket-iterator.ts), on real sockets,
// side by side with node's own where the two must agree; the end of input is where they differ.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { useSocketIterator } from '../src/socket-iterator.js';
import { EXAMPLES, FIXTURES, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, untilClosed } from './helpers/net.js';

checkNoLeftoverProcesses();

type Loop = (socket: Socket) => Promise<unknown>;

interface Served<T> {
  client: Socket;
  /** Settles with what the loop returned or threw. */
  outcome: Promise<{ value?: T; error?: NodeJS.ErrnoException }>;
  /** The server side of the connection, once accepted. */
  accepted: Promise<Socket>;
  server: Server;
}

const ITERATORS = ['node', 'tcpdaemon'] as const;

/** One connection to a server that runs `loop` on it, with node's iterator or ours. */
async function serveOne<T>(
  iterator: (typeof ITERATORS)[number],
  loop: (s: Socket) => Promise<T>,
): Promise<Served<T>> {
  let accept!: (s: Socket) => void;
  let settle!: (o: { value?: T; error?: NodeJS.ErrnoException }) => void;
  const accepted = new Promise<Socket>((r) => {
    accept = r;
  });
  const outcome = new Promise<{ value?: T; error?: NodeJS.ErrnoException }>((r) => {
    settle = r;
  });
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    if (iterator === 'tcpdaemon') useSocketIterator(socket);
    accept(socket);
    loop(socket).then(
      (value) => settle({ value }),
      (error: NodeJS.ErrnoException) => settle({ error }),
    );
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const client = await connect((server.address() as { port: number }).port);
  client.on('error', () => undefined);
  return { client, outcome, accepted, server };
}

async function closeAll(served: Served<unknown>): Promise<void> {
  served.client.destroy();
  (await served.accepted).destroy();
  served.server.close();
  await once(served.server, 'close');
}

const collect: Loop = async (socket) => {
  const chunks: (Buffer | string)[] = [];
  for await (const chunk of socket) chunks.push(chunk as Buffer | string);
  return chunks;
};

for (const iterator of ITERATORS) {
  test(`${iterator} iterator: every byte in order, then the loop ends at the peer's FIN`, async () => {
    const served = await serveOne(iterator, collect);
    const data = Buffer.alloc(3 * 1024 * 1024);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 13)) & 0xff;
    served.client.end(data);
    const { value, error } = await served.outcome;
    assert.equal(error, undefined);
    assert.ok(Buffer.concat(value as Buffer[]).equals(data));
    await closeAll(served);
  });

  test(`${iterator} iterator: strings after setEncoding`, async () => {
    const served = await serveOne(iterator, (socket) => {
      socket.setEncoding('utf8');
      return collect(socket);
    });
    served.client.end('grüße, 世界');
    const { value } = await served.outcome;
    assert.ok((value as unknown[]).every((c) => typeof c === 'string'));
    assert.equal((value as string[]).join(''), 'grüße, 世界');
    await closeAll(served);
  });

  test(`${iterator} iterator: a slow loop reads only as fast as it consumes`, async () => {
    let ahead = 0;
    let consumed = 0;
    const served = await serveOne(iterator, async (socket) => {
      for await (const chunk of socket) {
        consumed += (chunk as Buffer).length;
        ahead = Math.max(ahead, socket.bytesRead - consumed);
        if (consumed < 2 * 1024 * 1024) await sleep(5);
      }
      return consumed;
    });
    const total = 8 * 1024 * 1024;
    served.client.end(Buffer.alloc(total));
    const { value, error } = await served.outcome;
    assert.equal(error, undefined);
    assert.equal(value, total);
    // Unbounded reading would hold megabytes; paused at the highWaterMark (16 KiB) it holds at
    // most that plus node's own buffer and one 64 KiB read on each side of the pause.
    assert.ok(ahead < 512 * 1024, `read ${ahead} bytes ahead of the loop`);
    await closeAll(served);
  });

  test(`${iterator} iterator: break destroys the socket with an AbortError; the peer sees the close`, async () => {
    const served = await serveOne(iterator, async (socket) => {
      const errored = once(socket, 'error');
      for await (const _ of socket) break;
      const [err] = (await errored) as [NodeJS.ErrnoException];
      return { destroyed: socket.destroyed, name: err.name, code: err.code };
    });
    served.client.write('one');
    const closed = untilClosed(served.client);
    const { value } = await served.outcome;
    assert.deepEqual(value, { destroyed: true, name: 'AbortError', code: 'ABORT_ERR' });
    assert.equal((await closed).data, '');
    await closeAll(served);
  });

  test(`${iterator} iterator: a throw in the loop body rejects and destroys the socket`, async () => {
    const served = await serveOne(iterator, async (socket) => {
      try {
        for await (const _ of socket) throw new Error('handler bug');
      } finally {
        assert.equal(socket.destroyed, true);
      }
    });
    served.client.write('x');
    const { error } = await served.outcome;
    assert.equal(error?.message, 'handler bug');
    await untilClosed(served.client);
    await closeAll(served);
  });

  test(`${iterator} iterator: a peer's reset throws ECONNRESET`, async () => {
    const served = await serveOne(iterator, collect);
    served.client.write('partial');
    await sleep(50);
    served.client.resetAndDestroy();
    const { error } = await served.outcome;
    assert.equal(error?.code, 'ECONNRESET');
    await closeAll(served);
  });

  test(`${iterator} iterator: a socket destroyed elsewhere while the loop waits throws premature close`, async () => {
    const served = await serveOne(iterator, async (socket) => {
      setTimeout(() => socket.destroy(), 50);
      return collect(socket);
    });
    served.client.write('hello');
    const { error } = await served.outcome;
    assert.equal(error?.code, 'ERR_STREAM_PREMATURE_CLOSE');
    await closeAll(served);
  });

  test(`${iterator} iterator: a loop started after the input ended ends at once`, async () => {
    const served = await serveOne(iterator, async (socket) => {
      socket.resume();
      await once(socket, 'end');
      return collect(socket);
    });
    served.client.end('dropped');
    const { value, error } = await served.outcome;
    assert.equal(error, undefined);
    assert.deepEqual(value, []);
    await closeAll(served);
  });

  test(`${iterator} iterator: a loop started on a destroyed socket throws premature close`, async () => {
    const served = await serveOne(iterator, async (socket) => {
      socket.destroy();
      return collect(socket);
    });
    const { error } = await served.outcome;
    assert.equal(error?.code, 'ERR_STREAM_PREMATURE_CLOSE');
    await closeAll(served);
  });

  test(`${iterator} iterator: a socket paused before and inside the loop is still read`, async () => {
    const served = await serveOne(iterator, async (socket) => {
      socket.pause();
      await sleep(20);
      let text = '';
      for await (const chunk of socket) {
        text += String(chunk);
        socket.pause();
        if (text.length >= 6) break;
        served.client.write('def');
      }
      return text;
    });
    served.client.write('abc');
    const { value } = await served.outcome;
    assert.equal(value, 'abcdef');
    await closeAll(served);
  });
}

test('tcpdaemon iterator: next() twice without awaiting resolves both, in order', async () => {
  const served = await serveOne('tcpdaemon', async (socket) => {
    const it = socket[Symbol.asyncIterator]();
    const [a, b] = await Promise.all([it.next(), it.next()]);
    await it.return?.();
    return [String(a.value), String(b.value)];
  });
  served.client.write('first');
  await sleep(50);
  served.client.write('second');
  const { value } = await served.outcome;
  assert.deepEqual(value, ['first', 'second']);
  await closeAll(served);
});

test('tcpdaemon iterator: three next() waiting, then data and the end: the first gets the data, the others are done', async () => {
  const served = await serveOne('tcpdaemon', async (socket) => {
    const it = socket[Symbol.asyncIterator]();
    const results = await Promise.all([it.next(), it.next(), it.next()]);
    return results.map((r) => (r.done ? 'done' : String(r.value)));
  });
  served.client.end('only');
  const { value } = await served.outcome;
  assert.deepEqual(value, ['only', 'done', 'done']);
  await closeAll(served);
});

test('tcpdaemon iterator: the prototype stays node’s; the iterator is an AsyncIterator', async () => {
  const served = await serveOne('tcpdaemon', async (socket) => {
    const it = socket[Symbol.asyncIterator]();
    const proto = Object.getPrototypeOf(Object.getPrototypeOf(async function* () {}).prototype);
    const result = {
      own: Object.hasOwn(socket, Symbol.asyncIterator),
      protoUntouched: Object.getPrototypeOf(socket)[Symbol.asyncIterator] !== socket[Symbol.asyncIterator],
      isAsyncIterator: Object.prototype.isPrototypeOf.call(proto, it),
      self: it[Symbol.asyncIterator]() === it,
    };
    await it.return?.();
    return result;
  });
  assert.deepEqual((await served.outcome).value, {
    own: true,
    protoUntouched: true,
    isAsyncIterator: true,
    self: true,
  });
  await closeAll(served);
});

for (const [model, workers] of [
  ['IOMP', '1'],
  ['IOMP', '2'],
  ['LF', '2'],
  ['IF', '2'],
  ['TLF', '2'],
]) {
  test(`examples/echo.ts under ${model} -c ${workers}: an echo of 32 MiB then FIN comes back whole (node's iterator drops the unsent tail)`, async () => {
    await withDaemon(
      ['-m', model!, '-c', workers!, '-l', '127.0.0.1:0', '-s', join(EXAMPLES, 'echo.ts')],
      async ({ port }) => {
        const s = await connect(port);
        const data = Buffer.alloc(32 * 1024 * 1024, 0x5a);
        s.pause();
        s.end(data);
        await sleep(300); // the server's send buffer fills while we do not read
        const back = await readBytes(s, data.length, 60_000);
        assert.equal(back.length, data.length);
        assert.ok(back.equals(data));
        await untilClosed(s);
      },
    );
  });

  /** Sends `sent` and FIN to a daemon serving `fixture`; the connection must end cleanly with `reply`. */
  const repliesAfterFin = (fixture: string, sent: string, reply: string) =>
    withDaemon(
      ['-m', model!, '-c', workers!, '-l', '127.0.0.1:0', '-s', join(FIXTURES, fixture)],
      async ({ port }) => {
        const s = await connect(port);
        s.end(sent);
        const { data, error } = await untilClosed(s);
        assert.equal(error, undefined);
        assert.equal(data, reply);
      },
    );

  test(`${model} -c ${workers}: a reply written after the loop ended at the peer's FIN reaches the peer`, () =>
    repliesAfterFin('reply-after-loop.mjs', '12345', 'got 5\n'));

  test(`${model} -c ${workers}: an async handler in event style that waits for 'close' ends at the peer's FIN (node's default half-close)`, () =>
    repliesAfterFin('await-close.mjs', 'ping', 'ping'));

  test(`${model} -c ${workers}: what the peer sent before its FIN is echoed even when the handler gets to it after the FIN`, async () => {
    await withDaemon(
      ['-m', model!, '-c', workers!, '-l', '127.0.0.1:0', '-s', join(FIXTURES, 'echo-after-fin.mjs')],
      async ({ port }) => {
        const s = await connect(port);
        s.write('first');
        assert.equal((await readBytes(s, 5)).toString(), 'first');
        // The handler now waits for the FIN, so 'tail' is still in its loop's hands when it arrives.
        s.end('tail');
        const { data, error } = await untilClosed(s);
        assert.equal(error, undefined);
        assert.equal(data, 'tail');
      },
    );
  });
}
