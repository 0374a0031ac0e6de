// Out of file descriptors (EMFILE): a daemon under `ulimit -n 256` flooded with 600 idle
// connections keeps serving the clients it has, says it is out of descriptors, and accepts again
// once the flood has gone.
import assert from 'node:assert/strict';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, EXAMPLES, modelArgs, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip } from './helpers/net.js';

checkNoLeftoverProcesses();
const echo = join(EXAMPLES, 'echo.js');
const OUT = 'out of file descriptors: new connections are closed at accept until some free up';
const BACK = 'file descriptors available again';
/** The daemon's command under a low descriptor limit. */
const LOW_LIMIT = ['bash', '-c', 'ulimit -n 256; exec "$0" "$@"', BIN];

async function floodedDaemonKeepsServing(model: string, workers: number): Promise<void> {
  // --hang-timeout 2: a worker whose heartbeats stopped would be killed while the flood lasts (1 s
  // could be a worker busy with the flood on a loaded machine).
  const args = modelArgs(model, workers, echo, '--hang-timeout', '2');
  const { daemon, port } = await startDaemon(args, { command: LOW_LIMIT });
  const flood: Socket[] = [];
  try {
    const clients = await Promise.all(Array.from({ length: 6 }, () => connect(port)));
    for (const [i, c] of clients.entries()) assert.equal(await roundTrip(c, `hello ${i}`), `hello ${i}`);
    for (let i = 0; i < 600; i++) {
      const s = netConnect(port, '127.0.0.1');
      s.on('error', () => undefined); // the ones beyond the limit are closed or reset
      flood.push(s);
    }
    const out = await daemon.waitForMsg(OUT);
    assert.equal(out.level, 'warn');
    assert.match(String(out.code), /^E[MN]FILE$/);
    // Long enough for heartbeats (every second) to have failed, and --hang-timeout to have struck.
    const until = Date.now() + 4500;
    for (let round = 0; Date.now() < until; round++) {
      for (const [i, c] of clients.entries()) {
        assert.equal(await roundTrip(c, `again ${i}.${round}`), `again ${i}.${round}`);
      }
      await sleep(100);
    }
    for (const msg of ['worker exited', 'worker hung; killing it']) {
      assert.equal(
        daemon.logs.filter((l) => l.msg === msg).length,
        0,
        `no '${msg}' during the flood:\n${daemon.stdoutLines.join('\n')}`,
      );
    }
    assert.equal(daemon.logs.filter((l) => l.msg === OUT).length <= workers + 1, true, 'throttled');
    for (const s of flood) s.destroy();
    await daemon.waitForMsg(BACK);
    const fresh = await connect(port);
    assert.equal(await roundTrip(fresh, 'fresh'), 'fresh');
    fresh.destroy();
    for (const c of clients) c.destroy();
  } finally {
    for (const s of flood) s.destroy();
    await daemon.kill();
  }
}

test('EMFILE, IOMP -c 2: connected clients keep being served; logged; accepts again after', async () => {
  await floodedDaemonKeepsServing('IOMP', 2);
});

test('EMFILE, TLF -c 2: connected clients keep being served; logged; accepts again after', async () => {
  await floodedDaemonKeepsServing('TLF', 2);
});

test('EMFILE, IOMP -c 1: connected clients keep being served; logged; accepts again after', async () => {
  await floodedDaemonKeepsServing('IOMP', 1);
});

test('EMFILE, LF -c 7: connected clients keep being served; logged; accepts again after', async () => {
  await floodedDaemonKeepsServing('LF', 7);
});
