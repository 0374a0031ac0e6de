// The peer of an accepted TCP connection, read once while the connection is surely open: after a
// reset the kernel no longer has it, and "connection lost" is counted per peer. Most connections
// never show it to anyone, so the cheap way comes first: an IPv4 peer as one number from the native
// addon, turned into a string only when asked.
import type { Socket } from 'node:net';
import { nativePeer4 } from './native/addon.js';

export interface PeerName {
  address?: string;
  port?: number;
}
type HandleSocket = Socket & {
  _handle?: { fd?: number; getpeername?(out: PeerName): number } | null;
  _peername?: PeerName;
};

const peer4 = nativePeer4();

/**
 * An IPv4 peer as address * 65536 + port: one getpeername(2), no object and no string. node's
 * own read builds an object and two strings on the socket; in place that measured 3 µs a
 * connection on Node 20 and 7–15 µs of a resumed TLS handshake on Node 24 (BENCHMARKS.md, TLS).
 * -1 when it cannot (no addon, not IPv4, node has read it already, the peer is gone): ask readPeer.
 */
export function packedPeer(raw: Socket): number {
  if (peer4 === undefined) return -1;
  const s = raw as HandleSocket;
  if (s._peername !== undefined || s.connecting) return -1;
  const fd = s._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? peer4(fd) : -1;
}

/** The dotted address of a packedPeer() answer (as node writes it). */
export function packedAddress(packed: number): string {
  const a = Math.floor(packed / 65536);
  return `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}`;
}

export function packedPort(packed: number): number {
  return packed % 65536;
}

/** readPeer's answer, overwritten by the next call (read it at once). */
const peerName: PeerName = {};

/**
 * The peer's address and port through node: one getpeername(2) straight from node's handle into a
 * shared object. socket.remoteAddress makes the same call but keeps a fresh object on each socket
 * (a property more), which cost about 2.5 µs per connection more on Node 24 under a reset-closing
 * connect loop (bench/loop-cost). What node has read already, or a socket without a handle, comes
 * from remoteAddress.
 */
export function readPeer(raw: Socket): PeerName {
  const s = raw as HandleSocket;
  const handle = s._handle;
  if (s._peername === undefined && typeof handle?.getpeername === 'function' && !s.connecting) {
    peerName.address = undefined;
    peerName.port = undefined;
    if (handle.getpeername(peerName) === 0) return peerName;
  }
  peerName.address = raw.remoteAddress;
  peerName.port = raw.remotePort;
  return peerName;
}
