// Socket activation (sd_listen_fds(3)): sockets systemd (or systemd-socket-activate) opened and
// passed as fd 3, 4, ... with LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES. Taken once per process,
// the variables then removed so that no child of ours takes them for its own.
// `-l systemd` takes the one passed socket, `-l systemd:NAME` the one named NAME
// (FileDescriptorName= of the .socket unit), and `-l ADDRESS` a passed socket listening on that
// exact address, if there is one (otherwise the daemon binds ADDRESS itself, as without systemd).
import { ListenError } from '../errors.js';
import { formatAddress, type ListenAddress } from '../listen-address.js';
import type { Logger } from '../types.js';
import { describeSocketFd, type PassedSocket } from './socket-fd.js';

/** The first fd systemd passes (SD_LISTEN_FDS_START). */
const FIRST_FD = 3;

export interface ListenFds {
  /** The passed sockets in fd order; empty when none were passed to this process. */
  readonly sockets: readonly PassedSocket[];
  /** Fds a listener took (each serves one listener only). */
  readonly used: Set<number>;
  /** Why the variables were there but gave no socket, e.g. LISTEN_PID is another process. */
  readonly ignored: string | undefined;
}

let taken: ListenFds | undefined;

/**
 * Reads and removes LISTEN_FDS, LISTEN_PID and LISTEN_FDNAMES (once: later calls return the
 * first answer). The sockets are described from /proc (TCP or unix, the address listened on).
 */
export function takeListenFds(env: NodeJS.ProcessEnv = process.env): ListenFds {
  if (taken) return taken;
  const count = env.LISTEN_FDS;
  const pid = env.LISTEN_PID;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  taken = { sockets: [], used: new Set(), ignored: undefined };
  if (count === undefined) return taken;
  if (pid === undefined) {
    taken = { ...taken, ignored: 'LISTEN_FDS is set but LISTEN_PID is not' };
    return taken;
  }
  if (pid !== String(process.pid)) {
    taken = { ...taken, ignored: `LISTEN_PID=${pid} is not this process (${process.pid})` };
    return taken;
  }
  const n = /^\d{1,4}$/.test(count) ? Number(count) : Number.NaN;
  if (!(n >= 0)) {
    taken = { ...taken, ignored: `LISTEN_FDS='${count}' is not a number of descriptors` };
    return taken;
  }
  const nameList = names === undefined ? [] : names.split(':');
  const sockets: PassedSocket[] = [];
  for (let i = 0; i < n; i++) {
    const fd = FIRST_FD + i;
    sockets.push(describeSocketFd(fd, nameList[i] ?? 'unknown'));
  }
  taken = { ...taken, sockets };
  return taken;
}

/**
 * The address to listen on: `addr` as it is, or a passed socket for it (with its fd). Throws
 * ListenError when `-l systemd[:NAME]` finds no such socket, or the socket is not one we can serve.
 */
export function passedSocketFor(addr: ListenAddress, logger: Logger): ListenAddress {
  const fds = takeListenFds();
  const pick = choose(addr, fds);
  if (pick === undefined) {
    const spare = fds.sockets.filter((s) => !fds.used.has(s.fd));
    if (spare.length > 0)
      logger.warn(
        { listen: formatAddress(addr), passed: spare.map(describe) },
        'sockets passed by systemd match no -l address; binding it instead (use -l systemd or -l systemd:NAME)',
      );
    return addr;
  }
  if (pick.address === undefined)
    throw new ListenError(
      `-l ${formatAddress(addr)}: passed fd ${pick.fd} (${pick.name}) is ${pick.problem ?? 'not a listening socket'}`,
    );
  fds.used.add(pick.fd);
  return { ...pick.address, fd: pick.fd };
}

function choose(addr: ListenAddress, fds: ListenFds): PassedSocket | undefined {
  const free = fds.sockets.filter((s) => !fds.used.has(s.fd));
  if (addr.kind !== 'systemd')
    return free.find((s) => s.address !== undefined && sameAddress(s.address, addr));
  const what = formatAddress(addr);
  if (fds.sockets.length === 0) {
    const why = fds.ignored ?? 'LISTEN_FDS is not set';
    throw new ListenError(
      `-l ${what}: no socket was passed by systemd (${why}); start through a .socket unit or systemd-socket-activate`,
    );
  }
  if (addr.name === undefined) {
    if (fds.sockets.length > 1)
      throw new ListenError(
        `-l systemd: ${fds.sockets.length} sockets were passed (${fds.sockets.map(describe).join(', ')}); name one with -l systemd:NAME`,
      );
    const [only] = free;
    if (!only) throw new ListenError('-l systemd: the passed socket is taken by another listener');
    return only;
  }
  const named = fds.sockets.filter((s) => s.name === addr.name);
  if (named.length === 0)
    throw new ListenError(
      `-l ${what}: no passed socket is named '${addr.name}' (passed: ${fds.sockets.map(describe).join(', ')})`,
    );
  const pick = named.find((s) => !fds.used.has(s.fd));
  if (!pick)
    throw new ListenError(`-l ${what}: the socket named '${addr.name}' is taken by another listener`);
  return pick;
}

function sameAddress(a: ListenAddress, b: ListenAddress): boolean {
  if (a.kind === 'unix' && b.kind === 'unix') return a.path === b.path;
  if (a.kind === 'tcp' && b.kind === 'tcp')
    return a.port === b.port && canonicalHost(a.host) === canonicalHost(b.host);
  return false;
}

/** `::1` and `0:0:0:0:0:0:0:1` alike; IPv4 as it is. */
function canonicalHost(host: string): string {
  if (!host.includes(':')) return host;
  try {
    return new URL(`http://[${host}]/`).hostname;
  } catch {
    return host;
  }
}

function describe(s: PassedSocket): string {
  const where = s.address ? formatAddress(s.address) : (s.problem ?? 'unusable');
  return `fd ${s.fd} ${s.name}=${where}`;
}

/** For the 'listening' log line: `{ systemdFd: 3 }` when the socket came from systemd, else `{}`. */
export function systemdSocket(addr: ListenAddress | undefined): { systemdFd?: number } {
  return addr !== undefined && addr.kind !== 'systemd' && addr.fd !== undefined ? { systemdFd: addr.fd } : {};
}
