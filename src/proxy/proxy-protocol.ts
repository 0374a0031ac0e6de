import { isIPv4, type Socket } from 'node:net';
import { bytesToIpv4, bytesToIpv6, ipv4ToBytes, ipv6ToBytes, unmapIpv4 } from './ip.js';

/**
 * PROXY protocol v1 (text) and v2 (binary), as HAProxy specifies it: encoders for the proxy's
 * side, an incremental parser that never throws and never holds more than one header's worth
 * of bytes, and `readProxyHeader`, which takes exactly the header off a fresh connection.
 */

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  version: 1 | 2;
  /** 'local' (v2 LOCAL): the balancer's own connection, e.g. a health check; no client. */
  command: 'proxy' | 'local';
  /** 'UNKNOWN' also covers v2 UNSPEC, UDP and UNIX: no usable addresses, none given. */
  family: 'TCP4' | 'TCP6' | 'UNKNOWN';
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** v2 TLV bytes after the addresses, unparsed; empty for v1. */
  tlvs: Buffer;
  /** Bytes the header took on the wire. */
  length: number;
}

export type ParseResult =
  | { status: 'incomplete' }
  | { status: 'done'; header: ProxyHeader; rest: Buffer }
  | { status: 'invalid'; reason: string };

/** v1 line including CRLF, per the spec. */
export const V1_MAX_LENGTH = 107;
/** Default bound on v2's address + TLV block, bytes (the field allows 65535). */
export const V2_DEFAULT_MAX_PAYLOAD = 4096;
export const DEFAULT_HEADER_TIMEOUT_MS = 5000;

export const V2_SIGNATURE = Buffer.from([
  0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a,
]);
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V2_HEADER = 16;

// ---------------------------------------------------------------------------------------
// Encoding

type Family = { v: 4; src: Buffer; dst: Buffer } | { v: 6; src: Buffer; dst: Buffer };

/** Both endpoints as one family: v4 when both are (or map to) IPv4, else v6. */
function family(src: ProxyEndpoint, dst: ProxyEndpoint): Family | undefined {
  if (!validPort(src.port) || !validPort(dst.port)) return undefined;
  const s4 = ipv4ToBytes(unmapIpv4(src.address));
  const d4 = ipv4ToBytes(unmapIpv4(dst.address));
  if (s4 && d4) return { v: 4, src: s4, dst: d4 };
  const s6 = s4 ? ipv6ToBytes(`::ffff:${bytesToIpv4(s4)}`) : ipv6ToBytes(src.address);
  const d6 = d4 ? ipv6ToBytes(`::ffff:${bytesToIpv4(d4)}`) : ipv6ToBytes(dst.address);
  return s6 && d6 ? { v: 6, src: s6, dst: d6 } : undefined;
}

function validPort(p: number): boolean {
  return Number.isInteger(p) && p >= 0 && p <= 65535;
}

/** `PROXY TCP4|TCP6 src dst sport dport\r\n`, or `PROXY UNKNOWN\r\n` when the endpoints are not both IP. */
export function encodeProxyV1(src?: ProxyEndpoint, dst?: ProxyEndpoint): Buffer {
  const f = src && dst ? family(src, dst) : undefined;
  if (!f || !src || !dst) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const text =
    f.v === 4
      ? `PROXY TCP4 ${bytesToIpv4(f.src)} ${bytesToIpv4(f.dst)} ${src.port} ${dst.port}\r\n`
      : `PROXY TCP6 ${bytesToIpv6(f.src)} ${bytesToIpv6(f.dst)} ${src.port} ${dst.port}\r\n`;
  return Buffer.from(text, 'latin1');
}

/**
 * Binary header. PROXY command with TCP4/TCP6 addresses; AF_UNSPEC (the receiver keeps its
 * own view) when the endpoints are not both IP; `local` gives a LOCAL header.
 */
