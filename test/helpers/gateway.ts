// Helpers for gateway tests: message-layer clients that keep what the gateway pushes, and a
// nats-server of the test's own on a free port.
import { type ChildProcess, spawn } from 'node:child_process';
import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import pino from 'pino';
import { MessageClient } from '../../src/message/index.js';
import { FIXTURES } from './daemon.js';
import { waitUntil } from './supervisor.js';
import { tempDir } from './temp-dir.js';

export const BUSINESS = join(FIXTURES, 'gateway-business.ts');

export interface Pushed {
  msgid: number;
  body: string;
}

export interface TestClient {
  client: MessageClient;
  /** Frames the gateway sent that were no reply (relayed messages, notices with msgid -1). */
  pushed: Pushed[];
  /** Waits until `n` frames were pushed. */
  waitPushed(n: number, timeoutMs?: number): Promise<Pushed[]>;
  close(): Promise<void>;
}

/** A connected MessageClient (no reconnect) that records pushes. */
export async function gatewayClient(
  port: number,
  codec = 'seq',
  requestTimeout = 10_000,
): Promise<TestClient> {
  const pushed: Pushed[] = [];
  const client = new MessageClient({
    port,
    codec,
    reconnect: false,
    requestTimeout,
    logger: pino({ level: 'silent' }),
    fallback: (body, msgid) => {
      pushed.push({ msgid, body: body.toString() });
    },
  });
  await client.connect();
  return {
    client,
    pushed,
    waitPushed: (n, timeoutMs = 10_000) =>
      waitUntil(() => pushed.length >= n && pushed, `${n} pushed frames (have ${pushed.length})`, timeoutMs),
    close: () => client.close(),
  };
}

/** `['gateway', '-l', '127.0.0.1:0', ...]` with the test business module and quiet logs unless asked. */
export function gatewayArgs(...extra: string[]): string[] {
  return ['gateway', '-l', '127.0.0.1:0', '-s', BUSINESS, ...extra];
}

export interface NatsServer {
  url: string;
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

/**
 * Starts nats-server with JetStream (its store in a fresh temp dir, or `storeDir`) on a free port.
 * `extraArgs` go to nats-server (e.g. --tls ...); `fixedPort`: that port (a restart where clients reconnect).
 * nats-server cannot listen on port 0, so a free port is found first; EADDRINUSE is retried.
 */
export async function startNats(
  storeDir?: string,
  extraArgs: string[] = [],
  fixedPort?: number,
): Promise<NatsServer> {
  const dir = storeDir ?? tempDir('tcpdaemon-nats-');
  for (let attempt = 1; ; attempt++) {
    const port = fixedPort ?? (await freePort());
    const child = spawn(
      'nats-server',
      ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir, ...extraArgs],
      {
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let err = '';
    const ready = await new Promise<boolean>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server not ready in 10 s:\n${err}`)), 10_000);
      child.stderr!.setEncoding('utf8').on('data', (d: string) => {
        err += d;
        if (err.includes('Server is ready')) {
          clearTimeout(timer);
          resolve(true);
        }
      });
      child.once('error', (e) => {
        clearTimeout(timer);
        reject(new Error(`cannot start nats-server (apt-get install nats-server): ${e.message}`));
      });
      child.once('exit', () => {
        clearTimeout(timer);
        resolve(false);
      });
    });
    if (ready) {
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      return {
        url: `nats://127.0.0.1:${port}`,
        port,
        child,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
          await exited;
          if (!storeDir) rmSync(dir, { recursive: true, force: true });
        },
      };
    }
    if (!/address already in use/i.test(err) || attempt >= 5) throw new Error(`nats-server failed:\n${err}`);
  }
}
