// The gateway's pure parts: envelope, request correlation, balancing, store, directory, names, params.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { leastOutstanding, outstandingPerWorker, perGatewayBound } from '../src/gateway/balancer.js';
import { toReply } from '../src/gateway/business.js';
import { Directory, type Holder } from '../src/gateway/directory.js';
import { decodeEnvelope, type Envelope, encodeEnvelope, KIND } from '../src/gateway/envelope.js';
import { IdSet } from '../src/gateway/id-set.js';
import { parseTarget } from '../src/gateway/names.js';
import { validateGatewayParams } from '../src/gateway/params.js';
import { decodeRelay, encodeRelay } from '../src/gateway/protocol.js';
import { GatewayError, type Outcome, RequestTable } from '../src/gateway/requests.js';
import {
  MESSAGE_OVERHEAD,
  MessageStore,
  messageCost,
  NAME_OVERHEAD,
  nameCost,
} from '../src/gateway/store.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

const session = { id: 'g1:1', name: '', remoteAddress: '127.0.0.1', remotePort: 5000 };

describe('envelope', () => {
  test('every kind round-trips', () => {
    const all: Envelope[] = [
      {
        kind: KIND.request,
        id: 7,
        msgid: -3,
        session: { ...session, name: 'alice' },
        timeoutMs: 1500,
        body: Buffer.from('x'),
      },
      { kind: KIND.reply, id: 0xffffffff, msgid: 2147483647, body: Buffer.alloc(0) },
      { kind: KIND.error, id: 1, message: 'ünïcode failure' },
      { kind: KIND.ack, id: 9, worker: 'wabc' },
      { kind: KIND.send, id: 3, msgid: 5, target: 'bob', body: Buffer.from([0, 1, 2]) },
      { kind: KIND.sendResult, id: 3, ok: true, text: 'stored' },
      { kind: KIND.sendResult, id: 4, ok: false, text: 'store full' },
      { kind: KIND.bye },
      { kind: KIND.byeAck },
      { kind: KIND.none, id: 12 },
    ];
    for (const e of all) assert.deepEqual(decodeEnvelope(encodeEnvelope(e)), e);
  });

  test('requests with any body and strings round-trip; truncations are errors, never garbage', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 200 }),
        fc.string({ maxLength: 40 }),
        fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
        (body, name, msgid) => {
          const e: Envelope = {
            kind: KIND.request,
            id: 1,
            msgid,
            session: { ...session, name },
            timeoutMs: 10,
            body: Buffer.from(body),
          };
          const bytes = encodeEnvelope(e);
          assert.deepEqual(decodeEnvelope(bytes), e);
          // Cut inside the strings: a RangeError, not a wrong envelope.
          const cut = 9 + 2 + Buffer.byteLength(session.id) + 1;
          assert.throws(() => decodeEnvelope(bytes.subarray(0, cut)), RangeError);
        },
      ),
    );
    assert.throws(
      () => decodeEnvelope(Buffer.from([99, 0, 0, 0, 0, 0, 0, 0, 0])),
      /unknown envelope kind 99/,
    );
    assert.throws(() => decodeEnvelope(Buffer.alloc(3)), /shorter than its header/);
  });
});

