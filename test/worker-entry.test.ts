import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';
import { FIXTURES, modelArgs, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readLine } from './helpers/net.js';

checkNoLeftoverProcesses();
const identity = join(FIXTURES, 'worker-identity.ts');
const counter = join(FIXTURES, 'counter.mjs');

// The worker entry may run from the build's one-file bundle, which carries its own copy of the
// modules a handler reaches through the package: what they share must not depend on that.
for (const [model, workers] of [
  ['IF', 2],
  ['LF', 2],
  ['IOMP', 2],
] as const) {
  test(`-m ${model}: a handler module sees isTcpdaemonWorker() and its connection logger works`, async () => {
    await withDaemon(modelArgs(model, workers, identity), async ({ daemon, port }) => {
      const s = await connect(port);
      const reply = await readLine(s);
      const match = /^worker=(\w+) pid=(\d+)$/.exec(reply);
      assert.ok(match, `reply: ${reply}`);
      assert.equal(match[1], 'true');
      const pid = Number(match[2]);
      assert.notEqual(pid, daemon.pid, 'served in a worker process');
      const line = await daemon.waitForLog((l) => l.msg === 'identity probe' && l.probe === pid);
      assert.equal(line.pid, pid);
      assert.ok(line.conn !== undefined, 'the line names its connection');
    });
  });
}

// LF and IF send every fresh worker one internal connection first, to warm node's code for
// receiving sockets (src/models/handoff-warmup.ts): the handler never sees it, and it takes no
// connection id.
for (const model of ['LF', 'IF'] as const) {
  test(`-m ${model}: the warm-up connection reaches no handler and counts as no connection`, async () => {
    await withDaemon(modelArgs(model, 1, counter), async ({ daemon, port }) => {
      await daemon.waitForLog((l) => l.msg === 'worker ready');
      const s = await connect(port);
      const [count, , connectionId] = (await readLine(s)).split(' ');
      assert.equal(count, '1', 'the first call of the handler in this process');
      assert.match(connectionId!, /-1$/, 'the first connection id of this process');
      s.end();
    });
  });
}
