// Echo servers for the loop-cost harness (bench/loop-cost/run.mjs): one node:net server per mode.
// usage: node bench/loop-cost/servers.mjs pipe|node-iter|our-iter|runner
//   pipe:      socket.pipe(socket)
//   node-iter: for await with node's own Readable iterator (bench/servers/plain-echo.ts --for-await)
//   our-iter:  for await with tcpdaemon's iterator (dist/socket-iterator.js), ended as the
//              connection path ends it (destroy once the peer's FIN is in and all is written)
//   runner:    tcpdaemon's connection path (dist/connection.js) without the daemon
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
if (mode === 'runner') {
  // tcpdaemon's connection path (ConnectionRunner, as IOMP -c 1 builds it with the defaults)
  // without the daemon around it, serving examples/echo.js.
  const { ConnectionRunner } = await import('../../dist/connection.js');
  const { ConnectionTracker } = await import('../../dist/connection-tracker.js');
  const { createLogger } = await import('../../dist/logger.js');
  const { default: tcpmain } = await import('../../examples/echo.js');
  const { logger } = createLogger({ level: 'info', workerId: 0, logfile: '/dev/null' });
  const runner = new ConnectionRunner({
    model: 'IOMP',
    workerId: 0,
    tcpmain,
    logger,
    signal: new AbortController().signal,
    tracker: new ConnectionTracker(),
    params: {},
    idleTimeout: 0,
    tcpNodelay: false,
    tcpLinger: undefined,
    unix: false,
    maxOutputBuffer: 16 * 1024 * 1024,
  });
  handlers.runner = (socket) => runner.serve(socket);
}
const handler = handlers[mode];
if (!handler) throw new Error(`unknown mode ${mode}`);
const server = createServer(handler);
server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
  process.stdout.write(`${server.address().port}\n`);
});
process.on('SIGTERM', () => process.exit(0));
