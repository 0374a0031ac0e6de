import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { after, describe, test } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { accountExit, type BackoffOptions, restartDelay } from '../src/supervisor/backoff.js';
import { readyOnSpawn, readyOnTcpPort, Supervisor, type WorkerHandle } from '../src/supervisor/index.js';
import { FIXTURES } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { captureLogger, forkFixture, Recorded, waitUntil } from './helpers/supervisor.js';

checkNoLeftoverProcesses();

const WORKER = 'supervised-worker.ts';
const running: Supervisor[] = [];
after(async () => {
  await Promise.all(running.map((s) => s.stop(500)));
});

function recorded(opts: ConstructorParameters<typeof Recorded>[0]): Recorded {
  const r = new Recorded(opts);
  running.push(r.supervisor);
  return r;
}

const B: BackoffOptions = { initialMs: 100, maxMs: 10_000, factor: 2, jitter: 0.2, resetAfterMs: 5_000 };

describe('backoff', () => {
  test('grows by the factor from the initial delay up to the cap', () => {
    const noJitter = { ...B, jitter: 0 };
    assert.deepEqual(
      [0, 1, 2, 3, 6, 7, 8, 50].map((f) => restartDelay(f, noJitter)),
      [100, 200, 400, 800, 6400, 10_000, 10_000, 10_000],
    );
  });

  test('jitter only shortens a delay, within the jitter fraction, and never passes the cap', () => {
    fc.assert(
      fc.property(fc.nat(2000), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (f, r) => {
        const d = restartDelay(f, B, () => r);
        const base = restartDelay(f, { ...B, jitter: 0 });
        return d <= base && d >= Math.floor(base * (1 - B.jitter)) && Number.isFinite(d) && d <= B.maxMs;
      }),
    );
  });

  test('a long healthy run forgives earlier failures; a short one does not', () => {
    const r = () => 0;
    assert.deepEqual(accountExit(5, 4_999, B, r), { failures: 6, delayMs: 3200 });
    assert.deepEqual(accountExit(5, 5_000, B, r), { failures: 1, delayMs: 100 });
    assert.deepEqual(accountExit(0, 0, B, r), { failures: 1, delayMs: 100 });
  });

  test('options nobody can work with are refused with the reason', () => {
    const logger = captureLogger().logger;
    const spec = { start: forkFixture(WORKER) };
    assert.throws(() => new Supervisor({ size: 0, logger, spec }), /size must be an integer >= 1, got 0/);
    assert.throws(
      () => new Supervisor({ size: 1, logger, spec, backoff: { factor: 0.5 } }),
      /factor must be >= 1/,
    );
    assert.throws(
      () => new Supervisor({ size: 1, logger, spec, backoff: { initialMs: 500, maxMs: 100 } }),
      /maxMs must be >= initialMs/,
    );
    assert.throws(
      () => new Supervisor({ size: 1, logger, spec, hangTimeoutMs: -1 }),
      /hangTimeoutMs must be/,
    );
  });
});

