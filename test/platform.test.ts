// One platform under every command: the same shared flags, "did you mean", old spellings refused
// with the new name, --config with the library's keys, help generated from the declarations.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { AGENT_COMMAND, validateAgentConfig } from '../src/agent/params.js';
import { ParamError } from '../src/errors.js';
import {
  GATEWAY_COMMAND,
  type GatewayParams,
  validateGatewayParams,
  WORKER_COMMAND,
} from '../src/gateway/params.js';
import { MessageClient } from '../src/message/client.js';
import { DAEMON_COMMAND, validateParams } from '../src/params.js';
import { parseCommandLine } from '../src/platform/command-line.js';
import type { CommandSpec } from '../src/platform/fields.js';
import { SHARED_FIELDS } from '../src/platform/shared-fields.js';
import { renderUsage } from '../src/platform/usage.js';
import { PROXY_COMMAND, validateProxyConfig } from '../src/proxy/config.js';
import { DaemonProcess, EXAMPLES, runCli, startDaemon, stopCleanly } from './helpers/daemon.js';
import { BUSINESS, gatewayArgs, gatewayClient } from './helpers/gateway.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes } from './helpers/net.js';
import { taggedEcho } from './helpers/proxy.js';
import { tempDir } from './helpers/temp-dir.js';

after(checkNoLeftoverProcesses);

const tmp = tempDir('tcpd-platform-');
const echo = join(EXAMPLES, 'echo.js');

interface CommandCase {
  spec: CommandSpec;
  base: string[];
  check(input: Record<string, unknown>): void;
}

const COMMANDS: CommandCase[] = [
  { spec: DAEMON_COMMAND, base: ['-s', echo], check: (i) => void validateParams(i) },
  { spec: PROXY_COMMAND, base: ['--backend', '127.0.0.1:1'], check: (i) => void validateProxyConfig(i) },
  {
    spec: GATEWAY_COMMAND,
    base: ['-s', BUSINESS],
    check: (i) => void validateGatewayParams(i as GatewayParams, 'gateway'),
  },
  {
    spec: WORKER_COMMAND,
    base: ['-s', BUSINESS, '--queue', 'nats://127.0.0.1:4222'],
    check: (i) => void validateGatewayParams(i as GatewayParams, 'worker'),
  },
  { spec: AGENT_COMMAND, base: ['--upstream', '127.0.0.1:1'], check: (i) => void validateAgentConfig(i) },
];

/** A valid value for each shared flag (a switch has none); --daemon-level needs --logfile beside it. */
const SAMPLES: Record<string, string[]> = {
  listen: ['-l', '127.0.0.1:0'],
  workers: ['-c', '2'],
  timeout: ['--timeout', '1.5'],
  maxConnections: ['--max-connections', '100'],
  maxConnsPerIp: ['--max-conns-per-ip', '8'],
  maxConnRatePerIp: ['--max-conn-rate-per-ip', '2.5'],
  shutdownTimeout: ['--shutdown-timeout', '3'],
  hangTimeout: ['--hang-timeout', '30'],
  maxMemory: ['--max-memory', '512'],
  restartDelay: ['--restart-delay', '0.5'],
  restartDelayMax: ['--restart-delay-max', '5'],
  params: ['--param', 'colour=blue', '--param', 'size=3'],
  logfile: ['--logfile', join(tmp, 'x.log')],
  loglevel: ['--loglevel', 'warn'],
  logFormat: ['--log-format', 'pretty'],
  workPath: ['--work-path', tmp],
  daemonLevel: ['--daemon-level', '--logfile', join(tmp, 'x.log')],
  pidFile: ['--pid-file', join(tmp, 'x.pid')],
  statusSocket: ['--status-socket', join(tmp, 'x.sock')],
  metrics: ['--metrics', '127.0.0.1:9100'],
  drainDelay: ['--drain-delay', '2'],
  // Checked for shape here; the files are read when the command starts (test/tls.test.ts).
  tlsCert: ['--tls-cert', join(tmp, 'a.crt'), '--tls-key', join(tmp, 'a.key')],
  tlsKey: ['--tls-cert', join(tmp, 'a.crt'), '--tls-key', join(tmp, 'a.key')],
  tlsCa: ['--tls-cert', join(tmp, 'a.crt'), '--tls-ca', join(tmp, 'ca.crt'), '--tls-client-auth', 'require'],
  tlsClientAuth: [
    '--tls-cert',
    join(tmp, 'a.crt'),
    '--tls-ca',
    join(tmp, 'ca.crt'),
    '--tls-client-auth',
    'request',
  ],
  tlsAlpn: ['--tls-cert', join(tmp, 'a.crt'), '--tls-alpn', 'h2,echo'],
  tlsHandshakeTimeout: ['--tls-cert', join(tmp, 'a.crt'), '--tls-handshake-timeout', '2.5'],
  // Connects only when the command starts (test/fleet-announce.test.ts).
  announce: ['--announce', 'svc', '--discovery', 'nats://127.0.0.1:4222'],
  discovery: ['--announce', 'svc', '--discovery', 'nats://127.0.0.1:4222,nats://127.0.0.1:4223'],
  advertise: ['--announce', 'svc', '--discovery', 'nats://127.0.0.1:4222', '--advertise', '10.0.0.1:80'],
  announceWeight: ['--announce', 'svc', '--discovery', 'nats://127.0.0.1:4222', '--announce-weight', '5'],
  announceVersion: ['--announce', 'svc', '--discovery', 'nats://127.0.0.1:4222', '--announce-version', 'v2'],
  announceTtl: ['--announce', 'svc', '--discovery', 'nats://127.0.0.1:4222', '--announce-ttl', '30'],
};

