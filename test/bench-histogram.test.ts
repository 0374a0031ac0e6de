import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { LatencyHistogram, MAX_US } from '../src/bench/histogram.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

/** The exact value at rank ceil(q * n) of the sorted values. */
function exactQuantile(sorted: number[], q: number): number {
  return sorted[Math.max(1, Math.ceil(q * sorted.length)) - 1]!;
}

const values = fc.array(fc.integer({ min: 0, max: MAX_US }), { minLength: 1, maxLength: 300 });
const quantile = fc.double({ min: 0, max: 1, noNaN: true });

test('a quantile is never below the exact one and at most 1/64 above it', () => {
  fc.assert(
    fc.property(values, quantile, (vs, q) => {
      const h = new LatencyHistogram();
      for (const v of vs) h.record(v);
      const exact = exactQuantile(
        [...vs].sort((a, b) => a - b),
        q,
      );
      const got = h.quantile(q);
      assert.ok(got >= exact, `q=${q}: ${got} < exact ${exact}`);
      assert.ok(got <= exact + exact / 64, `q=${q}: ${got} too far above exact ${exact}`);
    }),
  );
});

test('small values are exact; min, max, mean and count are exact', () => {
  const h = new LatencyHistogram();
  for (const v of [3, 1, 127, 64, 5]) h.record(v);
  assert.equal(h.count, 5);
  assert.equal(h.min, 1);
  assert.equal(h.max, 127);
  assert.equal(h.mean, 40);
  assert.equal(h.quantile(0.5), 5);
  assert.equal(h.quantile(1), 127);
});

test('merging per-thread histograms equals recording everything in one', () => {
  fc.assert(
    fc.property(values, values, quantile, (a, b, q) => {
      const one = new LatencyHistogram();
      const left = new LatencyHistogram();
      const right = new LatencyHistogram();
      for (const v of a) {
        one.record(v);
        left.record(v);
      }
      for (const v of b) {
        one.record(v);
        right.record(v);
      }
      const merged = LatencyHistogram.fromData(structuredClone(left.toData()));
      merged.merge(structuredClone(right.toData()));
      assert.deepEqual(
        [merged.count, merged.min, merged.max, merged.mean, merged.quantile(q)],
        [one.count, one.min, one.max, one.mean, one.quantile(q)],
      );
    }),
  );
});

test('milliseconds are stored as rounded microseconds; out-of-range values are clamped', () => {
  const h = new LatencyHistogram();
  h.recordMs(1.2344);
  assert.equal(h.max, 1234);
  h.record(-5);
  assert.equal(h.min, 0);
  h.record(MAX_US * 4);
  assert.equal(h.max, MAX_US);
  assert.equal(new LatencyHistogram().quantile(0.99), 0, 'empty histogram reports 0');
});
