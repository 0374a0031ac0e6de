// Certificates made for a test (openssl, into a temp dir; removed by the caller), and Debian's
// `openssl s_client` as the TLS client, and a counting node `tls` server for the generators' tests.
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type TLSSocket } from 'node:tls';

export interface Pki {
  dir: string;
  ca: string;
  /** CN=NAME with SAN DNS:NAME (and more names), signed by the CA: { cert, key } paths. */
  server(
    name: string,
    opts?: { altNames?: string[]; days?: number; file?: string },
  ): { cert: string; key: string };
  /** A client certificate (CN=NAME) signed by this CA. */
  client(name: string): { cert: string; key: string };
  /** A certificate that expired in 2020. */
  expired(name: string): { cert: string; key: string };
  /** A second CA, trusted by nobody: its clients must be refused. */
  otherCa(): Pki;
  remove(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export function makePki(parent?: string): Pki {
  const dir = mkdtempSync(join(parent ?? tmpdir(), 'tcpdaemon-pki-'));
  openssl(
    ['req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '30', '-subj', '/CN=test-ca'],
    dir,
  );
  let serial = 1;
  const sign = (base: string, subject: string, ext: string, days: number) => {
    openssl(['req', '-new', ...EC, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', subject], dir);
    writeFileSync(join(dir, `${base}.ext`), `${ext}\n`);
    openssl(
      [
        'x509',
        '-req',
        '-in',
        `${base}.csr`,
        '-CA',
        'ca.crt',
        '-CAkey',
        'ca.key',
        '-set_serial',
        String(serial++),
        '-days',
        String(days),
        '-out',
        `${base}.crt`,
        '-extfile',
        `${base}.ext`,
      ],
      dir,
    );
    return { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
  };
  const pki: Pki = {
    dir,
    ca: join(dir, 'ca.crt'),
    server: (name, opts = {}) =>
      sign(
        opts.file ?? name,
        `/CN=${name}`,
        `subjectAltName=${[name, ...(opts.altNames ?? [])].map((n) => `DNS:${n}`).join(',')}`,
        opts.days ?? 30,
      ),
    client: (name) => sign(`client-${name}`, `/CN=${name}`, 'extendedKeyUsage=clientAuth', 30),
    expired: (name) => {
      const base = `expired-${name}`;
      openssl(
        ['req', '-new', ...EC, '-keyout', `${base}.key`, '-out', `${base}.csr`, '-subj', `/CN=${name}`],
        dir,
      );
      writeFileSync(join(dir, 'index.txt'), '');
      writeFileSync(join(dir, 'serial'), '1000\n');
      writeFileSync(
        join(dir, 'ca.cnf'),
        `[ca]\ndefault_ca=d\n[d]\ndir=${dir}\ndatabase=${dir}/index.txt\nnew_certs_dir=${dir}\nserial=${dir}/serial\ndefault_md=sha256\npolicy=p\n[p]\ncommonName=supplied\n`,
      );
      openssl(
        [
          'ca',
          '-batch',
          '-config',
          'ca.cnf',
          '-keyfile',
          'ca.key',
          '-cert',
          'ca.crt',
          '-in',
          `${base}.csr`,
          '-out',
          `${base}.crt`,
          '-startdate',
          '20200101000000Z',
          '-enddate',
          '20200102000000Z',
          '-notext',
        ],
        dir,
      );
      return { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
    },
    otherCa: () => makePki(dir),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
  return pki;
}

export interface SClientResult {
  code: number | null;
  /** What the server sent (s_client -brief prints only the data on stdout). */
  stdout: string;
  /** -brief's summary: 'Protocol version: TLSv1.3', 'Peer certificate: CN = a.test', ... */
  stderr: string;
}

export interface SClientOptions {
  servername?: string;
  alpn?: string;
  cert?: { cert: string; key: string };
  /** Verify the server against this CA (the result is in stderr: 'Verification: OK'). */
  ca?: string;
}

/** `openssl s_client -brief` to 127.0.0.1:port, sends `input`, returns once the server closes. */
export function sClient(
  port: number,
  input: string,
  opts: SClientOptions = {},
  timeoutMs = 15000,
): Promise<SClientResult> {
  const args = ['s_client', '-brief', '-ign_eof', '-connect', `127.0.0.1:${port}`];
  if (opts.servername) args.push('-servername', opts.servername);
  else args.push('-noservername');
  if (opts.alpn) args.push('-alpn', opts.alpn);
  if (opts.cert) args.push('-cert', opts.cert.cert, '-key', opts.cert.key);
  if (opts.ca) args.push('-CAfile', opts.ca, '-verify_return_error');
  const child = spawn('openssl', args, { stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  child.stdin.on('error', () => undefined);
  child.stdin.end(input); // -ign_eof: it waits for the server to close
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`s_client did not finish in ${timeoutMs} ms; stdout: ${stdout}; stderr: ${stderr}`));
    }, timeoutMs);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** What a counting node `tls` server (countingTlsServer) saw. */
export interface TlsCounts {
  port: number;
  /** Handshakes done, how many resumed a session, and the protocols agreed. */
  handshakes: number;
  reused: number;
  protocols: Set<string>;
  /** Connections ended by the client (close_notify or FIN). */
  ends: number;
  close(): Promise<void>;
}

/** node's tls server on 127.0.0.1:0 with `cert` and `key` (files), running `onSocket` on each secured socket. */
export async function countingTlsServer(
  cert: string,
  key: string,
  onSocket: (s: TLSSocket) => void,
): Promise<TlsCounts> {
  const open = new Set<TLSSocket>();
  const server = createTlsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (s) => {
    counts.handshakes += 1;
    if (s.isSessionReused()) counts.reused += 1;
    counts.protocols.add(String(s.getProtocol()));
    open.add(s);
    s.on('end', () => {
      counts.ends += 1;
    });
    s.on('error', () => s.destroy());
    s.on('close', () => open.delete(s));
    onSocket(s);
  });
  const counts: TlsCounts = {
    port: 0,
    handshakes: 0,
    reused: 0,
    protocols: new Set(),
    ends: 0,
    close: () => {
      const closed = new Promise<void>((r) => server.close(() => r()));
      for (const s of open) s.destroy();
      return closed;
    },
  };
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  counts.port = (server.address() as AddressInfo).port;
  return counts;
}
