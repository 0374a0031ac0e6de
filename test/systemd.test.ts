// systemd: sd_notify (READY, RELOADING + MONOTONIC_USEC, STOPPING, STATUS, WATCHDOG) seen by a
// receiver on a real unix datagram socket given as NOTIFY_SOCKET, and socket activation through
// systemd-socket-activate, for the daemon, the proxy, the gateway and the worker command.
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type AddressInfo, createServer, type Server, type Socket } from 'node:net';
import { describe, test } from 'node:test';
import { systemdNotifier } from '../src/systemd/notify.js';
import { describeSocketFd } from '../src/systemd/socket-fd.js';
import { BIN, DaemonProcess, EXAMPLES, FIXTURES, readyPids, runCli } from './helpers/daemon.js';
import { BUSINESS, gatewayClient, type NatsServer, startNats } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { until } from './helpers/message.js';
import { connect, readLine, roundTrip } from './helpers/net.js';
import { listen, type TestServer } from './helpers/proxy.js';
import { freePort, hasProgram, NotifyReceiver } from './helpers/systemd.js';

checkNoLeftoverProcesses();

const missing = ['python3', 'systemd-notify', 'systemd-socket-activate'].filter((p) => !hasProgram(p));
const skip =
  missing.length > 0 ? `needs ${missing.join(', ')} (scripts/install-system-deps.sh installs them)` : false;

const ECHO = `${EXAMPLES}/echo.js`;
const COMMANDS = `${FIXTURES}/commands.mjs`;

function environOf(pid: number): string[] {
  return readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0');
}

function assertNoSystemdVariables(pid: number, what: string): void {
  const names = [
    'NOTIFY_SOCKET',
    'WATCHDOG_USEC',
    'WATCHDOG_PID',
    'LISTEN_FDS',
    'LISTEN_PID',
    'LISTEN_FDNAMES',
  ];
  const inherited = environOf(pid).filter((kv) => names.some((n) => kv.startsWith(`${n}=`)));
  assert.deepEqual(inherited, [], `${what} (pid ${pid}) inherited systemd's variables`);
}

function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

async function stopAndExpectStopping(d: DaemonProcess, rx: NotifyReceiver): Promise<void> {
  const before = rx.notices.length;
  d.signal('SIGTERM');
  await rx.waitFor(['STOPPING=1'], 15_000, before);
  const r = await d.waitForExit(20_000);
  assert.deepEqual(r, { code: 0, signal: null }, d.stderr);
}

/**
 * SIGHUP: RELOADING=1 with MONOTONIC_USEC read between our SIGHUP and the datagram's arrival
 * (the same CLOCK_MONOTONIC: libuv's hrtime and the receiver's clock_gettime), then READY=1.
 */
async function reloadAndExpectNotices(d: DaemonProcess, rx: NotifyReceiver): Promise<void> {
  const before = rx.notices.length;
  const sent = monotonicUsec();
  d.signal('SIGHUP');
  const reloading = await rx.waitFor(['RELOADING=1'], 15_000, before);
  const mono = reloading.fields.find((f) => f.startsWith('MONOTONIC_USEC='));
  assert.ok(mono, `RELOADING=1 comes with MONOTONIC_USEC: ${reloading.fields.join(' ')}`);
  const usec = BigInt(mono.slice('MONOTONIC_USEC='.length));
  assert.ok(
    usec >= sent && usec <= BigInt(reloading.monoUsec),
    `MONOTONIC_USEC ${usec} in [${sent}, ${reloading.monoUsec}]`,
  );
  const at = rx.notices.indexOf(reloading);
  const ready = await rx.waitFor(['READY=1'], 30_000, at + 1);
  assert.ok(rx.notices.indexOf(ready) > at, 'READY=1 after RELOADING=1');
}

/** A test with a receiver of its own, killed before the file's leftover check runs. */
function notifyTest(name: string, body: (rx: NotifyReceiver) => Promise<void>, socket?: string): void {
  test(name, async () => {
    const rx = await NotifyReceiver.start(socket);
    try {
      await body(rx);
    } finally {
      await rx.close();
    }
  });
}

