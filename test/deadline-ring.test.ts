import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import fc from 'fast-check';
import { coarseNow } from '../src/coarse-clock.js';
import { type Deadlined, DeadlineRing, DeadlineSlots } from '../src/deadline-ring.js';

interface Held {
  key: number;
  ticket: number;
  due: number;
}

const TOLERANCE = 5;

describe('DeadlineRing', () => {
  test('against a model: every key not removed expires once, not before its deadline, at most the tolerance after', () => {
    const op = fc.oneof(
      // Mostly in arrival order (the same timeout); sometimes much earlier (a retry).
      { weight: 6, arbitrary: fc.record({ add: fc.integer({ min: 0, max: 40 }) }) },
      { weight: 1, arbitrary: fc.record({ addEarly: fc.integer({ min: 0, max: 30 }) }) },
      { weight: 5, arbitrary: fc.record({ remove: fc.nat() }) },
      // Removes every held item but the oldest: the ring fills with holes behind one slow item.
      { weight: 1, arbitrary: fc.record({ removeAllButOldest: fc.constant(true) }) },
      { weight: 2, arbitrary: fc.record({ advance: fc.integer({ min: 0, max: 15 }) }) },
    );
    fc.assert(
      fc.property(fc.array(op, { minLength: 20, maxLength: 800, size: 'max' }), (ops) => {
        let clock = 1000;
        let latest = clock;
        const expired: number[] = [];
        const ring = new DeadlineRing((key) => expired.push(key), {
          now: () => clock,
          toleranceMs: TOLERANCE,
        });
        const held = new Map<number, Held>();
        const gone = new Set<number>();
        let next = 1;
        let mostHeld = 0;
        const check = (): void => {
          for (const key of expired.splice(0)) {
            const h = held.get(key);
            assert.ok(
              h !== undefined && !gone.has(key),
              `key ${key} expired twice, after remove(), or never added`,
            );
            assert.ok(h.due <= clock, `key ${key} expired at ${clock}, before its deadline ${h.due}`);
            held.delete(key);
            gone.add(key);
            ring.remove(h.ticket, key); // after expiry: a no-op
          }
          for (const h of held.values()) {
            assert.ok(h.due + TOLERANCE > clock, `key ${h.key} due ${h.due} still held at ${clock}`);
          }
          assert.equal(ring.size, held.size);
        };
        try {
          for (const o of ops) {
            if ('add' in o || 'addEarly' in o) {
              const due = 'add' in o ? Math.max(latest, clock + o.add) : clock + o.addEarly;
              latest = Math.max(latest, due);
              const key = next++;
              held.set(key, { key, ticket: ring.add(key, due), due });
            } else if ('remove' in o || 'removeAllButOldest' in o) {
              const all = [...held.values()];
              const victims =
                'remove' in o ? all.slice(o.remove % Math.max(1, all.length)).slice(0, 1) : all.slice(1);
              for (const h of victims) {
                ring.remove(h.ticket, h.key);
                ring.remove(h.ticket, h.key); // twice: a no-op
                ring.remove(h.ticket, h.key + 1_000_000); // another key under that ticket: a no-op
                held.delete(h.key);
                gone.add(h.key);
              }
            } else {
              clock += o.advance;
              ring.runDue();
              check();
            }
            assert.equal(ring.size, held.size);
            mostHeld = Math.max(mostHeld, held.size);
          }
          clock += 100;
          ring.runDue();
          check();
          assert.equal(held.size, 0);
          assert.ok(
            ring.capacity <= Math.max(64, 4 * mostHeld),
            `capacity ${ring.capacity}, most held ${mostHeld}`,
          );
        } finally {
          ring.clear();
        }
      }),
      { numRuns: 300 },
    );
  });

  test('one long wait at the head: the ring does not grow with the traffic behind it', () => {
    let clock = 0;
    const expired: number[] = [];
    const ring = new DeadlineRing((key) => expired.push(key), { now: () => clock });
    ring.add(1, 10_000);
    for (let key = 2; key < 100_000; key++) {
      clock = key / 100;
      ring.remove(ring.add(key, clock + 10_000), key);
    }
    assert.equal(ring.size, 1);
    assert.ok(ring.capacity <= 128, `capacity ${ring.capacity} for one item held`);
    clock = 10_000;
    ring.runDue();
    assert.deepEqual(expired, [1]);
    ring.clear();
  });

  test('a late run expires the ring and the heap merged in deadline order', () => {
    let clock = 0;
    const expired: number[] = [];
    const ring = new DeadlineRing((key) => expired.push(key), { now: () => clock, toleranceMs: 2 });
    ring.add(1, 10);
    ring.add(2, 40);
    ring.add(3, 15); // earlier than the ring's latest: the heap
    ring.add(4, 60);
    ring.add(5, 20); // the heap
    try {
      clock = 45; // the timer was due at 10 and ran late
      ring.runDue();
      assert.deepEqual(expired, [1, 3, 5, 2]);
      clock = 60;
      ring.runDue();
      assert.deepEqual(expired, [1, 3, 5, 2, 4]);
      assert.equal(ring.size, 0);
    } finally {
      ring.clear();
    }
  });

  test('keys must be 1..2^32-1', () => {
    const ring = new DeadlineRing(() => undefined);
    assert.throws(() => ring.add(0, Date.now()), RangeError);
    assert.throws(() => ring.add(2 ** 32, Date.now()), RangeError);
    ring.clear();
  });
});

describe('DeadlineSlots', () => {
  test('the timer expires items in deadline order, and an item added from inside an expiry gets its turn', async () => {
    interface Item extends Deadlined {
      name: string;
    }
    const order: string[] = [];
    const item = (name: string): Item => ({ name, deadlineKey: 0, deadlineTicket: 0 });
    const slots = new DeadlineSlots<Item>(
      (i) => {
        order.push(i.name);
        assert.equal(i.deadlineKey, 0);
        if (i.name === 'again1') slots.add(item('again2'), Date.now() + 5);
      },
      { toleranceMs: 2 },
    );
    const now = Date.now();
    slots.add(item('early'), now + 10);
    slots.add(item('first'), now + 40);
    slots.add(item('retry'), now + 15); // out of order: waits in the heap, not behind 'first'
    const removed = item('removed');
    slots.add(removed, now + 45);
    slots.add(item('last'), now + 60);
    slots.add(item('again1'), now + 61);
    slots.remove(removed);
    slots.remove(removed);
    assert.equal(removed.deadlineKey, 0);
    assert.equal(slots.size, 5);
    for (let i = 0; i < 500 && order.length < 6; i++) await new Promise((r) => setTimeout(r, 10));
    assert.deepEqual(order, ['early', 'retry', 'first', 'last', 'again1', 'again2']);
    assert.equal(slots.size, 0);
  });
});

describe('coarseNow', () => {
  test('one clock read per run of synchronous work, never ahead of Date.now, read again after a microtask', async () => {
    const first = coarseNow();
    const until = Date.now() + 5;
    while (Date.now() < until) {
      // spin: the clock moves, the coarse value must not within this run
    }
    assert.equal(coarseNow(), first);
    assert.ok(first <= Date.now());
    await Promise.resolve();
    await new Promise((r) => setImmediate(r));
    const again = coarseNow();
    assert.ok(again >= until, `read again after the run: ${again} >= ${until}`);
  });
});
