// The envelope: one binary message between a gateway and a worker, the same over every queue
// (framed by the message layer's u32be codec on ipc sockets; one NATS message payload on NATS).
//   [0]      kind u8
//   [1..4]   id   u32 LE (request id, or send id for SEND / SEND_RESULT)
//   [5..8]   msgid int32 LE (0 where unused)
//   then the kind's strings, each u16 LE byte length + UTF-8, then the body (the rest).

export const KIND = {
  /** gateway -> worker: one client message. Strings: session id, name, remote address; u16 port, u32 timeout ms. */
  request: 1,
  /** worker -> gateway: the reply to request `id`. */
  reply: 2,
  /** worker -> gateway: request `id` failed; body = UTF-8 message. */
  error: 3,
  /** worker -> gateway: request `id` was taken by the worker named in the string (NATS crash detection). */
  ack: 4,
  /** worker -> gateway: ctx.send(target, msgid, body); `id` correlates the SEND_RESULT. */
  send: 5,
  /** gateway -> worker: the outcome of SEND `id`; string: 'delivered' | 'stored' | error message; msgid 1 = ok. */
  sendResult: 6,
  /** worker -> gateway: the worker is retiring; send it nothing more and answer BYE_ACK. */
  bye: 7,
  /** gateway -> worker: nothing more will be sent on this connection. */
  byeAck: 8,
  /** worker -> gateway: request `id` is done and the handler sent no reply (a one-way message). */
  none: 9,
} as const;
export type Kind = (typeof KIND)[keyof typeof KIND];

/** Never changed once made: its encoding is kept (a new name makes a new one). */
export interface SessionInfo {
  /** `<gateway instance>:<n>`, unique across gateways. */
  readonly id: string;
  /** The name the client registered, '' when none. */
  readonly name: string;
  readonly remoteAddress: string;
  readonly remotePort: number;
}

export type Envelope =
  | { kind: 1; id: number; msgid: number; session: SessionInfo; timeoutMs: number; body: Buffer }
  | { kind: 2; id: number; msgid: number; body: Buffer }
  | { kind: 3; id: number; message: string }
  | { kind: 4; id: number; worker: string }
  | { kind: 5; id: number; msgid: number; target: string; body: Buffer }
  | { kind: 6; id: number; ok: boolean; text: string }
  | { kind: 7 }
  | { kind: 8 }
  | { kind: 9; id: number };

/** Bytes of every envelope's fixed part: kind, id, msgid. */
export const FIXED = 9;
const MAX_STRING = 0xffff;

class Writer {
  private readonly parts: Buffer[] = [];
  private length = 0;
  constructor(kind: number, id: number, msgid: number) {
    const head = Buffer.allocUnsafe(FIXED);
    head[0] = kind;
    head.writeUInt32LE(id >>> 0, 1);
    head.writeInt32LE(msgid | 0, 5);
    this.push(head);
  }
  private push(b: Buffer): void {
    this.parts.push(b);
    this.length += b.length;
  }
  str(s: string): this {
    const bytes = Buffer.from(s, 'utf8');
    if (bytes.length > MAX_STRING)
      throw new RangeError(`envelope string of ${bytes.length} bytes is too long`);
    const len = Buffer.allocUnsafe(2);
    len.writeUInt16LE(bytes.length, 0);
    this.push(len);
    this.push(bytes);
    return this;
  }
  end(body?: Uint8Array): Buffer {
    if (body && body.length > 0) this.push(Buffer.from(body.buffer, body.byteOffset, body.length));
    return Buffer.concat(this.parts, this.length);
  }
}

function writeFixed(out: Buffer, off: number, kind: number, id: number, msgid: number): void {
  out[off] = kind;
  out.writeUInt32LE(id >>> 0, off + 1);
  out.writeInt32LE(msgid | 0, off + 5);
}

function checkedLength(s: string): number {
  const n = Buffer.byteLength(s, 'utf8');
  if (n > MAX_STRING) throw new RangeError(`envelope string of ${n} bytes is too long`);
  return n;
}

/**
 * A session's fields as every request of it carries them (three strings, then the port), encoded
 * once per SessionInfo object: a gateway sends many requests per session, and a SessionInfo is
 * never changed once made (a new name makes a new one).
 */
const sessionFields = new WeakMap<SessionInfo, Buffer>();

