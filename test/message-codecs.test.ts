import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { inspect } from 'node:util';
import fc from 'fast-check';
import {
  type Codec,
  createCodec,
  decodeDatagram,
  FLAG_ERROR,
  FLAG_REPLY,
  type Frame,
} from '../src/message/index.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

interface Decoded {
  frames: Frame[];
  errors: string[];
  pushResults: boolean[];
  buffered: number;
}

/** Feeds `wire` cut at `cuts` (any offsets) and collects what comes out; asserts nothing throws. */
function decodeChunked(codec: Codec, wire: Buffer, cuts: number[]): Decoded {
  const out: Decoded = { frames: [], errors: [], pushResults: [], buffered: 0 };
  const decoder = codec.createDecoder({
    frame: (msgid, body, seq, flags) => out.frames.push({ msgid, body: Buffer.from(body), seq, flags }),
    error: (reason) => out.errors.push(reason),
  });
  const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
  let prev = 0;
  for (const p of [...points, wire.length]) {
    out.pushResults.push(decoder.push(wire.subarray(prev, p)));
    prev = p;
  }
  out.buffered = decoder.buffered;
  return out;
}

const int32 = fc.integer({ min: -0x80000000, max: 0x7fffffff });

function frameArb(codec: Codec): fc.Arbitrary<Frame> {
  const maxLength = Math.min(codec.maxBody, 300);
  const body =
    codec.name === 'line'
      ? fc.uint8Array({ maxLength }).map((b) => Buffer.from(b.map((x) => (x === 0x0a ? 0x0b : x))))
      : fc.uint8Array({ maxLength }).map((b) => Buffer.from(b));
  return fc
    .record({
      msgid: codec.hasMsgid ? int32 : fc.constant(0),
      body,
      seq: codec.hasSeq ? fc.integer({ min: 0, max: 0xffffffff }) : fc.constant(0),
      flags: codec.hasSeq ? fc.constantFrom(0, FLAG_REPLY, FLAG_REPLY | FLAG_ERROR) : fc.constant(0),
    })
    .map((f) => ({ msgid: f.msgid, body: f.body, seq: f.seq, flags: f.flags }));
}

const SPECS = ['lars', 'seq', 'tdhb', 'tdhb:1', 'tdhb:9', 'u32be', 'line'];

describe('every codec: any chunking of any frame sequence decodes to the same frames', () => {
  for (const spec of SPECS) {
    test(spec, () => {
      const codec = createCodec(spec);
      fc.assert(
        fc.property(
          fc.array(frameArb(codec), { maxLength: 30 }),
          fc.array(fc.nat(), { maxLength: 40 }),
          (frames, cuts) => {
            const wire = Buffer.concat(frames.map((f) => codec.encode(f.msgid, f.body, f.seq, f.flags)));
            const got = decodeChunked(codec, wire, cuts);
            assert.deepEqual(got.errors, []);
            assert.equal(got.buffered, 0);
            assert.deepEqual(got.frames, frames);
          },
        ),
        { numRuns: 300 },
      );
    });
  }

  test('byte-at-a-time and all-in-one decode the same (lars, 1000 frames)', () => {
    const codec = createCodec('lars');
    const frames = Array.from({ length: 1000 }, (_, i) => ({
      msgid: i,
      body: Buffer.from(`m${i}`),
      seq: 0,
      flags: 0,
    }));
    const wire = Buffer.concat(frames.map((f) => codec.encode(f.msgid, f.body)));
    const oneByOne = decodeChunked(
      codec,
      wire,
      Array.from({ length: wire.length }, (_, i) => i),
    );
    const whole = decodeChunked(codec, wire, []);
    assert.deepEqual(oneByOne.frames, frames);
    assert.deepEqual(whole.frames, frames);
  });
});

