// TLS termination of accepted sockets, where the handler runs: one never-listening tls.Server per
// process is handed each raw socket (after its PROXY header) and gives back the TLSSocket once the
// handshake is done. A handshake that fails, stalls or presents no acceptable client certificate
// costs only its connection and one throttled log line per reason.
//
// With one certificate there is no SNI callback: node turns OpenSSL's certificate callback on for
// one, which stops every handshake to call into JS and back (the name then only decides the log
// line, read from the finished socket). With several, the callback picks the context.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { createServer, type SecureContext, type Server, type TLSSocket } from 'node:tls';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { ServerContexts, type TlsMaterial } from './context.js';
import type { TlsSettings } from './settings.js';

/**
 * Who gets the TLSSocket of each raw socket handed to accept(): one per terminator (its
 * ConnectionRunner), set once, so a handshake costs no object, closure, string or property of its own.
 */
export interface TlsAcceptor {
  /** The handshake of `raw` is done (never called on failure). */
  secured(socket: TLSSocket, raw: Socket): void;
  /** The peer as log lines name it ('address:port'); asked only when something is logged. */
  remote(raw: Socket): string;
}

/** node keeps the wrapped socket there (lib/_tls_wrap.js): how a TLSSocket leads back to its raw socket. */
type WithParent = TLSSocket & { _parent?: Socket };

/** Distinct reasons logged separately; more share the last one's line. */
const MAX_REASONS = 16;

/** Log lines per reason, each throttled (first at once, then a count per second). */
class ReasonLog {
  readonly #counts = new Map<string, ThrottledCount>();
  constructor(
    private readonly logger: Logger,
    private readonly msg: string,
  ) {}
  add(reason: string, fields: Record<string, unknown>): void {
    const key = this.#counts.size < MAX_REASONS || this.#counts.has(reason) ? reason : 'other';
    let count = this.#counts.get(key);
    if (!count) {
      count = new ThrottledCount(this.logger, this.msg, undefined, { reason: key });
      this.#counts.set(key, count);
    }
    count.add({ ...fields, reason });
  }
}

/** What a handshake error means, for the log. */
function describeTlsError(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ERR_SSL_WRONG_VERSION_NUMBER':
    case 'ERR_SSL_HTTP_REQUEST':
    case 'ERR_SSL_UNSUPPORTED_PROTOCOL':
      return 'not a TLS client hello (plaintext client?)';
    case 'ERR_TLS_HANDSHAKE_TIMEOUT':
      return 'handshake timeout';
    case 'ERR_SSL_NO_APPLICATION_PROTOCOL':
      return 'no ALPN protocol in common';
    case 'ECONNRESET':
      return 'peer closed during the handshake';
    default:
      return err.code ?? err.message;
  }
}

/** Session ticket key bytes node takes (tls.Server ticketKeys). */
const TICKET_KEYS_BYTES = 48;

export class TlsTerminator {
  #contexts: ServerContexts;
  #server: Server;
  /** Whether #server has the SNI callback (more than one certificate). */
  #bySni: boolean;
  readonly #settings: TlsSettings;
  /** Kept across the servers a reload may replace, so sessions stay resumable. */
  readonly #ticketKeys: Buffer;
  readonly #require: boolean;
  readonly #failures: ReasonLog;
  readonly #refusals: ReasonLog;
  readonly #unknownName: ThrottledCount;
  #acceptor: TlsAcceptor | undefined;

  constructor(material: TlsMaterial, settings: TlsSettings, logger: Logger, ticketKeys?: Buffer) {
    this.#contexts = new ServerContexts(material);
    this.#settings = settings;
    this.#ticketKeys = ticketKeys ?? randomBytes(TICKET_KEYS_BYTES);
    this.#require = settings.clientAuth === 'require';
    this.#failures = new ReasonLog(logger, 'tls handshake failed; connection closed');
    this.#refusals = new ReasonLog(logger, 'tls client certificate refused; connection closed');
    this.#unknownName = new ThrottledCount(logger, 'tls server name matches no certificate; default served');
    this.#bySni = material.pairs.length > 1;
    this.#server = this.#createServer(material);
  }

  /** A never-listening server for `material`; handshakes it started finish on it after a reload replaced it. */
  #createServer(material: TlsMaterial): Server {
    const settings = this.#settings;
    const server = createServer({
      ...this.#defaultOptions(material),
      handshakeTimeout: settings.handshakeTimeoutMs,
      // Verified here (secureConnection) rather than by node, which would close silently: refusals are logged.
      requestCert: settings.clientAuth !== null,
      rejectUnauthorized: false,
      ...(settings.alpn.length > 0 ? { ALPNProtocols: settings.alpn } : {}),
      ...(this.#bySni
        ? {
            SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => {
              const ctx = this.#contexts.lookup(servername);
              if (!ctx) this.#unknownName.add({ servername });
              cb(null, ctx ?? this.#contexts.default);
            },
          }
        : {}),
    });
    server.on('secureConnection', (socket: WithParent) => this.#secured(socket));
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: WithParent) => {
      const raw = socket._parent;
      // Named before the sockets are destroyed (an address node has not read yet is gone after).
      const remote = raw && this.#acceptor ? this.#acceptor.remote(raw) : undefined;
      // node leaves the socket open when a tlsClientError listener exists (a stalled handshake).
      socket.destroy();
      raw?.destroy();
      this.#failures.add(describeTlsError(err), { remote, code: err.code });
    });
    return server;
  }

  #defaultOptions(material: TlsMaterial) {
    const first = material.pairs[0]!;
    return {
      cert: first.cert,
      key: first.key,
      ...(material.ca ? { ca: material.ca } : {}),
      ticketKeys: this.#ticketKeys,
    };
  }

  /** Where accept()ed sockets go once secured: called once, before the first accept(). */
  deliverTo(acceptor: TlsAcceptor): void {
    this.#acceptor = acceptor;
  }

  /** Starts the handshake on `raw`; the acceptor gets the TLSSocket once it is done (never on failure). */
  accept(raw: Socket): void {
    this.#server.emit('connection', raw);
  }

  /** New handshakes use `material` from now on; open connections keep theirs. */
  update(material: TlsMaterial): void {
    const contexts = new ServerContexts(material);
    const bySni = material.pairs.length > 1;
    if (bySni === this.#bySni) {
      this.#server.setSecureContext(this.#defaultOptions(material));
    } else {
      this.#bySni = bySni;
      this.#server = this.#createServer(material);
    }
    this.#contexts = contexts;
  }

  #secured(socket: WithParent): void {
    const raw = socket._parent;
    const pending = this.#acceptor;
    if (!raw || !pending) {
      socket.destroy();
      return;
    }
    if (!this.#bySni) this.#checkName(socket);
    if (this.#require && !socket.authorized) {
      const peer = socket.getPeerCertificate();
      const reason =
        peer && Object.keys(peer).length > 0
          ? String(socket.authorizationError ?? 'not verified')
          : 'no client certificate';
      this.#refusals.add(reason, { remote: pending.remote(raw) });
      socket.destroy();
      return;
    }
    pending.secured(socket, raw);
  }

  /** One certificate: a name the client asked for that it does not carry is logged (it is served anyway). */
  #checkName(socket: TLSSocket): void {
    const servername = (socket as TLSSocket & { servername?: string | false | null }).servername;
    if (typeof servername === 'string' && servername !== '' && !this.#contexts.lookup(servername))
      this.#unknownName.add({ servername });
  }
}
