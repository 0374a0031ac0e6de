import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import fc from 'fast-check';
import { bytesToIpv6, ipv6ToBytes } from '../src/proxy/ip.js';
import {
  encodeProxyV1,
  encodeProxyV2,
  type ParseResult,
  ProxyHeaderParser,
  parseProxyHeader,
  type ReadProxyHeaderResult,
  readProxyHeader,
  V1_MAX_LENGTH,
  V2_SIGNATURE,
} from '../src/proxy/proxy-protocol.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect } from './helpers/net.js';

checkNoLeftoverProcesses();

const ascii = (s: string) => Buffer.from(s, 'latin1');

function done(r: ParseResult) {
  assert.equal(r.status, 'done', JSON.stringify(r));
  return r as Extract<ParseResult, { status: 'done' }>;
}

function invalid(r: ParseResult): string {
  assert.equal(r.status, 'invalid', JSON.stringify(r));
  return (r as Extract<ParseResult, { status: 'invalid' }>).reason;
}

/** Feeds `buf` to a fresh parser in pieces cut at `cuts`; returns the first final result. */
function feed(buf: Buffer, cuts: number[]): ParseResult {
  const parser = new ProxyHeaderParser();
  const points = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  let last = 0;
  let r: ParseResult = { status: 'incomplete' };
  for (const p of [...points, buf.length]) {
    if (p < last) continue;
    r = parser.push(buf.subarray(last, p));
    last = p;
    if (r.status === 'done') return { ...r, rest: Buffer.concat([r.rest, buf.subarray(p)]) };
    if (r.status === 'invalid') return r;
  }
  return r;
}

describe('ipv6 text <-> bytes', () => {
  it('round-trips any 16 bytes in the spelling node and the URL parser use', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 16, maxLength: 16 }), (b) => {
        const text = bytesToIpv6(b);
        assert.deepEqual(ipv6ToBytes(text), Buffer.from(b));
        if (!text.startsWith('::ffff:')) assert.equal(`[${text}]`, new URL(`http://[${text}]/`).hostname);
      }),
      { numRuns: 2000 },
    );
  });

  it('parses every textual form of an address to the same bytes', () => {
    fc.assert(
      fc.property(fc.ipV6(), (text) => {
        const bytes = ipv6ToBytes(text);
        assert.ok(bytes, text);
        const canonical = new URL(`http://[${text}]/`).hostname.slice(1, -1);
        assert.deepEqual(ipv6ToBytes(canonical), bytes);
      }),
      { numRuns: 2000 },
    );
    assert.equal(ipv6ToBytes('fe80::1%eth0'), undefined);
    assert.equal(ipv6ToBytes('1.2.3.4'), undefined);
  });
});

