// PeerLog on its own: what is counted apart, what goes into one summary, and the bound on keys.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { PeerLog } from '../src/throttled-count.js';
import { captureLogs } from './helpers/message.js';

test('PeerLog: the first line per (peer, msg, group) is written, the rest summarised with suppressed', async () => {
  const logs = captureLogs('info');
  const log = new PeerLog(logs.logger, 50);
  for (let i = 0; i < 3; i++)
    log.warn({ peer: '10.0.0.1', msg: 'bad', group: { reason: 'x' }, fields: { i } });
  for (let i = 0; i < 2; i++)
    log.warn({ peer: '10.0.0.1', msg: 'bad', group: { reason: 'y' }, fields: { i } });
  log.warn({ peer: '10.0.0.2', msg: 'bad', group: { reason: 'x' }, fields: { i: 0 } });
  log.debug({ peer: '10.0.0.1', msg: 'below the level' });
  assert.deepEqual(
    logs.lines.map((l) => [l.msg, l.reason, l.i]),
    [
      ['bad', 'x', 0],
      ['bad', 'y', 0],
      ['bad', 'x', 0],
    ],
  );
  await logs.waitFor((l) => l.suppressed === 1);
  const summaries = logs.lines.filter((l) => typeof l.suppressed === 'number');
  assert.deepEqual(summaries.map((l) => [l.remote, l.reason, l.suppressed, l.level]).sort(), [
    ['10.0.0.1', 'x', 2, 'warn'],
    ['10.0.0.1', 'y', 1, 'warn'],
  ]);
  assert.ok(!logs.lines.some((l) => l.msg === 'below the level'));
});

test('PeerLog: past maxKeys distinct peers in an interval, the rest go into one summary for all', async () => {
  const logs = captureLogs('info');
  const log = new PeerLog(logs.logger, 50, 2);
  for (let p = 1; p <= 5; p++) log.info({ peer: `10.0.0.${p}`, msg: 'connection lost' });
  assert.equal(logs.lines.length, 2);
  const all = await logs.waitFor(
    (l) => l.msg === 'log lines suppressed: more peers and reasons at once than are counted apart',
  );
  assert.equal(all.suppressed, 3);
  assert.equal(all.keys, 2);
});
