import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { commandFor, splitCommand } from '../src/proxy/spawn-command.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';

checkNoLeftoverProcesses();

describe('--spawn command words', () => {
  it('splits like a shell: spaces, quotes, escapes', () => {
    assert.deepEqual(splitCommand('node server.js --port {port}'), ['node', 'server.js', '--port', '{port}']);
    assert.deepEqual(splitCommand(`  a  'b c'  "d \\"e\\""  f\\ g ''  `), ['a', 'b c', 'd "e"', 'f g', '']);
    assert.deepEqual(splitCommand(`x'y'"z"`), ['xyz']);
    assert.deepEqual(splitCommand(`'$HOME' "a'b"`), ['$HOME', "a'b"]);
  });

  it('refuses what it cannot split', () => {
    assert.throws(() => splitCommand(`node 'server.js`), /unterminated ' quote/);
    assert.throws(() => splitCommand(`node "server.js`), /unterminated " quote/);
    assert.throws(() => splitCommand('node \\'), /lone backslash/);
    assert.throws(() => splitCommand('   '), /empty command/);
  });

  it('puts the port (or socket path) wherever {port} appears', () => {
    const words = splitCommand('tcpdaemon -l 127.0.0.1:{port} --param name=b{port}');
    assert.deepEqual(commandFor(words, '7001'), [
      'tcpdaemon',
      '-l',
      '127.0.0.1:7001',
      '--param',
      'name=b7001',
    ]);
    assert.deepEqual(commandFor(splitCommand('srv --unix {port}'), '/tmp/x/b1.sock'), [
      'srv',
      '--unix',
      '/tmp/x/b1.sock',
    ]);
  });
});
