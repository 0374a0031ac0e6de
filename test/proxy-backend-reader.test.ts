import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { BackendReader, LARGE_READ, SMALL_READ } from '../src/proxy/backend-reader.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { listen, type TestServer } from './helpers/proxy.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

checkNoLeftoverProcesses();

/** A client socket to a server that reads nothing until `resume()` is called on its side. */
async function stalledPair(): Promise<{ dst: Socket; server: TestServer; far: () => Socket }> {
  const server = await listen((s) => s.pause());
  cleanup.push(() => server.close());
  const dst = netConnect({ port: server.port, host: '127.0.0.1' });
  await once(dst, 'connect');
  cleanup.push(() => dst.destroy());
  while (server.sockets.size === 0) await new Promise((r) => setTimeout(r, 5));
  return { dst, server, far: () => [...server.sockets][0]! };
}

/**
 * Plays node's part: asks the reader for its buffer, fills `n` bytes (a running byte
 * sequence) and reports the read, as net does for a socket created with `onread`.
 */
function feed(reader: BackendReader, n: number, seq: { next: number }): { buf: Uint8Array; ok: boolean } {
  const buf = (reader.onread.buffer as () => Uint8Array)();
  const len = Math.min(n, buf.length);
  for (let i = 0; i < len; i++) buf[i] = seq.next++ & 0xff;
  return { buf, ok: reader.onread.callback(len, buf) };
}

describe('BackendReader', () => {
  it('never hands node a buffer that a pending write holds, and the bytes arrive intact', async () => {
    const { dst, far } = await stalledPair();
    const peer = far();
    const got = createHash('sha256');
    let n = 0;
    peer.on('data', (d: Buffer) => {
      got.update(d);
      n += d.length;
    });
    peer.pause();
    const reader = new BackendReader(dst);
    const seq = { next: 0 };
    const held = new Set<Uint8Array>();
    const sizes = [SMALL_READ, 100, LARGE_READ, 5000, 1, SMALL_READ - 1, LARGE_READ];
    let total = 0;
    for (let i = 0; held.size < 20 && i < 10_000; i++) {
      const { buf, ok } = feed(reader, sizes[i % sizes.length]!, seq);
      assert.ok(!held.has(buf), `read ${i} went into a buffer a pending write holds`);
      total += Math.min(sizes[i % sizes.length]!, buf.length);
      if (dst.writableLength > 0) held.add(buf);
      if (!ok) {
        // node stops reading on a false return, the proxy resumes on 'drain'; here the
        // peer reads until then and stops again
        peer.resume();
        await once(dst, 'drain');
        peer.pause();
      }
    }
    assert.equal(held.size, 20, 'writes went pending: the case under test happened');
    peer.resume();
    while (n < total) await new Promise((r) => setTimeout(r, 5));
    const expected = Buffer.alloc(total);
    for (let i = 0; i < total; i++) expected[i] = i & 0xff;
    assert.equal(n, total);
    assert.equal(got.digest('hex'), createHash('sha256').update(expected).digest('hex'));
    reader.release();
  });

  it('grows to LARGE_READ after a read fills the small buffer, and goes back after a short read', async () => {
    const { dst, far } = await stalledPair();
    far().resume();
    const reader = new BackendReader(dst);
    const bufferNow = () => (reader.onread.buffer as () => Uint8Array)();
    const seq = { next: 0 };
    assert.equal(bufferNow().length, SMALL_READ);
    feed(reader, 10, seq);
    assert.equal(bufferNow().length, SMALL_READ, 'a short read keeps the small buffer');
    feed(reader, SMALL_READ, seq);
    assert.equal(bufferNow().length, LARGE_READ, 'a full read moves to the large one');
    feed(reader, SMALL_READ, seq);
    assert.equal(bufferNow().length, LARGE_READ, 'a read of SMALL_READ bytes keeps it');
    feed(reader, 10, seq);
    assert.equal(bufferNow().length, SMALL_READ, 'a short read moves back');
    reader.release();
  });

  it('a released buffer serves the next connection', async () => {
    const { dst } = await stalledPair();
    const first = new BackendReader(dst);
    const buf = (first.onread.buffer as () => Uint8Array)();
    first.release();
    assert.equal((first.onread.buffer as () => Uint8Array)().length, 0, 'nothing left for a late read');
    const second = new BackendReader(dst);
    assert.equal((second.onread.buffer as () => Uint8Array)(), buf);
    second.release();
  });
});
