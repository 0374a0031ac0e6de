// `tcpdaemon --proxy-protocol` in every model: the handler's env names the client of the PROXY
// header; a connection without a valid header (or a slow one) is closed with a logged reason.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { encodeProxyV1, encodeProxyV2, readProxyHeader } from '../src/proxy-protocol/header.js';
import { BIN, FIXTURES, type Listening, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, untilClosed } from './helpers/net.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

checkNoLeftoverProcesses();

const PROXY = { command: [BIN, 'proxy'] };
const REPORT = join(FIXTURES, 'env-report.ts');

async function daemon(args: string[], opts = {}): Promise<Listening> {
  const d = await startDaemon(args, { timeoutMs: 30_000, ...opts });
  cleanup.push(async () => {
    d.daemon.signal('SIGTERM');
    await d.daemon.waitForExit(20_000).catch(() => d.daemon.kill());
  });
  return d;
}

/** Sends `bytes` first, then reads the handler's one-line JSON report. */
async function report(port: number, bytes: Buffer): Promise<Record<string, unknown>> {
  const c = await connect(port);
  c.write(bytes);
  const { data } = await untilClosed(c);
  return JSON.parse(data.split('\n')[0]!) as Record<string, unknown>;
}

const models: [string, string[]][] = [
  ['IOMP -c 1', ['-m', 'IOMP', '-c', '1']],
  ['IOMP -c 2', ['-m', 'IOMP', '-c', '2']],
  ['LF -c 2', ['-m', 'LF', '-c', '2']],
];

describe('tcpdaemon --proxy-protocol', () => {
  for (const [name, model] of models) {
    it(`${name}: env shows the header's client (v1 and v2); a bad or missing header closes with a reason`, async () => {
      const d = await daemon([
        ...model,
        '-l',
        '127.0.0.1:0',
        '-s',
        REPORT,
        '--proxy-protocol',
        '--proxy-header-timeout',
        '0.5',
      ]);
      const v1 = await report(
        d.port,
        encodeProxyV1({ address: '203.0.113.9', port: 5555 }, { address: '127.0.0.1', port: d.port }),
      );
      assert.equal(v1.remoteAddress, '203.0.113.9');
      assert.equal(v1.remotePort, 5555);
      const v2 = await report(
        d.port,
        encodeProxyV2({ address: '2001:db8::7', port: 6000 }, { address: '::1', port: d.port }),
      );
      assert.equal(v2.remoteAddress, '2001:db8::7');
      assert.equal(v2.remotePort, 6000);
      assert.equal(v2.localAddress, '::1', "the header's destination");
      assert.equal(v2.localPort, d.port);
      const local = await report(d.port, encodeProxyV2(undefined, undefined, { local: true }));
      assert.equal(local.remoteAddress, '127.0.0.1');
      assert.equal(local.localAddress, '127.0.0.1', 'LOCAL: the connection itself');
      assert.equal(local.localPort, d.port);

      const plain = await connect(d.port);
      plain.write('GET / HTTP/1.0\r\n\r\n');
      assert.equal((await untilClosed(plain)).data, '');
      const bad = await d.daemon.waitForMsg('PROXY header refused; connection closed');
      assert.match(String(bad.reason), /no PROXY header/);
      const slow = await connect(d.port);
      slow.write('PROXY TCP4 ');
      assert.equal((await untilClosed(slow)).data, '');
      await d.daemon.waitForLog(
        (l) => l.msg === 'PROXY header refused; connection closed' && /within 500 ms/.test(String(l.reason)),
      );
    });
  }
});

describe('tcpdaemon proxy --proxy-protocol --send-proxy: the header going out keeps the original destination', () => {
  for (const version of ['v1', 'v2'] as const) {
    it(`${version}: source and destination are the inbound header's, not the proxy's own`, async () => {
      const seen: string[] = [];
      const backend = createServer(async (s) => {
        s.on('error', () => undefined);
        const r = await readProxyHeader(s, { timeoutMs: 5000 });
        const h = r.ok ? r.header : undefined;
        seen.push(
          h
            ? `${h.source?.address}:${h.source?.port} -> ${h.destination?.address}:${h.destination?.port}`
            : 'none',
        );
        s.end('ok');
      });
      await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
      cleanup.push(() => new Promise((r) => backend.close(r)));
      const port = (backend.address() as AddressInfo).port;
      const p = await daemon(
        ['-l', '127.0.0.1:0', '--backend', `127.0.0.1:${port}`, '--proxy-protocol', '--send-proxy', version],
        PROXY,
      );
      // What a balancer in front says: the client 203.0.113.7:4000 connected to 198.51.100.9:443.
      const c = await connect(p.port);
      c.write(encodeProxyV1({ address: '203.0.113.7', port: 4000 }, { address: '198.51.100.9', port: 443 }));
      assert.equal((await untilClosed(c)).data, 'ok');
      assert.deepEqual(seen, ['203.0.113.7:4000 -> 198.51.100.9:443']);
    });
  }
});

describe('PROXY protocol round trip: tcpdaemon proxy --send-proxy -> tcpdaemon --proxy-protocol', () => {
  for (const version of ['v1', 'v2']) {
    it(`${version}: the daemon's handler sees the client that connected to the proxy`, async () => {
      const d = await daemon(['-l', '127.0.0.1:0', '-s', REPORT, '--proxy-protocol']);
      const p = await daemon(
        ['-l', '127.0.0.1:0', '--backend', `127.0.0.1:${d.port}`, '--send-proxy', version],
        PROXY,
      );
      const c = netConnect({ port: p.port, host: '127.0.0.1', localAddress: '127.0.0.5' });
      await once(c, 'connect');
      const clientPort = c.localPort;
      const { data } = await untilClosed(c);
      const seen = JSON.parse(data.split('\n')[0]!) as Record<string, unknown>;
      assert.equal(seen.remoteAddress, '127.0.0.5');
      assert.equal(seen.remotePort, clientPort);
    });
  }
});
