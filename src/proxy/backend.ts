import { isIP } from 'node:net';

/** Where a backend listens: TCP host and port, or a unix socket path. */
export type BackendAddress = { host: string; port: number } | { path: string };

/** One configured backend. */
export interface BackendSpec {
  /** Stable and unique: `host:port`, `[v6]:port` or the socket path. Used in logs and stats. */
  readonly id: string;
  readonly address: BackendAddress;
  /** Relative share of new connections, 1..MAX_WEIGHT. */
  readonly weight: number;
}

export const MAX_WEIGHT = 100;

/**
 * Parses `--backend` text: `HOST:PORT`, `[IPV6]:PORT` or a unix socket path (`/abs/path`,
 * `./rel/path` or `unix:PATH`), optionally followed by `,weight=N`.
 * Throws an Error whose message is a one-line reason.
 */
export function parseBackendSpec(text: string): BackendSpec {
  const [target = '', ...opts] = text.split(',');
  let weight = 1;
  for (const opt of opts) {
    const m = /^weight=(\d{1,3})$/.exec(opt.trim());
    if (!m) throw new Error(`backend '${text}': unknown option '${opt}' (expected weight=N)`);
    weight = Number(m[1]);
    if (weight < 1 || weight > MAX_WEIGHT) {
      throw new Error(`backend '${text}': weight must be 1..${MAX_WEIGHT}`);
    }
  }
  const address = parseBackendAddress(target.trim(), text);
  return { id: backendId(address), address, weight };
}

function parseBackendAddress(target: string, text: string): BackendAddress {
  if (target.startsWith('unix:')) target = target.slice(5);
  if (target.startsWith('/') || target.startsWith('./') || target.startsWith('../')) {
    return { path: target };
  }
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(target);
  if (!m) throw new Error(`backend '${text}': expected HOST:PORT, [IPV6]:PORT or a socket path`);
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) throw new Error(`backend '${text}': port must be 1..65535`);
  if (m[1] !== undefined && isIP(host) !== 6)
    throw new Error(`backend '${text}': '${host}' is not an IPv6 address`);
  return { host, port };
}

export function backendId(address: BackendAddress): string {
  if ('path' in address) return address.path;
  return isIP(address.host) === 6 ? `[${address.host}]:${address.port}` : `${address.host}:${address.port}`;
}
