// Logs a person can read (issue 13 item 8): --log-format pretty in every command and every
// process of it, and client-caused errors logged once, without a stack, while bugs keep theirs.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { prettyRecord } from '../src/log-format.js';
import { createCodec } from '../src/message/index.js';
import { DaemonProcess, EXAMPLES, startDaemon, withDaemon } from './helpers/daemon.js';
import { BUSINESS, gatewayArgs, gatewayClient, startNats } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { FramedSocket, withMessageServer } from './helpers/message.js';
import { connect, readLine, roundTrip } from './helpers/net.js';
import { taggedEcho } from './helpers/proxy.js';
import { waitUntil } from './helpers/supervisor.js';

checkNoLeftoverProcesses();

/** The head of every pretty record: time, level, [pid wN], message. */
const PRETTY = /^(\d\d):(\d\d):(\d\d)\.(\d{3}) (DEBUG|INFO |WARN |ERROR|FATAL) \[(\d+) w(\d+)\] (.*)$/;

interface Pretty {
  level: string;
  pid: number;
  worker: number;
  /** The message and the fields after it. */
  rest: string;
}

function parsePretty(line: string): Pretty | undefined {
  const m = PRETTY.exec(line);
  if (!m) return undefined;
  return { level: m[5]!.trim(), pid: Number(m[6]), worker: Number(m[7]), rest: m[8]! };
}

/** Waits for a pretty line whose message starts with `msg` and that `pred` accepts. */
function waitPretty(
  d: DaemonProcess,
  msg: string,
  pred: (p: Pretty) => boolean = () => true,
): Promise<Pretty> {
  return waitUntil(
    () => {
      for (const line of d.stdoutLines) {
        const p = parsePretty(line);
        if (p?.rest.startsWith(msg) && pred(p)) return p;
      }
      return undefined;
    },
    `a pretty '${msg}' line; stdout:\n${d.stdoutLines.join('\n')}\nstderr:\n${d.stderr}`,
    20_000,
  );
}

/** Every line on stdout is a pretty record (or a stack frame under one), none JSON. */
function assertAllPretty(d: DaemonProcess): void {
  assert.ok(d.stdoutLines.length > 0, 'something was logged');
  for (const line of d.stdoutLines) {
    if (line === '' || line.startsWith('    ')) continue;
    assert.ok(parsePretty(line), `not a pretty record: ${line}`);
  }
  assert.equal(d.logs.length, 0, 'no JSON line');
}

/** The port in a pretty `listening  ... address=HOST:PORT` line. */
function portOf(p: Pretty): number {
  const m = /address=\S*:(\d+)/.exec(p.rest);
  assert.ok(m, `an address in: ${p.rest}`);
  return Number(m[1]);
}

async function stop(d: DaemonProcess): Promise<void> {
  d.signal('SIGTERM');
  const r = await d.waitForExit(20_000);
  assert.deepEqual(r, { code: 0, signal: null }, d.stderr);
  await d.drained;
}

