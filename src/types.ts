import type { Socket } from 'node:net';
import type { Logger } from 'pino';

export type { Logger } from 'pino';

/** Process model names accepted by `-m`; aliases are folded by `validateParams` (MODEL_ALIASES in params.ts). */
export type ModelName = 'IOMP' | 'LF' | 'IF' | 'TLF';
export type ModelFlag = ModelName | 'IO' | 'WIN-TLF';

/** What a handler gets besides its socket. One object per connection. */
export interface TcpdaemonEnv {
  /** The canonical model serving this connection. */
  readonly model: ModelName;
  /** 0 = the daemon process itself; 1..N = workers. */
  readonly workerId: number;
  /** Unique within the daemon: `${workerId}-${n}`; in worker processes `${workerId}.${spawn}-${n}` (unique across restarts). */
  readonly connectionId: string;
  /** Child logger bound to this connection (pid, worker, conn, remote). */
  readonly logger: Logger;
  /** The real peer: after a PROXY header when one is enabled; 'unix' on a unix socket. */
  readonly remoteAddress: string;
  /** 0 on a unix socket. */
  readonly remotePort: number;
  /** Where the peer connected to: after a PROXY header, its destination; 'unix' on a unix socket. */
  readonly localAddress: string;
  /** 0 on a unix socket. */
  readonly localPort: number;
  /** Aborted when the daemon starts shutting down: finish up and return. */
  readonly signal: AbortSignal;
  /** `--param k=v` values, or `params` of the library call. Frozen. */
  readonly params: Readonly<Record<string, string>>;
  /** Per-connection scratch space for the handler (Lars' `param`). */
  readonly state: Record<string, unknown>;
  /**
   * Sends `data` to every worker of this daemon, this one included (Lars' send_task): there, each
   * onBroadcast listener gets it, in the order each worker sent. Resolves once it left this worker;
   * rejects with a BroadcastFullError (code TD_ERR_BROADCAST_FULL) while 4 MiB already wait to leave.
   */
  broadcast(data: Uint8Array | string): Promise<void>;
  /**
   * Calls `listener` with every broadcast until this connection closes (or the returned function
   * is called). `fromWorker` is the sender's workerId.
   */
  onBroadcast(listener: (data: Buffer, fromWorker: number) => void): () => void;
  /** The TLS facts of this connection (--tls-cert); undefined when it is plain TCP. Read on first use. */
  readonly tls: TlsFacts | undefined;
}

/** What a TLS connection negotiated, and who the client certificate says the peer is. */
export interface TlsFacts {
  /** 'TLSv1.3', 'TLSv1.2'. */
  readonly protocol: string | null;
  /** OpenSSL name of the cipher suite, e.g. 'TLS_AES_256_GCM_SHA384'. */
  readonly cipher: string;
  /** The ALPN protocol agreed, or null. */
  readonly alpn: string | null;
  /** The SNI name the client asked for, or null. */
  readonly servername: string | null;
  /** The client certificate verified against --tls-ca. */
  readonly authorized: boolean;
  /** Why it did not verify (an OpenSSL code), or null. */
  readonly authorizationError: string | null;
  /** The client certificate's subject (e.g. 'CN=alice'), or null without one. */
  readonly peerSubject: string | null;
  /** SHA-256 fingerprint of the client certificate ('AB:CD:...'), or null. */
  readonly peerFingerprint256: string | null;
}

/**
 * The one handler contract. A returned promise ends the connection when it settles:
 * resolved -> `socket.end()` if still open; rejected -> error logged, `socket.destroy()`.
 * Returning nothing leaves the socket open until it closes.
 */
// biome-ignore lint/suspicious/noConfusingVoidType: `void` lets plain functions that return nothing fit.
export type Tcpmain = (socket: Socket, env: TcpdaemonEnv) => void | Promise<unknown>;
