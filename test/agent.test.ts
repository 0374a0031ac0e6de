// `tcpdaemon agent`: local processes' requests over a unix socket, multiplexed over a few upstream
// connections under the agent's own sequence numbers, each reply routed back to the connection
// that asked. Real processes: upstream message servers (test/fixtures/agent-upstream.mjs), the
// agent, MessageClients as the local processes; nats-server for --upstream SERVICE.
import assert from 'node:assert/strict';
import { existsSync, writeFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { AgentSnapshot } from '../src/agent/agent.js';
import { startAgent as startAgentInProcess } from '../src/agent/run.js';
import { MessageClient } from '../src/message/client.js';
import { FLAG_ERROR } from '../src/message/codecs/codec.js';
import { seqCodec } from '../src/message/codecs/seq.js';
import { MessageError } from '../src/message/errors.js';
import {
  type DaemonProcess,
  FIXTURES,
  type Listening,
  runCli,
  startDaemon,
  stopCleanly,
} from './helpers/daemon.js';
import { startNats } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { httpGet, metricsPort, promtoolCheck, scrape, waitForSample } from './helpers/metrics.js';
import { deadPort } from './helpers/proxy.js';
import { tempDir } from './helpers/temp-dir.js';

after(checkNoLeftoverProcesses);

const UPSTREAM = join(FIXTURES, 'agent-upstream.mjs');
const tmp = tempDir('tcpd-agent-');
let sockets = 0;

/** An upstream message server (seq codec), one process. */
function startUpstream(...extra: string[]): Promise<Listening> {
  return startDaemon(['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', UPSTREAM, ...extra]);
}

interface RunningAgent {
  daemon: DaemonProcess;
  /** The local socket. */
  path: string;
  status: string;
}

/** Starts the agent on a fresh socket; resolves once `connected` upstream connections are up. */
async function startAgent(args: string[], connected = 2): Promise<RunningAgent> {
  const n = ++sockets;
  const path = join(tmp, `agent-${n}.sock`);
  const status = join(tmp, `agent-${n}.status`);
  const { daemon } = await startDaemon(['agent', '-l', path, '--status-socket', status, ...args]);
  await daemon.waitForMsg('agent ready');
  await waitFor(() => daemon.logs.filter((l) => l.msg === 'upstream connected').length >= connected, daemon);
  return { daemon, path, status };
}

async function waitFor(pred: () => boolean, daemon: DaemonProcess, what = 'the log line'): Promise<void> {
  await daemon
    .waitForLog(() => pred(), 20_000)
    .catch(async () => {
      if (!pred()) throw new Error(`timed out waiting for ${what}:\n${daemon.stdoutLines.join('\n')}`);
    });
}

async function local(agent: RunningAgent): Promise<MessageClient> {
  const c = new MessageClient({ path: agent.path, codec: 'seq', reconnect: false, requestTimeout: 30_000 });
  await c.connect();
  return c;
}

/** The status report's upstreams block: the serving processes' snapshots summed. */
type UpstreamsData = AgentSnapshot['agent'] & { hosts: AgentSnapshot['hosts'] };

async function upstreams(agent: RunningAgent): Promise<UpstreamsData> {
  const d = await maybeUpstreams(agent);
  assert.ok(d, 'an upstreams section in the status report');
  return d;
}

/** The status report's upstreams block; undefined before a worker of -c N has reported. */
async function maybeUpstreams(agent: RunningAgent): Promise<UpstreamsData | undefined> {
  const res = await runCli(['status', agent.status, '--json']);
  assert.equal(res.code, 0, res.stderr);
  const report = JSON.parse(res.stdout) as { sections?: { title: string; data: UpstreamsData }[] };
  return report.sections?.find((s) => s.title === 'upstreams')?.data;
}

/** Polls the status socket until `pred` holds (status is a request/response: no log line to wait on). */
async function statusUntil(
  agent: RunningAgent,
  pred: (d: UpstreamsData) => boolean,
  what: string,
): Promise<UpstreamsData> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const d = await maybeUpstreams(agent);
    if (d && pred(d)) return d;
    if (Date.now() > deadline) assert.fail(`status never showed ${what}: ${JSON.stringify(d)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const late = (ms: number, tag: string) => JSON.stringify({ ms, tag });

/** A request's outcome as text: the reply, or `error: <message>`. */
async function outcome(p: Promise<Buffer>): Promise<string> {
  try {
    return (await p).toString();
  } catch (err) {
    assert.ok(err instanceof MessageError, `a MessageError, got ${String(err)}`);
    assert.equal(err.code, 'ERR_MESSAGE_REMOTE', `an error frame from the agent: ${err.message}`);
    return `error: ${err.message}`;
  }
}

describe('tcpdaemon agent', () => {
  test('several local clients get their own replies when the upstream answers out of order', async () => {
    const up = await startUpstream();
    const agent = await startAgent(['--upstream', `127.0.0.1:${up.port}`, '--connections', '2']);
    const clients = await Promise.all([local(agent), local(agent), local(agent)]);
    try {
      const order: string[] = [];
      const delays = [400, 50, 250, 0, 150];
      const all = clients.flatMap((c, ci) =>
        delays.map((ms, ri) => {
          const tag = `c${ci}-r${ri}`;
          return c.request(2, late(ms + ci * 10, tag)).then((b) => {
            order.push(tag);
            return [tag, b.toString()] as const;
          });
        }),
      );
      const replies = await Promise.all(all);
      for (const [tag, body] of replies) assert.equal(body, `${tag}@${up.daemon.pid}`, 'its own reply');
      // Sent in order r0..r4, answered by delay: r3 (0 ms) before r0 (400 ms) on every client.
      for (let ci = 0; ci < 3; ci++)
        assert.ok(
          order.indexOf(`c${ci}-r3`) < order.indexOf(`c${ci}-r0`),
          `out of order: ${order.join(' ')}`,
        );
      assert.notDeepEqual(
        order,
        replies.map(([t]) => t),
        'the answers came out of order',
      );
      // Plain echo, and an error reply of the server passed through.
      assert.equal((await clients[0]!.request(1, 'hi')).toString(), 'hi');
      assert.equal(
        await outcome(clients[1]!.request(3, 'x')),
        'error: msgid 3 always fails',
        "the server's error reply",
      );
      for (const c of clients) {
        assert.equal(c.stats.lateReplies, 0, 'no reply came twice or to the wrong client');
        assert.equal(c.stats.unroutable, 0);
      }
      const d = await upstreams(agent);
      assert.equal(d.hosts.length, 1);
      assert.equal(d.hosts[0]!.requests, 17);
      assert.equal(d.hosts[0]!.replies, 17);
      assert.equal(d.hosts[0]!.links, 2);
      assert.equal(d.inFlight, 0);
      assert.equal(d.localConnections, 3);
      const text = await runCli(['status', agent.status]);
      assert.match(text.stdout, /upstreams: 1 host/);
      assert.match(text.stdout, /upstream\s+state\s+links\s+in flight/);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await stopCleanly(agent.daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('a request past its timeout gets a timeout error frame; its late reply is dropped and counted', async () => {
    const up = await startUpstream();
    const agent = await startAgent(
      ['--upstream', `127.0.0.1:${up.port}`, '--connections', '1', '--request-timeout', '0.3'],
      1,
    );
    const c = await local(agent);
    try {
      const slow = outcome(c.request(2, late(1500, 'slow')));
      const fast = outcome(c.request(2, late(0, 'fast')));
      assert.equal(await fast, `fast@${up.daemon.pid}`);
      const answer = await slow;
      assert.match(answer, /^error: timeout: no reply from upstream 127\.0\.0\.1:\d+ within 300 ms$/);
      const line = await agent.daemon.waitForMsg(
        'late upstream replies dropped (their requests had timed out)',
      );
      assert.equal(line.level, 'warn');
      const d = await statusUntil(agent, (x) => x.lateDrops === 1, 'one late drop');
      assert.equal(d.hosts[0]!.timeouts, 1);
      assert.equal(d.hosts[0]!.lateDrops, 1);
      assert.equal(d.inFlight, 0);
      assert.equal(c.stats.lateReplies, 0, 'the late reply never reached the client');
      // The connection serves on.
      assert.equal((await c.request(1, 'after')).toString(), 'after');
    } finally {
      await c.close();
      await stopCleanly(agent.daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('--metrics: requests, replies, timeouts and late drops per upstream host, connect errors of a dead one, local connections; promtool accepts the scrape', async () => {
    const up = await startUpstream();
    const dead = await deadPort();
    const agent = await startAgent(
      [
        ...['--upstream', `127.0.0.1:${up.port},127.0.0.1:${dead}`, '--connections', '2'],
        ...['--request-timeout', '0.3', '--reconnect-delay', '0.05', '--metrics', '127.0.0.1:0'],
      ],
      1,
    );
    const c = await local(agent);
    try {
      const mport = await metricsPort(agent.daemon);
      const live = `upstream="127.0.0.1:${up.port}"`;
      for (let i = 0; i < 3; i++) assert.equal((await c.request(1, `m${i}`)).toString(), `m${i}`);
      assert.match(await outcome(c.request(2, late(1000, 'slow'))), /^error: timeout:/);
      await waitForSample(mport, 'tcpdaemon_agent_late_replies_dropped_total', (v) => v === 1);
      await waitForSample(
        mport,
        `tcpdaemon_agent_upstream_connect_errors_total{upstream="127.0.0.1:${dead}"}`,
        (v) => v >= 1,
      );
      const m = await scrape(mport);
      assert.equal(m.get(`tcpdaemon_agent_upstream_requests_total{${live}}`), 4);
      assert.equal(m.get(`tcpdaemon_agent_upstream_replies_total{${live}}`), 3);
      assert.equal(m.get(`tcpdaemon_agent_upstream_timeouts_total{${live}}`), 1);
      assert.equal(m.get(`tcpdaemon_agent_upstream_errors_total{${live}}`), 0);
      assert.equal(m.get(`tcpdaemon_agent_upstream_state{${live},state="up"}`), 1);
      assert.equal(m.get('tcpdaemon_agent_local_connections'), 1);
      assert.equal(m.get('tcpdaemon_agent_requests_in_flight'), 0);
      assert.equal(m.get('tcpdaemon_agent_requests_refused_total{reason="busy"}'), 0);
      await promtoolCheck((await httpGet(mport, '/metrics')).body);
    } finally {
      await c.close();
      await stopCleanly(agent.daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('late replies in a flood are logged once per interval, counted in all', async () => {
    const up = await startUpstream();
    const agent = await startAgent(
      ['--upstream', `127.0.0.1:${up.port}`, '--connections', '1', '--request-timeout', '0.2'],
      1,
    );
    const c = await local(agent);
    try {
      const answers = await Promise.all(
        Array.from({ length: 50 }, (_, i) => outcome(c.request(2, late(2000, `l${i}`)))),
      );
      assert.ok(
        answers.every((a) => a.startsWith('error: timeout:')),
        answers.join('\n'),
      );
      const d = await statusUntil(agent, (x) => x.lateDrops === 50, '50 late drops');
      assert.equal(d.hosts[0]!.timeouts, 50);
      const lines = agent.daemon.logs.filter((l) => String(l.msg).startsWith('late upstream replies'));
      assert.ok(lines.length <= 3, `a few summary lines, not 50: ${lines.length}`);
    } finally {
      await c.close();
      await stopCleanly(agent.daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('upstream kill -9 with requests in flight: error frames, none lost, none twice; traffic moves to the second host', async () => {
    const a = await startUpstream();
    const b = await startUpstream();
    const agent = await startAgent([
      '--upstream',
      `127.0.0.1:${a.port},127.0.0.1:${b.port}`,
      '--connections',
      '2',
      '--reconnect-delay',
      '0.05',
    ]);
    const clients = await Promise.all([local(agent), local(agent)]);
    try {
      const before = await upstreams(agent);
      assert.deepEqual(
        before.hosts.map((h) => h.links),
        [1, 1],
        'leastconn puts one upstream connection on each host',
      );
      const n = 20;
      const pending = clients.flatMap((c, ci) =>
        Array.from({ length: n / 2 }, (_, i) => outcome(c.request(2, late(3000, `k${ci}-${i}`)))),
      );
      const inFlight = await statusUntil(
        agent,
        (d) => d.hosts.every((h) => h.inFlight > 0) && d.inFlight === n,
        'every request in flight on both hosts',
      );
      const onA = inFlight.hosts.find((h) => h.id === `127.0.0.1:${a.port}`)!.inFlight;
      a.daemon.signal('SIGKILL');
      await a.daemon.exited;
      const answers = await Promise.all(pending);
      assert.equal(answers.length, n, 'every request answered');
      const lost = answers.filter((x) => x.startsWith('error: upstream lost: 127.0.0.1:'));
      const served = answers.filter((x) => x.endsWith(`@${b.daemon.pid}`));
      assert.equal(lost.length, onA, `the ones on the killed host got error frames: ${answers.join('\n')}`);
      assert.equal(served.length, n - onA, 'the ones on the other host were served');
      for (const c of clients) assert.equal(c.stats.lateReplies, 0, 'nothing answered twice');
      // Both upstream connections are on the second host again; new traffic is served there.
      await statusUntil(
        agent,
        (d) => d.hosts.find((h) => h.id === `127.0.0.1:${b.port}`)?.links === 2,
        'both links on the second host',
      );
      const after = await Promise.all(
        Array.from({ length: 10 }, (_, i) => clients[i % 2]!.request(5, '').then(String)),
      );
      assert.deepEqual(after, Array(10).fill(String(b.daemon.pid)));
      const d = await upstreams(agent);
      const hostA = d.hosts.find((h) => h.id === `127.0.0.1:${a.port}`)!;
      assert.equal(hostA.errors, onA, 'status counts the lost requests against the killed host');
      assert.equal(hostA.links, 0);
      assert.match(
        JSON.stringify(agent.daemon.logs.find((l) => l.msg === 'upstream connection lost')),
        new RegExp(`127\\.0\\.0\\.1:${a.port}`),
      );
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await stopCleanly(agent.daemon);
      await stopCleanly(b.daemon);
      await a.daemon.kill();
    }
  });

  test("past --max-in-flight-per-conn and --max-in-flight a request is answered at once with 'busy'", async () => {
    const up = await startUpstream();
    const agent = await startAgent([
      '--upstream',
      `127.0.0.1:${up.port}`,
      '--max-in-flight-per-conn',
      '3',
      '--max-in-flight',
      '5',
    ]);
    const [c1, c2] = await Promise.all([local(agent), local(agent)]);
    try {
      const first = Array.from({ length: 4 }, (_, i) => outcome(c1.request(2, late(500, `a${i}`))));
      const fourth = await first[3]!;
      assert.match(
        fourth,
        /^error: busy: 3 requests of this connection in flight \(--max-in-flight-per-conn 3\)$/,
      );
      const second = Array.from({ length: 3 }, (_, i) => outcome(c2.request(2, late(500, `b${i}`))));
      assert.match(
        await second[2]!,
        /^error: busy: 5 requests in flight in the agent \(--max-in-flight 5\)$/,
      );
      const served = await Promise.all([...first.slice(0, 3), ...second.slice(0, 2)]);
      assert.ok(
        served.every((s) => s.includes('@')),
        served.join('\n'),
      );
      const d = await upstreams(agent);
      assert.equal(d.busy, 2);
      assert.equal(d.inFlight, 0);
      // Below the bounds again: served.
      assert.equal((await c1.request(1, 'again')).toString(), 'again');
    } finally {
      await Promise.all([c1.close(), c2.close()]);
      await stopCleanly(agent.daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('a local process that does not read its answers is paused, not buffered without end; the others are served', async () => {
    const up = await startUpstream();
    const agent = await startAgent(['--upstream', `127.0.0.1:${up.port}`]);
    const codec = seqCodec();
    const raw = await new Promise<Socket>((resolve, reject) => {
      const s = netConnect(agent.path, () => resolve(s));
      s.once('error', reject);
    });
    const other = await local(agent);
    try {
      // 4000 requests of 4 KiB, echoed: 16 MiB of answers that the raw client does not read yet.
      const n = 4000;
      const body = Buffer.alloc(4096, 0x61);
      raw.pause();
      for (let seq = 1; seq <= n; seq++) raw.write(codec.encode(1, body, seq, 0));
      // The agent stops reading that connection once its answers back up; others keep being served.
      await statusUntil(agent, (d) => d.pausedLocals === 1, 'the connection paused');
      const held = (await upstreams(agent)).hosts[0]!.replies;
      assert.ok(held < n, `not every request was read while paused (${held} answered)`);
      for (let i = 0; i < 5; i++) assert.equal((await other.request(1, `o${i}`)).toString(), `o${i}`);
      // Reading now: every request answered once, by its reply or a 'busy' error frame.
      const seen = new Map<number, number>();
      let busy = 0;
      await new Promise<void>((resolve, reject) => {
        const decoder = codec.createDecoder({
          frame: (_msgid, b, seq, flags) => {
            seen.set(seq, (seen.get(seq) ?? 0) + 1);
            if ((flags & FLAG_ERROR) !== 0) {
              assert.match(b.toString(), /^busy: /);
              busy++;
            } else assert.equal(b.length, body.length);
            if (seen.size === n) resolve();
          },
          error: (reason) => reject(new Error(reason)),
        });
        raw.on('data', (chunk: Buffer) => decoder.push(chunk));
        raw.resume();
      });
      assert.equal(seen.size, n);
      assert.ok(
        [...seen.values()].every((count) => count === 1),
        'no answer twice',
      );
      const d = await upstreams(agent);
      assert.equal(d.busy, busy);
      assert.equal(d.hosts[0]!.replies, n - busy + 5);
    } finally {
      raw.destroy();
      await other.close();
      await stopCleanly(agent.daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('SIGTERM: requests in flight are answered first, then the agent exits 0', async () => {
    const up = await startUpstream();
    const agent = await startAgent(['--upstream', `127.0.0.1:${up.port}`]);
    const c = await local(agent);
    try {
      // Long enough for a status poll to see it in flight on a loaded machine.
      const answer = outcome(c.request(2, late(3000, 'drain')));
      await statusUntil(agent, (d) => d.inFlight === 1, 'the request in flight');
      agent.daemon.signal('SIGTERM');
      assert.equal(await answer, `drain@${up.daemon.pid}`);
      assert.deepEqual(await agent.daemon.waitForExit(), { code: 0, signal: null });
    } finally {
      await c.close();
      await agent.daemon.kill();
      await stopCleanly(up.daemon);
    }
  });

  test('no upstream connection up: a request waits for one up to its timeout, then gets a timeout error frame', async () => {
    const agent = await startAgent(
      [
        '--upstream',
        '127.0.0.1:1',
        '--connections',
        '1',
        '--request-timeout',
        '0.3',
        '--reconnect-delay',
        '0.05',
        '--reconnect-delay-max',
        '0.2',
      ],
      0,
    );
    const c = await local(agent);
    try {
      await agent.daemon.waitForMsg('upstream connect failed');
      assert.match(
        await outcome(c.request(1, 'x')),
        /^error: timeout: no upstream connection came up within 300 ms \(no upstream connection is up: connecting\)$/,
      );
      const d = await upstreams(agent);
      assert.equal(d.unavailable, 1);
      assert.equal(d.inFlight, 0);
      assert.ok(d.hosts[0]!.connectErrors >= 1);
    } finally {
      await c.close();
      await stopCleanly(agent.daemon);
    }
  });

  test('requests sent while the upstream is not up yet wait and are served once it comes', async () => {
    const { createServer } = await import('node:net');
    // A port that refuses now and serves later: reserve it, release it, start the upstream on it.
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const agent = await startAgent(
      [
        '--upstream',
        `127.0.0.1:${port}`,
        '--connections',
        '1',
        '--reconnect-delay',
        '0.05',
        '--reconnect-delay-max',
        '0.1',
      ],
      0,
    );
    const c = await local(agent);
    let up: Listening | undefined;
    try {
      await agent.daemon.waitForMsg('upstream connect failed');
      const waiting = Array.from({ length: 5 }, (_, i) => outcome(c.request(2, late(0, `p${i}`))));
      await statusUntil(agent, (d) => d.parked === 5, 'five requests parked');
      up = await startDaemon(['-m', 'IOMP', '-l', `127.0.0.1:${port}`, '-s', UPSTREAM]);
      const answers = await Promise.all(waiting);
      assert.deepEqual(
        answers,
        Array.from({ length: 5 }, (_, i) => `p${i}@${up!.daemon.pid}`),
      );
    } finally {
      await c.close();
      await stopCleanly(agent.daemon);
      if (up) await stopCleanly(up.daemon);
    }
  });

  test('--upstream SERVICE, --connections 2: a server that joins the route table gets one of the connections', async () => {
    const nats = await startNats();
    const announce = ['--announce', 'agentjoin', '--discovery', nats.url, '--announce-ttl', '2'];
    let agent: RunningAgent | undefined;
    let c: MessageClient | undefined;
    const ups: Listening[] = [];
    try {
      ups.push(await startUpstream(...announce));
      await ups[0]!.daemon.waitForMsg('announced');
      agent = await startAgent(['--upstream', 'agentjoin', '--discovery', nats.url, '--connections', '2'], 2);
      const running = agent;
      c = await local(agent);
      ups.push(await startUpstream(...announce));
      await ups[1]!.daemon.waitForMsg('announced');
      await statusUntil(
        running,
        (d) => d.hosts.length === 2 && d.hosts.every((h) => h.links === 1),
        'one connection on each host',
      );
      assert.ok(running.daemon.logs.some((l) => l.msg === 'upstream connection moves to another host'));
      // Requests at once: each goes out on the connection with the fewest in flight, so both carry some.
      const replies = await Promise.all(
        Array.from({ length: 10 }, (_, i) => c!.request(2, late(200, `j${i}`))),
      );
      const pids = new Set(replies.map((r) => r.toString().split('@')[1]));
      assert.deepEqual([...pids].sort(), [String(ups[0]!.daemon.pid), String(ups[1]!.daemon.pid)].sort());
    } finally {
      await c?.close();
      if (agent) await stopCleanly(agent.daemon);
      for (const u of ups) await stopCleanly(u.daemon);
      await nats.stop();
    }
  });

  test('--upstream SERVICE follows the route table: announced servers are used; a withdrawn one finishes its requests, then is left', async () => {
    const nats = await startNats();
    const announce = ['--announce', 'agentsvc', '--discovery', nats.url, '--announce-ttl', '2'];
    let agent: RunningAgent | undefined;
    let c: MessageClient | undefined;
    const ups: Listening[] = [];
    try {
      // The agent starts before any server is announced: nothing to connect to yet. One upstream
      // connection, so the order of frames on it says what the upstream has read.
      agent = await startAgent(
        [
          '--upstream',
          'agentsvc',
          '--discovery',
          nats.url,
          '--connections',
          '1',
          '--reconnect-delay',
          '0.05',
        ],
        0,
      );
      const running = agent;
      c = await local(agent);
      assert.match(await outcome(c.request(1, 'x')), /^error: unavailable: no upstream host is known/);
      ups.push(await startUpstream(...announce));
      await ups[0]!.daemon.waitForMsg('announced');
      await waitFor(
        () => running.daemon.logs.some((l) => l.msg === 'upstream connected'),
        agent.daemon,
        'the upstream connection',
      );
      const first = ups[0]!.daemon.pid;
      assert.equal((await c.request(5, '')).toString(), String(first));
      ups.push(await startUpstream(...announce));
      await ups[1]!.daemon.waitForMsg('announced');
      await statusUntil(running, (d) => d.hosts.length === 2, 'the second host in the route table');
      // A long request is in the first server's hands (the echo behind it on the same connection
      // came back), then it withdraws (SIGTERM: withdraw, then drain, which waits for it).
      const long = outcome(c.request(2, late(1500, 'long')));
      assert.equal((await c.request(1, 'behind')).toString(), 'behind');
      ups[0]!.daemon.signal('SIGTERM');
      const secondOnly = `127.0.0.1:${ups[1]!.port}`;
      await running.daemon.waitForLog(
        (l) =>
          l.msg === 'upstream hosts from the route table' &&
          JSON.stringify(l.upstreams) === JSON.stringify([secondOnly]),
      );
      // The connection to the withdrawn server takes no new request: these wait for the move.
      const after = Array.from({ length: 5 }, (_, i) => outcome(c!.request(2, late(0, `w${i}`))));
      assert.equal(await long, `long@${first}`, 'the request in flight on the withdrawn server is served');
      assert.deepEqual(
        await Promise.all(after),
        Array.from({ length: 5 }, (_, i) => `w${i}@${ups[1]!.daemon.pid}`),
        'the requests sent after the route change are served by the listed server',
      );
      assert.ok(running.daemon.logs.some((l) => l.msg === 'upstream connection moves to another host'));
      assert.deepEqual(await ups[0]!.daemon.waitForExit(), { code: 0, signal: null });
      const d = await upstreams(running);
      assert.equal(d.hosts.find((h) => h.id === secondOnly)?.links, 1);
      assert.equal(
        d.hosts.reduce((n, h) => n + h.errors + h.timeouts, 0),
        0,
        'no request failed',
      );
    } finally {
      await c?.close();
      if (agent) await stopCleanly(agent.daemon);
      for (const u of ups) await u.daemon.kill();
      await nats.stop();
    }
  });

  test('SIGHUP with --config: a new --upstream host list applies live; connections to a dropped host move', async () => {
    const a = await startUpstream();
    const b = await startUpstream();
    const n = ++sockets;
    const path = join(tmp, `agent-${n}.sock`);
    const status = join(tmp, `agent-${n}.status`);
    const file = join(tmp, `agent-${n}.json`);
    writeFileSync(file, JSON.stringify({ listen: path, upstream: `127.0.0.1:${a.port}`, connections: 2 }));
    const { daemon } = await startDaemon(['agent', '--config', file, '--status-socket', status]);
    const agent: RunningAgent = { daemon, path, status };
    const c = await local(agent);
    try {
      await waitFor(() => daemon.logs.filter((l) => l.msg === 'upstream connected').length >= 2, daemon);
      assert.equal((await c.request(5, '')).toString(), String(a.daemon.pid));
      writeFileSync(file, JSON.stringify({ listen: path, upstream: `127.0.0.1:${b.port}`, connections: 2 }));
      daemon.signal('SIGHUP');
      const line = await daemon.waitForMsg('config reloaded');
      assert.match(JSON.stringify(line.changes), /upstream/);
      await statusUntil(
        agent,
        (d) => d.hosts.length === 1 && d.hosts[0]!.id === `127.0.0.1:${b.port}` && d.hosts[0]!.links === 2,
        'both connections on the new host',
      );
      const pids = await Promise.all(Array.from({ length: 4 }, () => c.request(5, '').then(String)));
      assert.deepEqual(pids, Array(4).fill(String(b.daemon.pid)));
      assert.equal(c.stats.lateReplies, 0);
    } finally {
      await c.close();
      await stopCleanly(daemon);
      await stopCleanly(a.daemon);
      await stopCleanly(b.daemon);
    }
  });

  test('library: startAgent(config) in this process; snapshot() and close()', async () => {
    const up = await startUpstream();
    const path = join(tmp, `agent-lib-${++sockets}.sock`);
    const handle = await startAgentInProcess({
      listen: path,
      upstream: `127.0.0.1:${up.port}`,
      connections: 1,
      loglevel: 'warn',
    });
    const c = new MessageClient({ path, codec: 'seq', reconnect: false });
    try {
      assert.equal(handle.address(), path);
      await c.connect();
      assert.equal((await c.request(5, '')).toString(), String(up.daemon.pid), 'served once the link is up');
      const snap = handle.snapshot();
      assert.ok(snap);
      assert.equal(snap.hosts[0]!.requests, 1);
      assert.equal(snap.hosts[0]!.replies, 1);
      assert.equal(snap.agent.localConnections, 1);
    } finally {
      await c.close();
      await handle.close();
      await stopCleanly(up.daemon);
    }
    assert.equal(existsSync(path), false, 'the socket is gone after close()');
  });

  test('-c 2: two agent processes on the one socket, each with its own upstream connections; status sums them', async () => {
    const up = await startUpstream();
    const n = ++sockets;
    const path = join(tmp, `agent-${n}.sock`);
    const status = join(tmp, `agent-${n}.status`);
    const { daemon } = await startDaemon([
      'agent',
      '-c',
      '2',
      '-l',
      path,
      '--status-socket',
      status,
      '--upstream',
      `127.0.0.1:${up.port}`,
    ]);
    const agent: RunningAgent = { daemon, path, status };
    const clients: MessageClient[] = [];
    try {
      await waitFor(() => daemon.logs.filter((l) => l.msg === 'upstream connected').length >= 4, daemon);
      for (let i = 0; i < 6; i++) clients.push(await local(agent));
      const replies = await Promise.all(clients.map((c, i) => c.request(1, `m${i}`).then(String)));
      assert.deepEqual(replies, ['m0', 'm1', 'm2', 'm3', 'm4', 'm5']);
      const d = await statusUntil(agent, (x) => x.hosts[0]?.requests === 6, 'six requests counted');
      assert.equal(d.hosts[0]!.links, 4, 'two upstream connections in each process');
      const text = await runCli(['status', status]);
      assert.match(text.stdout, /as seen by 2 processes/);
    } finally {
      await Promise.all(clients.map((c) => c.close()));
      await stopCleanly(daemon);
      await stopCleanly(up.daemon);
    }
  });

  test('--upstream SERVICE with NATS unreachable: one line naming --discovery, exit 1, no socket left', async () => {
    const path = join(tmp, 'no-nats.sock');
    const res = await runCli(['agent', '-l', path, '--upstream', 'svc', '--discovery', 'nats://127.0.0.1:1']);
    assert.equal(res.code, 1);
    assert.match(
      res.stderr.trim(),
      /^tcpdaemon agent: --discovery nats:\/\/127\.0\.0\.1:1: cannot connect: /,
    );
    assert.equal(res.stderr.trim().split('\n').length, 1, res.stderr);
    assert.equal(existsSync(path), false, 'nothing listened');
  });

  describe('bad flags: one line, usage, exit 1, nothing listens', () => {
    const cases: [string[], RegExp][] = [
      [['-l', join(tmp, 'x.sock')], /upstream \(--upstream\) is required/],
      [['--upstream', '127.0.0.1:7'], /listen \(-l\) is required/],
      [['-l', join(tmp, 'x.sock'), '--upstream', 'svc'], /'svc' is a service name: it needs discovery/],
      [
        ['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:7', '--codec', 'lars'],
        /'lars' carries no sequence number/,
      ],
      [['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:0'], /is not an address to connect to/],
      [['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:7,127.0.0.1:7'], /127\.0\.0\.1:7 is given twice/],
      [
        ['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:7', '--connections', '0'],
        /connections \(--connections\)/,
      ],
      [['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:7', '--strategy', 'random'], /must be one of/],
      [
        ['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:7', '--request-timeout', 'soon'],
        /requestTimeout \(--request-timeout\)/,
      ],
      [
        ['-l', join(tmp, 'x.sock'), '--upstream', '127.0.0.1:7', '--max-in-fligh', '3'],
        /did you mean --max-in-flight/,
      ],
    ];
    for (const [argv, reason] of cases) {
      test(argv.slice(2).join(' ') || argv.join(' '), async () => {
        const res = await runCli(['agent', ...argv]);
        assert.equal(res.code, 1);
        const first = res.stderr.split('\n')[0]!;
        assert.match(first, /^tcpdaemon agent: /);
        assert.match(first, reason);
        assert.match(res.stderr, /usage: tcpdaemon agent -l unix:PATH --upstream/);
      });
    }
  });
});
