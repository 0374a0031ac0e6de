// bench/pipeline-gen.c, the bench's native pipelined message generator: built here with the
// system compiler, run briefly against the message layer (in this process, counting what it
// answered), the gateway (bin/tcpdaemon gateway, examples/gateway-echo.ts), a byte echo, and
// servers that answer wrongly (a changed byte, another msgid, a short frame, an extra frame,
// answers out of order, a seq reply without its flag or with a seq never sent), one that never
// answers and a refused port; its JSON checked against each. With --tls, against node's tls
// server (a certificate made here): echoes verified, the server's counts agree, a changed byte
// is a verify error, a plaintext server a TLS handshake error.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import { type PipelineGenOutput, pipelineGenResult } from '../bench/native.js';
import { FLAG_REPLY } from '../src/message/codecs/codec.js';
import { createCodec } from '../src/message/index.js';
import { EXAMPLES, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { withMessageServer } from './helpers/message.js';
import { type GenRun, nativeGenerator } from './helpers/native-gen.js';
import { countingTlsServer, makePki, type TlsCounts } from './helpers/tls.js';

checkNoLeftoverProcesses();

const gen = nativeGenerator<PipelineGenOutput>('pipeline-gen');
type Run = GenRun<PipelineGenOutput>;

const CONNS = 4;
const DEPTH = 8;
const base = (port: number, ...more: string[]) => [
  '--port',
  String(port),
  '--connections',
  String(CONNS),
  '--depth',
  String(DEPTH),
  '--duration',
  '0.5',
  ...more,
];
const noErrors = { connect: 0, timeout: 0, reset: 0, eof: 0, verify: 0, stalled: 0 };

/** A clean run's figures: what it says it did adds up. */
function assertClean(run: Run, codec: string): PipelineGenOutput {
  assert.equal(run.code, 0, run.stderr);
  const json = run.json!;
  assert.equal(json.generator, 'pipeline-gen');
  assert.equal(json.codec, codec);
  assert.deepEqual(json.errors, noErrors);
  assert.equal(json.errorTotal, 0);
  assert.ok(json.completed > 100, `${json.completed} replies`);
  // Every connection keeps DEPTH in flight: what was sent and not answered is at most that.
  assert.ok(json.sent >= json.completed && json.sent - json.completed <= CONNS * DEPTH, `sent ${json.sent}`);
  assert.ok(Math.abs(json.perSecond * json.seconds - json.completed) <= json.completed * 0.01 + 1);
  assert.ok(
    Math.abs(json.mbPerSecond * 1e6 * json.seconds - json.completed * json.size) <=
      json.completed * json.size * 0.01 + 1e3,
  );
  const l = json.latencyMs;
  assert.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
  assert.ok(json.cpu.userSeconds + json.cpu.systemSeconds > 0 && json.cpu.cores > 0);
  // One busy fraction per load thread, which together are (about) the process's CPU.
  assert.equal(json.threadBusy.length, json.threads);
  assert.ok(
    json.threadBusy.every((b) => b > 0 && b <= 1.05),
    json.threadBusy.join(' '),
  );
  assert.ok(json.threadBusy.reduce((a, b) => a + b, 0) <= json.cpu.cores + 0.05);
  return json;
}

interface Framed {
  server: Server;
  port: number;
  /** Requests decoded, over all connections. */
  requests: number;
  open: Set<Socket>;
}

/**
 * A server on 127.0.0.1:0 decoding `codec` frames; `reply` gets each read's frames and writes
 * what it likes.
 */
async function framedServer(
  codecName: 'lars' | 'seq',
  reply: (s: Socket, frames: { msgid: number; body: Buffer; seq: number }[]) => void,
): Promise<Framed> {
  const codec = createCodec(codecName);
  const open = new Set<Socket>();
  const framed: Framed = { server: undefined as unknown as Server, port: 0, requests: 0, open };
  const server = createServer((s) => {
    open.add(s);
    s.on('error', () => s.destroy());
    s.on('close', () => open.delete(s));
    let batch: { msgid: number; body: Buffer; seq: number }[] = [];
    const decoder = codec.createDecoder({
      frame: (msgid, body, seq) => {
        framed.requests += 1;
        batch.push({ msgid, body: Buffer.from(body), seq });
      },
      error: () => s.destroy(),
    });
    s.on('data', (d: Buffer) => {
      decoder.push(d);
      const frames = batch;
      batch = [];
      if (frames.length > 0) reply(s, frames);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  framed.server = server;
  framed.port = (server.address() as AddressInfo).port;
  return framed;
}

async function closeServer(server: Server, open: Set<Socket>): Promise<void> {
  const closed = new Promise<void>((r) => server.close(() => r()));
  for (const s of open) s.destroy();
  await closed;
}

const lars = createCodec('lars');
const seq = createCodec('seq');

describe('pipeline-gen against real servers', () => {
  for (const codec of ['lars', 'seq'] as const) {
    test(`the message layer (${codec}, in this process): every reply it wrote is verified, counts add up`, async () => {
      let answered = 0;
      await withMessageServer(
        {
          codec,
          fallback: (body) => {
            answered += 1;
            return body;
          },
        },
        async (srv) => {
          const json = assertClean(await gen(base(srv.port, '--codec', codec)), codec);
          // Replies the server wrote but the run ended before reading: at most those in flight.
          assert.ok(
            answered >= json.completed && answered <= json.sent,
            `server ${answered}, gen ${json.completed}`,
          );
          assert.ok(answered - json.completed <= CONNS * DEPTH);
          const r = pipelineGenResult(json);
          assert.equal(r.mode, 'echo');
          assert.equal(r.codec, codec);
          assert.equal(r.depth, DEPTH);
          assert.equal(r.tool.cpuCores, json.cpu.cores);
        },
      );
    });
  }

  test('the gateway (lars, 2 ipc workers, examples/gateway-echo.ts): answers in order, verified', async () => {
    await withDaemon(
      [
        'gateway',
        '-l',
        '127.0.0.1:0',
        '--codec',
        'lars',
        '-s',
        `${EXAMPLES}/gateway-echo.ts`,
        '--business-workers',
        '2',
      ],
      async ({ port }) => {
        assertClean(await gen(base(port, '--codec', 'lars', '--duration', '1', '--msgid', '7')), 'lars');
      },
    );
  });

  test('a byte echo with --codec raw, over two threads', async () => {
    const open = new Set<Socket>();
    const server = createServer((s) => {
      open.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => open.delete(s));
      s.pipe(s);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const port = (server.address() as AddressInfo).port;
      const json = assertClean(
        await gen(base(port, '--codec', 'raw', '--threads', '2', '--size', '1000')),
        'raw',
      );
      assert.equal(json.threads, 2);
    } finally {
      await closeServer(server, open);
    }
  });

  test('seq replies in any order are matched by their seq', async () => {
    const s = await framedServer('seq', (sock, frames) => {
      for (const f of frames.reverse()) sock.write(seq.encode(f.msgid, f.body, f.seq, FLAG_REPLY));
    });
    try {
      const json = assertClean(await gen(base(s.port, '--codec', 'seq')), 'seq');
      assert.ok(s.requests >= json.completed);
    } finally {
      await closeServer(s.server, s.open);
    }
  });
});

type Reply = (s: Socket, frames: { msgid: number; body: Buffer; seq: number }[]) => void;
const liars: [string, 'lars' | 'seq', Reply][] = [
  [
    'changes one byte of a body',
    'lars',
    (s, frames) => {
      for (const f of frames) {
        f.body[f.body.length - 1]! ^= 1;
        s.write(lars.encode(f.msgid, f.body));
      }
    },
  ],
  [
    'answers with another msgid',
    'lars',
    (s, fs) => s.write(Buffer.concat(fs.map((f) => lars.encode(f.msgid + 1, f.body)))),
  ],
  [
    'sends a short reply (one body byte less)',
    'lars',
    (s, fs) => s.write(Buffer.concat(fs.map((f) => lars.encode(f.msgid, f.body.subarray(1))))),
  ],
  [
    'answers a frame twice',
    'lars',
    (s, fs) =>
      s.write(
        Buffer.concat(
          fs.map((f) => Buffer.concat([lars.encode(f.msgid, f.body), lars.encode(f.msgid, f.body)])),
        ),
      ),
  ],
  [
    'answers lars frames out of order',
    'lars',
    (s, fs) => s.write(Buffer.concat(fs.reverse().map((f) => lars.encode(f.msgid, f.body)))),
  ],
  [
    'sends a seq reply without the REPLY flag',
    'seq',
    (s, fs) => s.write(Buffer.concat(fs.map((f) => seq.encode(f.msgid, f.body, f.seq, 0)))),
  ],
  [
    'answers a seq that was never sent',
    'seq',
    (s, fs) => s.write(Buffer.concat(fs.map((f) => seq.encode(f.msgid, f.body, f.seq + DEPTH, FLAG_REPLY)))),
  ],
];

describe('pipeline-gen against wrong answers', () => {
  for (const [name, codec, reply] of liars) {
    test(`a server that ${name}: verify errors, nothing counted as done past them`, async () => {
      const s = await framedServer(codec, reply);
      try {
        const { code, json } = await gen(base(s.port, '--codec', codec));
        assert.equal(code, 2);
        assert.ok(json!.verifyFailures > 0);
        assert.equal(json!.errors.verify, json!.verifyFailures);
        assert.equal(json!.errorTotal, json!.verifyFailures);
        // Frames answered twice or out of order: the first reply (or a batch of one) still matches.
        if (!/twice|out of order/.test(name)) assert.equal(json!.completed, 0);
      } finally {
        await closeServer(s.server, s.open);
      }
    });
  }

  test('a server that reads and never answers: one stalled per connection at the end', async () => {
    const s = await framedServer('lars', () => undefined);
    try {
      const { code, json } = await gen(base(s.port, '--codec', 'lars', '--duration', '2.5'));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.equal(json!.sent, CONNS * DEPTH);
      assert.equal(s.requests, CONNS * DEPTH);
      assert.deepEqual(json!.errors, { ...noErrors, stalled: CONNS });
    } finally {
      await closeServer(s.server, s.open);
    }
  });

  test('a server that closes at once: eof errors', async () => {
    const open = new Set<Socket>();
    const server = createServer((s) => {
      open.add(s);
      s.on('error', () => s.destroy());
      s.on('close', () => open.delete(s));
      s.end();
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { code, json } = await gen(base((server.address() as AddressInfo).port));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.ok(json!.errors.eof > 0);
    } finally {
      await closeServer(server, open);
    }
  });

  test('a refused port: connect errors with their errno name', async () => {
    const server = createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as AddressInfo).port;
    await new Promise<void>((r) => server.close(() => r()));
    const { code, json } = await gen(base(port));
    assert.equal(code, 2);
    assert.ok(json!.errors.connect > 0);
    assert.equal(json!.errorCodes.ECONNREFUSED, json!.errors.connect);
  });

  const bad: [string[], RegExp][] = [
    [[], /--port is required/],
    [['--port', '1', '--codec', 'tdhb'], /--codec must be raw, lars or seq/],
    [['--port', '1', '--depth', '0'], /--depth must be a whole number 1\.\.1024/],
    [
      ['--port', '1', '--connections', '60000', '--depth', '1024', '--size', '100000'],
      /over 1 GiB in flight/,
    ],
    [['--port', '1', '--duration', 'x'], /--duration must be seconds/],
    [['--port', '1', '--frobnicate', '1'], /unknown flag '--frobnicate'/],
  ];
  for (const [args, message] of bad) {
    test(`refuses ${args.join(' ') || 'no flags'} with status 1`, async () => {
      const { code, stderr, json } = await gen(args);
      assert.equal(code, 1);
      assert.equal(json, undefined);
      assert.match(stderr, message);
    });
  }
});

/** What tlsEcho's server saw: the counts, and the plaintext bytes it read. */
type TlsEcho = TlsCounts & { bytesRead: number };

describe('pipeline-gen --tls', () => {
  const pki = makePki();
  after(() => pki.remove());
  const { cert, key } = pki.server('gen.test');

  /** node's tls server on 127.0.0.1:0 answering each read with `answer(chunk)` (default: the chunk). */
  async function tlsEcho(answer: (chunk: Buffer) => Buffer = (d) => d): Promise<TlsEcho> {
    const counts = await countingTlsServer(cert, key, (s) => {
      s.on('data', (d: Buffer) => {
        echo.bytesRead += d.length;
        s.write(answer(d));
      });
    });
    const echo: TlsEcho = Object.assign(counts, { bytesRead: 0 });
    return echo;
  }

  test('raw 64-byte echo: every reply verified, one TLS 1.3 handshake per connection, the server read what was sent', async () => {
    const s = await tlsEcho();
    try {
      const json = assertClean(await gen(base(s.port, '--tls', '--codec', 'raw')), 'raw');
      assert.equal(json.tls, true);
      assert.equal(json.handshakes, CONNS);
      assert.equal(s.handshakes, CONNS);
      assert.deepEqual([...s.protocols], ['TLSv1.3']);
      // The server read at least every verified request and at most every one sent.
      assert.ok(
        s.bytesRead >= json.completed * json.size && s.bytesRead <= json.sent * json.size,
        `server read ${s.bytesRead} B; ${json.completed} verified, ${json.sent} sent`,
      );
      assert.equal(pipelineGenResult(json).perSecond, json.perSecond);
    } finally {
      await s.close();
    }
  });

  test('16 KiB lars frames over two threads verify', async () => {
    const s = await tlsEcho();
    try {
      const json = assertClean(
        await gen(base(s.port, '--tls', '--codec', 'lars', '--size', '16384', '--threads', '2')),
        'lars',
      );
      assert.equal(json.threads, 2);
      assert.equal(json.handshakes, CONNS);
    } finally {
      await s.close();
    }
  });

  test('1 MiB bodies: writes wait for the socket while replies are read, and still verify', async () => {
    const s = await tlsEcho();
    try {
      const run = await gen(
        base(s.port, '--tls', '--codec', 'raw', '--size', String(1 << 20), '--duration', '1'),
      );
      assert.equal(run.code, 0, run.stderr);
      assert.deepEqual(run.json!.errors, noErrors);
      assert.ok(run.json!.completed > 0, `${run.json!.completed} replies`);
    } finally {
      await s.close();
    }
  });

  test('a server that changes one byte once: one verify error, that connection opened again', async () => {
    let changed = false;
    const s = await tlsEcho((d) => {
      if (changed) return d;
      changed = true;
      const copy = Buffer.from(d);
      copy[copy.length - 1]! ^= 0x40;
      return copy;
    });
    try {
      const { code, json } = await gen(base(s.port, '--tls', '--codec', 'raw'));
      assert.equal(code, 2);
      assert.equal(json!.verifyFailures, 1);
      assert.equal(json!.errorTotal, 1);
      assert.ok(json!.completed > 0);
      // The reset connection is retried after 50 ms, with a handshake of its own.
      assert.ok(json!.handshakes >= CONNS && json!.handshakes <= CONNS + 1, `${json!.handshakes} handshakes`);
    } finally {
      await s.close();
    }
  });

  test("a plaintext echo: failed handshakes, counted as connect errors named by OpenSSL's reason", async () => {
    const open = new Set<Socket>();
    const server = createServer((sock) => {
      open.add(sock);
      sock.on('error', () => sock.destroy());
      sock.on('close', () => open.delete(sock));
      sock.pipe(sock);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const { code, json } = await gen(base((server.address() as AddressInfo).port, '--tls'));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.equal(json!.handshakes, 0);
      assert.ok(json!.errors.connect > 0);
      assert.equal(json!.errorTotal, json!.errors.connect);
      const names = Object.keys(json!.errorCodes);
      assert.ok(names.length > 0 && names.every((n) => n.startsWith('TLS ')), names.join(', '));
    } finally {
      await closeServer(server, open);
    }
  });
});
