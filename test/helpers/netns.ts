// Simulated hosts for multi-host tests: Linux network namespaces, each with one veth link to a
// bridge in a switch namespace of its own, on a private /24. The root namespace has no address on
// it, so traffic stays between the hosts' own addresses. Faults: a host's processes killed, a
// host partitioned (nftables drops everything but loopback) and healed, random loss per host.
// Needs root and iproute2; nft for partitions and loss (Debian's nftables).
import { execFileSync, spawnSync } from 'node:child_process';

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
  return undefined;
}

export class Network {
  private constructor(
    readonly hosts: Host[],
    private readonly switchNs: string,
  ) {}

  /** `count` hosts on 10.213.N.0/24, N picked from this process so concurrent runs do not meet. */
  static create(count: number): Network {
    const tag = `td${(process.pid % 46656).toString(36)}`;
    const subnet = `10.213.${(process.pid % 250) + 1}`;
    const switchNs = `${tag}sw`;
    const hosts: Host[] = [];
    const net = new Network(hosts, switchNs);
    try {
      run('ip', ['netns', 'add', switchNs]);
      nsRun(switchNs, 'ip', ['link', 'add', 'br0', 'type', 'bridge']);
      nsRun(switchNs, 'ip', ['link', 'set', 'br0', 'up']);
      for (let i = 1; i <= count; i++) {
        const ns = `${tag}h${i}`;
        const ip = `${subnet}.${i}`;
        run('ip', ['netns', 'add', ns]);
        hosts.push({ index: i, ns, ip, exec: ['ip', 'netns', 'exec', ns] });
        // Both ends are made in the host's namespace, then one moves to the switch.
        nsRun(ns, 'ip', ['link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', `p${i}`]);
        nsRun(ns, 'ip', ['link', 'set', `p${i}`, 'netns', switchNs]);
        nsRun(switchNs, 'ip', ['link', 'set', `p${i}`, 'master', 'br0']);
        nsRun(switchNs, 'ip', ['link', 'set', `p${i}`, 'up']);
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
    spawnSync('ip', ['netns', 'del', this.switchNs], { stdio: 'ignore' });
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