describe('supervisor with node workers', () => {
  test('starts workers in parallel and counts each one only once it says it is ready', async () => {
    const r = recorded({
      size: 2,
      spec: { start: forkFixture(WORKER, () => ({ FIXTURE_READY_DELAY_MS: '300' })) },
    });
    const started = r.supervisor.start();
    await r.waitLog('worker starting', (l) => l.slot === 1);
    assert.equal(r.supervisor.readyWorkers().length, 0);
    assert.deepEqual(
      r.supervisor.workers().map((w) => w.state),
      ['starting', 'starting'],
    );
    await started;
    assert.equal(r.supervisor.readyWorkers().length, 2);
    // Both were spawned before either was ready: the start is parallel.
    const firstReady = r.lines.findIndex((l) => l.msg === 'worker ready');
    assert.equal(r.lines.slice(0, firstReady).filter((l) => l.msg === 'worker starting').length, 2);
    assert.deepEqual(r.readies.map((w) => w.workerId).sort(), [1, 2]);
    await r.supervisor.stop(1000);
  });

  test('kill -9 of one worker: the other keeps serving, a replacement becomes ready, the exit is logged', async () => {
    const r = recorded({ size: 2, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const [victim, survivor] = r.pids() as [number, number];
    process.kill(victim, 'SIGKILL');
    const exit = await r.waitLog('worker exited', (l) => l.workerPid === victim);
    assert.equal(exit.signal, 'SIGKILL');
    assert.equal(exit.code, null);
    assert.equal(exit.reason, 'crashed');
    assert.equal(typeof exit.uptimeMs, 'number');
    assert.ok(
      (exit.nextDelayMs as number) > 0 && (exit.nextDelayMs as number) <= 100,
      `delay ${exit.nextDelayMs}`,
    );
    await waitUntil(() => r.readies.length === 3, 'a replacement');
    const replacement = r.readies[2]!;
    assert.equal(replacement.slot, r.readies.find((w) => w.pid === victim)!.slot);
    assert.notEqual(replacement.pid, victim);
    assert.ok(r.pids().includes(survivor), 'the other worker is untouched');
    assert.equal(r.supervisor.workers().length, 2);
    await r.supervisor.stop(1000);
  });

  test('a worker that dies at load: the delay grows in the log, restarts stay few, CPU stays low', async () => {
    const r = recorded({
      size: 1,
      spec: { start: forkFixture('throws-at-load.mjs', undefined, { quiet: true }) },
      backoff: { initialMs: 50, maxMs: 400, jitter: 0.2 },
    });
    const cpu0 = cpuSecondsWithChildren();
    const t0 = Date.now();
    void r.supervisor.start();
    // At least 2.5 s and three exits (a fork can take a second on a loaded machine).
    await waitUntil(() => r.logs('worker exited').length >= 3, 'three exits', 20_000);
    const rest = t0 + 2500 - Date.now();
    if (rest > 0) await new Promise((res) => setTimeout(res, rest));
    const exits = r.logs('worker exited');
    await r.supervisor.stop(500);
    const wallS = (Date.now() - t0) / 1000;
    const cpuShare = (cpuSecondsWithChildren() - cpu0) / wallS;
    const delays = exits.map((l) => l.nextDelayMs as number);
    assert.ok(exits.length >= 3, `expected a few restarts, got ${exits.length}`);
    // Without backoff a 2.5 s window would hold dozens of restarts; with it, after 50 + 100 + 200
    // ms, one each 400 ms at most.
    assert.ok(exits.length <= 6 + 3 * wallS, `too many restarts: ${exits.length} in ${wallS.toFixed(1)} s`);
    assert.ok(delays[0]! < delays[1]! && delays[1]! < delays[2]!, `delays grow: ${delays.join(', ')}`);
    assert.ok(
      delays.every((d) => d <= 400),
      `delays: ${delays.join(', ')}`,
    );
    assert.equal(exits[0]!.code, 1);
    assert.equal(exits.at(-1)!.crashLoop, true);
    assert.equal(exits.at(-1)!.level, 'error');
    assert.ok(cpuShare < 0.6, `CPU share of one core during the crash loop: ${cpuShare.toFixed(2)}`);
  });

  test('hang detection replaces a worker stuck in a busy loop', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) }, hangTimeoutMs: 600 });
    await r.supervisor.start();
    const [stuck] = r.pids() as [number];
    r.tell(stuck, { fixture: 'hang' });
    const hung = await r.waitLog('worker hung; killing it');
    assert.equal(hung.workerPid, stuck);
    assert.ok((hung.silentMs as number) > 600, `silent ${hung.silentMs} ms`);
    const info = await r.waitExit(stuck);
    assert.equal(info.signal, 'SIGKILL');
    assert.equal(info.reason, 'hung');
    await waitUntil(() => r.readies.length === 2, 'a replacement');
    assert.notEqual(r.pids()[0], stuck);
    await r.supervisor.stop(1000);
  });

  test('a recycle request: the replacement is ready before the old worker retires, which exits 0; routine lines are debug', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const [old] = r.pids() as [number];
    r.tell(old, { fixture: 'recycle' });
    const info = await r.waitExit(old);
    assert.deepEqual(info.code, 0);
    assert.equal(info.reason, 'recycle: fixture asked');
    const fresh = r.readies[1]!.pid!;
    assert.deepEqual(r.order.slice(-3), [`ready:${fresh}`, `retire:${old}`, `exit:${old}`]);
    // Routine (one recycle per -n connections, IF's per-connection processes): not info.
    assert.equal(r.logs('worker exited')[0]!.level, 'debug');
    assert.equal(r.logs('recycling worker')[0]!.level, 'debug');
    assert.deepEqual(
      r.logs('worker ready').map((l) => l.level),
      ['info', 'debug'],
    );
    assert.deepEqual(r.pids(), [fresh]);
    await r.supervisor.stop(1000);
  });

  test('recycle() from a ready listener takes effect at once, not at the next tick', async () => {
    // No tick within the test: anything left for the tick would never happen.
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) }, heartbeatMs: 60_000 });
    r.supervisor.on('ready', (w) => {
      if (r.readies.length < 4) r.supervisor.recycle(w.slot, 'chained');
    });
    await r.supervisor.start();
    await waitUntil(() => r.readies.length >= 4, 'three chained recycles', 15_000);
    await waitUntil(() => r.exits.length >= 3, 'the recycled workers to exit', 15_000);
    assert.deepEqual(new Set(r.exits.map((e) => e.info.reason)), new Set(['recycle: chained']));
    await r.supervisor.stop(1000);
  });

  test('a recycle asked for during a reload runs as soon as the reload is done', async () => {
    const r = recorded({ size: 2, spec: { start: forkFixture(WORKER) }, heartbeatMs: 60_000 });
    await r.supervisor.start();
    let asked: number | undefined;
    r.supervisor.on('ready', (w) => {
      if (w.slot === 0 && asked === undefined) {
        asked = w.pid;
        r.supervisor.recycle(0, 'during reload'); // slot 1 is still being reloaded
      }
    });
    assert.deepEqual(await r.supervisor.reload(), { ok: true, replaced: 2 });
    const line = await r.waitLog('recycling worker', (l) => l.workerPid === asked, 5000);
    assert.equal(line.reason, 'during reload');
    await r.supervisor.stop(1000);
  });

  test("a retire grace beyond node's timer limit does not kill at once", async () => {
    const r = recorded({
      size: 1,
      spec: { start: forkFixture(WORKER, () => ({ FIXTURE_IGNORE_RETIRE: '1' })) },
      retireGraceMs: 2 ** 31, // plus the kill margin: a plain setTimeout would fire after 1 ms
      killMarginMs: 200,
    });
    await r.supervisor.start();
    const [old] = r.pids() as [number];
    r.supervisor.recycle(0, 'long drain');
    await r.waitEvent('retiring', old);
    await new Promise((res) => setTimeout(res, 1000));
    assert.equal(r.logs('worker did not finish in time; killing it').length, 0);
    assert.ok(alive(old), 'the retired worker is left to drain');
    // A stop shortens the deadline: then it is killed.
    await r.supervisor.stop(100);
    assert.equal((await r.waitExit(old)).signal, 'SIGKILL');
  });

  test('take(): the worker leaves its slot, the replacement starts on the next turn, its exit is expected', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) }, heartbeatMs: 60_000 });
    await r.supervisor.start();
    const [w] = r.supervisor.readyWorkers() as [WorkerHandle];
    assert.equal(r.supervisor.take(w), true);
    assert.equal(w.state, 'taken');
    assert.equal(r.supervisor.take(w), false, 'taken once');
    assert.deepEqual(r.supervisor.readyWorkers(), []);
    // Not in the same turn: the caller hands its connection over before the daemon forks.
    assert.deepEqual(
      r.supervisor.workers().map((x) => x.state),
      ['taken'],
    );
    await new Promise((res) => setImmediate(res));
    assert.deepEqual(
      r.supervisor.workers().map((x) => x.state),
      ['starting', 'taken'],
    );
    await waitUntil(() => r.readies.length === 2, 'the replacement');
    const [fresh] = r.supervisor.readyWorkers() as [WorkerHandle];
    assert.equal(fresh.slot, w.slot);
    assert.equal(r.supervisor.take(r.supervisor.workers().find((x) => x !== fresh && x !== w) ?? w), false);
    r.tell(w.pid!, { fixture: 'exit', code: 3 });
    const info = await r.waitExit(w.pid!);
    assert.equal(info.reason, 'taken');
    assert.equal(info.code, 3);
    const exit = r.logs('worker exited')[0]!;
    assert.equal(exit.level, 'debug');
    assert.equal(exit.nextDelayMs, undefined, 'no restart: its slot has its replacement');
    await new Promise((res) => setTimeout(res, 300));
    assert.equal(r.logs('worker starting').length, 2);
    assert.deepEqual(r.pids(), [fresh.pid]);
    await r.supervisor.stop(1000);
  });

  test('stop retires taken workers too: their work finishes, then they exit', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const [w] = r.supervisor.readyWorkers() as [WorkerHandle];
    r.supervisor.take(w);
    r.tell(w.pid!, { fixture: 'busy', ms: 3000 });
    await r.waitEvent('busy', w.pid);
    await r.supervisor.stop(10_000);
    assert.equal((await r.waitEvent('retiring', w.pid)).active, 1);
    assert.ok(r.events.some((e) => e.event === 'work done' && e.pid === w.pid));
    const info = await r.waitExit(w.pid!);
    assert.deepEqual([info.code, info.reason], [0, 'stop']);
    assert.equal(r.supervisor.workers().length, 0);
  });

  test('a worker above maxRssBytes is recycled', async () => {
    const r = recorded({
      size: 1,
      spec: { start: forkFixture(WORKER) },
      maxRssBytes: 150 * 1048576,
      heartbeatMs: 50,
    });
    await r.supervisor.start();
    const [fat] = r.pids() as [number];
    r.tell(fat, { fixture: 'alloc', mb: 200 });
    const line = await r.waitLog('recycling worker');
    assert.match(String(line.reason), /^rss \d+ MB > 150 MB$/);
    assert.equal(line.level, 'info', 'not routine');
    const info = await r.waitExit(fat);
    assert.equal(info.code, 0);
    assert.notEqual(r.pids()[0], fat);
    await r.supervisor.stop(1000);
  });

  test('rolling reload: slot by slot, new ready before old retires; the new code runs afterwards', async () => {
    let version = 1;
    const r = recorded({
      size: 2,
      spec: { start: forkFixture(WORKER, () => ({ FIXTURE_VERSION: String(version) })) },
    });
    await r.supervisor.start();
    const oldPids = r.pids();
    version = 2;
    const result = await r.supervisor.reload();
    assert.deepEqual(result, { ok: true, replaced: 2 });
    const newPids = r.pids();
    assert.equal(newPids.filter((p) => oldPids.includes(p)).length, 0);
    for (const pid of newPids) assert.equal((await r.waitEvent('hello', pid)).version, '2');
    for (const [i, old] of oldPids.entries()) {
      const fresh = r.readies.find((w) => w.slot === i && w.pid !== old)!.pid;
      assert.ok(r.order.indexOf(`ready:${fresh}`) < r.order.indexOf(`retire:${old}`), r.order.join(' '));
      assert.equal((await r.waitExit(old)).code, 0);
    }
    // Slot 1 was replaced only after slot 0's replacement was in service.
    assert.ok(
      r.order.indexOf(`retire:${oldPids[0]}`) < r.order.indexOf(`ready:${newPids[1]}`),
      r.order.join(' '),
    );
    await r.supervisor.stop(1000);
  });

  test('reload done waits for the old workers to say they take no new work (one read the retire late)', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const [old] = r.pids();
    r.tell(old!, { fixture: 'block', ms: 1500 });
    await r.waitEvent('blocking', old);
    // The replacement is ready while the old worker's loop is still blocked: it reads the retire after.
    assert.deepEqual(await r.supervisor.reload(), { ok: true, replaced: 1 });
    assert.ok(
      r.events.some((e) => e.event === 'retiring' && e.pid === old),
      'the old worker had taken the retire before the reload was done',
    );
    await r.supervisor.stop(1000);
  });

  test('an old worker that answers no retire (a hung loop) within 2 s is named in a warning; the reload is done anyway', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const [old] = r.pids();
    r.tell(old!, { fixture: 'hang' }); // it never reads the retire: stop() kills it at its deadline
    await r.waitEvent('hanging', old);
    assert.deepEqual(await r.supervisor.reload(), { ok: true, replaced: 1 });
    const warned = r.logs(
      'reload: old workers did not answer the retire in time; they may still take connections until they do',
    );
    assert.equal(warned.length, 1);
    assert.deepEqual(warned[0]!.workerPids, [old]);
    await r.supervisor.stop(500);
    assert.equal((await r.waitExit(old!)).signal, 'SIGKILL');
  });

  test('a reload whose new code cannot start keeps the old workers serving', async () => {
    let broken = false;
    const r = recorded({
      size: 2,
      spec: { start: forkFixture(WORKER, () => (broken ? { FIXTURE_THROW: '1' } : {}), { quiet: true }) },
      backoff: { initialMs: 20 },
    });
    await r.supervisor.start();
    const before = r.pids();
    broken = true;
    const result = await r.supervisor.reload();
    assert.equal(result.ok, false);
    assert.deepEqual(r.pids(), before);
    assert.equal(r.retires.length, 0);
    assert.equal((await r.waitLog('reload failed; remaining workers keep serving')).slot, 0);
    await r.supervisor.stop(1000);
  });

  test('reloads asked for while one runs are merged into one more', async () => {
    const r = recorded({ size: 1, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const first = r.supervisor.reload();
    const second = r.supervisor.reload();
    const third = r.supervisor.reload();
    assert.notEqual(first, second);
    assert.equal(second, third);
    assert.deepEqual(await Promise.all([first, second]), [
      { ok: true, replaced: 1 },
      { ok: true, replaced: 1 },
    ]);
    assert.equal(r.logs('reload started').length, 2);
    await r.supervisor.stop(1000);
  });

  test('stop during a reload ends the reload and starts nothing afterwards', async () => {
    const r = recorded({
      size: 2,
      spec: { start: forkFixture(WORKER, () => ({ FIXTURE_READY_DELAY_MS: '300' })) },
    });
    await r.supervisor.start();
    const reload = r.supervisor.reload();
    await r.waitLog('worker starting', (l) => l.spawnId === 3);
    await r.supervisor.stop(1000);
    assert.deepEqual(await reload, { ok: false, slot: 0, error: 'stopping' });
    const stopAt = r.lines.findIndex((l) => l.msg === 'stopping workers');
    await new Promise((res) => setTimeout(res, 400));
    assert.equal(r.lines.slice(stopAt).filter((l) => l.msg === 'worker starting').length, 0);
    assert.equal(r.supervisor.workers().length, 0);
    assert.equal(r.logs('reload failed; remaining workers keep serving').length, 0);
  });

  test('stop lets in-flight work finish, then every worker exits 0', async () => {
    const r = recorded({ size: 2, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    const [busy] = r.pids() as [number];
    r.tell(busy, { fixture: 'busy', ms: 500 });
    await r.waitEvent('busy', busy);
    await r.supervisor.stop(5000);
    assert.equal(r.exits.length, 2);
    assert.ok(
      r.exits.every((e) => e.info.code === 0 && e.info.reason === 'stop'),
      JSON.stringify(r.exits.map((e) => e.info)),
    );
    assert.ok(
      r.events.some((e) => e.event === 'work done' && e.pid === busy),
      'the work finished first',
    );
    assert.equal(r.supervisor.workers().length, 0);
  });

  test('a worker that does not finish when retired is killed at the deadline', async () => {
    const r = recorded({
      size: 1,
      spec: { start: forkFixture(WORKER, () => ({ FIXTURE_IGNORE_RETIRE: '1' })) },
      killMarginMs: 200,
    });
    await r.supervisor.start();
    await r.supervisor.stop(300);
    assert.equal(r.exits[0]!.info.signal, 'SIGKILL');
    assert.equal(r.logs('worker did not finish in time; killing it').length, 1);
  });

  test('a worker not ready in time is killed and retried', async () => {
    const r = recorded({
      size: 1,
      spec: { start: forkFixture(WORKER, () => ({ FIXTURE_READY_DELAY_MS: '60000' })) },
      readyTimeoutMs: 400,
      backoff: { initialMs: 20 },
    });
    void r.supervisor.start();
    await r.waitLog('worker not ready in time');
    const exit = await r.waitLog('worker exited');
    assert.equal(exit.reason, 'not ready');
    assert.equal(exit.signal, 'SIGKILL');
    await waitUntil(() => r.logs('worker starting').length >= 2, 'a second attempt');
    await r.supervisor.stop(500);
  });

  test('broadcast reaches every worker (log reopening)', async () => {
    const r = recorded({ size: 2, spec: { start: forkFixture(WORKER) } });
    await r.supervisor.start();
    r.supervisor.broadcast({ tdw: 'reopen-log' });
    for (const pid of r.pids()) await r.waitEvent('reopened', pid);
    await r.supervisor.stop(1000);
  });

  /** test/fixtures/supervisor-host.ts in a process of its own; `lines()` is what it printed so far. */
  function startHost(env: NodeJS.ProcessEnv = {}) {
    const host = spawn(process.execPath, ['--import', 'tsx', `${FIXTURES}/supervisor-host.ts`], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, ...env },
    });
    let out = '';
    host.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const lines = () => out.split('\n').slice(0, -1);
    const workerPids = async () => {
      const first = await waitUntil(() => lines()[0], 'the host to report its workers', 15000);
      return (JSON.parse(first) as { pids: number[] }).pids;
    };
    return { host, lines, workerPids };
  }

  test('workers do not outlive a supervisor killed with SIGKILL', async () => {
    const { host, workerPids } = startHost();
    const pids = await workerPids();
    assert.equal(pids.length, 2);
    host.kill('SIGKILL');
    await waitUntil(() => pids.every((p) => !alive(p)), 'workers to exit after their supervisor died', 5000);
  });

  // Node emits no 'disconnect' when the parent dies while a handle the child sent awaits its ack
  // (supervisor/parent-lost.ts); a worker that listens would live on.
  test('workers do not outlive a supervisor killed while a socket they sent it is unacknowledged', async () => {
    const { host, lines, workerPids } = startHost({ HOST_BLOCK_ON_HANDLES: '1' });
    const pids = await workerPids();
    const sent = () => lines().filter((l) => l.startsWith('sent-handle ')).length;
    await waitUntil(() => sent() === 2, 'both workers to send their socket', 15000);
    host.kill('SIGKILL');
    await waitUntil(() => pids.every((p) => !alive(p)), 'workers to exit after their supervisor died', 10000);
  });
});

