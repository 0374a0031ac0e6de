import assert from 'node:assert/strict';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { type AddressInfo, createServer as netCreateServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { benchMain } from '../src/bench/cli.js';
import { echoCodec } from '../src/bench/codec.js';
import { splitConnections } from '../src/bench/pool.js';
import type { BenchResult } from '../src/bench/report.js';
import { tcpdaemon } from '../src/daemon.js';
import { createCodec, createMessageHandler } from '../src/message/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

interface Outcome {
  code: number;
  out: string;
  err: string;
}

async function bench(args: string[]): Promise<Outcome> {
  let out = '';
  let err = '';
  const code = await benchMain(args, {
    out: (t) => {
      out += t;
    },
    err: (t) => {
      err += t;
    },
  });
  return { code, out, err };
}

async function benchJson(args: string[]): Promise<Outcome & { result: BenchResult }> {
  const o = await bench([...args, '--json']);
  const lines = o.out.trim().split('\n');
  assert.equal(lines.length, 1, `one JSON line on stdout, got:\n${o.out}\nstderr:\n${o.err}`);
  return { ...o, result: JSON.parse(lines[0]!) as BenchResult };
}

/** A TCP server on 127.0.0.1:0 whose connections run `onSocket`; closed after the file. */
async function serve(onSocket: (s: Socket) => void): Promise<{ server: Server; port: number }> {
  const server = createServer((s) => {
    s.on('error', () => s.destroy());
    onSocket(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => closeServer(server));
  return { server, port: (server.address() as AddressInfo).port };
}

/** Stops listening and destroys the connections still open. */
function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of connections.get(server) ?? []) s.destroy();
  });
}

/** Open server-side sockets of every server made by `createServer` below. */
const connections = new WeakMap<Server, Set<Socket>>();
function createServer(onSocket: (s: Socket) => void): Server {
  const open = new Set<Socket>();
  const server = netCreateServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    onSocket(s);
  });
  connections.set(server, open);
  return server;
}

const echo = (s: Socket) => s.pipe(s);

