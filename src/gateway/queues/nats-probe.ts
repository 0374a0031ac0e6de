// Before a NATS gateway or worker starts its processes: can this host reach any NATS server at all?
// A start-up failure then names the URL and the reason in one line, instead of a child's exit code.
import { connect } from 'node:net';
import { ConnectError, describeErrno } from '../../errors.js';

const PROBE_TIMEOUT_MS = 3000;

function probe(url: string): Promise<string | undefined> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = connect({ host: hostname.replace(/^\[|\]$/g, ''), port: Number(port) || 4222 });
    const done = (reason?: string) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(reason);
    };
    const timer = setTimeout(() => done('timed out'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done());
    socket.once('error', (err) => done(describeErrno(err)));
  });
}

/** Resolves when one of `servers` accepts a TCP connection; throws ConnectError naming each one's reason. */
export async function assertNatsReachable(servers: readonly string[]): Promise<void> {
  const reasons = await Promise.all(servers.map(probe));
  if (reasons.some((r) => r === undefined)) return;
  const each = servers.map((s, i) => `${s}: ${reasons[i]}`).join('; ');
  throw new ConnectError(`cannot reach NATS (${each})`);
}
