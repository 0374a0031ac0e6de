// Certificate hot swap: SIGHUP re-reads the files; new handshakes get the new certificate, none
// fails meanwhile, an open connection goes on; a broken new certificate keeps the old one serving.
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { type DaemonProcess, FIXTURES, modelArgs, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { makePki, type Pki } from './helpers/tls.js';

checkNoLeftoverProcesses();
const REPORT = `${FIXTURES}/tls-report.mjs`;

let pki: Pki;
let v1: { cert: string; key: string };
let v2: { cert: string; key: string };
before(() => {
  pki = makePki();
  v1 = pki.server('svc.test', { file: 'v1' });
  v2 = pki.server('svc.test', { file: 'v2' });
});
after(() => pki.remove());

const pids: number[] = [];
const fingerprint = (file: string) => new X509Certificate(readFileSync(file)).fingerprint256;

function open(port: number): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ port, host: '127.0.0.1', servername: 'svc.test', ca: readFileSync(pki.ca) });
    s.once('secureConnect', () => resolve(s));
    s.once('error', reject);
  });
}

/** One connection: handshake, one echo, close. Resolves with the certificate it was served. */
async function once(port: number): Promise<string> {
  const s = await open(port);
  const served = s.getPeerCertificate().fingerprint256;
  s.setEncoding('utf8');
  let data = '';
  s.on('data', (d: string) => {
    data += d;
  });
  s.write('ping BYE\n');
  await new Promise<void>((resolve, reject) => {
    s.once('end', resolve);
    s.once('error', reject);
  });
  s.destroy();
  assert.ok(data.endsWith('ping BYE\n'), `echoed: ${JSON.stringify(data)}`);
  pids.push(JSON.parse(data.split('\n')[0]!).pid);
  return served;
}

interface Loop {
  served: string[];
  failures: Error[];
  stop(): Promise<void>;
}

/** Connects one after another until stopped (at most `max` connections). */
function connectLoop(port: number, max = 2000): Loop {
  const loop: Loop = { served: [], failures: [], stop: async () => undefined };
  let stopped = false;
  const done = (async () => {
    while (!stopped && loop.served.length + loop.failures.length < max) {
      try {
        loop.served.push(await once(port));
      } catch (err) {
        loop.failures.push(err as Error);
      }
    }
  })();
  loop.stop = async () => {
    stopped = true;
    await done;
  };
  return loop;
}

async function until(pred: () => boolean, what: string, timeoutMs = 20000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

for (const [model, workers] of [
  ['IOMP', 1],
  ['IOMP', 2],
  ['LF', 2],
  ['TLF', 2],
] as const) {
  test(`${model} -c ${workers}: SIGHUP swaps the certificate under a connect loop; a broken one keeps the old`, async () => {
    const dir = pki.dir;
    const cert = join(dir, `live-${model}-${workers}.crt`);
    const key = join(dir, `live-${model}-${workers}.key`);
    copyFileSync(v1.cert, cert);
    copyFileSync(v1.key, key);
    let daemon: DaemonProcess | undefined;
    try {
      let port: number;
      ({ daemon, port } = await startDaemon(
        modelArgs(model, workers, REPORT, '--tls-cert', cert, '--tls-key', key),
      ));
      const held = await open(port);
      assert.equal(held.getPeerCertificate().fingerprint256, fingerprint(v1.cert));
      const loop = connectLoop(port);
      await until(() => loop.served.length >= 5, 'connections before the swap');

      copyFileSync(v2.cert, cert);
      copyFileSync(v2.key, key);
      daemon.signal('SIGHUP');
      await daemon.waitForMsg('tls certificates reloaded');
      const seenBefore = loop.served.length;
      await until(
        () => loop.served.slice(seenBefore).includes(fingerprint(v2.cert)),
        'a handshake with the new certificate',
      );
      // Worker models: each worker serves the certificates it started with until it is replaced.
      if (workers > 1) await daemon.waitForMsg('reload done');
      const v2print = fingerprint(v2.cert);
      await until(
        () => loop.served.length >= seenBefore + 5 && loop.served.slice(-5).every((f) => f === v2print),
        'five handshakes in a row with the new certificate',
      );
      await loop.stop();
      assert.deepEqual(loop.failures, [], 'no failed handshake during the swap');
      assert.equal(
        loop.served.at(-1),
        fingerprint(v2.cert),
        `the new certificate is served afterwards: ${loop.served.map((f) => (f === fingerprint(v2.cert) ? 2 : 1)).join('')}\n${pids.join(' ')}\n${daemon.stdoutLines.join('\n')}`,
      );

      // The connection opened before the swap is still served.
      held.setEncoding('utf8');
      let data = '';
      held.on('data', (d: string) => {
        data += d;
      });
      held.write('still here BYE\n');
      await new Promise((r) => held.once('end', r));
      assert.ok(data.endsWith('still here BYE\n'), data);

      // A broken certificate: logged with the file, the current one goes on serving, nothing crashes.
      writeFileSync(cert, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
      daemon.signal('SIGHUP');
      const failed = await daemon.waitForMsg('tls reload failed; still serving the previous certificates');
      assert.equal(failed.file, cert);
      assert.equal(failed.reason, 'is not a PEM certificate');
      if (workers > 1)
        await daemon.waitForLog(
          (l) => l.msg === 'reload done' && daemon!.logs.filter((m) => m.msg === 'reload done').length >= 2,
        );
      assert.equal(await once(port), fingerprint(v2.cert));
      assert.equal(await once(port), fingerprint(v2.cert));
      const crashed = daemon.logs.filter((l) => l.msg === 'worker exited' && l.reason === 'crashed');
      assert.deepEqual(crashed, []);
    } finally {
      await daemon?.kill();
    }
  });
}

test('the days each certificate has left are logged at start and on reload; under 14 days as a warning', async () => {
  const cert = join(pki.dir, 'expiry.crt');
  const key = join(pki.dir, 'expiry.key');
  copyFileSync(v1.cert, cert);
  copyFileSync(v1.key, key);
  const soon = pki.server('svc.test', { file: 'soon', days: 3 });
  let daemon: DaemonProcess | undefined;
  try {
    ({ daemon } = await startDaemon(modelArgs('IOMP', 1, REPORT, '--tls-cert', cert, '--tls-key', key)));
    const start = await daemon.waitForMsg('tls certificate');
    assert.equal(start.cert, cert);
    assert.equal(start.level, 'info');
    // Signed for 30 days just now: 29 whole days and some hours left.
    assert.equal(start.daysLeft, 29);

    copyFileSync(soon.cert, cert);
    copyFileSync(soon.key, key);
    daemon.signal('SIGHUP');
    const warned = await daemon.waitForMsg('tls certificate expires in 2 days');
    assert.equal(warned.cert, cert);
    assert.equal(warned.level, 'warn');
    assert.equal(warned.daysLeft, 2);
    assert.deepEqual(warned.names, ['svc.test']);
    await daemon.waitForMsg('tls certificates reloaded');
  } finally {
    await daemon?.kill();
  }
});