describe('PROXY v1', () => {
  it('encodes TCP4, TCP6, mixed families and unknown endpoints', () => {
    const v4 = encodeProxyV1({ address: '192.168.0.1', port: 56324 }, { address: '192.168.0.11', port: 443 });
    assert.equal(v4.toString(), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n');
    const mapped = encodeProxyV1({ address: '::ffff:10.0.0.1', port: 1 }, { address: '10.0.0.2', port: 2 });
    assert.equal(mapped.toString(), 'PROXY TCP4 10.0.0.1 10.0.0.2 1 2\r\n');
    const v6 = encodeProxyV1({ address: '2001:DB8:0:0::1', port: 1 }, { address: '::1', port: 2 });
    assert.equal(v6.toString(), 'PROXY TCP6 2001:db8::1 ::1 1 2\r\n');
    const mixed = encodeProxyV1({ address: '10.0.0.1', port: 1 }, { address: '::1', port: 2 });
    assert.equal(mixed.toString(), 'PROXY TCP6 ::ffff:10.0.0.1 ::1 1 2\r\n');
    assert.equal(
      encodeProxyV1({ address: 'unix', port: 0 }, { address: '::1', port: 2 }).toString(),
      'PROXY UNKNOWN\r\n',
    );
    assert.equal(encodeProxyV1().toString(), 'PROXY UNKNOWN\r\n');
  });

  it('parses the specification examples, the longest line included', () => {
    const h = done(parseProxyHeader(ascii('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\nGET /')));
    assert.deepEqual(h.header.source, { address: '192.168.0.1', port: 56324 });
    assert.deepEqual(h.header.destination, { address: '192.168.0.11', port: 443 });
    assert.equal(h.rest.toString(), 'GET /');
    const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const longest = `PROXY UNKNOWN ${f} ${f} 65535 65535\r\n`;
    assert.equal(longest.length, V1_MAX_LENGTH);
    assert.equal(done(parseProxyHeader(ascii(longest))).header.family, 'UNKNOWN');
    const tcp6 = done(parseProxyHeader(ascii(`PROXY TCP6 ${f} ::1 65535 0\r\n`)));
    assert.deepEqual(tcp6.header.source, { address: f, port: 65535 });
    assert.deepEqual(tcp6.header.destination, { address: '::1', port: 0 });
    assert.equal(done(parseProxyHeader(ascii('PROXY UNKNOWN\r\n'))).header.family, 'UNKNOWN');
  });

  it('refuses a line over 107 bytes without waiting for more', () => {
    const f = 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff';
    const tooLong = ascii(`PROXY UNKNOWN ${f} ${f} 65535 655350\r\n`);
    assert.match(invalid(parseProxyHeader(tooLong)), /longer than 107/);
    assert.match(invalid(parseProxyHeader(tooLong.subarray(0, 106))), /longer than 107/);
    assert.equal(parseProxyHeader(tooLong.subarray(0, 105)).status, 'incomplete');
  });

  it('says why a malformed line is refused', () => {
    const cases: [string, RegExp][] = [
      ['GET / HTTP/1.1\r\n', /no PROXY header/],
      ['PROXX TCP4\r\n', /prefix/],
      ['PROXY TCP5 1.2.3.4 1.2.3.4 1 2\r\n', /unknown protocol/],
      ['PROXY TCP4 1.2.3.4 1.2.3.4 1\r\n', /4 fields/],
      ['PROXY TCP4 1.2.3.4  1.2.3.4 1 2\r\n', /4 fields/],
      ['PROXY TCP4 1.2.3.256 1.2.3.4 1 2\r\n', /bad TCP4 address/],
      ['PROXY TCP4 ::1 1.2.3.4 1 2\r\n', /bad TCP4 address/],
      ['PROXY TCP6 1.2.3.4 ::1 1 2\r\n', /bad TCP6 address/],
      ['PROXY TCP6 fe80::1%eth0 ::1 1 2\r\n', /bad TCP6 address/],
      ['PROXY TCP4 1.2.3.4 1.2.3.4 65536 2\r\n', /bad port/],
      ['PROXY TCP4 1.2.3.4 1.2.3.4 01 2\r\n', /bad port/],
      ['PROXY TCP4 1.2.3.4 1.2.3.4 -1 2\r\n', /bad port/],
      ['PROXY TCP4 1.2.3.4 1.2.3.4 1 2\rX', /CR not followed by LF/],
      ['PROXY TCP4 1.2.3.4\n1.2.3.4 1 2\r\n', /non-printable/],
    ];
    for (const [text, reason] of cases) assert.match(invalid(parseProxyHeader(ascii(text))), reason, text);
  });
});

describe('PROXY v2', () => {
  it('encodes TCP4 as the specification lays it out', () => {
    const b = encodeProxyV2({ address: '10.1.2.3', port: 0x1234 }, { address: '10.4.5.6', port: 443 });
    assert.deepEqual(b.subarray(0, 12), V2_SIGNATURE);
    assert.equal(b[12], 0x21);
    assert.equal(b[13], 0x11);
    assert.equal(b.readUInt16BE(14), 12);
    assert.deepEqual([...b.subarray(16, 24)], [10, 1, 2, 3, 10, 4, 5, 6]);
    assert.equal(b.readUInt16BE(24), 0x1234);
    assert.equal(b.readUInt16BE(26), 443);
    assert.equal(b.length, 28);
  });

  it('encodes LOCAL and, for non-IP endpoints, UNSPEC; the parser keeps the real peer for both', () => {
    const local = encodeProxyV2(undefined, undefined, { local: true });
    assert.equal(local.length, 16);
    assert.equal(local[12], 0x20);
    assert.equal(done(parseProxyHeader(local)).header.command, 'local');
    const unspec = encodeProxyV2({ address: 'unix', port: 0 }, { address: '::1', port: 1 });
    assert.equal(unspec[13], 0x00);
    const h = done(parseProxyHeader(unspec)).header;
    assert.equal(h.family, 'UNKNOWN');
    assert.equal(h.source, undefined);
  });

  it('keeps TLVs, ignores the family of a LOCAL header, and treats UDP and UNIX as unknown', () => {
    const tlv = Buffer.from([0x04, 0x00, 0x02, 0xab, 0xcd]);
    const h = done(
      parseProxyHeader(
        encodeProxyV2({ address: '::1', port: 1 }, { address: '::2', port: 2 }, { tlvs: tlv }),
      ),
    );
    assert.equal(h.header.family, 'TCP6');
    assert.deepEqual(h.header.tlvs, tlv);
    const local = encodeProxyV2(undefined, undefined, { local: true });
    local[13] = 0xff;
    assert.equal(done(parseProxyHeader(local)).header.command, 'local');
    const udp = encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '1.2.3.5', port: 2 });
    udp[13] = 0x12;
    assert.equal(done(parseProxyHeader(udp)).header.family, 'UNKNOWN');
    const unix = Buffer.concat([V2_SIGNATURE, Buffer.from([0x21, 0x31, 0x00, 216]), Buffer.alloc(216)]);
    assert.equal(done(parseProxyHeader(unix)).header.family, 'UNKNOWN');
  });

  it('says why a malformed header is refused', () => {
    const good = encodeProxyV2({ address: '1.2.3.4', port: 1 }, { address: '1.2.3.5', port: 2 });
    const mutate = (f: (b: Buffer) => void) => {
      const b = Buffer.from(good);
      f(b);
      return b;
    };
    assert.match(invalid(parseProxyHeader(mutate((b) => (b[5] = 0x41)))), /bad signature/);
    assert.match(invalid(parseProxyHeader(mutate((b) => (b[12] = 0x11)))), /unsupported version 1/);
    assert.match(invalid(parseProxyHeader(mutate((b) => (b[12] = 0x22)))), /unknown command 2/);
    assert.match(invalid(parseProxyHeader(mutate((b) => (b[13] = 0x41)))), /unknown address family/);
    assert.match(
      invalid(parseProxyHeader(mutate((b) => b.writeUInt16BE(4, 14)))),
      /4 address bytes, family needs 12/,
    );
    assert.match(
      invalid(parseProxyHeader(mutate((b) => b.writeUInt16BE(60000, 14)))),
      /60000 bytes .*limit 4096/,
    );
  });
});

