// seq: our request/response format. Lars' header grown to 16 bytes with a sequence number and
// flags, so a request's reply can be told apart from pushes and may come back out of order:
//   [0..3]   msgid  int32 little-endian
//   [4..7]   msglen int32 little-endian, body bytes only
//   [8..11]  seq    uint32 little-endian; 0 = one-way (no reply expected)
//   [12]     flags  bit 0 REPLY, bit 1 ERROR (body = UTF-8 message); bits 2-7 must be 0
//   [13..15] reserved, must be 0
import {
  type Codec,
  type CodecOptions,
  checkBody,
  checkInt32,
  checkMaxBody,
  type Decoder,
  FLAG_ERROR,
  FLAG_REPLY,
  type FrameSink,
  frameEncoders,
  putUint32LE,
} from './codec.js';
import { LengthPrefixedDecoder } from './length-prefixed.js';

export const SEQ_HEADER_LENGTH = 16;
const KNOWN_FLAGS = FLAG_REPLY | FLAG_ERROR;

class SeqDecoder extends LengthPrefixedDecoder {
  constructor(
    sink: FrameSink,
    private readonly maxBody: number,
  ) {
    super(sink, SEQ_HEADER_LENGTH);
  }

  protected readHeader(buf: Buffer, off: number): number {
    const len = buf[off + 4]! | (buf[off + 5]! << 8) | (buf[off + 6]! << 16) | (buf[off + 7]! << 24);
    const flags = buf[off + 12]!;
    if (len < 0 || len > this.maxBody) {
      this.reason =
        len < 0 ? `negative body length ${len}` : `body length ${len} is over the limit of ${this.maxBody}`;
      return -1;
    }
    if ((flags & ~KNOWN_FLAGS) !== 0 || (buf[off + 13]! | buf[off + 14]! | buf[off + 15]!) !== 0) {
      this.reason = `unknown flags 0x${flags.toString(16)} or non-zero reserved bytes`;
      return -1;
    }
    this.msgid = buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24);
    this.seq = (buf[off + 8]! | (buf[off + 9]! << 8) | (buf[off + 10]! << 16) | (buf[off + 11]! << 24)) >>> 0;
    this.flags = flags;
    return len;
  }
}

export function seqCodec(opts: CodecOptions = {}): Codec {
  const maxBody = checkMaxBody(opts.maxBody);
  return {
    name: 'seq',
    hasMsgid: true,
    hasSeq: true,
    maxBody,
    createDecoder(sink: FrameSink): Decoder {
      return new SeqDecoder(sink, maxBody);
    },
    ...frameEncoders({
      overhead: SEQ_HEADER_LENGTH,
      check(msgid, body, seq, flags) {
        checkInt32('seq msgid', msgid);
        checkBody('seq', body, maxBody);
        if (!Number.isInteger(seq) || seq < 0 || seq > 0xffffffff) {
          throw new RangeError(`seq must be a uint32, got ${seq}`);
        }
        if ((flags & ~KNOWN_FLAGS) !== 0) throw new RangeError(`unknown seq flags 0x${flags.toString(16)}`);
      },
      put(target, offset, msgid, body, seq, flags) {
        putUint32LE(target, offset, msgid);
        putUint32LE(target, offset + 4, body.length);
        putUint32LE(target, offset + 8, seq);
        putUint32LE(target, offset + 12, flags); // flags, then three reserved zero bytes
        target.set(body, offset + SEQ_HEADER_LENGTH);
      },
    }),
  };
}
