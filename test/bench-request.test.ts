// `tcpdaemon bench --mode request` against a real line-based key/value server (a child process):
// fixed requests and replies, prefix checks, a module that frames and checks replies, wrong
// replies counted as verify errors, a stalled server, and the flags that are refused.
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { benchMain } from '../src/bench/cli.js';
import { unescapeBytes } from '../src/bench/options.js';
import type { BenchResult } from '../src/bench/report.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const FIXTURES = join(import.meta.dirname, 'fixtures');
const CHECKER = join(FIXTURES, 'kv-checker.mjs');
const tmp = tempDir('bench-request-');
after(() => rmSync(tmp, { recursive: true, force: true }));

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

/**
 * Runs `body` with the port of test/fixtures/kv-server.mjs started with `flags`, and stops the
 * server when it is done (within the test: the leftover check runs after each test).
 */
async function withKv<T>(flags: string[], body: (port: number) => Promise<T>): Promise<T> {
  const child: ChildProcess = spawn(process.execPath, [join(FIXTURES, 'kv-server.mjs'), ...flags], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = once(child, 'exit');
  try {
    child.stdout!.setEncoding('utf8');
    let text = '';
    for await (const chunk of child.stdout!) {
      text += chunk;
      const line = text.split('\n').find((l) => l.includes('"listening"'));
      if (line) return await body((JSON.parse(line) as { port: number }).port);
    }
    throw new Error(`kv-server exited before listening: ${text}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await exited;
  }
}

const load = (port: number, ...more: string[]) => [
  '--port',
  String(port),
  '--mode',
  'request',
  '--duration',
  '0.5',
  '--connections',
  '3',
  '--threads',
  '1',
  ...more,
];

const noErrors = { connect: 0, timeout: 0, reset: 0, eof: 0, verify: 0, stalled: 0 };

describe('request mode against a key/value server', () => {
  test('a module sets a key per connection and reads it back: every reply right', async () => {
    await withKv([], async (port) => {
      const { code, result } = await benchJson(load(port, '--module', CHECKER, '--depth', '4'));
      assert.equal(code, 0);
      assert.equal(result.mode, 'request');
      assert.deepEqual(result.errors, noErrors);
      assert.ok(result.completed > 3, `replies: ${result.completed}`);
      assert.equal(result.depth, 4);
      assert.ok(result.latencyMs.p50 > 0 && result.latencyMs.p50 <= result.latencyMs.p99);
      assert.ok(result.perSecond > 0 && result.mbPerSecond > 0);
    });
  });

  test('a fixed request and a fixed reply (escapes in the flags)', async () => {
    await withKv([], async (port) => {
      const { code, result } = await benchJson(
        load(port, '--request', 'GET none\\n', '--reply', 'NOT_FOUND\\n'),
      );
      assert.equal(code, 0);
      assert.deepEqual(result.errors, noErrors);
      assert.ok(result.completed > 0);
      // Every reply is 10 bytes: the byte figure counts right replies (MB/s has 3 decimals).
      const bytes = result.mbPerSecond * 1e6 * result.seconds;
      assert.ok(Math.abs(bytes - result.completed * 10) <= 1000 * result.seconds + 10, `${bytes} bytes`);
    });
  });

  test('a request from a file, a reply checked by its prefix up to the line end', async () => {
    await withKv([], async (port) => {
      const file = join(tmp, 'set.txt');
      writeFileSync(file, 'SET color blue\n');
      const set = await benchJson(load(port, '--request-file', file, '--reply', 'OK\\n'));
      assert.equal(set.code, 0);
      const get = await benchJson(load(port, '--request', 'GET color\\n', '--reply-prefix', 'VALUE b'));
      assert.equal(get.code, 0, get.err);
      assert.deepEqual(get.result.errors, noErrors);
      const miss = await benchJson(load(port, '--request', 'GET color\\n', '--reply-prefix', 'VALUE r'));
      assert.equal(miss.code, 2);
      assert.equal(miss.result.completed, 0);
      assert.ok(miss.result.errors.verify > 0);
    });
  });

  test('wrong replies the module frames are verify errors, and the connection goes on', async () => {
    // Every 4th GET (over all connections) answers VALUE wrong.
    await withKv(['--wrong-every', '4'], async (port) => {
      const { code, result } = await benchJson(load(port, '--module', CHECKER));
      assert.equal(code, 2);
      assert.equal(result.errorTotal, result.errors.verify, JSON.stringify(result.errors));
      // Right replies: the 3 SETs and 3 of every 4 GETs; the wrong ones are a quarter of the GETs.
      const gets = result.completed - 3 + result.errors.verify;
      assert.ok(gets > 8, `GETs answered: ${gets}`);
      assert.ok(Math.abs(result.errors.verify - gets / 4) <= 3, `${result.errors.verify} wrong of ${gets}`);
    });
  });

  test('a wrong fixed reply is a verify error; the tool reconnects', async () => {
    await withKv(['--wrong-every', '2'], async (port) => {
      const { code, result } = await benchJson(
        load(port, '--request', 'GET none\\n', '--reply', 'NOT_FOUND\\n', '--duration', '1'),
      );
      assert.equal(code, 2);
      assert.ok(result.errors.verify > 1, JSON.stringify(result.errors));
      assert.equal(result.errorTotal, result.errors.verify);
      assert.ok(result.completed > 0, 'right replies between the wrong ones');
    });
  });

  test('a server that stops answering: one stalled per connection, the replies before it counted', async () => {
    await withKv(['--stall-after', '10'], async (port) => {
      const { code, result, out } = await benchJson(load(port, '--module', CHECKER, '--duration', '2.5'));
      assert.equal(code, 2, out);
      assert.equal(result.completed, 10);
      assert.deepEqual(result.errors, { ...noErrors, stalled: 3 });
    });
  });

  test('a reply that never ends is wrong at --max-reply, not kept without bound', async () => {
    const server = createServer((s) => {
      s.on('error', () => s.destroy());
      s.on('data', () => s.write('x'.repeat(2000)));
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => new Promise<void>((r) => server.close(() => r())));
    const port = (server.address() as AddressInfo).port;
    const { code, result } = await benchJson(
      load(port, '--request', 'PING\\n', '--reply-prefix', 'x', '--max-reply', '1000'),
    );
    server.close();
    assert.equal(code, 2);
    assert.equal(result.completed, 0);
    assert.ok(result.errors.verify > 0);
    assert.equal(result.errorTotal, result.errors.verify);
  });

  test('text output names replies', async () => {
    await withKv([], async (port) => {
      const { code, out } = await bench(load(port, '--request', 'GET a\\n', '--reply', 'NOT_FOUND\\n'));
      assert.equal(code, 0);
      assert.match(out, /^request 127\.0\.0\.1:\d+: 3 connections x depth 1, 1 threads$/m);
      assert.match(out, /replies +\d+ right in [\d.]+ s = [\d.]+ replies\/s/);
      assert.match(out, /errors +none/);
    });
  });
});

describe('request mode: what it refuses, with exit status 1', () => {
  const module = (name: string, text: string) => {
    const path = join(tmp, name);
    writeFileSync(path, text);
    return path;
  };
  const cases: [string, string[], RegExp][] = [
    ['no request or reply', [], /needs a request .* and a reply check/],
    ['no reply', ['--request', 'A\\n'], /needs a request/],
    [
      'two requests',
      ['--request', 'A', '--request-file', CHECKER, '--reply', 'B'],
      /--request or --request-file, not both/,
    ],
    [
      'two replies',
      ['--request', 'A', '--reply', 'B', '--reply-prefix', 'C'],
      /not --reply and --reply-prefix/,
    ],
    [
      '--reply-end alone',
      ['--request', 'A', '--reply', 'B', '--reply-end', ';'],
      /--reply-end goes with --reply-prefix/,
    ],
    ['a bad escape', ['--request', 'A\\q', '--reply', 'B'], /--request: unknown escape '\\q'/],
    ['an empty request', ['--request', '', '--reply', 'B'], /--request must not be empty/],
    [
      'a missing file',
      ['--request-file', join(tmp, 'nope'), '--reply', 'B'],
      /--request-file .*nope: ENOENT/,
    ],
    [
      '--size',
      ['--request', 'A', '--reply', 'B', '--size', '10'],
      /--codec and --size do not go with --mode request/,
    ],
    ['a missing module', ['--module', join(tmp, 'absent.mjs')], /--module .*absent\.mjs: cannot load it/],
  ];
  for (const [name, args, message] of cases) {
    test(name, async () => {
      const { code, err, out } = await bench(['--port', '9', '--mode', 'request', ...args]);
      assert.equal(code, 1, out);
      assert.match(err, message);
    });
  }

  test('a module that exports neither, or a non-function, or a part the flags also give', async () => {
    const none = module('none.mjs', 'export const x = 1;\n');
    const notFn = module('not-fn.mjs', 'export const check = 3;\n');
    const run = (...args: string[]) => bench(['--port', '9', '--mode', 'request', ...args]);
    assert.match((await run('--module', none)).err, /exports neither request nor check/);
    assert.match((await run('--module', notFn)).err, /export 'check' is a number, not a function/);
    const both = await run('--module', CHECKER, '--request', 'A');
    assert.equal(both.code, 1);
    assert.match(both.err, /exports request: do not also give --request/);
    const onlyCheck = module('only-check.mjs', 'export function check() { return { done: false }; }\n');
    assert.match(
      (await run('--module', onlyCheck)).err,
      /exports no request: give --request or --request-file/,
    );
  });

  test('request flags with another mode', async () => {
    const { code, err } = await bench(['--port', '9', '--mode', 'echo', '--request', 'A']);
    assert.equal(code, 1);
    assert.match(err, /--request goes with --mode request only, not with echo/);
  });

  test('a module check that breaks its contract during the run ends it with status 1, named', async () => {
    await withKv([], async (port) => {
      const bad = module(
        'bad-check.mjs',
        'export function check(data) { return { done: true, ok: true, used: 0 }; }\n',
      );
      const { code, err } = await bench(load(port, '--request', 'GET a\\n', '--module', bad));
      assert.equal(code, 1);
      assert.match(err, /check\(<\d+ bytes>, 0, \d\) returned \{"done":true,"ok":true,"used":0\}/);
    });
  });
});

test('TEXT escapes: \\n \\r \\t \\0 \\\\ \\xHH and UTF-8', () => {
  assert.deepEqual(
    [...unescapeBytes('--x', 'a\\r\\n\\t\\0\\\\\\x7f\\xFF')],
    [97, 13, 10, 9, 0, 92, 127, 255],
  );
  assert.deepEqual([...unescapeBytes('--x', 'é')], [0xc3, 0xa9]);
  assert.throws(() => unescapeBytes('--x', 'a\\x4'), /unknown escape '\\x'/);
  assert.throws(() => unescapeBytes('--x', 'a\\'), /unknown escape '\\'/);
});
