// The gateway over TLS: its gateway processes terminate TLS; MessageClient speaks TLS (tls option).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import pino from 'pino';
import { MessageClient } from '../src/message/index.js';
import { BIN, DaemonProcess, stopCleanly, withDaemon } from './helpers/daemon.js';
import { BUSINESS, gatewayArgs, gatewayClient, startNats } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { makePki, type Pki, sClient } from './helpers/tls.js';

checkNoLeftoverProcesses();
let pki: Pki;
let a: { cert: string; key: string };
before(() => {
  pki = makePki();
  a = pki.server('gw.test');
});
after(() => pki.remove());

/** A MessageClient over TLS that trusts the test CA and asks for gw.test. */
const tlsMessageClient = (port: number) =>
  new MessageClient({
    port,
    codec: 'seq',
    reconnect: false,
    logger: pino({ level: 'silent' }),
    tls: { ca: readFileSync(pki.ca), servername: 'gw.test' },
  });

test('gateway -c 2 with --tls-cert: MessageClient requests over TLS; a plaintext client is refused, logged', async () => {
  await withDaemon(
    gatewayArgs('-c', '2', '--business-workers', '1', '--tls-cert', a.cert, '--tls-key', a.key),
    async ({ port, daemon }) => {
      const client = tlsMessageClient(port);
      await client.connect();
      try {
        for (let i = 0; i < 5; i++)
          assert.equal((await client.request(1, `ping ${i}`)).toString(), `ping ${i}`);
      } finally {
        await client.close();
      }
      // Not TLS: the gateway process closes it and says why.
      const plain = new MessageClient({
        port,
        codec: 'seq',
        reconnect: false,
        logger: pino({ level: 'silent' }),
      });
      await plain.connect();
      await assert.rejects(plain.request(1, 'x'));
      await plain.close();
      await daemon.waitForLog(
        (l) =>
          l.msg === 'tls handshake failed; connection closed' &&
          l.reason === 'not a TLS client hello (plaintext client?)',
      );
      // openssl sees the gateway's certificate.
      const r = await sClient(port, '', { servername: 'gw.test', ca: pki.ca }, 3000).catch((e: Error) => ({
        stderr: e.message,
      }));
      assert.match(r.stderr, /Peer certificate: CN = gw\.test/);
    },
    { command: [BIN] },
  );
});

test('MessageClient with tls: a server whose certificate does not verify is a failed connect', async () => {
  await withDaemon(
    gatewayArgs('--business-workers', '1', '--tls-cert', a.cert, '--tls-key', a.key),
    async ({ port }) => {
      const client = new MessageClient({
        port,
        codec: 'seq',
        reconnect: false,
        logger: pino({ level: 'silent' }),
        tls: { ca: readFileSync(pki.otherCa().ca), servername: 'gw.test' },
      });
      await assert.rejects(client.connect(), /CERT|certificate/i);
      await client.close();
    },
  );
});

test('gateway and worker reach a TLS-only nats-server with --queue-tls-ca', async () => {
  // The NATS client checks the server's certificate against the URL's host: an IP SAN.
  const natsCert = pki.server('localhost', { file: 'nats' });
  writeFileSync(join(pki.dir, 'nats-ip.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  execFileSync(
    'openssl',
    [
      'x509',
      '-req',
      '-in',
      join(pki.dir, 'nats.csr'),
      '-CA',
      pki.ca,
      '-CAkey',
      join(pki.dir, 'ca.key'),
      '-set_serial',
      '77',
      '-days',
      '30',
      '-out',
      natsCert.cert,
      '-extfile',
      join(pki.dir, 'nats-ip.ext'),
    ],
    { stdio: 'ignore' },
  );
  const nats = await startNats(undefined, ['--tls', '--tlscert', natsCert.cert, '--tlskey', natsCert.key]);
  const worker = new DaemonProcess(['worker', '-s', BUSINESS, '--queue', nats.url, '--queue-tls-ca', pki.ca]);
  try {
    await worker.waitForMsg('workers ready');
    const args = ['gateway', '-l', '127.0.0.1:0', '--queue', nats.url, '--queue-tls-ca', pki.ca];
    await withDaemon(args, async ({ port }) => {
      const c = await gatewayClient(port);
      try {
        assert.equal((await c.client.request(1, 'over tls nats')).toString(), 'over tls nats');
      } finally {
        await c.close();
      }
    });
    // A graceful stop while NATS is still up: a killed worker command's business process would
    // drain against a stopped NATS until its own grace runs out (and outlive the test).
    await stopCleanly(worker);
  } finally {
    await worker.kill();
    await nats.stop();
  }
});

const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

/** The certificate the gateway serves a new TLS connection now (its SHA-256 fingerprint). */
function servedCertificate(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'gw.test', ca: readFileSync(pki.ca) }, () => {
      resolve(s.getPeerCertificate().fingerprint256);
      s.destroy();
    });
    s.once('error', reject);
  });
}

for (const queue of ['ipc', 'nats'] as const) {
  test(`gateway -c 2 (queue ${queue}): SIGHUP swaps the certificate for new handshakes; an open session goes on`, async () => {
    const b = pki.server('gw.test', { file: `gw-b-${queue}` });
    const cert = join(pki.dir, `live-${queue}.crt`);
    const key = join(pki.dir, `live-${queue}.key`);
    copyFileSync(a.cert, cert);
    copyFileSync(a.key, key);
    const nats = queue === 'nats' ? await startNats() : undefined;
    const worker = nats && new DaemonProcess(['worker', '-s', BUSINESS, '--queue', nats.url]);
    try {
      await worker?.waitForMsg('workers ready');
      const front = nats ? ['gateway', '-l', '127.0.0.1:0', '--queue', nats.url] : gatewayArgs();
      await withDaemon(
        [...front, '-c', '2', '--tls-cert', cert, '--tls-key', key],
        async ({ port, daemon }) => {
          const held = tlsMessageClient(port);
          await held.connect();
          try {
            assert.equal((await held.request(1, 'before')).toString(), 'before');
            assert.equal(await servedCertificate(port), fingerprint(a.cert));
            copyFileSync(b.cert, cert);
            copyFileSync(b.key, key);
            daemon.signal('SIGHUP');
            await daemon.waitForMsg('tls certificates reloaded');
            // Each gateway process swaps when its message arrives: a few handshakes may come first.
            const served: string[] = [];
            while (
              served.length < 200 &&
              served.slice(-4).filter((f) => f === fingerprint(b.cert)).length < 4
            )
              served.push(await servedCertificate(port));
            assert.deepEqual(
              served.slice(-4),
              Array(4).fill(fingerprint(b.cert)),
              'new handshakes get the new certificate',
            );
            assert.equal((await held.request(1, 'after')).toString(), 'after', 'the open session goes on');
          } finally {
            await held.close();
          }
        },
        { command: [BIN] },
      );
      if (worker) await stopCleanly(worker);
    } finally {
      await worker?.kill();
      await nats?.stop();
    }
  });
}
