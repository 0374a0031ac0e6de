// Every error the message layer hands to a caller: one class, told apart by `code`.

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
  | 'ERR_MESSAGE_TOO_MANY_REQUESTS';

export class MessageError extends Error {
  constructor(
    readonly code: MessageErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'MessageError';
  }
}

/**
 * What a route handler throws (or rejects with) to answer with an error reply on purpose, as the
 * gateway does for timeouts and refusals: with the seq codec it is sent like any error, but not
 * logged (it is an answer, not a fault in the handler; a peer could make us log one per frame).
 */
export class ErrorReply extends Error {
  override name = 'ErrorReply';
}
