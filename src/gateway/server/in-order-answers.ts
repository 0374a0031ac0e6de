// Codecs without seq (lars, tdhb, u32be, line): a client can only pair answers with requests by
// their order, so each session keeps a line of answers owed. Requests of one connection still run
// at once on several workers; a finished answer waits, accounted, until those before it are out.
// The line counts against the in-flight bound: past it, frames read are held and the connection
// is not read until answers go out. Ready answers of a session leave once per event-loop turn in
// one write.
import type { Codec } from '../../message/codecs/index.js';
import { FrameBatch } from '../../message/frame-batch.js';
import { ThrottledCount } from '../../throttled-count.js';
import type { Logger } from '../../types.js';
import { GATEWAY_MSGID } from '../protocol.js';
import { GatewayError, type Outcome } from '../requests.js';
import { type HeldFrame, PENDING, type Session, type Slot } from './session.js';

/**
 * Memory of one queued item beyond its body, bytes: the object, its array slot, the Buffer (or
 * error) holding the body. Measured on Node 20 (heap + external per item, 200k items): a held
 * frame 146, a finished answer 195; rounded up.
 */
const HELD_FRAME_COST = 160;
const ANSWER_COST = 224;

export interface InOrderAnswersOptions {
  codec: Codec;
  /** Answers owed (finished or not) at which a connection is no longer read. */
  maxInflightPerConn: number;
  /** Accounted bytes of one session's held frames and waiting answers; past it the session is closed. */
  maxSessionBytes: number;
  logger: Logger;
  /** Takes one client frame (called again for held frames as room frees up). */
  dispatch: (s: Session, msgid: number, body: Buffer) => void;
}

export class InOrderAnswers {
  /** Sessions whose first answer in line is ready. */
  private dirty = new Set<Session>();
  private flushScheduled = false;
  /** Answers of one session are encoded here back to back, then written with one socket write. */
  private readonly out = new FrameBatch();
  private readonly overflowed: ThrottledCount;

  constructor(private readonly opts: InOrderAnswersOptions) {
    this.overflowed = new ThrottledCount(
      opts.logger,
      'session closed: its queued answers and frames passed --max-session-bytes',
    );
  }

  /**
   * Past the in-flight bound (answers owed, finished or not), or behind frames held already, the
   * frame is held and the connection is not read until answers go out (admitHeld). True: held.
   */
  holdIfFull(s: Session, msgid: number, body: Buffer): boolean {
    if (s.heldHead === s.held.length && s.line.length - s.lineHead < this.opts.maxInflightPerConn) {
      return false;
    }
    s.held.push({ msgid, body });
    s.conn.owe(1);
    if (!s.conn.held) s.conn.hold();
    this.account(s, body.length + HELD_FRAME_COST);
    return true;
  }

  /** The place in line of an answer to come. */
  slot(s: Session): Slot {
    const slot: Slot = { outcome: PENDING, cost: 0 };
    this.enqueue(s, slot);
    return slot;
  }

  /** `slot` (pending: a request's own, OpenRequest) takes the next place in line. */
  enqueue(s: Session, slot: Slot): void {
    s.line.push(slot);
    s.conn.owe(1);
  }

  /**
   * An answer is ready. First in line: its session is written at the end of this event-loop turn
   * (with every other answer ready by then, in one write); else it waits, accounted, for its turn.
   */
  finish(s: Session, slot: Slot, o: Outcome): void {
    slot.outcome = o;
    if (s.line[s.lineHead] !== slot) {
      slot.cost =
        ANSWER_COST + (o === undefined ? 0 : o instanceof GatewayError ? o.message.length : o.body.length);
      this.account(s, slot.cost);
      return;
    }
    this.dirty.add(s);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flushDirty);
    }
  }

  /** Answers went out: dispatch held frames while there is room; read again once none is held. */
  private admitHeld(s: Session): void {
    if (s.admitting || s.heldHead === s.held.length) return;
    s.admitting = true;
    try {
      while (
        s.heldHead < s.held.length &&
        s.line.length - s.lineHead < this.opts.maxInflightPerConn &&
        s.conn.isOpen
      ) {
        const f = s.held[s.heldHead]!;
        s.held[s.heldHead++] = undefined as unknown as HeldFrame;
        s.bytes -= f.body.length + HELD_FRAME_COST;
        this.opts.dispatch(s, f.msgid, f.body);
        s.conn.owe(-1);
      }
    } finally {
      s.admitting = false;
    }
    if (s.heldHead === s.held.length) {
      s.held = [];
      s.heldHead = 0;
      s.conn.release();
    }
  }

  /** Adds to a session's queued bytes; past --max-session-bytes the session is closed (logged once). */
  private account(s: Session, bytes: number): void {
    s.bytes += bytes;
    if (s.bytes <= this.opts.maxSessionBytes || !s.conn.isOpen) return;
    this.overflowed.add({ session: s.id, bytes: s.bytes, limit: this.opts.maxSessionBytes });
    s.conn.destroy(`session queue over ${this.opts.maxSessionBytes} bytes`);
  }

  private readonly flushDirty = (): void => {
    this.flushScheduled = false;
    const ready = this.dirty;
    this.dirty = new Set();
    for (const s of ready) this.flushLine(s);
  };

  /** Writes the answers at the head of the line that are ready, then admits held frames. */
  private flushLine(s: Session): void {
    let paid = 0;
    this.out.open(s);
    try {
      while (s.lineHead < s.line.length) {
        const slot = s.line[s.lineHead]!;
        if (slot.outcome === PENDING) break;
        s.line[s.lineHead++] = undefined as unknown as Slot;
        s.bytes -= slot.cost;
        this.write(s, slot.outcome);
        paid++;
      }
      this.sendBatch(s);
    } finally {
      this.out.close();
    }
    // After the write: the last one paid may let the peer's FIN end the connection.
    if (paid > 0) s.conn.owe(-paid);
    if (s.lineHead === s.line.length) {
      s.line = [];
      s.lineHead = 0;
    }
    this.admitHeld(s);
  }

  private sendBatch(s: Session): void {
    const bytes = this.out.take();
    if (bytes !== undefined && s.conn.isOpen) s.conn.sendEncoded(bytes);
  }

  /** A reply frame; an error notice (msgid -1); without msgids an error closes. */
  private write(s: Session, o: Outcome): void {
    if (o === undefined || !s.conn.isOpen) return;
    if (!(o instanceof GatewayError)) {
      try {
        this.append(s, o.msgid, o.body);
        return;
      } catch (err) {
        o = new GatewayError('refused', `reply not sent: ${(err as Error).message}`);
      }
    }
    const { codec } = this.opts;
    if (codec.hasMsgid) {
      const text = Buffer.from(o.message);
      const max = codec.maxBody;
      this.append(s, GATEWAY_MSGID.error, text.length > max ? text.subarray(0, max) : text);
      return;
    }
    this.sendBatch(s);
    this.opts.logger.warn(
      { session: s.id, reason: o.message },
      'request failed; closing the connection (its codec has no error frame)',
    );
    s.conn.close(`request failed: ${o.message}`);
  }

  /** Into the session's batch; a frame bigger than the batch's slab goes by itself. Throws RangeError as codec.encode. */
  private append(s: Session, msgid: number, body: Uint8Array): void {
    const { codec } = this.opts;
    if (this.out.append(codec, msgid, body, 0, 0)) return;
    this.sendBatch(s);
    if (this.out.append(codec, msgid, body, 0, 0)) return;
    s.conn.sendEncoded(codec.encode(msgid, body));
  }
}
