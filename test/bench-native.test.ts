// bench/connect-gen.c, the bench's native connect generator: built here with the system compiler,
// run briefly against local servers (an echo, one that corrupts bytes, one that closes at once,
// one that never answers, a refused port), its JSON checked against what the servers saw; and its
// --tls cycles (OpenSSL) against node's tls server: full and resumed handshakes, every byte verified.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { after, describe, test } from 'node:test';
import type { TLSSocket } from 'node:tls';
import { type ConnectGenOutput, connectGenResult } from '../bench/native.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { nativeGenerator } from './helpers/native-gen.js';
import { countingTlsServer, makePki } from './helpers/tls.js';

checkNoLeftoverProcesses();

const gen = nativeGenerator<ConnectGenOutput>('connect-gen');

interface Counted {
  server: Server;
  port: number;
  accepted: number;
  /** Server sockets that ended with the peer's FIN, and with a reset. */
  fins: number;
  resets: number;
  open: Set<Socket>;
}

/** A server on 127.0.0.1:0 whose sockets run `onSocket`, counting how each connection ended. */
async function serve(onSocket: (s: Socket) => void): Promise<Counted> {
  const open = new Set<Socket>();
  const counted: Counted = {
    server: undefined as unknown as Server,
    port: 0,
    accepted: 0,
    fins: 0,
    resets: 0,
    open,
  };
  const server = createServer((s) => {
    counted.accepted += 1;
    open.add(s);
    s.on('end', () => {
      counted.fins += 1;
    });
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'ECONNRESET') counted.resets += 1;
      s.destroy();
    });
    s.on('close', () => open.delete(s));
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  counted.server = server;
  counted.port = (server.address() as AddressInfo).port;
  return counted;
}

async function close(c: Counted): Promise<void> {
  const closed = new Promise<void>((r) => c.server.close(() => r()));
  for (const s of c.open) s.destroy();
  await closed;
}

const echo = (s: Socket) => s.pipe(s);
const base = (port: number, ...more: string[]) => [
  '--port',
  String(port),
  '--connections',
  '4',
  '--duration',
  '0.5',
  ...more,
];
const noErrors = { connect: 0, timeout: 0, reset: 0, eof: 0, verify: 0, stalled: 0 };

