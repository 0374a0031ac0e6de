// Shared by the reference servers: the listen address flag and the `listening` line the
// benchmark runner (and test/helpers/daemon.ts) read, in the shape tcpdaemon logs it.
import type { AddressInfo } from 'node:net';

/** Parses `HOST:PORT` or `[V6]:PORT`; default 127.0.0.1:0. Exits 1 on a bad address. */
export function listenAddress(text: string | undefined): { host: string; port: number } {
  const m = /^\[?(.*?)\]?:(\d+)$/.exec(text ?? '127.0.0.1:0');
  if (!m || Number(m[2]) > 65535) {
    process.stderr.write(`bad listen address '${text}': expected HOST:PORT\n`);
    process.exit(1);
  }
  return { host: m[1]!, port: Number(m[2]) };
}

/** Prints `{"msg":"listening","address":"HOST:PORT",...}` on stdout. */
export function announceListening(address: AddressInfo, extra: Record<string, unknown> = {}): void {
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const line = {
    level: 'info',
    pid: process.pid,
    msg: 'listening',
    address: `${host}:${address.port}`,
    ...extra,
  };
  process.stdout.write(`${JSON.stringify(line)}\n`);
}
