import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { nodeStripsTypes } from '../src/handler/typescript.js';
import { FIXTURES, withDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, roundTrip } from './helpers/net.js';

checkNoLeftoverProcesses();

// Node >= 22.18 strips types itself; older nodes, and syntax it cannot strip, go through esbuild.
const cases = [
  { fixture: 'ts-strippable.ts', reply: 'stripped', loader: nodeStripsTypes() ? 'node' : 'esbuild' },
  { fixture: 'ts-enum.ts', reply: 'enum', loader: 'esbuild' },
];

/** The line of `needle` in `file`, 1-based. */
function lineOf(file: string, needle: string): number {
  return (
    readFileSync(file, 'utf8')
      .split('\n')
      .findIndex((l) => l.includes(needle)) + 1
  );
}

for (const { fixture, reply, loader } of cases) {
  for (const [model, workers] of [
    ['IOMP', '1'],
    ['IF', '2'],
    ['TLF', '1'],
  ] as const) {
    test(`${model}: ${fixture} is served by the ${loader} loader in every process, and its stack names the .ts line`, async () => {
      const file = join(FIXTURES, fixture);
      await withDaemon(
        ['-m', model, '-c', workers, '-l', '127.0.0.1:0', '-s', file, '--loglevel', 'debug'],
        async ({ daemon, port }) => {
          const s = await connect(port);
          assert.equal(await roundTrip(s, 'hi'), `${reply} hi`);
          s.end();
          const loads = daemon.logs.filter((l) => l.msg === 'handler module loaded');
          // The daemon loads it before listening; workers (processes, threads) load it again.
          assert.ok(
            loads.some((l) => l.worker === 0),
            'the daemon says which loader served it',
          );
          if (model !== 'IOMP') {
            await daemon.waitForLog((l) => l.msg === 'handler module loaded' && l.worker !== 0);
          }
          for (const l of daemon.logs.filter((x) => x.msg === 'handler module loaded')) {
            assert.equal(l.loader, loader, `worker ${String(l.worker)}: ${JSON.stringify(l)}`);
            assert.equal(l.handler, file);
            // Every process imports the JavaScript copy the daemon made (an ES module: this package
            // says "type": "module"); none strips or compiles again.
            assert.equal(l.copy, join(FIXTURES, `.${fixture}.tcpdaemon.${loader}.mjs`));
          }

          const t = await connect(port);
          t.write('throw');
          const failed = await daemon.waitForMsg('handler failed; connection closed');
          const stack = String((failed.err as { stack?: unknown } | undefined)?.stack);
          const line = lineOf(file, "throw new Error('thrown by");
          assert.ok(stack.includes(`${file}:${line}:`), `the stack names ${fixture}:${line}: ${stack}`);
          t.destroy();
        },
      );
    });
  }
}
