import assert from 'node:assert/strict';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { type AddressInfo, createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { ParamError } from '../src/errors.js';
import { parseProxyArgs } from '../src/proxy/cli.js';
import { validateProxyConfig } from '../src/proxy/config.js';
import { readProxyHeader, startProxy } from '../src/proxy/index.js';
import { BIN, type Listening, runCli, startDaemon } from './helpers/daemon.js';
import { checkNoLeftoverProcesses } from './helpers/leftovers.js';
import { connect, readBytes, roundTrip, untilClosed } from './helpers/net.js';
import { listen, type TestServer, taggedEcho } from './helpers/proxy.js';
import { tempDir } from './helpers/temp-dir.js';

const cleanup: (() => unknown)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

checkNoLeftoverProcesses();

/** `tcpdaemon proxy` (through its entry until the CLI dispatcher routes the subcommand). */
const PROXY = { command: [BIN, 'proxy'] };
const tmp = tempDir('tcpdaemon-proxy-cli-');

async function proxy(args: string[]): Promise<Listening> {
  const p = await startDaemon(args, PROXY);
  cleanup.push(() => p.daemon.kill());
  return p;
}

async function backend(tag: string): Promise<TestServer> {
  const b = await taggedEcho(tag);
  cleanup.push(() => b.close());
  return b;
}

async function rejects(args: string[], reason: RegExp): Promise<void> {
  const res = await runCli(args, PROXY);
  assert.equal(res.code, 1, `exit code for ${args.join(' ')}; stderr: ${res.stderr}`);
  const first = res.stderr.split('\n')[0]!;
  assert.match(first, /^tcpdaemon proxy: /);
  assert.match(first, reason);
  assert.doesNotMatch(res.stdout, /"listening"/);
}

describe('tcpdaemon proxy: flags', () => {
  it('refuses bad flags with one line and exit 1, before listening', async () => {
    await rejects(
      ['-l', '127.0.0.1:0'],
      /give at least one --backend HOST:PORT, --spawn COMMAND or --discover SERVICE/,
    );
    await rejects(
      ['-l', '127.0.0.1:0', '--backend', '127.0.0.1:1', '--frobnicate'],
      /unknown flag '--frobnicate'/,
    );
  });

  it('names the flag and the mistake for every kind of bad value', () => {
    const l = ['-l', '127.0.0.1:0'];
    const cases: [string[], RegExp][] = [
      [[...l, '--backend', '127.0.0.1'], /--backend backend '127\.0\.0\.1': expected HOST:PORT/],
      [[...l, '--backend', '127.0.0.1:1,weight=0'], /weight must be 1\.\.100/],
      [[...l, '--backend', '127.0.0.1:1', '--backend', '127.0.0.1:1'], /127\.0\.0\.1:1 is given twice/],
      [
        [...l, '--backend', '127.0.0.1:1', '--strategy', 'random'],
        /strategy \(--strategy\) must be one of roundrobin, leastconn, p2c, hash/,
      ],
      [
        [...l, '--backend', '127.0.0.1:1', '--send-proxy', 'v3'],
        /sendProxy \(--send-proxy\) must be one of v1, v2/,
      ],
      [
        [...l, '--backend', '127.0.0.1:1', '--retries=-1'],
        /retries \(--retries\) must be a whole number >= 0/,
      ],
      [
        [...l, '--backend', '127.0.0.1:1', '--connect-timeout', 'soon'],
        /connectTimeout \(--connect-timeout\) must be a number >= 0/,
      ],
      [[...l, '--backend', '127.0.0.1:1', '-c', '0'], /workers \(-c\) must be a whole number >= 1/],
      [[...l, '--backend', '127.0.0.1:1', '-m', 'FORK'], /model \(-m\) must be one of/],
      [
        [...l, '--backend', '127.0.0.1:1', '--spawn-count', '2'],
        /spawnCount \(--spawn-count\) needs --spawn COMMAND/,
      ],
      [[...l, '--spawn', 'node server.js'], /must contain the \{port\} placeholder/],
      [[...l, '--spawn', "node 'server.js {port}"], /spawn \(--spawn\) unterminated ' quote in command/],
      [
        [...l, '--backend', '127.0.0.1:1', '--spawn-unix'],
        /spawnUnix \(--spawn-unix\) needs --spawn COMMAND/,
      ],
      [
        [...l, '--spawn', 'x {port}', '--spawn-port', '65535', '--spawn-count', '2'],
        /leaves no room for 2 ports/,
      ],
      [[...l, '--spawn', 'x {port}', '--spawn-port', '7000', '--spawn-unix'], /not both/],
      [[...l, '--backend', '127.0.0.1:1', '--loglevel', 'info', '--loglevel-debug'], /give one loglevel/],
      [[...l, '--backend', '127.0.0.1:1', '--retries'], /flag --retries needs a value/],
      [['--backend', '127.0.0.1:1'], /listen \(-l\) is required/],
    ];
    for (const [argv, reason] of cases) {
      assert.throws(
        () => {
          const config = parseProxyArgs(argv);
          if (config !== 'help') validateProxyConfig(config);
        },
        (err: Error) => err instanceof ParamError && reason.test(err.message),
        argv.join(' '),
      );
    }
  });

  it('reads --config, flags override it; unknown keys are refused', async () => {
    const b = await backend('cfg');
    const file = join(tmp, 'proxy.json');
    writeFileSync(
      file,
      JSON.stringify({ listen: '127.0.0.1:1', backends: [`127.0.0.1:${b.port}`], passive: { probeNum: 3 } }),
    );
    const p = await proxy(['--config', file, '-l', '127.0.0.1:0']);
    const c = await connect(p.port);
    c.write('x');
    assert.equal((await readBytes(c, 5)).toString(), 'cfg\nx');
    c.destroy();
    const bad = join(tmp, 'bad.json');
    writeFileSync(
      bad,
      JSON.stringify({ listen: '127.0.0.1:0', backends: ['127.0.0.1:1'], passive: { probe: 3 } }),
    );
    await rejects(['--config', bad], /unknown key 'passive\.probe'/);
  });
});

describe('tcpdaemon proxy: serving', () => {
  it('forwards to every backend, logs per-backend stats, stops on SIGTERM', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const p = await proxy([
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${a.port}`,
      '--backend',
      `127.0.0.1:${b.port},weight=2`,
      '--strategy',
      'roundrobin',
      '--stats-interval',
      '0.2',
    ]);
    const ready = await p.daemon.waitForMsg('proxy ready');
    assert.deepEqual(ready.backends, [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port},weight=2`]);
    const tags: string[] = [];
    for (let i = 0; i < 6; i++) {
      const c = await connect(p.port);
      tags.push((await roundTrip(c, '.')).split('\n')[0]!);
      c.destroy();
    }
    assert.deepEqual(tags.sort(), ['a', 'a', 'b', 'b', 'b', 'b']);
    // A line logged while the six were still under way counts fewer: wait for one with all six.
    const stats = await p.daemon.waitForLog(
      (l) =>
        l.msg === 'proxy stats' && (l.backends as { total: number }[]).reduce((n, x) => n + x.total, 0) === 6,
    );
    const byId = Object.fromEntries(
      (stats.backends as { id: string; total: number; state: string }[]).map((x) => [x.id, x]),
    );
    assert.equal(byId[`127.0.0.1:${a.port}`]!.total, 2);
    assert.equal(byId[`127.0.0.1:${b.port}`]!.total, 4);
    assert.equal(byId[`127.0.0.1:${a.port}`]!.state, 'up');
    p.daemon.signal('SIGTERM');
    assert.deepEqual(await p.daemon.waitForExit(), { code: 0, signal: null });
  });

  it('takes a backend that stops listening out of rotation (active checks) and back when it returns', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const p = await proxy([
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${a.port}`,
      '--backend',
      `127.0.0.1:${b.port}`,
      '--health-interval',
      '0.1',
    ]);
    await b.close();
    const down = await p.daemon.waitForLog((l) => l.msg === 'backend down');
    assert.equal(down.backend, `127.0.0.1:${b.port}`);
    assert.match(String(down.reason), /ECONNREFUSED/);
    // Every connection meanwhile lands on a.
    for (let i = 0; i < 5; i++) {
      const c = await connect(p.port);
      c.write('.');
      assert.equal((await readBytes(c, 3)).toString(), 'a\n.');
      c.destroy();
    }
    const again = createServer((s) => {
      s.on('error', () => {}); // connect checks hang up at once
      s.end('b again\n');
    });
    again.listen(b.port, '127.0.0.1');
    await once(again, 'listening');
    cleanup.push(() => new Promise((r) => again.close(r)));
    const up = await p.daemon.waitForMsg('backend back in rotation');
    assert.equal(up.backend, `127.0.0.1:${b.port}`);
    assert.match(String(up.reason), /connect check passed 2 times in a row/);
  });

  it('--timeout closes an idle connection, both sides, while a busy one lives on', async () => {
    const b = await backend('b');
    const p = await proxy(['-l', '127.0.0.1:0', '--backend', `127.0.0.1:${b.port}`, '--timeout', '1']);
    const idle = await connect(p.port);
    const busy = await connect(p.port);
    let cut = false;
    const idleClosed = untilClosed(idle).finally(() => {
      cut = true;
    });
    // Traffic in either direction keeps a connection alive: here the backend's echo of each write,
    // every 100 ms until the idle one is cut and five times after.
    for (let i = 0, after = 0; after < 5 && i < 200; i++) {
      busy.write('.');
      await readBytes(busy, i === 0 ? 3 : 1);
      await new Promise((r) => setTimeout(r, 100));
      if (cut) after++;
    }
    assert.equal((await idleClosed).data, 'b\n');
    assert.equal(busy.destroyed, false, 'the busy connection is still open');
    await p.daemon.waitForMsg('idle timeout; connection closed');
    for (let i = 0; i < 100 && b.sockets.size > 1; i++) await new Promise((r) => setTimeout(r, 20));
    assert.equal(b.sockets.size, 1, "the idle connection's backend side is closed too");
    busy.destroy();
  });

  it('closes a client with a logged reason when no backend is reachable', async () => {
    const gone = await listen(() => {});
    await gone.close();
    const p = await proxy([
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${gone.port}`,
      '--health-interval',
      '0',
    ]);
    const c = await connect(p.port);
    assert.equal((await untilClosed(c)).data, '');
    const line = await p.daemon.waitForMsg('client closed: no backend could take it');
    assert.match(String(line.reason), /ECONNREFUSED/);
  });
});