describe('sd_notify', { skip }, () => {
  notifyTest(
    'daemon IOMP -c 2: READY with STATUS, WATCHDOG, RELOADING + MONOTONIC_USEC then READY on SIGHUP, STOPPING; workers do not inherit the variables',
    async (rx) => {
      const from = rx.notices.length;
      const d = new DaemonProcess(['-m', 'IOMP', '-c', '2', '-l', '127.0.0.1:0', '-s', ECHO], {
        env: { NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '2000000' },
      });
      try {
        const listening = await d.waitForMsg('listening');
        const ready = await rx.waitFor(['READY=1'], 15_000, from);
        assert.ok(ready.fields.includes(`STATUS=serving on ${listening.address}`), ready.fields.join(' '));
        assert.ok(ready.fields.includes(`MAINPID=${d.pid}`), ready.fields.join(' '));
        // Root may send with another pid (SCM_CREDENTIALS): systemd-notify --pid= then speaks as the
        // daemon, and systemd's default NotifyAccess=main takes it.
        if (process.getuid?.() === 0) assert.equal(ready.pid, d.pid, 'the datagram carries the daemon pid');
        await rx.waitFor(['WATCHDOG=1'], 15_000, rx.notices.indexOf(ready) + 1);
        for (const pid of readyPids(d)) assertNoSystemdVariables(pid, 'a worker');
        await reloadAndExpectNotices(d, rx);
        await stopAndExpectStopping(d, rx);
      } finally {
        await d.kill();
      }
    },
  );

  notifyTest(
    'daemon IOMP -c 1 with a NOTIFY_SOCKET path (not abstract): READY, STOPPING',
    async (rx) => {
      const d = new DaemonProcess(['-l', '127.0.0.1:0', '-s', ECHO], { env: { NOTIFY_SOCKET: rx.socket } });
      try {
        await rx.waitFor(['READY=1']);
        await stopAndExpectStopping(d, rx);
      } finally {
        await d.kill();
      }
    },
    `/tmp/tcpdaemon-notify-${process.pid}.sock`,
  );

  notifyTest(
    'watchdog: a worker whose loop is blocked holds the ping back (STATUS says why) until the supervisor replaces it',
    async (rx) => {
      const d = new DaemonProcess(
        ['-m', 'IOMP', '-c', '2', '-l', '127.0.0.1:0', '-s', COMMANDS, '--hang-timeout', '8'],
        { env: { NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '2000000' } },
      );
      try {
        const { address } = await d.waitForMsg('listening');
        const port = Number(String(address).split(':')[1]);
        const from = rx.notices.length;
        await rx.waitFor(['WATCHDOG=1'], 15_000, from);
        const s = await connect(port);
        s.write('freeze\n');
        assert.equal(await readLine(s), 'frozen');
        const held = await d.waitForMsg(
          'systemd watchdog: ping held back (systemd acts when WatchdogSec= passes)',
          20_000,
        );
        assert.match(String(held.reason), /^worker \d+ \(pid \d+\) sent no heartbeat for \d+ s$/);
        const unhealthy = await rx.waitFor([`STATUS=unhealthy: ${held.reason}`], 15_000, from);
        await d.waitForMsg('worker hung; killing it', 20_000);
        s.destroy();
        await d.waitForMsg('systemd watchdog: healthy again, pinging', 20_000);
        const at = rx.notices.indexOf(unhealthy);
        const healthy = await rx.waitFor([`STATUS=serving on ${address}`], 15_000, at + 1);
        const between = rx.notices.slice(at + 1, rx.notices.indexOf(healthy));
        assert.ok(
          !between.some((n) => n.fields.includes('WATCHDOG=1')),
          `no ping while unhealthy: ${JSON.stringify(between)}`,
        );
        await rx.waitFor(['WATCHDOG=1'], 15_000, rx.notices.indexOf(healthy));
        await stopAndExpectStopping(d, rx);
      } finally {
        await d.kill();
      }
    },
  );

  notifyTest('proxy: READY, RELOADING then READY, STOPPING', async (rx) => {
    const backend = await listen((s) => s.pipe(s));
    const d = new DaemonProcess(['proxy', '-l', '127.0.0.1:0', '--backend', `127.0.0.1:${backend.port}`], {
      env: { NOTIFY_SOCKET: rx.socket },
    });
    try {
      const from = rx.notices.length;
      await d.waitForMsg('proxy ready');
      const ready = await rx.waitFor(['READY=1'], 15_000, from);
      assert.ok(
        ready.fields.some((f) => f.startsWith('STATUS=serving on 127.0.0.1:')),
        ready.fields.join(' '),
      );
      await reloadAndExpectNotices(d, rx);
      await stopAndExpectStopping(d, rx);
    } finally {
      await d.kill();
      await backend.close();
    }
  });

  notifyTest('gateway: READY once its processes are up, RELOADING then READY, STOPPING', async (rx) => {
    const d = new DaemonProcess(['gateway', '-l', '127.0.0.1:0', '-s', BUSINESS], {
      env: { NOTIFY_SOCKET: rx.socket },
    });
    try {
      const from = rx.notices.length;
      const { address } = await d.waitForMsg('listening');
      await rx.waitFor(['READY=1', `STATUS=serving on ${address}`], 15_000, from);
      await reloadAndExpectNotices(d, rx);
      await stopAndExpectStopping(d, rx);
    } finally {
      await d.kill();
    }
  });

  notifyTest('worker command (NATS): READY with STATUS=workers ready, STOPPING', async (rx) => {
    const nats: NatsServer = await startNats();
    const d = new DaemonProcess(
      ['worker', '-s', BUSINESS, '--queue', nats.url, '--queue-prefix', `sd${process.pid}`],
      {
        env: { NOTIFY_SOCKET: rx.socket },
      },
    );
    try {
      const from = rx.notices.length;
      await d.waitForMsg('workers ready');
      await rx.waitFor(['READY=1', 'STATUS=workers ready'], 15_000, from);
      await reloadAndExpectNotices(d, rx);
      await stopAndExpectStopping(d, rx);
    } finally {
      await d.kill();
      await nats.stop();
    }
  });

  notifyTest(
    'without systemd-notify: one log line, and the daemon serves, reloads and stops as usual',
    async (rx) => {
      const d = new DaemonProcess(['-l', '127.0.0.1:0', '-s', ECHO], {
        command: [process.execPath, BIN],
        env: { NOTIFY_SOCKET: rx.socket, WATCHDOG_USEC: '1000000', PATH: '/nonexistent' },
      });
      try {
        const { address } = await d.waitForMsg('listening');
        const line = await d.waitForLog((l) =>
          /NOTIFY_SOCKET is set but systemd-notify cannot run/.test(l.msg ?? ''),
        );
        assert.equal(line.err, 'ENOENT');
        const s = await connect(Number(String(address).split(':')[1]));
        assert.equal(await roundTrip(s, 'still serving'), 'still serving');
        s.destroy();
        d.signal('SIGHUP');
        await d.waitForMsg('handler reloaded; new connections use it');
        d.signal('SIGTERM');
        assert.deepEqual(await d.waitForExit(), { code: 0, signal: null });
        assert.equal(d.logs.filter((l) => /systemd-notify/.test(l.msg ?? '')).length, 1, 'one line only');
      } finally {
        await d.kill();
      }
    },
  );
});