describe('PROXY parser properties', () => {
  const endpoint = fc.record({
    address: fc.oneof(fc.ipV4(), fc.ipV6()),
    port: fc.integer({ min: 0, max: 65535 }),
  });
  const cuts = fc.array(fc.nat(), { maxLength: 12 });
  const payload = fc.uint8Array({ maxLength: 64 });

  it('decodes what it encodes, v1 and v2, however the bytes are chunked', () => {
    fc.assert(
      fc.property(endpoint, endpoint, fc.boolean(), payload, cuts, (src, dst, v2, data, at) => {
        const header = v2 ? encodeProxyV2(src, dst) : encodeProxyV1(src, dst);
        const r = done(feed(Buffer.concat([header, data]), at));
        assert.equal(r.header.length, header.length);
        assert.deepEqual(r.rest, Buffer.from(data));
        // The same endpoints, in node's spelling; v4 stays v4 unless it had to share with v6.
        const f = r.header.family;
        assert.ok(f === 'TCP4' || f === 'TCP6');
        const norm = (a: string) =>
          f === 'TCP4'
            ? a.replace(/^::ffff:/, '')
            : bytesToIpv6(ipv6ToBytes(a.includes(':') ? a : `::ffff:${a}`)!);
        assert.deepEqual(r.header.source, { address: norm(src.address), port: src.port });
        assert.deepEqual(r.header.destination, { address: norm(dst.address), port: dst.port });
      }),
      { numRuns: 1500 },
    );
  });

  it('answers incomplete for every strict prefix of a valid header', () => {
    fc.assert(
      fc.property(endpoint, endpoint, fc.boolean(), (src, dst, v2) => {
        const header = v2 ? encodeProxyV2(src, dst) : encodeProxyV1(src, dst);
        for (let n = 0; n < header.length; n++) {
          assert.equal(parseProxyHeader(header.subarray(0, n)).status, 'incomplete', `prefix ${n}`);
        }
      }),
      { numRuns: 300 },
    );
  });

  it('never throws on garbage, and never asks for more than one header can hold', () => {
    const garbage = fc.oneof(
      fc.uint8Array({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([ascii('PROXY '), b])),
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.concat([V2_SIGNATURE, b])),
      fc
        .tuple(
          fc.constantFrom('TCP4', 'TCP6', 'UNKNOWN', 'tcp4', ''),
          fc.array(fc.string({ maxLength: 45 }), { maxLength: 6 }),
        )
        .map(([p, fs]) => ascii(`PROXY ${[p, ...fs].join(' ')}\r\n`)),
    );
    fc.assert(
      fc.property(garbage, cuts, (buf, at) => {
        const whole = parseProxyHeader(Buffer.from(buf));
        const chunked = feed(Buffer.from(buf), at);
        assert.deepEqual(chunked.status, whole.status);
        if (whole.status === 'incomplete')
          assert.ok(buf.length < 16 + 4096, `incomplete at ${buf.length} bytes`);
        if (whole.status === 'incomplete' && buf[0] === 0x50) assert.ok(buf.length < V1_MAX_LENGTH);
        if (whole.status === 'done') assert.ok(whole.header.length <= buf.length);
      }),
      { numRuns: 5000 },
    );
  });
});

