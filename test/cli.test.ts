import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { EXAMPLES, FIXTURES, runCli } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();

const echo = join(EXAMPLES, 'echo.js');
const tmp = tempDir('tcpdaemon-cli-');

/** Asserts: exit 1, one reason line naming `reason`, then usage, and nothing listened. */
async function rejects(args: string[], reason: RegExp): Promise<void> {
  const res = await runCli(args);
  assert.equal(res.code, 1, `exit code for ${args.join(' ')}; stderr: ${res.stderr}`);
  const first = res.stderr.split('\n')[0]!;
  assert.match(first, /^tcpdaemon: /);
  assert.match(first, reason);
  assert.match(res.stderr, /usage: tcpdaemon/);
  assert.doesNotMatch(res.stdout, /"listening"/);
}

describe('CLI parse errors: one-line reason + usage, exit 1, nothing listens', () => {
  test('unknown flag', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, '--frobnicate'], /unknown flag '--frobnicate'/));
  test('missing value', () => rejects(['-s', echo, '-l'], /flag -l, --listen needs a value/));
  test('stray positional argument', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, 'extra'], /unexpected argument 'extra'/));
  test('bad port', () => rejects(['-l', '127.0.0.1:70000', '-s', echo], /port must be 0\.\.65535/));
  test('listen without port', () =>
    rejects(['-l', '127.0.0.1', '-s', echo], /listen \(-l\) expected ip:port/));
  test('-c 0', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, '-c', '0'], /workers \(-c\) must be a whole number >= 1/));
  test('-c not a number', () => rejects(['-l', '127.0.0.1:0', '-s', echo, '-c', 'many'], /workers \(-c\)/));
  test('negative timeout', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, '--timeout=-1'], /timeout \(--timeout\)/));
  test('a value that looks like a flag', () =>
    rejects(
      ['-l', '127.0.0.1:0', '-s', echo, '--timeout', '-1'],
      /flag --timeout needs a value; .* --timeout=VALUE/,
    ));
  test('unknown model', () =>
    rejects(['-m', 'FORK', '-l', '127.0.0.1:0', '-s', echo], /model \(-m\) must be one of/));
  test('missing -l', () => rejects(['-s', echo], /listen \(-l\) is required/));
  test('missing -s', () => rejects(['-l', '127.0.0.1:0'], /handler \(-s\) is required/));
  test('bad --param', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, '--param', 'novalue'], /--param expects KEY=VALUE/));
  test('two log levels', () =>
    rejects(
      ['-l', '127.0.0.1:0', '-s', echo, '--loglevel-debug', '--loglevel', 'warn'],
      /give one loglevel \(--loglevel LEVEL or one --loglevel-LEVEL\)/,
    ));
  test('bad log level', () => rejects(['-l', '127.0.0.1:0', '-s', echo, '--loglevel', 'loud'], /loglevel/));
  test('--daemon-level without --logfile', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, '--daemon-level'], /needs --logfile/));
  test('unreadable config', () =>
    rejects(['--config', join(tmp, 'nope.json')], /cannot read config .*nope\.json: ENOENT/));
  test('config that is not JSON', () => {
    const path = join(tmp, 'bad.json');
    writeFileSync(path, '{ listen: ');
    return rejects(['--config', path], /config .*bad\.json is not valid JSON/);
  });
  test('config with an unknown key', () => {
    const path = join(tmp, 'unknown.json');
    writeFileSync(path, JSON.stringify({ listen: '127.0.0.1:0', handler: echo, colour: 'blue' }));
    return rejects(['--config', path], /unknown parameter 'colour'/);
  });
  test('IF flags', async () => {
    await rejects(
      ['-m', 'IF', '-l', '127.0.0.1:0', '-s', echo, '--spares', '0'],
      /spares \(--spares\) must be a whole number >= 1/,
    );
    await rejects(
      ['-m', 'IF', '-l', '127.0.0.1:0', '-s', echo, '--max-waiting', 'many'],
      /maxWaiting \(--max-waiting\) must be a whole number >= 0/,
    );
    await rejects(
      ['-m', 'IF', '-l', '127.0.0.1:0', '-s', echo, '--max-waiting=-3'],
      /maxWaiting \(--max-waiting\) must be a whole number >= 0/,
    );
  });
  test('--wait-timeout and --max-output-buffer', async () => {
    await rejects(
      ['-m', 'LF', '-l', '127.0.0.1:0', '-s', echo, '--wait-timeout', 'later'],
      /waitTimeout \(--wait-timeout\) must be a number >= 0/,
    );
    await rejects(
      ['-l', '127.0.0.1:0', '-s', echo, '--max-output-buffer', '1.5'],
      /maxOutputBuffer \(--max-output-buffer\) must be a whole number >= 0/,
    );
  });
  test('worker supervision flags', async () => {
    await rejects(
      ['-m', 'LF', '-l', '127.0.0.1:0', '-s', echo, '--hang-timeout', 'soon'],
      /hangTimeout \(--hang-timeout\) must be a number >= 0 and <= 86400, got 'soon'/,
    );
    await rejects(
      ['-m', 'LF', '-l', '127.0.0.1:0', '-s', echo, '--max-memory=-5'],
      /maxMemory \(--max-memory\) must be a number >= 0/,
    );
    await rejects(
      ['-l', '127.0.0.1:0', '-s', echo, '--restart-delay', '2', '--restart-delay-max', '1'],
      /restartDelayMax \(--restart-delay-max\) must be >= restartDelay \(--restart-delay, 2\), got 1/,
    );
  });
});

