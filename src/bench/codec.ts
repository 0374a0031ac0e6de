// How echo mode frames a message and what it expects back. The engine writes
// `encode(body)` and compares the bytes it reads, in order, with `expectedReply(...)` of
// each request in flight, so any codec whose reply is known in advance plugs in here.
// Codecs are chosen by name (`--codec`) because load threads get plain data, not functions.

import { MAX_BODY_LIMIT } from '../message/codecs/codec.js';
import { larsCodec } from '../message/codecs/lars.js';

export interface EchoCodec {
  readonly name: string;
  /** Wire bytes of one request carrying `body`. */
  encode(body: Buffer): Buffer;
  /** Wire bytes the server must send back for `request` (built from `body`). */
  expectedReply(body: Buffer, request: Buffer): Buffer;
}

/** Codec options from the command line (`--msgid 1` and the like, for later codecs). */
export type CodecOptions = Readonly<Record<string, string>>;

/** raw: the body alone, echoed byte for byte. */
const raw: EchoCodec = {
  name: 'raw',
  encode: (body) => body,
  expectedReply: (_body, request) => request,
};

/**
 * lars: the message layer's Lars frame (int32 LE msgid 1, int32 LE body length, body); an echo
 * business module (examples/gateway-echo.ts) sends the same frame back.
 */
const larsFrames = larsCodec({ maxBody: MAX_BODY_LIMIT });
const lars: EchoCodec = {
  name: 'lars',
  encode: (body) => larsFrames.encode(1, body),
  expectedReply: (_body, request) => request,
};

export const CODECS: Readonly<Record<string, (opts: CodecOptions) => EchoCodec>> = {
  raw: () => raw,
  lars: () => lars,
};
