import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';
import { ThreadProcess } from '../src/models/tlf/thread-process.js';
import {
  type DaemonProcess,
  EXAMPLES,
  FIXTURES,
  modelArgs,
  runCli,
  startDaemon,
  withDaemon,
} from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { ask, connect, roundTrip, untilClosed } from './helpers/net.js';
import { tempDir } from './helpers/temp-dir.js';

checkNoLeftoverProcesses();
const commands = join(FIXTURES, 'commands.mjs');

interface Who {
  socket: Socket;
  pid: number;
  threadId: number;
  workerId: number;
}

async function who(port: number | string): Promise<Who> {
  const socket = await connect(port);
  const [pid, threadId, workerId] = (await ask(socket, 'who')).split(' ').map(Number);
  return { socket, pid: pid!, threadId: threadId!, workerId: workerId! };
}

/** Opens connections until two are served by different threads (bounded); closes the others. */
async function onTwoThreads(port: number | string): Promise<[Who, Who]> {
  const first = await who(port);
  for (let i = 0; i < 200; i++) {
    const next = await who(port);
    if (next.threadId !== first.threadId) return [first, next];
    next.socket.destroy();
  }
  throw new Error('200 connections, all on one thread');
}

function exitsLogged(daemon: DaemonProcess): number {
  return daemon.logs.filter((l) => l.supervisor === 'threads' && l.msg === 'worker exited').length;
}

test('-m TLF -c 2: two threads of the daemon process serve connections; SIGTERM exits 0', async () => {
  await withDaemon(modelArgs('TLF', 2, commands), async ({ daemon, port }) => {
    const [a, b] = await onTwoThreads(port);
    assert.equal(a.pid, daemon.pid, 'threads live in the daemon process');
    assert.equal(b.pid, daemon.pid);
    assert.deepEqual([a.workerId, b.workerId].sort(), [1, 2]);
    assert.equal(await ask(a.socket, 'ping'), 'ping');
    a.socket.end();
    b.socket.end();
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
  });
});

test('WIN-TLF is an alias; a .ts handler runs in the threads', async () => {
  await withDaemon(
    ['-m', 'WIN-TLF', '-c', '1', '-l', '127.0.0.1:0', '-s', join(EXAMPLES, 'echo.ts')],
    async ({ daemon, port }) => {
      const s = await connect(port);
      assert.equal(await roundTrip(s, 'typed'), 'typed');
      s.end();
      assert.equal((await daemon.waitForMsg('listening')).model, 'TLF');
    },
  );
});

test('process.exit in a thread costs its connections only: the other thread and the socket keep serving', async () => {
  await withDaemon(modelArgs('TLF', 2, commands), async ({ daemon, port }) => {
    const [survivor, victim] = await onTwoThreads(port);
    const victimClosed = untilClosed(victim.socket);
    victim.socket.write('exit\n');
    await victimClosed;
    const exited = await daemon.waitForLog((l) => l.msg === 'worker exited' && l.code === 3);
    assert.equal(exited.workerPid, victim.threadId);
    assert.equal(await ask(survivor.socket, 'still here'), 'still here');
    // The dead thread's descriptors are reused by new connections: with a shared fd this aborts.
    await daemon.waitForLog(
      (l) => l.msg === 'worker ready' && l.workerPid !== victim.threadId && l.slot === exited.slot,
    );
    const threads = new Set<number>();
    for (let i = 0; i < 30; i++) {
      const w = await who(port);
      threads.add(w.threadId);
      w.socket.destroy();
    }
    assert.ok(!threads.has(victim.threadId), 'the dead thread serves nothing');
    assert.equal(await ask(survivor.socket, 'after'), 'after');
    assert.equal(daemon.child.exitCode, null);
    survivor.socket.end();
  });
});

