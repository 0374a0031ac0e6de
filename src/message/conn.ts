// One framed message connection over a net.Socket: decodes frames, routes them, sends replies,
// correlates requests, applies backpressure and the output cap, and closes exactly once with a
// reason. Both the server handler and MessageClient are built on it.
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { answerFields, isProgrammerError } from '../errors.js';
import type { PeerLog } from '../throttled-count.js';
import { type Codec, type Decoder, FLAG_ERROR, FLAG_REPLY } from './codecs/index.js';
import { MessageError, ReplyError } from './errors.js';
import { frameBatch } from './frame-batch.js';
import { frameCounts } from './frame-counts.js';
import { checkTimeout, PendingRequests, type ReplyStats, type RequestOptions } from './pending.js';
import { isThenable, type MessagePeer, type Router, replyParts } from './router.js';

export interface MessageStats extends ReplyStats {
  /** Frames with no route and no fallback: dropped (and logged). */
  unroutable: number;
}

export function newStats(): MessageStats {
  return { lateReplies: 0, unroutable: 0 };
}

/** Bytes queued for a peer before it is closed as not reading. */
export const DEFAULT_OUTPUT_CAP = 8 * 1024 * 1024;
/** Async route handlers running at once on one connection (seq codec; other codecs run one at a time). */
export const DEFAULT_MAX_IN_FLIGHT = 64;
/** Requests waiting for replies on one connection. */
export const DEFAULT_MAX_PENDING = 1024;
/** After we end a connection, how long the peer has to finish before the socket is destroyed, ms. */
const END_GRACE_MS = 5000;

const PAUSE_BACKPRESSURE = 1;
const PAUSE_BUSY = 2;
/** The route handlers asked for no more input for now (hold()). */
const PAUSE_HELD = 4;
const EMPTY = Buffer.alloc(0);

export interface MessageConnOptions {
  id: string;
  codec: Codec;
  router: Router<MessageConn>;
  logger: Logger;
  state: Record<string, unknown>;
  remoteAddress: string;
  remotePort: number;
  /** Counts what the peer makes us log (unroutable frames, handler failures...) per peer address. */
  peerLog: PeerLog;
  /** Bytes. */
  outputCap: number;
  maxInFlight: number;
  maxPending: number;
  /** Ms, for request() without a timeout. */
  requestTimeout: number;
  stats: MessageStats;
}

interface Waiting {
  msgid: number;
  body: Buffer;
  seq: number;
}

export function toBytes(body: Uint8Array | string | undefined): Uint8Array {
  if (body === undefined) return EMPTY;
  return typeof body === 'string' ? Buffer.from(body) : body;
}

export class MessageConn implements MessagePeer {
  readonly id: string;
  readonly state: Record<string, unknown>;
  readonly remoteAddress: string;
  readonly remotePort: number;
  /** Resolves with the reason once the socket has closed. Never rejects. */
  readonly closed: Promise<string>;
  /** Bound to this connection (the daemon's env.logger on a server). */
  readonly logger: Logger;

  private resolveClosed!: (reason: string) => void;
  private reason: string | undefined;
  private started = false;
  private reading = false;
  private ending = false;
  private hasClosed = false;
  /** The peer's FIN arrived: end once every request it sent is answered. */
  private peerEnded = false;
  private paused = 0;
  /** Frames go into the shared frame batch, written when the read chunk (or backlog run) is done. */
  private batching = false;
  private inFlight = 0;
  /** Answers route handlers owe that they send later themselves (owe()). */
  private owedElsewhere = 0;
  /** Frames waiting for a handler slot (reading is paused meanwhile), from `backlogHead`. */
  private backlog: Waiting[] = [];
  private backlogHead = 0;
  private graceTimer: NodeJS.Timeout | undefined;
  private readonly decoder: Decoder;
  private readonly pending: PendingRequests;
  private readonly withSeq: boolean;
  /** Async handler calls at once: 1 keeps replies in request order for codecs without seq. */
  private readonly concurrency: number;
  private readonly codec: Codec;
  private readonly router: Router<MessageConn>;