describe('RequestTable', () => {
  /** Opens a request; its outcome as a promise (rejected for a GatewayError). */
  function open(t: RequestTable, msgid: number, body: Buffer) {
    let settle!: (o: Outcome) => void;
    const outcome = new Promise<Outcome>((r) => {
      settle = r;
    });
    const request = t.open(msgid, body, session, settle);
    const reply = outcome.then((o) => {
      if (o instanceof GatewayError) throw o;
      return o;
    });
    return { request, reply };
  }

  test('one outcome per request; a reply after the timeout is dropped and counted', async () => {
    const timedOut: number[] = [];
    const t = new RequestTable(50, (r) => timedOut.push(r.id));
    const a = open(t, 1, Buffer.from('a'));
    const b = open(t, 2, Buffer.from('b'));
    assert.notEqual(a.request.id, b.request.id);
    assert.equal(t.resolve(a.request.id, { msgid: 1, body: Buffer.from('A') }), true);
    assert.equal(t.resolve(a.request.id, { msgid: 1, body: Buffer.from('again') }), false);
    assert.equal((await a.reply)!.body.toString(), 'A');
    await assert.rejects(b.reply, (e: GatewayError) => e.code === 'timeout' && /50 ms/.test(e.message));
    assert.deepEqual(timedOut, [b.request.id]);
    assert.equal(t.resolve(b.request.id, { msgid: 2, body: Buffer.from('late') }), false);
    assert.equal(t.reject(b.request.id, new GatewayError('remote', 'late error')), false);
    assert.equal(t.lateReplies, 3);
    assert.equal(t.timeouts, 1);
    assert.equal(t.size, 0);
  });

  test('ids wrap at 2^32 and then skip the ones still pending', () => {
    const t = new RequestTable(10_000);
    const first = open(t, 1, Buffer.from('a'));
    assert.equal(first.request.id, 1);
    (t as unknown as { lastId: number }).lastId = 0xfffffffe;
    const last = open(t, 1, Buffer.from('b'));
    assert.equal(last.request.id, 0xffffffff);
    const wrapped = open(t, 1, Buffer.from('c'));
    assert.equal(wrapped.request.id, 2, 'id 1 is still pending');
    assert.equal(t.resolve(1, undefined), true);
    assert.equal(t.resolve(0xffffffff, undefined), true);
    assert.equal(t.resolve(2, undefined), true);
  });

  test('a waiting request keeps the view of a small read, and copies its body out of a large one', () => {
    const t = new RequestTable(10_000);
    // A read of 16 frames of 64 bytes (as node hands it: shrunk to the bytes read).
    const small = Buffer.from(new ArrayBuffer(16 * 72));
    const a = open(t, 1, small.subarray(8, 72));
    t.ownBody(a.request);
    assert.equal(a.request.body.buffer, small.buffer);
    // A 64 KiB read of which one 64-byte body waits.
    const large = Buffer.from(new ArrayBuffer(64 * 1024));
    large.fill(7, 100, 164);
    const b = open(t, 2, large.subarray(100, 164));
    t.ownBody(b.request);
    assert.notEqual(b.request.body.buffer, large.buffer);
    assert.deepEqual(b.request.body, Buffer.alloc(64, 7));
    t.rejectAll(new GatewayError('closed', 'done'));
    void a.reply.catch(() => undefined);
    void b.reply.catch(() => undefined);
  });

  test('one shared deadline timer: requests opened over time each time out on their own deadline, settled ones never', async () => {
    const timedOut: number[] = [];
    // Deadlines half a second apart: a loaded machine's timer lateness stays well below that.
    const t = new RequestTable(1000, (r) => timedOut.push(r.msgid));
    const first = open(t, 1, Buffer.alloc(0));
    const settled = open(t, 2, Buffer.alloc(0));
    await new Promise((r) => setTimeout(r, 500));
    const later = open(t, 3, Buffer.alloc(0));
    t.resolve(settled.request.id, undefined);
    const started = Date.now();
    await assert.rejects(first.reply, /timed out/);
    assert.deepEqual(timedOut, [1], 'the later request is not due yet');
    await assert.rejects(later.reply, /timed out/);
    assert.ok(Date.now() - started >= 300, 'the later one waited for its own deadline');
    assert.deepEqual(timedOut, [1, 3]);
    assert.equal(await settled.reply, undefined);
    assert.equal(t.size, 0);
  });

  test('reissue gives a retry a new id and keeps the deadline; the old id is late', async () => {
    const t = new RequestTable(10_000);
    const { request, reply } = open(t, 5, Buffer.from('x'));
    const old = request.id;
    const again = t.reissue(old)!;
    assert.notEqual(again.id, old);
    assert.equal(again.attempts, 2);
    assert.equal(again.deadline, request.deadline);
    assert.equal(t.resolve(old, undefined), false);
    assert.equal(t.resolve(again.id, undefined), true);
    assert.equal(await reply, undefined);
    assert.equal(t.reissue(again.id), undefined);
    const c = open(t, 6, Buffer.alloc(0));
    t.rejectAll(new GatewayError('closed', 'bye'));
    await assert.rejects(c.reply, /bye/);
  });
});