describe('connect-gen', () => {
  for (const kind of ['fin', 'rst'] as const) {
    test(`against an echo server, --close ${kind}: cycles counted, every one a connection the server saw`, async () => {
      const s = await serve(echo);
      try {
        const { code, json } = await gen(base(s.port, '--close', kind, '--size', '100'));
        assert.equal(code, 0);
        assert.ok(json);
        assert.equal(json.generator, 'connect-gen');
        assert.equal(json.close, kind);
        assert.equal(json.size, 100);
        assert.deepEqual(json.errors, noErrors);
        assert.equal(json.errorTotal, 0);
        assert.equal(json.verifyFailures, 0);
        assert.ok(json.completed > 10, `cycles: ${json.completed}`);
        // Each cycle is one accepted connection; the last few may have been cut at the end.
        assert.ok(s.accepted >= json.completed && s.accepted <= json.completed + 4, `${s.accepted} accepted`);
        // (seconds has 3 decimals, perSecond comes from the exact time)
        assert.ok(Math.abs(json.perSecond * json.seconds - json.completed) <= json.completed * 0.01 + 1);
        const l = json.latencyMs;
        assert.ok(l.p50 > 0 && l.p50 <= l.p90 && l.p90 <= l.p99 && l.p99 <= l.p999 && l.p999 <= l.max);
        assert.ok(json.cpu.userSeconds + json.cpu.systemSeconds > 0 && json.cpu.cores > 0);
        // The last closes reach the server.
        const ends = () => (kind === 'fin' ? s.fins : s.resets);
        for (const end = Date.now() + 10_000; ends() < json.completed && Date.now() < end; ) {
          await new Promise((r) => setTimeout(r, 20));
        }
        if (kind === 'fin') {
          assert.ok(s.fins >= json.completed, `${s.fins} FINs for ${json.completed} cycles`);
        } else {
          assert.ok(s.resets >= json.completed, `${s.resets} resets for ${json.completed} cycles`);
          assert.ok(s.fins <= 4, `${s.fins} FINs`);
        }
        // As the bench runner reads it.
        const r = connectGenResult(json);
        assert.equal(r.mode, 'connect');
        assert.equal(r.perSecond, json.perSecond);
        assert.equal(r.tool.cpuCores, json.cpu.cores);
      } finally {
        await close(s);
      }
    });
  }

  test('a large body in many chunks, written in parts, still verifies', async () => {
    const s = await serve(echo);
    try {
      const { code, json } = await gen(base(s.port, '--size', String(4 * 1024 * 1024), '--duration', '1'));
      assert.equal(code, 0);
      assert.ok(json!.completed > 0);
      assert.deepEqual(json!.errors, noErrors);
    } finally {
      await close(s);
    }
  });

  const liars: [string, (s: Socket) => void][] = [
    [
      'changes one byte',
      (s) =>
        s.on('data', (d: Buffer) => {
          const copy = Buffer.from(d);
          copy[copy.length - 1]! ^= 1;
          s.write(copy);
        }),
    ],
    [
      'sends an extra byte',
      (s) => s.on('data', (d: Buffer) => s.write(Buffer.concat([d, Buffer.from('!')]))),
    ],
    [
      'sends other bytes of the right length',
      (s) => s.on('data', (d: Buffer) => s.write(Buffer.alloc(d.length, 7))),
    ],
  ];
  for (const [name, onSocket] of liars) {
    test(`a server that ${name} counts as verification failures, no cycle done`, async () => {
      const s = await serve(onSocket);
      try {
        const { code, json } = await gen(base(s.port));
        assert.equal(code, 2);
        assert.equal(json!.completed, 0);
        assert.ok(json!.verifyFailures > 0);
        assert.equal(json!.errors.verify, json!.verifyFailures);
        assert.equal(json!.errorTotal, json!.verifyFailures);
      } finally {
        await close(s);
      }
    });
  }

  test('a server that closes at once: eof errors', async () => {
    const s = await serve((sock) => sock.end());
    try {
      const { code, json } = await gen(base(s.port));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.ok(json!.errors.eof > 0);
    } finally {
      await close(s);
    }
  });

  test('a server that never answers: one stalled per loop at the end', async () => {
    const s = await serve((sock) => sock.resume());
    try {
      const { code, json } = await gen(base(s.port, '--duration', '2.5'));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.deepEqual(json!.errors, { ...noErrors, stalled: 4 });
    } finally {
      await close(s);
    }
  });

  test('a refused port: connect errors with their errno name', async () => {
    const s = await serve(echo);
    const port = s.port;
    await close(s);
    const { code, json } = await gen(base(port));
    assert.equal(code, 2);
    assert.ok(json!.errors.connect > 0);
    assert.equal(json!.errorCodes.ECONNREFUSED, json!.errors.connect);
  });

  const bad: [string[], RegExp][] = [
    [[], /--port is required/],
    [['--port', '1', '--close', 'half'], /--close must be fin or rst/],
    [['--port', '1', '--connections', '0'], /--connections must be a whole number 1\.\.60000/],
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

describe('connect-gen --tls', () => {
  const pki = makePki();
  after(() => pki.remove());
  const { cert, key } = pki.server('gen.test');

  const serveTls = (onSocket: (s: TLSSocket) => void) => countingTlsServer(cert, key, onSocket);

  test('--tls new: a full TLS 1.3 handshake per cycle, every byte verified, close_notify sent', async () => {
    const s = await serveTls((sock) => sock.pipe(sock));
    try {
      const { code, json } = await gen(base(s.port, '--tls', 'new', '--size', '100'));
      assert.equal(code, 0);
      assert.equal(json!.tls, 'new');
      assert.deepEqual(json!.errors, noErrors);
      assert.ok(json!.completed > 5, `cycles: ${json!.completed}`);
      assert.equal(json!.resumed, 0);
      assert.ok(s.handshakes >= json!.completed && s.handshakes <= json!.completed + 4, `${s.handshakes}`);
      assert.equal(s.reused, 0);
      assert.deepEqual([...s.protocols], ['TLSv1.3']);
      await new Promise((r) => setTimeout(r, 100)); // the last closes reach the server
      assert.ok(s.ends >= json!.completed, `${s.ends} ends for ${json!.completed} cycles`);
    } finally {
      await s.close();
    }
  });

  test("--tls resume: after each loop's first handshake the server resumes the session; counts agree", async () => {
    const s = await serveTls((sock) => sock.pipe(sock));
    try {
      const { code, json } = await gen(base(s.port, '--tls', 'resume'));
      assert.equal(code, 0);
      assert.equal(json!.tls, 'resume');
      assert.deepEqual(json!.errors, noErrors);
      assert.ok(json!.completed > 5, `cycles: ${json!.completed}`);
      // Only the 4 loops' first cycles can start before the thread holds a ticket.
      assert.ok(json!.resumed >= json!.completed - 4, `${json!.resumed} resumed of ${json!.completed}`);
      // The server counts at its end of the handshake, the client at its own: the last few may differ.
      assert.ok(Math.abs(s.reused - json!.resumed) <= 4, `server ${s.reused}, connect-gen ${json!.resumed}`);
    } finally {
      await s.close();
    }
  });

  test('a large body over TLS, written and read back in many records, verifies', async () => {
    const s = await serveTls((sock) => sock.pipe(sock));
    try {
      const { code, json } = await gen(
        base(s.port, '--tls', 'new', '--size', String(2 * 1024 * 1024), '--duration', '1'),
      );
      assert.equal(code, 0);
      assert.ok(json!.completed > 0);
      assert.deepEqual(json!.errors, noErrors);
    } finally {
      await s.close();
    }
  });

  test('a TLS server that changes one byte: verification failures, no cycle done', async () => {
    const s = await serveTls((sock) =>
      sock.on('data', (d: Buffer) => {
        const copy = Buffer.from(d);
        copy[0]! ^= 1;
        sock.write(copy);
      }),
    );
    try {
      const { code, json } = await gen(base(s.port, '--tls', 'new'));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.ok(json!.verifyFailures > 0);
      assert.equal(json!.errorTotal, json!.verifyFailures);
    } finally {
      await s.close();
    }
  });

  test("--tls against a plaintext echo: connect errors named by OpenSSL's reason", async () => {
    const s = await serve(echo);
    try {
      const { code, json } = await gen(base(s.port, '--tls', 'new'));
      assert.equal(code, 2);
      assert.equal(json!.completed, 0);
      assert.ok(json!.errors.connect > 0);
      const names = Object.keys(json!.errorCodes);
      assert.ok(names.length > 0 && names.every((n) => n.startsWith('TLS ')), names.join(', '));
    } finally {
      await close(s);
    }
  });

  test('refuses --tls maybe with status 1', async () => {
    const { code, stderr } = await gen(['--port', '1', '--tls', 'maybe']);
    assert.equal(code, 1);
    assert.match(stderr, /--tls must be new or resume/);
  });
});
