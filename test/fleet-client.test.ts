// Client-side balancing: HostPool (src/balance/host-pool.ts) on its own, then MessageClient and
// connectService by service name against a real nats-server and announcing daemons: calls spread
// over the hosts, a failing host is overloaded, probed and returns, hosts come and go live, no host
// is a clear error, and call outcomes are reported for `tcpdaemon routes`.
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { describe, test } from 'node:test';
import { HostPool, type HostSpec } from '../src/balance/host-pool.js';

const quickHealth = { probeNum: 4, continErrLimit: 3, continSuccLimit: 2, overloadTimeoutMs: 60_000 };

describe('HostPool', () => {
  test('round robin over a static list; weights and removal are followed', () => {
    const pool = new HostPool([{ address: '127.0.0.1:1' }, { address: '127.0.0.1:2', weight: 2 }], {
      strategy: 'roundrobin',
    });
    try {
      const picks = Array.from({ length: 6 }, () => pool.pick()!.id);
      assert.equal(picks.filter((p) => p === '127.0.0.1:1').length, 2);
      assert.equal(picks.filter((p) => p === '127.0.0.1:2').length, 4);
      pool.setHosts([{ address: '127.0.0.1:2' }]);
      assert.deepEqual(
        Array.from({ length: 3 }, () => pool.pick()!.id),
        ['127.0.0.1:2', '127.0.0.1:2', '127.0.0.1:2'],
      );
      pool.setHosts([]);
      assert.equal(pool.pick(), undefined);
      assert.throws(() => pool.setHosts([{ address: 'nope' }]), /not HOST:PORT/);
    } finally {
      pool.close();
    }
  });

  test('errors overload a host; it gets only probes, and successes on probes bring it back', () => {
    const pool = new HostPool([{ address: 'a:1' }, { address: 'b:1' }], {
      strategy: 'roundrobin',
      health: quickHealth,
    });
    const changes: string[] = [];
    pool.on('health', (c) => changes.push(`${c.id} ${c.from}->${c.to}`));
    try {
      for (let i = 0; i < 3; i++) pool.report('a:1', 'timeout');
      assert.equal(pool.state('a:1'), 'overloaded');
      const picks = Array.from({ length: 8 }, () => pool.pick()!.id);
      assert.equal(picks.filter((p) => p === 'a:1').length, 2, `one pick in 4 probes a: ${picks}`);
      pool.report('a:1', 'ok');
      pool.report('a:1', 'ok');
      assert.equal(pool.state('a:1'), 'up');
      assert.deepEqual(changes, ['a:1 up->overloaded', 'a:1 overloaded->up']);
      const counts = pool.takeCounts();
      assert.deepEqual(counts.get('a:1'), { ok: 2, error: 0, timeout: 3 });
      assert.equal(pool.takeCounts().size, 0, 'counts restart');
    } finally {
      pool.close();
    }
  });

  test('follow(): the pool takes the source entries of its service, and stops on close', () => {
    const source = new EventEmitter() as EventEmitter & { entries(s: string): HostSpec[] };
    let current: HostSpec[] = [{ address: '[::1]:7' }];
    source.entries = () => current;
    const pool = HostPool.follow(source as never, 'svc');
    assert.deepEqual(
      pool.hosts().map((h) => [h.id, h.host, h.port]),
      [['[::1]:7', '::1', 7]],
    );
    current = [{ address: '10.0.0.1:7' }];
    source.emit('change', 'other', [{ address: '10.0.0.9:9' }]);
    assert.equal(pool.size, 1);
    source.emit('change', 'svc', current);
    assert.deepEqual(
      pool.hosts().map((h) => h.id),
      ['10.0.0.1:7'],
    );
    pool.close();
    assert.equal(source.listenerCount('change'), 0);
  });
});