describe('leastOutstanding', () => {
  const w = (outstanding: number, accepting = true) => ({ outstanding, accepting });
  test('fewest outstanding below the bound; none when all are full or retiring', () => {
    assert.equal(leastOutstanding([w(3), w(1), w(2)], 10), 1);
    assert.equal(leastOutstanding([w(3), w(1, false), w(2)], 10), 2);
    assert.equal(leastOutstanding([w(4), w(4)], 4), -1);
    assert.equal(leastOutstanding([], 4), -1);
    assert.equal(leastOutstanding([w(0, false)], 4), -1);
  });
  test('ties rotate with start, so idle workers share the load', () => {
    const idle = [w(0), w(0), w(0)];
    assert.deepEqual(
      [0, 1, 2, 3].map((s) => leastOutstanding(idle, 5, s)),
      [0, 1, 2, 0],
    );
  });
  test('property: the pick is accepting, below the bound, and no accepting worker has fewer', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ outstanding: fc.nat(20), accepting: fc.boolean() }), { maxLength: 12 }),
        fc.integer({ min: 1, max: 25 }),
        fc.nat(100),
        (ws, bound, start) => {
          const i = leastOutstanding(ws, bound, start);
          const eligible = ws.filter((x) => x.accepting && x.outstanding < bound);
          if (eligible.length === 0) return i === -1;
          const min = Math.min(...eligible.map((x) => x.outstanding));
          return i >= 0 && ws[i]!.accepting && ws[i]!.outstanding === min;
        },
      ),
    );
  });
  test('perGatewayBound splits a worker bound among gateways, at least 1', () => {
    assert.equal(perGatewayBound(64, 1), 64);
    assert.equal(perGatewayBound(64, 3), 21);
    assert.equal(perGatewayBound(2, 4), 1);
  });

  test('outstandingPerWorker: twice what the worker runs, shared among gateways', () => {
    assert.equal(outstandingPerWorker(64, 1), 128);
    assert.equal(outstandingPerWorker(64, 3), 42);
    assert.equal(outstandingPerWorker(1, 4), 1);
  });
});