describe('supervisor with other programs', () => {
  test('TCP readiness for a program that knows nothing of us, and restart after it dies', async () => {
    const port = await freePort();
    const code = `require('net').createServer().listen(${port}, '127.0.0.1')`;
    const r = recorded({
      size: 1,
      spec: {
        start: () => spawn(process.execPath, ['-e', code], { stdio: 'ignore' }),
        readiness: readyOnTcpPort({ port, intervalMs: 20 }),
      },
      hangTimeoutMs: 200, // no heartbeats without IPC: must not count as a hang
    });
    await r.supervisor.start();
    const [first] = r.pids() as [number];
    await new Promise((res) => setTimeout(res, 500));
    assert.deepEqual(r.pids(), [first], 'no heartbeat is expected from a program without IPC');
    process.kill(first, 'SIGTERM');
    await waitUntil(() => r.readies.length === 2, 'the restarted program to accept on its port');
    await r.supervisor.stop(1000);
  });

  test('a command that cannot be spawned is logged and retried with backoff, never thrown', async () => {
    const r = recorded({
      size: 1,
      spec: {
        start: () => spawn('/nonexistent/backend', [], { stdio: 'ignore' }),
        readiness: readyOnSpawn(),
      },
      backoff: { initialMs: 20, maxMs: 80 },
    });
    void r.supervisor.start();
    await waitUntil(() => r.logs('worker could not be spawned').length >= 3, 'three attempts');
    assert.deepEqual(new Set(r.logs('worker exited').map((l) => l.reason)), new Set(['crashed']));
    await r.supervisor.stop(200);
  });

  test('memory of the supervisor stays flat over hundreds of restarts', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const r = recorded({
      size: 2,
      spec: {
        start: () => spawn('/bin/sh', ['-c', 'exit 3'], { stdio: 'ignore' }),
        readiness: readyOnSpawn(),
      },
      backoff: { initialMs: 0, maxMs: 1 },
    });
    r.lines.length = 0;
    void r.supervisor.start();
    const heapAfter = async (exits: number) => {
      await waitUntil(() => r.exits.length >= exits, `${exits} restarts`, 20000);
      // Drop what the test itself records, then measure what the supervisor keeps.
      r.exits.length = 0;
      r.readies.length = 0;
      r.order.length = 0;
      r.lines.length = 0;
      gc();
      gc();
      return process.memoryUsage().heapUsed;
    };
    const base = await heapAfter(100);
    const later = await heapAfter(300);
    await r.supervisor.stop(200);
    assert.equal(r.supervisor.workers().length, 0);
    // A leaked worker record is ~5 KB: 200 of them would add ~1 MB; without a leak growth is ~0.1 MB.
    assert.ok(later - base < 500_000, `heap grew by ${later - base} bytes over 300 restarts`);
  });
});

function cpuSecondsWithChildren(): number {
  // utime, stime, cutime, cstime of this process (children count once reaped), in clock ticks.
  const fields = readFileSync('/proc/self/stat', 'latin1').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12]) + Number(fields[13]) + Number(fields[14])) / 100;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function freePort(): Promise<number> {
  const s = createServer().listen(0, '127.0.0.1');
  await new Promise((res) => s.once('listening', res));
  const { port } = s.address() as { port: number };
  await new Promise((res) => s.close(res));
  return port;
}