describe('bodies are Buffers viewing the chunk they arrived in', () => {
  /** Two lars frames at an odd offset inside `memory`, pushed as one chunk; the bodies as handed out. */
  function bodiesOf(memory: ArrayBufferLike): Buffer[] {
    const codec = createCodec('lars');
    const wire = Buffer.concat([
      codec.encode(7, Buffer.from('first')),
      codec.encode(8, Buffer.from('second')),
    ]);
    const chunk = Buffer.from(memory, 3, wire.length);
    wire.copy(chunk);
    const bodies: Buffer[] = [];
    const decoder = codec.createDecoder({ frame: (_m, body) => bodies.push(body), error: assert.fail });
    assert.equal(decoder.push(chunk), true);
    return bodies;
  }

  for (const [name, make] of [
    ['ArrayBuffer', () => new ArrayBuffer(64)],
    ['SharedArrayBuffer', () => new SharedArrayBuffer(64)],
  ] as const) {
    test(`a chunk over a ${name}`, () => {
      const memory = make();
      const [first, second] = bodiesOf(memory);
      for (const body of [first!, second!]) {
        assert.ok(Buffer.isBuffer(body));
        assert.equal(Object.getPrototypeOf(body), Buffer.prototype, 'deepStrictEqual with any Buffer holds');
        assert.equal(body.constructor, Buffer);
        assert.equal(body.buffer, memory, 'a view, not a copy');
        assert.ok(Buffer.isBuffer(body.subarray(1)));
      }
      assert.equal(first!.toString(), 'first');
      assert.equal(first!.byteOffset, 3 + 8);
      assert.equal(second!.toString('hex'), Buffer.from('second').toString('hex'));
      assert.equal(second!.byteOffset, 3 + 8 + 5 + 8);
      assert.ok(second!.equals(Buffer.from('second')));
      assert.equal(second!.readUInt16BE(0), 0x7365);
      assert.deepEqual(JSON.parse(JSON.stringify(first)), {
        type: 'Buffer',
        data: [...Buffer.from('first')],
      });
      assert.equal(inspect(first), '<Buffer 66 69 72 73 74>');
      assert.equal(Buffer.concat([first!, second!]).toString(), 'firstsecond');
    });
  }
});

/** A bad header after `good` frames, then more bytes: the good frames come out, then one error; no throw. */
function assertBadInput(codec: Codec, good: Frame[], bad: Buffer, cuts: number[], reason: RegExp): void {
  const goodWire = Buffer.concat(good.map((f) => codec.encode(f.msgid, f.body, f.seq, f.flags)));
  const wire = Buffer.concat([goodWire, bad, Buffer.from('trailing bytes that must be ignored')]);
  const got = decodeChunked(codec, wire, cuts);
  assert.deepEqual(got.frames, good);
  assert.equal(got.errors.length, 1, `errors: ${got.errors.join('; ')}`);
  assert.match(got.errors[0]!, reason);
  const firstFalse = got.pushResults.indexOf(false);
  assert.ok(firstFalse >= 0 && got.pushResults.slice(firstFalse).every((r) => r === false));
}

