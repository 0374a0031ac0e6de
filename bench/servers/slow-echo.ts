// An echo server that answers each chunk after a delay: the slow backend of the strategy
// comparison. usage: node --import tsx bench/servers/slow-echo.ts HOST:PORT DELAY_MS
import { type AddressInfo, createServer } from 'node:net';
import { announceListening, listenAddress } from './listen-address.js';

const { host, port } = listenAddress(process.argv[2]);
const delayMs = Number(process.argv[3] ?? 2);
const server = createServer((socket) => {
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk) => {
    setTimeout(() => {
      if (!socket.destroyed) socket.write(chunk);
    }, delayMs);
  });
  // Close only once the last delayed echo went out.
  socket.on('end', () => setTimeout(() => socket.end(), delayMs));
});
server.listen({ host, port, backlog: 4096 }, () => announceListening(server.address() as AddressInfo));

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
