// The gateway with --queue nats://: gateway and worker are separate commands with only a
// nats-server (the test's own, on a free port) between them.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, test } from 'node:test';
import { connect as natsConnect } from '@nats-io/transport-node';
import { encodeRelay, GATEWAY_MSGID } from '../src/gateway/protocol.js';
import { Subjects } from '../src/gateway/queues/nats/protocol.js';
import { DaemonProcess, startDaemon } from './helpers/daemon.js';
import { BUSINESS, gatewayClient, type NatsServer, startNats } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { socketPath, status } from './helpers/status.js';

checkNoLeftoverProcesses();

let nats: NatsServer;

/** A fresh subject prefix per test, so tests never see each other's workers or stored messages. */
function prefix(): string {
  return `t${randomBytes(4).toString('hex')}`;
}

async function startWorkers(p: string, ...extra: string[]): Promise<DaemonProcess> {
  const w = new DaemonProcess(['worker', '-s', BUSINESS, '--queue', nats.url, '--queue-prefix', p, ...extra]);
  try {
    await w.waitForMsg('workers ready');
  } catch (err) {
    await w.kill();
    throw err;
  }
  return w;
}

function startGateway(p: string, ...extra: string[]) {
  return startDaemon(['gateway', '-l', '127.0.0.1:0', '--queue', nats.url, '--queue-prefix', p, ...extra]);
}

async function stop(d: DaemonProcess): Promise<void> {
  d.signal('SIGTERM');
  const r = await d.waitForExit(15_000).catch(async (err) => {
    await d.kill();
    throw err;
  });
  assert.equal(r.code, 0, d.stderr);
}

