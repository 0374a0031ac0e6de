// Simulated hosts for multi-host tests: Linux network namespaces on a private /24, each with one
// link (eth0) to a switch: a kernel bridge in a namespace of its own, or, with a link delay, our
// user-space switch (test/fixtures/delay-switch.c, TAP ports) since this kernel has no netem. The
// root namespace has no address on the hosts' subnet, so traffic stays between their own
// addresses. Faults: a host's processes killed, a host partitioned (nftables drops everything but
// loopback) and healed, random loss per host. Needs root, iproute2, nft (Debian's nftables), gcc.
import { type ChildProcess, execFileSync, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURES } from './daemon.js';
import { tempDir } from './temp-dir.js';

export interface Host {
  /** 1-based, as in the test's prose ("host 3"). */
  index: number;
  ns: string;
  ip: string;
  /** The argv prefix that runs a command inside this host. */
  exec: string[];
}

function run(cmd: string, args: string[]): void {
  execFileSync(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
}

function nsRun(ns: string, cmd: string, args: string[], input?: string): void {
  execFileSync('ip', ['netns', 'exec', ns, cmd, ...args], {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'ignore', 'pipe'],
    input,
  });
}

/** Why multi-host tests cannot run here, or undefined when they can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root (ip netns add); CI runs as root';
  const ip = spawnSync('ip', ['-V'], { stdio: 'ignore' });
  if (ip.error !== undefined || ip.status !== 0) return 'needs iproute2 (ip)';
  const nft = spawnSync('nft', ['--version'], { stdio: 'ignore' });
  if (nft.error !== undefined || nft.status !== 0) return 'needs nftables (nft) for partitions and loss';
  if (spawnSync('gcc', ['--version'], { stdio: 'ignore' }).status !== 0)
    return 'needs gcc (the delay switch)';
  return undefined;
}

export interface NetworkOptions {
  /** One-way delay of every frame between two hosts, ms (0: a kernel bridge, no delay). */
  delayMs?: number;
}

export class Network {
  private constructor(
    readonly hosts: Host[],
    private readonly switchNs: string | undefined,
    private readonly delaySwitch: { child: ChildProcess; dir: string } | undefined,
  ) {}

