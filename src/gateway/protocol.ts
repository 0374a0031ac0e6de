// What a client sees of the gateway besides its own messages: reserved msgids (negative, so they
// never collide with Lars-style business msgids) and the relay frame's layout.

export const GATEWAY_MSGID = {
  /**
   * gateway -> client, body = UTF-8 reason. Sent before a refused connection is closed, and, with a
   * codec that has msgids but no error flag (lars), instead of the reply to a failed request.
   */
  error: -1,
  /** client -> gateway, body = UTF-8 name. Reply: this session's id. Newest registration wins. */
  register: -2,
  /** client -> gateway, body = relay frame (encodeRelay). Reply: 'delivered' or 'stored'. */
  relay: -3,
  /** client -> gateway, empty body. Reply: this session's id. */
  session: -4,
} as const;

/** msgids from -99 to -1 belong to the gateway; a client frame with an unassigned one is refused. */
export const RESERVED_MIN = -99;

export function isReserved(msgid: number): boolean {
  return msgid < 0 && msgid >= RESERVED_MIN;
}

/** Relay frame body: u8 target length, target (UTF-8 name or session id), int32 LE msgid, payload. */
export function encodeRelay(target: string, msgid: number, body: Uint8Array = Buffer.alloc(0)): Buffer {
  const t = Buffer.from(target, 'utf8');
  if (t.length > 255) throw new RangeError(`relay target of ${t.length} bytes is longer than 255`);
  const out = Buffer.allocUnsafe(1 + t.length + 4 + body.length);
  out[0] = t.length;
  t.copy(out, 1);
  out.writeInt32LE(msgid, 1 + t.length);
  out.set(body, 5 + t.length);
  return out;
}

export function decodeRelay(buf: Buffer): { target: string; msgid: number; body: Buffer } | string {
  if (buf.length < 1) return 'empty relay frame';
  const n = buf[0]!;
  if (buf.length < 1 + n + 4) return `relay frame of ${buf.length} bytes is shorter than its header`;
  return {
    target: buf.toString('utf8', 1, 1 + n),
    msgid: buf.readInt32LE(1 + n),
    body: buf.subarray(5 + n),
  };
}