test('a throw from handler code in a thread is logged; the thread keeps serving', async () => {
  await withDaemon(modelArgs('TLF', 2, commands), async ({ daemon, port }) => {
    const w = await who(port);
    w.socket.write('throw\n');
    const logged = await daemon.waitForMsg('uncaught exception in handler code; process keeps serving');
    assert.equal(logged.worker, w.workerId);
    assert.equal(await ask(w.socket, 'same thread'), 'same thread');
    assert.equal((await ask(w.socket, 'who')).split(' ')[1], String(w.threadId));
    assert.equal(exitsLogged(daemon), 0, 'no thread died');
    w.socket.end();
  });
});

test('SIGHUP reloads thread by thread with no refused connection; a blocked thread is terminated, the rest keep serving', async () => {
  // A retiring thread's drain outlasts a loaded machine's turn (0.2 s once cut an accepted connection),
  // and the blocked thread's kill (its drain plus 2 s) comes well after 'reload done', which waits up
  // to 2 s for that thread's answer to the retire: the loop below ends before the kill.
  await withDaemon(modelArgs('TLF', 2, commands, '--shutdown-timeout', '5'), async ({ daemon, port }) => {
    const [blocked, other] = await onTwoThreads(port);
    const blockedClosed = untilClosed(blocked.socket);
    blocked.socket.write('block\n'); // its thread's event loop never turns again
    assert.equal(await ask(other.socket, 'other thread'), 'other thread');
    other.socket.end();
    daemon.signal('SIGHUP');
    let served = 0;
    while (!daemon.logs.some((l) => l.msg === 'reload done') && served < 500) {
      const w = await who(port); // ECONNREFUSED would throw
      assert.notEqual(w.threadId, blocked.threadId);
      w.socket.destroy();
      served++;
    }
    await daemon.waitForMsg('reload done');
    const killed = await daemon.waitForMsg('worker did not finish in time; killing it');
    assert.equal(killed.workerPid, blocked.threadId);
    await blockedClosed;
    const after = await who(port);
    assert.equal(await ask(after.socket, 'after'), 'after');
    after.socket.end();
    assert.equal(daemon.child.exitCode, null);
  });
});

test('a blocked thread killed while connections keep coming: the other threads serve every one of them', async () => {
  // The blocked thread still has its copy of the listening socket in its event loop when it is
  // terminated; connections queued on the socket meanwhile belong to no thread and must not be reset.
  await withDaemon(modelArgs('TLF', 2, commands, '--shutdown-timeout', '1'), async ({ daemon, port }) => {
    const [blocked, other] = await onTwoThreads(port);
    // 'freeze' answers before it blocks: after the answer that thread accepts nothing more, so no
    // connection of the loops below can be one it took just before blocking (those are its own,
    // and die with it).
    assert.equal(await ask(blocked.socket, 'freeze'), 'frozen');
    const blockedClosed = untilClosed(blocked.socket);
    assert.equal(await ask(other.socket, 'other thread'), 'other thread');
    other.socket.end();
    daemon.signal('SIGHUP');
    const killed = () => daemon.logs.some((l) => l.msg === 'worker did not finish in time; killing it');
    let served = 0;
    let afterKill = 0;
    // Eight loops at once, so that connections wait in the backlog when the kill comes.
    const loop = async () => {
      while (afterKill < 200 && served < 20_000) {
        if (killed()) afterKill++;
        const w = await who(port); // a reset or a refusal throws
        assert.notEqual(w.threadId, blocked.threadId);
        w.socket.destroy();
        served++;
      }
    };
    await Promise.all(Array.from({ length: 8 }, loop));
    assert.ok(afterKill >= 200, `the kill came within ${served} connections`);
    await blockedClosed;
    await daemon.waitForMsg('reload done');
    assert.equal(daemon.child.exitCode, null);
  });
});

test('a unix socket: threads serve it; stop removes the socket file', async () => {
  const path = join(tempDir('tcpdaemon-tlf-'), 'tlf.sock');
  await withDaemon(['-m', 'TLF', '-c', '2', '-l', path, '-s', commands], async ({ daemon }) => {
    const [a, b] = await onTwoThreads(path);
    assert.equal(await ask(b.socket, 'unix'), 'unix');
    a.socket.end();
    b.socket.end();
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    assert.equal(existsSync(path), false);
  });
});

