// The smallest TCP proxy a node user would write with public API only, as a reference front
// for the proxy benchmarks: what node itself costs per forwarded message and connection on
// this machine, without health checks, retries, idle timeouts, stats or PROXY headers.
// usage: node --import tsx bench/servers/minimal-proxy.ts LISTEN_HOST:PORT BACKEND_HOST:PORT
// Prints one `listening` JSON line with the address; SIGTERM or SIGINT stops it.
import { type AddressInfo, connect, createServer } from 'node:net';
import { announceListening, listenAddress } from './listen-address.js';

const listen = listenAddress(process.argv[2]);
const backend = listenAddress(process.argv[3]);

const server = createServer({ noDelay: true }, (client) => {
  const upstream = connect({ host: backend.host, port: backend.port, noDelay: true });
  const closeBoth = () => {
    client.destroy();
    upstream.destroy();
  };
  client.on('error', closeBoth);
  upstream.on('error', closeBoth);
  client.pipe(upstream).pipe(client);
});
server.listen({ host: listen.host, port: listen.port }, () =>
  announceListening(server.address() as AddressInfo),
);

for (const sig of ['SIGTERM', 'SIGINT'] as const) process.on(sig, () => process.exit(0));