describe('--log-format pretty', () => {
  test('prettyRecord: one line with time, level, pid, worker, message and fields; a stack indented under it', () => {
    const line = prettyRecord({
      level: 'warn',
      time: '2026-12-02T09:27:33.129Z',
      pid: 42,
      worker: 3,
      msg: 'business handler failed',
      msgid: 3,
      session: 'g1:1',
      reason: 'no such account',
      ok: true,
      nested: { a: 1 },
      err: {
        type: 'TypeError',
        message: 'x is undefined',
        stack: 'TypeError: x is undefined\n    at f (a.js:1:2)',
      },
    });
    assert.equal(
      line,
      '09:27:33.129 WARN  [42 w3] business handler failed  msgid=3 session=g1:1 reason="no such account" ok=true nested={"a":1} err="TypeError: x is undefined"\n    at f (a.js:1:2)\n',
    );
    assert.equal(prettyRecord({ level: 'info', time: 't', msg: 'bare' }), 't INFO  bare\n');
  });

  test('the daemon, IOMP -c 2: the daemon and its worker processes write pretty lines', async () => {
    const d = new DaemonProcess([
      '-m',
      'IOMP',
      '-c',
      '2',
      '-l',
      '127.0.0.1:0',
      '-s',
      `${EXAMPLES}/echo.js`,
      '--loglevel',
      'debug',
      '--log-format',
      'pretty',
    ]);
    try {
      const port = portOf(await waitPretty(d, 'listening', (p) => p.pid === d.pid));
      const s = await connect(port);
      assert.equal(await roundTrip(s, 'hello'), 'hello');
      s.destroy();
      await waitPretty(d, 'connection open', (p) => p.pid !== d.pid && p.worker >= 1);
      await stop(d);
      assertAllPretty(d);
    } finally {
      await d.kill();
    }
  });

  test('the daemon, TLF -c 2: worker threads write pretty lines', async () => {
    const d = new DaemonProcess([
      '-m',
      'TLF',
      '-c',
      '2',
      '-l',
      '127.0.0.1:0',
      '-s',
      `${EXAMPLES}/echo.js`,
      '--loglevel-debug',
      '--log-format',
      'pretty',
    ]);
    try {
      const port = portOf(await waitPretty(d, 'listening'));
      const s = await connect(port);
      assert.equal(await roundTrip(s, 'hello'), 'hello');
      s.destroy();
      await waitPretty(d, 'connection open', (p) => p.worker >= 1);
      await stop(d);
      assertAllPretty(d);
    } finally {
      await d.kill();
    }
  });

  test('proxy -c 2: the front daemon and its front processes write pretty lines', async () => {
    const backend = await taggedEcho('b1');
    const d = new DaemonProcess([
      'proxy',
      '-c',
      '2',
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${backend.port}`,
      '--loglevel',
      'debug',
      '--log-format',
      'pretty',
    ]);
    try {
      const port = portOf(await waitPretty(d, 'listening'));
      const s = await connect(port);
      assert.equal(await readLine(s), 'b1', "the backend's greeting, through the proxy");
      s.destroy();
      await waitPretty(d, 'connection open', (p) => p.pid !== d.pid && p.worker >= 1);
      await stop(d);
      assertAllPretty(d);
    } finally {
      await d.kill();
      await backend.close();
    }
  });

  test('gateway: the daemon, the gateway process and the business worker write pretty lines', async () => {
    const d = new DaemonProcess(
      gatewayArgs('--business-workers', '1', '--loglevel', 'debug', '--log-format', 'pretty'),
    );
    try {
      const port = portOf(await waitPretty(d, 'listening', (p) => p.pid === d.pid));
      const c = await gatewayClient(port);
      try {
        await assert.rejects(c.client.request(3, 'no such account'), /no such account/);
      } finally {
        await c.close();
      }
      const gateway = await waitPretty(d, 'gateway ready');
      const worker = await waitPretty(d, 'business handler failed');
      assert.equal(worker.level, 'INFO');
      assert.ok(new Set([d.pid, gateway.pid, worker.pid]).size === 3, 'three processes');
      await stop(d);
      assertAllPretty(d);
    } finally {
      await d.kill();
    }
  });

  test('worker (NATS): the command and its business workers write pretty lines', async () => {
    const nats = await startNats();
    const prefix = ['--queue', nats.url, '--queue-prefix', 'logformat'];
    const d = new DaemonProcess(['worker', '-s', BUSINESS, ...prefix, '--log-format', 'pretty']);
    let gw: Awaited<ReturnType<typeof startDaemon>> | undefined;
    try {
      await waitPretty(d, 'workers ready', (p) => p.pid === d.pid);
      gw = await startDaemon(['gateway', '-l', '127.0.0.1:0', ...prefix]);
      const c = await gatewayClient(gw.port);
      try {
        await assert.rejects(c.client.request(3, 'no such account'), /no such account/);
      } finally {
        await c.close();
      }
      await waitPretty(d, 'business handler failed', (p) => p.pid !== d.pid && p.worker === 1);
      await stop(gw.daemon);
      await stop(d);
      assertAllPretty(d);
    } finally {
      await gw?.daemon.kill();
      await d.kill();
      await nats.stop();
    }
  });

  test('an unknown format is refused before anything starts, naming the choices', async () => {
    const d = new DaemonProcess(['-l', '127.0.0.1:0', '-s', `${EXAMPLES}/echo.js`, '--log-format', 'fancy']);
    try {
      assert.deepEqual(await d.waitForExit(), { code: 1, signal: null });
      await d.drained;
      assert.match(d.stderr, /--log-format.*must be one of json, pretty/);
    } finally {
      await d.kill();
    }
  });
});

describe('client-caused errors are logged once, without a stack', () => {
  test("gateway: a business handler's thrown error is one info line (the worker's), no stack, in every process", async () => {
    await withDaemon(
      gatewayArgs('--business-workers', '1', '--loglevel', 'debug'),
      async ({ port, daemon }) => {
        const c = await gatewayClient(port);
        try {
          await assert.rejects(c.client.request(3, 'no such account'), /no such account/);
          // A bug (a bad return value: TypeError) still warns, with its stack.
          await assert.rejects(c.client.request(9, ''), /returned number/);
          assert.equal((await c.client.request(1, 'still here')).toString(), 'still here');
        } finally {
          await c.close();
        }
        const bug = await daemon.waitForLog((l) => l.msg === 'business handler failed' && l.level === 'warn');
        assert.match(String((bug.err as { stack?: string }).stack), /TypeError/);
        const lines = daemon.logs.filter((l) => JSON.stringify(l).includes('no such account'));
        assert.equal(lines.length, 1, `one line: ${JSON.stringify(lines)}`);
        const [line] = lines;
        assert.equal(line!.msg, 'business handler failed');
        assert.equal(line!.level, 'info');
        assert.equal(line!.reason, 'no such account');
        assert.equal(line!.err, undefined, 'no error object, so no stack');
      },
    );
  });

  test('message layer, seq codec: a thrown Error is an info error reply without a stack; a TypeError warns with it', async () => {
    const seq = createCodec('seq');
    await withMessageServer(
      {
        codec: 'seq',
        routes: {
          1: () => {
            throw new Error('bad request');
          },
          2: () => {
            throw new TypeError('oops');
          },
        },
      },
      async (srv) => {
        const peer = await FramedSocket.connect(srv.port, seq);
        try {
          peer.send(1, 'a', 1);
          peer.send(2, 'b', 2);
          const frames = await peer.waitFrames(2);
          assert.deepEqual(
            frames.map((f) => f.body.toString()),
            ['bad request', 'oops'],
          );
        } finally {
          peer.destroy();
        }
        const bug = await srv.logs.waitFor(
          (l) => l.msg === 'route handler failed; error reply sent' && l.level === 'warn',
        );
        assert.match(String((bug.err as { stack?: string }).stack), /TypeError: oops/);
        const answer = srv.logs.lines.filter((l) => l.reason === 'bad request');
        assert.equal(answer.length, 1);
        assert.equal(answer[0]!.level, 'info');
        assert.equal(answer[0]!.err, undefined);
      },
    );
  });
});
