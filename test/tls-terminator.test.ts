// TlsTerminator in this process, with Debian's openssl s_client as the client: with one certificate
// (no SNI callback) a name the certificate does not carry is still logged, and a reload that goes
// from one certificate to several (and back) gets SNI choosing again.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { pino } from 'pino';
import { readTlsMaterial, type TlsMaterial } from '../src/tls/context.js';
import type { TlsSettings } from '../src/tls/settings.js';
import { TlsTerminator } from '../src/tls/terminator.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { makePki, type Pki, sClient } from './helpers/tls.js';

checkNoLeftoverProcesses();

let pki: Pki;
let a: { cert: string; key: string };
let b: { cert: string; key: string };
before(() => {
  pki = makePki();
  a = pki.server('a.test');
  b = pki.server('b.test');
});
after(() => pki.remove());

function settings(...pairs: { cert: string; key: string }[]): TlsSettings {
  return {
    certs: pairs.map((p) => p.cert),
    keys: pairs.map((p) => p.key),
    ca: null,
    clientAuth: null,
    alpn: [],
    handshakeTimeoutMs: 5000,
  };
}

const UNKNOWN = 'tls server name matches no certificate; default served';

interface Running {
  port: number;
  terminator: TlsTerminator;
  /** The unknown-name lines logged so far, by servername. */
  unknown: string[];
  close(): Promise<void>;
}

/** A net server whose sockets go through a TlsTerminator; each secured socket gets 'ok' and is ended. */
async function terminate(material: TlsMaterial, tls: TlsSettings): Promise<Running> {
  const unknown: string[] = [];
  const logger = pino(
    { level: 'info' },
    {
      write(line: string) {
        const l = JSON.parse(line) as { msg: string; servername?: string };
        if (l.msg === UNKNOWN) unknown.push(String(l.servername));
      },
    },
  );
  const terminator = new TlsTerminator(material, tls, logger);
  terminator.deliverTo({
    secured(socket) {
      socket.on('error', () => socket.destroy());
      socket.end('ok\n');
    },
    remote: () => 'test',
  });
  const server: Server = createServer((raw) => {
    raw.on('error', () => raw.destroy());
    terminator.accept(raw);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    terminator,
    unknown,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

describe('TlsTerminator', () => {
  test('one certificate: served for any name; a name it does not carry is logged, its own name and no SNI are not', async () => {
    const one = settings(a);
    const t = await terminate(readTlsMaterial(one), one);
    try {
      for (const servername of [undefined, 'a.test', 'nobody.example']) {
        const r = await sClient(t.port, '', servername ? { servername } : {});
        assert.match(r.stderr, /Peer certificate: CN = a\.test/, String(servername));
        assert.equal(r.stdout, 'ok\n');
      }
      assert.deepEqual(t.unknown, ['nobody.example']);
    } finally {
      await t.close();
    }
  });

  test('a reload from one certificate to two gets SNI choosing, and back to one serves the default again', async () => {
    const one = settings(a);
    const two = settings(a, b);
    const t = await terminate(readTlsMaterial(one), one);
    try {
      assert.match((await sClient(t.port, '', { servername: 'b.test' })).stderr, /CN = a\.test/);
      t.terminator.update(readTlsMaterial(two));
      const picked = await sClient(t.port, '', { servername: 'b.test' });
      assert.match(picked.stderr, /Peer certificate: CN = b\.test/);
      assert.equal(picked.stdout, 'ok\n');
      assert.match((await sClient(t.port, '', {})).stderr, /Peer certificate: CN = a\.test/);
      t.terminator.update(readTlsMaterial(one));
      const back = await sClient(t.port, '', { servername: 'b.test' });
      assert.match(back.stderr, /Peer certificate: CN = a\.test/);
      assert.equal(back.stdout, 'ok\n');
      // (the second one may still wait in its throttled count: only the first line names it)
      assert.equal(t.unknown[0], 'b.test');
    } finally {
      await t.close();
    }
  });
});
