// How envelopes are batched on the ipc links: bounded batches (bytes and count), one envelope
// alone leaves in its own event-loop turn, order kept (per session too) across forced writes, and
// the workers' reuse of a decoded session never hands a request another session's fields.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect, createServer, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import pino from 'pino';
import type { GatewayMessage } from '../src/gateway/business.js';
import {
  decodeEnvelope,
  type Envelope,
  KIND,
  SessionCache,
  type SessionInfo,
} from '../src/gateway/envelope.js';
import { type BatchBound, decodeBatch, EnvelopeBatch } from '../src/gateway/envelope-batch.js';
import {
  EnvelopeLink,
  LINK_BATCH_BYTES,
  LINK_BATCH_ENVELOPES,
  linkCodec,
} from '../src/gateway/envelope-link.js';
import { WorkerRunner } from '../src/gateway/worker-runner.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

const logger = pino({ level: 'silent' });
const sessions: SessionInfo[] = [
  { id: 'g1:1', name: '', remoteAddress: '127.0.0.1', remotePort: 5000 },
  { id: 'g1:2', name: 'alice', remoteAddress: '127.0.0.1', remotePort: 5001 },
  // Same id as the first, another name (a re-registration makes a new SessionInfo): never confused.
  { id: 'g1:1', name: 'bob', remoteAddress: '127.0.0.1', remotePort: 5000 },
  { id: 'g1:3', name: 'ünï', remoteAddress: '::1', remotePort: 65535 },
  // As long as the first, one byte apart: in the id, in the port.
  { id: 'g1:4', name: '', remoteAddress: '127.0.0.1', remotePort: 5000 },
  { id: 'g1:1', name: '', remoteAddress: '127.0.0.1', remotePort: 5002 },
];

type RequestEnvelope = Extract<Envelope, { kind: 1 }>;

function request(id: number, session: SessionInfo, bodyBytes: number): RequestEnvelope {
  const body = Buffer.alloc(bodyBytes, id & 0xff);
  return { kind: KIND.request, id, msgid: id, session, timeoutMs: 1000, body };
}

/** Envelopes in one batch's bytes (what a write carried). */
function countIn(bytes: Buffer): number {
  let n = 0;
  decodeBatch(bytes, () => n++);
  return n;
}

describe('EnvelopeBatch bound', () => {
  test('property: no batch passes its byte or count bound (only one bigger envelope goes alone), nothing is lost or reordered', () => {
    const envelope = fc.oneof(
      fc.record({ s: fc.integer({ min: 0, max: sessions.length - 1 }), body: fc.nat({ max: 3000 }) }),
      fc.record({ reply: fc.nat({ max: 3000 }) }),
      fc.record({ error: fc.string({ maxLength: 50 }) }),
    );
    fc.assert(
      fc.property(
        fc.array(envelope, { maxLength: 120 }),
        fc.integer({ min: 64, max: 8000 }),
        fc.integer({ min: 1, max: 40 }),
        (specs, bytes, count) => {
          const batches: Buffer[] = [];
          const bound: BatchBound = { bytes, count, full: (b) => batches.push(b) };
          const batch = new EnvelopeBatch(1 << 20, bound);
          const sent: Envelope[] = specs.map((x, i) => {
            if ('s' in x) return request(i + 1, sessions[x.s]!, x.body);
            if ('reply' in x)
              return { kind: KIND.reply, id: i + 1, msgid: 7, body: Buffer.alloc(x.reply, 1) };
            return { kind: KIND.error, id: i + 1, message: x.error };
          });
          for (const e of sent) {
            if (e.kind === KIND.request) batch.addRequest(e);
            else batch.add(e);
            // A batch that reached a bound has left already.
            assert.ok(batch.count < count && batch.length < bytes);
          }
          const last = batch.take();
          if (last) batches.push(last);
          assert.equal(batch.length, 0);
          const got: Envelope[] = [];
          for (const b of batches) {
            const n = countIn(b);
            assert.ok(n >= 1 && n <= count, `${n} envelopes in a batch bounded at ${count}`);
            assert.ok(b.length <= bytes || n === 1, `${b.length} bytes (${n} envelopes) over ${bytes}`);
            decodeBatch(b, (e) => got.push(e));
          }
          assert.deepEqual(got, sent);
        },
      ),
    );
  });

  test('without a bound the batch grows until take() (the NATS adapters cut their own)', () => {
    const batch = new EnvelopeBatch(1 << 20);
    for (let i = 1; i <= 1000; i++) batch.addRequest(request(i, sessions[0]!, 100));
    assert.equal(batch.count, 1000);
    assert.equal(countIn(batch.take()!), 1000);
    assert.equal(batch.take(), undefined);
  });
});

