// The proxy with TLS: a TLS front (termination in its workers) to plaintext backends, and a
// plaintext front to TLS backends (--backend-tls: CA, SNI name, client certificate).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, test } from 'node:test';
import { connect as tlsConnect } from 'node:tls';
import { BIN, FIXTURES, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, untilClosed } from './helpers/net.js';
import { taggedEcho } from './helpers/proxy.js';
import { makePki, type Pki } from './helpers/tls.js';

checkNoLeftoverProcesses();
const PROXY = { command: [BIN, 'proxy'] };
let pki: Pki;
let a: { cert: string; key: string };
let alice: { cert: string; key: string };
before(() => {
  pki = makePki();
  a = pki.server('a.test');
  alice = pki.client('alice');
});
after(() => pki.remove());

for (const workers of [1, 2]) {
  test(`proxy -c ${workers}: a TLS front to plaintext backends (openssl s_client)`, async () => {
    const backend = await taggedEcho('plain-backend');
    const front = await startDaemon(
      [
        '-l',
        '127.0.0.1:0',
        '-c',
        String(workers),
        '--backend',
        `127.0.0.1:${backend.port}`,
        '--tls-cert',
        a.cert,
        '--tls-key',
        a.key,
      ],
      PROXY,
    );
    try {
      const s = tlsConnect({
        port: front.port,
        host: '127.0.0.1',
        servername: 'a.test',
        ca: readFileSync(pki.ca),
      });
      s.setEncoding('utf8');
      s.write('through\n');
      let got = '';
      await new Promise<void>((resolve, reject) => {
        s.on('data', (d: string) => {
          got += d;
          if (got.includes('through\n')) resolve();
        });
        s.once('error', reject);
      });
      assert.equal(s.getPeerCertificate().subject.CN, 'a.test');
      assert.equal(got, 'plain-backend\nthrough\n');
      s.destroy();
    } finally {
      await front.daemon.kill();
      await backend.close();
    }
  });
}

test('proxy: a plaintext front to a TLS backend (--backend-tls with CA, SNI name and client certificate)', async () => {
  const backend = await startDaemon([
    '-l',
    '127.0.0.1:0',
    '-s',
    `${FIXTURES}/tls-report.mjs`,
    '--tls-cert',
    a.cert,
    '--tls-key',
    a.key,
    '--tls-ca',
    pki.ca,
    '--tls-client-auth',
    'require',
  ]);
  const front = await startDaemon(
    [
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${backend.port}`,
      '--backend-tls',
      '--backend-tls-ca',
      pki.ca,
      '--backend-tls-servername',
      'a.test',
      '--backend-tls-cert',
      alice.cert,
      '--backend-tls-key',
      alice.key,
      '--health-interval',
      '0',
    ],
    PROXY,
  );
  // A front whose CA does not vouch for the backend: the connect fails, the client is closed, logged.
  const other = pki.otherCa();
  const distrust = await startDaemon(
    [
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${backend.port}`,
      '--backend-tls',
      '--backend-tls-ca',
      other.ca,
      '--backend-tls-servername',
      'a.test',
      '--health-interval',
      '0',
      '--retries',
      '0',
    ],
    PROXY,
  );
  try {
    const s = await connect(front.port);
    s.write('hello BYE\n');
    const { data } = await untilClosed(s);
    const [line, echoed] = data.split('\n');
    const rep = JSON.parse(line!) as { encrypted: boolean; tls: Record<string, unknown> };
    assert.equal(rep.encrypted, true);
    assert.equal(rep.tls.servername, 'a.test');
    assert.equal(rep.tls.peerSubject, 'CN=alice');
    assert.equal(rep.tls.authorized, true);
    assert.equal(echoed, 'hello BYE');

    const refused = await connect(distrust.port);
    refused.write('x BYE\n');
    assert.equal((await untilClosed(refused)).data, '');
    const line2 = await distrust.daemon.waitForMsg('client closed: no backend could take it');
    assert.match(String(line2.reason), /CERT/);
  } finally {
    await distrust.daemon.kill();
    await front.daemon.kill();
    await backend.daemon.kill();
  }
});
