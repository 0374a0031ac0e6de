import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect as netConnect, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { BIN, FIXTURES, type Listening, type LogLine, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { untilClosed } from './helpers/net.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

checkNoLeftoverProcesses();

const PROXY = { command: [BIN, 'proxy'] };
const BACKEND = `${process.execPath} ${join(FIXTURES, 'pid-echo.mjs')} {port}`;

async function proxy(args: string[]): Promise<Listening> {
  const p = await startDaemon(args, { ...PROXY, timeoutMs: 30_000 });
  // SIGTERM: a SIGKILLed proxy cannot stop its backends (they are not told; see docs/proxy.md).
  cleanup.push(async () => {
    p.daemon.signal('SIGTERM');
    await p.daemon.waitForExit(20_000).catch(() => p.daemon.kill());
  });
  return p;
}

/** One connection through the proxy: the greeting line of the backend behind it, then an echo. */
async function visit(port: number): Promise<{ pid: number; where: string; index: string }> {
  const s = netConnect(port, '127.0.0.1');
  try {
    await once(s, 'connect');
    const line = await readLine(s);
    s.write('x');
    const echo = await readLine(s, 'x');
    assert.equal(echo, 'x');
    const [pid, where, index] = line.split(' ');
    return { pid: Number(pid), where: where!, index: index! };
  } finally {
    s.destroy();
  }
}

/** Reads up to '\n' (or until `upTo` has arrived). */
function readLine(s: Socket, upTo?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => done(new Error(`no reply within 10 s (got '${buf}')`)), 10_000);
    const onData = (d: Buffer) => {
      buf += d.toString('latin1');
      const nl = buf.indexOf('\n');
      if (upTo !== undefined ? buf.length >= upTo.length : nl >= 0) {
        const line = upTo !== undefined ? buf.slice(0, upTo.length) : buf.slice(0, nl);
        const rest = upTo !== undefined ? buf.slice(upTo.length) : buf.slice(nl + 1);
        s.pause();
        if (rest) s.unshift(Buffer.from(rest, 'latin1'));
        done(undefined, line);
      }
    };
    const onEnd = () => done(new Error(`closed (got '${buf}')`));
    function done(err?: Error, line?: string) {
      clearTimeout(timer);
      s.off('data', onData).off('close', onEnd).off('error', onEnd);
      if (err) reject(err);
      else resolve(line!);
    }
    s.on('data', onData).on('close', onEnd).on('error', onEnd);
    s.resume();
  });
}

function findLogs(p: Listening, msg: string, pred: (l: LogLine) => boolean = () => true): LogLine[] {
  return p.daemon.logs.filter((l) => l.msg === msg && pred(l));
}

