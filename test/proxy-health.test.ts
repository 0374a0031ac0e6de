import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DEFAULT_PASSIVE_HEALTH, type HealthChange, HealthTracker } from '../src/balance/health.js';
import { parseBackendSpec } from '../src/proxy/backend.js';
import { ConnectChecker } from '../src/proxy/health-check.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

/** Long windows unless a test shortens them, so only the behaviour under test moves state. */
const quiet = { idleWindowMs: 60_000, overloadTimeoutMs: 60_000 };

function tracker(opts: Partial<typeof DEFAULT_PASSIVE_HEALTH> = {}) {
  const changes: HealthChange[] = [];
  const t = new HealthTracker({ ...quiet, ...opts }, (c) => changes.push(c));
  t.add('a');
  return { t, changes };
}

async function until(pred: () => boolean, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(10);
  }
}

describe('passive health (Lars rules)', () => {
  it('documents Lars defaults', () => {
    assert.equal(DEFAULT_PASSIVE_HEALTH.probeNum, 10);
    assert.equal(DEFAULT_PASSIVE_HEALTH.initSuccCnt, 180);
    assert.equal(DEFAULT_PASSIVE_HEALTH.continErrLimit, 15);
    assert.equal(DEFAULT_PASSIVE_HEALTH.idleWindowMs, 15000);
  });

  it('overloads a backend after continErrLimit errors in a row, and says why', () => {
    const { t, changes } = tracker({ continErrLimit: 4, initSuccCnt: 1000 });
    for (let i = 0; i < 3; i++) t.reportError('a');
    t.reportSuccess('a'); // breaks the run
    for (let i = 0; i < 3; i++) t.reportError('a');
    assert.equal(t.state('a'), 'up');
    t.reportError('a');
    assert.equal(t.state('a'), 'overloaded');
    assert.deepEqual(changes, [{ id: 'a', from: 'up', to: 'overloaded', reason: '4 errors in a row' }]);
    t.close();
  });

  it('overloads on a virtual error rate above errRate, counting initSuccCnt virtual successes', () => {
    const { t, changes } = tracker({ initSuccCnt: 18, errRate: 0.1, continErrLimit: 100 });
    t.reportError('a'); // 1/19
    t.reportSuccess('a');
    t.reportError('a'); // 2/21
    assert.equal(t.state('a'), 'up');
    t.reportError('a'); // 3/22 = 0.136
    assert.equal(t.state('a'), 'overloaded');
    assert.match(changes[0]!.reason, /^error rate 0\.14 > 0\.1$/);
    t.close();
  });

  it('brings an overloaded backend back after continSuccLimit successes in a row', () => {
    const { t, changes } = tracker({ continErrLimit: 1, initErrCnt: 1000, continSuccLimit: 3 });
    t.reportError('a');
    assert.equal(t.state('a'), 'overloaded');
    t.reportSuccess('a');
    t.reportSuccess('a');
    t.reportError('a');
    t.reportSuccess('a');
    t.reportSuccess('a');
    assert.equal(t.state('a'), 'overloaded');
    t.reportSuccess('a');
    assert.equal(t.state('a'), 'up');
    assert.equal(changes.at(-1)!.reason, '3 successes in a row');
    assert.equal(t.counts('a')!.err, 0, 'fresh counts when back up');
    t.close();
  });

  it('brings an overloaded backend back when its success rate passes succRate', () => {
    const { t } = tracker({ continErrLimit: 1, initErrCnt: 1, succRate: 0.75, continSuccLimit: 100 });
    t.reportError('a');
    for (let i = 0; i < 3; i++) t.reportSuccess('a'); // 3 / 4 = 0.75, not above
    assert.equal(t.state('a'), 'overloaded');
    t.reportSuccess('a'); // 4 / 5
    assert.equal(t.state('a'), 'up');
    t.close();
  });

  it('probes an overloaded backend on every probeNum-th pick, rotating over them', () => {
    const { t } = tracker({ probeNum: 3, continErrLimit: 1 });
    t.add('b');
    t.add('c');
    const none = new Set<string>();
    for (let i = 0; i < 10; i++) assert.equal(t.probe(none), undefined, 'nothing overloaded: no probes');
    t.reportError('a');
    t.reportError('b');
    const picks = Array.from({ length: 12 }, () => t.probe(none));
    assert.deepEqual(picks, [
      undefined,
      undefined,
      'a',
      undefined,
      undefined,
      'b',
      undefined,
      undefined,
      'a',
      undefined,
      undefined,
      'b',
    ]);
    const probes = Array.from({ length: 9 }, () => t.probe(new Set(['a']))).filter(Boolean);
    assert.deepEqual(probes, ['b', 'b', 'b'], 'an excluded backend is not probed');
    t.close();
  });

  it('returns an overloaded backend after overloadTimeoutMs on a real timer, no report needed', async () => {
    const { t, changes } = tracker({ continErrLimit: 1, overloadTimeoutMs: 100 });
    t.reportError('a');
    assert.equal(t.state('a'), 'overloaded');
    await until(() => t.state('a') === 'up');
    assert.equal(changes.at(-1)!.reason, 'overload timeout');
    t.close();
  });

  it('ends an up window on a real timer: restarts counts, or overloads when the window error rate was high', async () => {
    const { t, changes } = tracker({
      idleWindowMs: 100,
      windowErrRate: 0.5,
      continErrLimit: 100,
      initSuccCnt: 1000,
    });
    t.add('b');
    t.reportSuccess('a');
    t.reportError('a');
    t.reportError('a');
    t.reportSuccess('b');
    t.reportSuccess('b');
    t.reportError('b');
    assert.equal(t.counts('b')!.err, 1);
    await until(() => t.state('a') === 'overloaded');
    assert.match(changes[0]!.reason, /^window error rate 0\.67 >= 0\.5$/);
    await until(() => t.counts('b')!.err === 0);
    assert.equal(t.state('b'), 'up');
    t.close();
  });

  it('keeps a down backend out of the passive rules until markUp', () => {
    const { t, changes } = tracker({ continErrLimit: 1, continSuccLimit: 1 });
    t.markDown('a', 'process exited');
    t.reportError('a');
    t.reportSuccess('a');
    assert.equal(t.state('a'), 'down');
    t.markUp('a', 'connect check passed');
    assert.equal(t.state('a'), 'up');
    assert.deepEqual(
      changes.map((c) => [c.from, c.to, c.reason]),
      [
        ['up', 'down', 'process exited'],
        ['down', 'up', 'connect check passed'],
      ],
    );
    t.close();
  });
});

