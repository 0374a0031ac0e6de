// TLF: each thread accepts on its OWN descriptor of the daemon's one listening socket, so a thread
// that exits (throw, process.exit, terminate) closes only its copy. On Node 20, threads sharing one
// fd number break when one exits: the fd is closed for all, and its reuse aborts the process.
// Node has no dup(); a handle sent over an IPC channel arrives as a new descriptor (SCM_RIGHTS), so
// a tiny helper process sends back the listening socket it was given. This works on every Node
// version we support, for TCP and unix sockets alike: no version switch is needed.
import { type ChildProcess, spawn } from 'node:child_process';
import { linkSync, renameSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:net';
import type { ListenAddress } from '../listen-address.js';

/** A raw libuv TCP or Pipe handle as node's IPC delivers it: listening, not polled by anyone. */
export interface RawListenHandle {
  readonly fd: number;
  close(callback?: () => void): void;
}

/** Gives back the handle it is sent. */
const ECHO_HANDLE = "process.once('message',(m,h)=>process.send('copy',h,{},()=>process.exit(0)))";
/** Sends back its fd 3 (a listening socket it inherited) without accepting on it. */
const SEND_FD_3 =
  "const s=new (require('node:net').Socket)({fd:3,readable:false,writable:false});process.send('copy',s._handle,{},()=>process.exit(0))";

/** Milliseconds a helper may take before the copy counts as failed. */
const HELPER_TIMEOUT_MS = 15_000;

/**
 * The helper is our own few lines: it makes no TLS connection and loads no user code, so it starts
 * without NODE_EXTRA_CA_CERTS (~37 ms on Node 20) and NODE_OPTIONS (a user's --import ...).
 */
function helperEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_EXTRA_CA_CERTS;
  delete env.NODE_OPTIONS;
  return env;
}

/** Resolves with the handle the helper sends, once the helper has exited (no zombie left to reap). */
function copyFrom(helper: ChildProcess, what: string): Promise<RawListenHandle> {
  return new Promise((resolve, reject) => {
    let copy: RawListenHandle | undefined;
    const timer = setTimeout(() => helper.kill('SIGKILL'), HELPER_TIMEOUT_MS);
    helper.on('message', (_m, handle) => {
      copy = handle as unknown as RawListenHandle | undefined;
    });
    helper.on('error', () => undefined); // 'exit' follows, or 'close' for a failed spawn
    helper.once('close', (code, sig) => {
      clearTimeout(timer);
      if (copy && typeof copy.fd === 'number' && copy.fd >= 0) resolve(copy);
      else reject(new Error(`${what}: helper process ended (code ${code}, signal ${sig}) without a copy`));
    });
  });
}

/**
 * Daemon side: takes a second descriptor of `server`'s socket (the keeper, never polled), then stops
 * the daemon's own accepting so only the threads accept. The socket stays in LISTEN as long as any
 * copy is open: while no thread polls (all restarting), connections wait in the backlog.
 * A unix socket path survives the close (libuv unlinks it; it is linked back at once).
 */
export async function keepListener(server: Server, addr: ListenAddress): Promise<RawListenHandle> {
  const helper = spawn(process.execPath, ['-e', ECHO_HANDLE], {
    env: helperEnv(),
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  const copied = copyFrom(helper, 'copying the listening socket');
  const own = (server as unknown as { _handle: object | null })._handle;
  if (!own) {
    helper.kill('SIGKILL');
    await copied.catch(() => undefined);
    throw new Error('copying the listening socket: the server is not listening');
  }
  helper.send('keep', own as never);
  const keeper = await copied;
  if (addr.kind === 'unix') {
    const spare = `${addr.path}.tcpdaemon-${process.pid}`;
    linkSync(addr.path, spare);
    server.close(); // unlinks addr.path synchronously ...
    renameSync(spare, addr.path); // ... and it is back within the same tick
  } else {
    server.close();
  }
  return keeper;
}

/** Thread side: a new descriptor of the socket the keeper holds at `keeperFd`. */
export function copyListener(keeperFd: number): Promise<RawListenHandle> {
  const helper = spawn(process.execPath, ['-e', SEND_FD_3], {
    env: helperEnv(),
    stdio: ['ignore', 'ignore', 'inherit', keeperFd, 'ipc'],
  });
  return copyFrom(helper, 'copying the listening socket for a thread');
}

/** Daemon side, at stop: closes the keeper; removes the unix socket file the daemon created. */
export function releaseListener(keeper: RawListenHandle, addr: ListenAddress): void {
  keeper.close();
  if (addr.kind !== 'unix') return;
  try {
    unlinkSync(addr.path);
  } catch {
    // already gone
  }
}