describe('echo mode', () => {
  test('counts verified messages and no errors against a correct echo server', async () => {
    const { port } = await serve(echo);
    const { code, result } = await benchJson([
      '--port',
      String(port),
      '--connections',
      '4',
      '--depth',
      '8',
      '--size',
      '100',
      '--duration',
      '0.5',
      '--threads',
      '2',
    ]);
    assert.equal(code, 0);
    assert.equal(result.mode, 'echo');
    assert.equal(result.errorTotal, 0, JSON.stringify(result.errors));
    assert.ok(result.completed > 0, 'some messages echoed');
    assert.equal(result.threads, 2);
    assert.equal(result.tool.threadBusy.length, 2);
    assert.ok(result.perSecond > 0);
    assert.ok(result.mbPerSecond > 0);
    assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
    assert.ok(result.latencyMs.p99 <= result.latencyMs.max);
  });

  test('large messages arrive in many chunks and still verify', async () => {
    const { port } = await serve(echo);
    const { code, result } = await benchJson([
      '--port',
      String(port),
      '--connections',
      '2',
      '--depth',
      '2',
      '--size',
      '300000',
      '--duration',
      '0.5',
    ]);
    assert.equal(code, 0, JSON.stringify(result.errors));
    assert.ok(result.completed > 0);
    assert.equal(result.mbPerSecond > 0, true);
  });

  // Each server breaks the byte stream in one way; every one must show as verify errors.
  const broken: [string, (s: Socket) => void][] = [
    [
      'flips a byte',
      (s) =>
        s.on('data', (d: Buffer) => {
          const copy = Buffer.from(d);
          copy[copy.length - 1]! ^= 0x01;
          s.write(copy);
        }),
    ],
    ['drops a byte', (s) => s.on('data', (d: Buffer) => s.write(d.length > 1 ? d.subarray(1) : d))],
    ['repeats what it got', (s) => s.on('data', (d: Buffer) => s.write(Buffer.concat([d, d])))],
    [
      // depth 2 x 32 bytes: the first 64 bytes are the first two messages.
      'swaps the first two messages',
      (s) => {
        let got = Buffer.alloc(0);
        s.on('data', (d: Buffer) => {
          got = Buffer.concat([got, d]);
          if (got.length >= 64)
            s.write(Buffer.concat([got.subarray(32, 64), got.subarray(0, 32), got.subarray(64)]));
        });
      },
    ],
  ];
  for (const [name, behaviour] of broken) {
    test(`a server that ${name} is caught as verify errors`, async () => {
      const { port } = await serve(behaviour);
      const { code, result } = await benchJson([
        '--port',
        String(port),
        '--connections',
        '2',
        '--depth',
        '2',
        '--size',
        '32',
        '--duration',
        '0.4',
      ]);
      assert.equal(code, 2);
      assert.ok(result.errors.verify > 0, JSON.stringify(result.errors));
    });
  }

  test('a server that closes connections shows eof errors, and the tool reconnects', async () => {
    let accepted = 0;
    const { port } = await serve((s) => {
      accepted += 1;
      s.once('data', (d: Buffer) => s.end(d));
    });
    const { code, result } = await benchJson([
      '--port',
      String(port),
      '--connections',
      '2',
      '--duration',
      '0.4',
    ]);
    assert.equal(code, 2);
    assert.ok(result.errors.eof > 0, JSON.stringify(result.errors));
    assert.ok(accepted > 2, `reconnected: ${accepted} connections`);
  });

  test('works over a unix socket (--path)', async (t) => {
    const dir = tempDir('bench-');
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'echo.sock');
    const server = createServer(echo);
    server.listen(path);
    await once(server, 'listening');
    t.after(() => closeServer(server));
    const { code, result } = await benchJson(['--path', path, '--connections', '2', '--duration', '0.3']);
    assert.equal(code, 0, JSON.stringify(result.errors));
    assert.equal(result.target, path);
    assert.ok(result.completed > 0);
  });

  test('text output names the figures and their units', async () => {
    const { port } = await serve(echo);
    const { code, out } = await bench(['--port', String(port), '--connections', '2', '--duration', '0.3']);
    assert.equal(code, 0);
    assert.match(out, /msg\/s/);
    assert.match(out, /MB\/s each way/);
    assert.match(out, /latency ms\s+p50 [\d.]+\s+p90/);
    assert.match(out, /errors\s+none/);
  });
});

describe('connect mode', () => {
  test('counts connect cycles, each one a connection the server saw', async () => {
    let accepted = 0;
    const { port } = await serve((s) => {
      accepted += 1;
      s.pipe(s);
    });
    const { code, result } = await benchJson([
      '--port',
      String(port),
      '--mode',
      'connect',
      '--connections',
      '3',
      '--size',
      '1',
      '--duration',
      '0.4',
    ]);
    assert.equal(code, 0, JSON.stringify(result.errors));
    assert.ok(result.completed > 0);
    assert.ok(result.completed <= accepted, `${result.completed} cycles, ${accepted} accepted`);
    assert.ok(accepted - result.completed <= 3, 'at most one cycle per loop cut off by the end of the run');
  });

  test('an echo still missing 2 s after its write when the run ends is counted as stalled', async () => {
    const { port } = await serve((s) => s.resume());
    const { code, result } = await benchJson([
      ...['--port', String(port), '--mode', 'connect', '--connections', '2'],
      ...['--duration', '2.3', '--threads', '1'],
    ]);
    assert.equal(code, 2);
    assert.equal(result.completed, 0);
    assert.equal(result.errors.stalled, 2, JSON.stringify(result.errors));
  });

  test('a refused port is reported as connect errors with exit status 2', async () => {
    const { server, port } = await serve(echo);
    await closeServer(server);
    const { code, result } = await benchJson([
      '--port',
      String(port),
      '--mode',
      'connect',
      '--duration',
      '0.3',
    ]);
    assert.equal(code, 2);
    assert.equal(result.completed, 0);
    assert.ok(result.errors.connect > 0);
    assert.equal(result.errorCodes.ECONNREFUSED, result.errors.connect);
  });
});

