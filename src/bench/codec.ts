// How echo mode frames a message and what it expects back. Each connection writes its framer's
// `encode(body)` and compares the bytes it reads, in order, with `expectedReply(...)` of each
// request in flight, so any codec whose reply is known in advance plugs in here.
// Load threads get the codec's name and msgid (plain data) and build it with echoCodec().
import { FLAG_REPLY, MAX_BODY_LIMIT } from '../message/codecs/codec.js';
import { CODEC_NAMES, createCodec } from '../message/codecs/index.js';

export interface EchoCodec {
  readonly name: string;
  /** Largest body a message may carry, bytes. */
  readonly maxBody: number;
  /** The framing of one connection that keeps at most `depth` requests in flight, answered in order. */
  framer(depth: number): EchoFramer;
}

/** Frames one connection's requests. */
export interface EchoFramer {
  /**
   * Wire bytes of the next request carrying `body`. The buffer may be reused for the request
   * `depth` later, by which time this one has been answered (its bytes were all sent).
   */
  encode(body: Buffer): Buffer;
  /** Wire bytes the server must send back for `request` (built from `body`). */
  expectedReply(body: Buffer, request: Buffer): Buffer;
}

/** `--codec` names: raw bytes, or any of the message layer's codecs (`tdhb:W` with its width). */
export const ECHO_CODEC_NAMES: readonly string[] = ['raw', ...CODEC_NAMES];

const SEQ_OFFSET = 8; // seq header: msgid, length, seq (uint32 LE), flags
const NEWLINE = 0x0a;

/**
 * The codec `name` sending `msgid` (codecs that carry one). An echo server answers lars, tdhb,
 * u32be and line with the very frame it got; seq with the same frame flagged REPLY.
 * Throws RangeError for an unknown name.
 */
export function echoCodec(name: string, msgid: number): EchoCodec {
  if (name === 'raw') {
    const framer: EchoFramer = { encode: (body) => body, expectedReply: (_b, request) => request };
    return { name, maxBody: Number.MAX_SAFE_INTEGER, framer: () => framer };
  }
  const codec = createCodec(name, { maxBody: MAX_BODY_LIMIT });
  if (codec.hasSeq) {
    let seq = 0;
    const framer: EchoFramer = {
      encode(body) {
        seq = seq >= 0xffffffff ? 1 : seq + 1; // 0 would mean one-way: no reply
        return codec.encode(msgid, body, seq);
      },
      expectedReply: (body, request) =>
        codec.encode(msgid, body, request.readUInt32LE(SEQ_OFFSET), FLAG_REPLY),
    };
    return { name, maxBody: codec.maxBody, framer: () => framer };
  }
  if (name === 'line') {
    // A line cannot carry its own delimiter: newlines in the payload become spaces.
    const framer: EchoFramer = {
      encode: (body) => codec.encode(msgid, body.map(noNewline)),
      expectedReply: (_body, request) => request,
    };
    return { name, maxBody: codec.maxBody, framer: () => framer };
  }
  // lars, tdhb, u32be: a header that depends only on msgid and the body's length, then the body.
  const headerLength = codec.encode(msgid, EMPTY).length;
  return {
    name,
    maxBody: codec.maxBody,
    framer: (depth) => new ReusingFramer(depth, headerLength, (body) => codec.encode(msgid, body)),
  };
}

/**
 * Keeps `depth` frames and rewrites only the body of the oldest for the next request: no
 * allocation or header encoding per message once the ring is filled (bodies of one length).
 */
class ReusingFramer implements EchoFramer {
  private readonly frames: (Buffer | undefined)[];
  private next = 0;

  constructor(
    depth: number,
    private readonly headerLength: number,
    private readonly encodeFresh: (body: Buffer) => Buffer,
  ) {
    this.frames = new Array<Buffer | undefined>(depth);
  }

  encode(body: Buffer): Buffer {
    const i = this.next;
    this.next = i + 1 === this.frames.length ? 0 : i + 1;
    let frame = this.frames[i];
    if (frame !== undefined && frame.length === this.headerLength + body.length) {
      frame.set(body, this.headerLength);
    } else {
      frame = this.encodeFresh(body);
      this.frames[i] = frame;
    }
    return frame;
  }

  expectedReply(_body: Buffer, request: Buffer): Buffer {
    return request;
  }
}

const EMPTY = Buffer.alloc(0);

const noNewline = (b: number) => (b === NEWLINE ? 0x20 : b);