describe('active connect checks', () => {
  const dir = tempDir('tcpd-health-');
  after(() => rmSync(dir, { recursive: true, force: true }));

  async function listen(path: string): Promise<Server> {
    const s = createServer((c) => c.destroy());
    s.listen(path);
    await once(s, 'listening');
    return s;
  }

  it('reports down after `fall` failed connects and up after `rise` good ones', async () => {
    const path = join(dir, 'b.sock');
    const events: string[] = [];
    const checker = new ConnectChecker(
      { intervalMs: 30, timeoutMs: 500, fall: 2, rise: 3 },
      {
        down: (id, reason) => events.push(`down ${id} ${reason}`),
        up: (id, reason) => events.push(`up ${id} ${reason}`),
      },
    );
    let server = await listen(path);
    checker.add({ id: 'b', address: { path } });
    checker.start();
    await sleep(150);
    assert.deepEqual(events, [], 'a listening backend stays up');
    server.close();
    await once(server, 'close');
    await until(() => events.length === 1);
    assert.match(events[0]!, /^down b connect check failed: (ENOENT|ECONNREFUSED) \(2 in a row\)$/);
    server = await listen(path);
    await until(() => events.length === 2);
    assert.equal(events[1], 'up b connect check passed 3 times in a row');
    checker.stop();
    server.close();
  });

  it('checkNow runs one check at once; a target added as down comes up after `rise` passes', async () => {
    const path = join(dir, 'c.sock');
    const server = await listen(path);
    const ups: string[] = [];
    const checker = new ConnectChecker(
      { intervalMs: 60_000, rise: 1 },
      { down: () => {}, up: (id) => ups.push(id) },
    );
    checker.add({ id: 'c', address: { path } }, true);
    checker.checkNow('c');
    await until(() => ups.length === 1);
    checker.stop();
    server.close();
  });
});

describe('--backend syntax', () => {
  it('parses host:port, [v6]:port, socket paths and weight', () => {
    assert.deepEqual(parseBackendSpec('127.0.0.1:7001'), {
      id: '127.0.0.1:7001',
      address: { host: '127.0.0.1', port: 7001 },
      weight: 1,
    });
    assert.deepEqual(parseBackendSpec('[::1]:80,weight=5'), {
      id: '[::1]:80',
      address: { host: '::1', port: 80 },
      weight: 5,
    });
    assert.deepEqual(parseBackendSpec('localhost:9'), {
      id: 'localhost:9',
      address: { host: 'localhost', port: 9 },
      weight: 1,
    });
    assert.deepEqual(parseBackendSpec('unix:/run/b.sock').address, { path: '/run/b.sock' });
    assert.deepEqual(parseBackendSpec('./b.sock,weight=2'), {
      id: './b.sock',
      address: { path: './b.sock' },
      weight: 2,
    });
  });

  it('refuses malformed text with a one-line reason', () => {
    const bad: [string, RegExp][] = [
      ['127.0.0.1', /expected HOST:PORT/],
      ['127.0.0.1:0', /port must be 1\.\.65535/],
      ['127.0.0.1:70000', /port must be/],
      ['::1:80', /expected HOST:PORT/],
      ['[1.2.3.4]:80', /not an IPv6 address/],
      ['h:1,weight=0', /weight must be 1\.\.100/],
      ['h:1,weight=101', /weight must be/],
      ['h:1,weight=x', /unknown option 'weight=x'/],
      ['h:1,backup', /unknown option 'backup'/],
      ['', /expected HOST:PORT/],
    ];
    for (const [text, re] of bad) assert.throws(() => parseBackendSpec(text), re, text);
  });
});
