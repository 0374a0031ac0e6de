// u32be: a 4-byte big-endian unsigned body length, then the body. No msgid.
import {
  type Codec,
  type CodecOptions,
  checkBody,
  checkMaxBody,
  type Decoder,
  type FrameSink,
  frameEncoders,
} from './codec.js';
import { LengthPrefixedDecoder } from './length-prefixed.js';

class U32beDecoder extends LengthPrefixedDecoder {
  constructor(
    sink: FrameSink,
    private readonly maxBody: number,
  ) {
    super(sink, 4);
  }

  protected readHeader(buf: Buffer, off: number): number {
    const len = ((buf[off]! << 24) | (buf[off + 1]! << 16) | (buf[off + 2]! << 8) | buf[off + 3]!) >>> 0;
    if (len > this.maxBody) {
      this.reason = `body length ${len} is over the limit of ${this.maxBody}`;
      return -1;
    }
    return len;
  }
}

export function u32beCodec(opts: CodecOptions = {}): Codec {
  const maxBody = checkMaxBody(opts.maxBody);
  return {
    name: 'u32be',
    hasMsgid: false,
    hasSeq: false,
    maxBody,
    createDecoder(sink: FrameSink): Decoder {
      return new U32beDecoder(sink, maxBody);
    },
    ...frameEncoders({
      overhead: 4,
      check(_msgid, body) {
        checkBody('u32be', body, maxBody);
      },
      put(target, offset, _msgid, body) {
        const n = body.length;
        target[offset] = n >>> 24;
        target[offset + 1] = n >>> 16;
        target[offset + 2] = n >>> 8;
        target[offset + 3] = n;
        target.set(body, offset + 4);
      },
    }),
  };
}
