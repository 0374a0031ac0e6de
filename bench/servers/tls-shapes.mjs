// Bare node TLS echo servers (pipe) in the shapes a TLS terminator can take, to size what the
// shape costs per handshake (BENCHMARKS.md, "The same handler on both sides"):
//   listen   tls.createServer(...).listen(): node accepts and wraps in one server
//   emit     a net server hands each accepted socket to a never-listening tls.Server
//   close    emit, plus a 'close' listener on the raw socket
//   remote   emit, plus node's remoteAddress read on the raw socket
//   tracked  emit, plus what tcpdaemon did to the raw socket first until session 13 (tracked in
//            a set until 'close', remoteAddress read)
// usage: node bench/servers/tls-shapes.mjs SHAPE CERT KEY  (one `listening` line)
import { readFileSync } from 'node:fs';
import { createServer as netServer } from 'node:net';
import { createServer as tlsServer } from 'node:tls';

const [shape, certFile, keyFile] = process.argv.slice(2);
const SHAPES = ['listen', 'emit', 'close', 'remote', 'tracked'];
if (!SHAPES.includes(shape) || !certFile || !keyFile) {
  process.stderr.write(`usage: tls-shapes.mjs ${SHAPES.join('|')} CERT KEY\n`);
  process.exit(1);
}
const cert = readFileSync(certFile);
const key = readFileSync(keyFile);
const echo = (s) => {
  s.on('error', () => s.destroy());
  s.pipe(s);
};
const listening = (port) => console.log(JSON.stringify({ msg: 'listening', address: `127.0.0.1:${port}` }));

if (shape === 'listen') {
  const server = tlsServer({ cert, key, noDelay: true }, echo);
  server.listen(0, '127.0.0.1', () => listening(server.address().port));
} else {
  const terminator = tlsServer({ cert, key, handshakeTimeout: 10_000 });
  terminator.on('secureConnection', echo);
  terminator.on('tlsClientError', (_err, s) => s.destroy());
  const open = new Set();
  const server = netServer((raw) => {
    if (shape === 'tracked') open.add(raw);
    if (shape === 'tracked' || shape === 'close') raw.once('close', () => open.delete(raw));
    if (shape === 'tracked' || shape === 'remote') raw.remoteAddress;
    raw.setNoDelay(true);
    terminator.emit('connection', raw);
  });
  server.listen(0, '127.0.0.1', () => listening(server.address().port));
}