  constructor(
    /** The underlying socket; write to it only through this connection. */
    readonly socket: Socket,
    private readonly opts: MessageConnOptions,
  ) {
    this.id = opts.id;
    this.state = opts.state;
    this.remoteAddress = opts.remoteAddress;
    this.remotePort = opts.remotePort;
    this.codec = opts.codec;
    this.router = opts.router;
    this.logger = opts.logger;
    this.withSeq = opts.codec.hasSeq;
    this.concurrency = this.withSeq ? opts.maxInFlight : 1;
    this.pending = new PendingRequests(this.withSeq, opts.maxPending, opts.stats);
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
    this.decoder = opts.codec.createDecoder({
      frame: (msgid, body, seq, flags) => {
        frameCounts.received++;
        this.onFrame(msgid, body, seq, flags);
      },
      error: (reason) => {
        frameCounts.decodeErrors++;
        this.onProtocolError(reason);
      },
    });
    // The peer's FIN ends only its side: close() below lets running handlers reply, then sends
    // ours (node would end our side on the next tick and drop those replies).
    socket.allowHalfOpen = true;
    socket.on('error', this.onError);
    socket.on('end', this.onEnd);
    socket.on('close', this.onClose);
    if (socket.destroyed) queueMicrotask(this.onClose);
  }

  /**
   * Open for sending: not ended, not closed. After close() it stays open until the handlers still
   * running have finished, so their replies go out.
   */
  get isOpen(): boolean {
    return !this.ending && !this.hasClosed && this.socket.writable;
  }

  /** Bytes queued in the socket, not yet taken by the kernel. */
  get bufferedAmount(): number {
    return this.socket.writableLength;
  }

  /** Requests waiting for replies. */
  get pendingRequests(): number {
    return this.pending.size;
  }

  /** Starts reading and dispatching (after onConnect). Called by the server or client. */
  start(): void {
    if (this.started || !this.isOpen) return;
    this.started = true;
    this.reading = true;
    // Output may already be past the high-water mark (a big welcome): stay paused until it drains.
    if (this.paused !== 0) this.socket.pause();
    this.socket.on('data', this.onData);
  }

  /**
   * Sends one frame (seq 0, no flags). True when the socket is below its high-water mark; false when
   * the connection is closed or the caller should wait (`drained()`). Throws RangeError when the
   * codec cannot carry the body.
   */
  send(msgid: number, body?: Uint8Array | string): boolean {
    if (!this.isOpen) return false;
    return this.writeFrame(msgid, toBytes(body), 0, 0);
  }

  /** Sends a frame already encoded with this connection's codec (broadcast encodes once). */
  sendEncoded(frame: Buffer): boolean {
    if (!this.isOpen) return false;
    frameCounts.sent++;
    if (!this.batching) return this.write(frame);
    if (!this.socket.writable) return false;
    if (frameBatch.appendBytes(frame)) return this.batchAppended();
    this.flushBatch(); // what was batched goes first
    return this.write(frame);
  }

