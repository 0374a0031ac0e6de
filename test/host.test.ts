// The one host (issue 13 item 3, src/platform/host.ts): the files that must not outlive a daemon,
// the graceful stop's order, and the signals, as every command gets them. The commands' own runs
// are in test/signals.test.ts, test/platform.test.ts (gateway), test/pid-file.test.ts, test/status.test.ts.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import type { Announcer } from '../src/fleet/announcer.js';
import { attachSignals, HostFiles, type HostTarget, stopInOrder } from '../src/platform/host.js';
import type { DaemonSignal, SignalInbox } from '../src/signals.js';
import { readStatus } from '../src/status.js';
import type { ServiceManager } from '../src/systemd/notify.js';
import { captureLogs } from './helpers/message.js';
import { tempDir } from './helpers/temp-dir.js';

const dir = tempDir('tcpdaemon-host-');
after(() => rmSync(dir, { recursive: true, force: true }));

const report = () => ({
  pid: process.pid,
  version: 'test',
  node: process.version,
  model: 'IOMP -c 1',
  address: '127.0.0.1:1',
  handler: 'h',
  state: 'serving' as const,
  startedAt: new Date().toISOString(),
  uptimeS: 0,
  connections: 0,
  reloads: 0,
});

describe('HostFiles', () => {
  test('the pid file and the status socket are made, answered, and removed with the leftovers, once, in order', async () => {
    const log = captureLogs();
    const files = new HostFiles(log.logger);
    const pidFile = join(dir, 'a.pid');
    const socket = join(dir, 'a.sock');
    const removed: string[] = [];
    files.claimPidFile(pidFile);
    files.onRemove(() => removed.push('snapshot'));
    files.onRemove(() => removed.push('socket dir'));
    await files.serveStatus(socket, report);
    assert.equal(readFileSync(pidFile, 'utf8'), `${process.pid}\n`);
    assert.equal((await readStatus(socket)).state, 'serving');
    files.removeNow();
    files.removeNow();
    assert.equal(existsSync(pidFile), false);
    assert.equal(existsSync(socket), false);
    assert.deepEqual(removed, ['snapshot', 'socket dir'], 'each once, in order');
  });

  test("a live process's pid file stops the start and stays; nothing given, nothing made", async () => {
    const log = captureLogs();
    const pidFile = join(dir, 'b.pid');
    writeFileSync(pidFile, `${process.ppid}\n`); // our parent: alive
    const files = new HostFiles(log.logger);
    assert.throws(() => files.claimPidFile(pidFile), { code: 'TD_ERR_PID_FILE' });
    await files.close();
    assert.equal(readFileSync(pidFile, 'utf8'), `${process.ppid}\n`, 'not ours: left as it is');
    const none = new HostFiles(log.logger);
    none.claimPidFile(undefined);
    await none.serveStatus(undefined, report);
    await none.close();
  });
});