export function encodeProxyV2(
  src?: ProxyEndpoint,
  dst?: ProxyEndpoint,
  opts: { local?: boolean; tlvs?: Buffer } = {},
): Buffer {
  const tlvs = opts.tlvs ?? Buffer.alloc(0);
  const f = !opts.local && src && dst ? family(src, dst) : undefined;
  const addrLen = f === undefined ? 0 : f.v === 4 ? 12 : 36;
  const out = Buffer.alloc(V2_HEADER + addrLen + tlvs.length);
  V2_SIGNATURE.copy(out, 0);
  out[12] = opts.local ? 0x20 : 0x21;
  out[13] = f === undefined ? 0x00 : f.v === 4 ? 0x11 : 0x21;
  out.writeUInt16BE(addrLen + tlvs.length, 14);
  if (f && src && dst) {
    f.src.copy(out, 16);
    f.dst.copy(out, 16 + f.src.length);
    out.writeUInt16BE(src.port, 16 + 2 * f.src.length);
    out.writeUInt16BE(dst.port, 18 + 2 * f.src.length);
  }
  tlvs.copy(out, V2_HEADER + addrLen);
  return out;
}

// ---------------------------------------------------------------------------------------
// Parsing

export interface ParserOptions {
  /** Bound on v2's address + TLV block, bytes. Default V2_DEFAULT_MAX_PAYLOAD. */
  maxV2Payload?: number;
}

/**
 * Feed it chunks as they arrive; it answers 'incomplete' until it has a whole header (then
 * 'done' with the bytes after it) or knows the input cannot be one ('invalid' with a reason).
 * Holds at most one header's worth of bytes plus the last chunk. Never throws.
 */
export class ProxyHeaderParser {
  private buffered: Buffer = Buffer.alloc(0);
  private final: ParseResult | undefined;
  private readonly maxV2Payload: number;

  constructor(opts: ParserOptions = {}) {
    this.maxV2Payload = opts.maxV2Payload ?? V2_DEFAULT_MAX_PAYLOAD;
  }

  push(chunk: Uint8Array): ParseResult {
    if (this.final) return this.final;
    this.buffered = this.buffered.length === 0 ? Buffer.from(chunk) : Buffer.concat([this.buffered, chunk]);
    const r = parseProxyHeader(this.buffered, { maxV2Payload: this.maxV2Payload });
    if (r.status !== 'incomplete') {
      this.final = r;
      this.buffered = Buffer.alloc(0);
    }
    return r;
  }
}

/** Parses a header at the start of `buf`. Pure; never throws. */
export function parseProxyHeader(buf: Buffer, opts: ParserOptions = {}): ParseResult {
  if (buf.length === 0) return { status: 'incomplete' };
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf, opts.maxV2Payload ?? V2_DEFAULT_MAX_PAYLOAD);
  return { status: 'invalid', reason: 'no PROXY header (first byte is neither "P" nor the v2 signature)' };
}

const INCOMPLETE: ParseResult = Object.freeze({ status: 'incomplete' });

function invalid(reason: string): ParseResult {
  return { status: 'invalid', reason };
}

/** Does `buf` start with `prefix`, as far as `buf` goes? */
function prefixMatches(buf: Buffer, prefix: Buffer): boolean {
  const n = Math.min(buf.length, prefix.length);
  return buf.subarray(0, n).equals(prefix.subarray(0, n));
}