describe('connect mode, paced (--rate)', () => {
  /** A server that counts its connections and runs `onSocket` on each. */
  async function counting(onSocket: (s: Socket) => void) {
    const seen = { accepted: 0 };
    const { port } = await serve((s) => {
      seen.accepted += 1;
      onSocket(s);
    });
    return { port, seen };
  }

  test('starts no more than rate x duration against an echo server, none late at a low rate', async () => {
    const { port, seen } = await counting(echo);
    const { code, result } = await benchJson([
      ...['--port', String(port), '--mode', 'connect', '--rate', '10', '--connections', '4'],
      ...['--duration', '1', '--threads', '2'],
    ]);
    assert.equal(code, 0, JSON.stringify(result));
    assert.equal(result.errorTotal, 0, JSON.stringify(result.errors));
    const paced = result.paced!;
    assert.deepEqual(
      { rate: paced.rate, late: paced.late, unstarted: paced.unstarted },
      {
        rate: 10,
        late: 0,
        unstarted: 0,
      },
    );
    // 10/s over 1 s: each of the 2 threads may bring in one start at its very end.
    assert.ok(paced.due >= 5 && paced.due <= 10 + 2, `${paced.due} starts due`);
    assert.ok(seen.accepted <= paced.due, `${seen.accepted} accepted, ${paced.due} due`);
    assert.ok(result.completed <= seen.accepted && seen.accepted - result.completed <= 4);
    assert.ok(result.completed > 0);
  });

  test('starts pile up to the cap against a server that never answers, and are counted late', async () => {
    const { port, seen } = await counting((s) => s.resume());
    const args = ['--port', String(port), '--mode', 'connect', '--rate', '40', '--connections', '3'];
    const { code, result } = await benchJson([...args, '--duration', '0.5', '--threads', '1']);
    assert.equal(code, 2, 'late starts: the rate was not offered');
    assert.equal(seen.accepted, 3, 'never more than the cap in flight');
    assert.equal(result.completed, 0);
    const paced = result.paced!;
    assert.ok(paced.due > 3, `${paced.due} due`);
    assert.equal(paced.late, paced.due - 3, 'every start after the first 3 found the cap in flight');
    assert.equal(paced.unstarted, paced.late, 'and none of them could start');

    const text = await bench([...args, '--duration', '0.3', '--threads', '1']);
    assert.equal(text.code, 2);
    assert.match(
      text.out,
      /paced\s+\d+ starts due at 40\/s, [1-9]\d* late \([1-9]\d* never started\): the rate was not offered/,
    );
  });

  test('a late start waits for a free slot and its latency runs from when it was due', async () => {
    const delayMs = 100;
    const { port } = await counting((s) =>
      s.once('data', (d: Buffer) => setTimeout(() => s.end(d), delayMs).unref()),
    );
    // One slot, a start every 50 ms, each cycle >= 100 ms: from the second start on, starts wait.
    const { code, result } = await benchJson([
      ...['--port', String(port), '--mode', 'connect', '--rate', '20', '--connections', '1'],
      ...['--size', '8', '--duration', '1', '--threads', '1'],
    ]);
    assert.equal(code, 2);
    assert.equal(result.errorTotal, 0, JSON.stringify(result.errors));
    assert.ok(result.completed >= 2, `${result.completed} cycles`);
    assert.ok(result.paced!.late > 0);
    assert.ok(result.paced!.unstarted < result.paced!.late, 'some late starts did start');
    // Start 1 was due at 50 ms and could begin at 100 ms at the earliest: >= 150 ms from its due time.
    assert.ok(result.latencyMs.max >= 1.5 * delayMs, `max ${result.latencyMs.max} ms`);
  });
});

