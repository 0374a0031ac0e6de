// `tcpdaemon status` answers for every command: the proxy adds its backends, the gateway its
// business workers, requests and stored messages.
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import type { DaemonStatus } from '../src/status.js';
import { runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { gatewayArgs, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes } from './helpers/net.js';
import { taggedEcho } from './helpers/proxy.js';
import { socketPath, status } from './helpers/status.js';

after(checkNoLeftoverProcesses);

/** Polls the status socket until `cond` holds (heartbeats carry the workers' figures once a second). */
async function statusUntil(
  path: string,
  cond: (s: DaemonStatus) => boolean,
  what: string,
): Promise<DaemonStatus> {
  const deadline = Date.now() + 15_000;
  for (;;) {
    const s = await status(path);
    if (cond(s)) return s;
    if (Date.now() > deadline) throw new Error(`status never showed ${what}: ${JSON.stringify(s)}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface BackendRow {
  id: string;
  states: Record<string, number>;
  active: number;
  total: number;
  errors: number;
}

test('proxy -c 2: status lists each backend with state and the connections summed over both workers', async () => {
  const a = await taggedEcho('a');
  const b = await taggedEcho('b');
  const path = socketPath();
  const { daemon, port } = await startDaemon([
    'proxy',
    '-l',
    '127.0.0.1:0',
    '-c',
    '2',
    '--strategy',
    'roundrobin',
    '--backend',
    `127.0.0.1:${a.port}`,
    '--backend',
    `127.0.0.1:${b.port}`,
    '--status-socket',
    path,
  ]);
  try {
    const clients = 8;
    for (let i = 0; i < clients; i++) {
      const c = await connect(port);
      await readBytes(c, 2);
      c.destroy();
    }
    const s = await statusUntil(
      path,
      (s) => {
        const rows = (
          s.sections?.find((x) => x.title === 'backends')?.data as { backends: BackendRow[] } | undefined
        )?.backends;
        return rows !== undefined && rows.reduce((n, r) => n + r.total, 0) === clients;
      },
      `${clients} connections in the backend totals`,
    );
    const section = s.sections!.find((x) => x.title === 'backends')!;
    const rows = (section.data as { backends: BackendRow[] }).backends;
    assert.deepEqual(rows.map((r) => r.id).sort(), [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`].sort());
    for (const r of rows) {
      assert.deepEqual(r.states, { up: 2 }, 'up in both serving processes');
      assert.equal(r.errors, 0);
    }
    assert.equal(s.workers?.workers.length, 2);
    const table = await runCli(['status', path]);
    assert.match(table.stdout, /backends: 2 \(as seen by 2 serving processes\)/);
    assert.match(table.stdout, /backend +state +weight +active +total +errors/);
    await stopCleanly(daemon);
  } finally {
    await daemon.kill();
    await a.close();
    await b.close();
  }
});

test('gateway: status shows the gateway processes, business workers, sessions and requests in flight', async () => {
  const path = socketPath();
  const { daemon, port } = await startDaemon(
    gatewayArgs('-c', '2', '--business-workers', '2', '--status-socket', path),
  );
  const client = await gatewayClient(port);
  try {
    // A request that waits 3 s is in flight while the status is read.
    const slow = client.client.request(2, Buffer.from('3000'));
    const s = await statusUntil(
      path,
      (s) => {
        const req = s.sections?.find((x) => x.title === 'requests')?.data as { inFlight: number } | undefined;
        return req?.inFlight === 1;
      },
      'one request in flight',
    );
    assert.equal(s.pid, daemon.pid);
    assert.match(s.model, /^gateway -c 2, queue ipc$/);
    assert.equal(s.workers?.workers.length, 2, 'the gateway processes');
    const req = s.sections!.find((x) => x.title === 'requests')!.data as Record<string, number>;
    assert.equal(req.sessions, 1);
    assert.equal(req.stored, 0);
    const biz = s.sections!.find((x) => x.title === 'business workers')!;
    assert.equal(biz.rows?.length, 2);
    await slow;
    const table = await runCli(['status', path]);
    assert.match(table.stdout, /requests: 1 sessions, 0 in flight/);
    assert.match(table.stdout, /business workers: 2 live/);
  } finally {
    await client.close();
    await daemon.kill();
  }
});