describe('MessageStore', () => {
  test('keeps order, bounds count per name and bytes in all, expires by TTL', () => {
    let now = 1000;
    // Room for 'a' and its two messages, not for one more name.
    const max = nameCost('a') + messageCost(Buffer.from('one')) * 2 + 4;
    const s = new MessageStore({ maxPerName: 2, ttlMs: 100, maxBytes: max, maxNames: 10 }, () => now);
    assert.deepEqual(s.put('a', 1, Buffer.from('one')), { ok: true });
    assert.deepEqual(s.put('a', 2, Buffer.from('two')), { ok: true });
    assert.equal(s.put('a', 3, Buffer.from('x')).ok, false);
    const bytes = s.put('b', 1, Buffer.from('12345'));
    assert.deepEqual(bytes, { ok: false, reason: `store is full (${max} bytes)` });
    assert.equal(s.heldBytes, nameCost('a') + messageCost(Buffer.from('one')) * 2);
    now += 50;
    assert.deepEqual(s.take('a').length, 2);
    assert.ok(s.put('b', 9, Buffer.from('b')).ok);
    now += 60; // 'b' 60 ms old
    assert.deepEqual(
      s.take('b').map((m) => m.msgid),
      [9],
    );
    assert.ok(s.put('c', 1, Buffer.from('c')).ok);
    now += 110;
    assert.deepEqual(s.take('c'), []);
    assert.equal(s.expired, 1);
    assert.equal(s.size, 0);
    assert.equal(s.heldBytes, 0);
    assert.equal(s.names, 0);
  });

  test('empty bodies to distinct names: the bytes bound counts names and bookkeeping, and names are capped', () => {
    const bytes = new MessageStore({ maxPerName: 100, ttlMs: 60_000, maxBytes: 64 * 1024, maxNames: 1e6 });
    let stored = 0;
    for (let i = 0; i < 10_000; i++) if (bytes.put(`name-${i}`, 1, Buffer.alloc(0)).ok) stored++;
    assert.ok(stored > 0 && stored <= (64 * 1024) / (MESSAGE_OVERHEAD + NAME_OVERHEAD), `stored ${stored}`);
    assert.ok(bytes.heldBytes <= 64 * 1024);
    assert.equal(bytes.names, stored);

    const names = new MessageStore({ maxPerName: 100, ttlMs: 60_000, maxBytes: 2 ** 40, maxNames: 50 });
    const refused = new Set<string>();
    for (let i = 0; i < 1000; i++) {
      const r = names.put(`n${i}`, 1, Buffer.alloc(0));
      if (!r.ok) refused.add(r.reason);
    }
    assert.equal(names.names, 50);
    assert.equal(names.size, 50);
    assert.deepEqual([...refused], ['store is full (messages kept for 50 names)']);
    // A name already held still takes messages; a freed name slot is usable again.
    assert.ok(names.put('n0', 2, Buffer.alloc(0)).ok);
    names.take('n1');
    assert.ok(names.put('fresh', 1, Buffer.alloc(0)).ok);
  });

  test('sweep drops expired messages of every name', () => {
    let now = 0;
    const s = new MessageStore({ maxPerName: 10, ttlMs: 10, maxBytes: 10_000, maxNames: 10 }, () => now);
    s.put('a', 1, Buffer.from('x'));
    s.put('b', 1, Buffer.from('y'));
    now = 5;
    s.put('b', 2, Buffer.from('z'));
    now = 12;
    assert.equal(s.sweep(), 2);
    assert.equal(s.size, 1);
    assert.equal(s.names, 1);
    assert.equal(s.heldBytes, nameCost('b') + messageCost(Buffer.from('z')));
  });
});

describe('Directory', () => {
  function directory(online: Set<string>) {
    const taken: [Holder, string][] = [];
    const pushed: string[] = [];
    const d = new Directory(
      new MessageStore({ maxPerName: 5, ttlMs: 60_000, maxBytes: 1 << 20, maxNames: 100 }),
      {
        push: async (_instance, sessionId, msgid, body) => {
          if (!online.has(sessionId)) return false;
          pushed.push(`${sessionId}:${msgid}:${body}`);
          return true;
        },
        nameTaken: (h, name) => taken.push([h, name]),
      },
    );
    return { d, taken, pushed };
  }
  const name = (n: string) => ({ kind: 'name' as const, name: n });

  test('offline names are stored and handed over in order on register; newest registration wins', async () => {
    const online = new Set<string>();
    const { d, taken, pushed } = directory(online);
    assert.equal(await d.deliver(name('bob'), 1, Buffer.from('first')), 'stored');
    assert.equal(await d.deliver(name('bob'), 2, Buffer.from('second')), 'stored');
    online.add('g1:1');
    const stored = d.register('bob', { instance: 'g1', sessionId: 'g1:1' });
    assert.deepEqual(
      stored.map((m) => m.body.toString()),
      ['first', 'second'],
    );
    assert.equal(await d.deliver(name('bob'), 3, Buffer.from('live')), 'delivered');
    online.add('g2:7');
    d.register('bob', { instance: 'g2', sessionId: 'g2:7' });
    assert.deepEqual(taken, [[{ instance: 'g1', sessionId: 'g1:1' }, 'bob']]);
    assert.equal(await d.deliver(name('bob'), 4, Buffer.from('to newest')), 'delivered');
    assert.deepEqual(pushed, ['g1:1:3:live', 'g2:7:4:to newest']);
    // The old holder unregistering does not drop the new one.
    d.unregister('bob', 'g1:1');
    assert.equal(d.holder('bob')?.sessionId, 'g2:7');
  });

  test('a holder that closed unnoticed: the message is stored; unknown sessions fail; a gone gateway frees its names', async () => {
    const online = new Set<string>();
    const { d } = directory(online);
    d.register('eve', { instance: 'g3', sessionId: 'g3:1' });
    assert.equal(await d.deliver(name('eve'), 1, Buffer.from('x')), 'stored');
    assert.equal(d.holder('eve'), undefined);
    const target = parseTarget('g3:2');
    assert.ok(typeof target !== 'string');
    await assert.rejects(d.deliver(target, 1, Buffer.from('x')), /no session g3:2/);
    d.register('zed', { instance: 'g4', sessionId: 'g4:1' });
    d.forgetInstance('g4');
    assert.equal(d.holder('zed'), undefined);
  });
});

