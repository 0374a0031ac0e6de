// An LF worker's turns (src/models/lf/accept-turns.ts) on a real listening socket: with the native
// dup a short connection ends with the worker listening again by itself (no 'idle' for the daemon),
// a reported or handed-over one ends with 'idle', and a busy worker accepts nothing. The socket is
// one the test bound and then let go of, so the turns' copies are its only descriptors.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { closeSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { test } from 'node:test';
import { AcceptTurns } from '../src/models/lf/accept-turns.js';
import { type Dup, nativeDup } from '../src/native/addon.js';
import type { FromWorker } from '../src/worker/messages.js';
import { connect, roundTrip } from './helpers/net.js';
import { waitUntil } from './helpers/supervisor.js';

const dup = nativeDup();
const NO_DUP = dup
  ? false
  : 'the native dup is not built (npm run build without a C compiler or node headers)';

/** A listening socket on 127.0.0.1: a descriptor of it of our own, and its port. */
async function listeningCopy(d: Dup): Promise<{ fd: number; port: number }> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const fd = d((server as unknown as { _handle: { fd: number } })._handle.fd);
  server.close();
  return { fd, port };
}

interface Worker {
  turns: AcceptTurns;
  sent: FromWorker[];
  served: Socket[];
  /** What finished() answered per connection, in order. */
  ends: boolean[];
  nextServed(): Promise<Socket>;
}

/**
 * AcceptTurns serving an echo; each close calls finished() as the LF worker does. A connection is
 * reported after `tookReportMs` (by default longer than any test: a loaded machine can hold a
 * short connection open past the real 10 ms, and that turn would then wait for a daemon).
 */
function worker(withDup: Dup | undefined, tookReportMs = 600_000): Worker {
  const sent: FromWorker[] = [];
  const served: Socket[] = [];
  const ends: boolean[] = [];
  let waiting: ((s: Socket) => void) | undefined;
  const turns = new AcceptTurns({
    send: (m) => sent.push(m),
    serve: (socket) => {
      served.push(socket);
      socket.on('data', (d) => socket.write(d));
      socket.on('end', () => socket.end());
      socket.on('close', () => ends.push(turns.finished()));
      waiting?.(socket);
      waiting = undefined;
    },
    fail: (err) => {
      throw err;
    },
    onFirstTurn: () => undefined,
    dup: withDup,
    tookReportMs,
  });
  return {
    turns,
    sent,
    served,
    ends,
    nextServed: () =>
      new Promise((res) => {
        waiting = res;
      }),
  };
}

/** `body` with AcceptTurns armed on a fresh listening socket (leave to make its own copies: `own`); stopped after. */
async function withTurns(
  withDup: Dup | undefined,
  body: (w: Worker, port: number) => Promise<void>,
  own = true,
  tookReportMs?: number,
): Promise<Worker> {
  const { fd, port } = await listeningCopy(dup!);
  const w = worker(withDup, tookReportMs);
  w.turns.arm({ fd }, own);
  try {
    await body(w, port);
  } finally {
    w.turns.stop();
  }
  return w;
}

async function shortConnection(port: number): Promise<void> {
  const s = await connect(port);
  assert.equal(await roundTrip(s, 'ping'), 'ping');
  s.end();
  await once(s, 'close');
}

test('LF turns with dup: ten short connections in a row, no message to the daemon', {
  skip: NO_DUP,
}, async () => {
  const w = await withTurns(dup, async (w, port) => {
    for (let i = 0; i < 10; i++) await shortConnection(port);
    await waitUntil(() => w.ends.length === 10, 'the end of the tenth turn');
    assert.equal(w.served.length, 10);
    assert.deepEqual(w.ends, Array(10).fill(true), 'each turn listened again by itself');
    assert.deepEqual(w.sent, [], "no 'took', no 'idle'");
    assert.equal(w.turns.listening, true);
  });
  assert.equal(w.turns.listening, false);
});

test('LF turns with dup: a busy worker accepts nothing; the waiting connection is served next', {
  skip: NO_DUP,
}, async () => {
  await withTurns(dup, async (w, port) => {
    const a = await connect(port);
    assert.equal(await roundTrip(a, 'a'), 'a');
    const b = await connect(port); // established by the kernel, queued
    b.write('b');
    // A round trip on a: the worker's event loop has polled since b arrived.
    assert.equal(await roundTrip(a, 'a again'), 'a again');
    assert.equal(w.served.length, 1, 'b is not accepted while a is served');
    assert.equal(w.turns.listening, false);
    const servedB = w.nextServed();
    a.end();
    await servedB;
    b.setEncoding('utf8');
    const [echo] = await once(b, 'data');
    assert.equal(echo, 'b');
    b.destroy();
    await once(b, 'close');
  });
});

test("LF turns with dup: a connection reported as busy ('took') ends with 'idle'", {
  skip: NO_DUP,
}, async () => {
  await withTurns(
    dup,
    async (w, port) => {
      const a = await connect(port);
      assert.equal(await roundTrip(a, 'x'), 'x');
      await waitUntil(() => w.sent.length > 0, 'the report of a connection open for 10 ms');
      assert.deepEqual(w.sent, [{ tdm: 'took' }]);
      a.end();
      await once(a, 'close');
      await waitUntil(() => w.ends.length > 0, 'the end of the turn');
      assert.deepEqual(w.ends, [false], "the daemon is told ('idle') and sends the next turn");
      assert.equal(w.turns.listening, false);
    },
    true,
    10,
  );
});

test("LF turns without dup: every connection ends with 'idle' (the daemon sends each copy)", {
  skip: NO_DUP,
}, async () => {
  await withTurns(undefined, async (w, port) => {
    await shortConnection(port);
    await waitUntil(() => w.ends.length > 0, 'the end of the turn');
    assert.deepEqual(w.ends, [false]);
    assert.equal(w.turns.listening, false);
  });
});

test('the native dup: a new descriptor of the same file; EBADF for a closed one', {
  skip: NO_DUP,
}, async () => {
  const { fd } = await listeningCopy(dup!);
  const copy = dup!(fd);
  assert.notEqual(copy, fd);
  closeSync(copy);
  closeSync(fd);
  assert.throws(() => dup!(fd), { code: 'EBADF' });
  assert.throws(() => dup!('3' as unknown as number), { code: 'ERR_INVALID_ARG_TYPE' });
});

test('LF turns with dup, the daemon counting (--max-connections): each turn ends with idle', {
  skip: NO_DUP,
}, async () => {
  await withTurns(
    dup,
    async (w, port) => {
      await shortConnection(port);
      await waitUntil(() => w.ends.length > 0, 'the end of the turn');
      assert.deepEqual(w.ends, [false], 'armed without leave to make its own copies');
      // Armed with leave, then told a limit came in (own-copies-off) before the connection ends.
      const { fd: fd2, port: port2 } = await listeningCopy(dup!);
      w.turns.arm({ fd: fd2 }, true);
      const s = await connect(port2);
      assert.equal(await roundTrip(s, 'y'), 'y');
      w.turns.ownCopiesOff();
      s.end();
      await waitUntil(() => w.ends.length > 1, 'the end of the second turn');
      assert.deepEqual(w.ends, [false, false]);
      assert.equal(w.turns.listening, false);
    },
    false,
  );
});
