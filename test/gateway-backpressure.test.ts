// The gateway's in-flight bound is backpressure: a client that pipelines is read no faster than it
// is answered (nothing refused, nothing lost), its session's queues stay bounded, and refusal is
// an explicit choice for the seq codec. Real daemon, gateway and worker processes, real sockets.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';
import { GATEWAY_MSGID } from '../src/gateway/protocol.js';
import { createCodec, type Frame, MessageError } from '../src/message/index.js';
import type { DaemonProcess } from './helpers/daemon.js';
import { withDaemon } from './helpers/daemon.js';
import { gatewayArgs, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { FramedSocket } from './helpers/message.js';
import { waitUntil } from './helpers/supervisor.js';

checkNoLeftoverProcesses();

const lars = createCodec('lars');

/** Pid of the (single) gateway process, from the daemon's log. */
function gatewayPid(daemon: DaemonProcess): number {
  const ready = daemon.logs.find((l) => l.msg === 'worker ready' && l.supervisor === 'gateways');
  assert.ok(ready, 'the gateway process logged ready');
  return Number(ready.workerPid);
}

/** Resident set of a process, bytes (/proc). */
function rss(pid: number): number {
  const kb = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return Number(kb) * 1024;
}

/** One write of `count` lars frames made by `frame(i)`. */
function pipeline(count: number, frame: (i: number) => [number, Buffer]): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => lars.encode(...frame(i))));
}

const MiB = 1024 * 1024;

