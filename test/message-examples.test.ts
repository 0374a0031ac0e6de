import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { createCodec } from '../src/message/index.js';
import { modelFor } from '../src/models/index.js';
import { validateParams } from '../src/params.js';
import { FIXTURES, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { FramedSocket, runProgram } from './helpers/message.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const lars = createCodec('lars');

function modelMissing(model: 'LF'): string | false {
  try {
    modelFor(validateParams({ model, listen: '127.0.0.1:0', handler: () => undefined }));
    return false;
  } catch (err) {
    return /not available/.test(String(err)) ? `${model} model not on main yet` : false;
  }
}

const MODELS: { model: string; args: string[]; skip: string | false }[] = [
  { model: 'IOMP', args: ['-m', 'IOMP'], skip: false },
  { model: 'LF', args: ['-m', 'LF', '-c', '2'], skip: modelMissing('LF') },
];

describe('examples/lars-echo.ts', () => {
  for (const { model, args, skip } of MODELS) {
    test(
      `under -m ${model}: welcome, msgid 1 echoed, msgid 2 logged; lars-client.ts talks to it`,
      { skip },
      () =>
        withDaemon(
          [...args, '-l', '127.0.0.1:0', '-s', 'examples/lars-echo.ts'],
          async ({ daemon, port }) => {
            const c = await FramedSocket.connect(port, lars);
            try {
              c.send(1, 'ping');
              c.send(2, 'note to the log');
              const frames = await c.waitFrames(2);
              assert.deepEqual(
                frames.map((f) => [f.msgid, f.body.toString()]),
                [
                  [101, 'welcome! you online..'],
                  [1, 'ping'],
                ],
              );
              const line = await daemon.waitForLog(
                (l) => l.msg === 'lars message' && l.body === 'note to the log',
              );
              assert.equal(line.msgid, 2);
            } finally {
              c.destroy();
            }
            const run = await runProgram(process.execPath, [
              '--import',
              'tsx',
              'examples/lars-client.ts',
              String(port),
            ]);
            assert.equal(run.code, 0, run.stderr);
            assert.equal(
              run.stdout,
              'msgid 101: welcome! you online..\nmsgid 1: hello lars!\nclosed: client closed\n',
            );
            await daemon.waitForLog((l) => l.msg === 'lars message' && l.body === 'hello msgid 2');
          },
        ),
    );
  }

  const gcc = spawnSync('gcc', ['--version']).status === 0;
  test('a C client framing with the Lars struct layout interoperates', {
    skip: gcc ? false : 'no gcc',
  }, async () => {
    const dir = tempDir('lars-c-');
    try {
      const exe = join(dir, 'lars-client');
      const built = spawnSync('gcc', ['-O1', '-o', exe, join(FIXTURES, 'lars-client.c')], {
        encoding: 'utf8',
      });
      assert.equal(built.status, 0, built.stderr);
      await withDaemon(
        ['-m', 'IOMP', '-l', '127.0.0.1:0', '-s', 'examples/lars-echo.ts'],
        async ({ daemon, port }) => {
          const run = await runProgram(exe, [String(port)]);
          assert.equal(run.code, 0, run.stderr);
          assert.equal(run.stdout, 'msgid 101: welcome! you online..\nmsgid 1: hello from C\n');
          await daemon.waitForLog((l) => l.msg === 'lars message' && l.body === 'C says bye');
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('examples/tdhb-echo.ts', () => {
  for (const { model, args, skip } of MODELS) {
    test(
      `under -m ${model}: TDHB width 4 frames come back; a non-numeric header closes with a logged reason`,
      { skip },
      () =>
        withDaemon(
          [...args, '-l', '127.0.0.1:0', '-s', 'examples/tdhb-echo.ts'],
          async ({ daemon, port }) => {
            const tdhb = createCodec('tdhb:4');
            const c = await FramedSocket.connect(port, tdhb);
            c.socket.write('0005hello00');
            c.socket.write('03abc0000');
            const frames = await c.waitFrames(3);
            assert.deepEqual(
              frames.map((f) => f.body.toString()),
              ['hello', 'abc', ''],
            );
            c.destroy();
            const bad = await FramedSocket.connect(port, tdhb);
            bad.socket.write('12a4xxxx');
            await bad.closed;
            const line = await daemon.waitForLog((l) => l.msg === 'protocol error; closing connection');
            assert.equal(line.reason, 'non-numeric header "12a4"');
            assert.match(String(line.remote), /^127\.0\.0\.1:\d+$/);
          },
        ),
    );
  }
});
