// Work a connection needs only with an option (a PROXY header read, an idle timer, a TLS wrap,
// a child logger, TCP_NODELAY, a linger) must cost nothing when the option is off. The daemon
// runs in this process (IOMP -c 1: the connection path every model shares) and serves a burst
// of plain connections while async_hooks counts what is created (timers, TLS wraps) and the
// logger and socket methods count their calls. Each option turned on is measured the same way
// and must show up, so the counters are known to see the work they look for.
import assert from 'node:assert/strict';
import { createHook } from 'node:async_hooks';
import { readFileSync, rmSync } from 'node:fs';
import { type AddressInfo, connect, createServer, Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { TLSSocket, connect as tlsConnect } from 'node:tls';
import { type TcpdaemonParams, type Tcpmain, tcpdaemon } from '../src/index.js';
import { parseBackendSpec } from '../src/proxy/backend.js';
import { DEFAULT_FORWARD } from '../src/proxy/forward.js';
import { createProxyHandler } from '../src/proxy/front.js';
import { BackendPool } from '../src/proxy/pool.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { memoryLogger } from './helpers/proxy.js';
import { tempDir } from './helpers/temp-dir.js';
import { makePki, type Pki } from './helpers/tls.js';

checkNoLeftoverProcesses();

/** Connections per measurement; per-connection work shows up at least this often. */
const N = 20;

const echo: Tcpmain = async (socket) => {
  for await (const chunk of socket) socket.write(chunk);
};

/**
 * Connect, send, wait for the echo (or the server's close), close (FIN or RST): events only, no
 * timer. The message is longer than a TLS record header, so a TLS daemon refuses it at once (with
 * fewer than 5 bytes OpenSSL waits for the rest, and the handshake timeout ends it).
 */
function cycle(port: number, close: 'fin' | 'rst' = 'fin'): Promise<void> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('error', () => undefined); // a TLS daemon resets a plain client: the close still comes
    s.once('connect', () => s.write('ping over plain TCP'));
    s.once('data', () => (close === 'rst' ? s.resetAndDestroy() : s.end()));
    s.once('close', () => resolve());
  });
}

interface Work {
  /** setTimeout/setInterval objects created (a socket's idle timer is one). */
  timers: number;
  tlsWraps: number;
  childLoggers: number;
  /** Calls on the accepted sockets. */
  setTimeoutCalls: number;
  setNoDelayCalls: number;
  /** 'finish' listeners the accepted sockets had when the handler ran (--tcp-linger adds one). */
  finishListeners: number;
}

type Patched = 'setTimeout' | 'setNoDelay';

/** Serves N plain connections with `params` and counts the per-connection work done meanwhile. */
async function measure(params: Partial<TcpdaemonParams>, close: 'fin' | 'rst' = 'fin'): Promise<Work> {
  const work: Work = {
    timers: 0,
    tlsWraps: 0,
    childLoggers: 0,
    setTimeoutCalls: 0,
    setNoDelayCalls: 0,
    finishListeners: 0,
  };
  const handler: Tcpmain = (socket, env) => {
    work.finishListeners += socket.listenerCount('finish');
    return echo(socket, env);
  };
  const daemon = await tcpdaemon({
    listen: '127.0.0.1:0',
    handler,
    logfile: join(dir, 'daemon.log'),
    ...params,
  } as TcpdaemonParams);
  const { port } = daemon.address() as AddressInfo;
  await cycle(port, close); // the first connection may load code (and make its timers) once
  work.finishListeners = 0;
  const logger = daemon.logger as unknown as { child: (...a: unknown[]) => unknown };
  const child = logger.child;
  logger.child = function (this: unknown, ...a: unknown[]) {
    work.childLoggers++;
    return child.apply(this, a);
  };
  const originals = new Map<Patched, (...a: unknown[]) => unknown>();
  for (const name of ['setTimeout', 'setNoDelay'] as const) {
    const original = Socket.prototype[name] as (...a: unknown[]) => unknown;
    originals.set(name, original);
    (Socket.prototype as unknown as Record<Patched, unknown>)[name] = function (
      this: Socket & { server?: unknown },
      ...a: unknown[]
    ) {
      // Accepted sockets have a server; the TLS socket over one has its raw socket's.
      if (this.server !== undefined || (this as { _parent?: unknown })._parent !== undefined) {
        if (name === 'setTimeout') work.setTimeoutCalls++;
        else work.setNoDelayCalls++;
      }
      return original.apply(this, a);
    };
  }
  const hook = createHook({
    init(_id, type) {
      if (type === 'Timeout') work.timers++;
      else if (type === 'TLSWRAP') work.tlsWraps++;
    },
  });
  hook.enable();
  try {
    for (let i = 0; i < N; i++) await cycle(port, close);
  } finally {
    hook.disable();
    for (const [name, original] of originals)
      (Socket.prototype as unknown as Record<Patched, unknown>)[name] = original;
    logger.child = child;
    await daemon.close();
  }
  return work;
}

