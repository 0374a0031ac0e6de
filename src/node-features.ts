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
