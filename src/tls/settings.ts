// The TLS fields of a command (platform/shared-fields.ts) as one plain-JSON value: what the daemon
// validates at start, reads the files of, and hands to its workers.
import { ParamError } from '../errors.js';
import type { Read } from '../platform/fields.js';

export type TlsClientAuth = 'request' | 'require';

/** The TLS fields of a command that serves (the daemon's, the proxy front's, the gateway's client side). */
export interface TlsParams {
  /** `--tls-cert`: PEM certificate files (chain after each) or directories of NAME.crt + NAME.key; the first is the default, SNI picks by the certificates' names. */
  tlsCert?: string | string[];
  /** `--tls-key`: the key of each certificate file, in order. */
  tlsKey?: string | string[];
  /** `--tls-ca`: CA bundle client certificates must chain to. */
  tlsCa?: string;
  /** `--tls-client-auth`: request or require a client certificate (needs tlsCa). */
  tlsClientAuth?: 'request' | 'require';
  /** `--tls-alpn`: ALPN protocols offered, preferred first. */
  tlsAlpn?: string | string[];
  /** `--tls-handshake-timeout`: seconds a TLS handshake may take. Default 10. */
  tlsHandshakeTimeout?: number;
}

export interface TlsSettings {
  /** Absolute paths: each a PEM certificate (chain), or a directory of NAME.crt + NAME.key pairs. The first is the default. */
  certs: string[];
  /** The keys of the certificate files (not directories), in their order. */
  keys: string[];
  /** CA bundle client certificates must chain to. */
  ca: string | null;
  clientAuth: TlsClientAuth | null;
  /** Offered ALPN protocols; empty = no ALPN. */
  alpn: string[];
  handshakeTimeoutMs: number;
}

/** The TLS settings from a command's read fields; undefined when --tls-cert is absent. Throws ParamError. */
export function readTlsSettings(read: Read): TlsSettings | undefined {
  const certs = (read.tlsCert as string[] | undefined) ?? [];
  const keys = (read.tlsKey as string[] | undefined) ?? [];
  const ca = read.tlsCa as string | undefined;
  const clientAuth = read.tlsClientAuth as TlsClientAuth | undefined;
  const alpn = (read.tlsAlpn as string[] | undefined) ?? [];
  if (certs.length === 0) {
    const given = ['tlsKey', 'tlsCa', 'tlsClientAuth', 'tlsAlpn', 'tlsHandshakeTimeout'].find(
      (k) => read[k] !== undefined,
    );
    if (given !== undefined) throw new ParamError(`${given} needs tlsCert (--tls-cert FILE)`);
    return undefined;
  }
  // A directory entry takes no key (checked when the files are read: src/tls/context.ts).
  if (keys.length > certs.length)
    throw new ParamError(`tlsKey (--tls-key) is given ${keys.length} times for ${certs.length} --tls-cert`);
  if (clientAuth !== undefined && ca === undefined)
    throw new ParamError('tlsClientAuth (--tls-client-auth) needs tlsCa (--tls-ca FILE)');
  if (ca !== undefined && clientAuth === undefined)
    throw new ParamError('tlsCa (--tls-ca) needs tlsClientAuth (--tls-client-auth request|require)');
  for (const p of alpn) {
    if (Buffer.byteLength(p) > 255)
      throw new ParamError(`tlsAlpn (--tls-alpn) '${p}' is longer than 255 bytes`);
  }
  return {
    certs,
    keys,
    ca: ca ?? null,
    clientAuth: clientAuth ?? null,
    alpn,
    handshakeTimeoutMs: Math.round(((read.tlsHandshakeTimeout as number | undefined) ?? 10) * 1000),
  };
}
