// bench/side-by-side.ts (the per-round ratios) and bench/tls-side-by-side.ts (servers loaded at the
// same time), the latter run for real against two TLS servers for one short round.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';
import { formatSpread, type SideRound, spread, summarise } from '../bench/side-by-side.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

const round = (operations: number, cpuSeconds: number): SideRound => ({ operations, cpuSeconds, seconds: 2 });

describe('summarise: per-round ratios to the reference', () => {
  test('cost is the reference µs ÷ the server µs of the same round; rate is the server ÷ the reference', () => {
    const rounds = new Map([
      // Round 1: both slow (the host), the server 10 % dearer; round 2: both fast, the server level.
      ['ref', [round(1000, 1.0), round(2000, 1.0)]],
      ['ours', [round(1000, 1.1), round(2200, 1.1)]],
    ]);
    const [ref, ours] = summarise(rounds, 'ref');
    assert.equal(ref!.name, 'ref');
    assert.equal(ref!.costRatio, undefined);
    assert.equal(ref!.usPerOp, 750); // median of 1000 and 500 µs
    assert.equal(ref!.perSecond, 750); // median of 500 and 1000/s
    assert.equal(ours!.costRatio!.low.toFixed(3), '0.909');
    assert.equal(ours!.costRatio!.high.toFixed(3), '1.000');
    assert.equal(ours!.rateRatio!.low, 1.0);
    assert.equal(ours!.rateRatio!.high.toFixed(3), '1.100');
    assert.equal(formatSpread(ours!.costRatio), '0.95× (0.91–1.00)');
  });

  test('a reference that is not among the servers, or rounds that differ in number, are refused', () => {
    assert.throws(() => summarise(new Map([['a', [round(1, 1)]]]), 'b'), /reference b is not among/);
    const uneven = new Map([
      ['a', [round(1, 1)]],
      ['b', [round(1, 1), round(1, 1)]],
    ]);
    assert.throws(() => summarise(uneven, 'a'), /b: 2 rounds, the reference 1/);
    assert.throws(() => spread([]), /no values/);
  });
});

describe('bench/tls-side-by-side.ts', () => {
  const run = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'bench/tls-side-by-side.ts', ...args], {
      encoding: 'utf8',
      timeout: 120_000,
    });

  test('TLS servers loaded at once, pinned: a table with the cost and rate ratio, the reference twice, every process stopped', () => {
    const before = new Set(readdirSync('/tmp').filter((d) => d.startsWith('tcpdaemon-tls-')));
    const out = run([
      ...['--load', 'resume', '--server', 'tls tcpdaemon IOMP -c 1 (pipe)', '--server', 'tls node tls'],
      ...['--rounds', '2', '--seconds', '1', '--warmup', '0', '--connections', '4', '--pin'],
    ]);
    assert.equal(out.status, 0, out.stderr);
    assert.match(out.stdout, /^round 1, load [\d.]+: tls (node tls|tcpdaemon)/m);
    assert.match(out.stdout, /^round 2, /m);
    assert.match(
      out.stdout,
      /2 rounds × 1 s at once, 4 connections per generator, servers on CPU 1 and generators on 0; reference tls node tls/,
    );
    // The reference named again runs again: an A/A pair.
    assert.match(out.stdout, /^\| tls node tls #2 \| [\d.]+ \| \d+ \| [\d.]+× \(/m);
    assert.match(out.stdout, /^\| tls node tls \| [\d.]+ \| \d+ \| {2}\| {2}\|$/m);
    const ours =
      /^\| tls tcpdaemon IOMP -c 1 \(pipe\) \| ([\d.]+) \| (\d+) \| ([\d.]+)× \([\d.]+–[\d.]+\) \| ([\d.]+)×/m.exec(
        out.stdout,
      );
    assert.ok(ours, out.stdout);
    assert.ok(Number(ours[1]) > 0 && Number(ours[2]) > 0 && Number(ours[3]) > 0 && Number(ours[4]) > 0);
    assert.doesNotMatch(out.stdout, /errors/);
    // The stacks were stopped with SIGTERM, so the tcpdaemon in one removed its key snapshot.
    const left = readdirSync('/tmp').filter((d) => d.startsWith('tcpdaemon-tls-') && !before.has(d));
    assert.deepEqual(left, []);
  });

  test('bad flags exit 2 with the reason and the usage', () => {
    for (const [args, why] of [
      [['--load', 'sideways', '--server', 'tls node tls (for await)'], /--load must be one of new, resume/],
      [['--load', 'new'], /name at least one --server besides the reference/],
      [['--load', 'new', '--server', 'tls nginx'], /unknown server 'tls nginx'; TLS servers: .*tls node tls/],
      [
        ['--load', 'new', '--key', 'dsa', '--server', 'tls node tls (for await)'],
        /--key must be ecdsa or rsa/,
      ],
      [
        ['--load', 'new', '--rounds', '0', '--server', 'tls node tls (for await)'],
        /--rounds must be a whole number ≥ 1/,
      ],
    ] as const) {
      const out = run([...args]);
      assert.equal(out.status, 2, `${args.join(' ')}: ${out.stdout}${out.stderr}`);
      assert.match(out.stderr, why);
      assert.match(out.stderr, /usage: node --import tsx bench\/tls-side-by-side.ts/);
    }
  });
});
