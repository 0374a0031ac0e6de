// AddressLimiter: open connections and new connections per second per client address.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AddressLimiter } from '../src/address-limits.js';

test('open connections per address: the limit+1th is refused until one closes; other addresses are not affected', () => {
  const l = new AddressLimiter({ maxPerAddress: 2, ratePerAddress: 0 });
  assert.equal(l.admit('10.0.0.1'), undefined);
  assert.equal(l.admit('10.0.0.1'), undefined);
  assert.equal(l.admit('10.0.0.1'), 'connections');
  assert.equal(l.admit('10.0.0.2'), undefined);
  l.release('10.0.0.1');
  assert.equal(l.admit('10.0.0.1'), undefined);
  assert.equal(l.openFrom('10.0.0.1'), 2);
});

test('IPv4-mapped IPv6 counts as the IPv4 address', () => {
  const l = new AddressLimiter({ maxPerAddress: 1, ratePerAddress: 0 });
  assert.equal(l.admit('127.0.0.1'), undefined);
  assert.equal(l.admit('::ffff:127.0.0.1'), 'connections');
});

test('rate per address: a second worth of burst, then refill at the rate', () => {
  let now = 1_000_000;
  const l = new AddressLimiter({ maxPerAddress: 0, ratePerAddress: 5 }, () => now);
  for (let i = 0; i < 5; i++) assert.equal(l.admit('a'), undefined, `burst ${i}`);
  assert.equal(l.admit('a'), 'rate');
  assert.equal(l.admit('b'), undefined, 'another address has its own bucket');
  now += 200; // one token back
  assert.equal(l.admit('a'), undefined);
  assert.equal(l.admit('a'), 'rate');
  now += 10_000;
  for (let i = 0; i < 5; i++) assert.equal(l.admit('a'), undefined, 'never more than a second worth');
  assert.equal(l.admit('a'), 'rate');
});

test('a refused connection is not counted as open', () => {
  const l = new AddressLimiter({ maxPerAddress: 10, ratePerAddress: 1 }, () => 0);
  assert.equal(l.admit('a'), undefined);
  assert.equal(l.admit('a'), 'rate');
  assert.equal(l.openFrom('a'), 1);
});

test('memory: idle addresses are forgotten; addresses with open connections are kept', () => {
  let now = 0;
  const l = new AddressLimiter({ maxPerAddress: 3, ratePerAddress: 100 }, () => now);
  l.admit('kept');
  for (let i = 0; i < 5000; i++) {
    const a = `10.1.${i >> 8}.${i & 255}`;
    l.admit(a);
    l.release(a);
  }
  now += 2000;
  for (let i = 0; i < 2048; i++) {
    l.admit('busy');
    l.release('busy');
  }
  assert.ok(l.size <= 2 + 1024, `swept to the recent ones, have ${l.size}`);
  assert.equal(l.openFrom('kept'), 1);
});