/** Fields of the route table: `tcpdaemon worker` listens nowhere and refuses them. */
const ANNOUNCE_KEYS = new Set([
  'announce',
  'discovery',
  'advertise',
  'announceWeight',
  'announceVersion',
  'announceTtl',
]);

describe('every command accepts every shared flag, with the same key', () => {
  for (const cmd of COMMANDS) {
    const listens = cmd.spec !== WORKER_COMMAND;
    for (const field of SHARED_FIELDS) {
      test(`${cmd.spec.name} ${field.flags[0]}`, () => {
        const sample = SAMPLES[field.key];
        assert.ok(sample, `a sample for ${field.key}`);
        const argv = [
          ...(listens && field.key !== 'listen' ? ['-l', '127.0.0.1:0'] : []),
          ...cmd.base,
          ...sample,
        ];
        if (!listens && field.key === 'listen') {
          assert.throws(() => cmd.check(run(cmd.spec, argv)), /tcpdaemon worker takes no -l/);
          return;
        }
        if (!listens && (field.key === 'maxConnsPerIp' || field.key === 'maxConnRatePerIp')) {
          assert.throws(
            () => cmd.check(run(cmd.spec, argv)),
            /tcpdaemon worker takes no --max-conns-per-ip or --max-conn-rate-per-ip/,
          );
          return;
        }
        if (!listens && field.key.startsWith('tls')) {
          assert.throws(() => cmd.check(run(cmd.spec, argv)), /tcpdaemon worker takes no --tls-\* flags/);
          return;
        }
        if (!listens && ANNOUNCE_KEYS.has(field.key)) {
          assert.throws(() => cmd.check(run(cmd.spec, argv)), /tcpdaemon worker takes no --announce/);
          return;
        }
        const input = run(cmd.spec, argv);
        assert.notEqual(input[field.key], undefined, `${field.key} set`);
        cmd.check(input);
      });
    }
    test(`${cmd.spec.name}: --loglevel-LEVEL is --loglevel LEVEL`, () => {
      const input = run(cmd.spec, [
        ...(listens ? ['-l', '127.0.0.1:0'] : []),
        ...cmd.base,
        '--loglevel-error',
      ]);
      assert.equal(input.loglevel, 'error');
    });
    test(`${cmd.spec.name}: help lists every flag it declares`, () => {
      const help = renderUsage(cmd.spec);
      for (const field of cmd.spec.fields) {
        if (field.configOnly) assert.ok(help.includes(field.key), `${field.key} named as a config key`);
        else
          for (const flag of field.flags)
            assert.ok(help.includes(flag), `${flag} in the help of ${cmd.spec.name}`);
      }
      for (const f of ['--config', '--help', '--version']) assert.ok(help.includes(f));
    });
    test(`${cmd.spec.name}: an unknown flag near a known one gets "did you mean"`, () => {
      assert.throws(
        () => run(cmd.spec, [...cmd.base, '--shutdown-timout', '3']),
        (e: Error) => e instanceof ParamError && /did you mean --shutdown-timeout\?/.test(e.message),
      );
    });
  }
});

function run(spec: CommandSpec, argv: string[]): Record<string, unknown> {
  const line = parseCommandLine(spec, argv);
  assert.equal(line.kind, 'run');
  return (line as { input: Record<string, unknown> }).input;
}

