/** Where the daemon listens: TCP host:port or a unix socket path. */
export type ListenAddress = { kind: 'tcp'; host: string; port: number } | { kind: 'unix'; path: string };

/**
 * Parses the `-l` spelling: `ip:port`, `0:port` (all IPv4), `[v6]:port`, `host:port`,
 * or a unix socket path (`/run/x.sock`, `./x.sock`, `unix:x.sock`). Throws with a reason.
 */
export function parseListenAddress(text: string): ListenAddress {
  if (text.startsWith('unix:')) return unixPath(text.slice(5), text);
  if (text.includes('/') && !/^\[?[\d.:a-fA-F]*\]?:\d+$/.test(text)) return unixPath(text, text);
  const m = /^(?:\[([^\]]*)\]|([^:]*)):(\d{1,5})$/.exec(text);
  if (!m) throw new Error(`expected ip:port, [ipv6]:port or a unix socket path, got '${text}'`);
  const host = m[1] ?? m[2] ?? '';
  const port = Number(m[3]);
  if (port > 65535) throw new Error(`port must be 0..65535, got ${m[3]}`);
  if (host === '') throw new Error(`missing host in '${text}' (use 0:${port} for all IPv4 addresses)`);
  return { kind: 'tcp', host: host === '0' ? '0.0.0.0' : host, port };
}

function unixPath(path: string, text: string): ListenAddress {
  if (path === '') throw new Error(`empty unix socket path in '${text}'`);
  // sun_path is 108 bytes on Linux, including the terminating NUL.
  if (Buffer.byteLength(path) > 107) throw new Error(`unix socket path longer than 107 bytes: '${path}'`);
  return { kind: 'unix', path };
}

/** The address as logged and as tests read it back: `127.0.0.1:9527`, `[::1]:9527` or the path. */
export function formatAddress(addr: ListenAddress): string {
  if (addr.kind === 'unix') return addr.path;
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
