// The one typed child channel (issue 13 item 5): every TCPDAEMON_* variable declared in
// src/child-channel.ts and read or written only there; one discriminator for IPC messages.
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterEach, describe, test } from 'node:test';
import {
  CHANNEL_VARS,
  type ChannelVarKey,
  channelOf,
  childEnv,
  forgetVar,
  handDown,
  NOT_INHERITED,
  readVar,
  takeVar,
} from '../src/child-channel.js';
import { isProtocolMessage } from '../src/supervisor/protocol.js';
import { isModelMessage } from '../src/worker/messages.js';
import { ROOT } from './helpers/daemon.js';

const SRC = join(ROOT, 'src');

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
  );
}

const declared = new Set<string>(Object.values(CHANNEL_VARS).map((v) => v.name));

describe('child channel: the variables', () => {
  const touched: ChannelVarKey[] = ['commandInput', 'proxySpawned', 'detached'];
  afterEach(() => {
    for (const k of touched) forgetVar(k);
  });

  test('every TCPDAEMON_* name in src/ is declared in the channel, and only the channel indexes process.env', () => {
    const undeclared: string[] = [];
    const indexing: string[] = [];
    for (const file of sources(SRC)) {
      const rel = relative(SRC, file);
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/TCPDAEMON_[A-Z0-9_]+/g))
        if (!declared.has(m[0])) undeclared.push(`${rel}: ${m[0]}`);
      if (rel !== 'child-channel.ts' && /process\.env\[/.test(text)) indexing.push(rel);
    }
    assert.deepEqual(undeclared, []);
    assert.deepEqual(indexing, [], 'files reading or writing process.env[...] outside the channel');
  });

  test("what a handler's children must not inherit: the taken and private ones, not the supervisor's or a backend's", () => {
    assert.deepEqual([...NOT_INHERITED].sort(), [
      'TCPDAEMON_COMMAND_INPUT',
      'TCPDAEMON_DETACHED',
      'TCPDAEMON_PROXY_DISCOVERED',
      'TCPDAEMON_PROXY_SPAWNED',
      'TCPDAEMON_WORKER',
    ]);
  });

  test('handDown sets for every later child, readVar reads, takeVar reads and removes', () => {
    assert.equal(readVar('commandInput'), undefined);
    handDown('commandInput', '{"x":1}');
    assert.equal(process.env.TCPDAEMON_COMMAND_INPUT, '{"x":1}');
    assert.equal(readVar('commandInput'), '{"x":1}');
    assert.equal(childEnv().TCPDAEMON_COMMAND_INPUT, '{"x":1}', 'a child inherits it');
    assert.equal(takeVar('commandInput'), '{"x":1}');
    assert.equal(process.env.TCPDAEMON_COMMAND_INPUT, undefined);
    assert.equal(readVar('workerId', { TCPDAEMON_WORKER_ID: '3' }), '3', 'another environment');
  });

  test('childEnv: this environment, plus the set ones, minus the dropped ones; not-inherited drops every private one', () => {
    handDown('proxySpawned', '[]');
    handDown('detached', '1');
    const worker = childEnv({ worker: '{}' }, ['detached'], { TCPDAEMON_SPAWN_ID: '7' });
    assert.equal(worker.TCPDAEMON_WORKER, '{}');
    assert.equal(worker.TCPDAEMON_DETACHED, undefined);
    assert.equal(worker.TCPDAEMON_PROXY_SPAWNED, '[]', 'a front worker gets the spawned addresses');
    assert.equal(worker.TCPDAEMON_SPAWN_ID, '7');
    assert.equal(worker.PATH, process.env.PATH);
    const backend = childEnv({ backendPort: '4000', backendIndex: '1' }, 'not-inherited');
    for (const name of NOT_INHERITED) assert.equal(backend[name], undefined, name);
    assert.equal(backend.TCPDAEMON_BACKEND_PORT, '4000');
    assert.equal(backend.TCPDAEMON_BACKEND_INDEX, '1');
    assert.equal(process.env.TCPDAEMON_PROXY_SPAWNED, '[]', 'childEnv leaves this process alone');
  });
});

describe('child channel: IPC messages', () => {
  test('one discriminator tells the supervisor, model and gateway conversations apart', () => {
    assert.equal(channelOf({ tdw: 'ready' }), 'supervisor');
    assert.equal(channelOf({ tdm: 'listen' }), 'model');
    assert.equal(channelOf({ gw: 'conn', address: '127.0.0.1' }), 'gateway');
    for (const other of [null, undefined, 'copy', 42, {}, { tdw: 1 }, { cmd: 'NODE_CLUSTER' }])
      assert.equal(channelOf(other), undefined, JSON.stringify(other));
    assert.ok(isProtocolMessage({ tdw: 'hb' }));
    assert.ok(!isProtocolMessage({ tdm: 'load' }));
    assert.ok(isModelMessage({ tdm: 'load' }));
    assert.ok(!isModelMessage({ gw: 'stats' }));
  });
});
