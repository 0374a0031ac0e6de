// The gateway with the embedded (ipc) queue: real daemon, gateway and worker processes, real sockets.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { encodeRelay, GATEWAY_MSGID } from '../src/gateway/protocol.js';
import { createCodec, MessageError } from '../src/message/index.js';
import { type DaemonProcess, EXAMPLES, withDaemon } from './helpers/daemon.js';
import { gatewayArgs, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { FramedSocket } from './helpers/message.js';
import { socketPath, status } from './helpers/status.js';
import { waitUntil } from './helpers/supervisor.js';

checkNoLeftoverProcesses();

/** The refused client got an error notice matching `reason`, was closed, and the gateway logged why. */
async function assertRefused(
  refused: Awaited<ReturnType<typeof gatewayClient>>,
  daemon: DaemonProcess,
  reason: RegExp,
): Promise<void> {
  const [notice] = await refused.waitPushed(1);
  assert.equal(notice!.msgid, GATEWAY_MSGID.error);
  assert.match(notice!.body, reason);
  await waitUntil(() => !refused.client.connected, 'the refused connection closed');
  const logged = await daemon.waitForLog((l) => l.msg === 'client connection refused');
  assert.match(String(logged.reason), reason);
}

async function rejection(p: Promise<unknown>): Promise<MessageError> {
  const err = await p.then(
    () => assert.fail('expected an error reply'),
    (e: unknown) => e,
  );
  assert.ok(err instanceof MessageError, String(err));
  return err;
}

describe('gateway, ipc queue', () => {
  test('requests through 2 workers: out-of-order replies correlate, one connection uses both workers', async () => {
    await withDaemon(gatewayArgs('--business-workers', '2'), async ({ port }) => {
      const c = await gatewayClient(port);
      try {
        assert.equal((await c.client.request(1, 'ping')).toString(), 'ping');
        const order: string[] = [];
        const slow = c.client.request(2, '600').then((b) => {
          order.push('slow');
          return b.toString();
        });
        const fast = c.client.request(1, 'quick').then((b) => {
          order.push('fast');
          return b.toString();
        });
        assert.equal(await fast, 'quick');
        const slowPid = await slow;
        assert.deepEqual(order, ['fast', 'slow']);
        // Two slow requests at once on one connection go to two workers (fewest outstanding).
        const pids = await Promise.all([c.client.request(2, '300'), c.client.request(2, '300')]);
        assert.notEqual(pids[0]!.toString(), pids[1]!.toString());
        assert.match(slowPid, /^pid:\d+$/);
        const other = await c.client.request(7, '');
        assert.match(other.toString(), /^seventy-seven from g\d+:1$/);
        // With the default seq codec the reply keeps the business module's own msgid.
        const raw = await FramedSocket.connect(port, createCodec('seq'));
        try {
          raw.send(7, '', 41);
          const [frame] = await raw.waitFrames(1);
          assert.deepEqual([frame!.msgid, frame!.seq], [77, 41], 'reply msgid 77 to request seq 41');
        } finally {
          raw.destroy();
        }
        assert.equal(c.client.stats.lateReplies, 0);
      } finally {
        await c.close();
      }
    });
  });

  test('a busy worker has its next request at hand: the gateway keeps twice --worker-concurrency outstanding at it', async () => {
    const sock = socketPath();
    await withDaemon(
      gatewayArgs('--business-workers', '1', '--worker-concurrency', '1', '--status-socket', sock),
      async ({ port }) => {
        const c = await gatewayClient(port, 'seq', 20_000);
        try {
          // Three in flight until the first ends: a status poll (a CLI process) must land in that time.
          const answers = [1, 2, 3].map(() => c.client.request(2, '3000'));
          let requests: { inFlight: number; waiting: number } | undefined;
          for (const deadline = Date.now() + 10_000; Date.now() < deadline; ) {
            const report = await status(sock);
            requests = report.sections?.find((x) => x.title === 'requests')?.data as typeof requests;
            if (requests?.inFlight === 3) break;
          }
          assert.equal(requests?.inFlight, 3, 'three requests in flight');
          // One runs at the worker, one waits there for it, one waits in the gateway.
          assert.equal(requests?.waiting, 1, 'requests waiting in the gateway for a worker with room');
          assert.deepEqual(
            (await Promise.all(answers)).map((b) => /^pid:\d+$/.test(b.toString())),
            [true, true, true],
          );
        } finally {
          await c.close();
        }
      },
    );
  });

  test('a throwing handler and a bad return value give error frames; the connection and workers live on', async () => {
    await withDaemon(gatewayArgs('--business-workers', '1'), async ({ port, daemon }) => {
      const c = await gatewayClient(port);
      try {
        const err = await rejection(c.client.request(3, 'no such account'));
        assert.equal(err.code, 'ERR_MESSAGE_REMOTE');
        assert.equal(err.message, 'no such account');
        const bad = await rejection(c.client.request(9, ''));
        assert.match(bad.message, /returned number/);
        assert.equal((await c.client.request(1, 'still here')).toString(), 'still here');
        await daemon.waitForLog((l) => l.msg === 'business handler failed');
        assert.equal(daemon.logs.filter((l) => l.msg === 'worker exited').length, 0);
      } finally {
        await c.close();
      }
    });
  });

  test('lars codec: a plain Lars client gets replies in request order; errors come as msgid -1', async () => {
    await withDaemon(
      [
        'gateway',
        '-l',
        '127.0.0.1:0',
        '-s',
        `${EXAMPLES}/gateway-echo.ts`,
        '--codec',
        'lars',
        '--business-workers',
        '2',
      ],
      async ({ port }) => {
        const c = await gatewayClient(port, 'lars');
        try {
          const replies = await Promise.all(
            Array.from({ length: 20 }, (_, i) => c.client.request(100 + (i % 3), `m${i}`)),
          );
          assert.deepEqual(
            replies.map((b) => b.toString()),
            Array.from({ length: 20 }, (_, i) => `m${i}`),
          );
        } finally {
          await c.close();
        }
      },
    );
    await withDaemon(gatewayArgs('--codec', 'lars'), async ({ port }) => {
      const c = await gatewayClient(port, 'lars');
      try {
        c.client.send(3, 'lars failure');
        const [notice] = await c.waitPushed(1);
        assert.deepEqual(notice, { msgid: GATEWAY_MSGID.error, body: 'lars failure' });
        assert.equal((await c.client.request(1, 'after')).toString(), 'after');
      } finally {
        await c.close();
      }
    });
  });

  test('--request-timeout: the client gets a timeout error on time; the late reply is dropped and counted', async () => {
    await withDaemon(gatewayArgs('--request-timeout', '0.3'), async ({ port, daemon }) => {
      const c = await gatewayClient(port);
      try {
        const started = Date.now();
        const err = await rejection(c.client.request(2, '1200'));
        assert.equal(err.code, 'ERR_MESSAGE_REMOTE');
        assert.match(err.message, /timed out after 300 ms/);
        assert.ok(Date.now() - started < 1100, 'the timeout error came before the reply would have');
        // A later request on the same connection gets its own reply, never the late one.
        const next = c.client.request(1, 'next');
        const late = await daemon.waitForLog((l) => String(l.msg).startsWith('late reply dropped'));
        assert.equal((await next).toString(), 'next');
        assert.equal(late.total, 1);
        assert.equal(c.client.stats.lateReplies, 0);
      } finally {
        await c.close();
      }
    });
  });

  for (const retry of [false, true]) {
    test(`kill -9 of a worker with requests in flight: ${retry ? 'retried once on another worker' : 'error frames'}; none lost, none twice`, async () => {
      const extra = retry ? ['--retry-on-crash'] : [];
      await withDaemon(gatewayArgs('--business-workers', '2', ...extra), async ({ port, daemon }) => {
        const c = await gatewayClient(port);
        try {
          const outcomes = Array.from({ length: 8 }, () =>
            c.client.request(2, '1500').then(
              (b) => ({ ok: true, text: b.toString() }),
              (e: Error) => ({ ok: false, text: e.message }),
            ),
          );
          // Both workers hold some of them now; kill one.
          const ready = daemon.logs.filter((l) => l.msg === 'worker ready' && l.supervisor === 'workers');
          await new Promise((r) => setTimeout(r, 300));
          const victim = Number(ready[0]!.workerPid);
          process.kill(victim, 'SIGKILL');
          const results = await Promise.all(outcomes);
          assert.equal(results.length, 8);
          const survivors = results.filter((r) => r.ok);
          const failed = results.filter((r) => !r.ok);
          if (retry) {
            assert.equal(failed.length, 0, JSON.stringify(failed));
            assert.ok(survivors.every((r) => r.text !== `pid:${victim}`));
          } else {
            assert.ok(failed.length > 0, 'some requests were on the killed worker');
            assert.ok(survivors.length > 0, 'some were on the other one');
            for (const f of failed) assert.match(f.text, /worker died before replying/);
          }
          await waitUntil(
            () => c.client.stats.lateReplies === 0 && c.client.conn?.pendingRequests === 0,
            'no reply twice',
          );
          // The supervisor replaced the worker; new requests are served.
          await daemon.waitForLog((l) => l.msg === 'worker exited' && Number(l.workerPid) === victim);
          assert.equal((await c.client.request(1, 'after')).toString(), 'after');
        } finally {
          await c.close();
        }
      });
    });
  }

  test('limits: --max-conns-per-ip refuses with a notice and a logged reason; --refuse-over-inflight refuses the extra request', async () => {
    await withDaemon(
      gatewayArgs('--max-conns-per-ip', '2', '--max-inflight-per-conn', '2', '--refuse-over-inflight'),
      async ({ port, daemon }) => {
        const a = await gatewayClient(port);
        const b = await gatewayClient(port);
        const third = await gatewayClient(port);
        try {
          await assertRefused(third, daemon, /too many connections from 127\.0\.0\.1 \(limit 2\)/);
          // Two in flight on one connection is the limit: the third is refused at once.
          const held = [a.client.request(2, '400'), a.client.request(2, '400')];
          const err = await rejection(a.client.request(1, 'one too many'));
          assert.match(err.message, /too many requests in flight on this connection \(limit 2\)/);
          await Promise.all(held);
          // A slot frees when a connection closes.
          await b.close();
          let again: Awaited<ReturnType<typeof gatewayClient>> | undefined;
          for (let i = 0; i < 50 && !again; i++) {
            const c = await gatewayClient(port);
            try {
              if ((await c.client.request(1, 'in')).toString() === 'in') again = c;
            } catch {
              await c.close();
              await new Promise((r) => setTimeout(r, 50));
            }
          }
          assert.ok(again, 'a new connection is accepted once one closed');
          await again.close();
        } finally {
          await Promise.all([a.close(), b.close(), third.close()]);
        }
      },
    );
  });

  test('--max-connections refuses the connection over the limit with a notice and a logged reason', async () => {
    await withDaemon(
      gatewayArgs('--business-workers', '1', '--max-connections', '2'),
      async ({ port, daemon }) => {
        const a = await gatewayClient(port);
        const b = await gatewayClient(port);
        const third = await gatewayClient(port);
        try {
          await assertRefused(third, daemon, /too many connections \(limit 2\)/);
          // The accepted ones are untouched.
          assert.equal((await a.client.request(1, 'a')).toString(), 'a');
          assert.equal((await b.client.request(1, 'b')).toString(), 'b');
        } finally {
          await Promise.all([a.close(), b.close(), third.close()]);
        }
      },
    );
  });

  test('relay between two clients by name, from a client and from a worker (ctx.send)', async () => {
    await withDaemon(gatewayArgs('-c', '2'), async ({ port }) => {
      const alice = await gatewayClient(port);
      const bob = await gatewayClient(port);
      try {
        const aliceSession = (await alice.client.request(GATEWAY_MSGID.register, 'alice')).toString();
        assert.match(aliceSession, /^g\d+:\d+$/);
        const r = await bob.client.request(
          GATEWAY_MSGID.relay,
          encodeRelay('alice', 42, Buffer.from('hi alice')),
        );
        assert.equal(r.toString(), 'delivered');
        const viaWorker = await bob.client.request(
          6,
          JSON.stringify({ to: 'alice', msgid: 43, body: 'from a worker' }),
        );
        assert.equal(viaWorker.toString(), 'delivered');
        const bySession = await bob.client.request(
          GATEWAY_MSGID.relay,
          encodeRelay(aliceSession, 44, Buffer.from('by id')),
        );
        assert.equal(bySession.toString(), 'delivered');
        assert.deepEqual(await alice.waitPushed(3), [
          { msgid: 42, body: 'hi alice' },
          { msgid: 43, body: 'from a worker' },
          { msgid: 44, body: 'by id' },
        ]);
        const unknown = await rejection(bob.client.request(GATEWAY_MSGID.relay, encodeRelay('g999:1', 1)));
        assert.match(unknown.message, /no session g999:1/);
        const badName = await rejection(bob.client.request(GATEWAY_MSGID.register, 'no spaces allowed'));
        assert.match(badName.message, /cannot register/);
      } finally {
        await Promise.all([alice.close(), bob.close()]);
      }
    });
  });

  test('store-and-forward: messages for an offline name are kept (bounded) and delivered in order on re-register', async () => {
    await withDaemon(gatewayArgs('--store-max', '3'), async ({ port }) => {
      const sender = await gatewayClient(port);
      try {
        const first = await gatewayClient(port);
        await first.client.request(GATEWAY_MSGID.register, 'carol');
        await first.close();
        await new Promise((r) => setTimeout(r, 100));
        for (let i = 1; i <= 3; i++) {
          const r = await sender.client.request(
            GATEWAY_MSGID.relay,
            encodeRelay('carol', 10 + i, Buffer.from(`stored ${i}`)),
          );
          assert.equal(r.toString(), 'stored');
        }
        const full = await rejection(
          sender.client.request(GATEWAY_MSGID.relay, encodeRelay('carol', 14, Buffer.from('x'))),
        );
        assert.match(full.message, /store for 'carol' is full \(3 messages\)/);
        const back = await gatewayClient(port);
        try {
          await back.client.request(GATEWAY_MSGID.register, 'carol');
          assert.deepEqual(await back.waitPushed(3), [
            { msgid: 11, body: 'stored 1' },
            { msgid: 12, body: 'stored 2' },
            { msgid: 13, body: 'stored 3' },
          ]);
          // Online now: delivered live, after the stored ones.
          const live = await sender.client.request(
            GATEWAY_MSGID.relay,
            encodeRelay('carol', 15, Buffer.from('live')),
          );
          assert.equal(live.toString(), 'delivered');
          assert.deepEqual((await back.waitPushed(4))[3], { msgid: 15, body: 'live' });
        } finally {
          await back.close();
        }
      } finally {
        await sender.close();
      }
    });
  });

  test('store bound: empty-body relays to distinct offline names are bounded by --store-bytes (names and bookkeeping count) and --store-names', async () => {
    const relayToDistinct = async (port: number, count: number) => {
      const sender = await gatewayClient(port);
      try {
        const outcomes = await Promise.all(
          Array.from({ length: count }, (_, i) =>
            sender.client.request(GATEWAY_MSGID.relay, encodeRelay(`offline-${i}`, 1)).then(
              (b) => b.toString(),
              (e: Error) => e.message,
            ),
          ),
        );
        const counts = new Map<string, number>();
        for (const o of outcomes) counts.set(o, (counts.get(o) ?? 0) + 1);
        return counts;
      } finally {
        await sender.close();
      }
    };
    await withDaemon(gatewayArgs('--store-bytes', '8192'), async ({ port }) => {
      const counts = await relayToDistinct(port, 500);
      const stored = counts.get('stored') ?? 0;
      // Each costs its name and bookkeeping (hundreds of bytes), not its 0-byte body.
      assert.ok(stored > 0 && stored <= 40, `stored ${stored} of 500`);
      assert.equal(counts.get('store is full (8192 bytes)'), 500 - stored, JSON.stringify([...counts]));
    });
    await withDaemon(gatewayArgs('--store-names', '20'), async ({ port }) => {
      const counts = await relayToDistinct(port, 200);
      assert.deepEqual([...counts].sort(), [
        ['store is full (messages kept for 20 names)', 180],
        ['stored', 20],
      ]);
    });
  });

  test('SIGHUP replaces the workers one by one; requests keep flowing, none fails', async () => {
    await withDaemon(gatewayArgs('--business-workers', '2'), async ({ port, daemon }) => {
      const c = await gatewayClient(port);
      try {
        const before = new Set(
          daemon.logs
            .filter((l) => l.msg === 'worker ready' && l.supervisor === 'workers')
            .map((l) => l.workerPid),
        );
        let stop = false;
        let served = 0;
        const failures: string[] = [];
        const loops = Array.from({ length: 4 }, async () => {
          for (let i = 0; !stop && i < 10_000; i++) {
            try {
              await c.client.request(2, '20');
              served++;
            } catch (err) {
              failures.push((err as Error).message);
            }
          }
        });
        daemon.signal('SIGHUP');
        await daemon.waitForLog((l) => l.msg === 'reload done');
        await new Promise((r) => setTimeout(r, 200));
        stop = true;
        await Promise.all(loops);
        assert.deepEqual(failures, []);
        assert.ok(served > 0);
        const pids = (await Promise.all([c.client.request(2, '100'), c.client.request(2, '100')])).map((b) =>
          Number(b.toString().slice(4)),
        );
        for (const pid of pids) assert.ok(!before.has(pid), `pid ${pid} is a new worker`);
      } finally {
        await c.close();
      }
    });
  });

  test('bad flags are refused before anything starts', async () => {
    const { runCli } = await import('./helpers/daemon.js');
    const r = await runCli(['gateway', '-l', '127.0.0.1:0']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /business \(-s\) is required/);
    const bad = await runCli(['gateway', '-l', '127.0.0.1:0', '-s', '/nonexistent/biz.ts']);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /business module \/nonexistent\/biz.ts: no such file/);
    const codec = await runCli([...gatewayArgs('--codec', 'nope')]);
    assert.equal(codec.code, 1);
    assert.match(codec.stderr, /unknown codec "nope"/);
  });
});