describe('old spellings whose meaning moved are refused with the new name', () => {
  const cases: [string[], RegExp][] = [
    [['-l', '127.0.0.1:0', '-s', echo, '--queue', '5'], /^tcpdaemon: --queue is now --max-waiting/],
    [
      ['proxy', '-l', '127.0.0.1:0', '--backend', '127.0.0.1:1', '--workers', '2'],
      /^tcpdaemon proxy: --workers is now -c N/,
    ],
    [[...gatewayArgs('--workers', '2')], /^tcpdaemon gateway: --workers is now --business-workers N/],
    [
      [...gatewayArgs('--max-waiting', '9')],
      /^tcpdaemon gateway: --max-waiting is now --max-waiting-requests N/,
    ],
    [
      ['worker', '-s', BUSINESS, '--queue', 'nats://127.0.0.1:1', '--workers', '2'],
      /^tcpdaemon worker: --workers is now -c N/,
    ],
  ];
  for (const [argv, reason] of cases) {
    test(
      argv
        .slice(0, 1)
        .concat(argv.filter((a) => /^--(queue|workers|max-waiting)$/.test(a)))
        .join(' '),
      async () => {
        const res = await runCli(argv);
        assert.equal(res.code, 1);
        assert.match(res.stderr.split('\n')[0]!, reason);
      },
    );
  }
});

describe('--config: the library keys, in every command; flags override it', () => {
  test('gateway: a config file with the library keys serves; a flag overrides a key', async () => {
    const file = join(tmp, 'gateway.json');
    writeFileSync(
      file,
      JSON.stringify({
        listen: '127.0.0.1:1',
        business: BUSINESS,
        businessWorkers: 1,
        params: { who: 'config' },
      }),
    );
    const { daemon, port } = await startDaemon([
      'gateway',
      '--config',
      file,
      '-l',
      '127.0.0.1:0',
      '--param',
      'extra=flag',
    ]);
    const c = await gatewayClient(port);
    try {
      const reply = await c.client.request(10, Buffer.alloc(0));
      assert.deepEqual(JSON.parse(reply.toString()), { who: 'config', extra: 'flag' }, 'ctx.params merged');
    } finally {
      await c.close();
      await stopCleanly(daemon);
    }
  });
  test('gateway: an unknown key in the config is refused with the closest one', async () => {
    const file = join(tmp, 'gateway-typo.json');
    writeFileSync(file, JSON.stringify({ listen: '127.0.0.1:0', business: BUSINESS, codek: 'seq' }));
    const res = await runCli(['gateway', '--config', file]);
    assert.equal(res.code, 1);
    assert.match(res.stderr, /unknown parameter 'codek' \(did you mean 'codec'\?\)/);
  });
  test('proxy: a config file with the daemon keys of its front (status socket, pid file)', async () => {
    const backend = await taggedEcho('cfg');
    const pid = join(tmp, 'proxy.pid');
    const sock = join(tmp, 'proxy.sock');
    const file = join(tmp, 'proxy.json');
    writeFileSync(
      file,
      JSON.stringify({ backends: [`127.0.0.1:${backend.port}`], pidFile: pid, statusSocket: sock }),
    );
    const { daemon, port } = await startDaemon(['proxy', '--config', file, '-l', '127.0.0.1:0']);
    try {
      const c = await connect(port);
      c.write('x');
      assert.equal((await readBytes(c, 5)).toString(), 'cfg\nx');
      c.destroy();
      assert.equal(readFileSync(pid, 'utf8').trim(), String(daemon.pid));
      assert.equal((await runCli(['status', sock])).code, 0);
      await stopCleanly(daemon);
      assert.equal(existsSync(pid), false, 'pid file removed at exit');
    } finally {
      await daemon.kill();
      await backend.close();
    }
  });
});

