// The gateway over TLS: its gateway processes terminate TLS; MessageClient speaks TLS (tls option).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import pino from 'pino';
import { MessageClient } from '../src/message/index.js';
import { BIN, withDaemon } from './helpers/daemon.js';
import { gatewayArgs } from './helpers/gateway.js';
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

test('gateway -c 2 with --tls-cert: MessageClient requests over TLS; a plaintext client is refused, logged', async () => {
  await withDaemon(
    gatewayArgs('-c', '2', '--business-workers', '1', '--tls-cert', a.cert, '--tls-key', a.key),
    async ({ port, daemon }) => {
      const client = new MessageClient({
        port,
        codec: 'seq',
        reconnect: false,
        logger: pino({ level: 'silent' }),
        tls: { ca: readFileSync(pki.ca), servername: 'gw.test' },
      });
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
