// How echo mode frames a message and what it expects back. The engine writes
// `encode(body)` and compares the bytes it reads, in order, with `expectedReply(...)` of
// each request in flight, so any codec whose reply is known in advance plugs in here.
// Load threads get the codec's name and msgid (plain data) and build it with echoCodec().
import { FLAG_REPLY, MAX_BODY_LIMIT } from '../message/codecs/codec.js';
import { CODEC_NAMES, createCodec } from '../message/codecs/index.js';

export interface EchoCodec {
  readonly name: string;
  /** Largest body a message may carry, bytes. */
  readonly maxBody: number;
  /** Wire bytes of one request carrying `body`. */
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
    return {
      name,
      maxBody: Number.MAX_SAFE_INTEGER,
      encode: (body) => body,
      expectedReply: (_b, request) => request,
    };
  }
  const codec = createCodec(name, { maxBody: MAX_BODY_LIMIT });
  if (codec.hasSeq) {
    let seq = 0;
    return {
      name,
      maxBody: codec.maxBody,
      encode(body) {
        seq = seq >= 0xffffffff ? 1 : seq + 1; // 0 would mean one-way: no reply
        return codec.encode(msgid, body, seq);
      },
      expectedReply: (body, request) =>
        codec.encode(msgid, body, request.readUInt32LE(SEQ_OFFSET), FLAG_REPLY),
    };
  }
  const lineBased = name === 'line';
  return {
    name,
    maxBody: codec.maxBody,
    // A line cannot carry its own delimiter: newlines in the payload become spaces.
    encode: (body) => codec.encode(msgid, lineBased ? body.map((b) => (b === NEWLINE ? 0x20 : b)) : body),
    expectedReply: (_body, request) => request,
  };
}
