// A thread of bench/servers/thread-handoff.ts: raw echo (the for-await loop of examples/echo.js)
// on the sockets the main thread moves here ('transfer'), or on its own descriptor of the main
// thread's socket, copied by TLF's helper process ('copy', from the build: npm run build).
import { createServer } from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { copyListener } from '../../dist/models/tlf/listener-copy.js';

function echo(socket) {
  socket.on('error', () => socket.destroy());
  (async () => {
    for await (const chunk of socket) socket.write(chunk);
  })().catch(() => socket.destroy());
}

const port = parentPort;
const { mode, keeperFd } = workerData;
let served = 0;
port.on('message', (m) => {
  if (m.conn) {
    served++;
    echo(m.conn);
    m.conn.resume();
  } else if (m.stop) {
    port.postMessage({ served });
    process.exit(0);
  }
});
if (mode === 'copy') {
  const copy = await copyListener(keeperFd);
  createServer((s) => {
    served++;
    echo(s);
  }).listen(copy, () => port.postMessage({ ready: true }));
} else {
  port.postMessage({ ready: true });
}
