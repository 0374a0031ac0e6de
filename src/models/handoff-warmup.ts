// A worker's first connection costs it ~3 ms more than later ones: node compiles its
// handle-receiving, socket and stream code on first use. So a fresh LF or IF worker is sent one
// internal connection before any client's: the daemon connects to a loopback socket of its own,
// hands the accepted end over like a client's, writes one byte and waits for it back. The
// worker echoes it with tcpdaemon's code, never the handler's, and it counts as no connection.
// Best effort: a worker that misses it is only slower once.
import { connect, createServer, type Server, type Socket } from 'node:net';
import type { WorkerHandle } from '../supervisor/supervisor.js';
import type { ToWorker } from '../worker/messages.js';

/** A warm-up connection not done by then is closed, ms. */
const WARMUP_TIMEOUT_MS = 5000;

export interface HandoffWarmup {
  warm(w: WorkerHandle): void;
  close(): void;
}

/** Listens on a loopback port of its own. Rejects only if loopback itself is unusable. */
export async function openHandoffWarmup(): Promise<HandoffWarmup> {
  const server: Server = createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  server.unref();
  const { port } = server.address() as { port: number };
  const waiting: WorkerHandle[] = [];
  const open = new Set<Socket>();
  server.on('connection', (far: Socket) => {
    const w = waiting.shift();
    far.on('error', () => far.destroy());
    if (!w) return far.destroy();
    const msg: ToWorker = { tdm: 'warm' };
    // Our copy is closed once it is on its way; the worker's copy is the connection's far end.
    w.send(msg, far).then(
      () => far.destroy(),
      () => far.destroy(),
    );
  });
  return {
    warm(w) {
      waiting.push(w);
      const near = connect({ port, host: '127.0.0.1' });
      open.add(near);
      const timer = setTimeout(() => near.destroy(), WARMUP_TIMEOUT_MS).unref();
      near.on('error', () => near.destroy());
      near.on('close', () => {
        clearTimeout(timer);
        open.delete(near);
        const i = waiting.indexOf(w);
        if (i >= 0) waiting.splice(i, 1);
      });
      near.once('data', () => near.end());
      near.write('w');
      near.unref();
    },
    close() {
      server.close();
      for (const s of open) s.destroy();
    },
  };
}