describe('hold mode', () => {
  test('opens every connection, says so once they are all accepted, then closes them', async () => {
    const { server, port } = await serve(echo);
    let seenWhenHolding = -1;
    let out = '';
    let err = '';
    const code = await benchMain(
      ['--port', String(port), '--mode', 'hold', '--connections', '60', '--hold-seconds', '0.3', '--json'],
      {
        out: (t) => {
          out += t;
        },
        err: (t) => {
          err += t;
          if (t.startsWith('holding ')) server.getConnections((_e, n) => (seenWhenHolding = n));
        },
      },
    );
    assert.equal(code, 0, err);
    assert.match(err, /^holding 60 open 0 failed$/m);
    assert.equal(seenWhenHolding, 60, 'the server held all 60 when the line came');
    const result = JSON.parse(out) as BenchResult;
    assert.deepEqual(
      { ...result.hold, rampSeconds: 0, holdSeconds: 0 },
      {
        open: 60,
        failed: 0,
        dropped: 0,
        rampSeconds: 0,
        holdSeconds: 0,
      },
    );
    assert.ok(result.hold!.holdSeconds >= 0.3);
    const open = () => new Promise<number>((r) => server.getConnections((_e, n) => r(n)));
    let left = await open();
    for (const end = Date.now() + 10_000; left > 0 && Date.now() < end; left = await open()) {
      await new Promise((r) => setTimeout(r, 20)); // the closes are on their way to the server
    }
    assert.equal(left, 0, 'closed after the hold');
  });

  test('connections the server drops while held are counted', async () => {
    const sockets: Socket[] = [];
    const { port } = await serve((s) => {
      s.pipe(s);
      sockets.push(s);
    });
    let out = '';
    const code = await benchMain(
      ['--port', String(port), '--mode', 'hold', '--connections', '4', '--hold-seconds', '0.5', '--json'],
      {
        out: (t) => {
          out += t;
        },
        err: (t) => {
          if (t.startsWith('holding ')) for (const s of sockets.splice(0, 2)) s.end();
        },
      },
    );
    const result = JSON.parse(out) as BenchResult;
    assert.equal(code, 2);
    assert.equal(result.hold!.open, 4);
    assert.equal(result.hold!.dropped, 2);
    assert.equal(result.errors.eof, 2);
  });
});

describe('flags', () => {
  const bad: [string[], RegExp][] = [
    [[], /--port or --path is required/],
    [['--port', '1', '--path', '/x'], /not both/],
    [['--port', '70000'], /--port must be between 1 and 65535/],
    [['--port', '1', '--connections', '60001'], /--connections must be between 1 and 60000/],
    [['--port', '1', '--size', String(64 * 1024 * 1024 + 1)], /--size must be between/],
    [['--port', '1', '--size', '1k'], /--size must be a whole number/],
    [['--port', '1', '--depth', '0'], /--depth must be between 1/],
    [['--port', '1', '--duration', '0'], /--duration must be above 0/],
    [['--port', '1', '--duration', 'soon'], /--duration must be seconds/],
    [['--port', '1', '--duration', '3601'], /--duration must be above 0 up to 3600/],
    [['--port', '1', '--mode', 'flood'], /--mode must be one of echo, connect, hold/],
    [
      ['--port', '1', '--codec', 'nope'],
      /--codec must be one of raw, lars, seq, tdhb:W, u32be, line, not 'nope'/,
    ],
    [['--port', '1', '--threads', '65'], /--threads must be between 1 and 64/],
    [['--port', '1', '--connections', '60000', '--depth', '1024', '--size', '65536'], /in flight/],
    [['--port', '1', '--rate', '10'], /--rate goes with --mode connect only, not with echo/],
    [
      ['--port', '1', '--mode', 'hold', '--rate', '10'],
      /--rate goes with --mode connect only, not with hold/,
    ],
    [
      ['--port', '1', '--mode', 'connect', '--rate', '0'],
      /--rate must be above 0 up to 100000 per second, not 0/,
    ],
    [['--port', '1', '--mode', 'connect', '--rate=-5'], /--rate must be a number per second, not '-5'/],
    [
      ['--port', '1', '--mode', 'connect', '--rate', '-5'],
      /'--rate' argument is ambiguous.*use '--rate=-XYZ'/,
    ],
    [
      ['--port', '1', '--mode', 'connect', '--rate', 'fast'],
      /--rate must be a number per second, not 'fast'/,
    ],
    [['--port', '1', '--mode', 'connect', '--rate', '100001'], /--rate must be above 0 up to 100000/],
    [['--port', '1', '--mode', 'connect', '--rate'], /Option '--rate <value>' argument missing/],
    [['--port', '1', '--bogus'], /Unknown option '--bogus'/],
    [['--port', '1', 'extra'], /positional/],
  ];
  for (const [args, reason] of bad) {
    test(`refuses ${args.join(' ') || 'no flags'}`, async () => {
      const { code, out, err } = await bench(args);
      assert.equal(code, 1);
      assert.equal(out, '');
      const [first, second] = err.split('\n');
      assert.match(first!, /^tcpdaemon bench: /);
      assert.match(first!, reason);
      assert.match(second!, /^usage: tcpdaemon bench/);
    });
  }

  test('--help prints the usage and exits 0', async () => {
    const { code, out } = await bench(['--help']);
    assert.equal(code, 0);
    assert.match(out, /^usage: tcpdaemon bench/);
  });
});