let dir: string;
let pki: Pki;
before(() => {
  dir = tempDir('tcpdaemon-work-');
  pki = makePki(dir);
});
after(() => rmSync(dir, { recursive: true, force: true }));

test('with every option off, a connection creates no timer, no TLS wrap and no child logger', async () => {
  const work = await measure({ loglevel: 'info' });
  // Below N: a background timer of the process may start meanwhile; one per connection may not.
  assert.ok(work.timers < N / 2, `timers created for ${N} connections: ${work.timers}`);
  assert.equal(work.tlsWraps, 0, 'TLS wraps');
  assert.equal(work.childLoggers, 0, 'child loggers');
  assert.equal(work.setTimeoutCalls, 0, 'socket.setTimeout calls');
  assert.equal(work.setNoDelayCalls, 0, 'socket.setNoDelay calls');
  assert.equal(work.finishListeners, 0, "'finish' listeners at the handler");
});

test('connections reset by the peer build no child logger each (only a line written needs one)', async () => {
  // Each reset is a 'connection lost' line the PeerLog counts; it writes one a second per peer.
  const work = await measure({ loglevel: 'info' }, 'rst');
  assert.ok(work.childLoggers < N / 2, `child loggers for ${N} resets: ${work.childLoggers}`);
});

test('each option turned on shows up in the same counts (the counters see the work)', async () => {
  const timeout = await measure({ timeout: 30 });
  assert.ok(timeout.timers >= N, `--timeout: timers ${timeout.timers}`);
  assert.ok(timeout.setTimeoutCalls >= N, `--timeout: setTimeout calls ${timeout.setTimeoutCalls}`);

  const proxy = await measure({ proxyProtocol: true });
  // Plain connections without a header: each is read for one (a timer for its deadline) and refused.
  assert.ok(proxy.timers >= N, `--proxy-protocol: timers ${proxy.timers}`);

  const debug = await measure({ loglevel: 'debug' });
  assert.ok(debug.childLoggers >= N, `--loglevel debug: child loggers ${debug.childLoggers}`);

  const nodelay = await measure({ tcpNodelay: true });
  assert.ok(nodelay.setNoDelayCalls >= N, `--tcp-nodelay: setNoDelay calls ${nodelay.setNoDelayCalls}`);

  const linger = await measure({ tcpLinger: 1 });
  assert.ok(linger.finishListeners >= N, `--tcp-linger: 'finish' listeners ${linger.finishListeners}`);

  const server = pki.server('localhost');
  const tls = await measure({ tlsCert: server.cert, tlsKey: server.key });
  assert.ok(tls.tlsWraps >= N, `--tls-cert: TLS wraps ${tls.tlsWraps}`);
});

type TlsFact = 'getPeerCertificate' | 'getCipher' | 'getProtocol';

