// A peer cannot make a daemon write much more log than it sends: lines it can cause once per
// frame, request or connection are counted per peer and summarised (PeerLog), and a refusal is
// logged without a stack. Each flood runs against a real daemon and its log lines are counted.
import assert from 'node:assert/strict';
import { createConnection, type Socket } from 'node:net';
import { test } from 'node:test';
import { FLAG_REPLY } from '../src/message/codecs/index.js';
import { createCodec } from '../src/message/index.js';
import { type DaemonProcess, EXAMPLES, type LogLine, withDaemon } from './helpers/daemon.js';
import { BUSINESS } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { FramedSocket } from './helpers/message.js';
import { connect, readBytes } from './helpers/net.js';

checkNoLeftoverProcesses();

const lars = createCodec('lars');
const seq = createCodec('seq');

/** Events the lines with `msg` stand for: a first line counts 1, a summary its `suppressed`. */
function events(daemon: DaemonProcess, msg: string): number {
  return lines(daemon, msg).reduce((n, l) => n + (typeof l.suppressed === 'number' ? l.suppressed : 1), 0);
}

function lines(daemon: DaemonProcess, msg: string): LogLine[] {
  return daemon.logs.filter((l) => l.msg === msg);
}

/** Bytes of log the daemon wrote to stdout so far. */
function logBytes(daemon: DaemonProcess): number {
  return daemon.stdoutLines.reduce((n, l) => n + l.length + 1, 0);
}

test('10,000 unroutable Lars frames (80 KB) cost a few log lines, and the summary counts them all', async () => {
  await withDaemon(
    ['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', `${EXAMPLES}/lars-echo.ts`],
    async ({ daemon, port }) => {
      const c = await FramedSocket.connect(port, lars);
      await c.waitFrames(1); // the welcome
      const before = logBytes(daemon);
      const frame = lars.encode(999, Buffer.alloc(0));
      const flood = Buffer.concat(Array.from({ length: 10_000 }, () => frame));
      c.socket.write(flood);
      c.send(1, 'after the flood');
      const frames = await c.waitFrames(2);
      assert.equal(frames[1]!.body.toString(), 'after the flood', 'the connection still serves');
      const msg = 'no route for msgid; message dropped';
      await daemon.waitForLog(() => events(daemon, msg) === 10_000);
      const written = lines(daemon, msg);
      assert.ok(written.length <= 4, `${written.length} lines for one flood`);
      const summary = written.find((l) => typeof l.suppressed === 'number');
      assert.ok(summary, 'a summary line');
      assert.equal(summary.remote, '127.0.0.1');
      assert.ok(logBytes(daemon) - before < flood.length / 10, `${logBytes(daemon) - before} bytes of log`);
      c.socket.destroy();
    },
  );
});

test('a 4 s RST storm: 600 connections reset by their peer cost a few `connection lost` lines', async () => {
  await withDaemon(
    ['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', `${EXAMPLES}/echo.js`],
    async ({ daemon, port }) => {
      const storm = 600;
      const started = Date.now();
      for (let i = 0; i < storm; i++) {
        const s = await connect(port);
        s.write('x');
        await readBytes(s, 1); // the handler has it: it sees our RST as ECONNRESET
        s.resetAndDestroy();
      }
      const msg = 'connection lost';
      await daemon.waitForLog(() => events(daemon, msg) === storm);
      const written = lines(daemon, msg);
      // The first line, then a summary a second at most while the storm lasts (longer on a slow machine).
      const seconds = Math.ceil((Date.now() - started) / 1000);
      assert.ok(
        written.length <= Math.min(2 + seconds, storm / 20),
        `${written.length} lines for ${storm} resets in ${seconds} s`,
      );
      // The first is written at once, naming the connection's peer (read before its reset).
      assert.match(String(written[0]?.remote), /^127\.0\.0\.1:[1-9]\d*$/);
      const summary = written.find((l) => typeof l.suppressed === 'number');
      assert.ok(summary, 'a summary line');
      assert.equal(summary.remote, '127.0.0.1');
      assert.equal(summary.code, 'ECONNRESET');
    },
  );
});

/** Sends `n` seq requests at once and resolves with every reply. */
async function pipelined(port: number, n: number, msgid: number, body: string): Promise<FramedSocket> {
  const c = await FramedSocket.connect(port, seq);
  const one = (i: number) => seq.encode(msgid, Buffer.from(body), i + 1, 0);
  c.socket.write(Buffer.concat(Array.from({ length: n }, (_, i) => one(i))));
  await c.waitFrames(n, 60_000);
  return c;
}

test('gateway: 10,000 pipelined refused requests log no stack and a bounded count of lines', async () => {
  await withDaemon(
    [
      'gateway',
      '-l',
      '127.0.0.1:0',
      '-s',
      BUSINESS,
      '--business-workers',
      '1',
      '--max-inflight-per-conn',
      '1',
      '--refuse-over-inflight',
    ],
    async ({ daemon, port }) => {
      const before = daemon.logs.length;
      const started = Date.now();
      // Reserved msgids are refused by the gateway itself, request by request.
      const reserved = await pipelined(port, 10_000, -50, '');
      assert.equal(reserved.frames.length, 10_000);
      assert.ok(reserved.frames.every((f) => (f.flags & FLAG_REPLY) !== 0));
      reserved.socket.destroy();

      // One slow request in flight, the rest over --max-inflight-per-conn.
      const busy = await pipelined(port, 10_000, 2, '300');
      assert.equal(busy.frames.length, 10_000);
      busy.socket.destroy();
      const msg = 'request refused: too many in flight';
      const refused = busy.frames.filter((f) => /too many requests in flight/.test(f.body.toString())).length;
      await daemon.waitForLog(() => events(daemon, msg) === refused);

      const flood = daemon.logs.slice(before);
      const stacks = flood.filter(
        (l) => typeof (l.err as { stack?: unknown } | undefined)?.stack === 'string',
      );
      assert.deepEqual(stacks, [], 'no stack for a refusal');
      const warned = flood.filter((l) => l.level === 'warn' || l.level === 'error');
      // Two kinds of line, each a first one and a summary a second at most while its flood lasts.
      const seconds = Math.ceil((Date.now() - started) / 1000);
      assert.ok(
        warned.length <= Math.min(4 + 2 * seconds, 100),
        `${warned.length} warnings for 20,000 refused requests in ${seconds} s`,
      );
      if (refused > 0) assert.ok(lines(daemon, msg).some((l) => typeof l.suppressed === 'number'));
    },
  );
});

test('message-layer lines carry the peer once (remote was written twice)', async () => {
  await withDaemon(
    ['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', `${EXAMPLES}/lars-echo.ts`],
    async ({ daemon, port }) => {
      const bad: Socket = createConnection(port, '127.0.0.1');
      bad.on('error', () => undefined);
      bad.write(Buffer.from([1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff])); // negative length
      await daemon.waitForMsg('protocol error; closing connection');
      const cut = await FramedSocket.connect(port, lars);
      cut.socket.end(Buffer.from([1, 0, 0, 0, 9, 0, 0, 0, 1, 2])); // a frame cut by the FIN
      await daemon.waitForMsg('peer closed inside a frame; partial frame dropped');
      for (const m of [
        'protocol error; closing connection',
        'peer closed inside a frame; partial frame dropped',
      ]) {
        const raw = daemon.stdoutLines.find((l) => l.includes(`"msg":"${m}"`))!;
        assert.equal(raw.match(/"remote":/g)?.length, 1, raw);
      }
      bad.destroy();
    },
  );
});