  /** `count` hosts on 10.213.N.0/24, N picked from this process so concurrent runs do not meet. */
  static async create(count: number, opts: NetworkOptions = {}): Promise<Network> {
    const tag = `td${(process.pid % 46656).toString(36)}`;
    const subnet = `10.213.${(process.pid % 250) + 1}`;
    const delayed = (opts.delayMs ?? 0) > 0;
    const hosts: Host[] = [];
    for (let i = 1; i <= count; i++) {
      const ns = `${tag}h${i}`;
      hosts.push({ index: i, ns, ip: `${subnet}.${i}`, exec: ['ip', 'netns', 'exec', ns] });
    }
    const taps = hosts.map((h) => `${tag}t${h.index}`);
    let sw: { child: ChildProcess; dir: string } | undefined;
    const switchNs = delayed ? undefined : `${tag}sw`;
    try {
      if (delayed) sw = await startDelaySwitch(Math.round(opts.delayMs! * 1000), taps);
      else {
        run('ip', ['netns', 'add', switchNs!]);
        nsRun(switchNs!, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
        nsRun(switchNs!, 'ip', ['link', 'set', 'br0', 'up']);
      }
    } catch (err) {
      if (switchNs !== undefined) spawnSync('ip', ['netns', 'del', switchNs], { stdio: 'ignore' });
      throw err;
    }
    const net = new Network(hosts, switchNs, sw);
    try {
      for (const h of hosts) {
        const { ns, ip, index: i } = h;
        run('ip', ['netns', 'add', ns]);
        if (sw !== undefined) {
          // The switch holds the TAP open; the device moves, the descriptor follows it.
          run('ip', ['link', 'set', taps[i - 1]!, 'netns', ns]);
          nsRun(ns, 'ip', ['link', 'set', taps[i - 1]!, 'name', 'eth0']);
        } else {
          // Both ends are made in the host's namespace, then one moves to the switch.
          nsRun(ns, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`]);
          nsRun(ns, 'ip', ['link', 'set', `p${i}`, 'netns', switchNs!]);
          nsRun(switchNs!, 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
          nsRun(switchNs!, 'ip', ['link', 'set', `p${i}`, 'up']);
        }
        nsRun(ns, 'ip', ['addr', 'add', `${ip}/24`, 'dev', 'eth0']);
        nsRun(ns, 'ip', ['link', 'set', 'eth0', 'up']);
        nsRun(ns, 'ip', ['link', 'set', 'lo', 'up']);
        // The fault table: empty chains now; partition() and setLoss() fill them.
        nsRun(
          ns,
          'nft',
          ['-f', '-'],
          `table inet tdfault {
  chain input { type filter hook input priority 0; policy accept; }
  chain output { type filter hook output priority 0; policy accept; }
}
`,
        );
      }
    } catch (err) {
      net.destroy();
      throw new Error(`cannot build the test network: ${(err as { stderr?: Buffer }).stderr ?? err}`);
    }
    return net;
  }

  host(index: number): Host {
    const h = this.hosts[index - 1];
    if (h === undefined) throw new Error(`no host ${index}`);
    return h;
  }

  /** Drops every packet in and out of the host except loopback, until heal(). */
  partition(index: number): void {
    const { ns } = this.host(index);
    this.flush(ns);
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 'tdfault', 'input', 'iifname', '!=', 'lo', 'drop']);
    nsRun(ns, 'nft', ['add', 'rule', 'inet', 'tdfault', 'output', 'oifname', '!=', 'lo', 'drop']);
  }

  heal(index: number): void {
    this.flush(this.host(index).ns);
  }

  /** Drops `percent` of the host's outgoing packets at random (0 = none). */
  setLoss(index: number, percent: number): void {
    const { ns } = this.host(index);
    this.flush(ns);
    if (percent > 0)
      nsRun(ns, 'nft', [
        'add',
        'rule',
        'inet',
        'tdfault',
        'output',
        'oifname',
        '!=',
        'lo',
        'numgen',
        'random',
        'mod',
        '100',
        '<',
        String(percent),
        'drop',
      ]);
  }

  /** SIGKILL of every process in the host but `spare` (a host's servers dying). */
  killAll(index: number, spare: number[] = []): number[] {
    const { ns } = this.host(index);
    const pids = pidsIn(ns).filter((p) => !spare.includes(p));
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
    return pids;
  }

  /** Kills what still runs in the hosts and removes every namespace. Safe to call twice. */
  destroy(): void {
    for (const h of this.hosts) {
      for (const pid of pidsIn(h.ns)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // gone already
        }
      }
      spawnSync('ip', ['netns', 'del', h.ns], { stdio: 'ignore' });
    }
    if (this.switchNs !== undefined) spawnSync('ip', ['netns', 'del', this.switchNs], { stdio: 'ignore' });
    if (this.delaySwitch !== undefined) {
      this.delaySwitch.child.kill('SIGKILL');
      rmSync(this.delaySwitch.dir, { recursive: true, force: true });
    }
  }

  private flush(ns: string): void {
    nsRun(ns, 'nft', ['flush', 'table', 'inet', 'tdfault']);
  }
}

function pidsIn(ns: string): number[] {
  const r = spawnSync('ip', ['netns', 'pids', ns], { encoding: 'utf8' });
  if (r.status !== 0) return [];
  return r.stdout
    .split('\n')
    .map((s) => Number(s.trim()))
    .filter((n) => Number.isInteger(n) && n > 0);
}

/** Builds and starts test/fixtures/delay-switch.c with one TAP port per name. */
async function startDelaySwitch(
  delayUs: number,
  taps: string[],
): Promise<{ child: ChildProcess; dir: string }> {
  const dir = tempDir('tcpdaemon-delay-switch-');
  const exe = join(dir, 'delay-switch');
  const built = spawnSync('gcc', ['-O2', '-o', exe, join(FIXTURES, 'delay-switch.c')], { encoding: 'utf8' });
  if (built.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot build the delay switch:\n${built.stderr}`);
  }
  const child = spawn(exe, [String(delayUs), ...taps], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => {
    err += d;
  });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      if (d.includes('ready')) resolve();
    });
    void once(child, 'exit').then(() => reject(new Error(`the delay switch exited: ${err}`)));
  });
  try {
    await ready;
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { child, dir };
}
