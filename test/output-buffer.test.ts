// Output bound: a peer that sends and never reads cannot grow a connection's unsent output past
// --max-output-buffer (that connection is closed, logged once, the others untouched), and the echo
// examples wait for 'drain', so they do not grow at all.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { type DaemonProcess, EXAMPLES, FIXTURES, modelArgs, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, roundTrip } from './helpers/net.js';

checkNoLeftoverProcesses();
const ignoresBackpressure = join(FIXTURES, 'no-backpressure.mjs');
const OVERFLOW = 'output buffer above --max-output-buffer (the peer does not read); connection closed';
const MiB = 1048576;
/** What the flooding peer sends at most. */
const FLOOD_BYTES = 256 * MiB;

function readOr(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch {
    return '';
  }
}

/** `pid` and every process below it. */
function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) {
    let tasks: string[] = [];
    try {
      tasks = readdirSync(`/proc/${out[i]}/task`);
    } catch {
      continue; // gone
    }
    for (const t of tasks) {
      for (const c of readOr(`/proc/${out[i]}/task/${t}/children`).split(' ')) {
        if (c.trim() !== '') out.push(Number(c));
      }
    }
  }
  return out;
}

/** Peak resident memory (VmHWM) of the largest process in the daemon's tree, bytes. */
function peakRss(daemon: DaemonProcess): number {
  let max = 0;
  for (const pid of processTree(daemon.pid)) {
    const m = /^VmHWM:\s+(\d+)\s+kB/m.exec(readOr(`/proc/${pid}/status`));
    if (m) max = Math.max(max, Number(m[1]) * 1024);
  }
  return max;
}

/** Resolves on 'drain' or 'close' (true) or after `ms` without either (false). */
function drainOrClose(s: Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      clearTimeout(timer);
      s.off('drain', on).off('close', on);
      resolve(v);
    };
    const on = () => done(true);
    const timer = setTimeout(() => done(false), ms);
    s.on('drain', on).on('close', on);
  });
}

interface Flood {
  socket: Socket;
  /** Resolves when the connection has closed; rejects if it is still open 20 s after the flood. */
  closed: Promise<unknown>;
  sent: number;
  /** True when the peer's writes stopped for `stallMs` (the server stopped reading). */
  stalled: boolean;
}

/** Sends up to FLOOD_BYTES and reads nothing, watching the peak RSS of the daemon's processes. */
async function flood(
  daemon: DaemonProcess,
  port: number,
  stallMs: number,
): Promise<Flood & { peak: number }> {
  const socket = netConnect(port, '127.0.0.1');
  socket.on('error', () => undefined); // the server resets it when it gives up
  const closedNow = new Promise((r) => socket.once('close', r));
  await new Promise((r) => socket.once('connect', r));
  socket.pause();
  const chunk = Buffer.alloc(MiB, 0x61);
  let sent = 0;
  let stalled = false;
  let peak = 0;
  // IF's connection process exits when its connection ends: its peak is read while it runs.
  const sampler = setInterval(() => {
    peak = Math.max(peak, peakRss(daemon));
  }, 50);
  while (sent < FLOOD_BYTES && !socket.destroyed) {
    sent += chunk.length;
    if (!socket.write(chunk) && !(await drainOrClose(socket, stallMs))) {
      stalled = true;
      break;
    }
  }
  clearInterval(sampler);
  peak = Math.max(peak, peakRss(daemon));
  let timer: NodeJS.Timeout | undefined;
  const closed = Promise.race([
    closedNow,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error('the server did not close the connection')), 20_000);
    }),
  ]).finally(() => clearTimeout(timer));
  closed.catch(() => undefined); // a test that does not wait for it
  return { socket, closed, sent, stalled, peak };
}

for (const [model, workers] of [
  ['IOMP', 1],
  ['IOMP', 2],
  ['LF', 2],
  ['IF', 2],
  ['TLF', 2],
] as const) {
  test(`${model} -c ${workers}: a peer that never reads, against a handler ignoring backpressure, is closed at the default --max-output-buffer`, async (t) => {
    await withDaemon(modelArgs(model, workers, ignoresBackpressure), async ({ daemon, port }) => {
      const good = await connect(port);
      assert.equal(await roundTrip(good, 'before'), 'before');
      const f = await flood(daemon, port, 10_000);
      assert.equal(f.stalled, false, 'the server kept reading until it closed the connection');
      await f.closed;
      assert.ok(f.sent < FLOOD_BYTES, `closed after ${f.sent} bytes sent`);
      const line = await daemon.waitForMsg(OVERFLOW);
      assert.equal(line.level, 'warn');
      assert.equal(line.max, 16 * MiB);
      assert.ok(Number(line.unsentBytes) > 16 * MiB);
      t.diagnostic(`closed after ${f.sent / MiB} MiB sent; peak RSS ${(f.peak / MiB).toFixed(0)} MiB`);
      assert.ok(f.peak < 200 * MiB, `peak RSS ${(f.peak / MiB).toFixed(0)} MiB`);
      // The other connection is untouched, and nothing else was logged for the closed one.
      assert.equal(await roundTrip(good, 'after'), 'after');
      good.end();
      assert.equal(daemon.logs.filter((l) => l.msg === OVERFLOW).length, 1);
      assert.equal(daemon.logs.filter((l) => l.level === 'error').length, 0, daemon.stdoutLines.join('\n'));
    });
  });
}

test('--max-output-buffer BYTES: the connection is closed past that many unsent bytes', async () => {
  const args = ['-l', '127.0.0.1:0', '-s', ignoresBackpressure, '--max-output-buffer', String(MiB)];
  await withDaemon(args, async ({ daemon, port }) => {
    const f = await flood(daemon, port, 10_000);
    await f.closed;
    const line = await daemon.waitForMsg(OVERFLOW);
    assert.equal(line.max, MiB);
    assert.ok(Number(line.unsentBytes) > MiB);
  });
});

for (const file of ['echo.js', 'echo.ts']) {
  test(`examples/${file} waits for 'drain': a peer that never reads stalls, the daemon does not grow (no --max-output-buffer)`, async (t) => {
    const args = ['-l', '127.0.0.1:0', '-s', join(EXAMPLES, file), '--max-output-buffer', '0'];
    await withDaemon(args, async ({ daemon, port }) => {
      const f = await flood(daemon, port, 2000);
      t.diagnostic(`stalled after ${f.sent / MiB} MiB sent; peak RSS ${(f.peak / MiB).toFixed(0)} MiB`);
      assert.equal(f.stalled, true, `the echo stopped reading (sent ${f.sent / MiB} MiB)`);
      assert.ok(f.peak < 150 * MiB, `peak RSS ${(f.peak / MiB).toFixed(0)} MiB`);
      // Everything sent so far comes back once the peer reads.
      f.socket.resume();
      const back = await readBytes(f.socket, f.sent - MiB, 30_000); // the last chunk may still be ours
      assert.ok(back.every((b) => b === 0x61));
      f.socket.destroy();
      assert.equal(daemon.logs.filter((l) => l.level === 'error').length, 0);
    });
  });
}
