// Message bodies for the load tool: views into one random block per thread, chosen by
// (connection id, sequence number). Consecutive messages of a connection start at
// different offsets of a block with no period, so an echo that loses, repeats, reorders
// or corrupts bytes compares unequal (a 1-byte body can only catch 255 changes in 256).
import { randomFillSync } from 'node:crypto';

/** Prime, so `seq * SEQ_STEP` visits every offset before repeating one. */
const PERIOD = 65521;
const SEQ_STEP = 4099;
const CONN_STEP = 7919;

export class PayloadPattern {
  private readonly block: Buffer;

  /** `size`: bytes per body. Allocates size + 64 KiB. */
  constructor(readonly size: number) {
    this.block = randomFillSync(Buffer.allocUnsafe(PERIOD + size));
  }

  /** Body of message `seq` of connection `connId`: a read-only view, never copied. */
  body(connId: number, seq: number): Buffer {
    const start = ((connId % PERIOD) * CONN_STEP + (seq % PERIOD) * SEQ_STEP) % PERIOD;
    return this.block.subarray(start, start + this.size);
  }
}
