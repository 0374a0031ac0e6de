// line: the body, then one newline byte (0x0a). No msgid. A '\r' before the newline is part of
// the body. A line longer than maxBody bytes (newline not counted) is a protocol error, found as
// soon as that many bytes arrived without a newline.
import {
  type Codec,
  type CodecOptions,
  checkBody,
  checkMaxBody,
  type Decoder,
  type FrameSink,
  frameEncoders,
} from './codec.js';

const NL = 0x0a;

class LineDecoder implements Decoder {
  private dead = false;
  /** The unfinished line: acc[0, accLen). */
  private acc: Buffer | undefined;
  private accLen = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxBody: number,
  ) {}

  get buffered(): number {
    return this.accLen;
  }

  stop(): void {
    this.dead = true;
    this.acc = undefined;
    this.accLen = 0;
  }

  push(chunk: Buffer): boolean {
    if (this.dead) return false;
    if (this.accLen === 0) return this.scan(chunk, 0);
    const nl = chunk.indexOf(NL);
    const end = nl < 0 ? chunk.length : nl;
    if (this.accLen + end > this.maxBody) return this.fail();
    this.append(chunk, end);
    if (nl < 0) return true;
    const line = this.acc!.subarray(0, this.accLen);
    this.acc = undefined;
    this.accLen = 0;
    this.sink.frame(0, line, 0, 0);
    if (this.dead) return false;
    return this.scan(chunk, nl + 1);
  }

  private scan(buf: Buffer, off: number): boolean {
    const end = buf.length;
    while (off < end) {
      const nl = buf.indexOf(NL, off);
      if (nl < 0) break;
      if (nl - off > this.maxBody) return this.fail();
      this.sink.frame(0, buf.subarray(off, nl), 0, 0);
      if (this.dead) return false;
      off = nl + 1;
    }
    if (off === end) return true;
    if (end - off > this.maxBody) return this.fail();
    this.acc = Buffer.allocUnsafe(Math.min(2 * (end - off), this.maxBody));
    buf.copy(this.acc, 0, off, end);
    this.accLen = end - off;
    return true;
  }

  /** Adds chunk[0, end) to the unfinished line; room for twice what arrived, never past the limit. */
  private append(chunk: Buffer, end: number): void {
    const required = this.accLen + end;
    if (required > this.acc!.length) {
      const grown = Buffer.allocUnsafe(Math.min(2 * required, this.maxBody));
      this.acc!.copy(grown, 0, 0, this.accLen);
      this.acc = grown;
    }
    chunk.copy(this.acc!, this.accLen, 0, end);
    this.accLen = required;
  }

  private fail(): false {
    this.stop();
    this.sink.error(`line longer than ${this.maxBody} bytes`);
    return false;
  }
}

export function lineCodec(opts: CodecOptions = {}): Codec {
  const maxBody = checkMaxBody(opts.maxBody);
  return {
    name: 'line',
    hasMsgid: false,
    hasSeq: false,
    maxBody,
    createDecoder(sink: FrameSink): Decoder {
      return new LineDecoder(sink, maxBody);
    },
    ...frameEncoders({
      overhead: 1,
      check(_msgid, body) {
        checkBody('line', body, maxBody);
        if (body.indexOf(NL) >= 0) throw new RangeError('line: a body cannot contain a newline');
      },
      put(target, offset, _msgid, body) {
        target.set(body, offset);
        target[offset + body.length] = NL;
      },
    }),
  };
}
