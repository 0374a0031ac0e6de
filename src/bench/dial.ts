// Opening a client socket with a time limit, the failure classified for the tally.
import { connect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import type { BenchTarget } from './options.js';
import type { ErrorKind } from './tally.js';

export interface DialFailure {
  kind: ErrorKind;
  code: string | undefined;
}

/** ms a connection attempt may take. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** ms to wait after a failed connection before a load loop tries again (no busy spin). */
export const RETRY_MS = 50;

/**
 * Connects to `target`; calls `done(null, socket)` once connected (Nagle off), or
 * `done(failure, socket)` with the socket already destroyed. `done` is called exactly once.
 */
export function dial(
  target: BenchTarget,
  done: (failure: DialFailure | null, socket: Socket) => void,
  timeoutMs = CONNECT_TIMEOUT_MS,
): Socket {
  const tls = 'path' in target ? undefined : target.tls;
  const socket =
    'path' in target
      ? connect({ path: target.path })
      : tls
        ? tlsConnect({
            host: target.host,
            port: target.port,
            rejectUnauthorized: false,
            ...(tls === 'resume' && lastSession ? { session: lastSession } : {}),
          })
        : connect({ host: target.host, port: target.port });
  if (tls === 'resume') socket.once('session', rememberSession);
  let settled = false;
  const finish = (failure: DialFailure | null) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.off(connected, onConnect).off('error', onError);
    if (failure) {
      socket.on('error', () => undefined);
      socket.destroy();
    } else {
      socket.setNoDelay(true);
    }
    done(failure, socket);
  };
  const onConnect = () => finish(null);
  const connected = tls ? 'secureConnect' : 'connect';
  const onError = (err: NodeJS.ErrnoException) => finish({ kind: 'connect', code: err.code });
  const timer = setTimeout(() => finish({ kind: 'timeout', code: 'connect timeout' }), timeoutMs);
  socket.once(connected, onConnect).once('error', onError);
  return socket;
}

/** --tls-resume: the session ticket this thread got last (TLS 1.3 sends it after the handshake). */
let lastSession: Buffer | undefined;
function rememberSession(session: Buffer): void {
  lastSession = session;
}

/** Tally kind and code of an error on an open socket. */
export function socketFailure(err: NodeJS.ErrnoException): DialFailure {
  return { kind: 'reset', code: err.code ?? err.message };
}
