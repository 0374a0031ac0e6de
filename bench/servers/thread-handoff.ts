// Two ways to feed worker threads, side by side with the same raw echo (the for-await loop of
// examples/echo.js), to decide TLF's design (issue 14, item 6):
//   --mode copy      what TLF does: the main thread binds and holds the socket; each thread gets
//                    its own descriptor of it from a helper process (src/models/tlf/listener-copy.ts)
//                    and accepts on it itself. Every Node >= 20.
//   --mode transfer  the main thread accepts (paused, nothing read) and moves each accepted
//                    net.Socket to the next thread with postMessage(m, [socket]). Only where
//                    node can transfer sockets to threads (v24.22.3 can; v22 and v20 cannot).
// usage: node --import tsx bench/servers/thread-handoff.ts HOST:PORT --mode copy|transfer [--threads N]
// Prints one `listening` JSON line once every thread serves, with `threadStartMs` (spawn to
// serving, per thread); SIGTERM prints a `worker exited` line per thread with its `served` count.
import * as net from 'node:net';
import { type AddressInfo, createServer } from 'node:net';
import { Worker } from 'node:worker_threads';
import { announceListening, listenAddress } from './listen-address.js';

type Mode = 'copy' | 'transfer';

interface BoundHandle {
  fd: number;
  getsockname(out: Record<string, unknown>): number;
}

const args = process.argv.slice(2);
const opt = (name: string) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const mode = (opt('--mode') ?? 'copy') as Mode;
const count = Number(opt('--threads') ?? 2);
const { host, port } = listenAddress(args[0]);

// copy: bound here, never accepted on here; the threads listen on their copies of it.
const keeper =
  mode === 'copy'
    ? (
        net as unknown as { _createServerHandle(a: string, p: number, t: number): BoundHandle }
      )._createServerHandle(host, port, 4)
    : undefined;
const threads: Worker[] = [];
const threadStartMs: number[] = [];
// Plain JS on the build (dist/): node 20 threads do not take tsx from the main thread's --import.
const file = new URL('./thread-handoff-thread.mjs', import.meta.url);
await Promise.all(
  Array.from({ length: count }, (_, i) => {
    const t0 = performance.now();
    const t = new Worker(file, { workerData: { mode, keeperFd: keeper?.fd ?? -1 } });
    threads.push(t);
    return new Promise<void>((resolve) =>
      t.once('message', () => {
        threadStartMs[i] = Math.round(performance.now() - t0);
        resolve();
      }),
    );
  }),
);

let accepting: net.Server | undefined;
let address: AddressInfo;
if (keeper) {
  const out: Record<string, unknown> = {};
  keeper.getsockname(out);
  address = out as unknown as AddressInfo;
} else {
  let next = 0;
  // Paused: a socket that has read anything can no longer be transferred.
  accepting = createServer({ pauseOnConnect: true }, (socket) => {
    const t = threads[next]!;
    next = (next + 1) % threads.length;
    t.postMessage({ conn: socket }, [socket as unknown as ArrayBuffer]);
  });
  await new Promise<void>((r) => accepting!.listen({ host, port, backlog: 4096 }, r));
  address = accepting.address() as AddressInfo;
}
process.stdout.write(`${JSON.stringify({ msg: 'thread start', mode, threadStartMs })}\n`);
announceListening(address);

async function stop(): Promise<void> {
  accepting?.close();
  for (const t of threads) {
    const got = new Promise<{ served: number }>((r) => t.once('message', r));
    t.postMessage({ stop: true });
    const { served } = await got;
    process.stdout.write(`${JSON.stringify({ msg: 'worker exited', served })}\n`);
  }
  process.exit(0);
}
for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => void stop());