describe('PROXY protocol between our proxies', () => {
  it('v1 out of one proxy, read by the next, v2 out of that one: the backend sees the real client', async () => {
    const seen: string[] = [];
    const b = await listen(async (s) => {
      const r = await readProxyHeader(s, { timeoutMs: 5000 });
      seen.push(r.ok ? `v${r.header.version} ${r.remoteAddress}:${r.remotePort}` : r.reason);
      s.end('ok');
    });
    cleanup.push(() => b.close());
    const inner = await proxy([
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${b.port}`,
      '--proxy-protocol',
      '--send-proxy',
      'v2',
    ]);
    const outer = await proxy([
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${inner.port}`,
      '--send-proxy',
      'v1',
    ]);
    const c = netConnect({ port: outer.port, host: '127.0.0.1', localAddress: '127.0.0.7' });
    await once(c, 'connect');
    const port = c.localPort;
    assert.equal((await untilClosed(c)).data, 'ok');
    assert.deepEqual(seen, [`v2 127.0.0.7:${port}`]);
  });

  it('a client without the header is closed with a logged reason', async () => {
    const b = await backend('b');
    const p = await proxy([
      '-l',
      '127.0.0.1:0',
      '--backend',
      `127.0.0.1:${b.port}`,
      '--proxy-protocol',
      '--proxy-header-timeout',
      '0.3',
    ]);
    const plain = await connect(p.port);
    plain.write('hello\r\n');
    assert.equal((await untilClosed(plain)).data, '');
    const bad = await p.daemon.waitForMsg('PROXY header refused; connection closed');
    assert.match(String(bad.reason), /no PROXY header/);
    const silent = await connect(p.port);
    assert.equal((await untilClosed(silent)).data, '');
    await p.daemon.waitForLog(
      (l) => l.msg === 'PROXY header refused; connection closed' && /within 300 ms/.test(String(l.reason)),
    );
  });
});

