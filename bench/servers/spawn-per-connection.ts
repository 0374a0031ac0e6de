// Reference for IF: per connection, start a bare `node -e 0` and wait for it to exit, then echo.
// Its connect rate is the rate of bare node process starts on this machine, measured with the
// same load and the same environment (NODE_EXTRA_CA_CERTS included) as tcpdaemon -m IF.
// usage: node --import tsx bench/servers/spawn-per-connection.ts [HOST:PORT]
import { spawn } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { announceListening, listenAddress } from './listen-address.js';

const { host, port } = listenAddress(process.argv[2]);
const server = createServer({ pauseOnConnect: true }, (socket) => {
  socket.on('error', () => socket.destroy());
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  child.on('error', () => socket.destroy());
  child.on('exit', () => socket.pipe(socket));
});
server.listen({ host, port, backlog: 4096 }, () => announceListening(server.address() as AddressInfo));

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