/**
 * N TLS connections to the daemon (--tls-cert, IOMP -c 1 in this process), the handler reading
 * env.tls or not: how often the served TLS sockets were asked for their TLS facts, and the
 * 'error' listeners each raw socket under a TLSSocket had when the handler ran.
 */
async function tlsWork(
  readFacts: boolean,
): Promise<{ factCalls: number; ciphers: number; rawErrorListeners: Set<number> }> {
  const server = pki.server('localhost');
  let ciphers = 0;
  const rawErrorListeners = new Set<number>();
  const handler: Tcpmain = (socket, env) => {
    rawErrorListeners.add((socket as unknown as { _parent: Socket })._parent.listenerCount('error'));
    if (readFacts && env.tls?.cipher) ciphers++;
    return echo(socket, env);
  };
  const daemon = await tcpdaemon({
    listen: '127.0.0.1:0',
    handler,
    logfile: join(dir, 'tls.log'),
    tlsCert: server.cert,
    tlsKey: server.key,
  } as TcpdaemonParams);
  const { port } = daemon.address() as AddressInfo;
  const ca = readFileSync(pki.ca);
  const tlsCycle = () =>
    new Promise<void>((resolve, reject) => {
      const s = tlsConnect({ port, host: '127.0.0.1', servername: 'localhost', ca }, () => s.write('ping'));
      s.once('error', reject);
      s.once('data', () => s.end());
      s.once('close', () => resolve());
    });
  await tlsCycle(); // code loaded once
  let factCalls = 0;
  const proto = TLSSocket.prototype as unknown as Record<TlsFact, (...a: unknown[]) => unknown>;
  const originals = new Map<TlsFact, (...a: unknown[]) => unknown>();
  for (const name of ['getPeerCertificate', 'getCipher', 'getProtocol'] as const) {
    const original = proto[name];
    originals.set(name, original);
    proto[name] = function (this: TLSSocket, ...a: unknown[]) {
      // The daemon's sockets, not this test's client ones.
      if ((this as unknown as { _tlsOptions?: { isServer?: boolean } })._tlsOptions?.isServer) factCalls++;
      return original.apply(this, a);
    };
  }
  try {
    for (let i = 0; i < N; i++) await tlsCycle();
  } finally {
    for (const [name, original] of originals) proto[name] = original;
    await daemon.close();
  }
  return { factCalls, ciphers, rawErrorListeners };
}

test('TLS: the facts of env.tls are read from the socket only by a handler that reads env.tls', async () => {
  const quiet = await tlsWork(false);
  assert.equal(quiet.factCalls, 0, `TLS fact calls for ${N} handshakes whose handler never reads env.tls`);
  const reading = await tlsWork(true);
  assert.equal(reading.ciphers, N + 1, 'env.tls.cipher for every connection');
  assert.ok(reading.factCalls >= N, `TLS fact calls when env.tls is read: ${reading.factCalls}`);
});

test("TLS: the raw socket under each TLSSocket has only node's own 'error' listener (it forwards to the TLSSocket)", async () => {
  const { rawErrorListeners } = await tlsWork(false);
  assert.deepEqual([...rawErrorListeners], [1]);
});

/**
 * The proxy front serving N plain connections (the daemon in this process, IOMP -c 1) to a
 * pipe echo: how often an accepted client socket asked the kernel for its own address
 * (getsockname(2), through node's Socket#_getsockname).
 */
