import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StrategyName } from '../src/balance/strategies/index.js';
import { parseBackendSpec } from '../src/proxy/backend.js';
import { DEFAULT_FORWARD, type ForwardOptions } from '../src/proxy/forward.js';
import { BackendPool, type PoolOptions } from '../src/proxy/pool.js';
import { readProxyHeader } from '../src/proxy-protocol/header.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip, untilClosed } from './helpers/net.js';
import {
  deadPort,
  type Front,
  listen,
  memoryLogger,
  startFront,
  type TestServer,
  taggedEcho,
} from './helpers/proxy.js';

/** Everything a test starts, closed after it (before the leftover check runs). */
const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

checkNoLeftoverProcesses();

const opts: ForwardOptions = { ...DEFAULT_FORWARD, connectTimeoutMs: 2000 };

function pool(ports: (number | string)[], extra: Partial<PoolOptions> = {}): BackendPool {
  const specs = ports.map((p) => parseBackendSpec(typeof p === 'number' ? `127.0.0.1:${p}` : p));
  const p = new BackendPool(specs, { logger: memoryLogger().logger, checks: false, ...extra });
  cleanup.push(() => p.close());
  return p;
}

async function backends(n: number): Promise<TestServer[]> {
  const out = await Promise.all(Array.from({ length: n }, (_, i) => taggedEcho(`b${i}`)));
  for (const b of out) cleanup.push(() => b.close());
  return out;
}

async function front(
  p: BackendPool,
  o: ForwardOptions = opts,
  logger = memoryLogger().logger,
): Promise<Front> {
  const f = await startFront(p, o, logger);
  cleanup.push(() => f.close());
  return f;
}

