// u32be: a 4-byte big-endian unsigned body length, then the body. No msgid.
import {
  type Codec,
  type CodecOptions,
  checkBody,
  checkMaxBody,
  type Decoder,
  type FrameSink,
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
    encode(_msgid: number, body: Uint8Array): Buffer {
      checkBody('u32be', body, maxBody);
      const out = Buffer.allocUnsafe(4 + body.length);
      out.writeUInt32BE(body.length, 0);
      out.set(body, 4);
      return out;
    },
  };
}