describe('startProxy (library)', () => {
  it('serves, reports per-backend stats, and refuses bad config with ProxyConfigError', async () => {
    const a = await backend('a');
    const gone = await listen(() => {});
    await gone.close();
    const p = await startProxy({
      listen: '127.0.0.1:0',
      backends: [`127.0.0.1:${a.port}`, `127.0.0.1:${gone.port}`],
      strategy: 'roundrobin',
      healthInterval: 0,
      loglevel: 'fatal',
      statsInterval: 0,
    });
    try {
      const { port } = p.address() as AddressInfo;
      for (let i = 0; i < 4; i++) {
        const c = await connect(port);
        c.write('.');
        assert.equal((await readBytes(c, 3)).toString(), 'a\n.');
        c.destroy();
      }
      const stats = p.stats();
      const live = stats.backends.find((b) => b.id === `127.0.0.1:${a.port}`)!;
      const dead = stats.backends.find((b) => b.id === `127.0.0.1:${gone.port}`)!;
      assert.equal(live.total, 4);
      assert.equal(live.state, 'up');
      assert.equal(dead.total, 0);
      assert.ok(dead.errors >= 1);
      assert.equal(stats.retried, dead.errors);
      assert.equal(stats.rejected, 0);
    } finally {
      await p.close();
    }
    await assert.rejects(startProxy({ listen: '127.0.0.1:0', backends: ['nope'] }), ParamError);
    await assert.rejects(startProxy({ listen: '127.0.0.1:0' }), /give at least one --backend/);
  });
});