/** Reads one '\n'-terminated line; bytes after it stay readable. */
function readLine(s: Socket, timeoutMs = 10000): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no line within ${timeoutMs} ms`)), timeoutMs);
    const onData = (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      const nl = buf.indexOf(0x0a);
      if (nl < 0) return;
      s.pause();
      done(undefined, buf.subarray(0, nl).toString());
      if (nl + 1 < buf.length) s.unshift(buf.subarray(nl + 1));
    };
    const onClose = () => done(new Error('closed before a line'));
    function done(err?: Error, line?: string) {
      clearTimeout(timer);
      s.off('data', onData).off('close', onClose).off('error', onClose);
      if (err) reject(err);
      else resolve(line!);
    }
    s.on('data', onData).on('close', onClose).on('error', onClose);
  });
}

/** Connects through the front; resolves with the socket and the tag of the backend behind it. */
async function via(f: Front, localAddress = '127.0.0.1'): Promise<{ s: Socket; tag: string }> {
  const s = netConnect({ port: f.port, host: '127.0.0.1', localAddress });
  await once(s, 'connect');
  cleanup.push(() => s.destroy());
  return { s, tag: await readLine(s) };
}

function deferred(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

async function until(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

function tally(tags: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const t of tags) out[t] = (out[t] ?? 0) + 1;
  return out;
}

/** Deterministic uniform [0, 1). */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (Math.imul(a, 1664525) + 1013904223) >>> 0;
    return a / 4294967296;
  };
}

describe('forwarding with each strategy', () => {
  it('roundrobin: bytes go both ways, connections take turns (weights honoured)', async () => {
    const bs = await backends(3);
    const p = pool([`127.0.0.1:${bs[0]!.port},weight=2`, bs[1]!.port, bs[2]!.port], {
      strategy: 'roundrobin',
    });
    const f = await front(p);
    const tags: string[] = [];
    for (let i = 0; i < 8; i++) {
      const { s, tag } = await via(f);
      assert.equal(await roundTrip(s, `ping ${i}`), `ping ${i}`);
      tags.push(tag);
      s.destroy();
    }
    assert.deepEqual(tally(tags), { b0: 4, b1: 2, b2: 2 });
  });

  for (const strategy of ['leastconn', 'p2c'] as StrategyName[]) {
    it(`${strategy}: open connections spread evenly`, async () => {
      const bs = await backends(3);
      const p = pool(
        bs.map((b) => b.port),
        { strategy, strategyOptions: { random: seeded(7) } },
      );
      const f = await front(p);
      const tags: string[] = [];
      for (let i = 0; i < 12; i++) tags.push((await via(f)).tag); // all kept open
      const counts = Object.values(tally(tags));
      assert.equal(counts.length, 3, JSON.stringify(tally(tags)));
      assert.ok(
        Math.max(...counts) - Math.min(...counts) <= (strategy === 'leastconn' ? 0 : 2),
        JSON.stringify(tally(tags)),
      );
      assert.deepEqual(
        p
          .snapshot()
          .backends.map((b) => b.active)
          .sort(),
        counts.sort(),
        'active counts match the open connections',
      );
    });
  }

  it('hash: a client address sticks to one backend and clients spread over all', async () => {
    const bs = await backends(3);
    const p = pool(
      bs.map((b) => b.port),
      { strategy: 'hash' },
    );
    const f = await front(p);
    const first = new Map<string, string>();
    for (let i = 2; i < 26; i++) {
      const addr = `127.0.0.${i}`;
      const { s, tag } = await via(f, addr);
      first.set(addr, tag);
      s.destroy();
    }
    assert.equal(new Set(first.values()).size, 3);
    for (const [addr, tag] of first) {
      const again = await via(f, addr);
      assert.equal(again.tag, tag, addr);
      again.s.destroy();
    }
  });
});

it('forwards a client socket that arrives paused (pauseOnConnect, as models that hand sockets over use)', async () => {
  const [b] = await backends(1);
  const f = await startFront(pool([b!.port]), opts, memoryLogger().logger, { pauseOnConnect: true });
  cleanup.push(() => f.close());
  const { s, tag } = await via(f);
  assert.equal(tag, 'b0');
  assert.equal(await roundTrip(s, 'hello'), 'hello');
});

describe('connect failures', () => {
  it('retries the next backend on a refused connect, invisibly to the client', async () => {
    const [live] = await backends(1);
    const dead = await deadPort();
    const p = pool([dead, live!.port], { strategy: 'roundrobin' });
    const f = await front(p);
    for (let i = 0; i < 6; i++) {
      const { s, tag } = await via(f);
      assert.equal(tag, 'b0');
      assert.equal(await roundTrip(s, 'x'), 'x');
      s.destroy();
    }
    const snap = p.snapshot();
    const d = snap.backends.find((b) => b.id.endsWith(`:${dead}`))!;
    assert.ok(d.errors >= 1 && d.total === 0, JSON.stringify(d));
    assert.equal(snap.retried, d.errors);
    assert.equal(snap.rejected, 0);
  });

  /** A port whose listener never accepts and whose queue is full: connects to it hang. */
  async function stuckPort(): Promise<number | undefined> {
    const py = spawn(
      'python3',
      [
        '-c',
        'import socket,sys,time\ns=socket.socket()\ns.bind(("127.0.0.1",0))\ns.listen(0)\nprint(s.getsockname()[1],flush=True)\ntime.sleep(60)',
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    cleanup.push(async () => {
      py.kill('SIGKILL');
      await once(py, 'exit').catch(() => {});
    });
    const [line] = (await once(py.stdout!, 'data')) as [Buffer];
    const port = Number(line.toString().trim());
    if (!(port > 0)) return undefined;
    // Fill the queue (backlog 0 admits one or two) so further SYNs are dropped.
    for (let i = 0; i < 3; i++) {
      const filler = netConnect(port, '127.0.0.1');
      filler.on('error', () => {});
      cleanup.push(() => filler.destroy());
    }
    await sleep(100);
    return port;
  }

  it('retries on a connect timeout too', async (t) => {
    const stuck = await stuckPort();
    if (stuck === undefined) return t.skip('python3 not usable here');
    const [live] = await backends(1);
    const p = pool([stuck, live!.port], { strategy: 'roundrobin' });
    const f = await front(p, { ...opts, connectTimeoutMs: 200 });
    const tags: string[] = [];
    for (let i = 0; i < 4; i++) {
      const { s, tag } = await via(f);
      tags.push(tag);
      s.destroy();
    }
    assert.deepEqual(tags, ['b0', 'b0', 'b0', 'b0']);
    assert.ok(p.snapshot().backends.find((b) => b.id.endsWith(`:${stuck}`))!.errors >= 1);
  });

  it('connect timeouts share one queue: a retry queued as one expires, and another timeout value, each expire on time', async (t) => {
    const [stuckA, stuckB] = [await stuckPort(), await stuckPort()];
    if (stuckA === undefined || stuckB === undefined) return t.skip('python3 not usable here');
    const p = pool([stuckA, stuckB], { strategy: 'roundrobin' });
    const log = memoryLogger();
    const short = await front(p, { ...opts, connectTimeoutMs: 150, retries: 1 }, log.logger);
    const long = await front(p, { ...opts, connectTimeoutMs: 400, retries: 0 }, log.logger);
    const started = performance.now();
    const ends = [short, long].map(async (f) => {
      await untilClosed(await connect(f.port));
      return {
        outcome: (await f.outcomes[0]) as { kind: string; reason: string },
        ms: performance.now() - started,
      };
    });
    const [a, b] = await Promise.all(ends);
    assert.equal(a!.outcome.kind, 'rejected');
    assert.match(
      a!.outcome.reason,
      /^all 2 connect attempts failed \(.*timed out after 150 ms; .*timed out after 150 ms\)$/,
    );
    assert.equal(b!.outcome.kind, 'rejected');
    assert.match(b!.outcome.reason, /^all 1 connect attempts failed \(.*timed out after 400 ms\)$/);
    // Each attempt waits its own timeout, not less (and, generously bounded, not much more).
    assert.ok(a!.ms >= 290, `two 150 ms attempts took ${a!.ms.toFixed(0)} ms`);
    assert.ok(b!.ms >= 390, `one 400 ms attempt took ${b!.ms.toFixed(0)} ms`);
    assert.ok(a!.ms < 5000 && b!.ms < 5000, `slow expiry: ${a!.ms.toFixed(0)} and ${b!.ms.toFixed(0)} ms`);
  });

  it('a client that leaves while the proxy is still connecting costs the backend nothing', async (t) => {
    const stuck = await stuckPort();
    if (stuck === undefined) return t.skip('python3 not usable here');
    const p = pool([stuck]);
    const f = await front(p, { ...opts, connectTimeoutMs: 5000 });
    const c = await connect(f.port);
    await sleep(100);
    c.destroy();
    assert.deepEqual(await f.outcomes[0], { kind: 'client-gone' });
    assert.equal(p.snapshot().backends[0]!.errors, 0);
    assert.equal(p.snapshot().rejected, 0);
  });

  it('closes the client with a logged reason when no backend can take it', async () => {
    const p = pool([await deadPort(), await deadPort()]);
    const log = memoryLogger();
    const f = await front(p, { ...opts, retries: 5 }, log.logger);
    const c = await connect(f.port);
    const closed = await untilClosed(c);
    assert.equal(closed.data, '');
    assert.equal(((await f.outcomes[0]) as { kind: string }).kind, 'rejected');
    const [line] = log.find('client closed: no backend could take it');
    assert.match(
      String(line!.reason),
      /^all 2 connect attempts failed \(127\.0\.0\.1:\d+: ECONNREFUSED; 127\.0\.0\.1:\d+: ECONNREFUSED\)$/,
    );
    assert.equal(p.snapshot().rejected, 1);
  });

  it('tries at most 1 + retries backends', async () => {
    const dead = await Promise.all([deadPort(), deadPort(), deadPort(), deadPort()]);
    const [live] = await backends(1);
    const p = pool([...dead, live!.port], { strategy: 'roundrobin' });
    const f = await front(p, { ...opts, retries: 1 });
    const c = await connect(f.port);
    await untilClosed(c);
    const outcome = (await f.outcomes[0]) as { kind: string; reason: string };
    assert.equal(outcome.kind, 'rejected');
    assert.match(outcome.reason, /^all 2 connect attempts failed/);
  });
});

describe('stream semantics', () => {
  it('propagates a client half-close to the backend while the reply still flows back', async () => {
    // The backend answers only after the client's FIN: it needs half-close to arrive.
    const b = await listen(
      (s) => {
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('end', () => s.end(`got ${got.length} bytes: ${got}`));
      },
      { allowHalfOpen: true },
    );
    cleanup.push(() => b.close());
    const f = await front(pool([b.port]));
    const c = await connect(f.port);
    c.end('request body');
    const { data, error } = await untilClosed(c);
    assert.equal(error, undefined);
    assert.equal(data, 'got 12 bytes: request body');
  });

  it('propagates a backend half-close to the client while the client keeps sending', async () => {
    const received: string[] = [];
    const backendDone = deferred();
    const b = await listen(
      (s) => {
        s.end('server says bye first\n'); // FIN now, but keep reading
        let got = '';
        s.on('data', (d) => (got += d));
        s.on('end', () => {
          received.push(got);
          backendDone.resolve();
        });
      },
      { allowHalfOpen: true },
    );
    cleanup.push(() => b.close());
    const f = await front(pool([b.port]));
    const c = netConnect({ port: f.port, host: '127.0.0.1', allowHalfOpen: true });
    await once(c, 'connect');
    const closed = once(c, 'close');
    let data = '';
    c.on('data', (d) => (data += d));
    await once(c, 'end');
    assert.equal(data, 'server says bye first\n');
    c.write('still ');
    c.end('talking');
    await backendDone.promise;
    assert.deepEqual(received, ['still talking']);
    await closed;
  });

  it('a backend that dies mid-connection closes only the clients it carried', async () => {
    const bs = await backends(2);
    const p = pool(
      bs.map((b) => b.port),
      { strategy: 'roundrobin' },
    );
    const f = await front(p);
    const conns = await Promise.all([via(f), via(f), via(f), via(f)]);
    const onB0 = conns.filter((c) => c.tag === 'b0');
    const onB1 = conns.filter((c) => c.tag === 'b1');
    assert.equal(onB0.length, 2);
    const closing = onB0.map((c) => untilClosed(c.s));
    for (const s of bs[0]!.sockets) s.resetAndDestroy();
    for (const c of await Promise.all(closing)) assert.equal(c.data, '');
    for (const c of onB1) assert.equal(await roundTrip(c.s, 'alive'), 'alive');
    const b0of = () => p.snapshot().backends.find((b) => b.id.endsWith(`:${bs[0]!.port}`))!;
    await until(() => b0of().active === 0 && b0of().errors === 2, 'both of b0 counted closed, as errors');
    const b0 = b0of();
    assert.equal(b0.active, 0);
    assert.equal(b0.errors, 2);
  });

  it('closes both sides after the idle timeout', async () => {
    const [b] = await backends(1);
    const log = memoryLogger();
    const f = await front(pool([b!.port]), { ...opts, idleTimeoutMs: 200 }, log.logger);
    const { s } = await via(f);
    assert.equal(await roundTrip(s, 'x'), 'x');
    await untilClosed(s);
    await until(() => b!.sockets.size === 0, 'the backend connection is closed too');
    assert.equal(log.find('idle timeout; connection closed').length, 1);
  });

  it('sends a PROXY header naming the real client (v1 and v2)', async () => {
    for (const version of ['v1', 'v2'] as const) {
      const b = await listen(async (s) => {
        const r = await readProxyHeader(s, { timeoutMs: 2000 });
        s.end(r.ok ? `${r.header.version} ${r.remoteAddress}:${r.remotePort} ${s.read() ?? ''}` : r.reason);
      });
      cleanup.push(() => b.close());
      const f = await front(pool([b.port]), { ...opts, sendProxy: version });
      const c = netConnect({ port: f.port, host: '127.0.0.1', localAddress: '127.0.0.9' });
      await once(c, 'connect');
      const port = c.localPort;
      const { data } = await untilClosed(c);
      assert.equal(data, `${version === 'v1' ? 1 : 2} 127.0.0.9:${port} `);
    }
  });
});

describe('abortive close (RST) is passed on, both ways', () => {
  it('a backend that resets mid-reply resets the client: a cut reply does not look complete', async () => {
    let backendSide: Socket | undefined;
    const b = await listen((s) => {
      backendSide = s;
      s.once('data', () => s.write('the first half of a reply'));
    });
    cleanup.push(() => b.close());
    const log = memoryLogger();
    const f = await front(pool([b.port]), opts, log.logger);
    const c = await connect(f.port);
    c.write('ask');
    const closed = untilClosed(c);
    // The reset comes once the half has been read all the way (data still unread when an RST
    // arrives reads as a clean end on Linux, for the proxy as for any reader).
    c.once('data', () => backendSide!.resetAndDestroy());
    const { data, error } = await closed;
    assert.equal(data, 'the first half of a reply');
    assert.equal(error?.code, 'ECONNRESET', 'the client sees a reset, not a FIN');
    const lines = log.find('backend broke the connection; client connection reset');
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.reason, 'ECONNRESET');
  });

  it('a client that resets resets the backend connection', async () => {
    const got = deferred();
    const ended: { error: string | undefined; fin: boolean }[] = [];
    const b = await listen((s) => {
      const seen = { error: undefined as string | undefined, fin: false };
      s.on('error', (err: NodeJS.ErrnoException) => {
        seen.error = err.code;
      });
      s.on('end', () => {
        seen.fin = true;
      });
      s.on('close', () => ended.push(seen));
      s.once('data', () => got.resolve());
    });
    cleanup.push(() => b.close());
    const log = memoryLogger();
    const f = await front(pool([b.port]), opts, log.logger);
    const c = await connect(f.port);
    c.write('half a request');
    await got.promise;
    c.resetAndDestroy();
    await until(() => ended.length > 0, 'the backend connection closed');
    assert.deepEqual(ended, [{ error: 'ECONNRESET', fin: false }], 'the backend sees a reset, not a FIN');
    assert.equal(log.find('client broke the connection; backend connection reset').length, 1);
  });
});

describe('backpressure', () => {
  // What the proxy may hold on a socket that waits: its highWaterMark (node's default, 16 KiB on
  // Node 20 and 64 KiB from 22) plus the one read or write that crossed it.

  it('a client that does not read stops the backend being read: the proxy buffers a bounded amount', async () => {
    const offered = 256 * 1024 * 1024;
    let written = 0;
    const stalled = deferred();
    const chunk = Buffer.alloc(64 * 1024, 'x');
    const b = await listen((s) => {
      const pump = () => {
        while (written < offered) {
          written += chunk.length;
          if (!s.write(chunk)) {
            // Quiet for a while with a full buffer: the far end stopped taking bytes.
            const t = setTimeout(() => stalled.resolve(), 1000);
            s.once('drain', () => {
              clearTimeout(t);
              pump();
            });
            return;
          }
        }
        stalled.resolve();
      };
      pump();
    });
    cleanup.push(() => b.close());
    const f = await front(pool([b.port]));
    const c = await connect(f.port);
    c.pause();
    await stalled.promise;
    const proxyClientSide = f.clients[0]!;
    assert.ok(written < offered / 4, `backend wrote ${written} of ${offered} bytes: nothing held it back`);
    assert.ok(
      proxyClientSide.writableLength <= proxyClientSide.writableHighWaterMark + chunk.length,
      `proxy holds ${proxyClientSide.writableLength} bytes for the client`,
    );
    c.destroy();
  });

  it('backend bytes arrive whole and in order while the proxy queues writes to a slow client', async () => {
    // Chunks of every size class the proxy's read buffers have (tiny, around the 2 KiB small
    // buffer, up to 256 KiB), and a client that stops reading until the proxy's writes to it
    // queue up, again and again, while the backend goes on sending. (The buffer rule itself
    // is tested step by step in proxy-backend-reader.test.ts.)
    const rand = seeded(11);
    const chunks: Buffer[] = [];
    let total = 0;
    while (total < 16 * 1024 * 1024) {
      const r = rand();
      const size =
        r < 0.4
          ? 1 + Math.floor(rand() * 100)
          : r < 0.7
            ? 1500 + Math.floor(rand() * 1200)
            : 1 + Math.floor(rand() * 256 * 1024);
      chunks.push(randomBytes(size));
      total += size;
    }
    const sent = createHash('sha256');
    for (const c of chunks) sent.update(c);
    let backendDone = false;
    const b = await listen(async (s) => {
      for (const c of chunks) {
        if (!s.write(c)) await once(s, 'drain');
        if (rand() < 0.02) await sleep(1);
      }
      backendDone = true;
      s.end();
    });
    cleanup.push(() => b.close());
    const p = pool([b.port]);
    const f = await front(p);
    const c = await connect(f.port);
    c.pause();
    let stalls = 0;
    const stall = async () => {
      await until(() => f.clients[0]!.writableLength > 0 || backendDone, 'the proxy queues writes');
      if (f.clients[0]!.writableLength > 0) stalls++;
      c.resume();
    };
    await stall();
    const got = createHash('sha256');
    let n = 0;
    let nextStall = 2 * 1024 * 1024;
    c.on('data', (d: Buffer) => {
      got.update(d);
      n += d.length;
      if (n >= nextStall) {
        nextStall += 2 * 1024 * 1024;
        c.pause();
        void stall();
      }
    });
    await once(c, 'end');
    assert.ok(stalls >= 2, `the proxy's writes queued ${stalls} times`);
    assert.equal(n, total);
    assert.equal(got.digest('hex'), sent.digest('hex'));
    c.end();
    await until(() => p.snapshot().backends[0]!.active === 0, 'the connection is released');
    assert.equal(p.snapshot().backends[0]!.bytesIn, total, 'stats count every byte from the backend');
  });

  it('a backend that does not read stops the client being read', async () => {
    const b = await listen((s) => s.pause());
    cleanup.push(() => b.close());
    const f = await front(pool([b.port]));
    const c = await connect(f.port);
    const chunk = Buffer.alloc(64 * 1024, 'y');
    let written = 0;
    for (let i = 0; i < 4096; i++) {
      written += chunk.length;
      if (!c.write(chunk)) {
        const drained = await Promise.race([
          once(c, 'drain').then(() => true),
          sleep(1000).then(() => false),
        ]);
        if (!drained) break;
      }
    }
    const accepted = written - c.writableLength;
    assert.ok(accepted < 64 * 1024 * 1024, `the client got ${accepted} bytes out with nobody reading them`);
    const proxyClientSide = f.clients[0]!;
    assert.ok(
      proxyClientSide.readableLength <= proxyClientSide.readableHighWaterMark + chunk.length,
      `proxy holds ${proxyClientSide.readableLength} read bytes (highWaterMark ${proxyClientSide.readableHighWaterMark})`,
    );
    c.destroy();
  });
});