describe('tcpdaemon proxy --spawn', () => {
  it('starts N backends, each with its own port through {port} and the environment', async () => {
    const p = await proxy([
      '-l',
      '127.0.0.1:0',
      '--spawn',
      BACKEND,
      '--spawn-count',
      '3',
      '--strategy',
      'roundrobin',
    ]);
    const ready = await p.daemon.waitForMsg('proxy ready');
    assert.equal((ready.spawned as { count: number }).count, 3);
    const seen = new Map<number, { where: string; index: string }>();
    for (let i = 0; i < 9 && seen.size < 3; i++) {
      await p.daemon.waitForLog(() => findLogs(p, 'backend back in rotation').length === 3);
      const v = await visit(p.port);
      seen.set(v.pid, v);
    }
    assert.equal(seen.size, 3, 'three backend processes answered');
    const indexes = [...seen.values()].map((v) => v.index).sort();
    assert.deepEqual(indexes, ['1', '2', '3']);
    for (const v of seen.values()) assert.match(v.where, /^\d+$/);
    assert.equal(new Set([...seen.values()].map((v) => v.where)).size, 3, 'distinct ports');
    // Their output reaches the proxy's log, tagged with the backend.
    const out = await p.daemon.waitForLog(
      (l) => l.msg === 'backend output' && /listening on/.test(String(l.line)),
    );
    assert.match(String(out.backend), /^127\.0\.0\.1:\d+$/);
  });

  it('gives unix socket paths with --spawn-unix', async () => {
    const p = await proxy(['-l', '127.0.0.1:0', '--spawn', BACKEND, '--spawn-count', '2', '--spawn-unix']);
    await p.daemon.waitForMsg('proxy ready');
    const v = await visit(p.port);
    assert.match(v.where, /tcpdaemon-backends-.*\/backend-[12]\.sock$/);
  });

  it('kill -9 of one backend under a load loop: no attempt after the detection fails, the backend is restarted', async () => {
    const p = await proxy([
      '-l',
      '127.0.0.1:0',
      '--spawn',
      BACKEND,
      '--spawn-count',
      '3',
      '--strategy',
      'roundrobin',
      '--health-interval',
      '0.2',
    ]);
    await p.daemon.waitForMsg('proxy ready');
    await p.daemon.waitForLog(() => findLogs(p, 'backend back in rotation').length === 3);
    const attempts: { startedAt: number; ok: boolean; pid?: number; err?: string }[] = [];
    let running = true;
    const loop = async () => {
      while (running) {
        const startedAt = Date.now();
        try {
          const v = await visit(p.port);
          attempts.push({ startedAt, ok: true, pid: v.pid });
        } catch (err) {
          attempts.push({ startedAt, ok: false, err: (err as Error).message });
        }
      }
    };
    const loops = [loop(), loop(), loop(), loop()];
    await sleep(500);
    const victim = attempts.find((a) => a.ok)!.pid!;
    const victimBackend = findLogs(p, 'backend back in rotation').find((l) =>
      String(l.reason).includes(`(pid ${victim})`),
    )?.backend;
    assert.ok(victimBackend, `the backend of pid ${victim}`);
    process.kill(victim, 'SIGKILL');
    // Whichever sees it first takes it out: the process's exit, or the connect check (every 0.2 s).
    const down = await p.daemon.waitForLog((l) => l.msg === 'backend down' && l.backend === victimBackend);
    const detectedAt = Date.now();
    const back = await p.daemon.waitForLog(
      (l) =>
        l.msg === 'backend back in rotation' &&
        l.backend === down.backend &&
        /process ready/.test(String(l.reason)) &&
        !String(l.reason).includes(`pid ${victim})`),
    );
    await sleep(500);
    running = false;
    await Promise.all(loops);
    const after = attempts.filter((a) => a.startedAt >= detectedAt);
    assert.ok(after.length > 10, `load went on after the detection (${after.length} attempts)`);
    assert.deepEqual(
      after.filter((a) => !a.ok),
      [],
      'no attempt after the detection failed',
    );
    // Only connections the dead backend carried can have failed, at most one per load loop.
    assert.ok(
      attempts.filter((a) => !a.ok).length <= loops.length,
      JSON.stringify(attempts.filter((a) => !a.ok)),
    );
    const newPid = Number(/pid (\d+)/.exec(String(back.reason))![1]);
    assert.notEqual(newPid, victim);
    assert.ok(
      attempts.some((a) => a.pid === newPid),
      'the restarted backend serves again',
    );
  });

  it('a backend that cannot start is retried with backoff; clients are closed with the reason', async () => {
    const p = await proxy(['-l', '127.0.0.1:0', '--spawn', `${process.execPath} -e process.exit(3) {port}`]);
    await p.daemon.waitForMsg('proxy ready', 20_000);
    const loop = await p.daemon.waitForLog((l) => l.msg === 'worker exited' && l.crashLoop === true, 20_000);
    assert.equal(loop.code, 3);
    const c = netConnect(p.port, '127.0.0.1');
    await once(c, 'connect');
    assert.equal((await untilClosed(c)).data, '');
    const rejected = await p.daemon.waitForMsg('client closed: no backend could take it');
    assert.equal(rejected.reason, 'no healthy backend');
  });

  it('stops its backends when it stops', async () => {
    const p = await proxy(['-l', '127.0.0.1:0', '--spawn', BACKEND, '--spawn-count', '2']);
    const ready = await p.daemon.waitForMsg('proxy ready');
    const pids = (ready.spawned as { pids: number[] }).pids;
    assert.equal(pids.length, 2);
    p.daemon.signal('SIGTERM');
    assert.deepEqual(await p.daemon.waitForExit(), { code: 0, signal: null });
    for (const pid of pids) assert.throws(() => process.kill(pid, 0), /ESRCH/);
  });
});

describe('the front in worker processes', () => {
  it('-m IOMP -c 2: both workers forward, to spawned backends the primary supervises', async () => {
    const p = await proxy([
      '-m',
      'IOMP',
      '-c',
      '2',
      '-l',
      '127.0.0.1:0',
      '--spawn',
      BACKEND,
      '--spawn-count',
      '2',
    ]);
    // The primary and each worker log 'proxy ready'; the workers' lines carry worker 1 and 2.
    await p.daemon.waitForLog(() => findLogs(p, 'proxy ready').length >= 3);
    const workers = new Set(findLogs(p, 'proxy ready').map((l) => l.worker));
    assert.deepEqual([...workers].sort(), [0, 1, 2]);
    const spawned = findLogs(p, 'proxy ready', (l) => l.worker === 0)[0]!.spawned as { pids: number[] };
    const pids = new Set<number>();
    // A worker counts a backend in once its connect check passed (every 2 s), so allow a few rounds.
    const deadline = Date.now() + 15_000;
    while (pids.size < 2 && Date.now() < deadline) {
      pids.add((await visit(p.port)).pid);
      if (pids.size < 2) await new Promise((r) => setTimeout(r, 50));
    }
    assert.deepEqual(
      [...pids].sort(),
      [...spawned.pids].sort(),
      'the workers reach the backends the primary started',
    );
  });
});