describe('sd_notify environment', () => {
  test('the variables are removed; the watchdog is ours only when WATCHDOG_PID is unset or our pid', () => {
    const env: NodeJS.ProcessEnv = {
      NOTIFY_SOCKET: '@x',
      WATCHDOG_USEC: '3000000',
      WATCHDOG_PID: String(process.pid),
    };
    assert.equal(systemdNotifier(env)?.watchdogMs, 1500);
    assert.deepEqual(env, {});
    assert.equal(
      systemdNotifier({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '3000000', WATCHDOG_PID: '1' })?.watchdogMs,
      undefined,
    );
    assert.equal(systemdNotifier({ NOTIFY_SOCKET: '@x' })?.watchdogMs, undefined);
    assert.equal(systemdNotifier({ WATCHDOG_USEC: '3000000' }), undefined);
  });
});

/** `systemd-socket-activate -l 127.0.0.1:PORT [--fdname=NAME] bin/tcpdaemon ARGS`. */
async function activated(args: string[], fdname?: string): Promise<{ d: DaemonProcess; port: number }> {
  const port = await freePort();
  const d = new DaemonProcess(args, {
    command: [
      'systemd-socket-activate',
      '-l',
      `127.0.0.1:${port}`,
      ...(fdname ? [`--fdname=${fdname}`] : []),
      BIN,
    ],
  });
  // It listens at once and starts the daemon when the first connection comes.
  await until(
    () => d.stderr.includes('Listening on') || d.child.exitCode !== null,
    10_000,
    'socket-activate listening',
  );
  assert.ok(d.stderr.includes('Listening on'), d.stderr);
  return { d, port };
}