describe('readProxyHeader on a live connection', () => {
  let server: Server;
  let port: number;
  /** What the server-side handler saw, per connection, in arrival order. */
  const results: Promise<{ result: ReadProxyHeaderResult; data: string }>[] = [];
  type Reader = (s: Socket) => Promise<string>;
  let reader: Reader;

  const readers: Record<string, Reader> = {
    'data events': (s) =>
      new Promise((res) => {
        let d = '';
        s.on('data', (c) => (d += c));
        s.on('end', () => res(d));
      }),
    'async iteration': async (s) => {
      let d = '';
      for await (const c of s) d += c;
      return d;
    },
    pipe: (s) =>
      new Promise((res) => {
        const chunks: Buffer[] = [];
        s.pipe(
          new Writable({
            write(c: Buffer, _e: string, cb: () => void) {
              chunks.push(c);
              cb();
            },
            final(cb: () => void) {
              res(Buffer.concat(chunks).toString());
              cb();
            },
          }),
        );
      }),
  };

  before(async () => {
    reader = readers['data events']!;
    server = createServer((socket) => {
      socket.on('error', () => {}); // clients of the failure cases hang up abruptly
      results.push(
        (async () => {
          const result = await readProxyHeader(socket, { timeoutMs: 300 });
          if (!result.ok) return { result, data: '' };
          const data = await reader(socket);
          socket.end();
          return { result, data };
        })(),
      );
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    port = (server.address() as { port: number }).port;
  });

  after(() => server.close());

  async function send(
    parts: (string | Buffer)[],
    gapMs = 0,
  ): Promise<{ result: ReadProxyHeaderResult; data: string }> {
    const index = results.length;
    const c = await connect(port);
    c.on('error', () => {});
    c.resume();
    for (const p of parts) {
      c.write(p);
      if (gapMs) await sleep(gapMs);
    }
    c.end();
    while (results.length <= index) await sleep(5);
    const r = await results[index]!;
    c.destroy();
    return r;
  }

  for (const name of ['data events', 'async iteration', 'pipe']) {
    it(`hands the bytes after the header to a handler reading by ${name}`, async () => {
      reader = readers[name]!;
      const header = encodeProxyV1({ address: '203.0.113.7', port: 4242 }, { address: '127.0.0.1', port });
      const r = await send([Buffer.concat([header, ascii('hello ')]), 'world']);
      assert.ok(r.result.ok);
      assert.equal(r.result.remoteAddress, '203.0.113.7');
      assert.equal(r.result.remotePort, 4242);
      assert.equal(r.data, 'hello world');
    });
  }

  it('reads a v2 header that arrives a few bytes at a time', async () => {
    reader = readers['data events']!;
    const header = encodeProxyV2({ address: '2001:db8::5', port: 6000 }, { address: '::1', port: 80 });
    const parts = [header.subarray(0, 3), header.subarray(3, 15), header.subarray(15), ascii('payload')];
    const r = await send(parts, 20);
    assert.ok(r.result.ok);
    assert.equal(r.result.remoteAddress, '2001:db8::5');
    assert.equal(r.result.remotePort, 6000);
    assert.equal(r.data, 'payload');
  });

  it('keeps the real peer for a LOCAL header', async () => {
    const r = await send([encodeProxyV2(undefined, undefined, { local: true }), 'x']);
    assert.ok(r.result.ok);
    assert.equal(r.result.remoteAddress, '127.0.0.1');
    assert.equal(r.data, 'x');
  });

  it('closes a connection without a header, with a malformed one, a slow one, or one that ends early', async () => {
    const missing = await send(['GET / HTTP/1.0\r\n\r\n']);
    assert.ok(!missing.result.ok && /no PROXY header/.test(missing.result.reason));
    const bad = await send(['PROXY TCP4 1.2.3.4 nope 1 2\r\n']);
    assert.ok(!bad.result.ok && /bad TCP4 address/.test(bad.result.reason));
    const early = await send(['PROXY TCP4 1.2.3.4']);
    assert.ok(!early.result.ok && /ended before a complete PROXY header/.test(early.result.reason));

    const index = results.length;
    const c = await connect(port);
    c.write('PROXY TCP4 ');
    const closed = once(c, 'close');
    c.resume();
    while (results.length <= index) await sleep(5);
    const slow = await results[index]!;
    assert.ok(!slow.result.ok && /within 300 ms/.test(slow.result.reason));
    await closed; // the server closed it
  });

  it('server socket reads exactly the header: a handler can still read a large body', async () => {
    reader = readers['async iteration']!;
    const body = Buffer.alloc(1 << 20, 'z');
    const index = results.length;
    const c = await connect(port);
    c.write(encodeProxyV1({ address: '10.9.8.7', port: 1 }, { address: '127.0.0.1', port }));
    c.end(body);
    c.resume();
    while (results.length <= index) await sleep(5);
    const r = await results[index]!;
    assert.equal(r.data.length, body.length);
    c.destroy();
  });
});
