// Private directories under the temp dir (src/private-dir.ts): a daemon killed with SIGKILL cannot
// remove its own, so the next one removes those whose daemon is gone, and only those.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { makePrivateDir } from '../src/private-dir.js';
import { startDaemon } from './helpers/daemon.js';
import { gatewayArgs } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

/** A pid no process has (far above any pid_max the kernel allows). */
const DEAD_PID = 2 ** 30 + 17;

const dirsOf = (prefix: string) =>
  readdirSync(tmpdir())
    .filter((n) => n.startsWith(prefix))
    .map((n) => join(tmpdir(), n));

test('makePrivateDir: mode 0700, named with the pid; stale ones of dead processes go, live and unnamed ones stay', () => {
  const prefix = `tcpdaemon-test${process.pid}-`;
  const stale = join(tmpdir(), `${prefix}${DEAD_PID}-abcdef`);
  const live = join(tmpdir(), `${prefix}1-abcdef`); // pid 1 is alive
  const unnamed = join(tmpdir(), `${prefix}not-a-pid`);
  for (const d of [stale, live, unnamed]) mkdirSync(d);
  writeFileSync(join(stale, 'inside'), 'x');
  try {
    const made = makePrivateDir(prefix);
    assert.ok(made.startsWith(join(tmpdir(), `${prefix}${process.pid}-`)), made);
    assert.equal(statSync(made).mode & 0o777, 0o700);
    assert.equal(existsSync(stale), false, 'a dead process directory goes, with what is in it');
    assert.ok(existsSync(live), 'a live process directory stays');
    assert.ok(existsSync(unnamed), 'a name without a pid stays');
  } finally {
    for (const d of dirsOf(prefix)) rmSync(d, { recursive: true, force: true });
  }
});

test('a gateway killed with SIGKILL leaves its socket folder; the next gateway removes it, and its own at the stop', async () => {
  const first = await startDaemon(gatewayArgs('--business-workers', '1'));
  const firstDirs = dirsOf(`tcpdaemon-gw-${first.daemon.pid}-`);
  assert.equal(firstDirs.length, 1, 'the gateway made its folder, named with its pid');
  // (Not daemon.kill(): the test helper removes a killed daemon's dirs itself.)
  first.daemon.signal('SIGKILL');
  await first.daemon.waitForExit();
  assert.ok(existsSync(firstDirs[0]!), 'SIGKILL: nothing could remove it');

  const second = await startDaemon(gatewayArgs('--business-workers', '1'));
  try {
    assert.equal(existsSync(firstDirs[0]!), false, 'the next gateway removed the dead one');
    assert.equal(dirsOf(`tcpdaemon-gw-${second.daemon.pid}-`).length, 1);
    second.daemon.signal('SIGTERM');
    assert.deepEqual(await second.daemon.waitForExit(), { code: 0, signal: null });
    assert.equal(dirsOf(`tcpdaemon-gw-${second.daemon.pid}-`).length, 0, 'removed at the stop');
  } finally {
    await second.daemon.kill();
    await first.daemon.kill();
  }
});
