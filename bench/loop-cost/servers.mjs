// Echo servers for the loop-cost harness (bench/loop-cost/run.mjs): one node:net server per mode.
// usage: node bench/loop-cost/servers.mjs pipe|node-iter|our-iter
//   pipe:      socket.pipe(socket)
//   node-iter: for await with node's own Readable iterator (bench/servers/plain-echo.ts --for-await)
//   our-iter:  for await with tcpdaemon's iterator (dist/socket-iterator.js), ended as the
//              connection path ends it (destroy once the peer's FIN is in and all is written)
// Prints the port on stdout.
import { createServer } from 'node:net';

const mode = process.argv[2];
const { useSocketIterator } = await import('../../dist/socket-iterator.js');

async function loop(socket) {
  for await (const chunk of socket) socket.write(chunk);
}

const handlers = {
  pipe(socket) {
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  },
  'node-iter'(socket) {
    socket.on('error', () => socket.destroy());
    loop(socket).catch(() => socket.destroy());
  },
  'our-iter'(socket) {
    socket.on('error', () => {});
    useSocketIterator(socket);
    loop(socket).then(
      () => {
        if (socket.destroyed) return;
        if (socket.readableEnded && socket.writableLength === 0) socket.destroy();
        else socket.end();
      },
      () => socket.destroy(),
    );
  },
};
const handler = handlers[mode];
if (!handler) throw new Error(`unknown mode ${mode}`);
const server = createServer(handler);
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