describe('gateway: the in-flight bound is backpressure', () => {
  test('lars: 10,000 pipelined requests get 10,000 answers in order, no error frame', async () => {
    await withDaemon(gatewayArgs('--codec', 'lars', '--business-workers', '2'), async ({ port }) => {
      const c = await FramedSocket.connect(port, lars);
      try {
        c.socket.write(pipeline(10_000, (i) => [1 + (i % 2) * 4, Buffer.from(`m${i}`)]));
        const frames = await c.waitFrames(10_000, 60_000);
        const errors = frames.filter((f) => f.msgid === GATEWAY_MSGID.error);
        assert.deepEqual(
          errors.slice(0, 3).map((f) => f.body.toString()),
          [],
          `${errors.length} error frames`,
        );
        for (let i = 0; i < 10_000; i++) {
          const f = frames[i]!;
          if (i % 2 === 0) assert.equal(f.body.toString(), `m${i}`, `answer ${i} in order`);
          else assert.match(f.body.toString(), /^pid:\d+$/, `answer ${i} in order`);
        }
      } finally {
        c.destroy();
      }
    });
  });

  test('lars: 100 clients each pipelining 1,000 requests get every answer in order, no error frame; gateway RSS bounded', async () => {
    await withDaemon(gatewayArgs('--codec', 'lars', '--business-workers', '2'), async ({ port, daemon }) => {
      const pid = gatewayPid(daemon);
      const clients = await Promise.all(Array.from({ length: 100 }, () => FramedSocket.connect(port, lars)));
      const before = rss(pid);
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, rss(pid));
      }, 50);
      try {
        for (const [k, c] of clients.entries()) {
          c.socket.write(pipeline(1000, (i) => [1, Buffer.from(`c${k}:${i}`)]));
        }
        const answers = await Promise.all(clients.map((c) => c.waitFrames(1000, 90_000)));
        peak = Math.max(peak, rss(pid));
        for (const [k, frames] of answers.entries()) {
          const errors = frames.filter((f) => f.msgid === GATEWAY_MSGID.error);
          assert.equal(errors.length, 0, `client ${k}: ${errors.length} error frames`);
          for (let i = 0; i < 1000; i++) {
            assert.equal(frames[i]!.body.toString(), `c${k}:${i}`, `client ${k}: answer ${i} in order`);
          }
        }
      } finally {
        clearInterval(sampler);
        for (const c of clients) c.destroy();
      }
      // Each session holds the rest of its one write (~1,000 frames, 160 B of bookkeeping each)
      // until answers go out: ~20 MiB in all, plus the heap's slack before a collection.
      const grew = peak - before;
      assert.ok(grew < 128 * MiB, `gateway RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
    });
  });

  test('lars: a client that pipelines 1,000 requests and then half-closes still gets every answer, then our FIN', async () => {
    await withDaemon(gatewayArgs('--codec', 'lars', '--business-workers', '2'), async ({ port }) => {
      const c = await FramedSocket.connect(port, lars);
      try {
        c.socket.end(pipeline(1000, (i) => [1, Buffer.from(`m${i}`)]));
        await c.closed;
        assert.equal(c.frames.length, 1000);
        assert.ok(c.frames.every((f, i) => f.body.toString() === `m${i}`));
      } finally {
        c.destroy();
      }
    });
  });

  test('lars: at the bound the gateway stops reading the connection, and reads on as answers go out', async () => {
    await withDaemon(
      gatewayArgs('--codec', 'lars', '--business-workers', '2', '--max-inflight-per-conn', '4'),
      async ({ port }) => {
        const c = await FramedSocket.connect(port, lars);
        try {
          // Four slow requests fill the bound; 16 MiB more (far past what the kernel buffers) follows.
          const big = Buffer.alloc(64_000, 0x61);
          c.socket.write(pipeline(4, () => [2, Buffer.from('1500')]));
          const flood = pipeline(256, () => [1, big]);
          let flushed = false;
          c.socket.write(flood, () => {
            flushed = true;
          });
          await c.waitFrames(1, 20_000);
          // The first answer came after 1.5 s; the gateway had not read the rest meanwhile.
          assert.equal(flushed, false, 'the flood was not all taken before the slow requests were answered');
          assert.ok(
            c.socket.writableLength > 8 * MiB,
            `unsent on the client side: ${c.socket.writableLength} bytes`,
          );
          const frames = await c.waitFrames(260, 60_000);
          assert.ok(frames.slice(0, 4).every((f) => /^pid:\d+$/.test(f.body.toString())));
          assert.ok(frames.slice(4).every((f) => f.msgid === 1 && f.body.equals(big)));
          await waitUntil(() => flushed && c.socket.writableLength === 0, 'everything written');
        } finally {
          c.destroy();
        }
      },
    );
  });

  test('seq: past the bound a request waits, it is not refused; --refuse-over-inflight refuses it', async () => {
    await withDaemon(gatewayArgs('--max-inflight-per-conn', '2'), async ({ port }) => {
      const c = await gatewayClient(port);
      try {
        const answers = await Promise.all([
          c.client.request(2, '300'),
          c.client.request(2, '300'),
          c.client.request(1, 'third waits its turn'),
        ]);
        assert.equal(answers[2]!.toString(), 'third waits its turn');
      } finally {
        await c.close();
      }
    });
    await withDaemon(
      gatewayArgs('--max-inflight-per-conn', '2', '--refuse-over-inflight'),
      async ({ port, daemon }) => {
        const c = await gatewayClient(port);
        try {
          const held = [c.client.request(2, '400'), c.client.request(2, '400')];
          const refused = await Promise.all(
            Array.from({ length: 50 }, () => c.client.request(1, 'one too many').catch((e: unknown) => e)),
          );
          for (const err of refused) {
            assert.ok(err instanceof MessageError, String(err));
            assert.match(err.message, /too many requests in flight on this connection \(limit 2\)/);
          }
          await Promise.all(held);
          assert.equal((await c.client.request(1, 'after')).toString(), 'after');
          // 50 refusals: logged once, with the count (then summarised), not once each.
          const lines = daemon.logs.filter((l) => l.msg === 'request refused: too many in flight');
          assert.ok(lines.length >= 1 && lines.length <= 2, `${lines.length} lines`);
          const stacks = daemon.logs.filter((l) => l.msg === 'route handler failed; error reply sent');
          assert.equal(stacks.length, 0, 'a refusal is an answer, not a handler fault with a stack');
        } finally {
          await c.close();
        }
      },
    );
  });

  test('lars head-of-line flood: one request that never resolves, then 4 MiB of 8-byte frames: RSS and log bounded', async () => {
    await withDaemon(
      gatewayArgs('--codec', 'lars', '--business-workers', '2', '--request-timeout', '3'),
      async ({ port, daemon }) => {
        const pid = gatewayPid(daemon);
        const c = await FramedSocket.connect(port, lars);
        try {
          c.send(1, 'warm');
          assert.equal((await c.waitFrames(1))[0]!.body.toString(), 'warm');
          const before = rss(pid);
          const logBefore = daemon.stdoutLines.length;
          let peak = before;
          const sampler = setInterval(() => {
            peak = Math.max(peak, rss(pid));
          }, 50);
          try {
            // Answered only by its timeout, 3 s from now: everything after it waits for its turn.
            c.send(2, '60000');
            c.socket.write(Buffer.alloc(4 * MiB)); // 524,288 frames of msgid 0, empty body
            const [, head] = await c.waitFrames(2, 30_000);
            assert.equal(head!.msgid, GATEWAY_MSGID.error);
            assert.match(head!.body.toString(), /timed out/);
            peak = Math.max(peak, rss(pid));
          } finally {
            clearInterval(sampler);
          }
          const grew = peak - before;
          assert.ok(grew < 64 * MiB, `gateway RSS grew by ${(grew / MiB).toFixed(1)} MiB`);
          const logged = daemon.stdoutLines.length - logBefore;
          assert.ok(logged < 50, `${logged} log lines during the flood`);
        } finally {
          c.destroy();
        }
      },
    );
  });

  test('--max-session-bytes: a session past it is closed with one logged reason; others are served', async () => {
    await withDaemon(
      gatewayArgs('--codec', 'lars', '--max-inflight-per-conn', '1', '--max-session-bytes', '4096'),
      async ({ port, daemon }) => {
        const other = await gatewayClient(port, 'lars');
        const c = await FramedSocket.connect(port, lars);
        try {
          c.send(2, '2000');
          c.socket.write(Buffer.alloc(8 * 1000)); // 1,000 empty frames: past 4096 accounted bytes
          await c.closed;
          const frames: Frame[] = c.frames;
          assert.equal(frames.length, 0, 'nothing answered on the closed session');
          const line = await daemon.waitForLog(
            (l) => l.msg === 'session closed: its queued answers and frames passed --max-session-bytes',
          );
          assert.equal(line.limit, 4096);
          assert.equal((await other.client.request(1, 'still served')).toString(), 'still served');
          const lines = daemon.logs.filter((l) => String(l.msg).startsWith('session closed'));
          assert.equal(lines.length, 1);
          assert.equal(
            daemon.logs.filter((l) => l.level === 'warn' && l.stack !== undefined).length,
            0,
            'no stack for a client-caused close',
          );
        } finally {
          c.destroy();
          await other.close();
        }
      },
    );
  });
});