  /** Resolves when the socket's queue is below its high-water mark again (at once if it is). */
  drained(): Promise<void> {
    if (!this.socket.writableNeedDrain || this.hasClosed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        this.socket.off('drain', done).off('close', done);
        resolve();
      };
      this.socket.on('drain', done).on('close', done);
    });
  }

  /**
   * Sends a request and resolves with its reply's body: matched by seq with the seq codec, else
   * the next frame with `replyMsgid` (default msgid) in request order. Rejects with MessageError
   * ERR_MESSAGE_TIMEOUT, ERR_MESSAGE_REMOTE, ERR_MESSAGE_CLOSED or ERR_MESSAGE_TOO_MANY_REQUESTS.
   */
  request(msgid: number, body?: Uint8Array | string, options: RequestOptions = {}): Promise<Buffer> {
    if (!this.isOpen) {
      return Promise.reject(new MessageError('ERR_MESSAGE_CLOSED', `connection ${this.id} is closed`));
    }
    let opened: { seq: number; reply: Promise<Buffer> };
    try {
      const timeout = checkTimeout(options.timeout ?? this.opts.requestTimeout);
      opened = this.pending.open(this.codec.hasMsgid ? (options.replyMsgid ?? msgid) : 0, timeout);
    } catch (err) {
      return Promise.reject(err);
    }
    try {
      this.writeFrame(msgid, toBytes(body), opened.seq, 0);
    } catch (err) {
      this.pending.abandon(opened.seq, err as Error);
    }
    return opened.reply;
  }

  /**
   * Stops reading from the peer until release(): the frames of the chunk being decoded are still
   * dispatched, then TCP's window holds the rest on the peer's side. For handlers that take
   * requests faster than they answer them (the gateway's in-flight bound).
   */
  hold(): void {
    this.pause(PAUSE_HELD);
  }

  /** Reads again after hold() (unless output backpressure still pauses it). */
  release(): void {
    if ((this.paused & PAUSE_HELD) !== 0) this.unpause(PAUSE_HELD);
  }

  /**
   * For handlers that return at once and answer later with send(): +1 per request taken, -1 per
   * answer sent or given up. After the peer's FIN the connection ends only once none is owed (as
   * for requests still running; the same grace bounds it).
   */
  owe(delta: number): void {
    this.owedElsewhere += delta;
    if (this.owedElsewhere === 0 && this.peerEnded) this.endWhenAnswered();
  }

  /** True between hold() and release(). */
  get held(): boolean {
    return (this.paused & PAUSE_HELD) !== 0;
  }

  /** Ends gracefully: stops dispatching, lets running handlers finish, flushes output, then FIN. */
  close(reason = 'closed by handler'): void {
    this.reason ??= reason;
    if (this.hasClosed || this.ending) return;
    this.stopReading();
    this.armEndGrace();
    if (this.inFlight === 0) this.endNow();
  }

  /** Closes at once; queued output is lost. */
  destroy(reason: string): void {
    this.reason ??= reason;
    this.stopReading();
    this.socket.destroy();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (!this.reading) return;
    this.beginBatch();
    try {
      this.decoder.push(chunk);
    } finally {
      this.endBatch();
    }
  };

  /** Until endBatch(), frames go into the shared batch, unless another connection has it open. */
  private beginBatch(): void {
    this.batching = frameBatch.open(this);
  }

  /** Writes what was batched and gives the batch back. */
  private endBatch(): void {
    if (!this.batching) return;
    this.flushBatch();
    this.batching = false;
    frameBatch.close();
  }

  private flushBatch(): boolean {
    const bytes = frameBatch.take();
    return bytes === undefined || this.write(bytes);
  }

  private onFrame(msgid: number, body: Buffer, seq: number, flags: number): void {
    if (!this.reading) return;
    if (this.withSeq) {
      if ((flags & FLAG_REPLY) !== 0) {
        this.pending.settleSeq(seq, body, (flags & FLAG_ERROR) !== 0);
        return;
      }
    } else if (this.pending.size > 0 && this.pending.settleInOrder(msgid, body)) {
      return;
    }
    if (this.inFlight >= this.concurrency || this.backlogHead < this.backlog.length) {
      this.backlog.push({ msgid, body, seq });
      this.pause(PAUSE_BUSY);
      return;
    }
    this.dispatch(msgid, body, seq);
  }

  private dispatch(msgid: number, body: Buffer, seq: number): void {
    const handler = this.router.get(msgid);
    if (handler === undefined) {
      this.unroutable(msgid, body);
      return;
    }
    let result: unknown;
    try {
      result = handler(body, msgid, this);
    } catch (err) {
      this.handlerFailed(err, msgid, seq);
      return;
    }
    if (result === undefined) return;
    // The common reply first: a body, sent as is (no thenable or { msgid, body } checks).
    if (result instanceof Uint8Array) this.replyBody(result, msgid, seq);
    else if (isThenable(result)) this.awaitReply(result, msgid, seq);
    else this.reply(result, msgid, seq);
  }

  // Rare paths live in their own methods: the per-frame ones stay small enough for V8 to inline.
  private unroutable(msgid: number, body: Buffer): void {
    this.opts.stats.unroutable++;
    this.peerLine('warn', 'no route for msgid; message dropped', { msgid, bytes: body.length });
  }

  /** A line the peer can cause once per frame or connection: the first written, the rest counted. */
  private peerLine(
    level: 'debug' | 'info' | 'warn' | 'error',
    msg: string,
    fields: Record<string, unknown>,
  ): void {
    this.opts.peerLog[level]({ peer: this.remoteAddress, msg, fields, logger: this.logger });
  }

  private awaitReply(result: PromiseLike<unknown>, msgid: number, seq: number): void {
    this.inFlight++;
    result.then(
      (value) => this.handlerDone(value, msgid, seq),
      (err: unknown) => this.handlerDone(undefined, msgid, seq, err),
    );
  }

  private handlerDone(value: unknown, msgid: number, seq: number, err?: unknown): void {
    this.inFlight--;
    this.beginBatch();
    try {
      if (err !== undefined) this.handlerFailed(err, msgid, seq);
      else if (value !== undefined) this.reply(value, msgid, seq);
      while (this.backlogHead < this.backlog.length && this.inFlight < this.concurrency && this.reading) {
        const next = this.backlog[this.backlogHead++]!;
        this.dispatch(next.msgid, next.body, next.seq);
      }
    } finally {
      this.endBatch();
    }
    if (!this.reading) {
      if (this.inFlight === 0 && this.reason !== undefined && !this.ending && !this.hasClosed) this.endNow();
      return;
    }
    if (this.backlogHead === this.backlog.length) {
      this.backlog = [];
      this.backlogHead = 0;
      this.unpause(PAUSE_BUSY);
      if (this.peerEnded) this.endWhenAnswered();
    }
  }

  /** A handler's return value goes back: as the reply to `seq` (seq codec), else as a frame with the same (or its own) msgid. */
  private reply(value: unknown, msgid: number, seq: number): void {
    if (value instanceof Uint8Array) {
      this.replyBody(value, msgid, seq);
      return;
    }
    let parts: ReturnType<typeof replyParts>;
    try {
      parts = replyParts(value);
    } catch (err) {
      this.handlerFailed(err, msgid, seq);
      return;
    }
    if (parts !== undefined) this.replyBody(parts.bytes, parts.msgid ?? msgid, seq);
  }

  private replyBody(body: Uint8Array, msgid: number, seq: number): void {
    if (this.ending || this.hasClosed) return;
    const request = this.withSeq && seq !== 0;
    try {
      this.writeFrame(msgid, body, request ? seq : 0, request ? FLAG_REPLY : 0);
    } catch (err) {
      this.handlerFailed(err, msgid, seq);
    }
  }

  /** With the seq codec a failed request gets an error reply; otherwise the connection is closed. */
  private handlerFailed(err: unknown, msgid: number, seq: number): void {
    if (!this.isOpen) return;
    const message = err instanceof Error ? err.message : String(err);
    // A ReplyError is an answer, not a failure: no stack, and only at debug (not at all when it
    // was logged where it arose). Another throw is the handler's answer too, at info without a
    // stack, unless it shows a bug (isProgrammerError): then a warning with the stack.
    const meant = err instanceof ReplyError;
    if (this.withSeq && seq !== 0) {
      if (meant) {
        if (!err.logged) this.peerLine('debug', 'error reply sent', { msgid, seq, reason: message });
      } else if (isProgrammerError(err))
        this.peerLine('warn', 'route handler failed; error reply sent', { err, msgid, seq });
      else
        this.peerLine('info', 'route handler failed; error reply sent', { msgid, seq, ...answerFields(err) });
      const text = Buffer.from(message);
      const body = text.length > this.codec.maxBody ? text.subarray(0, this.codec.maxBody) : text;
      this.writeFrame(msgid, body, seq, FLAG_REPLY | FLAG_ERROR);
      return;
    }
    if (meant)
      this.peerLine('warn', 'error reply, but the codec has none; closing connection', {
        msgid,
        reason: message,
      });
    else this.peerLine('error', 'route handler failed; closing connection', { err, msgid });
    this.destroy(`handler error: ${message}`);
  }

  /** Encodes one frame and sends it (into the batch while batching); as write() for the result. */
  private writeFrame(msgid: number, body: Uint8Array, seq: number, flags: number): boolean {
    frameCounts.sent++;
    if (!this.batching) return this.write(this.codec.encode(msgid, body, seq, flags));
    if (!this.socket.writable) return false;
    if (!frameBatch.append(this.codec, msgid, body, seq, flags))
      return this.writeFrameAfterBatch(msgid, body, seq, flags);
    return this.batchAppended();
  }

  /** No room left in the slab: out with the batch; a frame bigger than a slab goes by itself. */
  private writeFrameAfterBatch(msgid: number, body: Uint8Array, seq: number, flags: number): boolean {
    this.flushBatch();
    if (!this.socket.writable) return false;
    if (frameBatch.append(this.codec, msgid, body, seq, flags)) return this.batchAppended();
    return this.write(this.codec.encode(msgid, body, seq, flags));
  }

  /**
   * After a frame went into the batch: true below the high-water mark with the batch counted, as
   * write() would answer. At it, the batch goes out now, so write() applies the output cap and
   * backpressure as it does for single frames.
   */
  private batchAppended(): boolean {
    const socket = this.socket;
    if (socket.writableLength + frameBatch.length < socket.writableHighWaterMark) return true;
    return this.flushBatch();
  }

  private write(frame: Buffer): boolean {
    const socket = this.socket;
    if (!socket.writable) return false;
    // With output already queued this write waits too: a view of the shared slab would keep all
    // 64 KiB of it alive for a few bytes, slab after slab, while the peer does not read. The copy
    // is unpooled: Buffer.from() would take it from node's pool (8 KiB slabs on Node 20 and 22,
    // 64 KiB on 24) and pin a whole pool slab the same way.
    socket.write(
      socket.writableLength > 0 && frame.length < frame.buffer.byteLength ? ownCopy(frame) : frame,
    );
    const queued = socket.writableLength;
    if (queued > this.opts.outputCap) {
      this.peerLine('warn', 'output cap exceeded: the peer does not read; closing connection', {
        queued,
        outputCap: this.opts.outputCap,
      });
      this.destroy(`output cap exceeded: ${queued} bytes queued`);
      return false;
    }
    if (!socket.writableNeedDrain) return true;
    if ((this.paused & PAUSE_BACKPRESSURE) === 0) {
      this.pause(PAUSE_BACKPRESSURE);
      socket.once('drain', this.onDrain);
    }
    return false;
  }

  private readonly onDrain = (): void => this.unpause(PAUSE_BACKPRESSURE);

  private pause(why: number): void {
    if (this.paused === 0 && this.reading) this.socket.pause();
    this.paused |= why;
  }

  private unpause(why: number): void {
    this.paused &= ~why;
    if (this.paused === 0 && this.reading) this.socket.resume();
  }

  /** No more dispatching; input is still read (and dropped) so the peer's FIN is seen. */
  private stopReading(): void {
    this.reading = false;
    this.decoder.stop();
    this.backlog = [];
    this.backlogHead = 0;
    this.paused = 0;
    if (this.started && !this.socket.destroyed) this.socket.resume();
  }

  private endNow(): void {
    if (this.batching) this.flushBatch(); // before our FIN
    this.ending = true;
    this.socket.end();
  }

  private onProtocolError(reason: string): void {
    this.peerLine('warn', 'protocol error; closing connection', { reason });
    this.destroy(`protocol error: ${reason}`);
  }

  /**
   * The peer sent its FIN: everything it sent has been decoded. Requests still running or waiting
   * in the backlog are answered (within END_GRACE_MS), then our FIN goes out.
   */
  private readonly onEnd = (): void => {
    this.reason ??= 'peer closed';
    if (this.hasClosed || this.ending) return;
    const cut = this.decoder.buffered;
    if (cut > 0) this.peerLine('warn', 'peer closed inside a frame; partial frame dropped', { bytes: cut });
    this.peerEnded = true;
    this.armEndGrace();
    this.endWhenAnswered();
  };

  /** A graceful end gets END_GRACE_MS; what has not finished by then is destroyed. */
  private armEndGrace(): void {
    this.graceTimer ??= setTimeout(() => this.socket.destroy(), END_GRACE_MS).unref();
  }

  private endWhenAnswered(): void {
    if (
      this.inFlight === 0 &&
      this.owedElsewhere === 0 &&
      this.backlogHead >= this.backlog.length &&
      !this.ending &&
      !this.hasClosed
    )
      this.endNow();
  }

  private readonly onError = (err: NodeJS.ErrnoException): void => {
    this.reason ??= `socket error: ${err.code ?? err.message}`;
    this.logger.debug({ code: err.code, err: err.message }, 'socket error');
  };

  private readonly onClose = (): void => {
    if (this.hasClosed) return;
    this.hasClosed = true;
    this.reading = false;
    this.decoder.stop();
    this.backlog = [];
    clearTimeout(this.graceTimer);
    const reason = this.reason ?? 'connection closed';
    this.reason = reason;
    this.pending.rejectAll(
      new MessageError('ERR_MESSAGE_CLOSED', `connection closed before the reply: ${reason}`),
    );
    this.resolveClosed(reason);
  };
}

/** `bytes` in a buffer of exactly its size (no pool slab, no shared ArrayBuffer). */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}
