// The one error base. Every error tcpdaemon throws on purpose is a TcpdaemonError with a stable
// `code`; callers (and the CLI, which prints these as one line) test the base class, not a list.
// Anything else that escapes is a bug and is reported with its stack.

export class TcpdaemonError extends Error {
  override name = 'TcpdaemonError';
  readonly code: string = 'TD_ERR';
}

/** A parameter, flag or config file is wrong: the message names the key and its flag. */
export class ParamError extends TcpdaemonError {
  override name = 'ParamError';
  override readonly code: string = 'TD_ERR_PARAM';
}

/** The daemon could not listen where it was told to (the message names the address and errno). */
export class ListenError extends TcpdaemonError {
  override name = 'ListenError';
  override readonly code = 'TD_ERR_LISTEN';
  constructor(
    message: string,
    /** The system error code (EADDRINUSE, EACCES, ...), when there was one. */
    readonly errno?: string,
  ) {
    super(message);
  }
}

/** A handler module that cannot serve: missing, failed to load, or exports no function. */
export class HandlerLoadError extends TcpdaemonError {
  override name = 'HandlerLoadError';
  override readonly code = 'TD_ERR_HANDLER_LOAD';
}

/** Workers could not start (each slot died this many times before any worker was ready). */
export class WorkerStartError extends TcpdaemonError {
  override name = 'WorkerStartError';
  override readonly code = 'TD_ERR_WORKER_START';
}

/** The status socket cannot be served, or `tcpdaemon status` got no valid report. */
export class StatusSocketError extends TcpdaemonError {
  override name = 'StatusSocketError';
  override readonly code = 'TD_ERR_STATUS';
}

/** A queue or other service the command depends on could not be reached at start-up. */
export class ConnectError extends TcpdaemonError {
  override name = 'ConnectError';
  override readonly code = 'TD_ERR_CONNECT';
}

/**
 * True for what a handler throws by mistake (a TypeError, ReferenceError, RangeError or failed
 * assertion: a bug in its code), logged as a failure with its stack. Anything else a handler
 * throws while answering a request (an Error saying why, a ReplyError, a SyntaxError from
 * JSON.parse of the request) is its answer: the peer gets it as an error, the log a line without
 * a stack.
 */
export function isProgrammerError(err: unknown): boolean {
  return (
    err instanceof TypeError ||
    err instanceof ReferenceError ||
    err instanceof RangeError ||
    (err as { code?: unknown } | null)?.code === 'ERR_ASSERTION'
  );
}

/** A thrown answer in a log line, without its stack: its reason, and its class unless a plain Error. */
export function answerFields(err: unknown): { reason: string; error?: string } {
  if (!(err instanceof Error)) return { reason: String(err) };
  return err.name === 'Error' ? { reason: err.message } : { reason: err.message, error: err.name };
}

/** A short, human reason for a system error code, for one-line messages. */
export function describeErrno(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  switch (code) {
    case 'EADDRINUSE':
      return 'address already in use';
    case 'EACCES':
      return 'permission denied';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve';
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ETIMEDOUT':
      return 'timed out';
    case 'ENOENT':
      return 'no such file or directory';
    case 'EMFILE':
    case 'ENFILE':
      return 'out of file descriptors';
    default:
      return err instanceof Error ? err.message : String(err);
  }
}

/** A TLS certificate, key or CA file cannot serve (unreadable, expired, key not matching): the message names the file. */
export class TlsConfigError extends TcpdaemonError {
  override name = 'TlsConfigError';
  override readonly code = 'TD_ERR_TLS_CONFIG';
  constructor(
    /** The file at fault. */
    readonly file: string,
    /** Why, in a few words. */
    readonly reason: string,
  ) {
    super(`TLS: ${file}: ${reason}`);
  }
}
