// What an inherited descriptor is: Node has no getsockname() or getsockopt() for a bare fd, so
// the socket's inode (/proc/self/fd/N -> socket:[INODE]) is looked up in the kernel's socket
// tables, /proc/net/tcp, tcp6 and unix, which give its type, state and local address (Linux).
import { readFileSync, readlinkSync } from 'node:fs';
import { endianness } from 'node:os';
import type { ListenAddress } from '../listen-address.js';

/** A TCP or unix address, as a passed socket has. */
export type SocketAddress = Exclude<ListenAddress, { kind: 'systemd' }>;

export interface PassedSocket {
  readonly fd: number;
  /** Its LISTEN_FDNAMES entry ('unknown' when none was given, as systemd names them). */
  readonly name: string;
  /** Where it listens; undefined when it is not a listening TCP or unix stream socket. */
  readonly address: SocketAddress | undefined;
  /** Why it cannot serve, when address is undefined. */
  readonly problem?: string;
}

/** TCP_LISTEN in /proc/net/tcp's st column. */
const TCP_LISTEN = '0A';
/** __SO_ACCEPTCON in /proc/net/unix's Flags column: listen() was called. */
const SO_ACCEPTCON = 0x10000;
/** SOCK_STREAM in /proc/net/unix's Type column. */
const SOCK_STREAM = 1;

export function describeSocketFd(fd: number, name: string): PassedSocket {
  let link: string;
  try {
    link = readlinkSync(`/proc/self/fd/${fd}`);
  } catch (err) {
    return { fd, name, address: undefined, problem: `not open (${(err as NodeJS.ErrnoException).code})` };
  }
  const inode = /^socket:\[(\d+)\]$/.exec(link)?.[1];
  if (inode === undefined) return { fd, name, address: undefined, problem: `not a socket (${link})` };
  const found = findTcp(inode, 'tcp') ?? findTcp(inode, 'tcp6') ?? findUnix(inode);
  if (found === undefined)
    return {
      fd,
      name,
      address: undefined,
      problem: `not a TCP or unix stream socket (${isUdp(inode) ? 'a UDP socket' : 'netlink, packet...?'})`,
    };
  return typeof found === 'string'
    ? { fd, name, address: undefined, problem: found }
    : { fd, name, address: found };
}

function table(file: string): string[] {
  try {
    return readFileSync(`/proc/net/${file}`, 'latin1').split('\n').slice(1);
  } catch {
    return [];
  }
}

/** The listening address of the TCP socket with this inode, a reason it is not listening, or undefined. */
function findTcp(inode: string, file: 'tcp' | 'tcp6'): SocketAddress | string | undefined {
  for (const line of table(file)) {
    const cols = line.trim().split(/\s+/);
    if (cols[9] !== inode) continue;
    if (cols[3] !== TCP_LISTEN) return 'a TCP socket that is not listening';
    const [hex, portHex] = (cols[1] ?? '').split(':');
    return { kind: 'tcp', host: hostFromHex(hex ?? ''), port: Number.parseInt(portHex ?? '', 16) };
  }
  return undefined;
}

function findUnix(inode: string): SocketAddress | string | undefined {
  for (const line of table('unix')) {
    const cols = line.trim().split(/\s+/);
    if (cols[6] !== inode) continue;
    if (Number.parseInt(cols[4] ?? '', 16) !== SOCK_STREAM) return 'a unix socket that is not SOCK_STREAM';
    if ((Number.parseInt(cols[3] ?? '', 16) & SO_ACCEPTCON) === 0)
      return 'a unix socket that is not listening';
    return { kind: 'unix', path: cols.slice(7).join(' ') || '(unnamed)' };
  }
  return undefined;
}

/**
 * /proc/net/tcp{,6} print an address as 32-bit words in host byte order (on little-endian
 * machines 0100007F is 127.0.0.1).
 */
function hostFromHex(hex: string): string {
  const bytes: number[] = [];
  for (let w = 0; w < hex.length; w += 8) {
    const word = hex.slice(w, w + 8);
    const order = endianness() === 'LE' ? [6, 4, 2, 0] : [0, 2, 4, 6];
    for (const b of order) bytes.push(Number.parseInt(word.slice(b, b + 2), 16));
  }
  if (bytes.length === 4) return bytes.join('.');
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((bytes[i]! << 8) | bytes[i + 1]!).toString(16));
  // The URL parser writes an IPv6 address in its short form ([::1]).
  return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
}

function isUdp(inode: string): boolean {
  return ['udp', 'udp6'].some((file) => table(file).some((line) => line.trim().split(/\s+/)[9] === inode));
}