describe('socket activation', { skip }, () => {
  for (const [model, workers] of [
    ['IOMP', 1],
    ['IOMP', 2],
    ['LF', 2],
    ['TLF', 2],
  ] as const) {
    test(`daemon -m ${model} -c ${workers} -l systemd: serves on the passed socket; the connection that woke it is served`, async () => {
      const { d, port } = await activated(['-m', model, '-c', String(workers), '-l', 'systemd', '-s', ECHO]);
      try {
        const first = await connect(port);
        const listening = await d.waitForMsg('listening');
        assert.equal(listening.address, `127.0.0.1:${port}`);
        assert.equal(listening.systemdFd, 3);
        assert.equal(await roundTrip(first, 'woke it'), 'woke it');
        const second = await connect(port);
        assert.equal(await roundTrip(second, 'and again'), 'and again');
        first.destroy();
        second.destroy();
        // TLF's workers are threads of one helper process: no environment of their own to read.
        if (model !== 'TLF') for (const pid of readyPids(d)) assertNoSystemdVariables(pid, 'a worker');
        d.signal('SIGTERM');
        assert.deepEqual(await d.waitForExit(), { code: 0, signal: null }, d.stderr);
      } finally {
        await d.kill();
      }
    });
  }

  test('daemon -l ADDRESS takes the passed socket listening on that address', async () => {
    const port = await freePort();
    const d = new DaemonProcess(['-l', `127.0.0.1:${port}`, '-s', ECHO], {
      command: ['systemd-socket-activate', '-l', `127.0.0.1:${port}`, BIN],
    });
    try {
      await until(() => d.stderr.includes('Listening on'), 10_000, 'socket-activate listening');
      const s = await connect(port);
      const listening = await d.waitForMsg('listening');
      assert.equal(listening.systemdFd, 3);
      assert.equal(await roundTrip(s, 'matched'), 'matched');
      s.destroy();
      d.signal('SIGTERM');
      assert.deepEqual(await d.waitForExit(), { code: 0, signal: null }, d.stderr);
    } finally {
      await d.kill();
    }
  });

  test('proxy -l systemd:NAME takes the socket named NAME (LISTEN_FDNAMES)', async () => {
    const backend: TestServer = await listen((s) => s.pipe(s));
    const { d, port } = await activated(
      ['proxy', '-l', 'systemd:front', '--backend', `127.0.0.1:${backend.port}`],
      'front',
    );
    try {
      const s = await connect(port);
      const listening = await d.waitForMsg('listening');
      assert.equal(listening.systemdFd, 3);
      assert.equal(await roundTrip(s, 'through the proxy'), 'through the proxy');
      s.destroy();
      d.signal('SIGTERM');
      assert.deepEqual(await d.waitForExit(), { code: 0, signal: null }, d.stderr);
    } finally {
      await d.kill();
      await backend.close();
    }
  });

  test('gateway -l systemd: clients reach the business workers through the passed socket', async () => {
    const { d, port } = await activated(['gateway', '-l', 'systemd', '-s', BUSINESS]);
    try {
      const wake = await connect(port);
      const listening = await d.waitForMsg('listening', 30_000);
      assert.equal(listening.systemdFd, 3);
      assert.equal(listening.address, `127.0.0.1:${port}`);
      const c = await gatewayClient(port);
      try {
        assert.equal((await c.client.request(1, 'via systemd')).toString(), 'via systemd');
      } finally {
        await c.close();
      }
      wake.destroy();
      d.signal('SIGTERM');
      assert.deepEqual(await d.waitForExit(), { code: 0, signal: null }, d.stderr);
    } finally {
      await d.kill();
    }
  });

  test('-l systemd:NAME with no socket of that name, a datagram socket, none passed, or passed to another pid: a clear error, exit 1', async () => {
    const { d, port } = await activated(['-l', 'systemd:back', '-s', ECHO], 'front');
    try {
      const s = await connect(port);
      s.on('error', () => undefined);
      const r = await d.waitForExit();
      assert.equal(r.code, 1);
      assert.match(
        d.stderr,
        /-l systemd:back: no passed socket is named 'back' \(passed: fd 3 front=127\.0\.0\.1:\d+\)/,
      );
      s.destroy();
    } finally {
      await d.kill();
    }
    // A datagram socket (ListenDatagram=): named as what it is not.
    const udpPort = await freePort();
    const udp = new DaemonProcess(['-l', 'systemd', '-s', ECHO], {
      command: ['systemd-socket-activate', '-d', '-l', `127.0.0.1:${udpPort}`, BIN],
    });
    const sender = createSocket('udp4');
    try {
      await until(() => udp.stderr.includes('Listening on'), 10_000, 'socket-activate listening');
      // It starts the program when the first datagram comes.
      sender.send('wake', udpPort, '127.0.0.1');
      const r = await udp.waitForExit();
      assert.equal(r.code, 1);
      assert.match(
        udp.stderr,
        /-l systemd: passed fd 3 \(unknown\) is not a TCP or unix stream socket \(a UDP socket\)/,
      );
    } finally {
      sender.close();
      await udp.kill();
    }
    const none = await runCli(['-l', 'systemd', '-s', ECHO]);
    assert.equal(none.code, 1);
    assert.match(none.stderr, /-l systemd: no socket was passed by systemd \(LISTEN_FDS is not set\)/);
    // Sockets meant for another process (LISTEN_PID) are not ours to take.
    const other = await runCli(['-l', 'systemd', '-s', ECHO], { env: { LISTEN_FDS: '1', LISTEN_PID: '1' } });
    assert.equal(other.code, 1);
    assert.match(
      other.stderr,
      /no socket was passed by systemd \(LISTEN_PID=1 is not this process \(\d+\)\)/,
    );
  });
});