function encodedSession(s: SessionInfo): Buffer {
  let bytes = sessionFields.get(s);
  if (bytes === undefined) {
    const size = 6 + checkedLength(s.id) + checkedLength(s.name) + checkedLength(s.remoteAddress) + 2;
    bytes = Buffer.allocUnsafe(size);
    let off = writeString(bytes, 0, s.id);
    off = writeString(bytes, off, s.name);
    off = writeString(bytes, off, s.remoteAddress);
    bytes.writeUInt16LE(s.remotePort & 0xffff, off);
    sessionFields.set(s, bytes);
  }
  return bytes;
}

/** A request envelope's fields (a gateway's WorkRequest is one): encoded without an envelope object. */
export type RequestFields = Omit<Extract<Envelope, { kind: 1 }>, 'kind'>;

/** Bytes of a request's fixed part, session fields and timeout: what comes before its body. */
function requestHead(e: RequestFields): number {
  return FIXED + encodedSession(e.session).length + 4;
}

/** Bytes of the request envelope of `e`. Throws RangeError for a session string too long. */
export function requestSize(e: RequestFields): number {
  return requestHead(e) + e.body.length;
}

/** Writes the request envelope of `e` at out[off..] (room checked by the caller); returns the bytes written. */
export function writeRequestInto(e: RequestFields, out: Buffer, off: number): number {
  const start = off;
  writeFixed(out, off, KIND.request, e.id, e.msgid);
  off += FIXED;
  const session = encodedSession(e.session);
  out.set(session, off);
  off += session.length;
  out.writeUInt32LE(Math.max(0, Math.min(0xffffffff, Math.round(e.timeoutMs))), off);
  out.set(e.body, off + 4);
  return off + 4 + e.body.length - start;
}

function writeString(out: Buffer, off: number, text: string): number {
  // Session ids, names and addresses are ASCII in practice: one byte per char, no encoder call.
  const n = text.length;
  let ascii = true;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c > 0x7f) {
      ascii = false;
      break;
    }
    out[off + 2 + i] = c;
  }
  if (ascii) {
    out.writeUInt16LE(n, off);
    return off + 2 + n;
  }
  const len = out.write(text, off + 2, 'utf8');
  out.writeUInt16LE(len, off);
  return off + 2 + len;
}

/**
 * Bytes `e` takes when written by writeEnvelopeInto: the kinds of the hot path (request, reply,
 * none); -1 for the others (encode them with encodeEnvelope). Throws RangeError as encodeEnvelope.
 */
export function envelopeSize(e: Envelope): number {
  switch (e.kind) {
    case KIND.request:
      return requestHead(e) + e.body.length;
    case KIND.reply:
      return FIXED + e.body.length;
    case KIND.none:
      return FIXED;
    default:
      return -1;
  }
}

/** Writes `e` (a kind envelopeSize() sizes) at out[off..], which has room; returns the bytes written. */
export function writeEnvelopeInto(e: Envelope, out: Buffer, off: number): number {
  switch (e.kind) {
    case KIND.request:
      return writeRequestInto(e, out, off);
    case KIND.reply:
      writeFixed(out, off, e.kind, e.id, e.msgid);
      out.set(e.body, off + FIXED);
      return FIXED + e.body.length;
    case KIND.none:
      writeFixed(out, off, e.kind, e.id, 0);
      return FIXED;
    default:
      throw new TypeError(`envelope kind ${e.kind} is not written in place; use encodeEnvelope`);
  }
}

export function encodeEnvelope(e: Envelope): Buffer {
  switch (e.kind) {
    case KIND.request:
    case KIND.reply: {
      const out = Buffer.allocUnsafe(envelopeSize(e));
      writeEnvelopeInto(e, out, 0);
      return out;
    }
    case KIND.error:
      return new Writer(e.kind, e.id, 0).end(Buffer.from(e.message, 'utf8'));
    case KIND.ack:
      return new Writer(e.kind, e.id, 0).str(e.worker).end();
    case KIND.send:
      return new Writer(e.kind, e.id, e.msgid).str(e.target).end(e.body);
    case KIND.sendResult:
      return new Writer(e.kind, e.id, e.ok ? 1 : 0).str(e.text).end();
    case KIND.bye:
    case KIND.byeAck:
      return new Writer(e.kind, 0, 0).end();
    case KIND.none:
      return new Writer(e.kind, e.id, 0).end();
  }
}

