import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Candidate,
  createStrategy,
  DEFAULT_STRATEGY,
  STRATEGIES,
  STRATEGY_NAMES,
} from '../src/balance/strategies/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

const ctx = { clientKey: '127.0.0.1' };

function backends(n: number, weight = 1): Candidate[] {
  return Array.from({ length: n }, (_, i) => ({ id: `10.0.0.${i + 1}:7000`, weight, active: 0 }));
}

/** Deterministic uniform [0, 1) (mulberry32). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function counts(picks: (Candidate | undefined)[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of picks) m.set(p!.id, (m.get(p!.id) ?? 0) + 1);
  return m;
}

describe('strategy registry', () => {
  it('creates each strategy by name, and the default is registered', () => {
    assert.deepEqual(STRATEGY_NAMES.sort(), ['hash', 'leastconn', 'p2c', 'roundrobin']);
    for (const name of STRATEGY_NAMES) assert.equal(createStrategy(name).name, name);
    assert.ok(Object.hasOwn(STRATEGIES, DEFAULT_STRATEGY));
  });

  it('rejects an unknown name with the list of known ones', () => {
    assert.throws(() => createStrategy('random'), /unknown strategy 'random' \(expected one of .*leastconn/);
    assert.throws(() => createStrategy('__proto__'), /unknown strategy/);
  });

  it('every strategy returns undefined for no candidates and the only one for one', () => {
    const [only] = backends(1);
    for (const name of STRATEGY_NAMES) {
      const s = createStrategy(name);
      assert.equal(s.pick(ctx, []), undefined, name);
      assert.equal(s.pick(ctx, [only!]), only, name);
    }
  });
});

describe('roundrobin', () => {
  it('cycles through equal-weight backends in turn', () => {
    const bs = backends(3);
    const s = createStrategy('roundrobin');
    const ids = Array.from({ length: 9 }, () => s.pick(ctx, bs)!.id);
    assert.deepEqual(ids.slice(0, 3).sort(), bs.map((b) => b.id).sort());
    assert.deepEqual(ids.slice(3, 6), ids.slice(0, 3));
    assert.deepEqual(ids.slice(6, 9), ids.slice(0, 3));
  });

  it('honours weights exactly over a full cycle, interleaved rather than in bursts', () => {
    const bs = [
      { id: 'a', weight: 5, active: 0 },
      { id: 'b', weight: 1, active: 0 },
      { id: 'c', weight: 1, active: 0 },
    ];
    const s = createStrategy('roundrobin');
    const seq = Array.from({ length: 70 }, () => s.pick(ctx, bs)!.id);
    assert.deepEqual(Object.fromEntries(counts(seq.map((id) => bs.find((b) => b.id === id)))), {
      a: 50,
      b: 10,
      c: 10,
    });
    // Smooth: within a cycle the light backends sit between the a's (a plain scheme gives aaaaabc).
    assert.deepEqual(seq.slice(0, 7), ['a', 'a', 'b', 'a', 'c', 'a', 'a']);
    assert.deepEqual(seq.slice(7, 14), seq.slice(0, 7));
  });

  it('keeps going when the candidate set changes between picks', () => {
    const bs = backends(3);
    const s = createStrategy('roundrobin');
    for (let i = 0; i < 10; i++) s.pick(ctx, bs);
    const two = bs.slice(0, 2);
    const c = counts(Array.from({ length: 60 }, () => s.pick(ctx, two)));
    const [x, y] = [c.get(two[0]!.id)!, c.get(two[1]!.id)!];
    assert.equal(x + y, 60);
    assert.ok(Math.abs(x - y) <= 2, `${x} vs ${y}`);
  });
});

describe('leastconn', () => {
  it('picks the backend with the fewest active connections per unit of weight', () => {
    const s = createStrategy('leastconn');
    const bs = [
      { id: 'a', weight: 1, active: 4 },
      { id: 'b', weight: 1, active: 2 },
      { id: 'c', weight: 3, active: 3 },
    ];
    for (let i = 0; i < 5; i++) assert.equal(s.pick(ctx, bs)!.id, 'c');
    bs[1]!.active = 0;
    assert.equal(s.pick(ctx, bs)!.id, 'b');
  });

  it('spreads ties instead of always taking the first', () => {
    const s = createStrategy('leastconn');
    const bs = backends(4);
    const c = counts(Array.from({ length: 40 }, () => s.pick(ctx, bs)));
    assert.deepEqual([...c.values()], [10, 10, 10, 10]);
  });
});

describe('p2c', () => {
  it('never picks the busier of two backends', () => {
    const s = createStrategy('p2c', { random: seeded(1) });
    const bs = [
      { id: 'busy', weight: 1, active: 10 },
      { id: 'idle', weight: 1, active: 1 },
    ];
    for (let i = 0; i < 200; i++) assert.equal(s.pick(ctx, bs)!.id, 'idle');
  });

  it('never picks the single most loaded of several, and spreads equal load', () => {
    const s = createStrategy('p2c', { random: seeded(2) });
    const bs = backends(5);
    bs[2] = { ...bs[2]!, active: 100 };
    for (let i = 0; i < 500; i++) assert.notEqual(s.pick(ctx, bs)!.id, bs[2]!.id);
    const even = createStrategy('p2c', { random: seeded(3) });
    const c = counts(Array.from({ length: 5000 }, () => even.pick(ctx, backends(5))));
    assert.equal(c.size, 5);
    for (const n of c.values()) assert.ok(n > 700 && n < 1300, `share ${n} of 5000 over 5`);
  });

  it('compares load per unit of weight', () => {
    const s = createStrategy('p2c', { random: seeded(4) });
    const bs = [
      { id: 'big', weight: 4, active: 8 },
      { id: 'small', weight: 1, active: 3 },
    ];
    for (let i = 0; i < 50; i++) assert.equal(s.pick(ctx, bs)!.id, 'big');
  });
});

describe('hash (consistent)', () => {
  const keys = Array.from({ length: 20000 }, (_, i) => `198.51.${(i >> 8) & 255}.${i & 255}:${i}`);

  function assign(bs: Candidate[]): Map<string, string> {
    const s = createStrategy('hash');
    return new Map(keys.map((k) => [k, s.pick({ clientKey: k }, bs)!.id]));
  }

  it('sends the same client key to the same backend every time', () => {
    const s = createStrategy('hash');
    const bs = backends(5);
    for (const k of keys.slice(0, 200)) {
      const first = s.pick({ clientKey: k }, bs)!.id;
      assert.equal(s.pick({ clientKey: k }, [...bs].reverse())!.id, first);
    }
  });

  it('spreads keys about evenly', () => {
    const c = new Map<string, number>();
    for (const id of assign(backends(8)).values()) c.set(id, (c.get(id) ?? 0) + 1);
    const fair = keys.length / 8;
    for (const n of c.values()) assert.ok(n > 0.75 * fair && n < 1.25 * fair, `share ${n}, fair ${fair}`);
  });

  it('removing one of N backends moves only its keys, about 1/N of all', () => {
    const n = 10;
    const bs = backends(n);
    const before = assign(bs);
    const gone = bs[3]!.id;
    const after = assign(bs.filter((b) => b.id !== gone));
    let moved = 0;
    for (const [k, id] of before) {
      if (after.get(k) !== id) {
        moved++;
        assert.equal(id, gone, `key ${k} moved although its backend stayed`);
      }
    }
    const share = moved / keys.length;
    assert.ok(share > 0.5 / n && share < 1.5 / n, `moved ${share}`);
  });

  it('adding one backend to N moves about 1/(N+1) of keys, all to the new one', () => {
    const n = 10;
    const bs = backends(n + 1);
    const before = assign(bs.slice(0, n));
    const added = bs[n]!.id;
    const after = assign(bs);
    let moved = 0;
    for (const [k, id] of before) {
      if (after.get(k) !== id) {
        moved++;
        assert.equal(after.get(k), added);
      }
    }
    const share = moved / keys.length;
    assert.ok(share > 0.5 / (n + 1) && share < 1.5 / (n + 1), `moved ${share}`);
  });

  it('skipping a candidate (retry, unhealthy) gives the same answer as a ring without it', () => {
    const bs = backends(6);
    const s = createStrategy('hash');
    s.pick(ctx, bs); // ring built over all six
    const fresh = createStrategy('hash');
    const five = bs.slice(1);
    for (const k of keys.slice(0, 2000)) {
      assert.equal(s.pick({ clientKey: k }, five)!.id, fresh.pick({ clientKey: k }, five)!.id);
    }
  });

  it('gives a backend of weight 3 about three times the keys', () => {
    const bs = backends(3);
    bs[0] = { ...bs[0]!, weight: 3 };
    const c = new Map<string, number>();
    for (const id of assign(bs).values()) c.set(id, (c.get(id) ?? 0) + 1);
    const heavy = c.get(bs[0]!.id)!;
    const light = (c.get(bs[1]!.id)! + c.get(bs[2]!.id)!) / 2;
    assert.ok(heavy / light > 2.4 && heavy / light < 3.6, `ratio ${heavy / light}`);
  });
});