describe('bad headers: one error with a reason, never a throw, nothing after it', () => {
  const small = 1000;
  test('lars: negative length or over the limit', () => {
    const codec = createCodec('lars', { maxBody: small });
    const badLen = fc.oneof(
      fc.integer({ min: -0x80000000, max: -1 }),
      fc.integer({ min: small + 1, max: 0x7fffffff }),
    );
    fc.assert(
      fc.property(
        fc.array(frameArb(codec), { maxLength: 5 }),
        int32,
        badLen,
        fc.array(fc.nat(), { maxLength: 10 }),
        (good, msgid, len, cuts) => {
          const head = Buffer.alloc(8);
          head.writeInt32LE(msgid, 0);
          head.writeInt32LE(len, 4);
          assertBadInput(
            codec,
            good,
            head,
            cuts,
            len < 0 ? /negative body length/ : /over the limit of 1000/,
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  test('seq: bad length, unknown flags, reserved bytes', () => {
    const codec = createCodec('seq', { maxBody: small });
    const badHeader = fc.oneof(
      fc
        .integer({ min: -0x80000000, max: -1 })
        .map((len) => ({ len, flags: 0, reserved: 0, why: /negative/ })),
      fc
        .integer({ min: small + 1, max: 0x7fffffff })
        .map((len) => ({ len, flags: 0, reserved: 0, why: /over the limit/ })),
      fc.integer({ min: 4, max: 255 }).map((flags) => ({ len: 0, flags, reserved: 0, why: /unknown flags/ })),
      fc.integer({ min: 1, max: 255 }).map((reserved) => ({ len: 0, flags: 0, reserved, why: /reserved/ })),
    );
    fc.assert(
      fc.property(
        fc.array(frameArb(codec), { maxLength: 5 }),
        badHeader,
        fc.array(fc.nat(), { maxLength: 10 }),
        (good, h, cuts) => {
          const head = Buffer.alloc(16);
          head.writeInt32LE(h.len, 4);
          head[12] = h.flags;
          head[14] = h.reserved;
          assertBadInput(codec, good, head, cuts, h.why);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('tdhb: a header that is not all digits, or over the limit', () => {
    const codec = createCodec('tdhb:4', { maxBody: small });
    const nonDigit = fc.integer({ min: 0, max: 255 }).filter((b) => b < 0x30 || b > 0x39);
    const notNumeric = fc
      .tuple(
        fc.array(fc.integer({ min: 0x30, max: 0x39 }), { minLength: 4, maxLength: 4 }),
        fc.nat(3),
        nonDigit,
      )
      .map(([digits, at, bad]) => {
        digits[at] = bad;
        return { head: Buffer.from(digits), why: /non-numeric header/ };
      });
    const tooLong = fc
      .integer({ min: small + 1, max: 9999 })
      .map((n) => ({ head: Buffer.from(String(n).padStart(4, '0')), why: /over the limit of 1000/ }));
    fc.assert(
      fc.property(
        fc.array(frameArb(codec), { maxLength: 5 }),
        fc.oneof(notNumeric, tooLong),
        fc.array(fc.nat(), { maxLength: 10 }),
        (good, h, cuts) => assertBadInput(codec, good, h.head, cuts, h.why),
      ),
      { numRuns: 300 },
    );
    // the C tool's atoi would take these; we do not
    for (const head of [' 123', '+123', '-001', '12 3']) {
      assertBadInput(codec, [], Buffer.from(head), [], /non-numeric header/);
    }
  });

  test('u32be: over the limit', () => {
    const codec = createCodec('u32be', { maxBody: small });
    fc.assert(
      fc.property(
        fc.array(frameArb(codec), { maxLength: 5 }),
        fc.integer({ min: small + 1, max: 0xffffffff }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (good, len, cuts) => {
          const head = Buffer.alloc(4);
          head.writeUInt32BE(len, 0);
          assertBadInput(codec, good, head, cuts, /over the limit of 1000/);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('line: an over-long line, caught before its newline arrives', () => {
    const codec = createCodec('line', { maxBody: 16 });
    fc.assert(
      fc.property(
        fc.array(frameArb(codec), { maxLength: 5 }),
        fc.integer({ min: 17, max: 200 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (good, n, cuts) => {
          assertBadInput(codec, good, Buffer.alloc(n, 0x61), cuts, /line longer than 16 bytes/);
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('a large announced length is not allocated before its bytes arrive', () => {
  const allocators = ['allocUnsafe', 'allocUnsafeSlow', 'alloc', 'concat'] as const;

  function recordAllocations(fn: () => void): number[] {
    const sizes: number[] = [];
    const saved = allocators.map((name) => Buffer[name]);
    const B = Buffer as unknown as Record<string, (...args: unknown[]) => Buffer>;
    for (const name of allocators) {
      const orig = B[name]!;
      B[name] = function (this: unknown, ...args: unknown[]) {
        const result = orig.apply(this, args);
        sizes.push(result.length);
        return result;
      };
    }
    try {
      fn();
    } finally {
      allocators.forEach((name, i) => {
        (Buffer as unknown as Record<string, unknown>)[name] = saved[i];
      });
    }
    return sizes;
  }

  const headers: Record<string, Buffer> = {
    lars: Buffer.from([1, 0, 0, 0, 0x60, 0xea, 0, 0]), // msglen 60000
    seq: Buffer.from([1, 0, 0, 0, 0x60, 0xea, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]),
    'tdhb:5': Buffer.from('60000'),
    u32be: Buffer.from([0, 0, 0xea, 0x60]),
  };
  for (const [spec, head] of Object.entries(headers)) {
    test(spec, () => {
      const codec = createCodec(spec);
      const wire = Buffer.concat([head, Buffer.alloc(20, 7)]);
      for (const cuts of [[], [1], [3, 9, 15], Array.from({ length: wire.length }, (_, i) => i)]) {
        let got: Decoded | undefined;
        const sizes = recordAllocations(() => {
          got = decodeChunked(codec, wire, cuts);
        });
        assert.deepEqual(got!.errors, []);
        assert.equal(got!.buffered, wire.length);
        assert.ok(
          Math.max(0, ...sizes) <= 2 * wire.length,
          `allocated ${Math.max(...sizes)} bytes for ${wire.length} received`,
        );
      }
    });
  }
});

describe('exact bytes on the wire (docs/protocol.md)', () => {
  const abc = Buffer.from('abc');
  test('lars', () => {
    assert.equal(createCodec('lars').encode(1, abc).toString('hex'), '0100000003000000616263');
    assert.equal(createCodec('lars').encode(-2, Buffer.alloc(0)).toString('hex'), 'feffffff00000000');
  });
  test('seq', () => {
    const bytes = createCodec('seq').encode(0x0102, abc, 0x0a0b0c0d, FLAG_REPLY | FLAG_ERROR);
    assert.equal(bytes.toString('hex'), `02010000` + `03000000` + `0d0c0b0a` + `03000000` + `616263`);
  });
  test('tdhb', () => {
    assert.equal(createCodec('tdhb').encode(9, abc).toString(), '0003abc');
    assert.equal(createCodec('tdhb:6').encode(9, abc).toString(), '000003abc');
  });
  test('u32be', () => assert.equal(createCodec('u32be').encode(0, abc).toString('hex'), '00000003616263'));
  test('line', () => assert.equal(createCodec('line').encode(0, abc).toString(), 'abc\n'));
  test('codecs without a msgid decode msgid 0', () => {
    for (const spec of ['tdhb', 'u32be', 'line']) {
      const got = decodeChunked(createCodec(spec), createCodec(spec).encode(77, abc), []);
      assert.equal(got.frames[0]!.msgid, 0, spec);
    }
  });
});

describe('encode refuses what the format cannot carry', () => {
  test('bodies over the limit', () => {
    assert.throws(
      () => createCodec('lars', { maxBody: 10 }).encode(1, Buffer.alloc(11)),
      /over the limit of 10 bytes/,
    );
    assert.throws(() => createCodec('lars').encode(1, Buffer.alloc(65528)), RangeError);
    createCodec('lars').encode(1, Buffer.alloc(65527));
    assert.throws(() => createCodec('tdhb:2').encode(0, Buffer.alloc(100)), /over the limit of 99 bytes/);
    assert.equal(createCodec('tdhb:2').maxBody, 99);
  });
  test('a newline in a line, a msgid outside int32, a bad seq', () => {
    assert.throws(() => createCodec('line').encode(0, Buffer.from('a\nb')), /newline/);
    assert.throws(() => createCodec('lars').encode(2 ** 31, Buffer.alloc(0)), /int32/);
    assert.throws(() => createCodec('seq').encode(1, Buffer.alloc(0), -1), /uint32/);
  });
});

describe('encodeInto: the frame encode() gives, written into a buffer', () => {
  const cases: [string, number, number][] = [
    ['lars', 0, 0],
    ['seq', 0x01020304, FLAG_REPLY],
    ['tdhb:4', 0, 0],
    ['tdhb:20', 0, 0],
    ['u32be', 0, 0],
    ['line', 0, 0],
  ];
  for (const [spec, seq, flags] of cases) {
    test(`${spec}: same bytes at an offset, its length returned, -1 and nothing written when it does not fit`, () => {
      const codec = createCodec(spec);
      for (const size of [0, 1, 300]) {
        const body = Buffer.alloc(size, 0x61);
        const frame = codec.encode(-7, body, seq, flags);
        const target = Buffer.alloc(frame.length + 5, 0xee);
        assert.equal(codec.encodeInto!(target, 3, -7, body, seq, flags), frame.length);
        assert.deepEqual(target.subarray(3, 3 + frame.length), frame);
        assert.equal(target[2], 0xee);
        assert.equal(target[3 + frame.length], 0xee);
        const short = Buffer.alloc(frame.length + 2, 0xee);
        assert.equal(codec.encodeInto!(short, 3, -7, body, seq, flags), -1);
        assert.ok(
          short.every((b) => b === 0xee),
          'nothing written',
        );
      }
    });
  }
  test('refuses what encode refuses, writing nothing', () => {
    const target = Buffer.alloc(100_000, 0xee);
    const lars = createCodec('lars', { maxBody: 10 });
    assert.throws(() => lars.encodeInto!(target, 0, 1, Buffer.alloc(11)), /over the limit of 10 bytes/);
    assert.throws(() => lars.encodeInto!(target, 0, 2 ** 31, Buffer.alloc(0)), /int32/);
    assert.throws(() => createCodec('line').encodeInto!(target, 0, 0, Buffer.from('a\nb')), /newline/);
    assert.throws(() => createCodec('seq').encodeInto!(target, 0, 1, Buffer.alloc(0), 2 ** 32), /uint32/);
    assert.ok(
      target.every((b) => b === 0xee),
      'nothing written',
    );
  });
});

describe('createCodec', () => {
  test('rejects unknown names and bad parameters with a reason', () => {
    assert.throws(() => createCodec('nope'), /unknown codec "nope"; known: lars, seq, tdhb:W, u32be, line/);
    assert.throws(() => createCodec('tdhb:0'), /1 to 20/);
    assert.throws(() => createCodec('tdhb:21'), /1 to 20/);
    assert.throws(() => createCodec('tdhb:x'), /1 to 20/);
    assert.throws(() => createCodec('lars:3'), /takes no parameter/);
    assert.throws(() => createCodec('lars', { maxBody: -1 }), /maxBody/);
    assert.throws(() => createCodec('lars', { maxBody: 2 ** 31 }), /maxBody/);
    assert.throws(() => createCodec('toString'), /unknown codec/);
  });
  test('defaults: lars, 65527-byte bodies, tdhb width 4', () => {
    assert.equal(createCodec().name, 'lars');
    assert.equal(createCodec('lars').maxBody, 65527);
    assert.equal(createCodec('tdhb').name, 'tdhb:4');
    assert.equal(createCodec('tdhb').maxBody, 9999);
  });
});

describe('decodeDatagram: exactly one frame', () => {
  const codec = createCodec('lars');
  const frame = codec.encode(5, Buffer.from('hello'));
  test('a whole frame', () => {
    const got = decodeDatagram(codec, frame);
    assert.ok(typeof got !== 'string');
    assert.equal(got.msgid, 5);
    assert.equal(got.body.toString(), 'hello');
  });
  test('shorter or longer than its header says', () => {
    assert.match(decodeDatagram(codec, frame.subarray(0, frame.length - 1)) as string, /no whole frame/);
    assert.match(
      decodeDatagram(codec, Buffer.concat([frame, Buffer.from('x')])) as string,
      /more than its frame/,
    );
    assert.match(decodeDatagram(codec, Buffer.concat([frame, frame])) as string, /more than its frame/);
    assert.match(decodeDatagram(codec, Buffer.from([0, 0, 0, 0, 255, 255, 255, 255])) as string, /negative/);
  });
});
