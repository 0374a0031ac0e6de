// --metrics: /metrics scraped with a real HTTP client and checked by promtool, counters that move
// with connections, crashes, reloads and proxy errors, the merge over workers, /healthz and /readyz
// (failing first on SIGTERM, --drain-delay still accepting), and the listener's own limits.
import assert from 'node:assert/strict';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, modelArgs, runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { gatewayArgs, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import {
  httpGet,
  metricsPort,
  parseSamples,
  promtoolCheck,
  scrape,
  waitForReadyz,
  waitForSample,
} from './helpers/metrics.js';
import { connect, readLine, roundTrip, untilClosed } from './helpers/net.js';
import { deadPort, taggedEcho } from './helpers/proxy.js';
import { status } from './helpers/status.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const HANDLER = join(FIXTURES, 'metrics-handler.mjs');
const METRICS = ['--metrics', '127.0.0.1:0'];
const ACCEPTED = 'tcpdaemon_connections_accepted_total';
const closed = (reason: string) => `tcpdaemon_connections_closed_total{reason="${reason}"}`;

/** One connection: `who` → [pid, workerId], then closed by us. */
async function who(port: number): Promise<[number, number]> {
  const s = await connect(port);
  try {
    const [pid, worker] = (await roundTrip(s, 'who\n')).trim().split(' ').map(Number);
    return [pid!, worker!];
  } finally {
    s.end();
    await untilClosed(s);
  }
}

test('IOMP -c 1: /metrics passes promtool; accepted, closed by reason, bytes and handler errors move', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    HANDLER,
    '--timeout',
    '0.3',
    ...METRICS,
  ]);
  try {
    const mport = await metricsPort(daemon);
    const first = await httpGet(mport, '/metrics');
    assert.equal(first.status, 200);
    assert.match(String(first.headers['content-type']), /^text\/plain; version=0\.0\.4/);
    await promtoolCheck(first.body);
    assert.equal(parseSamples(first.body).get(ACCEPTED), 0);

    for (let i = 0; i < 3; i++) await who(port);
    // An idle connection the daemon closes, and one whose handler fails.
    const idle = await connect(port);
    await untilClosed(idle);
    const failing = await connect(port);
    failing.write('fail\n');
    await untilClosed(failing);

    // Counted as the daemon's side closes, which may come just after ours.
    await waitForSample(mport, closed('normal'), (v) => v === 3);
    await waitForSample(mport, closed('idle_timeout'), (v) => v === 1);
    await waitForSample(mport, closed('handler_error'), (v) => v === 1);
    const m = await scrape(mport);
    assert.equal(m.get(ACCEPTED), 5);
    assert.equal(m.get('tcpdaemon_connections_active'), 0);
    assert.equal(m.get(closed('normal')), 3);
    assert.equal(m.get(closed('idle_timeout')), 1);
    assert.equal(m.get(closed('handler_error')), 1);
    assert.equal(m.get('tcpdaemon_handler_errors_total'), 1);
    assert.equal(m.get('tcpdaemon_connection_received_bytes_total'), 3 * 4 + 5);
    assert.ok(m.get('tcpdaemon_connection_sent_bytes_total')! > 3 * 4);
    assert.ok(m.get('tcpdaemon_worker_resident_memory_bytes{worker="0"}')! > 1e6);
    assert.ok(m.has('process_resident_memory_bytes'), 'prom-client default metrics of the daemon');
    await promtoolCheck((await httpGet(mport, '/metrics')).body);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

test('/healthz, /readyz, 404 elsewhere, 405 for other methods, 431 for oversized headers', async () => {
  const { daemon } = await startDaemon(['-l', '127.0.0.1:0', '-s', HANDLER, ...METRICS]);
  try {
    const mport = await metricsPort(daemon);
    assert.equal((await httpGet(mport, '/healthz')).status, 200);
    const ready = await httpGet(mport, '/readyz');
    assert.equal(ready.status, 200, ready.body);
    assert.equal((await httpGet(mport, '/metricsx')).status, 404);
    assert.equal((await httpGet(mport, '/')).status, 404);
    assert.equal((await httpGet(mport, '/metrics', 'POST')).status, 405);
    // A header block past the limit is refused, and the listener still answers afterwards.
    const raw = netConnect(mport, '127.0.0.1');
    raw.write(`GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
    const answer = await untilClosed(raw);
    assert.match(answer.data, /^HTTP\/1\.1 431/);
    assert.equal((await httpGet(mport, '/healthz')).status, 200);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

test('IOMP -c 2: the merged counters equal the sum of what each worker served (replies and status agree)', async () => {
  const sock = join(tempDir('tcpd-metrics-'), 'status.sock');
  const { daemon, port } = await startDaemon([
    ...modelArgs('IOMP', 2, HANDLER),
    ...METRICS,
    '--status-socket',
    sock,
  ]);
  try {
    const mport = await metricsPort(daemon);
    const byPid = new Map<number, number>();
    const N = 40;
    // Held open together, so the kernel's queue has to spread them over both workers.
    const held = await Promise.all(Array.from({ length: N }, () => connect(port)));
    for (const s of held) {
      const [pid] = (await roundTrip(s, 'who\n')).trim().split(' ').map(Number);
      byPid.set(pid!, (byPid.get(pid!) ?? 0) + 1);
    }
    for (const s of held) s.end();
    await Promise.all(held.map((s) => untilClosed(s)));
    await waitForSample(mport, ACCEPTED, (v) => v === N);
    await waitForSample(mport, closed('normal'), (v) => v === N);
    const report = await status(sock);
    const served = new Map(report.workers!.workers.map((w): [number, number] => [w.pid!, w.served]));
    assert.equal(
      [...served.values()].reduce((a, b) => a + b, 0),
      N,
      'the workers served N in all',
    );
    for (const [pid, n] of byPid)
      assert.equal(served.get(pid), n, `worker ${pid} served what its replies say`);
    const m = await scrape(mport);
    assert.equal(m.get('tcpdaemon_connection_received_bytes_total'), N * 4);
    assert.equal(m.get('tcpdaemon_workers_ready'), 2);
    assert.ok(m.get('tcpdaemon_worker_resident_memory_bytes{worker="1"}')! > 1e6);
    assert.ok(m.get('tcpdaemon_worker_resident_memory_bytes{worker="2"}')! > 1e6);
    assert.ok(m.has('tcpdaemon_worker_event_loop_delay_p99_seconds{worker="1"}'));
    await promtoolCheck((await httpGet(mport, '/metrics')).body);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

test('IOMP -c 2: kill -9 of a worker counts a crash and a start; what it served stays counted', async () => {
  const { daemon, port } = await startDaemon([...modelArgs('IOMP', 2, HANDLER), ...METRICS]);
  try {
    const mport = await metricsPort(daemon);
    const pids = new Map<number, number>();
    for (let i = 0; i < 10; i++) {
      const [pid] = await who(port);
      pids.set(pid, (pids.get(pid) ?? 0) + 1);
    }
    await waitForSample(mport, ACCEPTED, (v) => v === 10);
    assert.equal((await scrape(mport)).get('tcpdaemon_worker_starts_total'), 2);
    const [victim] = [...pids.keys()];
    process.kill(victim!, 'SIGKILL');
    await daemon.waitForLog((l) => l.msg === 'worker exited' && l.workerPid === victim);
    await waitForSample(mport, 'tcpdaemon_worker_exits_total{cause="crashed"}', (v) => v === 1);
    await waitForSample(mport, 'tcpdaemon_worker_starts_total', (v) => v === 3);
    // The gone worker's connections are still in the totals (no counter goes back).
    assert.equal((await scrape(mport)).get(ACCEPTED), 10);
    await who(port);
    await waitForSample(mport, ACCEPTED, (v) => v === 11);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

for (const model of ['IOMP', 'LF', 'TLF']) {
  test(`${model} -c 2: SIGHUP counts a reload and the replaced workers' exits; counters carry over`, async () => {
    const { daemon, port } = await startDaemon([...modelArgs(model, 2, HANDLER), ...METRICS]);
    try {
      const mport = await metricsPort(daemon);
      for (let i = 0; i < 4; i++) await who(port);
      await waitForSample(mport, ACCEPTED, (v) => v === 4);
      daemon.signal('SIGHUP');
      await daemon.waitForMsg('reload done');
      await waitForSample(mport, 'tcpdaemon_reloads_total', (v) => v === 1);
      await waitForSample(mport, 'tcpdaemon_worker_exits_total{cause="reload"}', (v) => v === 2);
      assert.equal((await scrape(mport)).get(ACCEPTED), 4);
      for (let i = 0; i < 3; i++) await who(port);
      await waitForSample(mport, ACCEPTED, (v) => v === 7);
      await promtoolCheck((await httpGet(mport, '/metrics')).body);
      await stopCleanly(daemon);
    } finally {
      await daemon.kill();
    }
  });
}

test('IF -c 2: every connection process is counted (its last heartbeat carries it), and the waiting gauge shows', async () => {
  const { daemon, port } = await startDaemon([...modelArgs('IF', 2, HANDLER), ...METRICS]);
  try {
    const mport = await metricsPort(daemon);
    for (let i = 0; i < 5; i++) await who(port);
    await waitForSample(mport, ACCEPTED, (v) => v === 5);
    await waitForSample(mport, closed('normal'), (v) => v === 5);
    await waitForSample(mport, 'tcpdaemon_worker_exits_total{cause="served"}', (v) => v === 5);
    const m = await scrape(mport);
    assert.equal(m.get('tcpdaemon_waiting_connections'), 0);
    await promtoolCheck((await httpGet(mport, '/metrics')).body);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

test('LF -c 1 --max-waiting 0: a refused connection counts as accepted and closed for queue_full', async () => {
  const { daemon, port } = await startDaemon([
    ...modelArgs('LF', 1, HANDLER),
    '--max-waiting',
    '0',
    ...METRICS,
  ]);
  try {
    const mport = await metricsPort(daemon);
    const busy = await connect(port);
    assert.equal(await roundTrip(busy, 'x\n'), 'x\n');
    const refused = await connect(port);
    await untilClosed(refused);
    busy.end();
    await untilClosed(busy);
    await waitForSample(mport, ACCEPTED, (v) => v === 2);
    const m = await scrape(mport);
    assert.equal(m.get(closed('queue_full')), 1);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
  }
});

test('SIGTERM: /readyz fails first; --drain-delay keeps accepting meanwhile; then the drain and exit 0', async () => {
  const { daemon, port } = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    HANDLER,
    '--drain-delay',
    '1.5',
    '--shutdown-timeout',
    '5',
    ...METRICS,
  ]);
  try {
    const mport = await metricsPort(daemon);
    await waitForReadyz(mport, 200);
    daemon.signal('SIGTERM');
    const notReady = await waitForReadyz(mport, 503);
    assert.match(notReady.body, /stopping/);
    // Not ready, yet still serving new connections: the balancer has time to take us out.
    await daemon.waitForMsg('stop requested: not ready; still accepting for --drain-delay');
    const late = await connect(port);
    assert.equal(await roundTrip(late, 'still here\n'), 'still here\n');
    assert.equal((await httpGet(mport, '/healthz')).status, 200, 'alive while draining');
    late.end();
    await daemon.waitForMsg('stopping: no new connections');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
  } finally {
    await daemon.kill();
  }
});

test('--drain-delay longer than --shutdown-timeout is refused before anything listens', async () => {
  const run = await runCli([
    '-l',
    '127.0.0.1:0',
    '-s',
    HANDLER,
    '--drain-delay',
    '20',
    '--shutdown-timeout',
    '5',
  ]);
  assert.equal(run.code, 1);
  assert.match(run.stderr, /drainDelay \(--drain-delay\) must be <= shutdownTimeout/);
  const bad = await runCli(['-l', '127.0.0.1:0', '-s', HANDLER, '--metrics', '/tmp/x.sock']);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /metrics \(--metrics\) must be ip:port/);
});

test('proxy: connect errors and the connect-time histogram per backend; /readyz says when no backend is up', async () => {
  const live = await taggedEcho('A');
  const dead = await deadPort();
  const { daemon, port } = await startDaemon([
    'proxy',
    '-l',
    '127.0.0.1:0',
    '--backend',
    `127.0.0.1:${live.port}`,
    '--backend',
    `127.0.0.1:${dead}`,
    '--strategy',
    'roundrobin',
    '--health-interval',
    '60',
    ...METRICS,
  ]);
  try {
    const mport = await metricsPort(daemon);
    for (let i = 0; i < 4; i++) {
      const s = await connect(port);
      await readLine(s);
      s.destroy();
    }
    const errors = `tcpdaemon_proxy_backend_connect_errors_total{backend="127.0.0.1:${dead}"}`;
    await waitForSample(mport, errors, (v) => v >= 1);
    const m = await scrape(mport);
    assert.ok(
      m.get(`tcpdaemon_proxy_backend_connect_duration_seconds_count{backend="127.0.0.1:${live.port}"}`)! >= 1,
    );
    assert.equal(m.get(`tcpdaemon_proxy_backend_state{backend="127.0.0.1:${live.port}",state="up"}`), 1);
    await waitForSample(
      mport,
      `tcpdaemon_proxy_backend_state{backend="127.0.0.1:${dead}",state="up"}`,
      (v) => v === 0,
    );
    await promtoolCheck((await httpGet(mport, '/metrics')).body);
    assert.equal((await waitForReadyz(mport, 200)).status, 200);
    await live.close();
    // With the live one gone too, connects fail on both and nothing is left to be ready with.
    for (let i = 0; i < 6; i++) {
      const s = await connect(port);
      await untilClosed(s);
    }
    assert.match((await waitForReadyz(mport, 503)).body, /no backend up/);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
    await live.close().catch(() => undefined);
  }
});

test('gateway: requests by outcome (ok, error, timeout, late reply dropped), round trips, frames; promtool passes', async () => {
  const { daemon, port } = await startDaemon([...gatewayArgs('--request-timeout', '0.3'), ...METRICS]);
  try {
    const mport = await metricsPort(daemon);
    await waitForReadyz(mport, 200);
    const c = await gatewayClient(port);
    try {
      assert.equal((await c.client.request(1, 'hello')).toString(), 'hello');
      await assert.rejects(c.client.request(3, 'broken on purpose'));
      await assert.rejects(c.client.request(2, '900'), /timed out after 300 ms/);
      await daemon.waitForLog((l) => String(l.msg).startsWith('late reply dropped'));
    } finally {
      await c.close();
    }
    const outcome = (o: string) => `tcpdaemon_gateway_requests_total{outcome="${o}"}`;
    await waitForSample(mport, outcome('late_reply_dropped'), (v) => v === 1);
    const m = await scrape(mport);
    assert.equal(m.get(outcome('ok')), 1);
    assert.equal(m.get(outcome('error')), 1);
    assert.equal(m.get(outcome('timeout')), 1);
    assert.equal(m.get('tcpdaemon_gateway_queue_round_trip_seconds_count'), 1);
    assert.ok(m.get('tcpdaemon_message_frames_received_total')! >= 3);
    assert.ok(m.get('tcpdaemon_message_frames_sent_total')! >= 3);
    assert.equal(m.get(ACCEPTED), 1);
    assert.ok(m.has('tcpdaemon_worker_resident_memory_bytes{worker="gateway-1"}'));
    assert.ok(m.has('tcpdaemon_worker_resident_memory_bytes{worker="worker-1"}'));
    assert.equal(m.get('tcpdaemon_gateway_stored_messages'), 0);
    await promtoolCheck((await httpGet(mport, '/metrics')).body);
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
  } finally {
    await daemon.kill();
  }
});
