// LF and IF: a connection waiting for a free worker is closed once it has waited --wait-timeout
// (default --timeout), so idle peers cannot hold the waiting queue.
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { EXAMPLES, modelArgs, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip, untilClosed } from './helpers/net.js';

checkNoLeftoverProcesses();
const echo = join(EXAMPLES, 'echo.js');
const WAITED = 'connection closed: waited --wait-timeout for a free worker';

async function idleWaitersAreClosed(model: string, ...flags: string[]): Promise<void> {
  await withDaemon(modelArgs(model, 1, echo, ...flags), async ({ daemon, port }) => {
    // The one worker is busy with a client that talks (well inside any idle timeout).
    const busy = await connect(port);
    assert.equal(await roundTrip(busy, 'busy'), 'busy');
    let talking = true;
    const talk = (async () => {
      for (let i = 0; talking; i++) {
        assert.equal(await roundTrip(busy, `ping ${i}`), `ping ${i}`);
        await sleep(100);
      }
    })();
    const idle = await Promise.all(Array.from({ length: 20 }, () => connect(port)));
    const closed = await Promise.all(idle.map((s) => untilClosed(s)));
    for (const c of closed) assert.equal(c.data, '', 'a waiting connection is closed unserved');
    const line = await daemon.waitForMsg(WAITED);
    assert.equal(line.level, 'warn');
    assert.ok(
      daemon.logs.filter((l) => l.msg === WAITED).length <= 2,
      'one line, then at most one summary a second',
    );
    talking = false;
    await talk;
    // The queue holds nobody now: once the worker is free, a fresh client is served at once.
    const busyClosed = untilClosed(busy);
    busy.end();
    await busyClosed;
    const fresh = await connect(port);
    assert.equal(await roundTrip(fresh, 'fresh'), 'fresh');
    fresh.end();
  });
}

test('LF -c 1 --timeout: connections waiting for the busy worker are closed after the timeout', async () => {
  await idleWaitersAreClosed('LF', '--timeout', '1');
});

test('IF -c 1 --wait-timeout: connections waiting for a connection process are closed after it', async () => {
  await idleWaitersAreClosed('IF', '--spares', '1', '--wait-timeout', '0.5');
});
