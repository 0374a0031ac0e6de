// The TLS context builder: reads the certificate, key and CA files a command was given, checks each
// pair (readable PEM, key matches certificate, valid now), learns each certificate's own names
// (SAN DNS entries, else its CN) for SNI, and builds the secure contexts a terminator serves with.
// The first pair is the default (clients without SNI, or naming no certificate's name).
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import { describeErrno, TlsConfigError } from '../errors.js';
import type { Logger } from '../types.js';
import type { TlsSettings } from './settings.js';

/** Under this many days left, the expiry line is a warning. */
export const EXPIRY_WARN_DAYS = 14;

/** One certificate (chain) and its key, as read and checked. */
export interface CertPair {
  certFile: string;
  keyFile: string;
  /** PEM text. */
  cert: string;
  key: string;
  /** Lower-case DNS names ('*.example.com' for a wildcard) the certificate is valid for. */
  names: string[];
  /** ISO time the certificate expires. */
  notAfter: string;
}

/** Everything a terminator needs, read from disk once (start, reload). Plain JSON. */
export interface TlsMaterial {
  pairs: CertPair[];
  /** PEM CA bundle for client certificates. */
  ca: string | null;
}

const DAY_MS = 86_400_000;

function readPem(file: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new TlsConfigError(file, `cannot read: ${describeErrno(err)}`);
  }
}

/** The (cert, key) file pairs: files paired with keys in order, directories expanded (NAME.crt + NAME.key, by name). */
function filePairs(settings: TlsSettings): { certFile: string; keyFile: string }[] {
  const out: { certFile: string; keyFile: string }[] = [];
  let k = 0;
  for (const entry of settings.certs) {
    let dir = false;
    try {
      dir = statSync(entry).isDirectory();
    } catch (err) {
      throw new TlsConfigError(entry, `cannot read: ${describeErrno(err)}`);
    }
    if (!dir) {
      const keyFile = settings.keys[k++];
      if (keyFile === undefined)
        throw new TlsConfigError(entry, 'has no --tls-key (one per certificate file, in order)');
      out.push({ certFile: entry, keyFile });
      continue;
    }
    const names = readdirSync(entry)
      .filter((n) => n.endsWith('.crt'))
      .sort();
    if (names.length === 0) throw new TlsConfigError(entry, 'holds no NAME.crt + NAME.key pair');
    for (const n of names)
      out.push({ certFile: join(entry, n), keyFile: join(entry, `${n.slice(0, -4)}.key`) });
  }
  if (k < settings.keys.length)
    throw new TlsConfigError(settings.keys[k]!, 'is a --tls-key without a --tls-cert file at its position');
  return out;
}

/** DNS names of a certificate: its subjectAltName DNS entries, else its subject CN. */
export function certificateNames(x509: X509Certificate): string[] {
  const san = x509.subjectAltName;
  if (san) {
    const dns = san
      .split(', ')
      .filter((e) => e.startsWith('DNS:'))
      .map((e) => e.slice(4).toLowerCase());
    if (dns.length > 0) return dns;
  }
  const cn = /^CN=(.*)$/m.exec(x509.subject)?.[1];
  return cn ? [cn.toLowerCase()] : [];
}

function readPair(certFile: string, keyFile: string, now: number): CertPair {
  const cert = readPem(certFile);
  const key = readPem(keyFile);
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch {
    throw new TlsConfigError(certFile, 'is not a PEM certificate');
  }
  let privateKey: ReturnType<typeof createPrivateKey>;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    const encrypted = /passphrase/i.test((err as Error).message);
    throw new TlsConfigError(
      keyFile,
      encrypted ? 'is encrypted (give an unencrypted key)' : 'is not a PEM private key',
    );
  }
  if (!x509.checkPrivateKey(privateKey))
    throw new TlsConfigError(keyFile, `does not match the certificate ${certFile}`);
  const notAfter = Date.parse(x509.validTo);
  if (notAfter <= now) throw new TlsConfigError(certFile, `expired on ${new Date(notAfter).toISOString()}`);
  const notBefore = Date.parse(x509.validFrom);
  if (notBefore > now)
    throw new TlsConfigError(certFile, `is not valid before ${new Date(notBefore).toISOString()}`);
  return {
    certFile,
    keyFile,
    cert,
    key,
    names: certificateNames(x509),
    notAfter: new Date(notAfter).toISOString(),
  };
}

/** Reads and checks every file; throws TlsConfigError naming the first file at fault. */
export function readTlsMaterial(settings: TlsSettings, now = Date.now()): TlsMaterial {
  const pairs = filePairs(settings).map((p) => readPair(p.certFile, p.keyFile, now));
  let ca: string | null = null;
  if (settings.ca !== null) {
    ca = readPem(settings.ca);
    try {
      new X509Certificate(ca);
    } catch {
      throw new TlsConfigError(settings.ca, 'is not a PEM certificate');
    }
  }
  // Anything openssl refuses beyond the checks above (a broken chain PEM) is caught here, not at the first handshake.
  for (const p of pairs) contextOf(p, ca);
  return { pairs, ca };
}

function contextOf(pair: CertPair, ca: string | null): SecureContext {
  try {
    return createSecureContext({ cert: pair.cert, key: pair.key, ...(ca ? { ca } : {}) });
  } catch (err) {
    throw new TlsConfigError(pair.certFile, (err as Error).message);
  }
}

/** The secure contexts of one material: the default and one per certificate name. */
export class ServerContexts {
  readonly default: SecureContext;
  readonly #exact = new Map<string, SecureContext>();
  /** '*.example.com' is kept under 'example.com'. */
  readonly #wildcard = new Map<string, SecureContext>();

  constructor(material: TlsMaterial) {
    const built = material.pairs.map((p) => contextOf(p, material.ca));
    this.default = built[0]!;
    material.pairs.forEach((p, i) => {
      for (const name of p.names) {
        const map = name.startsWith('*.') ? this.#wildcard : this.#exact;
        const key = name.startsWith('*.') ? name.slice(2) : name;
        if (!map.has(key)) map.set(key, built[i]!); // the first certificate naming it wins
      }
    });
  }

  /** The context for an SNI name, or undefined when no certificate names it. */
  lookup(servername: string): SecureContext | undefined {
    const name = servername.toLowerCase();
    const exact = this.#exact.get(name);
    if (exact) return exact;
    const dot = name.indexOf('.');
    return dot > 0 ? this.#wildcard.get(name.slice(dot + 1)) : undefined;
  }
}

/** One line per certificate with its days left; a warning under EXPIRY_WARN_DAYS. */
export function logExpiry(material: TlsMaterial, logger: Logger, now = Date.now()): void {
  for (const p of material.pairs) {
    const daysLeft = Math.floor((Date.parse(p.notAfter) - now) / DAY_MS);
    const fields = { cert: p.certFile, names: p.names, notAfter: p.notAfter, daysLeft };
    if (daysLeft < EXPIRY_WARN_DAYS)
      logger.warn(fields, `tls certificate expires in ${daysLeft} day${daysLeft === 1 ? '' : 's'}`);
    else logger.info(fields, 'tls certificate');
  }
}