describe('CLI information', () => {
  test('-v prints the version', async () => {
    const res = await runCli(['-v']);
    assert.equal(res.code, 0);
    assert.match(res.stdout, /^tcpdaemon \d+\.\d+\.\d+ \(node v\d+/);
  });
  test('-h prints usage to stdout', async () => {
    const res = await runCli(['-h']);
    assert.equal(res.code, 0);
    assert.match(res.stdout, /usage: tcpdaemon -m IOMP\|LF\|IF\|TLF/);
  });
});

describe('handler load errors: path + reason, exit 1, nothing listens', () => {
  async function loadFails(handler: string, reason: RegExp): Promise<void> {
    const res = await runCli(['-l', '127.0.0.1:0', '-s', handler]);
    assert.equal(res.code, 1, res.stderr);
    assert.match(res.stderr, reason);
    assert.ok(res.stderr.includes(handler), `message names the path: ${res.stderr}`);
    assert.doesNotMatch(res.stdout, /"listening"/);
  }
  test('missing file', () => loadFails(join(tmp, 'missing.js'), /no such file/));
  test('syntax error (.mjs, with the line)', () => {
    const path = join(tmp, 'syntax.mjs');
    writeFileSync(path, 'export default function (s) {\n  s.end(\n');
    return loadFails(path, /failed to load: SyntaxError: .*syntax\.mjs:\d+/);
  });
  test('syntax error (.ts, with line and column)', () => {
    const path = join(tmp, 'syntax.ts');
    writeFileSync(path, 'const x: number = ;\nexport default () => x;\n');
    return loadFails(path, /failed to load: .*syntax\.ts:1:\d+/);
  });
  test('no function export', () =>
    loadFails(join(FIXTURES, 'no-export.mjs'), /exports no function .*found notAHandler/));
  test('throws while loading', () =>
    loadFails(join(FIXTURES, 'throws-at-load.mjs'), /handler refuses to load/));
  test('unsupported extension', () => {
    const path = join(tmp, 'handler.py');
    writeFileSync(path, 'print(1)\n');
    return loadFails(path, /unsupported extension '\.py'/);
  });
});

test('address in use: clear message with the address, exit 1', async () => {
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  const { port } = blocker.address() as { port: number };
  try {
    const res = await runCli(['-l', `127.0.0.1:${port}`, '-s', echo]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, new RegExp(`cannot listen on 127\\.0\\.0\\.1:${port}: address already in use`));
  } finally {
    blocker.close();
  }
});

describe('one dialect', () => {
  test('an unknown flag near a known one: did you mean', () =>
    rejects(
      ['-l', '127.0.0.1:0', '-s', echo, '--max-conections', '3'],
      /unknown flag '--max-conections' \(did you mean --max-connections\?\)/,
    ));
  test('an unknown key near a known one: did you mean', async () => {
    const path = join(tmp, 'typo.json');
    writeFileSync(path, JSON.stringify({ listen: '127.0.0.1:0', handler: echo, shutdownTimout: 3 }));
    await rejects(
      ['--config', path],
      /unknown parameter 'shutdownTimout' \(did you mean 'shutdownTimeout'\?\)/,
    );
  });
  test('--queue (our old spelling of --max-waiting) is refused with the new name', () =>
    rejects(['-m', 'LF', '-l', '127.0.0.1:0', '-s', echo, '--queue', '3'], /--queue is now --max-waiting/));
  test('--workers is refused with the new name', () =>
    rejects(['-l', '127.0.0.1:0', '-s', echo, '--workers', '3'], /--workers is now -c N/));
});
