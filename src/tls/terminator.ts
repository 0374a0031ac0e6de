// TLS termination of accepted sockets, where the handler runs: one never-listening tls.Server per
// process is handed each raw socket (after its PROXY header) and gives back the TLSSocket once the
// handshake is done. A handshake that fails, stalls or presents no acceptable client certificate
// costs only its connection and one throttled log line per reason.
import type { Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { ThrottledCount } from '../throttled-count.js';
import type { Logger } from '../types.js';
import { ServerContexts, type TlsMaterial } from './context.js';
import type { TlsSettings } from './settings.js';

interface Pending {
  remote: string;
  onSecure: (socket: TLSSocket) => void;
}

const kPending = Symbol('tcpdaemon.tlsPending');
type RawSocket = Socket & { [kPending]?: Pending };
/** node keeps the wrapped socket there (lib/_tls_wrap.js): how a TLSSocket leads back to its raw socket. */
type WithParent = TLSSocket & { _parent?: RawSocket };

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
      count = new ThrottledCount(this.logger, this.msg);
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

export class TlsTerminator {
  #contexts: ServerContexts;
  readonly #server: Server;
  readonly #require: boolean;
  readonly #failures: ReasonLog;
  readonly #refusals: ReasonLog;
  readonly #unknownName: ThrottledCount;

  constructor(
    material: TlsMaterial,
    settings: TlsSettings,
    logger: Logger,
    private readonly ticketKeys?: Buffer,
  ) {
    this.#contexts = new ServerContexts(material);
    this.#require = settings.clientAuth === 'require';
    this.#failures = new ReasonLog(logger, 'tls handshake failed; connection closed');
    this.#refusals = new ReasonLog(logger, 'tls client certificate refused; connection closed');
    this.#unknownName = new ThrottledCount(logger, 'tls server name matches no certificate; default served');
    this.#server = createServer({
      ...this.#defaultOptions(material),
      handshakeTimeout: settings.handshakeTimeoutMs,
      // Verified here (secureConnection) rather than by node, which would close silently: refusals are logged.
      requestCert: settings.clientAuth !== null,
      rejectUnauthorized: false,
      ...(settings.alpn.length > 0 ? { ALPNProtocols: settings.alpn } : {}),
      SNICallback: (servername, cb) => {
        const ctx = this.#contexts.lookup(servername);
        if (!ctx) this.#unknownName.add({ servername });
        cb(null, ctx ?? this.#contexts.default);
      },
    });
    this.#server.on('secureConnection', (socket: WithParent) => this.#secured(socket));
    this.#server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: WithParent) => {
      const raw = socket._parent;
      const pending = raw?.[kPending];
      if (raw) raw[kPending] = undefined;
      // node leaves the socket open when a tlsClientError listener exists (a stalled handshake).
      socket.destroy();
      raw?.destroy();
      this.#failures.add(describeTlsError(err), { remote: pending?.remote, code: err.code });
    });
  }

  #defaultOptions(material: TlsMaterial) {
    const first = material.pairs[0]!;
    return {
      cert: first.cert,
      key: first.key,
      ...(material.ca ? { ca: material.ca } : {}),
      ...(this.ticketKeys ? { ticketKeys: this.ticketKeys } : {}),
    };
  }

  /** Starts the handshake on `raw`; `onSecure` gets the TLSSocket once it is done (never on failure). */
  accept(raw: Socket, remote: string, onSecure: (socket: TLSSocket) => void): void {
    (raw as RawSocket)[kPending] = { remote, onSecure };
    this.#server.emit('connection', raw);
  }

  /** New handshakes use `material` from now on; open connections keep theirs. */
  update(material: TlsMaterial): void {
    const contexts = new ServerContexts(material);
    this.#server.setSecureContext(this.#defaultOptions(material));
    this.#contexts = contexts;
  }

  #secured(socket: WithParent): void {
    const raw = socket._parent;
    const pending = raw?.[kPending];
    if (!raw || !pending) {
      socket.destroy();
      return;
    }
    raw[kPending] = undefined;
    if (this.#require && !socket.authorized) {
      const peer = socket.getPeerCertificate();
      const reason =
        peer && Object.keys(peer).length > 0
          ? String(socket.authorizationError ?? 'not verified')
          : 'no client certificate';
      this.#refusals.add(reason, { remote: pending.remote });
      socket.destroy();
      return;
    }
    pending.onSecure(socket);
  }
}
