// node's tls echo, the reference of the TLS rows: one process (tls-stack.ts --server node-tls) or
// each node:cluster worker (tls-cluster-worker.ts). Echo by pipe, or by the loop of examples/echo.js
// on node's own iterator, ended as tcpdaemon ends a connection whose handler returned.
import { once } from 'node:events';
import { createServer, type Server } from 'node:tls';

export function nodeTlsEcho(cert: Buffer, key: Buffer, forAwait: boolean): Server {
  return createServer({ cert, key, noDelay: true }, (s) => {
    s.on('error', () => s.destroy());
    if (!forAwait) {
      s.pipe(s);
      return;
    }
    (async () => {
      for await (const chunk of s) {
        if (!s.write(chunk)) await once(s, 'drain');
      }
    })().then(
      () => s.end(),
      () => s.destroy(),
    );
  });
}