describe('passive health through real connections', () => {
  it('a backend that errors goes to the overload list, gets probes, and comes back when it recovers', async () => {
    let failing = true;
    const flaky = await listen((s) => {
      if (failing) s.resetAndDestroy();
      else {
        s.write('flaky\n');
        s.pipe(s);
      }
    });
    cleanup.push(() => flaky.close());
    const [good] = await backends(1);
    const log = memoryLogger();
    const p = pool([flaky.port, good!.port], {
      strategy: 'roundrobin',
      passive: { continErrLimit: 3, initSuccCnt: 1000, probeNum: 4, continSuccLimit: 2, initErrCnt: 1000 },
      logger: log.logger,
    });
    const f = await front(p);
    const flakyId = `127.0.0.1:${flaky.port}`;
    // Connections that land on the flaky one are reset by it (after connect: not retryable).
    for (let i = 0; i < 12 && p.state(flakyId) === 'up'; i++) {
      const c = await connect(f.port);
      c.on('error', () => {});
      await readLine(c).catch(() => 'reset');
      c.destroy();
    }
    assert.equal(p.state(flakyId), 'overloaded');
    const [out] = log.find('backend overloaded');
    assert.equal(out!.reason, '3 errors in a row');
    // While overloaded: one pick in four probes it; the rest go to the good one.
    failing = false;
    const tags: string[] = [];
    for (let i = 0; i < 8 && p.state(flakyId) === 'overloaded'; i++) {
      const { s, tag } = await via(f);
      tags.push(tag);
      s.destroy();
      await until(() => p.snapshot().backends.every((b) => b.active === 0), 'connection released');
    }
    assert.equal(p.state(flakyId), 'up');
    assert.deepEqual(tags, ['b0', 'b0', 'b0', 'flaky', 'b0', 'b0', 'b0', 'flaky']);
    assert.equal(log.find('backend back in rotation')[0]!.reason, '2 successes in a row');
  });
});