test('agent: a config file with the shared keys (log file, log level, pid file, status socket) serves', async () => {
  const upstream = await startDaemon([
    '-m',
    'IOMP',
    '-l',
    '127.0.0.1:0',
    '-s',
    join(EXAMPLES, 'seq-echo.ts'),
  ]);
  const pid = join(tmp, 'agent.pid');
  const sock = join(tmp, 'agent.status');
  const log = join(tmp, 'agent.log');
  const path = join(tmp, 'agent.sock');
  const file = join(tmp, 'agent.json');
  writeFileSync(
    file,
    JSON.stringify({
      listen: path,
      upstream: `127.0.0.1:${upstream.port}`,
      pidFile: pid,
      statusSocket: sock,
      logfile: log,
      loglevel: 'debug',
    }),
  );
  const daemon = new DaemonProcess(['agent', '--config', file, '--connections', '1']);
  const client = new MessageClient({ path, codec: 'seq', reconnect: { initialDelay: 20, maxDelay: 200 } });
  try {
    await client.connect();
    assert.equal((await client.request(1, 'via agent')).toString(), 'via agent');
    assert.equal(readFileSync(pid, 'utf8').trim(), String(daemon.pid));
    const status = await runCli(['status', sock]);
    assert.equal(status.code, 0);
    assert.match(status.stdout, /upstreams: 1 host/);
    const lines = readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { msg: string });
    assert.ok(
      lines.some((l) => l.msg === 'agent ready'),
      'logs go to --logfile',
    );
    assert.equal(daemon.stdoutLines.length, 0, 'nothing on stdout');
    await client.close();
    await stopCleanly(daemon);
    assert.equal(existsSync(pid), false, 'pid file removed at exit');
    assert.equal(existsSync(sock), false, 'status socket removed at exit');
  } finally {
    await client.close();
    await daemon.kill();
    await stopCleanly(upstream.daemon);
  }
});

describe('start-up failures name their cause in one line', () => {
  test('gateway with NATS down: the URL and the reason, exit 1', async () => {
    const res = await runCli(['gateway', '-l', '127.0.0.1:0', '--queue', 'nats://127.0.0.1:1']);
    assert.equal(res.code, 1);
    const lines = res.stderr.trim().split('\n');
    assert.deepEqual(lines, [
      'tcpdaemon gateway: cannot reach NATS (nats://127.0.0.1:1: connection refused)',
    ]);
  });
  test('worker with NATS down: the same', async () => {
    const res = await runCli(['worker', '-s', BUSINESS, '--queue', 'nats://127.0.0.1:1']);
    assert.equal(res.code, 1);
    assert.equal(
      res.stderr.trim(),
      'tcpdaemon worker: cannot reach NATS (nats://127.0.0.1:1: connection refused)',
    );
  });
});

describe('--daemon-level in every command', () => {
  const commands: [string, string[]][] = [
    ['tcpdaemon', ['-l', '127.0.0.1:0', '-s', echo]],
    ['tcpdaemon proxy', ['proxy', '-l', '127.0.0.1:0', '--backend', '127.0.0.1:1']],
    ['tcpdaemon gateway', gatewayArgs()],
    ['tcpdaemon agent', ['agent', '-l', '127.0.0.1:0', '--upstream', '127.0.0.1:1']],
  ];
  for (const [name, argv] of commands) {
    test(`${name}: detaches, says where it listens, the pid file names the detached process`, async () => {
      const pid = join(tmp, `${name.replace(/ /g, '-')}.pid`);
      const res = await runCli([
        ...argv,
        '--daemon-level',
        '--logfile',
        join(tmp, 'detached.log'),
        '--pid-file',
        pid,
      ]);
      assert.equal(res.code, 0, res.stderr);
      const m = new RegExp(
        `^${name}: running in the background as pid (\\d+), listening on 127\\.0\\.0\\.1:\\d+$`,
      ).exec(res.stdout.trim());
      assert.ok(m, res.stdout);
      const detached = Number(m[1]);
      assert.equal(readFileSync(pid, 'utf8').trim(), String(detached));
      process.kill(detached, 'SIGTERM');
      const deadline = Date.now() + 15_000;
      while (existsSync(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assert.equal(existsSync(pid), false, 'stopped and removed its pid file');
    });
  }
});

test('gateway: a second stop signal exits at once and still leaves no pid file or status socket', async () => {
  const pid = join(tmp, 'forced.pid');
  const sock = join(tmp, 'forced.sock');
  const { daemon, port } = await startDaemon(gatewayArgs('--pid-file', pid, '--status-socket', sock));
  const c = await gatewayClient(port);
  try {
    const slow = c.client.request(2, Buffer.from('8000')).catch(() => undefined);
    // The request is in flight (the status says so) before the first signal: the stop then waits for it.
    for (let i = 0; i < 100; i++) {
      const s = await runCli(['status', sock, '--json']);
      if (/"inFlight":1/.test(s.stdout)) break;
    }
    daemon.signal('SIGTERM');
    await daemon.waitForMsg('stopping: no new connections');
    daemon.signal('SIGTERM');
    assert.deepEqual(await daemon.waitForExit(), { code: 1, signal: null });
    assert.equal(existsSync(pid), false, 'pid file removed');
    assert.equal(existsSync(sock), false, 'status socket removed');
    await slow;
  } finally {
    await c.close();
    await daemon.kill();
  }
});
