// tdhb:W — the C tcpdaemon's TDHB framing (TDHBSendData/TDHBReceiveData): the body length as
// W ASCII decimal digits, zero-padded (`%0*d`), then the body. No msgid. W is 1..20 (the C
// context's header buffer holds 20); the body limit is also capped at 10^W - 1.
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

export const TDHB_DEFAULT_WIDTH = 4;
export const TDHB_MAX_WIDTH = 20;

/** The header bytes as text for a log line: printable ASCII kept, the rest as \xNN. */
function showHeader(buf: Buffer, off: number, width: number): string {
  let out = '';
  for (let i = off; i < off + width; i++) {
    const c = buf[i]!;
    out +=
      c >= 0x20 && c < 0x7f && c !== 0x5c ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`;
  }
  return out;
}

class TdhbDecoder extends LengthPrefixedDecoder {
  constructor(
    sink: FrameSink,
    private readonly width: number,
    private readonly maxBody: number,
  ) {
    super(sink, width);
  }

  protected readHeader(buf: Buffer, off: number): number {
    let len = 0;
    for (let i = off; i < off + this.width; i++) {
      const digit = buf[i]! - 0x30;
      if (digit < 0 || digit > 9) {
        this.reason = `non-numeric header "${showHeader(buf, off, this.width)}"`;
        return -1;
      }
      len = len * 10 + digit;
    }
    if (len > this.maxBody) {
      this.reason = `body length ${len} is over the limit of ${this.maxBody}`;
      return -1;
    }
    return len;
  }
}

export function parseTdhbWidth(param: string | undefined): number {
  if (param === undefined || param === '') return TDHB_DEFAULT_WIDTH;
  const width = Number(param);
  if (!/^\d+$/.test(param) || width < 1 || width > TDHB_MAX_WIDTH) {
    throw new RangeError(`tdhb width must be an integer from 1 to ${TDHB_MAX_WIDTH}, got "${param}"`);
  }
  return width;
}

export function tdhbCodec(width = TDHB_DEFAULT_WIDTH, opts: CodecOptions = {}): Codec {
  parseTdhbWidth(String(width));
  const maxBody = Math.min(checkMaxBody(opts.maxBody), 10 ** width - 1);
  const name = `tdhb:${width}`;
  return {
    name,
    hasMsgid: false,
    hasSeq: false,
    maxBody,
    createDecoder(sink: FrameSink): Decoder {
      return new TdhbDecoder(sink, width, maxBody);
    },
    ...frameEncoders({
      overhead: width,
      check(_msgid, body) {
        checkBody(name, body, maxBody);
      },
      put(target, offset, _msgid, body) {
        // The length in decimal, zero-padded to `width` digits (it fits: maxBody < 10^width).
        let n = body.length;
        for (let i = offset + width - 1; i >= offset; i--) {
          target[i] = 0x30 + (n % 10);
          n = Math.floor(n / 10);
        }
        target.set(body, offset + width);
      },
    }),
  };
}