async function proxyLocalLookups(sendProxy: 'v1' | undefined): Promise<number> {
  const held = new Set<Socket>();
  const backend = createServer((s) => {
    held.add(s);
    s.on('close', () => held.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const spec = parseBackendSpec(`127.0.0.1:${(backend.address() as AddressInfo).port}`);
  const daemon = await tcpdaemon({
    listen: '127.0.0.1:0',
    handler: createProxyHandler(
      new BackendPool([spec], { logger: memoryLogger('warn').logger, checks: false }),
      { ...DEFAULT_FORWARD, sendProxy },
    ),
    logfile: join(dir, 'proxy.log'),
  });
  const { port } = daemon.address() as AddressInfo;
  await cycle(port); // code loaded once
  const proto = Socket.prototype as unknown as { _getsockname: (...a: unknown[]) => unknown };
  const original = proto._getsockname;
  assert.equal(typeof original, 'function', "this node's Socket has _getsockname");
  let calls = 0;
  proto._getsockname = function (this: Socket & { server?: unknown }, ...a: unknown[]) {
    if (this.server !== undefined) calls++; // the accepted client sockets, not the backend ones
    return original.apply(this, a);
  };
  try {
    for (let i = 0; i < N; i++) await cycle(port);
  } finally {
    proto._getsockname = original;
    await daemon.close();
    for (const s of held) s.destroy();
    await new Promise((r) => backend.close(r));
  }
  return calls;
}

/**
 * The proxy front serving N plain connections as proxyLocalLookups does, counting the timers
 * created (async_hooks) and the socket.setTimeout calls on the accepted client sockets.
 */
async function proxyTimers(idleTimeoutMs: number): Promise<{ timers: number; setTimeoutCalls: number }> {
  const held = new Set<Socket>();
  const backend = createServer((s) => {
    held.add(s);
    s.on('close', () => held.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
  const spec = parseBackendSpec(`127.0.0.1:${(backend.address() as AddressInfo).port}`);
  const daemon = await tcpdaemon({
    listen: '127.0.0.1:0',
    handler: createProxyHandler(
      new BackendPool([spec], { logger: memoryLogger('warn').logger, checks: false }),
      { ...DEFAULT_FORWARD, idleTimeoutMs },
    ),
    logfile: join(dir, 'proxy-timers.log'),
  });
  const { port } = daemon.address() as AddressInfo;
  await cycle(port); // code loaded once
  const work = { timers: 0, setTimeoutCalls: 0 };
  const proto = Socket.prototype as unknown as { setTimeout: (...a: unknown[]) => unknown };
  const original = proto.setTimeout;
  proto.setTimeout = function (this: Socket & { server?: unknown }, ...a: unknown[]) {
    if (this.server !== undefined) work.setTimeoutCalls++;
    return original.apply(this, a);
  };
  const hook = createHook({
    init(_id, type) {
      if (type === 'Timeout') work.timers++;
    },
  });
  hook.enable();
  try {
    for (let i = 0; i < N; i++) await cycle(port);
  } finally {
    hook.disable();
    proto.setTimeout = original;
    await daemon.close();
    for (const s of held) s.destroy();
    await new Promise((r) => backend.close(r));
  }
  return work;
}

test('the proxy front makes no timer per connection: the connect timeout is a shared queue, an idle timer only with one set', async () => {
  const plain = await proxyTimers(0);
  // Below N: the shared connect-deadline timer (or a background one) may start meanwhile; one per connection may not.
  assert.ok(plain.timers < N / 2, `timers created for ${N} forwarded connections: ${plain.timers}`);
  assert.equal(plain.setTimeoutCalls, 0, 'socket.setTimeout calls without an idle timeout');
  const idle = await proxyTimers(30_000);
  assert.ok(idle.setTimeoutCalls >= N, `idle timeout: setTimeout calls ${idle.setTimeoutCalls}`);
  assert.ok(idle.timers >= N, `idle timeout: timers ${idle.timers}`);
});

test('the proxy front looks up the local address only for the PROXY header it sends (--send-proxy)', async () => {
  assert.equal(await proxyLocalLookups(undefined), 0, 'getsockname calls without --send-proxy');
  const withHeader = await proxyLocalLookups('v1');
  assert.ok(withHeader >= N, `--send-proxy v1: getsockname calls ${withHeader}`);
});