describe('passed socket descriptors, read from /proc', () => {
  const fdOf = (x: Server | Socket) => (x as unknown as { _handle: { fd: number } })._handle.fd;

  test('a listening TCP socket (IPv4, IPv6), a unix one, and a connected one', async () => {
    const v4 = createServer().listen(0, '127.0.0.1');
    const v6 = createServer().listen(0, '::1');
    const path = `/tmp/tcpdaemon-fd-${process.pid}-${Date.now()}.sock`;
    const unix = createServer().listen(path);
    await Promise.all([once(v4, 'listening'), once(v6, 'listening'), once(unix, 'listening')]);
    const client = await connect((v4.address() as AddressInfo).port);
    try {
      assert.deepEqual(describeSocketFd(fdOf(v4), 'a').address, {
        kind: 'tcp',
        host: '127.0.0.1',
        port: (v4.address() as AddressInfo).port,
      });
      assert.deepEqual(describeSocketFd(fdOf(v6), 'b').address, {
        kind: 'tcp',
        host: '::1',
        port: (v6.address() as AddressInfo).port,
      });
      assert.deepEqual(describeSocketFd(fdOf(unix), 'c').address, { kind: 'unix', path });
      const connected = describeSocketFd(fdOf(client), 'd');
      assert.equal(connected.address, undefined);
      assert.equal(connected.problem, 'a TCP socket that is not listening');
      assert.equal(describeSocketFd(0, 'e').address, undefined, 'stdin is no socket here');
    } finally {
      client.destroy();
      await Promise.all([v4, v6, unix].map((s) => new Promise((r) => s.close(r))));
    }
  });
});
