// lars: what the Lars reactor (aceld/Lars) writes on x86. 8-byte header, then the body:
//   [0..3] msgid  int32 little-endian
//   [4..7] msglen int32 little-endian, body bytes only
import {
  type Codec,
  type CodecOptions,
  checkBody,
  checkInt32,
  checkMaxBody,
  type Decoder,
  type FrameSink,
  frameEncoders,
  putUint32LE,
} from './codec.js';
import { LengthPrefixedDecoder } from './length-prefixed.js';

export const LARS_HEADER_LENGTH = 8;

class LarsDecoder extends LengthPrefixedDecoder {
  constructor(
    sink: FrameSink,
    private readonly maxBody: number,
  ) {
    super(sink, LARS_HEADER_LENGTH);
  }

  protected readHeader(buf: Buffer, off: number): number {
    const len = buf[off + 4]! | (buf[off + 5]! << 8) | (buf[off + 6]! << 16) | (buf[off + 7]! << 24);
    if (len < 0 || len > this.maxBody) {
      this.reason =
        len < 0 ? `negative body length ${len}` : `body length ${len} is over the limit of ${this.maxBody}`;
      return -1;
    }
    this.msgid = buf[off]! | (buf[off + 1]! << 8) | (buf[off + 2]! << 16) | (buf[off + 3]! << 24);
    return len;
  }
}

export function larsCodec(opts: CodecOptions = {}): Codec {
  const maxBody = checkMaxBody(opts.maxBody);
  return {
    name: 'lars',
    hasMsgid: true,
    hasSeq: false,
    maxBody,
    createDecoder(sink: FrameSink): Decoder {
      return new LarsDecoder(sink, maxBody);
    },
    ...frameEncoders({
      overhead: LARS_HEADER_LENGTH,
      check(msgid, body) {
        checkInt32('lars msgid', msgid);
        checkBody('lars', body, maxBody);
      },
      put(target, offset, msgid, body) {
        putUint32LE(target, offset, msgid);
        putUint32LE(target, offset + 4, body.length);
        target.set(body, offset + LARS_HEADER_LENGTH);
      },
    }),
  };
}
