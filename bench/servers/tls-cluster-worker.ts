// A node:cluster worker of tls-stack.ts --server node-tls --workers N: node's tls echo on the port
// the primary chose, the certificate it made (round-robin by the primary, node's default on Linux).
import { readFileSync } from 'node:fs';
import { nodeTlsEcho } from './node-tls-echo.js';

const { TLS_STACK_CERT: cert, TLS_STACK_KEY: key, TLS_STACK_PORT: port } = process.env;
if (!cert || !key || !port) {
  process.stderr.write('tls-cluster-worker: run by tls-stack.ts (TLS_STACK_CERT, _KEY, _PORT)\n');
  process.exit(1);
}
const server = nodeTlsEcho(readFileSync(cert), readFileSync(key), process.env.TLS_STACK_FOR_AWAIT === '1');
server.listen(Number(port), '127.0.0.1');
