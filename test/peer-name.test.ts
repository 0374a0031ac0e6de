// Reading an accepted connection's peer: the addon's packed number matches what node reads, and
// says -1 where node has to answer (IPv6, a closed socket, a peer node has read already).
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect as netConnect, type Server, type Socket } from 'node:net';
import { test } from 'node:test';
import { nativePeer4 } from '../src/native/addon.js';
import { packedAddress, packedPeer, packedPort, readPeer } from '../src/peer-name.js';

const built = nativePeer4() !== undefined;

/** One accepted socket on `host`, its client, and the server. */
async function accepted(host: string): Promise<{ server: Server; socket: Socket; client: Socket }> {
  const server = createServer();
  server.listen(0, host);
  await once(server, 'listening');
  const port = (server.address() as { port: number }).port;
  const got = once(server, 'connection');
  const client = netConnect(port, host);
  await once(client, 'connect');
  const [socket] = (await got) as [Socket];
  return { server, socket, client };
}

function close(c: { server: Server; socket: Socket; client: Socket }): void {
  c.client.destroy();
  c.socket.destroy();
  c.server.close();
}

test('packedAddress and packedPort unpack every corner of the range', () => {
  assert.equal(packedAddress(0), '0.0.0.0');
  assert.equal(packedPort(0), 0);
  const top = 0xffffffff * 65536 + 65535;
  assert.equal(packedAddress(top), '255.255.255.255');
  assert.equal(packedPort(top), 65535);
  const loop = 0x7f000001 * 65536 + 9527;
  assert.equal(packedAddress(loop), '127.0.0.1');
  assert.equal(packedPort(loop), 9527);
  assert.equal(packedAddress(0x0a01fe02 * 65536 + 1), '10.1.254.2');
});

test('an IPv4 peer: the packed number says what node says', {
  skip: built ? false : 'the native addon is not built',
}, async () => {
  const c = await accepted('127.0.0.1');
  try {
    const packed = packedPeer(c.socket);
    assert.ok(packed >= 0);
    assert.equal(packedAddress(packed), '127.0.0.1');
    assert.equal(packedPort(packed), c.client.localPort);
    assert.deepEqual(
      { ...readPeer(c.socket) },
      { address: '127.0.0.1', port: c.client.localPort, family: 'IPv4' },
    );
    // Once node has read it (remoteAddress), node's copy is the one to use.
    assert.equal(c.socket.remoteAddress, '127.0.0.1');
    assert.equal(packedPeer(c.socket), -1);
  } finally {
    close(c);
  }
});

test('an IPv6 peer, and a closed socket, are left to node', async () => {
  const v6 = await accepted('::1');
  try {
    assert.equal(packedPeer(v6.socket), -1);
    const peer = readPeer(v6.socket);
    assert.equal(peer.address, '::1');
    assert.equal(peer.port, v6.client.localPort);
  } finally {
    close(v6);
  }
  const v4 = await accepted('127.0.0.1');
  v4.socket.destroy();
  assert.equal(packedPeer(v4.socket), -1, 'no handle, no descriptor');
  close(v4);
});
