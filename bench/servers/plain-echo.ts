// Raw node:net echo server, the baseline tcpdaemon is compared with.
// usage: node --import tsx bench/servers/plain-echo.ts [HOST:PORT] [--for-await]   (default 127.0.0.1:0)
// --for-await echoes with the very loop of examples/echo.ts, so the comparison shows what tcpdaemon
// adds; without it, the idiomatic socket.pipe(socket).
// Prints one `listening` JSON line with the address; SIGTERM or SIGINT closes it.
import { type AddressInfo, createServer } from 'node:net';
import { announceListening, listenAddress } from './listen-address.js';

const { host, port } = listenAddress(process.argv[2]);
const forAwait = process.argv.includes('--for-await');
const server = createServer((socket) => {
  socket.on('error', () => socket.destroy());
  if (!forAwait) {
    socket.pipe(socket);
    return;
  }
  (async () => {
    for await (const chunk of socket) socket.write(chunk);
  })().catch(() => socket.destroy());
});
server.listen({ host, port, backlog: 4096 }, () => announceListening(server.address() as AddressInfo));

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