describe('SessionCache', () => {
  test('requests of one session in a row share one SessionInfo; a change of any field decodes anew', () => {
    const cache = new SessionCache();
    const order = [0, 0, 0, 1, 1, 0, 2, 2, 3, 0, 4, 4, 5, 0];
    const decoded = order.map((s, i) => {
      const e = request(i + 1, sessions[s]!, i);
      const batch = new EnvelopeBatch(1 << 20);
      batch.addRequest(e);
      let d: Envelope | undefined;
      decodeBatch(batch.take()!, (x) => (d = x), cache);
      assert.deepEqual(d, e);
      return d as RequestEnvelope;
    });
    assert.equal(decoded[1]!.session, decoded[0]!.session);
    assert.equal(decoded[2]!.session, decoded[0]!.session);
    assert.notEqual(decoded[5]!.session, decoded[0]!.session); // not the last one: decoded again
    assert.notEqual(decoded[6]!.session, decoded[5]!.session); // same id, another name
    assert.notEqual(decoded[10]!.session, decoded[9]!.session);
    assert.notEqual(decoded[12]!.session, decoded[11]!.session);
    assert.equal(cache.hits, 5);
    assert.equal(cache.misses, 9);
  });

  test('truncated session fields are a RangeError with or without the cache', () => {
    const batch = new EnvelopeBatch(1 << 20);
    batch.addRequest(request(1, sessions[1]!, 10));
    const bytes = batch.take()!.subarray(4);
    const cache = new SessionCache();
    decodeEnvelope(bytes, cache);
    for (let cut = 9; cut < bytes.length - 10; cut++) {
      assert.throws(() => decodeEnvelope(bytes.subarray(0, cut), cache), RangeError, `cut at ${cut}`);
      assert.throws(() => decodeEnvelope(bytes.subarray(0, cut)), RangeError, `cut at ${cut}`);
    }
  });

  test('the handler sees each request with its own session, also when sessions alternate', async () => {
    const seen: GatewayMessage['session'][] = [];
    const runner = new WorkerRunner((msg) => void seen.push(msg.session), {
      workerId: 1,
      logger,
      maxConcurrent: 4,
      params: {},
    });
    const cache = new SessionCache();
    const order = [1, 1, 0, 2, 2, 1, 3, 3, 3, 0, 4, 5, 5, 0, 4];
    const batch = new EnvelopeBatch(1 << 20);
    for (const [i, s] of order.entries()) batch.addRequest(request(i + 1, sessions[s]!, 3));
    let answers = 0;
    decodeBatch(
      batch.take()!,
      (e) => {
        if (e.kind !== KIND.request) return;
        runner.run(
          e,
          () => Promise.reject(new Error('unused')),
          () => answers++,
        );
      },
      cache,
    );
    await runner.idle();
    assert.equal(answers, order.length);
    assert.deepEqual(
      seen,
      order.map((s) => {
        const x = sessions[s]!;
        return { ...x, name: x.name === '' ? undefined : x.name };
      }),
    );
  });
});

/** Two linked EnvelopeLinks over a loopback TCP connection; `a.socket.write` is counted. */
async function linkPair(onB: (e: Envelope) => void) {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  const accepted = once(server, 'connection') as Promise<[Socket]>;
  const client = connect(port, '127.0.0.1');
  await once(client, 'connect');
  const [serverSide] = await accepted;
  server.close();
  const codec = linkCodec(1 << 20);
  const writes: Buffer[] = [];
  const write = client.write.bind(client) as (b: Buffer) => boolean;
  client.write = ((b: Buffer) => {
    writes.push(b);
    return write(b);
  }) as typeof client.write;
  const a = new EnvelopeLink(client, codec, () => undefined, logger);
  const b = new EnvelopeLink(serverSide, codec, (e) => onB(e), logger);
  const close = async () => {
    a.destroy('test over');
    b.destroy('test over');
    await Promise.all([a.closed, b.closed]);
  };
  return { a, b, writes, close };
}

describe('EnvelopeLink batching', () => {
  test('one envelope alone is written in the turn it was sent in (no timer), and arrives', {
    timeout: 60_000,
  }, async () => {
    let got: Envelope | undefined;
    let arrived!: () => void;
    const arrival = new Promise<void>((r) => {
      arrived = r;
    });
    const { a, writes, close } = await linkPair((e) => {
      got = e;
      arrived();
    });
    try {
      const e = request(1, sessions[1]!, 64);
      assert.ok(a.sendRequest(e));
      assert.equal(writes.length, 0); // batched until the end of this turn...
      await new Promise((r) => setImmediate(r));
      assert.equal(writes.length, 1); // ...and written in it, not after a delay
      assert.equal(countIn(writes[0]!), 1);
      await arrival;
      assert.deepEqual(got, e);
    } finally {
      await close();
    }
  });

  test('a burst goes in writes within the bound, the first ones at once; order is kept, per session too', {
    timeout: 60_000,
  }, async () => {
    const got: Envelope[] = [];
    const total = 3000;
    let arrived!: () => void;
    const all = new Promise<void>((r) => {
      arrived = r;
    });
    const { a, writes, close } = await linkPair((e) => {
      got.push(e);
      if (got.length === total) arrived();
    });
    try {
      const sent: Envelope[] = [];
      for (let i = 1; i <= total; i++) {
        // Sessions interleaved, bodies of several sizes; one envelope bigger than a whole batch.
        // (Names tell the sessions apart below; the last two share the first's name.)
        const bodyBytes = i === 1500 ? LINK_BATCH_BYTES + 100 : (i * 37) % 300;
        const e = request(i, sessions[i % sessions.length]!, bodyBytes);
        sent.push(e);
        if (i % 2 === 0) a.sendRequest(e);
        else a.send(e);
      }
      // Over the bound already: full batches left during the burst, not at the end of the turn.
      assert.ok(writes.length >= 2, `${writes.length} writes during the burst`);
      await all;
      let envelopes = 0;
      for (const w of writes) {
        const n = countIn(w);
        envelopes += n;
        assert.ok(n <= LINK_BATCH_ENVELOPES, `${n} envelopes in one write`);
        assert.ok(w.length <= LINK_BATCH_BYTES || n === 1, `${w.length} bytes in one write of ${n}`);
      }
      assert.equal(envelopes, total);
      assert.deepEqual(got, sent);
      for (const s of sessions) {
        const mine = got.flatMap((e) =>
          e.kind === KIND.request && e.session.id === s.id && e.session.remotePort === s.remotePort
            ? [e.id]
            : [],
        );
        assert.deepEqual(
          mine,
          [...mine].sort((x, y) => x - y),
        );
      }
    } finally {
      await close();
    }
  });
});