test('splitConnections spreads ids evenly and never makes an empty thread', () => {
  assert.deepEqual(splitConnections(5, 2), [
    [0, 1, 2],
    [3, 4],
  ]);
  assert.deepEqual(splitConnections(2, 4), [[0], [1]]);
  const parts = splitConnections(10000, 3);
  assert.deepEqual(
    parts.map((p) => p.length),
    [3334, 3333, 3333],
  );
  assert.deepEqual(
    parts.flat(),
    Array.from({ length: 10000 }, (_, i) => i),
  );
});

describe('framed echo (--codec, --msgid) against the message layer', () => {
  for (const name of ['lars', 'seq', 'tdhb:4', 'u32be', 'line']) {
    test(`--codec ${name}: every reply verified, no error`, async () => {
      let seenMsgid: number | undefined;
      const daemon = await tcpdaemon({
        listen: '127.0.0.1:0',
        loglevel: 'fatal',
        handler: createMessageHandler({
          codec: name,
          fallback: (body, msgid) => {
            seenMsgid = msgid;
            return body;
          },
        }),
      });
      try {
        const { port } = daemon.address() as AddressInfo;
        const { code, result } = await benchJson([
          ...['--port', String(port), '--codec', name, '--msgid', '7', '--duration', '0.3'],
          ...['--connections', '4', '--depth', '4', '--size', '300', '--threads', '1'],
        ]);
        assert.equal(code, 0, JSON.stringify(result.errors));
        assert.equal(result.errorTotal, 0, JSON.stringify(result.errors));
        assert.ok(result.completed > 0, 'messages echoed');
        if (name !== 'u32be' && name !== 'line' && !name.startsWith('tdhb')) assert.equal(seenMsgid, 7);
      } finally {
        await daemon.close();
      }
    });
  }

  test('lars, tdhb, u32be frames are reused per connection and equal what the codec encodes', () => {
    for (const name of ['lars', 'tdhb:4', 'u32be']) {
      const codec = createCodec(name);
      const framer = echoCodec(name, 7).framer(3);
      const seen = new Set<Buffer>();
      for (let i = 0; i < 12; i++) {
        const body = Buffer.alloc(i < 6 ? 5 : 9, i); // a new length midway: fresh frames
        const request = framer.encode(body);
        assert.deepEqual(request, codec.encode(7, body), `${name} message ${i}`);
        assert.equal(framer.expectedReply(body, request), request);
        seen.add(request);
      }
      assert.equal(seen.size, 6, `${name}: 3 frames of each length, each used again 3 messages later`);
    }
  });

  test('a server replaying an older lars frame is caught although the tool reuses frames', async () => {
    // Echoes the first chunk, then answers each chunk with the one before it.
    const { port } = await serve((s) => {
      let previous: Buffer | undefined;
      s.on('data', (d: Buffer) => {
        s.write(previous ?? d);
        previous = Buffer.from(d);
      });
    });
    const { code, result } = await benchJson([
      ...['--port', String(port), '--codec', 'lars', '--connections', '1', '--depth', '1'],
      ...['--size', '16', '--duration', '0.3', '--threads', '1'],
    ]);
    assert.equal(code, 2);
    assert.ok(result.errors.verify > 0, JSON.stringify(result.errors));
  });

  test('a framed reply that differs is a verification error', async () => {
    const daemon = await tcpdaemon({
      listen: '127.0.0.1:0',
      loglevel: 'fatal',
      handler: createMessageHandler({ codec: 'lars', fallback: (body) => ({ msgid: 8, body }) }),
    });
    try {
      const { port } = daemon.address() as AddressInfo;
      const { result } = await benchJson([
        '--port',
        String(port),
        '--codec',
        'lars',
        '--duration',
        '0.3',
        '--threads',
        '1',
      ]);
      assert.ok(result.errors.verify > 0, JSON.stringify(result.errors));
    } finally {
      await daemon.close();
    }
  });

  test('a body larger than the codec carries is refused up front', async () => {
    const { code, err } = await bench(['--port', '1', '--codec', 'tdhb:2', '--size', '100']);
    assert.equal(code, 1);
    assert.match(err, /--size 100 is more than codec tdhb:2 carries \(99 bytes\)/);
  });
});

