// The agent's request map (src/agent/requests.ts): upstream seqs and their wrap, every request out
// of the map exactly once (reply, timeout, lost connection, stop), the bounds, the parked queue.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { type Asker, type Parked, type Pending, RequestMap } from '../src/agent/requests.js';

function asker(): Asker & { answers: unknown[] } {
  const answers: unknown[] = [];
  return { inFlight: 0, closed: false, answers, answer: (...a) => void answers.push(a) };
}

function map(over: Partial<ConstructorParameters<typeof RequestMap<string>>[0]> = {}) {
  const timedOut: Pending<string>[] = [];
  const parkedOut: Parked[] = [];
  const m = new RequestMap<string>({
    timeoutMs: 10_000,
    maxInFlight: 100,
    maxInFlightPerConn: 10,
    onTimeout: (p) => timedOut.push(p),
    onParkedTimeout: (p) => parkedOut.push(p),
    ...over,
  });
  return { m, timedOut, parkedOut };
}

describe('agent request map', () => {
  test('upstream seqs run 1..2^32-1 and wrap to 1 (0 means one-way on the wire)', () => {
    const { m } = map({ firstSeq: 0xfffffffe });
    const a = asker();
    const seqs = [m.add(a, 7, 1, 'l0'), m.add(a, 8, 1, 'l0'), m.add(a, 9, 1, 'l0')].map((p) => p.upSeq);
    assert.deepEqual(seqs, [0xfffffffe, 0xffffffff, 1]);
    assert.deepEqual(
      m.takeAll().map((p) => (p as Pending<string>).localSeq),
      [7, 8, 9],
      'each under its own local seq',
    );
  });

  test('a reply takes its request once; a second reply for the same seq finds nothing', () => {
    const { m } = map();
    const a = asker();
    const p = m.add(a, 42, 5, 'l0');
    assert.equal(a.inFlight, 1);
    assert.equal(m.take(p.upSeq), p);
    assert.equal(a.inFlight, 0);
    assert.equal(m.take(p.upSeq), undefined, 'answered once');
    assert.equal(m.size, 0);
  });

  test('a timeout takes the request out (its late reply then finds nothing); onTimeout once', async () => {
    let fired!: () => void;
    const done = new Promise<void>((r) => {
      fired = r;
    });
    const timedOut: Pending<string>[] = [];
    const m = new RequestMap<string>({
      timeoutMs: 20,
      maxInFlight: 10,
      maxInFlightPerConn: 10,
      onTimeout: (p) => {
        timedOut.push(p);
        fired();
      },
      onParkedTimeout: () => assert.fail('nothing parked'),
    });
    const a = asker();
    const p = m.add(a, 1, 1, 'l0');
    await done;
    assert.deepEqual(timedOut, [p]);
    assert.equal(m.take(p.upSeq), undefined, 'the late reply matches nothing');
    assert.equal(a.inFlight, 0);
    assert.equal(m.size, 0);
  });

  test('a lost connection takes exactly its own requests, in the order sent', () => {
    const { m } = map();
    const a = asker();
    const b = asker();
    const p1 = m.add(a, 1, 1, 'l0');
    const q = m.add(b, 1, 1, 'l1');
    const p2 = m.add(b, 2, 1, 'l0');
    assert.equal(m.countOn('l0'), 2);
    assert.deepEqual(m.takeLink('l0'), [p1, p2]);
    assert.deepEqual(m.takeLink('l0'), [], 'not twice');
    assert.equal(m.take(p1.upSeq), undefined);
    assert.equal(m.take(q.upSeq), q, 'the other connection keeps its own');
    assert.equal(a.inFlight + b.inFlight, 0);
  });

  test("bounds: per connection first, then the agent's total (parked requests count)", () => {
    const { m } = map({ maxInFlight: 3, maxInFlightPerConn: 2 });
    const a = asker();
    const b = asker();
    m.add(a, 1, 1, 'l0');
    assert.equal(m.refusal(a), undefined);
    m.park(a, 2, 1, Buffer.from('x'));
    assert.match(
      m.refusal(a) ?? '',
      /^busy: 2 requests of this connection in flight \(--max-in-flight-per-conn 2\)$/,
    );
    m.add(b, 1, 1, 'l0');
    assert.match(m.refusal(b) ?? '', /^busy: 3 requests in flight in the agent \(--max-in-flight 3\)$/);
    assert.equal(m.takeAll().length, 3);
    assert.equal(m.refusal(a), undefined);
  });

  test('parked requests come out oldest first; a parked timeout calls onParkedTimeout once', async () => {
    let fired!: () => void;
    const done = new Promise<void>((r) => {
      fired = r;
    });
    const out: Parked[] = [];
    const m = new RequestMap<string>({
      timeoutMs: 20,
      maxInFlight: 10,
      maxInFlightPerConn: 10,
      onTimeout: () => undefined,
      onParkedTimeout: (p) => {
        out.push(p);
        fired();
      },
    });
    const a = asker();
    m.park(a, 1, 1, Buffer.from('1'));
    m.park(a, 2, 1, Buffer.from('2'));
    assert.equal(m.parkedCount, 2);
    assert.equal(m.unpark()?.localSeq, 1);
    assert.equal(a.inFlight, 1, 'unparked: counted again when added');
    await done;
    assert.deepEqual(
      out.map((p) => p.localSeq),
      [2],
    );
    assert.equal(m.unpark(), undefined);
    assert.equal(a.inFlight, 0);
  });
});
