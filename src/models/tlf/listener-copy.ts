// TLF: each thread accepts on its OWN descriptor of the daemon's one listening socket, so a thread
// that exits (throw, process.exit, terminate) closes only its copy. On Node 20, threads sharing one
// fd number break when one exits: the fd is closed for all, and its reuse aborts the process.
// Node has no dup(); a handle sent over an IPC channel arrives as a new descriptor (SCM_RIGHTS), so
// a tiny helper process, which inherits the daemon's descriptor, sends it back to the thread. This
// works on every Node version we support, for TCP and unix sockets alike: no version switch.
import { type ChildProcess, spawn } from 'node:child_process';

/** A raw libuv TCP or Pipe handle as node's IPC delivers it: bound, not polled by anyone yet. */
export interface RawListenHandle {
  readonly fd: number;
  close(callback?: () => void): void;
}

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

/** A new descriptor of the socket the daemon holds at `keeperFd`, once the helper is reaped. */
export function copyListener(keeperFd: number): Promise<RawListenHandle> {
  const helper = spawn(process.execPath, ['-e', SEND_FD_3], {
    env: helperEnv(),
    stdio: ['ignore', 'ignore', 'inherit', keeperFd, 'ipc'],
  });
  return copyFrom(helper, 'copying the listening socket for a thread');
}