describe('stopInOrder', () => {
  function plan(steps: string[], over: Partial<Parameters<typeof stopInOrder>[0]> = {}) {
    const log = captureLogs();
    const files = new HostFiles(log.logger);
    files.onRemove(() => steps.push('files'));
    const announcer = {
      withdraw: async () => void steps.push('withdraw'),
      close: async () => void steps.push('announcer closed'),
    } as unknown as Announcer;
    return {
      log,
      plan: {
        logger: log.logger,
        announcer,
        markStopping: () => steps.push('not ready'),
        listener: {
          close: (done: () => void) => {
            steps.push('no new connections');
            done();
          },
        },
        drainDelayS: 0,
        shutdownTimeoutS: 3,
        drain: async (graceMs: number) => void steps.push(`drain ${graceMs}`),
        ops: { close: async () => void steps.push('metrics closed') },
        finish: () => steps.push('finish'),
        files,
        flush: () => steps.push('flush'),
        ...over,
      },
    };
  }

  test('withdraw, not ready, stop accepting, drain, then the route table, metrics, files, stopped', async () => {
    const steps: string[] = [];
    const { plan: p, log } = plan(steps, { stoppingFields: () => ({ connections: 2 }) });
    await stopInOrder(p);
    assert.deepEqual(steps, [
      'withdraw',
      'not ready',
      'no new connections',
      'drain 3000',
      'announcer closed',
      'metrics closed',
      'finish',
      'files',
      'flush',
    ]);
    const stopping = log.lines.find((l) => l.msg === 'stopping: no new connections');
    assert.equal(stopping?.connections, 2);
    assert.equal(stopping?.timeoutS, 3);
    assert.ok(log.lines.findIndex((l) => l.msg === 'stopped') > log.lines.indexOf(stopping!));
  });

  test('--drain-delay comes out of the drain; without a listener there is none', async () => {
    const steps: string[] = [];
    const { plan: p, log } = plan(steps, { drainDelayS: 0.05 });
    await stopInOrder(p);
    assert.ok(steps.includes('drain 2950'), steps.join(', '));
    assert.ok(
      log.lines.some((l) => l.msg === 'stop requested: not ready; still accepting for --drain-delay'),
    );
    const worker: string[] = [];
    const { plan: q, log: wlog } = plan(worker, { drainDelayS: 2, listener: undefined });
    await stopInOrder(q);
    assert.ok(worker.includes('drain 3000'), worker.join(', '));
    assert.ok(!wlog.lines.some((l) => String(l.msg).includes('--drain-delay')));
  });
});

describe('attachSignals', () => {
  function host(close: () => Promise<void> = async () => undefined) {
    const log = captureLogs();
    const calls: string[] = [];
    let deliver!: (sig: DaemonSignal) => void;
    const inbox = { attach: (h: (sig: DaemonSignal) => void) => (deliver = h) } as unknown as SignalInbox;
    const target: HostTarget = {
      logger: log.logger,
      close: async () => {
        calls.push('close');
        await close();
      },
      reload: async () => void calls.push('reload'),
      reopenLogs: () => calls.push('reopen'),
      removeFiles: () => calls.push('remove files'),
      flush: () => calls.push('flush'),
    };
    const service: ServiceManager = {
      watch: () => undefined,
      reloading: async (run) => {
        calls.push('RELOADING');
        return run();
      },
      stopping: () => calls.push('STOPPING'),
    };
    const exits: number[] = [];
    let exited!: () => void;
    const exitedOnce = new Promise<void>((r) => {
      exited = r;
    });
    attachSignals(
      target,
      inbox,
      (code) => {
        exits.push(code);
        exited();
      },
      service,
    );
    return { log, calls, exits, exitedOnce, send: (sig: DaemonSignal) => deliver(sig) };
  }

  test('USR1 reopens, HUP reloads through the service manager, TERM stops and exits 0, HUP is ignored while stopping', async () => {
    let release!: () => void;
    const h = host(() => new Promise<void>((r) => (release = r)));
    h.send('SIGUSR1');
    h.send('SIGHUP');
    await new Promise((r) => setImmediate(r));
    h.send('SIGTERM');
    h.send('SIGHUP');
    release();
    await h.exitedOnce;
    assert.deepEqual(h.calls, ['reopen', 'RELOADING', 'reload', 'STOPPING', 'close']);
    assert.deepEqual(h.exits, [0]);
    assert.ok(h.log.lines.some((l) => l.msg === 'log file reopened (SIGUSR1)'));
    assert.equal(h.log.lines.find((l) => l.msg === 'stop requested')?.signal, 'SIGTERM');
  });

  test('a second stop signal removes the files and exits 1 at once; a failed stop exits 1', async () => {
    const h = host(() => new Promise<void>(() => undefined));
    h.send('SIGINT');
    h.send('SIGTERM');
    await h.exitedOnce;
    assert.deepEqual(h.exits, [1]);
    assert.deepEqual(h.calls, ['STOPPING', 'close', 'remove files', 'flush']);
    assert.ok(h.log.lines.some((l) => l.msg === 'second stop signal: exiting now'));
    const f = host(async () => {
      throw new Error('cannot stop');
    });
    f.send('SIGTERM');
    await f.exitedOnce;
    assert.deepEqual(f.exits, [1]);
    assert.ok(f.log.lines.some((l) => l.msg === 'stop failed'));
  });
});