describe('bench --tls', () => {
  test('connect and echo over TLS against a node tls echo; --tls-resume resumes sessions', async () => {
    const { execFileSync } = await import('node:child_process');
    const { readFileSync } = await import('node:fs');
    const { createServer: createTlsServer } = await import('node:tls');
    const dir = tempDir('tcpdaemon-bench-tls-');
    try {
      execFileSync(
        'openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          join(dir, 'k.pem'),
          '-out',
          join(dir, 'c.pem'),
          '-days',
          '2',
          '-subj',
          '/CN=bench.test',
        ],
        { stdio: 'ignore' },
      );
      let full = 0;
      let resumed = 0;
      const server = createTlsServer(
        { cert: readFileSync(join(dir, 'c.pem')), key: readFileSync(join(dir, 'k.pem')) },
        (s) => {
          if (s.isSessionReused()) resumed++;
          else full++;
          s.on('error', () => s.destroy());
          s.pipe(s);
        },
      );
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const port = (server.address() as AddressInfo).port;
      try {
        const echo = await benchJson([
          '--port',
          String(port),
          '--tls',
          '--connections',
          '2',
          '--duration',
          '0.5',
          '--threads',
          '1',
        ]);
        assert.equal(echo.code, 0, JSON.stringify(echo.result.errors));
        assert.ok(echo.result.completed > 0);
        const conn = await benchJson([
          '--port',
          String(port),
          '--tls',
          '--mode',
          'connect',
          '--connections',
          '2',
          '--duration',
          '0.5',
          '--threads',
          '1',
        ]);
        assert.equal(conn.code, 0, JSON.stringify(conn.result.errors));
        assert.equal(resumed, 0, 'no session offered with --tls');
        const before = full;
        const res = await benchJson([
          '--port',
          String(port),
          '--tls-resume',
          '--mode',
          'connect',
          '--connections',
          '1',
          '--duration',
          '0.5',
          '--threads',
          '1',
        ]);
        assert.equal(res.code, 0, JSON.stringify(res.result.errors));
        assert.ok(
          resumed > 0 && resumed >= res.result.completed - 2,
          `resumed ${resumed} of ${res.result.completed} (full ${full - before})`,
        );
      } finally {
        await new Promise<void>((r) => server.close(() => r()));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
