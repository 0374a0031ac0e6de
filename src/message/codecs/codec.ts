// The one interface every wire format implements. A codec turns (msgid, body, seq, flags) into
// bytes and back; it knows nothing about sockets, routes or requests.

/** `seq` codec flag: this frame answers the request with the same seq. */
export const FLAG_REPLY = 0x01;
/** `seq` codec flag: the reply is an error; its body is the UTF-8 message. */
export const FLAG_ERROR = 0x02;

/** Lars' MESSAGE_LENGTH_LIMIT (65535 minus its 8-byte header): the default body limit, bytes. */
export const DEFAULT_MAX_BODY = 65527;
/** The largest body limit any codec accepts, bytes (lars and seq carry an int32 length). */
export const MAX_BODY_LIMIT = 0x7fffffff;

export interface CodecOptions {
  /** Largest body accepted or sent, bytes. Default 65527. */
  maxBody?: number;
}

/** Receives what a decoder finds, in wire order. */
export interface FrameSink {
  /**
   * One whole frame. Codecs without a msgid report 0; without seq/flags, 0 and 0.
   * `body` belongs to the callee: the decoder never writes to it again. Must not throw.
   */
  frame(msgid: number, body: Buffer, seq: number, flags: number): void;
  /** The input is not this codec's (`reason` says what was wrong). Called once; the decoder is dead after it. */
  error(reason: string): void;
}

/** Incremental decoder for one byte stream (one connection). */
export interface Decoder {
  /**
   * Feeds the next bytes, split anywhere. Calls `sink.frame` for every frame completed, then keeps
   * the rest. Never throws on bad input: calls `sink.error` and returns false (and false forever after).
   */
  push(chunk: Buffer): boolean;
  /** Stops for good: later pushes are ignored. For a consumer that closes mid-chunk. */
  stop(): void;
  /** Bytes of an unfinished frame held, bytes. */
  readonly buffered: number;
}

export interface Codec {
  /** The name it was created with, parameter included (`tdhb:4`). */
  readonly name: string;
  /** The wire carries a msgid; if not, frames decode with msgid 0 and `encode` ignores msgid. */
  readonly hasMsgid: boolean;
  /** The wire carries seq and flags (replies may come back out of order); if not, they decode as 0. */
  readonly hasSeq: boolean;
  /** Largest body accepted or sent, bytes. */
  readonly maxBody: number;
  createDecoder(sink: FrameSink): Decoder;
  /**
   * One whole frame, ready to write. Throws RangeError for what this format cannot carry
   * (a body over `maxBody`, a msgid outside int32, a newline inside a `line` body).
   */
  encode(msgid: number, body: Uint8Array, seq?: number, flags?: number): Buffer;
  /**
   * Optional (every built-in codec has it): writes the frame `encode` would return into `target`
   * from `offset` and returns its length, bytes, or -1 with nothing written when it does not fit.
   * Throws as `encode` does. Lets a connection put many frames into one buffer and one write.
   */
  encodeInto?(
    target: Buffer,
    offset: number,
    msgid: number,
    body: Uint8Array,
    seq?: number,
    flags?: number,
  ): number;
}

/** How a codec with a fixed overhead per frame checks and writes one. */
export interface FrameWriter {
  /** Header plus trailer, bytes: a frame is `overhead + body.length` long. */
  overhead: number;
  /** Throws RangeError for what the format cannot carry. */
  check(msgid: number, body: Uint8Array, seq: number, flags: number): void;
  /** Writes the checked frame at target[offset, offset + overhead + body.length). */
  put(target: Buffer, offset: number, msgid: number, body: Uint8Array, seq: number, flags: number): void;
}

/** A codec's `encode` and `encodeInto`, both from its one FrameWriter. */
export function frameEncoders(w: FrameWriter): Required<Pick<Codec, 'encode' | 'encodeInto'>> {
  const { overhead, check, put } = w;
  return {
    encode(msgid, body, seq = 0, flags = 0) {
      check(msgid, body, seq, flags);
      const out = Buffer.allocUnsafe(overhead + body.length);
      put(out, 0, msgid, body, seq, flags);
      return out;
    },
    encodeInto(target, offset, msgid, body, seq = 0, flags = 0) {
      check(msgid, body, seq, flags);
      const length = overhead + body.length;
      if (length > target.length - offset) return -1;
      put(target, offset, msgid, body, seq, flags);
      return length;
    },
  };
}

/** Stores a 32-bit integer (int32 or uint32) little-endian at target[offset, offset + 4). */
export function putUint32LE(target: Buffer, offset: number, value: number): void {
  target[offset] = value;
  target[offset + 1] = value >>> 8;
  target[offset + 2] = value >>> 16;
  target[offset + 3] = value >>> 24;
}

/** A frame as a value (UDP, tests); the stream path passes fields positionally instead. */
export interface Frame {
  msgid: number;
  body: Buffer;
  seq: number;
  flags: number;
}

/** Exactly one frame from `datagram` (UDP: one datagram = one frame), or why not. */
export function decodeDatagram(codec: Codec, datagram: Buffer): Frame | string {
  let found: Frame | undefined;
  let count = 0;
  let problem: string | undefined;
  const decoder = codec.createDecoder({
    frame(msgid, body, seq, flags) {
      count++;
      found ??= { msgid, body, seq, flags };
    },
    error(reason) {
      problem = reason;
    },
  });
  decoder.push(datagram);
  if (problem !== undefined) return problem;
  if (count === 0) return `datagram of ${datagram.length} bytes holds no whole frame`;
  if (count > 1 || decoder.buffered > 0) {
    return `datagram of ${datagram.length} bytes holds more than its frame`;
  }
  return found!;
}

export function checkMaxBody(maxBody: number | undefined): number {
  if (maxBody === undefined) return DEFAULT_MAX_BODY;
  if (!Number.isSafeInteger(maxBody) || maxBody < 0 || maxBody > MAX_BODY_LIMIT) {
    throw new RangeError(`maxBody must be an integer from 0 to ${MAX_BODY_LIMIT} bytes, got ${maxBody}`);
  }
  return maxBody;
}

export function checkBody(codec: string, body: Uint8Array, maxBody: number): void {
  if (body.length > maxBody) {
    throw new RangeError(`${codec}: body of ${body.length} bytes is over the limit of ${maxBody} bytes`);
  }
}

export function checkInt32(what: string, value: number): void {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) {
    throw new RangeError(`${what} must be an int32, got ${value}`);
  }
}