function parseV1(buf: Buffer): ParseResult {
  if (!prefixMatches(buf, V1_PREFIX)) return invalid('malformed PROXY v1 header: bad "PROXY " prefix');
  // CRLF included, the line is at most V1_MAX_LENGTH bytes: CR at index V1_MAX_LENGTH - 2 at the latest.
  const limit = Math.min(buf.length, V1_MAX_LENGTH - 1);
  let cr = -1;
  for (let i = V1_PREFIX.length; i < limit; i++) {
    const c = buf[i]!;
    if (c === 0x0d) {
      cr = i;
      break;
    }
    if (c < 0x20 || c > 0x7e) return invalid('malformed PROXY v1 header: non-printable byte');
  }
  if (cr < 0) {
    return buf.length >= V1_MAX_LENGTH - 1
      ? invalid(`PROXY v1 header longer than ${V1_MAX_LENGTH} bytes`)
      : INCOMPLETE;
  }
  if (cr + 1 >= buf.length) return INCOMPLETE;
  if (buf[cr + 1] !== 0x0a) return invalid('malformed PROXY v1 header: CR not followed by LF');
  const length = cr + 2;
  const rest = buf.subarray(length);
  const fields = buf.toString('latin1', V1_PREFIX.length, cr).split(' ');
  const base = { version: 1 as const, command: 'proxy' as const, tlvs: Buffer.alloc(0), length };
  if (fields[0] === 'UNKNOWN') return { status: 'done', header: { ...base, family: 'UNKNOWN' }, rest };
  if (fields[0] !== 'TCP4' && fields[0] !== 'TCP6') {
    return invalid(`malformed PROXY v1 header: unknown protocol '${fields[0]}'`);
  }
  if (fields.length !== 5) return invalid('malformed PROXY v1 header: expected 4 fields after the protocol');
  const proto = fields[0] === 'TCP4' ? 'TCP4' : 'TCP6';
  const src = v1Address(proto, fields[1]!);
  const dst = v1Address(proto, fields[2]!);
  if (src === undefined || dst === undefined)
    return invalid(`malformed PROXY v1 header: bad ${proto} address`);
  const sp = parsePort(fields[3]!);
  const dp = parsePort(fields[4]!);
  if (sp === undefined || dp === undefined) return invalid('malformed PROXY v1 header: bad port');
  const header: ProxyHeader = {
    ...base,
    family: proto,
    source: { address: src, port: sp },
    destination: { address: dst, port: dp },
  };
  return { status: 'done', header, rest };
}

/** The address in node's own spelling (as socket.remoteAddress shows it), or undefined. */
function v1Address(proto: 'TCP4' | 'TCP6', text: string): string | undefined {
  if (proto === 'TCP4') return isIPv4(text) ? text : undefined;
  const bytes = ipv6ToBytes(text);
  return bytes ? bytesToIpv6(bytes) : undefined;
}

function parsePort(s: string): number | undefined {
  if (!/^(0|[1-9][0-9]{0,4})$/.test(s)) return undefined;
  const n = Number(s);
  return n <= 65535 ? n : undefined;
}

function parseV2(buf: Buffer, maxPayload: number): ParseResult {
  if (!prefixMatches(buf, V2_SIGNATURE)) return invalid('malformed PROXY v2 header: bad signature');
  if (buf.length < 13) return INCOMPLETE;
  const verCmd = buf[12]!;
  if (verCmd >> 4 !== 2) return invalid(`PROXY v2 header: unsupported version ${verCmd >> 4}`);
  const cmd = verCmd & 0x0f;
  if (cmd > 1) return invalid(`PROXY v2 header: unknown command ${cmd}`);
  if (buf.length < 14) return INCOMPLETE;
  // LOCAL ignores the family byte (the spec says so); PROXY needs a known one.
  const fam = buf[13]!;
  const af = fam >> 4;
  const transport = fam & 0x0f;
  if (cmd === 1 && (af > 3 || transport > 2)) {
    return invalid(`PROXY v2 header: unknown address family 0x${fam.toString(16)}`);
  }
  if (buf.length < V2_HEADER) return INCOMPLETE;
  const payload = buf.readUInt16BE(14);
  if (payload > maxPayload)
    return invalid(`PROXY v2 header: ${payload} bytes of addresses and TLVs (limit ${maxPayload})`);
  const length = V2_HEADER + payload;
  if (buf.length < length) return INCOMPLETE;
  const body = buf.subarray(V2_HEADER, length);
  const rest = buf.subarray(length);
  const base = { version: 2 as const, length };
  if (cmd === 0) {
    return {
      status: 'done',
      header: { ...base, command: 'local', family: 'UNKNOWN', tlvs: Buffer.alloc(0) },
      rest,
    };
  }
  const need = af === 1 ? 12 : af === 2 ? 36 : af === 3 ? 216 : 0;
  if (body.length < need)
    return invalid(`PROXY v2 header: ${body.length} address bytes, family needs ${need}`);
  const tlvs = Buffer.from(body.subarray(need));
  // Only TCP over IPv4/IPv6 carries a client we can use; the rest keep the real connection's view.
  if (transport !== 1 || (af !== 1 && af !== 2)) {
    return { status: 'done', header: { ...base, command: 'proxy', family: 'UNKNOWN', tlvs }, rest };
  }
  const w = af === 1 ? 4 : 16;
  const text = af === 1 ? bytesToIpv4 : bytesToIpv6;
  const header: ProxyHeader = {
    ...base,
    command: 'proxy',
    family: af === 1 ? 'TCP4' : 'TCP6',
    source: { address: text(body.subarray(0, w)), port: body.readUInt16BE(2 * w) },
    destination: { address: text(body.subarray(w, 2 * w)), port: body.readUInt16BE(2 * w + 2) },
    tlvs,
  };
  return { status: 'done', header, rest };
}

