// Every error the message layer hands to a caller: one class, told apart by `code`.
import { TcpdaemonError } from '../errors.js';

export type MessageErrorCode =
  /** request(): no reply within its timeout. */
  | 'ERR_MESSAGE_TIMEOUT'
  /** request(): the peer answered with an error reply (seq codec); the message is the peer's. */
  | 'ERR_MESSAGE_REMOTE'
  /** The connection closed (or the client was closed) before the send or the reply. */
  | 'ERR_MESSAGE_CLOSED'
  /** MessageClient: disconnected and the send queue is at its bound. */
  | 'ERR_MESSAGE_QUEUE_FULL'
  /** request(): as many requests as allowed are already waiting for replies. */
  | 'ERR_MESSAGE_TOO_MANY_REQUESTS'
  /** MessageClient by service: the service has no live host, or none of those tried could be reached. */
  | 'ERR_MESSAGE_NO_HOST';

/**
 * Thrown (or rejected with) by a route handler to answer with an error on purpose (a refusal, a
 * bad request): with `seq` the peer gets an error reply carrying the message, as for any throw,
 * but it is not logged as a failure (no warning, no stack). Other codecs close the connection.
 */
export class ReplyError extends TcpdaemonError {
  override name = 'ReplyError';
  override readonly code: string = 'TD_ERR_REPLY';
  /** Already logged where it arose (a gateway's business worker): answered without another line. */
  readonly logged: boolean;

  constructor(message?: string, options?: ErrorOptions & { logged?: boolean }) {
    super(message, options);
    this.logged = options?.logged ?? false;
  }
}

export class MessageError extends TcpdaemonError {
  constructor(
    override readonly code: MessageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MessageError';
  }
}