describe('gateway, NATS queue', () => {
  // One nats-server per test, stopped (suite hook) before the file's leftover-process check runs.
  beforeEach(async () => {
    nats = await startNats();
  });
  afterEach(async () => {
    await nats?.stop();
  });

  test('request/response between a gateway command and a worker command, replies correlate out of order', async () => {
    const p = prefix();
    const workers = await startWorkers(p, '-c', '2');
    const gw = await startGateway(p);
    const c = await gatewayClient(gw.port);
    try {
      assert.equal((await c.client.request(1, 'over nats')).toString(), 'over nats');
      const order: string[] = [];
      const slow = c.client.request(2, '500').then(() => order.push('slow'));
      const fast = c.client.request(1, 'fast').then(() => order.push('fast'));
      await Promise.all([slow, fast]);
      assert.deepEqual(order, ['fast', 'slow']);
      const err = await c.client.request(3, 'failed over nats').then(
        () => assert.fail('expected an error'),
        (e: Error) => e,
      );
      assert.equal(err.message, 'failed over nats');
      // A worker's ctx.send to a session on the gateway.
      const self = (await c.client.request(GATEWAY_MSGID.session)).toString();
      const sent = await c.client.request(6, JSON.stringify({ to: self, msgid: 50, body: 'to myself' }));
      assert.equal(sent.toString(), 'delivered');
      assert.deepEqual(await c.waitPushed(1), [{ msgid: 50, body: 'to myself' }]);
    } finally {
      await c.close();
      await Promise.all([stop(gw.daemon), stop(workers)]);
    }
  });

  test('kill -9 of a worker: its acked requests are retried on another worker (--retry-on-crash)', async () => {
    const p = prefix();
    const sock = socketPath();
    const workers = await startWorkers(p, '-c', '2', '--status-socket', sock);
    const gw = await startGateway(p, '--retry-on-crash');
    const c = await gatewayClient(gw.port, 'seq', 30_000);
    try {
      const pids = workers.logs
        .filter((l) => l.msg === 'worker ready' && l.supervisor === 'workers')
        .map((l) => Number(l.workerPid));
      assert.equal(pids.length, 2);
      // The gateway sends each request to the worker with the fewest outstanding, among the workers
      // it has heard from.
      // A burst of 4 reaches both only once the gateway has heard from both (heartbeats, once a second).
      let both = false;
      for (let i = 0; i < 100 && !both; i++) {
        const burst = await Promise.all([0, 1, 2, 3].map(() => c.client.request(2, '50')));
        both = new Set(burst.map(String)).size === 2;
      }
      assert.ok(both, 'a burst spreads over both workers');
      // Long enough that the kill lands while they run: the status shows them a heartbeat (up to
      // a second) and a CLI process after they start.
      const outcomes = Array.from({ length: 12 }, () =>
        c.client.request(2, '4000').then(
          (b) => b.toString(),
          (e: Error) => `error: ${e.message}`,
        ),
      );
      // Kill the first worker once it runs some of them (its heartbeat says so in the status).
      const deadline = Date.now() + 15_000;
      for (;;) {
        const rows = (await status(sock)).sections?.find((x) => x.title === 'business workers')?.rows ?? [];
        if (rows.some((r) => r[1] === pids[0] && Number(r[4]) > 0)) break;
        assert.ok(Date.now() < deadline, 'the first worker took some of the requests');
      }
      process.kill(pids[0]!, 'SIGKILL');
      const results = await Promise.all(outcomes);
      // Every one answered (the first worker may have answered some before the kill reached it).
      assert.ok(
        results.every((r) => r.startsWith('pid:')),
        results.join(', '),
      );
      await gw.daemon.waitForLog((l) => l.msg === 'worker lost a request; retrying it once');
      assert.equal(c.client.stats.lateReplies, 0);
    } finally {
      await c.close();
      await Promise.all([stop(gw.daemon), stop(workers)]);
    }
  });

  test('a batch addressed to a worker that is no longer subscribed (503) goes to another worker: no error, no timeout', async () => {
    const p = prefix();
    const workers = await startWorkers(p);
    const sock = socketPath();
    const gw = await startGateway(p, '--status-socket', sock);
    const c = await gatewayClient(gw.port, 'seq', 5_000);
    // A worker the gateway hears from that takes nothing: its heartbeats arrive, it has no
    // subscription (one dead before the gateway noticed, or between its reconnect and its subscribe).
    const nc = await natsConnect({ servers: nats.url });
    const S = new Subjects(p);
    const beat = () => nc.publish(S.heartbeat, 'wghost');
    beat();
    const beating = setInterval(beat, 100);
    const resent = async () => {
      const data = (await status(sock)).sections?.find((x) => x.title === 'requests')?.data;
      return (data as { resent?: number } | undefined)?.resent ?? 0;
    };
    try {
      // Each heartbeat brings the ghost back; the next batch for it gets a 503 and goes to the worker.
      const outcomes: string[] = [];
      for (let round = 0; round < 200 && (outcomes.length < 40 || (await resent()) < 3); round++) {
        const burst = await Promise.all(
          [0, 1, 2, 3].map(() =>
            c.client.request(5, '').then(
              (b) => b.toString(),
              (e: Error) => `error: ${e.message}`,
            ),
          ),
        );
        outcomes.push(...burst);
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.ok(
        (await resent()) >= 3,
        `requests sent again: ${await resent()}; the gateway's last lines:\n${gw.daemon.stdoutLines.slice(-15).join('\n')}`,
      );
      const failed = outcomes.filter((o) => !o.startsWith('pid:'));
      assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} failed`);
      assert.equal(
        gw.daemon.logs.filter((l) => l.msg === 'worker lost a request; error sent').length,
        0,
        'no request reported lost',
      );
    } finally {
      clearInterval(beating);
      await nc.close();
      await c.close();
      await Promise.all([stop(gw.daemon), stop(workers)]);
    }
  });

  test('relay by name across two gateways, and a stored message survives a gateway restart', async () => {
    const p = prefix();
    const workers = await startWorkers(p);
    const gw1 = await startGateway(p);
    const gw2 = await startGateway(p);
    let gw3: Awaited<ReturnType<typeof startGateway>> | undefined;
    const alice = await gatewayClient(gw1.port);
    const bob = await gatewayClient(gw2.port);
    try {
      await alice.client.request(GATEWAY_MSGID.register, 'alice');
      const live = await bob.client.request(
        GATEWAY_MSGID.relay,
        encodeRelay('alice', 7, Buffer.from('across')),
      );
      assert.equal(live.toString(), 'delivered');
      assert.deepEqual(await alice.waitPushed(1), [{ msgid: 7, body: 'across' }]);
      await alice.close();
      // alice is offline: the messages go to JetStream.
      for (const text of ['one', 'two']) {
        let r = '';
        for (let i = 0; i < 50 && r !== 'stored'; i++) {
          r = (
            await bob.client.request(GATEWAY_MSGID.relay, encodeRelay('alice', 8, Buffer.from(text)))
          ).toString();
          if (r !== 'stored') await new Promise((res) => setTimeout(res, 50));
        }
        assert.equal(r, 'stored');
      }
      // The gateway that held alice goes away, a new one comes; the stored messages are still there.
      await stop(gw1.daemon);
      gw3 = await startGateway(p);
      const back = await gatewayClient(gw3.port);
      try {
        await back.client.request(GATEWAY_MSGID.register, 'alice');
        assert.deepEqual(await back.waitPushed(2), [
          { msgid: 8, body: 'one' },
          { msgid: 8, body: 'two' },
        ]);
      } finally {
        await back.close();
      }
    } finally {
      await Promise.all([alice.close(), bob.close()]);
      await Promise.all([gw2.daemon, gw3?.daemon].filter((d) => d !== undefined).map((d) => stop(d!)));
      await gw1.daemon.kill();
      await stop(workers);
    }
  });
});
