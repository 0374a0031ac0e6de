// What the running Node.js offers beyond our floor (Node 20), by version. The one place that
// compares version numbers, so a flag that needs a newer Node can say which one by name.

/** [major, minor] of a Node version string such as 'v22.12.0' (default: this process). */
export function nodeVersion(version = process.version): [number, number] {
  const m = /^v?(\d+)\.(\d+)/.exec(version);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

/** Listening sockets with SO_REUSEPORT (libuv's UV_TCP_REUSEPORT): Node 22.12 and 23.1 on. */
export const REUSE_PORT_NEEDS = 'Node.js >= 22.12';

export function hasReusePort(version = process.version): boolean {
  const [major, minor] = nodeVersion(version);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

let transfer: boolean | undefined;

/**
 * Whether an accepted net.Socket can be moved to a worker thread (postMessage with the socket in
 * the transfer list; v24.22.3 can, v22 and v20 cannot). Probed, not read off the version: an
 * unconnected socket is refused as "not transferable in its current state" where the feature
 * exists, and as an invalid transfer object where it does not.
 */
export async function canTransferSockets(): Promise<boolean> {
  if (transfer !== undefined) return transfer;
  const { MessageChannel } = await import('node:worker_threads');
  const { Socket } = await import('node:net');
  const { port1 } = new MessageChannel();
  const probe = new Socket();
  try {
    port1.postMessage(probe, [probe as unknown as ArrayBuffer]);
    transfer = true;
  } catch (err) {
    transfer = (err as NodeJS.ErrnoException).code === 'ERR_WORKER_HANDLE_NOT_TRANSFERABLE';
  } finally {
    port1.close();
    probe.destroy();
  }
  return transfer;
}
