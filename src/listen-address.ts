/**
 * Where the daemon listens: TCP host:port or a unix socket path; `fd` when the socket was passed
 * by systemd (socket activation: taken, not bound). 'systemd' is the `-l systemd[:NAME]` spelling
 * before the passed socket is looked up (src/systemd/listen-fds.ts turns it into tcp or unix).
 */
export type ListenAddress =
  | { kind: 'tcp'; host: string; port: number; fd?: number }
  | { kind: 'unix'; path: string; fd?: number }
  | { kind: 'systemd'; name: string | undefined };

/**
 * Parses the `-l` spelling: `ip:port`, `0:port` (all IPv4), `[v6]:port`, `host:port`,
 * a unix socket path (`/run/x.sock`, `./x.sock`, `unix:x.sock`), or `systemd` / `systemd:NAME`
 * (a socket passed by systemd). Throws with a reason.
 */
export function parseListenAddress(text: string): ListenAddress {
  if (text === 'systemd') return { kind: 'systemd', name: undefined };
  if (text.startsWith('systemd:')) {
    const name = text.slice(8);
    if (!/^[\x21-\x7e]{1,255}$/.test(name) || name.includes(':'))
      throw new Error(`expected systemd:NAME with a socket unit's FileDescriptorName, got '${text}'`);
    return { kind: 'systemd', name };
  }
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
  if (addr.kind === 'systemd') return addr.name === undefined ? 'systemd' : `systemd:${addr.name}`;
  if (addr.kind === 'unix') return addr.path;
  return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
}
