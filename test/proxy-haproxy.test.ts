// Interop with a real HAProxy (Debian package `haproxy`; .ci/run installs it): HAProxy in
// TCP mode sends PROXY v1/v2 headers to `tcpdaemon proxy --proxy-protocol`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readProxyHeader } from '../src/proxy-protocol/header.js';
import { BIN, FIXTURES, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { untilClosed } from './helpers/net.js';
import { listen } from './helpers/proxy.js';
import { tempDir } from './helpers/temp-dir.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

checkNoLeftoverProcesses();

const PROXY = { command: [BIN, 'proxy'] };
const haproxyMissing = spawnSync('haproxy', ['-v']).error !== undefined;
const tmp = tempDir('tcpdaemon-haproxy-');

/** A port free right now (HAProxy cannot listen on port 0 and tell us which port it got). */
async function freePort(): Promise<number> {
  const s = await listen(() => {});
  await s.close();
  return s.port;
}

/** Runs haproxy in the foreground in TCP mode: bind `port`, one server with `serverOptions`. */
async function haproxy(port: number, server: string, serverOptions: string): Promise<void> {
  const cfg = join(tmp, `haproxy-${port}.cfg`);
  writeFileSync(
    cfg,
    [
      'global',
      '  maxconn 256',
      'defaults',
      '  mode tcp',
      '  timeout connect 2s',
      '  timeout client 10s',
      '  timeout server 10s',
      'frontend fe',
      `  bind 127.0.0.1:${port}`,
      '  default_backend be',
      'backend be',
      `  server s1 ${server} ${serverOptions}`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  cleanup.push(async () => {
    if (child.exitCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  // Ready when it accepts a connection.
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`haproxy exited: ${stderr}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`haproxy did not listen on ${port}: ${stderr}`);
}

describe('HAProxy interop', {
  skip: haproxyMissing && 'haproxy is not installed (apt-get install -y haproxy)',
}, () => {
  for (const model of [
    ['-m', 'IOMP', '-c', '1'],
    ['-m', 'LF', '-c', '2'],
  ]) {
    it(`HAProxy send-proxy-v2 -> tcpdaemon ${model.slice(1).join(' ')} --proxy-protocol: env shows the real client`, async () => {
      const d = await startDaemon(
        [...model, '-l', '127.0.0.1:0', '-s', join(FIXTURES, 'env-report.ts'), '--proxy-protocol'],
        {
          timeoutMs: 30_000,
        },
      );
      cleanup.push(async () => {
        d.daemon.signal('SIGTERM');
        await d.daemon.waitForExit(20_000).catch(() => d.daemon.kill());
      });
      const port = await freePort();
      await haproxy(port, `127.0.0.1:${d.port}`, 'send-proxy-v2');
      const c = netConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.9' });
      await once(c, 'connect');
      const clientPort = c.localPort;
      const { data } = await untilClosed(c);
      const seen = JSON.parse(data.split('\n')[0]!) as Record<string, unknown>;
      assert.equal(seen.remoteAddress, '127.0.0.9');
      assert.equal(seen.remotePort, clientPort);
      assert.equal(
        d.daemon.logs.filter((l) => l.msg === 'PROXY header refused; connection closed').length,
        0,
      );
    });
  }

  for (const [option, version] of [
    ['send-proxy-v2', 2],
    ['send-proxy', 1],
  ] as const) {
    it(`HAProxy ${option} -> tcpdaemon proxy --proxy-protocol: the backend learns the real client`, async () => {
      const seen: string[] = [];
      const backend = await listen(async (s) => {
        const r = await readProxyHeader(s, { timeoutMs: 5000 });
        seen.push(r.ok ? `${r.remoteAddress}:${r.remotePort}` : r.reason);
        s.on('data', (d) => s.write(d));
        s.on('end', () => s.end());
      });
      cleanup.push(() => backend.close());
      const ours = await startDaemon(
        [
          '-l',
          '127.0.0.1:0',
          '--backend',
          `127.0.0.1:${backend.port}`,
          '--proxy-protocol',
          '--send-proxy',
          'v1',
        ],
        PROXY,
      );
      cleanup.push(() => ours.daemon.kill());
      const port = await freePort();
      await haproxy(port, `127.0.0.1:${ours.port}`, option);
      // HAProxy's readiness probe above went through it to us; wait for what we saw of it.
      const c = netConnect({ port, host: '127.0.0.1', localAddress: '127.0.0.8' });
      await once(c, 'connect');
      const clientPort = c.localPort;
      c.end(`through HAProxy v${version}`);
      assert.equal((await untilClosed(c)).data, `through HAProxy v${version}`);
      assert.ok(seen.includes(`127.0.0.8:${clientPort}`), `backend saw ${JSON.stringify(seen)}`);
      assert.equal(
        ours.daemon.logs.filter((l) => l.msg === 'PROXY header refused; connection closed').length,
        0,
      );
    });
  }
});