describe('names, relay frames, replies', () => {
  test('targets are session ids or names; anything else is refused with a reason', () => {
    assert.deepEqual(parseTarget('g12:345'), {
      kind: 'session',
      sessionId: 'g12:345',
      instance: 'g12',
      n: '345',
    });
    assert.deepEqual(parseTarget('alice_1'), { kind: 'name', name: 'alice_1' });
    for (const bad of ['', 'a.b', 'with space', '-dash', 'g1:0', 'x'.repeat(65), 'a*', '>']) {
      assert.equal(typeof parseTarget(bad), 'string', bad);
    }
  });
  test('relay frames round-trip; short ones are refused', () => {
    const f = encodeRelay('bob', -7, Buffer.from('payload'));
    assert.deepEqual(decodeRelay(f), { target: 'bob', msgid: -7, body: Buffer.from('payload') });
    assert.equal(typeof decodeRelay(Buffer.from([5, 97])), 'string');
    assert.equal(typeof decodeRelay(Buffer.alloc(0)), 'string');
  });
  test('toReply accepts bytes, strings, { msgid, body } and nothing; refuses the rest', () => {
    assert.deepEqual(toReply('hi', 3), { msgid: 3, body: Buffer.from('hi') });
    assert.deepEqual(toReply({ msgid: 9 }, 3), { msgid: 9, body: Buffer.alloc(0) });
    assert.deepEqual(toReply(new Uint8Array([1]), 3), { msgid: 3, body: Buffer.from([1]) });
    assert.equal(toReply(undefined, 3), undefined);
    assert.throws(() => toReply(42, 3), /returned number/);
    assert.throws(() => toReply({ msgid: 1.5 }, 3), /int32/);
    assert.throws(() => toReply({ msgid: 1, body: 5 }, 3), /body must be/);
  });
});