test('threads that cannot load the handler: start-up fails with the reason, exit 1, no socket or pid file left', async () => {
  const dir = tempDir('tcpdaemon-tlf-');
  const [path, pidFile] = [join(dir, 'tlf.sock'), join(dir, 'tlf.pid')];
  const res = await runCli([
    ...['-m', 'TLF', '-c', '2', '-l', path, '-s', join(FIXTURES, 'throws-in-workers.mjs')],
    ...['--restart-delay', '0.02', '--pid-file', pidFile],
  ]);
  assert.equal(res.code, 1);
  assert.match(
    res.stderr,
    /^tcpdaemon: workers could not start: handler .*throws-in-workers\.mjs: failed to load: Error: fixture: broken in workers\n$/,
  );
  assert.equal(existsSync(path), false, 'no socket file left');
  assert.equal(existsSync(pidFile), false, 'no pid file left');
  // The thread's own line, at the level a worker process's 'worker could not start' has.
  const line = res.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string; level?: unknown })
    .find((l) => l.msg === 'thread could not start');
  assert.equal(line?.level, 'fatal');
});

test('threads that load the handler: listening once every thread is ready; a thread that failed once is retried', async () => {
  const dir = tempDir('tcpdaemon-tlf-');
  const pidFile = join(dir, 'tlf.pid');
  const { daemon, port } = await startDaemon(
    modelArgs(
      'TLF',
      2,
      join(FIXTURES, 'fails-once-in-workers.mjs'),
      '--restart-delay',
      '0.02',
      '--pid-file',
      pidFile,
    ),
    { env: { FIXTURE_FAIL_ONCE: join(dir, 'failed') } },
  );
  try {
    const threads = daemon.logs.filter((l) => l.supervisor === 'threads');
    assert.equal(threads.filter((l) => l.msg === 'worker exited').length, 1, 'one thread failed to load');
    assert.deepEqual(
      threads
        .filter((l) => l.msg === 'worker ready')
        .map((l) => l.slot)
        .sort(),
      [0, 1],
      'both slots ready before listening',
    );
    assert.equal(readFileSync(pidFile, 'utf8').trim(), String(daemon.pid));
    const s = await connect(port);
    assert.equal(await roundTrip(s, 'loaded'), 'loaded');
    s.end();
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 0, signal: null });
    assert.equal(existsSync(pidFile), false);
  } finally {
    await daemon.kill();
  }
});

test('a function handler cannot run in threads: clear error before listening', async () => {
  const { tcpdaemon } = await import('../src/index.js');
  await assert.rejects(
    tcpdaemon({ model: 'TLF', listen: '127.0.0.1:0', handler: () => undefined }),
    /model TLF needs the handler as a module path/,
  );
});

test('a thread killed while its socket-copy helper runs is terminated only once the helper is reaped (no zombie)', async () => {
  // Stands for src/models/tlf/thread-main.ts: a helper process first, then 'copied', then the event loop blocks.
  const code = `
    const { spawn } = require('node:child_process');
    const { parentPort } = require('node:worker_threads');
    const helper = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 300)'], { stdio: 'ignore' });
    parentPort.postMessage({ helper: helper.pid });
    helper.on('close', () => {
      parentPort.postMessage({ tdm: 'copied' });
      for (;;);
    });`;
  const thread = new ThreadProcess(new Worker(code, { eval: true }), 1000);
  const helperPid = await new Promise<number>((resolve) =>
    thread.on('message', (m) => resolve((m as { helper: number }).helper)),
  );
  const exited = new Promise((resolve) => thread.on('exit', resolve));
  thread.kill('SIGKILL'); // while the helper runs
  await exited;
  assert.equal(existsSync(`/proc/${helperPid}`), false, 'the helper was reaped, not left a zombie');
});
