import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { HandlerLoadError, ListenError, ParamError, type Tcpmain, tcpdaemon } from '../src/index.js';
import { EXAMPLES, FIXTURES } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, roundTrip, untilClosed } from './helpers/net.js';

checkNoLeftoverProcesses();

test('library round trip with a function handler: address(), connections, graceful close()', async () => {
  let seen = 0;
  const upper: Tcpmain = async (socket, env) => {
    seen++;
    env.state.n = seen;
    for await (const chunk of socket) socket.write(String(chunk).toUpperCase());
  };
  const daemon = await tcpdaemon({ listen: '127.0.0.1:0', handler: upper, loglevel: 'fatal' });
  const { port, address } = daemon.address() as AddressInfo;
  assert.equal(address, '127.0.0.1');
  const a = await connect(port);
  const b = await connect(port);
  assert.equal(await roundTrip(a, 'abc'), 'ABC');
  assert.equal(await roundTrip(b, 'xyz'), 'XYZ');
  assert.equal(daemon.connections, 2);
  const status = daemon.status();
  assert.equal(status?.pid, process.pid);
  assert.equal(status?.handler, '<function>');
  assert.equal(status?.address, `127.0.0.1:${port}`);
  assert.equal(status?.connections, 2);
  assert.equal(status?.state, 'serving');
  const closedA = untilClosed(a);
  const closedB = untilClosed(b);
  let closeEvent = false;
  daemon.on('close', () => {
    closeEvent = true;
  });
  const closing = daemon.close();
  // Peers that finish on their own let close() resolve before the shutdown timeout.
  a.end();
  b.end();
  await closing;
  await Promise.all([closedA, closedB]);
  assert.equal(closeEvent, true);
  assert.equal(daemon.connections, 0);
  assert.equal(daemon.status()?.state, 'stopped');
  assert.equal(seen, 2);
});

test('library with a module path; env.signal aborts on close()', async () => {
  const daemon = await tcpdaemon({
    listen: '127.0.0.1:0',
    handler: join(FIXTURES, 'drain.mjs'),
    loglevel: 'fatal',
  });
  const { port } = daemon.address() as AddressInfo;
  const s = await connect(port);
  assert.equal((await readBytes(s, 8)).toString(), 'started\n');
  const closed = untilClosed(s);
  await daemon.close();
  assert.equal((await closed).data, 'finished\n');
});

test('library errors are typed: ParamError, HandlerLoadError, ListenError', async () => {
  await assert.rejects(tcpdaemon({ listen: 'nowhere', handler: () => undefined }), ParamError);
  await assert.rejects(
    tcpdaemon({ listen: '127.0.0.1:0', handler: () => undefined, workers: 0 }),
    /workers \(-c\) must be a whole number >= 1 and <= 1024, got 0/,
  );
  await assert.rejects(
    tcpdaemon({ listen: '127.0.0.1:0', handler: join(EXAMPLES, 'nope.ts'), loglevel: 'fatal' }),
    HandlerLoadError,
  );
  const first = await tcpdaemon({ listen: '127.0.0.1:0', handler: () => undefined, loglevel: 'fatal' });
  const { port } = first.address() as AddressInfo;
  await assert.rejects(
    tcpdaemon({ listen: `127.0.0.1:${port}`, handler: () => undefined, loglevel: 'fatal' }),
    (err: Error) => err instanceof ListenError && err.message.includes(`127.0.0.1:${port}`),
  );
  await first.close();
});
