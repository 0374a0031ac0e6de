// Message-layer micro-benchmarks, short runs, one JSON object on stdout:
//   node --import tsx bench/message-bench.ts [--duration SECONDS]
// - decoder: small frames (16-byte bodies) per second through each codec's decoder, fed in 64 KiB
//   chunks cut at odd offsets (so frames straddle chunks), no sockets.
// - requestResponse: MessageClient.request() round trips per second against bin/tcpdaemon -m IOMP
//   serving examples/lars-echo.ts (in order) and examples/seq-echo.ts (by seq), with 1 and 32
//   requests in flight over one connection.
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createCodec, MessageClient } from '../src/message/index.js';
import { startDaemon } from '../test/helpers/daemon.js';

const { values } = parseArgs({ options: { duration: { type: 'string', default: '1' } } });
const seconds = Number(values.duration);
if (!(seconds > 0 && seconds <= 30)) {
  process.stderr.write('bench/message-bench.ts: --duration must be a number of seconds in (0, 30]\n');
  process.exit(1);
}

function decoderRate(spec: string, ms: number): number {
  const codec = createCodec(spec);
  const frame = codec.encode(1, Buffer.alloc(16, 0x61));
  const stream = Buffer.concat(Array.from({ length: Math.ceil(65536 / frame.length) }, () => frame));
  const cut = 30001;
  const a = stream.subarray(0, cut);
  const b = stream.subarray(cut);
  let frames = 0;
  const decoder = codec.createDecoder({
    frame() {
      frames++;
    },
    error(reason) {
      throw new Error(reason);
    },
  });
  for (let i = 0; i < 50; i++) decoder.push(stream); // warm up
  frames = 0;
  const start = performance.now();
  let elapsed = 0;
  do {
    for (let i = 0; i < 50; i++) {
      decoder.push(a);
      decoder.push(b);
    }
    elapsed = performance.now() - start;
  } while (elapsed < ms);
  return Math.round(frames / (elapsed / 1000));
}

async function roundTrips(example: string, codec: string, msgid: number, inFlight: number, ms: number) {
  const { daemon, port } = await startDaemon(['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', example]);
  // lars-echo welcomes each connection with msgid 101: take it quietly.
  const client = new MessageClient({ port, codec, reconnect: false, routes: { 101: () => undefined } });
  try {
    await client.connect();
    const body = Buffer.alloc(64, 0x62);
    let done = 0;
    let stop = false;
    const latencies: number[] = [];
    const worker = async () => {
      while (!stop) {
        const t = performance.now();
        await client.request(msgid, body, { timeout: 5000 });
        latencies.push(performance.now() - t);
        done++;
      }
    };
    const start = performance.now();
    const workers = Array.from({ length: inFlight }, worker);
    await new Promise((r) => setTimeout(r, ms));
    stop = true;
    await Promise.all(workers);
    const elapsed = performance.now() - start;
    latencies.sort((x, y) => x - y);
    const pct = (p: number) =>
      Number(latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!.toFixed(3));
    return {
      codec,
      inFlight,
      roundTripsPerSec: Math.round(done / (elapsed / 1000)),
      p50Ms: pct(0.5),
      p99Ms: pct(0.99),
    };
  } finally {
    await client.close();
    await daemon.kill();
  }
}

const decoder: Record<string, number> = {};
for (const spec of ['lars', 'seq', 'u32be', 'tdhb:4', 'line'])
  decoder[spec] = decoderRate(spec, (seconds * 1000) / 2);

const requestResponse = [];
for (const inFlight of [1, 32]) {
  requestResponse.push(await roundTrips('examples/lars-echo.ts', 'lars', 1, inFlight, seconds * 1000));
  requestResponse.push(await roundTrips('examples/seq-echo.ts', 'seq', 1, inFlight, seconds * 1000));
}

process.stdout.write(
  `${JSON.stringify(
    {
      machine: { cpus: availableParallelism(), cpu: cpus()[0]?.model, node: process.version },
      seconds,
      decoderFramesPerSec: decoder,
      requestResponse,
    },
    null,
    2,
  )}\n`,
);