// ---------------------------------------------------------------------------------------
// On a live connection

export type ReadProxyHeaderResult =
  | { ok: true; remoteAddress: string; remotePort: number; header: ProxyHeader }
  | { ok: false; reason: string };

export interface ReadProxyHeaderOptions extends ParserOptions {
  /** The whole header must arrive within this, ms. Default DEFAULT_HEADER_TIMEOUT_MS. */
  timeoutMs?: number;
}

/**
 * Reads exactly one PROXY header (v1 or v2) off `socket` and puts any bytes after it back
 * (unshift), so the handler that runs next sees the stream as the client sent it, whichever
 * way it reads (data events, async iteration, pipe). Resolves with the real client (the
 * connection's own peer for LOCAL and UNKNOWN headers); on a malformed, missing or late
 * header, or a connection that ends first, destroys the socket and resolves with the reason.
 * Call it before anything else reads from the socket.
 */
export function readProxyHeader(
  socket: Socket,
  opts: ReadProxyHeaderOptions = {},
): Promise<ReadProxyHeaderResult> {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_HEADER_TIMEOUT_MS;
  const parser = new ProxyHeaderParser(opts);
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ReadProxyHeaderResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('readable', onReadable).off('end', onEnd).off('close', onClose).off('error', onError);
      if (!result.ok) {
        socket.on('error', () => {}); // a late error on the dying socket is not news
        socket.destroy();
      }
      resolve(result);
    };
    const onReadable = () => {
      let chunk: Buffer | null = socket.read() as Buffer | null;
      while (!settled && chunk !== null) {
        const r = parser.push(chunk);
        if (r.status === 'invalid') return finish({ ok: false, reason: r.reason });
        if (r.status === 'done') {
          if (r.rest.length > 0) socket.unshift(r.rest);
          const h = r.header;
          return finish({
            ok: true,
            remoteAddress: h.source?.address ?? socket.remoteAddress ?? 'unix',
            remotePort: h.source?.port ?? socket.remotePort ?? 0,
            header: h,
          });
        }
        chunk = socket.read() as Buffer | null;
      }
    };
    const onEnd = () => finish({ ok: false, reason: 'connection ended before a complete PROXY header' });
    const onClose = () => finish({ ok: false, reason: 'connection closed before a complete PROXY header' });
    const onError = (err: NodeJS.ErrnoException) =>
      finish({
        ok: false,
        reason: `connection error before a complete PROXY header: ${err.code ?? err.message}`,
      });
    const timer = setTimeout(
      () => finish({ ok: false, reason: `no complete PROXY header within ${timeoutMs} ms` }),
      timeoutMs,
    );
    socket.on('readable', onReadable).once('end', onEnd).once('close', onClose).once('error', onError);
    if (socket.destroyed) onClose();
  });
}