describe('gateway parameters', () => {
  test('one clear reason per mistake', () => {
    const cases: [Record<string, unknown>, 'gateway' | 'worker', RegExp][] = [
      [{ business: 'b.ts' }, 'gateway', /listen \(-l\) is required/],
      [{ listen: '127.0.0.1:0' }, 'gateway', /business \(-s\) is required/],
      [
        { listen: '127.0.0.1:0', business: 'b.ts', queue: 'redis://x' },
        'gateway',
        /queue \(--queue\) must be ipc or nats/,
      ],
      [{ listen: '127.0.0.1:0', business: 'b.ts', queue: 'nats://h:4222' }, 'gateway', /separate command/],
      [{ business: 'b.ts' }, 'worker', /needs --queue nats/],
      [
        { listen: '127.0.0.1:0', business: 'b.ts', businessWorkers: '0' },
        'gateway',
        /businessWorkers \(--business-workers\) must be a whole number >= 1/,
      ],
      [
        { listen: '127.0.0.1:0', business: 'b.ts', requestTimeout: 'soon' },
        'gateway',
        /requestTimeout \(--request-timeout\) must be a number/,
      ],
      [
        { listen: '127.0.0.1:0', business: 'b.ts', codec: 'tdhb:99' },
        'gateway',
        /codec \(--codec\) tdhb width/,
      ],
      [{ listen: '127.0.0.1:0', business: 'b.ts', nope: 1 }, 'gateway', /unknown parameter 'nope'/],
      [
        { listen: '127.0.0.1:0', business: 'b.ts', codec: 'lars', refuseOverInflight: true },
        'gateway',
        /--refuse-over-inflight needs --codec seq/,
      ],
      [
        { listen: '127.0.0.1:0', business: 'b.ts', storeNames: -1 },
        'gateway',
        /storeNames \(--store-names\) must be a whole number/,
      ],
    ];
    for (const [input, role, re] of cases) assert.throws(() => validateGatewayParams(input, role), re);
    const ok = validateGatewayParams(
      { listen: '127.0.0.1:0', business: 'b.ts', requestTimeout: 0.25 },
      'gateway',
    );
    assert.equal(ok.requestTimeoutMs, 250);
    assert.equal(ok.codec, 'seq');
    assert.equal(ok.refuseOverInflight, false);
    assert.equal(ok.maxSessionBytes, 8 * 1024 * 1024);
    assert.equal(ok.storeNames, 10_000);
    assert.deepEqual(
      validateGatewayParams({ business: 'b.ts', queue: 'nats://127.0.0.1:4222' }, 'worker').queue,
      {
        kind: 'nats',
        servers: ['nats://127.0.0.1:4222'],
        prefix: 'tcpdaemon',
      },
    );
  });
});

describe('IdSet (the ids outstanding at a worker link)', () => {
  test('behaves as a Set of ids under any sequence of adds, deletes and clears', () => {
    // A small range makes collisions, long probe runs and wrap-around at the table's end common.
    const id = fc.oneof(fc.integer({ min: 1, max: 64 }), fc.constantFrom(0xffffffff, 0xfffffffe, 2 ** 31));
    const op = fc.oneof(
      fc.record({ add: id }),
      fc.record({ del: id }),
      fc.constant({ clear: true as const }),
    );
    fc.assert(
      fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
        const ours = new IdSet();
        const ref = new Set<number>();
        for (const o of ops) {
          if ('add' in o) {
            ours.add(o.add);
            ref.add(o.add);
          } else if ('del' in o) {
            assert.equal(ours.delete(o.del), ref.delete(o.del));
          } else {
            ours.clear();
            ref.clear();
          }
          assert.equal(ours.size, ref.size);
        }
        assert.deepEqual(
          ours.values().sort((a, b) => a - b),
          [...ref].sort((a, b) => a - b),
        );
        for (let i = 1; i <= 64; i++) assert.equal(ours.has(i), ref.has(i), `has(${i})`);
      }),
      { numRuns: 300 },
    );
  });

  test('a steady stream of adds and deletes (sequential ids, a window in flight) keeps its table', () => {
    const ids = new IdSet();
    let next = 1;
    for (; next <= 128; next++) ids.add(next);
    const table = (ids as unknown as { table: Uint32Array }).table;
    for (let k = 0; k < 100_000; k++, next++) {
      assert.ok(ids.delete(next - 128));
      ids.add(next);
    }
    assert.equal(ids.size, 128);
    assert.equal((ids as unknown as { table: Uint32Array }).table, table, 'no new table');
    assert.ok(ids.has(next - 1) && !ids.has(next - 129));
  });
});