class Reader {
  off = FIXED;
  constructor(private readonly buf: Buffer) {}
  str(): string {
    const len = this.u16();
    if (this.off + len > this.buf.length) throw new RangeError('envelope string runs past the end');
    const s = this.buf.toString('utf8', this.off, this.off + len);
    this.off += len;
    return s;
  }
  u16(): number {
    if (this.off + 2 > this.buf.length) throw new RangeError('envelope is truncated');
    const n = this.buf.readUInt16LE(this.off);
    this.off += 2;
    return n;
  }
  u32(): number {
    if (this.off + 4 > this.buf.length) throw new RangeError('envelope is truncated');
    const n = this.buf.readUInt32LE(this.off);
    this.off += 4;
    return n;
  }
  rest(): Buffer {
    return this.buf.subarray(this.off);
  }
}

/**
 * The session of the last request a worker decoded, by its encoded fields: a gateway sends the
 * requests of one client read back to back, so most requests carry the fields of the one before,
 * and reuse its SessionInfo instead of decoding three strings again. One per link (or NATS worker).
 */
export class SessionCache {
  /** A copy of the session fields of `info`'s request (ids, name, address, port). */
  bytes: Buffer = Buffer.alloc(0);
  info: SessionInfo | undefined;
  /** Requests that reused `info` / that decoded their own. */
  hits = 0;
  misses = 0;
}

/** Where the session fields of the request in `buf` end (3 strings, then the port); throws RangeError when truncated. */
function sessionEnd(buf: Buffer): number {
  let off = FIXED;
  for (let i = 0; i < 3; i++) {
    if (off + 2 > buf.length) throw new RangeError('envelope is truncated');
    off += 2 + buf.readUInt16LE(off);
  }
  if (off + 2 > buf.length) throw new RangeError('envelope string runs past the end');
  return off + 2;
}

function sameBytes(buf: Buffer, start: number, end: number, cached: Buffer): boolean {
  const n = end - start;
  if (n !== cached.length) return false;
  // Session fields are a few dozen bytes: a loop is cheaper than a native compare call.
  for (let i = 0; i < n; i++) if (buf[start + i] !== cached[i]) return false;
  return true;
}

/**
 * Decodes one envelope; throws RangeError naming what is wrong (the caller drops that link).
 * `sessions`: a request whose session fields equal the last one's gets the same SessionInfo.
 */
export function decodeEnvelope(buf: Buffer, sessions?: SessionCache): Envelope {
  if (buf.length < FIXED) throw new RangeError(`envelope of ${buf.length} bytes is shorter than its header`);
  const kind = buf[0]!;
  const id = buf.readUInt32LE(1);
  const msgid = buf.readInt32LE(5);
  switch (kind) {
    case KIND.request: {
      if (sessions !== undefined) {
        const end = sessionEnd(buf);
        if (end + 4 > buf.length) throw new RangeError('envelope is truncated');
        let session = sessions.info;
        if (session !== undefined && sameBytes(buf, FIXED, end, sessions.bytes)) sessions.hits++;
        else {
          const r = new Reader(buf);
          session = { id: r.str(), name: r.str(), remoteAddress: r.str(), remotePort: r.u16() };
          sessions.bytes = Buffer.from(buf.subarray(FIXED, end));
          sessions.info = session;
          sessions.misses++;
        }
        return { kind, id, msgid, session, timeoutMs: buf.readUInt32LE(end), body: buf.subarray(end + 4) };
      }
      const r = new Reader(buf);
      const session = { id: r.str(), name: r.str(), remoteAddress: r.str(), remotePort: r.u16() };
      const timeoutMs = r.u32();
      return { kind, id, msgid, session, timeoutMs, body: r.rest() };
    }
    case KIND.reply:
      return { kind, id, msgid, body: buf.subarray(FIXED) };
    case KIND.error:
      return { kind, id, message: buf.toString('utf8', FIXED) };
    case KIND.ack:
      return { kind, id, worker: new Reader(buf).str() };
    case KIND.send: {
      const r = new Reader(buf);
      return { kind, id, msgid, target: r.str(), body: r.rest() };
    }
    case KIND.sendResult:
      return { kind, id, ok: msgid === 1, text: new Reader(buf).str() };
    case KIND.bye:
    case KIND.byeAck:
      return { kind };
    case KIND.none:
      return { kind, id };
    default:
      throw new RangeError(`unknown envelope kind ${kind}`);
  }
}
